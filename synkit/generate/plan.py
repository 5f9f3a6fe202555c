"""What a configuration will render, decided before any pixel: its job (``GenJob``: the key of its images), its name, and
which prompt (or caption) and seed each image gets, in a fixed order."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synkit.core.files import stored_path, write_json
from synkit.data.worlds import safe_name


@dataclass
class GenJob:
    """Everything one configuration's generation needs (also the accelerate job file)."""

    prompts: str  # path of the prompts table (parquet)
    prompt_set: str
    guidance_scale: float
    images_per_class: int
    out_dir: str  # the configuration's folder
    generator: str  # diffusers hub id or local folder of a text-to-image pipeline
    generator_name: str = ""
    stages: list[str] = field(default_factory=list)  # further cascade stages (DeepFloyd IF II)
    scheduler: str | None = None  # diffusers scheduler class name, None keeps the pipeline's
    steps: int = 25
    height: int | None = None  # native generation size, None: the pipeline's default
    width: int | None = None
    resolution: int = 256  # stored image size (square)
    resize_mode: str = "resize"
    mode: str = "RGB"  # stored PNG mode: RGB or L
    dtype: str = "auto"
    batch_size: int = 16
    shard_size: int = 1000
    seed: int = 0
    extra: dict = field(default_factory=dict)  # further keyword arguments for the pipeline call
    captions: str | None = None  # a caption table (parquet): one image per caption instead of per class prompts

    def __post_init__(self):
        from synkit.core import precision

        self.dtype = precision.resolve_dtype(self.dtype)  # as run (and keyed): auto is bfloat16 only where bf16 is native

    @property
    def name(self) -> str:
        return Path(self.out_dir).name

    def key_fields(self) -> dict:
        """The parameters an image depends on (a change means the configuration starts over); the
        generator and cascade stages by content (``generator_id``), not by path."""
        d = asdict(self)
        for k in ("out_dir", "batch_size", "prompts", "images_per_class", "captions"):
            d.pop(k)  # images are seeded per (configuration, class, index): more or fewer keeps the rest valid
        d["generator"] = generator_id(self.generator)
        d["stages"] = [generator_id(s) for s in self.stages]
        d["prompt_encoding"] = 2  # 2: each prompt set's distinct prompts encoded together, sorted (1: per configuration)
        return d


@functools.lru_cache(maxsize=64)
def generator_id(generator: str) -> str:
    """What identifies a generator whatever its path: a hub id as given (with its revision, ``id@rev``);
    a local pipeline folder by its content: synkit's embedded model by its training key, any other by
    a hash of its configuration files and the names and sizes of its weight files."""
    path = Path(generator)
    if not path.exists():
        return generator
    record = path.parent / "t2i.json"
    if record.exists() and (path / "model_index.json").exists():
        return f"embedded:{json.loads(record.read_text())['key']}"
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        rel = p.relative_to(path).as_posix()
        h.update(rel.encode())
        h.update(p.read_bytes() if p.suffix in (".json", ".txt", ".model") else str(p.stat().st_size).encode())
    return f"folder:{h.hexdigest()[:16]}"


def config_name(generator_name: str, prompt_set: str, guidance_scale: float) -> str:
    """Folder name of a configuration, e.g. ``embedded-in_captions-cfg2`` or ``sd15-classnames-cfg7p5``."""
    scale = f"{guidance_scale:g}".replace(".", "p").replace("-", "m")
    return safe_name(f"{generator_name}-{prompt_set}-cfg{scale}")


def image_seed(seed: int, config: str, class_index: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}|{config}|{class_index}|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


PROMPT_COLUMNS = ("prompt_set", "class_index", "class_name", "prompt_index", "prompt", "source_id")


def plan_images(prompts: pd.DataFrame, prompt_set: str, images_per_class: int, seed: int, config: str) -> pd.DataFrame:
    """One row per image in generation order (index-major, see the module docstring)."""
    missing = [c for c in PROMPT_COLUMNS if c not in prompts.columns]
    if missing:
        raise ValueError(f"the prompts table lacks column {missing[0]!r}; it needs {', '.join(PROMPT_COLUMNS)} (01_prompts writes them).")
    table = prompts[prompts["prompt_set"] == prompt_set]
    if table.empty:
        have = ", ".join(sorted(prompts["prompt_set"].unique()))
        raise ValueError(f"prompt set {prompt_set!r} is not in the prompts table; it has {have}. Add it to 01_prompts' prompt_sets.")
    set_salt = int.from_bytes(hashlib.blake2b(prompt_set.encode(), digest_size=4).digest(), "big")
    per_class = {}
    for c, group in table.sort_values(["class_index", "prompt_index"]).groupby("class_index"):
        order = np.random.default_rng([seed, set_salt, int(c)]).permutation(len(group))
        per_class[int(c)] = group.iloc[order].reset_index(drop=True)
    classes = sorted(per_class)
    rows = []
    for i in range(images_per_class):
        for c in classes:
            p = per_class[c].iloc[i % len(per_class[c])]
            rows.append(
                {
                    "key": f"c{c:04d}_i{i:07d}",
                    "class_index": c,
                    "class_name": p["class_name"],
                    "index": i,
                    "prompt": p["prompt"],
                    "prompt_index": int(p["prompt_index"]),
                    "source_id": p["source_id"] if pd.notna(p["source_id"]) else None,
                    "seed": image_seed(seed, config, c, i),
                }
            )
    return pd.DataFrame(rows)


