"""A study: one YAML file of parameters, checked against the notebooks, executed by papermill.

The YAML holds shared keys at the top (each goes to every notebook that declares it) and
per-notebook overrides below, under ``overrides``:

    study: mini              # outputs go to outputs/mini/
    world: fashion
    seed: 0
    overrides:
      01_prompts:
        captions_per_class: 20

A study that needs only some notebooks lists them under ``notebooks`` (e.g. a study without CLIP).

Every key must be a parameter of a notebook it targets, read from the notebooks' cells tagged
``parameters`` by papermill's inspection. A value must have its default's type and satisfy
the rules written in brackets at the end of the parameter's comment (papermill skips lines
with a second ``=``, so rules never use one):

    real_size = 10000  # images in the real split, D_I [1..]        (at least 1; 0..1 is a range)
    guidance_scale = 2.0  # CFG scale [>0]                            (strict bounds: >0, <1)
    world = "fashion"  # [fashion|imagenet|folder]                    (choices)
    prompt_sets = ["classnames"]  # [nonempty, classnames|word2sen]   (rules apply to each item)
    world_root = None  # [str]                                        (the type a None default takes)
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import os
import re
import shutil
import sys
import time
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


class NotebookFailed(RuntimeError):
    """A notebook of the study raised: the message names the notebook, cell and error."""


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


def check(study: dict, notebooks: dict[str, Path], source: str = "study") -> dict[str, dict]:
    """Validate ``study`` against the notebooks; return each notebook's parameters to inject.

    Raises StudyError with one line per problem: unknown keys (naming the closest valid key),
    wrong types and values out of range.
    """
    declared = {stem: notebook_params(path) for stem, path in notebooks.items()}
    all_names = sorted({n for params in declared.values() for n in params})
    problems: list[str] = []

    def closest(key: str, names) -> str:
        match = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
        return f"; did you mean {match[0]!r}?" if match else f"; valid keys are {', '.join(names)}."

    shared = {k: v for k, v in study.items() if k not in (OVERRIDES, NOTEBOOKS_KEY)}
    for key in shared:
        if key not in all_names:
            problems.append(f"{source}: unknown key {key!r}{closest(key, all_names)}")
    overrides = study.get(OVERRIDES) or {}
    if not isinstance(overrides, dict):
        problems.append(f"{source}: {OVERRIDES} must map notebook names (such as 01_prompts) to their keys.")
        overrides = {}
    for stem, values in overrides.items():
        if stem not in declared:
            problems.append(f"{source}: {OVERRIDES} names unknown notebook {stem!r}{closest(stem, list(declared))}")
            continue
        if not isinstance(values, dict):
            problems.append(f"{source}: {OVERRIDES}.{stem} must be a mapping of keys to values.")
            continue
        for key in values:
            if key not in declared[stem]:
                problems.append(f"{source}: unknown key {key!r} for {stem}{closest(key, list(declared[stem]))}")

    plan: dict[str, dict] = {}
    invalid: set[str] = set()
    for stem, params in declared.items():
        values = {k: v for k, v in shared.items() if k in params}
        values.update({k: v for k, v in (overrides.get(stem) or {}).items() if k in params})
        for key, value in values.items():
            why = params[key].problem(value)
            if why and key not in invalid:
                invalid.add(key)
                problems.append(f"{source}: {key}={value!r} is invalid for {stem}: {why}.")
        plan[stem] = values
    if not problems:
        problems += nested_problems(plan, {stem: {k: p.default for k, p in params.items()} for stem, params in declared.items()}, source)
    if problems:
        raise StudyError("\n".join(problems))
    return plan


def _config_classes() -> dict[str, tuple[str, object]]:
    """Each nested config parameter: (the class its keys are fields of, a builder that checks the values)."""
    from synkit.clip import train as clip_train
    from synkit.classify import quality
    from synkit.t2i import latent as t2i
    from synkit.classify import train

    def reference(values: dict):
        return quality.ReferenceConfig(**values)

    return {
        "embedded_config": ("synkit.t2i.latent.T2IConfig", t2i.T2IConfig, t2i.config_from),
        "reference_config": ("synkit.classify.quality.ReferenceConfig", quality.ReferenceConfig, reference),
        "train_config": ("synkit.classify.train.TrainConfig", train.TrainConfig, train.config_from),
        "capacity_config": ("synkit.classify.train.TrainConfig", train.TrainConfig, train.config_from),
        "clip_config": ("synkit.clip.train.ClipConfig", clip_train.ClipConfig, clip_train.clip_config_from),
    }


def nested_problems(plan: dict[str, dict], defaults: dict[str, dict], source: str = "study") -> list[str]:
    """What ``check`` finds inside the values, before anything runs: every key and value of each
    nested config (``train_config``, ``clip_config``, ``embedded_config``, ``reference_config``,
    ``capacity_config``), and 04_train's ``sources`` and ``capacity_source`` against the
    configurations 02_generate will make. One sentence per problem, naming the closest valid key."""
    import dataclasses

    problems: list[str] = []
    classes = None
    for stem, values in plan.items():
        for key, value in values.items():
            if not key.endswith("_config") or not isinstance(value, dict):
                continue
            classes = classes or _config_classes()
            if key not in classes:
                continue
            cls_name, cls, build = classes[key]
            fields = [f.name for f in dataclasses.fields(cls)]
            unknown = [k for k in value if k not in fields]
            if unknown:
                match = difflib.get_close_matches(unknown[0], fields, n=1, cutoff=0.5)
                hint = f"; did you mean {match[0]!r}?" if match else f"; valid keys are {', '.join(sorted(fields))}."
                problems.append(f"{source}: {key} of {stem} has unknown key {unknown[0]!r} (fields of {cls_name}){hint}")
                continue
            try:
                build(dict(value))
            except (TypeError, ValueError) as err:
                problems.append(f"{source}: {key} of {stem} is invalid: {err}")
    problems += _source_problems(plan, defaults, source)
    if not problems:
        problems += _ladder_problems(plan, defaults, source)
    return problems


def _ladder_problems(plan: dict[str, dict], defaults: dict[str, dict], source: str) -> list[str]:
    """04_train's ladder built from the world (D_I is its real split) and 02_generate's image counts:
    every ladder source needs >= 3 of the sizes for a fit, found now rather than after hours of training."""
    if "04_train" not in plan:
        return []
    from synkit.generate.plan import parse_ladder_config
    from synkit.classify.train import ladder_sizes
    from synkit.data.worlds import load_world

    t = {**defaults.get("04_train", {}), **plan["04_train"]}
    g = {**defaults.get("02_generate", {}), **plan.get("02_generate", {})}
    try:
        world = load_world(t.get("world", "fashion"), t.get("world_root"), t.get("web_size", 50_000), t.get("real_size", 10_000),
                           t.get("split_seed", 0), t.get("ood_roots"), t.get("class_map"), t.get("image_size"))
        d_i = len(world.split("real"))
    except OSError:
        return []  # the world's images are not on this machine: 04 names the missing folder when it runs
    try:
        sizes = sorted(t.get("sizes") or ladder_sizes(d_i, t.get("min_size", 0), t.get("max_factor", 2.0)))
    except ValueError as err:
        return [f"{source}: the ladder of 04_train cannot be built: {err}"]
    classes = len(world.classes)
    from synkit.t2i.families import GENERATOR_KEYS, generator_entries
    from synkit.generate.plan import config_name

    counts = {}  # PROMPT_SET@CFG and configuration folder -> images 02_generate makes
    for entry in generator_entries(g.get("generators") or [], {k: g.get(k) for k in GENERATOR_KEYS}):
        made = {(ps, float(x)): entry.get("images_per_class") or 50 for ps in entry.get("prompt_sets") or [] for x in entry.get("guidance_scales") or []}
        for spec in entry.get("ladder_configs") or []:
            pair, n = parse_ladder_config(spec)
            made[pair] = n or entry.get("ladder_images_per_class") or entry.get("images_per_class") or 50
        for (ps, x), n in made.items():
            counts[f"{ps}@{x:g}"] = counts[config_name(entry["generator_name"], ps, x)] = n * classes
    problems = []
    for spec in [*(t.get("sources") or []), *([t["capacity_source"]] if t.get("capacity_source") else [])]:
        base, plus, frac = str(spec).partition("+real:")
        if base == "real":
            cap = d_i
        else:
            images = counts.get(base, 0)
            cap = min(images / (1 - float(frac)), d_i / float(frac)) if plus else images
        fit = [n for n in sizes if n <= cap + 1e-9]
        if len(fit) < 3:
            problems.append(f"{source}: source {spec!r} of 04_train reaches {int(cap)} images (D_I = {d_i} in world "
                            f"{t.get('world', 'fashion')!r}), enough for {len(fit)} of the sizes {sizes}; a fit needs at least 3: "
                            "leave sizes and min_size unset (the ladder then follows D_I) or generate more images.")
    return problems


def _source_problems(plan: dict[str, dict], defaults: dict[str, dict], source: str) -> list[str]:
    """04_train's sources (and capacity_source) must name real or a configuration 02_generate makes."""
    if "04_train" not in plan or "02_generate" not in plan:
        return []
    gen = {**defaults.get("02_generate", {}), **plan["02_generate"]}
    train_values = {**defaults.get("04_train", {}), **plan["04_train"]}
    from synkit.t2i.families import GENERATOR_KEYS, generator_entries
    from synkit.generate.plan import config_name, parse_ladder_config

    try:
        entries = generator_entries(gen.get("generators") or [], {k: gen.get(k) for k in GENERATOR_KEYS})
    except ValueError as err:
        return [f"{source}: generators of 02_generate: {err}"]
    made, names, makers = set(), set(), {}  # (prompt set, CFG) pairs; configuration folder names; pair -> its folders
    for entry in entries:
        pairs = {(ps, float(g)) for ps in entry.get("prompt_sets") or [] for g in entry.get("guidance_scales") or []}
        for spec in entry.get("ladder_configs") or []:
            try:
                pairs.add(parse_ladder_config(spec)[0])
            except ValueError:
                return [f"{source}: ladder_configs entry {spec!r} of 02_generate is not PROMPT_SET@CFG or PROMPT_SET@CFG:N such as 'in_captions@2'."]
        made |= pairs
        names |= {config_name(entry["generator_name"], ps, g) for ps, g in pairs}  # a source may name the configuration's folder too
        for ps, g in pairs:
            makers.setdefault((ps, g), []).append(config_name(entry["generator_name"], ps, g))
    # PROMPT_SET@CFG where one generator makes it; with several generators, also the configuration folders
    unique = sorted(f"{ps}@{g:g}" for (ps, g), folders in makers.items() if len(folders) == 1)
    valid = ["real", *unique] if len(entries) == 1 else ["real", *unique, *sorted(names)]
    problems = []
    specs = list(train_values.get("sources") or [])
    if train_values.get("capacity_source"):
        specs.append(train_values["capacity_source"])
    for spec in specs:
        base, plus, frac = str(spec).partition("+real:")
        if base == "real" and not plus:
            continue
        name, at, scale = base.partition("@")
        try:
            known = (name, float(scale)) in made if at else base in names
        except ValueError:
            known = False
        if known and at and len(makers.get((name, float(scale)), [])) > 1:
            problems.append(f"{source}: source {spec!r} of 04_train matches configurations of several generators "
                            f"({', '.join(makers[(name, float(scale))])}); name one of them.")
        if not known:
            match = difflib.get_close_matches(base, valid, n=1, cutoff=0.5)
            hint = f"; did you mean {match[0]!r}?" if match else ""
            problems.append(f"{source}: source {spec!r} of 04_train names no configuration 02_generate makes (valid: {', '.join(valid)}){hint}")
    return problems


