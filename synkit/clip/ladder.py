"""CLIP scaling: open_clip trained on real, synthetic or mixed image-caption sets, zero-shot evaluated.

- **Captions.** For the fashion world, the captions of the ``web`` split: a name for the object
  (the class name, or with seeded chance one of its WordNet lemmas or near hypernyms, as alt
  text names things loosely) followed by the attribute caption of the image
  (``FashionCaptioner``). Ordered class-balanced and seeded; a scale of n captions is the first n.
- **Setups**, counted in captions as the paper does: ``real`` (each caption with its real image),
  ``synthetic`` (with the image generated from it: 02's machinery in caption mode, one image per
  caption, seeded per caption) and ``mixed`` (each time a caption is drawn, its real or its
  synthetic image with equal chance, seeded by (seed, epoch), so the text scale stays the same).
- **Training.** ``open_clip.create_model`` by name (``synkit-fashion-clip`` is registered from
  ``synkit/data/``: a 2-layer ViT on 7x7 patches and a 2-layer text transformer), open_clip's
  tokenizer and ``ClipLoss``; a fixed number of epochs at every scale; accelerate for devices;
  checkpoints every ``checkpoint_every`` steps (weights_only loads) and resume.
- **Seeds.** Every (setup, scale) is trained with ``seeds`` seeds (initialization, caption order,
  the mixed setup's image choice); the caption prefixes are the same for every seed.
- **Control** (``ClipJob.control``, ``exact_names_captions``): real images with captions that always name the exact class,
  at the largest scale: when synthetic beats real, is the loose naming of real captions the reason?
- **Zero-shot.** Class names through templates (``FASHION_TEMPLATES``, or the 80 ImageNet ones),
  the ensemble of template embeddings per class; top-1 and cross-entropy on val, every OOD view
  and the coarse WordNet task (footwear / clothing / container).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synkit.clip.data import SETUPS, image_stats, square, to_clip_tensor, web_captions
from synkit.clip.train import ClipConfig, clip_config_from, open_clip_tokenizer, register_models, train_clip
from synkit.clip.zero_shot import FASHION_TEMPLATES, templates_for, world_tasks, zero_shot
from synkit.core import precision
from synkit.core.files import write_parquet
from synkit.core.layout import StudyFiles
from synkit.data.worlds import WorldSettings
from synkit.core.progress import tqdm
from synkit.engine import runs

CONTROL = "real-exact-names"  # the fashion world's control: real images, captions naming each class exactly


# ---------------------------------------------------------------- captions and label sets


# ---------------------------------------------------------------- data


def read_pairs(urls: str, n: int, image_size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The first ``n`` image-caption pairs of LAION-style webdataset shards (jpg/png/webp + txt;
    ``urls`` in webdataset's brace notation, or several joined by ``::``), in shard order:
    (caption table, uint8 RGB images image_size x image_size). ``clip_stream`` streams them instead."""
    from PIL import Image

    from synkit.clip.stream import expand_urls, records

    rows, images = [], []
    for key, image, text, url in records(expand_urls(urls), n, with_url=True):
        rows.append({"caption_id": key, "caption": text, "class_index": -1, "class_name": "", "source_id": f"{url}#{key}"})
        images.append(square(Image.open(io.BytesIO(image)), image_size))
    if len(rows) < n:
        raise ValueError(f"the shards {urls} hold {len(rows)} image-caption pairs, fewer than the {n} asked for.")
    return pd.DataFrame(rows), np.stack(images)


# ---------------------------------------------------------------- zero-shot


# ---------------------------------------------------------------- one run


# ---------------------------------------------------------------- the ladder


