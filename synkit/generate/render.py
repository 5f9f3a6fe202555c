"""Generation: any diffusers text-to-image model renders a prompt set at a CFG scale into
webdataset shards with per-image provenance, deterministically and resumably.

A *configuration* is (generator, prompt set, CFG scale); it produces ``images_per_class``
images for every class into ``<synthetic_dir>/<config>/``:

- ``shard-00000.tar`` ... : webdataset tar shards; each sample has ``png`` (the image),
  ``txt`` (the prompt), ``cls`` (class index) and ``json`` (model, scheduler, steps, CFG, seed,
  prompt set, prompt, prompt index, source image id, class name, index);
- ``manifest.parquet``: one row per image (key, shard, class, index, prompt, seed, ...) with
  each shard's size and sha256, written once every shard is complete;
- ``config.json``: the generation parameters; a rerun with other parameters starts over.

**Order.** Images are ordered index-major: image ``i`` of every class comes before image
``i + 1`` of any class, so every prefix of the configuration is class-balanced and the
training stage's nested subsets are prefixes.

**Prompts.** Each class's prompts are shuffled once with a seed derived from (study seed,
prompt set, class); image ``i`` of the class gets prompt ``i mod n`` of that order, so the
first ``n`` images use distinct prompts and every prompt is used equally often (to within
one). CFG scales of one prompt set share this assignment, so a CFG sweep is paired.

**Seeds.** Each image's noise seed is a hash of (study seed, configuration, class, index), so
an image is the same whether made in one run, by N processes or after a resume. Shards are
the unit of work (shard ``k`` goes to process ``k mod N``) and batches never cross a shard,
so a shard's bytes do not depend on who made it (given the same hardware, library versions
and threads per process: floating-point sums depend on the thread count).

**Integrity.** A shard is written under a temporary name (``files.atomic``) and renamed when complete; a rerun
skips complete shards (and redoes any whose checksum disagrees with the manifest). Readers
check every shard against the manifest and name a truncated or corrupt one.

Run in-process (``generate_config``) or on many processes/GPUs/nodes::

    accelerate launch --multi_gpu --num_processes 8 -m synkit.generate.render job.json

(On a CPU-only machine the same ``--multi_gpu`` launcher starts N CPU processes in a gloo
group; accelerate's ``--cpu`` launcher needs MPI for more than one process.)
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from synkit.core.progress import tqdm

from synkit.core.files import atomic, write_json, write_parquet
from synkit.core.layout import INFO, MANIFEST, SHARD_CONFIG, SIZES
from synkit.engine import runs
from synkit.t2i.text import encode_texts, select_rows, text_inputs, traits
from synkit.data.shards import ShardError, sha256, shard_path
from synkit.generate.plan import GenJob, generator_id, plan_captions, plan_images

RESIZE_MODES = ("resize", "center_crop")


# ---------------------------------------------------------------- the model


def load_pipeline(generator: str, dtype: str = "auto", device: str | None = None, scheduler: str | None = None, **components):
    """A diffusers text-to-image pipeline from a hub id or local folder, on ``device``.

    Weights are half precision on CUDA for ``auto``; on CPU they stay float32 and ``bfloat16``
    means autocast (see ``autocast``), which is faster on CPUs with avx512_bf16 or AMX (``auto`` there;
    see ``synkit.core.precision``).
    """
    import diffusers
    import torch

    from synkit.core.pretrained import load_pretrained

    from synkit.core import precision

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = precision.resolve_dtype(dtype, device)
    weights = torch.float32
    if device.startswith("cuda") and dtype in ("auto", "float16", "bfloat16"):
        weights = torch.bfloat16 if dtype == "bfloat16" else torch.float16

    def load(path: str):
        try:
            return diffusers.AutoPipelineForText2Image.from_pretrained(path, dtype=weights, **components)
        except ValueError:  # a pipeline AutoPipeline does not map (cascade stages, custom pipelines)
            return diffusers.DiffusionPipeline.from_pretrained(path, dtype=weights, **components)

    own = _own_components(generator)
    with _quiet_if(own):  # synkit's own models: MiniLM in place of T5 / CLIP draws type warnings that do not apply
        pipe = load_pretrained(load, generator, "the text-to-image generator", "generator")
    if scheduler:
        cls = getattr(diffusers, scheduler, None)
        if cls is None or not hasattr(cls, "from_config"):
            raise ValueError(f"scheduler={scheduler!r} is not a diffusers scheduler class (such as DDIMScheduler).")
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


# where the embedded models' components lived when saved before synkit's packages (their cache keys are unchanged)
MOVED_COMPONENTS = {"synkit.minilm": "synkit.t2i.minilm", "synkit.uvit": "synkit.t2i.uvit"}


def _own_components(generator: str) -> bool:
    """Import the synkit modules a local pipeline's ``model_index.json`` names (diffusers loads a component
    of another module only when it is already imported, see ``synkit.t2i.minilm``); whether the folder is one
    of synkit's embedded models."""
    import importlib

    index = Path(generator) / "model_index.json"
    if not index.is_file():
        return False
    for value in json.loads(index.read_text()).values():
        if isinstance(value, list) and value and isinstance(value[0], str) and value[0].startswith("synkit."):
            module = importlib.import_module(MOVED_COMPONENTS.get(value[0], value[0]))
            sys.modules.setdefault(value[0], module)  # a model saved before the components moved loads as it was saved
    return (Path(generator).parent / "t2i.json").is_file()


