"""A study's parameters: the notebooks' own parameters cells (names, types, defaults and the rules in their comments), a study
file with its overrides and ``--set`` values, read and type-checked, one sentence per problem."""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"


OVERRIDES = "overrides"


NOTEBOOKS_KEY = "notebooks"  # a study's own list of the notebooks it runs (default: all; ``--only`` narrows it further)


NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


TYPE_NAMES = {"str": str, "path": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}


class StudyError(ValueError):
    """A parameter file that cannot run: each line of the message is one problem."""


@dataclass
class Param:
    """A notebook parameter: its default, comment and the rules read from the comment."""

    name: str
    default: object
    help: str = ""
    rules: list[str] = field(default_factory=list)

    @classmethod
    def from_inspection(cls, raw: dict) -> Param:
        try:
            default = ast.literal_eval(raw["default"])
        except (ValueError, SyntaxError):
            raise StudyError(f"parameter {raw['name']} has a default that is not a literal: {raw['default']}") from None
        help_text = raw.get("help") or ""
        match = re.search(r"\[([^\[\]]*)\]\s*$", help_text)
        rules = [r.strip() for r in match.group(1).split(",") if r.strip()] if match else []
        return cls(raw["name"], default, help_text, rules)

    def problem(self, value) -> str | None:
        """Why ``value`` is not valid for this parameter, or None when it is."""
        expected = self._expected_type()
        if value is None and (self.default is None):
            return None
        if expected is not None and not _is_type(value, expected):
            return f"it must be {_type_words(expected)}, not {type(value).__name__}"
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list):
            if "nonempty" in self.rules and not value:
                return "it must be a non-empty list"
            elem = _elem_type(self.default)
            for item in value:
                if elem is not None and not _is_type(item, elem):
                    return f"its item {item!r} must be {_type_words(elem)}"
        for rule in self.rules:
            for item in items:
                why = _check_rule(rule, item)
                if why:
                    return why
        return None

    def _expected_type(self):
        if self.default is None:
            named = [TYPE_NAMES[r] for r in self.rules if r in TYPE_NAMES]
            return named[0] if named else None
        return _type_of(self.default)


def _type_of(value):
    if isinstance(value, bool):
        return bool
    if isinstance(value, float):
        return (int, float)
    return type(value)


def _elem_type(default):
    if isinstance(default, list) and default:
        kinds = {_type_of(v) for v in default}
        if len(kinds) == 1:
            return kinds.pop()
    return None


def _is_type(value, expected) -> bool:
    if isinstance(value, bool) and expected is not bool and expected is not object:
        return False
    return isinstance(value, expected)


def _type_words(expected) -> str:
    if expected == (int, float):
        return "a number"
    return {bool: "true or false", int: "a whole number", str: "a string", list: "a list", dict: "a mapping"}.get(
        expected, getattr(expected, "__name__", str(expected))
    )


def _check_rule(rule: str, value) -> str | None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    m = re.fullmatch(r"(>|<)\s*(-?[\d.eE+-]+)", rule)
    if m:
        bound = float(m.group(2))
        ok = not number or (value > bound if m.group(1) == ">" else value < bound)
        return None if ok else f"it must be {m.group(1)} {m.group(2)}"
    m = re.fullmatch(r"(-?[\d.eE+]+)?\.\.(-?[\d.eE+]+)?", rule)
    if m:
        lo, hi = (float(g) if g else None for g in m.groups())
        if number and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            if hi is None:
                return f"it must be at least {m.group(1)}"
            if lo is None:
                return f"it must be at most {m.group(2)}"
            return f"it must be between {m.group(1)} and {m.group(2)}"
        return None
    if "|" in rule:
        choices = rule.split("|")
        if value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"{value!r} is not one of {', '.join(choices)}{hint}"
    return None


def discover(notebooks_dir: str | Path = NOTEBOOKS_DIR) -> dict[str, Path]:
    """The study's notebooks by stem ("01_prompts"), in execution order."""
    folder = Path(notebooks_dir)
    found = sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    if not found:
        raise StudyError(f"no study notebooks (NN_name.ipynb) in {folder}.")
    return {p.stem: p for p in found}


def listed_notebooks(study: dict, notebooks: dict[str, Path], source: str = "study") -> dict[str, Path]:
    """The notebooks the study runs: those its ``notebooks`` key lists (in execution order), else all."""
    listed = study.get(NOTEBOOKS_KEY)
    if listed is None:
        return notebooks
    if not isinstance(listed, list) or not listed or not all(isinstance(s, str) for s in listed):
        raise StudyError(f"{source}: {NOTEBOOKS_KEY} must be a nonempty list of notebook names such as [01_prompts, 02_generate].")
    missing = [s for s in listed if s not in notebooks]
    if missing:
        match = difflib.get_close_matches(missing[0], list(notebooks), n=1)
        hint = f"; did you mean {match[0]!r}?" if match else f"; valid: {', '.join(notebooks)}."
        raise StudyError(f"{source}: {NOTEBOOKS_KEY} names unknown notebook {missing[0]!r}{hint}")
    return {s: p for s, p in notebooks.items() if s in listed}


def notebook_params(path: str | Path) -> dict[str, Param]:
    """The parameters a notebook declares in its cell tagged ``parameters``."""
    import papermill as pm

    return {name: Param.from_inspection(raw) for name, raw in pm.inspect_notebook(str(path)).items()}


def parse_set(items: list[str] | None) -> dict:
    """``--set key=value`` / ``--set 01_prompts.key=value`` (values parsed as YAML) into a study dict."""
    out: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise StudyError(f"--set {item!r} is not key=value (for one notebook: 01_prompts.key=value).")
        value = yaml.safe_load(raw) if raw else ""
        nb, dot, name = key.rpartition(".")
        if dot:
            out.setdefault(OVERRIDES, {}).setdefault(nb, {})[name] = value
        else:
            out[key] = value
    return out


def load_study(path: str | Path, sets: list[str] | None = None) -> dict:
    """The parameter file as a dict, with ``--set`` values applied over it."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"parameter file {path} does not exist.")
    try:
        study = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise StudyError(f"{path} is not valid YAML: {err}".replace("\n", " ")) from None
    if not isinstance(study, dict):
        raise StudyError(f"{path} must hold a mapping of parameter names to values, not {type(study).__name__}.")
    extra = parse_set(sets)
    for nb, values in extra.pop(OVERRIDES, {}).items():
        study.setdefault(OVERRIDES, {}).setdefault(nb, {}).update(values)
    study.update(extra)
    study.setdefault("study", path.stem)
    return study