def study_captions(world, at, *, max_scale: int, split_seed: int = 0, shards: str | None = None, image_size: int = 224,
                   stream: bool = False) -> tuple[pd.DataFrame, str | None]:
    """07_clip's caption pool, written to ``at.captions`` (``StudyFiles``): the world's own captions where it has a
    pool held in memory and no ``shards`` are given (``worlds.pairs_split``: fashion's pairs, a folder world's real; with
    ``stream``, its real pairs are also written as LAION-style shards for the runs to stream), else the first
    ``max_scale`` pairs of ``shards`` (their images, read here unless streamed, to ``at.real_images``).
    Returns (captions, the real pairs' shards the runs stream, or None)."""
    from synkit.clip.stream import caption_table, write_pairs
    from synkit.core.files import write_npy
    from synkit.data.worlds import in_memory, pairs_split

    real_shards = shards
    if in_memory(world) and not shards:
        captions = web_captions(world, max_scale, split_seed)
        if stream:
            pool = np.asarray(world.split(pairs_split(world)).images)
            real_shards = write_pairs(captions, pool[captions["web_index"].to_numpy()], at.real_pairs)
    elif stream and shards:  # only the captions are read here; the runs stream the images
        captions = caption_table(shards, max_scale)
    elif not shards:
        raise ValueError(f"world {world.name!r} has no caption pool of its own (its images are too large to hold in memory): "
                         "set clip_shards to LAION-style webdataset shards (image + txt).")
    else:
        captions, real_images = read_pairs(shards, max_scale, image_size)
        write_npy(real_images, at.real_images)
    write_parquet(captions, at.captions)
    return captions, real_shards