def _quiet_if(quiet: bool):
    import contextlib

    from synkit.t2i.text import quiet as quieted

    return quieted() if quiet else contextlib.nullcontext()


def autocast(pipe, dtype: str):
    import contextlib

    import torch

    from synkit.core import precision

    if pipe.device.type == "cpu" and precision.resolve_dtype(dtype, "cpu") == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Pipeline ``np`` output (N, H, W, C) in [0, 1] to uint8."""
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def finish(image: np.ndarray, resolution: int, resize_mode: str, mode: str) -> Image.Image:
    """Stored form of one generated image: resized or center-cropped to ``resolution``."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    im = Image.fromarray(image).convert(mode)
    if resize_mode == "center_crop":
        w, h = im.size
        left, top = (w - resolution) // 2, (h - resolution) // 2
        if left < 0 or top < 0:
            raise ValueError(f"resolution={resolution} is larger than the generated {w}x{h} images; center_crop cannot grow them.")
        return im.crop((left, top, left + resolution, top + resolution))
    if im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return im


MAX_CACHED_PROMPTS = 20_000  # distinct prompts whose embeddings are kept for a whole configuration


def render(pipe, job: GenJob, prompts: list[str], seeds: list[int], stages=(), embeds=None) -> list[Image.Image]:
    """One batch: the pipeline (and any cascade stages) with one seeded generator per image;
    ``embeds``: the batch's precomputed text arguments (``text_inputs``), if any."""
    import torch

    gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
    if traits(pipe).per_batch_seed:
        gens = gens[0]
    size = {k: v for k, v in (("height", job.height), ("width", job.width)) if v}
    with torch.inference_mode(), autocast(pipe, job.dtype):
        if not stages:
            text = {"prompt": prompts} if embeds is None else embeds
            out = pipe(
                **text, guidance_scale=job.guidance_scale, num_inference_steps=job.steps,
                generator=gens, output_type="np", **size, **job.extra,
            ).images
        else:  # DeepFloyd IF: stage I in pixel space, then super-resolution stages on its output
            embeds, negative = pipe.encode_prompt(prompts, do_classifier_free_guidance=job.guidance_scale > 1)
            images = pipe(
                prompt_embeds=embeds, negative_prompt_embeds=negative, guidance_scale=job.guidance_scale,
                num_inference_steps=job.steps, generator=gens, output_type="pt", **job.extra,
            ).images
            for i, stage in enumerate(stages):
                last = i == len(stages) - 1
                images = stage(
                    image=images, prompt_embeds=embeds, negative_prompt_embeds=negative,
                    guidance_scale=job.guidance_scale, generator=gens, output_type="np" if last else "pt",
                ).images
            out = images
    out = np.asarray(out, dtype=np.float32)
    return [finish(img, job.resolution, job.resize_mode, job.mode) for img in to_uint8(out)]


# ---------------------------------------------------------------- shards