def study_dir(study: dict) -> Path:
    return Path(study.get("outputs_dir", "outputs")) / str(study["study"])


ROOT_ENV = "SYNKIT_ROOT"  # the folder relative paths resolve against (synkit run sets it for its kernels)
DEFAULT_STUDIES = ("mini", "smoke")  # what a notebook opened without parameters shows: the first that has run


def project_root(start: str | Path | None = None) -> Path:
    """The folder relative paths (outputs_dir, world_root, ...) resolve against: ``$SYNKIT_ROOT``,
    else the nearest folder at or above ``start`` (default: the working directory) holding
    ``parameters/`` and ``notebooks/`` (a synkit project), else the working directory."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "parameters").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def default_study(outputs_dir: str | Path) -> str:
    """The study a notebook shows when opened without parameters: the first of DEFAULT_STUDIES that has run."""
    for name in DEFAULT_STUDIES:
        if (Path(outputs_dir) / name / "parameters.json").is_file():
            return name
    raise StudyError(f"no study has run under {Path(outputs_dir).resolve()}: run `make study` (or `synkit run parameters/smoke.yaml`) "
                     f"first, or set study in the notebook's parameters cell.")


def enter(namespace: dict, notebook: str) -> Path:
    """The first step of every notebook: work from the project root (``project_root``), so relative
    paths mean what they mean to ``synkit run``, whichever folder the kernel started in. A notebook
    opened without parameters (JupyterLab: ``study`` left "") takes the default study and the
    parameters that study ran this notebook with (``parameters.json``), so it shows, and reuses,
    that study's results. Updates ``namespace`` (the notebook's globals); returns the study folder."""
    from synkit.analysis import charts
    from synkit.core import progress

    charts.use_offline_renderer()  # every chart a notebook shows renders with no network
    os.chdir(project_root())
    progress.watch_cells()  # under synkit run: the terminal hears about long cells without a bar too
    if not namespace.get("study"):
        outputs = Path(namespace.get("outputs_dir") or "outputs")
        name = default_study(outputs)
        recorded = json.loads((outputs / name / "parameters.json").read_text(encoding="utf-8"))
        namespace.update(recorded["notebooks"].get(notebook, {}))
        namespace["study"] = name
        print(f"study {name!r} (no parameters given): the parameters {recorded.get('parameters_file', 'its run')} gave {notebook}",
              file=sys.stderr)
    return Path(namespace.get("outputs_dir") or "outputs") / str(namespace["study"])



def _failure_message(stem: str, err, output: Path) -> str:
    source = (getattr(err, "source", "") or "").strip().splitlines()
    first = source[0] if source else ""
    cell = getattr(err, "exec_count", None) or getattr(err, "cell_index", "?")
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    return f"{stem} failed in cell [{cell}] `{first}`: {ename}: {evalue} (full traceback in {output})"


def _code_digest() -> str:
    """A digest of synkit's own source: a code change means results may change."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