CAPTION_COLUMNS = ("caption_id", "caption", "class_index", "class_name", "source_id")


def plan_captions(captions: pd.DataFrame, seed: int, config: str) -> pd.DataFrame:
    """One row per caption, in the table's order (a longer table extends a shorter one), each
    image seeded by (study seed, configuration, caption id)."""
    missing = [c for c in CAPTION_COLUMNS if c not in captions.columns]
    if missing:
        raise ValueError(f"the caption table lacks column {missing[0]!r}; it needs {', '.join(CAPTION_COLUMNS)}.")
    if not captions["caption_id"].is_unique:
        dup = captions.loc[captions["caption_id"].duplicated(), "caption_id"].iloc[0]
        raise ValueError(f"caption id {dup!r} appears more than once in the caption table; ids must be unique.")
    seeds = [
        int.from_bytes(hashlib.blake2b(f"{seed}|{config}|caption|{cid}".encode(), digest_size=8).digest(), "big") & (2**63 - 1)
        for cid in captions["caption_id"]
    ]
    return pd.DataFrame({
        "key": [f"cap_{safe_name(str(c))}" for c in captions["caption_id"]],
        "class_index": captions["class_index"].astype(int).to_numpy(), "class_name": captions["class_name"].to_numpy(),
        "index": np.arange(len(captions)), "prompt": captions["caption"].to_numpy(), "prompt_index": np.arange(len(captions)),
        "source_id": captions["source_id"].to_numpy(), "caption_id": captions["caption_id"].astype(str).to_numpy(), "seed": seeds,
    })


def parse_config(spec: str) -> tuple[str, float]:
    """``"in_captions@2"`` -> ("in_captions", 2.0)."""
    name, sep, scale = spec.partition("@")
    try:
        return name, float(scale)
    except ValueError:
        raise ValueError(f"configuration {spec!r} is not PROMPT_SET@CFG such as 'in_captions@2'.") from None


def parse_ladder_config(spec: str) -> tuple[tuple[str, float], int | None]:
    """``"classnames@8:1000"`` -> (("classnames", 8.0), 1000); without ``:N`` the count is None."""
    base, colon, count = str(spec).partition(":")
    if colon and not (count.isdigit() and int(count) > 0):
        raise ValueError(f"ladder_configs entry {spec!r} is invalid; write PROMPT_SET@CFG or PROMPT_SET@CFG:N with N images per class >= 1.")
    return parse_config(base), int(count) if colon else None


def make_jobs(
    prompt_sets: list[str],
    guidance_scales: list[float],
    images_per_class: int,
    synthetic_dir: str | Path,
    ladder_configs: list[str] = (),
    ladder_images_per_class: int = 0,
    generator_name: str = "model",
    **common,
) -> list[GenJob]:
    """One job per configuration: every prompt set x CFG scale at ``images_per_class``, and the
    ``ladder_configs`` (PROMPT_SET@CFG, or PROMPT_SET@CFG:N for N images per class of its own) the
    scaling runs train on at ``ladder_images_per_class`` (a configuration in both is generated
    once, at the larger count)."""
    wanted: dict[tuple[str, float], int] = {}
    for ps in prompt_sets:
        for g in guidance_scales:
            wanted[(ps, float(g))] = images_per_class
    for spec in ladder_configs:
        key, count = parse_ladder_config(spec)
        wanted[key] = max(wanted.get(key, 0), count or ladder_images_per_class)
    return [
        GenJob(
            prompt_set=ps, guidance_scale=g, images_per_class=n, generator_name=generator_name,
            out_dir=str(Path(synthetic_dir) / config_name(generator_name, ps, g)), **common,
        )
        for (ps, g), n in wanted.items()
    ]


def study_jobs(entries: list[dict], settings, at, models_dir: str | Path, *, resolution: int | None = None,
               resize_mode: str | None = None, shard_size: int = 1000, seed: int = 0) -> list[GenJob]:
    """Every configuration 02_generate renders: each generator entry (``families.generator_entries``) over its
    prompt sets and CFG scales, an embedded family trained on first use on the world of ``settings``
    (``WorldSettings``); images stored as the world stores them (``world.image_format``) unless
    ``resolution`` / ``resize_mode`` say otherwise. Writes ``at.generator``: the first generator, which
    07_clip renders caption images with (a local model's path kept relative to the study folder)."""
    from synkit.t2i import families

    side, mode, fit = settings.load().image_format
    jobs = []
    for i, entry in enumerate(entries):
        path, steps, height = families.resolve(entry, settings.fields(ood=False), models_dir)
        common = dict(
            generator=path, generator_name=entry["generator_name"], stages=entry["cascade"], scheduler=entry["scheduler"],
            steps=steps, height=height, width=entry["width"] or height, resolution=resolution or side,
            resize_mode=resize_mode or fit, mode=mode, dtype=entry["dtype"], batch_size=entry["batch_size"],
            shard_size=shard_size, seed=seed,
        )
        if i == 0:
            write_json({**common, "generator": stored_path(path, at.root) if Path(path).exists() else path}, at.generator)
        jobs += make_jobs(entry["prompt_sets"], entry["guidance_scales"], entry["images_per_class"], at.synthetic,
                          entry["ladder_configs"], entry["ladder_images_per_class"], prompts=str(at.prompts), **common)
    return jobs