def clip_scales(max_scale: int, min_scale: int) -> list[int]:
    """Caption counts max_scale / 2^j down to min_scale."""
    if not 1 <= min_scale <= max_scale:
        raise ValueError(f"min_scale={min_scale} and max_scale={max_scale} are invalid; they need 1 <= min_scale <= max_scale.")
    out = [max_scale]
    while out[-1] // 2 >= min_scale:
        out.append(out[-1] // 2)
    return sorted(out)


def run_ladder(captions: pd.DataFrame, real_images: np.ndarray, synthetic_images: np.ndarray, evals: dict, tasks: list[dict],
               scales: list[int], config: ClipConfig, study_dir: str | Path, setups=SETUPS, templates=FASHION_TEMPLATES,
               progress: bool = True, seeds: list[int] = (0,), workers: int | None = None,
               control: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every setup at every scale (nested caption prefixes) with every seed, zero-shot on ``tasks``
    over ``evals`` (name -> uint8 images, labels); returns and writes the metrics and runs tables of the study in ``study_dir``.
    Runs are independent: with ``workers`` > 1 (default ``runs.auto_workers()``) they train in that
    many spawned processes at once.

    ``control`` (captions in the same order, naming each class exactly) adds the control's runs to
    the same pool: real images with those captions at the largest scale, every seed, written to
    ``clip/control/`` (setup ``real-exact-names``) and not returned."""
    register_models()
    at = StudyFiles(study_dir)
    if len(real_images) != len(captions) or len(synthetic_images) != len(captions):
        raise ValueError(f"{len(captions)} captions need as many real ({len(real_images)}) and synthetic ({len(synthetic_images)}) images.")
    if max(scales) > len(captions):
        raise ValueError(f"scale {max(scales)} exceeds the {len(captions)} captions available.")
    unknown = sorted(set(setups) - set(SETUPS))
    if unknown:
        raise ValueError(f"setup {unknown[0]!r} is unknown; valid setups are {', '.join(SETUPS)}.")
    if not seeds or any(not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds={list(seeds)!r} is invalid; give one or more whole numbers >= 0.")
    rows = [{"setup": s, "n": n, "seed": seed, "label": f"{s} n={n} seed {seed}"} for seed in seeds for n in sorted(scales) for s in setups]
    if control is not None:
        if list(control["web_index"]) != list(captions["web_index"]):
            raise RuntimeError("the exact-name captions do not follow the study's caption order; rerun 07_clip from the start.")
        rows += [{"setup": CONTROL, "n": max(scales), "seed": seed, "label": f"{CONTROL} n={max(scales)} seed {seed}"} for seed in seeds]
    args = (captions, real_images, synthetic_images, evals, tasks, config, str(at.root), templates, control)
    if workers is None:  # open_clip's ImageNet templates are lambdas, which do not pickle to a worker: those run in-process
        workers = runs.auto_workers(files=any(callable(t) for t in templates))
    results = runs.run_plan(rows, lambda: ClipRuns(*args, progress=progress).run, _worker_init, _worker_run, workers, progress, "CLIP runs",
                             initargs=args, cost=lambda row: row["n"] + 600)  # + 600: the zero-shot evaluation, about 600 captions' time
    table = pd.concat([m for m, _ in results], ignore_index=True)[["setup", "scale", "seed", "eval_set", "task", "top1", "loss"]]
    run_table = pd.DataFrame([info for _, info in results])
    if control is not None:
        write_parquet(table[table["setup"] == CONTROL].reset_index(drop=True), at.control_metrics)
        write_parquet(run_table[run_table["setup"] == CONTROL].reset_index(drop=True), at.control_runs)
        table, run_table = table[table["setup"] != CONTROL].reset_index(drop=True), run_table[run_table["setup"] != CONTROL].reset_index(drop=True)
    write_parquet(table, at.clip_metrics)
    write_parquet(run_table, at.clip_runs)
    return table


class ClipRuns:
    """What every CLIP run of a ladder reads, built once per process: tokens, the image bank, eval tensors."""

    def __init__(self, captions, real_images, synthetic_images, evals, tasks, config, study_dir, templates, control=None,
                 progress: bool = False):
        import open_clip

        register_models()
        self.captions, self.tasks, self.config, self.at, self.templates = captions, tasks, config, StudyFiles(study_dir), templates
        self.control = control
        self.progress = progress
        self.tokenizer = open_clip.get_tokenizer(config.model)
        self.tokens = self.tokenizer(captions["caption"].tolist())
        self.control_tokens = None if control is None else self.tokenizer(control["caption"].tolist())
        self.bank = torch.cat([to_clip_tensor(real_images), to_clip_tensor(synthetic_images)])
        self.image_stats = image_stats(real_images)
        self.evals = {k: (to_clip_tensor(x), torch.as_tensor(y, dtype=torch.long)) for k, (x, y) in evals.items()}
        self.eval_key = {t["name"]: len(evals[t["set"]][1]) for t in tasks}

    def run(self, row: dict) -> tuple[pd.DataFrame, dict]:
        setup, n, seed = row["setup"], row["n"], row["seed"]
        N = len(self.captions)
        bank = torch.cat([self.bank[:n], self.bank[N : N + n]])
        caps, tokens, run_dir = self.captions.iloc[:n], self.tokens[:n], self.at.clip_run_dirs / setup / f"n{n:08d}-s{seed}"
        if setup == CONTROL:  # real images, their captions naming the class exactly
            caps, tokens, setup, run_dir = self.control.iloc[:n], self.control_tokens[:n], "real", self.at.control_run_dirs / "real" / run_dir.name
        metrics, info = train_clip(
            bank, tokens, setup, dataclasses.replace(self.config, seed=seed), run_dir,
            # zero-shot image features in bf16 autocast where bf16 is native, whatever the training precision: 1.9x faster on an
            # avx512_bf16 CPU (fp32 training of this small CLIP is the faster one); the logits and their softmax are float32
            lambda m, acc: zero_shot(m, self.tokenizer, self.evals, self.tasks, self.templates, accelerator=acc),
            data_key=json.dumps({"captions": caps["caption_id"].tolist()[-3:], "text": caps["caption"].tolist()[-3:],
                                 "eval": self.eval_key, "eval_precision": precision.resolve("auto"), "n": n}, sort_keys=True),
            progress=self.progress, desc=row["label"], image_stats=self.image_stats,
        )
        return metrics.assign(setup=row["setup"], scale=n, seed=seed), {"setup": row["setup"], **{k: info[k] for k in ("captions", "steps", "train_s", "pairs_per_s", "resumed_from")}, "seed": seed}


_WORKER: dict = {}


def _worker_init(*args) -> None:
    *data, threads = args
    runs.die_with_parent()
    torch.set_num_threads(threads)
    _WORKER["runs"] = ClipRuns(*data)


def _worker_run(row: dict):
    return _WORKER["runs"].run(row)


@dataclass(frozen=True, kw_only=True)
class ClipJob(WorldSettings):
    """The training part of 07_clip on the world of its ``WorldSettings``, JSON-serializable for
    ``python -m synkit.clip.ladder job.json``: captions, real and generated images already exist in the study."""

    study_dir: str
    scales: list = field(default_factory=list)
    setups: list = field(default_factory=lambda: list(SETUPS))
    eval_size: int = 0
    extra_eval: list = field(default_factory=list)
    clip_config: dict = field(default_factory=dict)
    seed: int = 0  # the study seed: the first training seed
    seeds: int = 1  # training seeds per (setup, scale)
    workers: int = 0  # processes training independent runs at once (0: runs.auto_workers, 1 under accelerate launch)
    control: bool = False  # fashion: also real images with exact class names at the largest scale (clip/control/)
    stream: bool = False  # read the pairs from shards as training goes (clip_stream): real_shards and clip/synthetic/
    real_shards: str | None = None  # the real pairs' LAION-style shards, in caption order (brace notation; stream only)
    stream_buffer: int = 2000  # the streaming shuffle buffer, in samples


def run_job(job: ClipJob, progress: bool = True) -> pd.DataFrame:
    """Train and evaluate every run of ``job`` (and its control, with ``job.control``); returns the metrics table."""
    from synkit.data.shards import read_images
    from synkit.data.worlds import in_memory, pairs_split

    at = StudyFiles(job.study_dir)
    config = clip_config_from(job.clip_config)
    world = job.load()
    if job.stream:
        return run_stream_job(job, config, world, progress)
    captions = pd.read_parquet(at.captions)
    synthetic, manifest = read_images(at.clip_synthetic, checksums=False)
    if list(manifest["caption_id"]) != list(captions["caption_id"].astype(str)):
        raise RuntimeError(f"the caption shards in {at.clip_synthetic} do not follow {at.captions}; delete the folder and rerun.")
    if "web_index" in captions and in_memory(world):
        real = np.asarray(world.split(pairs_split(world)).images)[captions["web_index"].to_numpy()]
    else:
        real = np.load(at.real_images)
    if config.image_size is None and real.shape[1] != 28:  # the model's input size follows the images (its config says 28)
        config = dataclasses.replace(config, image_size=int(real.shape[1]))
    if real.shape[1] != (config.image_size or 28) or synthetic.shape[1:] != real.shape[1:]:
        raise ValueError(f"CLIP's images must share one size: real {real.shape[1:]}, generated {synthetic.shape[1:]}, model input "
                         f"{config.image_size or 28}; set clip_image_size (other worlds) and clip_config image_size to the same size.")
    evals, tasks = world_tasks(world, job.eval_size, config.image_size or (real.shape[1] if real.ndim == 4 else None), job.extra_eval)
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under accelerate launch: one run at a time over every process
    control = exact_names_captions(job, world, len(captions)) if job.control else None
    return run_ladder(captions, real, synthetic, evals, tasks, job.scales, config, job.study_dir, job.setups, templates_for(world), progress,
                      seeds=[job.seed + i for i in range(job.seeds)], workers=1 if launched else (job.workers or None), control=control)


def sweep_cfg(job: ClipJob, common: dict, grid: list[float], n: int, progress: bool = True) -> tuple[float, pd.DataFrame]:
    """CLIP's CFG chosen as the paper chose it (Sec. 5.1: a sweep, which picked 1.5 for Stable Diffusion): for each scale
    of ``grid``, the study's first ``n`` captions rendered at that scale (``common``: 07's generator fields) and a
    synthetic CLIP run on them with each of the job's seeds (``clip/cfg_sweep/cfgG/``); the pick is the scale with the
    highest mean zero-shot val top-1 over seeds (ties: the lower loss). Returns (the pick, a table of scale, seed, top1,
    loss, picked), also written to ``clip/cfg_sweep.parquet``. Runs already done are read back (each resumes like the
    ladder's)."""
    from synkit.data.shards import read_images
    from synkit.data.worlds import in_memory, pairs_split
    from synkit.generate import plan, render

    if not grid or any(not (isinstance(g, (int, float)) and g > 0) for g in grid):
        raise ValueError(f"clip_cfg_grid={grid!r} is invalid; give guidance scales above 0 (the paper's sweep picked 1.5), or [] to use clip_guidance_scale.")
    at = StudyFiles(job.study_dir)
    captions = pd.read_parquet(at.captions)
    if not 1 <= n <= len(captions):
        raise ValueError(f"the CFG sweep's {n} captions are invalid; give 1 to {len(captions)} (the study's captions).")
    world, config = job.load(), clip_config_from(job.clip_config)
    if "web_index" not in captions or not in_memory(world):
        raise ValueError("the CLIP CFG sweep needs the world's own pairs held in memory (fashion, a small-image folder world); "
                         "set clip_cfg_grid to [] and clip_guidance_scale by hand.")
    subset = captions.iloc[:n].reset_index(drop=True)
    real = np.asarray(world.split(pairs_split(world)).images)[subset["web_index"].to_numpy()]
    evals, tasks = world_tasks(world, job.eval_size, config.image_size or (real.shape[1] if real.ndim == 4 else None), job.extra_eval)
    rows = []
    for g in grid:
        folder = at.clip_cfg_sweep / f"cfg{g:g}"
        prompts = write_parquet(subset, folder / "captions.parquet")
        render.generate_config(plan.GenJob(prompts=str(prompts), captions=str(prompts), prompt_set="captions", guidance_scale=float(g),
                                           images_per_class=n, out_dir=str(folder / "images"), **common))
        synthetic, _ = read_images(folder / "images", checksums=False)
        metrics = run_ladder(subset, real, synthetic, evals, tasks, [n], config, folder, ["synthetic"], templates_for(world), progress,
                             seeds=[job.seed + i for i in range(job.seeds)])
        val = metrics[metrics["eval_set"] == "val"]  # the world's classes on val
        rows += [{"guidance_scale": float(g), "captions": n, "seed": int(r.seed), "top1": float(r.top1), "loss": float(r.loss)}
                 for r in val.itertuples()]
    table = pd.DataFrame(rows)
    means = table.groupby("guidance_scale")[["top1", "loss"]].mean().reset_index()
    best = means.sort_values(["top1", "loss"], ascending=[False, True]).iloc[0]
    table["picked"] = table["guidance_scale"] == best["guidance_scale"]
    write_parquet(table, at.clip_cfg_table)
    return float(best["guidance_scale"]), table


def synthetic_shards(out_dir: str | Path) -> str:
    """07's caption shards (``clip/synthetic/shard-*.tar``, caption order) in brace notation."""
    shards = sorted(Path(out_dir).glob("shard-*.tar"))
    if not shards:
        raise FileNotFoundError(f"{out_dir} holds no caption shards; run 07_clip's generation cell first.")
    width = len(shards[0].stem.split("-")[1])
    return str(Path(out_dir) / f"shard-{{{0:0{width}d}..{len(shards) - 1:0{width}d}}}.tar")


def run_stream_job(job: ClipJob, config: ClipConfig, world, progress: bool = True) -> pd.DataFrame:
    """``run_job`` with every run streaming its pairs from shards (``clip_stream``): the real pairs
    from ``job.real_shards``, the synthetic images from 07's caption shards; runs one after another
    in this process (or over every process of an accelerate launch). The control needs captions in
    memory and is not run here."""
    from PIL import Image

    from synkit.clip.stream import StreamSpec, expand_urls, records

    at = StudyFiles(job.study_dir)
    if job.control:
        raise ValueError("the exact-names control runs on captions held in memory; set clip_control to false with clip_stream.")
    if not job.real_shards:
        raise ValueError("clip_stream needs the real pairs as shards: set clip_shards (other worlds), or let 07 write them (fashion).")
    synthetic = synthetic_shards(at.clip_synthetic) if {"synthetic", "mixed"} & set(job.setups) else None
    _, first, _ = next(records(expand_urls(job.real_shards), 1))
    first = Image.open(io.BytesIO(first))
    gray = first.mode == "L" and config.image_size is None
    if gray and first.size[0] != 28:  # grayscale pairs as stored (a folder world's size): the model's input follows them
        config = dataclasses.replace(config, image_size=first.size[0])
    stats = image_stats(np.zeros((1, 1, 1) if gray else (1, 1, 1, 3), np.uint8))
    size = None if gray else (config.image_size or 224)
    evals, tasks = world_tasks(world, job.eval_size, size, job.extra_eval)
    tokenizer = open_clip_tokenizer(config.model)
    eval_tensors = {k: (to_clip_tensor(x), torch.as_tensor(y, dtype=torch.long)) for k, (x, y) in evals.items()}
    eval_key = {t["name"]: len(evals[t["set"]][1]) for t in tasks}
    templates = templates_for(world)
    rows = [{"setup": s, "n": n, "seed": job.seed + i} for i in range(job.seeds) for n in sorted(job.scales) for s in job.setups]
    tables, infos = [], []
    for row in tqdm(rows, desc="CLIP runs (streaming)", unit="run", disable=not progress):
        spec = StreamSpec(job.real_shards, synthetic, row["n"], size, job.stream_buffer)
        metrics, info = train_clip(
            None, None, row["setup"], dataclasses.replace(config, seed=row["seed"]), at.clip_run_dirs / row["setup"] / f"n{row['n']:08d}-s{row['seed']}",
            lambda m, acc: zero_shot(m, tokenizer, eval_tensors, tasks, templates, accelerator=acc),
            data_key=json.dumps({"eval": eval_key, "eval_precision": precision.resolve("auto")}, sort_keys=True), progress=progress,
            desc=f"{row['setup']} n={row['n']} seed {row['seed']}", image_stats=stats, stream=spec)
        tables.append(metrics.assign(setup=row["setup"], scale=row["n"], seed=row["seed"]))
        infos.append({"setup": row["setup"], **{k: info[k] for k in ("captions", "steps", "train_s", "pairs_per_s", "resumed_from")}, "seed": row["seed"]})
    table = pd.concat(tables, ignore_index=True)[["setup", "scale", "seed", "eval_set", "task", "top1", "loss"]]
    if int(os.environ.get("RANK", "0")) == 0:
        write_parquet(table, at.clip_metrics)
        write_parquet(pd.DataFrame(infos), at.clip_runs)
    return table


def exact_names_captions(job: ClipJob, world, n: int) -> pd.DataFrame:
    """The captions of the control for "synthetic beats real" in the fashion world: the study's
    first ``n`` web images in the study's caption order, each caption naming the exact class (no
    loose lemma or hypernym). ``run_job`` trains real images with them at the largest scale."""
    if not world.web_captions:
        raise ValueError(f"the exact-names control needs a world with captions of its own (fashion); world {job.world!r} has none.")
    return web_captions(world, n, job.split_seed, exact_names=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m synkit.clip.ladder job.json`` (also under ``accelerate launch``)."""
    return runs.job_main("synkit.clip.ladder", ClipJob, run_job, argv)


if __name__ == "__main__":
    raise SystemExit(main())