_LAST_INTERRUPTED: list[Path] = []


def interrupted_note() -> str:
    """Where the notebook that was running when the run stopped was kept (for the command's message)."""
    if not _LAST_INTERRUPTED:
        return "no notebook was running"
    return f"the notebook that was running is kept as {_LAST_INTERRUPTED[0]}; rerun the study to resume (finished work is reused)"


def run(
    params_file: str | Path,
    only: list[str] | None = None,
    sets: list[str] | None = None,
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Path]:
    """Check the study, then execute its notebooks in order into ``outputs/<study>/notebooks/``.

    A notebook runs into ``NN_name.running.ipynb`` and becomes ``NN_name.ipynb`` when it
    finishes (``NN_name.failed.ipynb`` when it raises, ``NN_name.interrupted.ipynb`` when the run is
    stopped by Ctrl-C or SIGTERM), so a complete-looking executed notebook
    is always a complete one. A notebook that finished before with the same parameters, notebook
    and synkit code is reused (``force`` runs every one); once one runs, all later ones run.
    Returns the executed notebooks by stem.
    """
    study = load_study(params_file, sets)
    notebooks = listed_notebooks(study, discover(notebooks_dir), str(params_file))
    plan = check(study, notebooks, source=str(params_file))
    if only:
        unknown = [s for s in only if s not in notebooks]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(notebooks), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(notebooks)}."
            raise StudyError(f"--only names unknown notebook {unknown[0]!r}{hint}")
        notebooks = {s: p for s, p in notebooks.items() if s in only}
    for folder in (Path(study.get("outputs_dir", "outputs")), study_dir(study), study_dir(study) / "notebooks"):
        if folder.exists() and not folder.is_dir():
            raise StudyError(f"output folder {str(folder)!r} is a file; outputs_dir must name a folder (or one that does not exist yet).")
    out_dir = study_dir(study) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    from synkit.core.files import write_json

    write_json({"parameters_file": str(params_file), "sets": sets or [], "notebooks": plan}, study_dir(study) / "parameters.json")
    done: dict[str, Path] = {}
    t_study = time.perf_counter()
    code = _code_digest()
    from synkit.core import progress as progress_lines

    saved_env = {k: os.environ.get(k) for k in (ROOT_ENV, progress_lines.ENV)}
    os.environ[ROOT_ENV] = str(Path.cwd().resolve())  # the kernels resolve relative paths from here, as this process does
    try:
        _run_notebooks(notebooks, plan, out_dir, code, force, progress, done, t_study)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return done


