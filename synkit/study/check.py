"""Everything a study can be refused for before anything runs: unknown notebooks or parameters, wrong types, values outside
their rules, typos in nested configs, ladders that cannot be fitted and sources no configuration makes."""

from __future__ import annotations

import difflib
from pathlib import Path

from synkit.core.sources import parse as parse_source
from synkit.study.params import NOTEBOOKS_KEY, OVERRIDES, StudyError, notebook_params


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
    from synkit.classify import quality, train
    from synkit.clip import train as clip_train
    from synkit.t2i import latent as t2i

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
    from synkit.classify.train import ladder_sizes
    from synkit.data.worlds import WorldSettings
    from synkit.generate.plan import parse_ladder_config

    t = {**defaults.get("04_train", {}), **plan["04_train"]}
    g = {**defaults.get("02_generate", {}), **plan.get("02_generate", {})}
    try:
        world = WorldSettings.of(t).load()
        d_i = len(world.split("real"))
    except OSError:
        return []  # the world's images are not on this machine: 04 names the missing folder when it runs
    try:
        sizes = sorted(t.get("sizes") or ladder_sizes(d_i, t.get("min_size", 0), t.get("max_factor", 2.0)))
    except ValueError as err:
        return [f"{source}: the ladder of 04_train cannot be built: {err}"]
    classes = len(world.classes)
    from synkit.generate.plan import config_name
    from synkit.t2i.families import GENERATOR_KEYS, generator_entries

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
        parsed = parse_source(spec)
        if parsed.base == "real":
            cap = d_i
        else:
            images, frac = counts.get(parsed.base, 0), parsed.fraction
            cap = min(images / (1 - float(frac)), d_i / float(frac)) if parsed.is_mix else images
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
    from synkit.generate.plan import config_name, parse_ladder_config
    from synkit.t2i.families import GENERATOR_KEYS, generator_entries

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
    rendered = sorted({ps for ps, _ in made})
    for ps in train_values.get("sweep_prompt_sets") or []:
        if ps not in rendered:
            problems.append(f"{source}: sweep_prompt_sets of 04_train names {ps!r}, which 02_generate does not render "
                            f"(valid: {', '.join(rendered)}).")
    specs = list(train_values.get("sources") or [])
    if train_values.get("capacity_source"):
        specs.append(train_values["capacity_source"])
    for spec in specs:
        parsed = parse_source(spec)
        base, plus = parsed.base, parsed.is_mix
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