def write_shard(path: Path, rows: pd.DataFrame, images: list[Image.Image], job: GenJob, seed_scope: str = "image") -> None:
    """Write one complete shard: a temporary file, fsync, then a rename."""
    try:
        with atomic(path) as tmp:  # disk full, quota, I/O error: the partial file goes, no complete-looking shard remains
            _write_tar(tmp, rows, images, job, seed_scope)
    except OSError as err:
        raise OSError(err.errno, f"writing shard {path} failed ({err.strerror or err}); free space and rerun: complete shards are kept") from err


def _write_tar(tmp: Path, rows: pd.DataFrame, images: list[Image.Image], job: GenJob, seed_scope: str) -> None:
    import webdataset as wds

    with open(tmp, "wb") as f:
        writer = wds.TarWriter(f, mtime=0.0)
        for row, im in zip(rows.itertuples(index=False), images):
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            meta = {
                "model": job.generator_name or job.generator, "generator": generator_id(job.generator), "scheduler": job.scheduler,
                "steps": job.steps, "guidance_scale": job.guidance_scale, "seed": int(row.seed),
                "prompt_set": job.prompt_set, "prompt": row.prompt, "prompt_index": int(row.prompt_index),
                "source_id": row.source_id, "class_index": int(row.class_index), "class_name": row.class_name,
                "index": int(row.index), "config": job.name, "seed_scope": seed_scope,
            }
            if hasattr(row, "caption_id"):
                meta["caption_id"] = row.caption_id
            writer.write({"__key__": row.key, "png": buf.getvalue(), "txt": row.prompt, "cls": int(row.class_index), "json": meta})
        writer.close()
        f.flush()
        os.fsync(f.fileno())


def _prepare(job: GenJob, n_classes: int, main: bool) -> None:
    """Start over when the folder holds another configuration's images; when only the number
    of images changed, keep the shards that are complete in both plans (the order is
    index-major, so they hold the same images); record this configuration."""
    out = Path(job.out_dir)
    cfg_file = out / SHARD_CONFIG
    if not main:
        return
    out.mkdir(parents=True, exist_ok=True)
    record = {**job.key_fields(), "images_per_class": job.images_per_class}
    if cfg_file.exists():
        old = json.loads(cfg_file.read_text())
        old_count = old.pop("images_per_class", 0)
        same = old == json.loads(json.dumps(job.key_fields()))
        if not same:
            print(f"{job.name}: parameters changed since its images were made; generating it again", file=sys.stderr)
        if not same or old_count != job.images_per_class:
            keep = min(old_count, job.images_per_class) * n_classes // job.shard_size if same else 0
            (out / MANIFEST).unlink(missing_ok=True)
            for p in out.glob("shard-*.tar"):
                if int(p.name[6:11]) >= keep:
                    p.unlink()
    write_json(record, cfg_file)


def _drop_bad_shards(out: Path) -> None:
    """Delete complete-looking shards whose checksum disagrees with an existing manifest, so they are made again."""
    man = out / MANIFEST
    if not man.exists():
        return
    shards = pd.read_parquet(man, columns=["shard", "shard_sha256"]).drop_duplicates("shard")
    for shard, digest in shards.itertuples(index=False):
        p = out / shard
        if p.exists() and sha256(p) != digest:
            print(f"{p} is corrupt; generating it again", file=sys.stderr)
            p.unlink()


def _plan(job: GenJob) -> tuple[pd.DataFrame, int]:
    """The configuration's image table and its number of classes (1 in caption mode)."""
    if job.images_per_class < 1 or job.shard_size < 1 or job.batch_size < 1:
        raise ValueError(
            f"images_per_class={job.images_per_class}, shard_size={job.shard_size} and batch_size={job.batch_size} must all be at least 1."
        )
    if job.resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode={job.resize_mode!r} is invalid; valid modes are {', '.join(RESIZE_MODES)}.")
    if job.captions:  # images_per_class counts captions here; shards stay prefixes of the table
        return plan_captions(pd.read_parquet(job.captions).head(job.images_per_class), job.seed, job.name), 1
    plan = plan_images(pd.read_parquet(job.prompts), job.prompt_set, job.images_per_class, job.seed, job.name)
    return plan, plan["class_index"].nunique()


_PROMPT_TABLES_MAX = 4  # prompt sets kept per pipeline at once (the 80-template set: 800 prompts, about 40 MB)


def plan_size(job: GenJob) -> int:
    """How many images the configuration of ``job`` holds when complete."""
    return len(_plan(job)[0])