def _kernel_manager():
    """A python3 kernel on IPC sockets in a private temporary folder (no TCP ports, no
    unencrypted-transport warning on every notebook)."""
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    folder = tempfile.mkdtemp(prefix="synkit-kernel-")
    return AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(folder, "kernel"))


def _run_notebooks(notebooks, plan, out_dir, code, rerun, progress, done, t_study) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from synkit.core import progress as progress_lines
    from synkit.core.files import rename, write_json

    for i, (stem, path) in enumerate(notebooks.items(), 1):
        params = plan[stem]
        final, running, failed = (out_dir / f"{stem}{suffix}.ipynb" for suffix in ("", ".running", ".failed"))
        for stale in (running, failed, out_dir / f"{stem}.interrupted.ipynb"):
            stale.unlink(missing_ok=True)
        stamp_path = out_dir / f"{stem}.done.json"
        stamp = {"parameters": params, "notebook": hashlib.sha256(path.read_bytes()).hexdigest(), "code": code}
        if not rerun and final.exists() and stamp_path.exists() and json.loads(stamp_path.read_text()) == json.loads(json.dumps(stamp, default=str)):
            print(f"[{i}/{len(notebooks)}] {stem}: reused (finished before with the same parameters and code)", file=sys.stderr, flush=True)
            done[stem] = final
            continue
        rerun = True  # everything after a notebook that runs again runs again: it may read what this one rewrites
        stamp_path.unlink(missing_ok=True)
        print(f"[{i}/{len(notebooks)}] {stem} -> {final}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        if progress:  # the kernel's bars report to this terminal
            os.environ[progress_lines.ENV] = f"{i}/{len(notebooks)} {stem}"
        km = _kernel_manager()
        try:
            # papermill's cell bar stays off: the kernel's own lines say more (synkit.core.progress)
            pm.execute_notebook(str(path), str(running), parameters=params, progress_bar=False, kernel_name="python3", km=km)
        except PapermillExecutionError as err:
            rename(running, failed)
            raise NotebookFailed(_failure_message(stem, err, failed)) from None
        except BaseException:  # Ctrl-C, SIGTERM (synkit run), a dead kernel: keep what ran, under a name that says so
            stopped = out_dir / f"{stem}.interrupted.ipynb"
            if running.exists():
                rename(running, stopped)
                _LAST_INTERRUPTED[:] = [stopped]
            raise
        finally:
            if km.has_kernel:  # papermill leaves a kernel it was handed running: stop it (and free its memory) now
                from jupyter_core.utils import run_sync

                run_sync(km.shutdown_kernel)(now=True)
            shutil.rmtree(Path(km.ip).parent, ignore_errors=True)
        rename(running, final)
        write_json(stamp, stamp_path)
        done[stem] = final
        print(
            f"[{i}/{len(notebooks)}] {stem} done in {time.perf_counter() - t0:.1f} s "
            f"(study: {time.perf_counter() - t_study:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