class _Renderer:
    """Renders and writes shards of configurations with one loaded pipeline per generator. Each
    prompt set's distinct prompts are encoded once for every configuration that uses it (every CFG
    scale, every image count), in a fixed order (sorted), so an image does not depend on which
    configuration, process or shard encoded its prompt; caption mode encodes its plan's captions."""

    def __init__(self, pipe=None):
        self.pipes = {} if pipe is None else {None: pipe}
        self.embeds = (None, None)  # (configuration, (table, position)) of the last configuration

    def _pipeline(self, job: GenJob):
        key = (job.generator, job.dtype, job.scheduler, tuple(job.stages))
        if None in self.pipes:  # a pipeline handed in by the caller serves every job
            pipe = self.pipes[None]
        elif key in self.pipes:
            pipe = self.pipes[key]
        else:
            self.pipes.clear()
            pipe = self.pipes[key] = load_pipeline(job.generator, job.dtype, scheduler=job.scheduler)
        # later cascade stages reuse stage I's prompt embeddings: no text encoder of their own; loaded once
        if ("stages", key) not in self.pipes:
            self.pipes[("stages", key)] = [load_pipeline(s, job.dtype, text_encoder=None) for s in job.stages]
        return pipe, self.pipes[("stages", key)]

    def _table(self, job: GenJob, plan: pd.DataFrame, pipe):
        if self.embeds[0] != (job.name, job.out_dir):
            # kept on the pipeline object: they live and die with the model that encoded them
            tables = pipe.__dict__.setdefault("_synkit_prompt_tables", {})
            if job.captions:  # one image per caption: the plan's captions, in plan order
                shared, table = None, None
                unique = list(dict.fromkeys(plan["prompt"]))
            else:  # the whole prompt set, shared by its configurations: read and encoded once
                stat = os.stat(job.prompts)
                shared = (str(job.prompts), stat.st_mtime_ns, stat.st_size, job.prompt_set, job.dtype)
                table = tables.get(shared)
                if table is None:
                    prompts = pd.read_parquet(job.prompts, columns=["prompt_set", "prompt"])
                    unique = sorted(set(prompts.loc[prompts["prompt_set"] == job.prompt_set, "prompt"]))
            if table is None and len(unique) <= MAX_CACHED_PROMPTS:  # caption mode at web scale would not fit: encoded per shard then
                positive, negative = encode_texts(pipe, unique)  # fixed batches of 256: the same numbers for every job
                table = (positive, negative, {p: i for i, p in enumerate(unique)})
                if shared:
                    while len(tables) >= _PROMPT_TABLES_MAX:
                        tables.pop(next(iter(tables)))
                    tables[shared] = table
            self.embeds = ((job.name, job.out_dir), table)
        return self.embeds[1]

    def shard(self, job: GenJob, plan: pd.DataFrame, k: int, bar=None) -> int:
        """Render shard ``k`` of ``job`` and write it atomically; returns its number of images."""
        import torch
        pipe, stages = self._pipeline(job)
        rows = plan.iloc[k * job.shard_size : (k + 1) * job.shard_size]
        precompute = traits(pipe).encode is not None and not stages
        table = None
        if precompute:
            cached = self._table(job, plan, pipe)
            if cached is not None:
                table = select_rows(cached[0], cached[1], torch.tensor([cached[2][p] for p in rows["prompt"]]))
            else:
                table = text_inputs(pipe, rows["prompt"].tolist(), job.batch_size)
        images: list[Image.Image] = []
        for b in range(0, len(rows), job.batch_size):
            batch = rows.iloc[b : b + job.batch_size]
            embeds = {k: v[b : b + job.batch_size] for k, v in table.items()} if precompute else None
            images += render(pipe, job, batch["prompt"].tolist(), batch["seed"].tolist(), stages, embeds)
            if bar is not None:
                bar.update(len(batch))
        write_shard(shard_path(Path(job.out_dir), k), rows, images, job, "batch" if traits(pipe).per_batch_seed else "image")
        return len(rows)


def with_pipelines(jobs: list[GenJob]):
    """(job, pipeline) for each job in order, each generator loaded once for its run of consecutive jobs
    (the pipeline also keeps the prompt sets it encoded, see ``_Renderer``)."""
    loaded, pipe = None, None
    for job in jobs:
        key = (job.generator, job.dtype, job.scheduler)
        if key != loaded:
            pipe = None  # free the previous model first
            pipe, loaded = load_pipeline(job.generator, job.dtype, scheduler=job.scheduler), key
        yield job, pipe


def generate_config(job: GenJob, rank: int = 0, world_size: int = 1, pipe=None, barrier=None, progress: bool = True) -> dict:
    """Generate this process's share of the configuration's shards; the main process then
    writes the manifest. Returns counts and throughput of this process."""
    out = Path(job.out_dir)
    plan, n_classes = _plan(job)
    _prepare(job, n_classes, rank == 0)
    if barrier:
        barrier()
    n_shards = -(-len(plan) // job.shard_size)
    if rank == 0:
        _drop_bad_shards(out)
    if barrier:
        barrier()
    mine = [k for k in range(n_shards) if k % world_size == rank and not shard_path(out, k).exists()]
    todo = sum(min(job.shard_size, len(plan) - k * job.shard_size) for k in mine)
    made, t0 = 0, time.perf_counter()
    if mine:
        renderer = _Renderer(pipe)
        bar = tqdm(total=todo, desc=job.name if world_size == 1 else f"{job.name} [{rank}]", unit="img", disable=not progress, position=rank)
        for k in mine:
            made += renderer.shard(job, plan, k, bar)
        bar.close()
    seconds = time.perf_counter() - t0
    if barrier:
        barrier()
    if rank == 0:
        write_manifest(job, plan, n_shards)
    return {"config": job.name, "images": len(plan), "made": made, "seconds": seconds, "images_per_s": made / seconds if made else None}


def write_manifest(job: GenJob, plan: pd.DataFrame, n_shards: int) -> Path:
    out = Path(job.out_dir)
    missing = [shard_path(out, k).name for k in range(n_shards) if not shard_path(out, k).exists()]
    if missing:
        raise ShardError(f"{job.name}: shards {', '.join(missing[:5])} are missing after generation; rerun to make them.")
    shard_of = np.arange(len(plan)) // job.shard_size
    digests = {k: (sha256(shard_path(out, k)), shard_path(out, k).stat().st_size) for k in range(n_shards)}
    manifest = plan.assign(
        shard=[shard_path(out, k).name for k in shard_of],
        shard_sha256=[digests[k][0] for k in shard_of],
        shard_bytes=[digests[k][1] for k in shard_of],
        config=job.name, prompt_set=job.prompt_set, guidance_scale=float(job.guidance_scale),
        generator=job.generator_name or job.generator, steps=job.steps,
    )
    for stray in out.glob(".shard-*.tar.*.tmp"):  # left by a process killed mid-shard
        stray.unlink()
    # sample counts beside the shards, as the readers look for them: open_clip's trainer (sizes.json) and timm's
    # wds reader (_info.json, split "train"), so neither needs to be told the number of samples
    counts = pd.Series(shard_of).value_counts().sort_index()
    names = [shard_path(out, int(k)).name for k in counts.index]
    write_json(dict(zip(names, (int(c) for c in counts))), out / SIZES)
    write_json({"name": job.name, "splits": {"train": {"name": "train", "num_samples": int(len(plan)), "filenames": names,
                                                        "shard_lengths": [int(c) for c in counts]}}}, out / INFO)
    return write_parquet(manifest, out / MANIFEST)


# ---------------------------------------------------------------- reading


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """``python -m synkit.generate.render JOB.json [JOB.json ...]``, also under ``accelerate launch``."""
    paths = runs.job_files("synkit.generate.render", argv, many=True)
    if paths is None:
        return 2
    import torch
    from accelerate import PartialState

    # On machines without CUDA, processes started by `accelerate launch` form a gloo (CPU) group.
    state = PartialState(cpu=not torch.cuda.is_available())
    pipe, loaded = None, None
    for path in paths:
        job = GenJob(**json.loads(path.read_text()))
        if loaded != (job.generator, job.dtype, job.scheduler):
            pipe = load_pipeline(job.generator, job.dtype, device=str(state.device), scheduler=job.scheduler)
            loaded = (job.generator, job.dtype, job.scheduler)
        stats = generate_config(job, state.process_index, state.num_processes, pipe=pipe, barrier=state.wait_for_everyone)
        if state.is_main_process:
            print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
