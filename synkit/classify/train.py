"""Supervised training on nested subsets of real, synthetic or mixed data, as the paper scales it.

- **Sources.** ``real`` (the world's ``real`` pool, D_I images), a synthetic configuration
  (``PROMPT_SET@CFG`` or its folder name), or a mix ``PROMPT_SET@CFG+real:F`` (a fraction F of
  each training set is real).
- **Nested subsets.** A source's images are put in one seeded, class-balanced order (index-major:
  the i-th image of every class before the (i+1)-th of any); the training set of size n is the
  first n of that order, so the 1k set is inside the 2k set. Generated configurations are
  already written in that order (02_generate).
- **Schedule.** Optimizer steps grow linearly in log data size, from ``steps_min`` at the
  ladder's smallest size to ``steps_max`` at its largest, as the paper schedules iterations.
- **Devices.** ``accelerate`` places the model and data and runs the same loop on N GPUs or
  nodes (``accelerate launch -m synkit.classify.train job.json``); it autocasts to bf16 where bf16 is
  native (GPUs, CPUs with avx512_bf16 or AMX: about 1.5-2x faster) and trains in float32
  where PyTorch would emulate it (``synkit.core.precision``).
- **Checkpoints.** Every ``checkpoint_every`` steps the model, optimizer and scheduler are saved
  (``checkpoint.pt`` via a temporary file and a rename, loaded with ``weights_only=True``).
  Data order and augmentation are functions of (seed, step), so a resumed run sees the same
  batches as an uninterrupted one. A finished run writes ``metrics.parquet`` and ``run.json``;
  a rerun with the same parameters reuses it.
- **Evaluation.** Cross-entropy loss and top-1 on val and every OOD view, per class and overall
  (class_index -1), as a long-form table.
- **Seeds.** Every run is repeated with ``seeds`` training seeds (``seed``, ``seed + 1``, ...): each
  changes the initialization, the batch order and the augmentation. The nested subsets are the same
  for every seed (ordered by ``split_seed``), so the spread between seeds is the training noise
  at a fixed training set; the fits pool every seed's point (``synkit.analysis.scaling``).
- **Capacity runs.** ``capacity_source`` is also trained with a deliberately small model
  (``capacity_config``: TrainConfig fields such as ``model_kwargs``) on the same ladder, so a
  bend of the power law from a lack of capacity can be seen beside the default model (Sec. 4.4).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from synkit.core.progress import tqdm

from synkit.core import precision

from synkit.engine import runs
from synkit.core.files import atomic, write_parquet
from synkit.data.worlds import safe_name
from synkit.data.worlds.folder import fit_images



@dataclass(frozen=True)
class TrainConfig:
    """How every run of a ladder trains (all fields are part of each run's cache key)."""

    model: str = "resnet18"  # any timm model name (see default_model for each world's default)
    model_kwargs: dict = field(default_factory=dict)  # passed to timm.create_model (e.g. layers, channels)
    batch_size: int = 128  # per process
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.1  # fraction of steps
    steps_min: int = 100  # at the ladder's smallest size
    steps_max: int = 400  # at its largest
    augment: bool = True  # random horizontal flips and shifts of up to 2 pixels
    mixed_precision: str = "auto"  # bf16 autocast where bf16 is native (GPU, avx512_bf16, AMX), else float32 (synkit.core.precision)
    channels_last: bool = True
    seed: int = 0
    checkpoint_every: int = 50
    eval_batch_size: int = 1024
    workers: int = 4  # DataLoader workers for file-backed worlds (decoding and timm transforms)

    def __post_init__(self):
        # the key holds the precision as run: "auto" on a bf16 machine keys as "bf16", as before
        object.__setattr__(self, "mixed_precision", precision.resolve(self.mixed_precision))
        for key in ("batch_size", "steps_min", "steps_max", "checkpoint_every", "eval_batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"train_config {key}={value!r} is invalid; it must be a whole number >= 1.")
        if self.steps_max < self.steps_min:
            raise ValueError(f"train_config steps_max={self.steps_max} is below steps_min={self.steps_min}; it must be >= steps_min.")
        if not self.lr > 0:
            raise ValueError(f"train_config lr={self.lr!r} is invalid; it must be > 0.")


# The fashion default: a ResNet-18 cut to one block per stage and 32-256 channels (1.2M
# parameters), ~5k images/s of training here; its val loss still falls steadily from 625 to 20k
# images, the paper's "sufficiently large model" condition at this scale. ImageNet: the paper's ViT-B.
DEFAULT_MODELS = {
    "fashion": ("resnet18", {"layers": [1, 1, 1, 1], "channels": [32, 64, 128, 256], "stem_width": 32}),
    # a folder world's own images are usually small (held in memory up to 64 px): the same small ResNet, its input
    # channels from the images; for large images set model (e.g. vit_base_patch16_224) in train_config
    "folder": ("resnet18", {"layers": [1, 1, 1, 1], "channels": [32, 64, 128, 256], "stem_width": 32}),
    "imagenet": ("vit_base_patch16_224", {}),
}


def config_from(values: dict, world: str = "fashion") -> TrainConfig:
    """A TrainConfig from a parameters dict (the world's default model unless ``model`` is given),
    naming an unknown key."""
    fields = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"train_config key {unknown[0]!r} is unknown; valid keys are {', '.join(sorted(fields))}.")
    if "model" not in values:
        model, kwargs = DEFAULT_MODELS.get(world, DEFAULT_MODELS["imagenet"])
        values = {"model": model, "model_kwargs": kwargs, **values}
    return TrainConfig(**values)


# ---------------------------------------------------------------- ladder and schedule


LADDER_DOUBLINGS = 5  # a derived ladder: D_I / 32 .. D_I, six sizes over 1.5 decades (the paper fits 0.125M-4M, 32x)


def ladder_sizes(d_i: int, min_size: int = 0, max_factor: float = 2.0, per_doubling: int = 1) -> list[int]:
    """Log-spaced sizes D_I * 2^(j / per_doubling) from ``min_size`` (0: D_I / 2^LADDER_DOUBLINGS, so
    the ladder follows the world's D_I) up to ``max_factor * D_I``; D_I itself is always one of them."""
    if min_size < 0 or min_size > d_i:
        raise ValueError(f"min_size={min_size} is invalid; it must be between 1 and D_I={d_i} (or 0: D_I / {2 ** LADDER_DOUBLINGS}).")
    if max_factor < 1:
        raise ValueError(f"max_factor={max_factor} is invalid; it must be >= 1 (the synthetic ladder reaches at least D_I).")
    if not min_size:
        min_size = max(1, int(round(d_i / 2**LADDER_DOUBLINGS)))
    lo = math.floor(per_doubling * math.log2(min_size / d_i) + 1e-9)
    hi = math.floor(per_doubling * math.log2(max_factor) + 1e-9)
    sizes = sorted({int(round(d_i * 2 ** (j / per_doubling))) for j in range(lo, hi + 1)})
    return [s for s in sizes if s >= min_size or s == sizes[-1]]


def schedule_steps(size: int, d_min: int, d_max: int, steps_min: int, steps_max: int) -> int:
    """Optimizer steps for a training set of ``size`` images: linear in log size between
    (d_min, steps_min) and (d_max, steps_max)."""
    if d_max <= d_min:
        return steps_max
    t = (math.log(size) - math.log(d_min)) / (math.log(d_max) - math.log(d_min))
    return int(round(steps_min + (steps_max - steps_min) * min(max(t, 0.0), 1.0)))


def balanced_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation in which every prefix is class-balanced (index-major)."""
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rank[rng.permutation(members)] = np.arange(len(members))
    return np.lexsort((labels, rank))


# ---------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """What a training set is drawn from: ``real``, a synthetic configuration, or a mix."""

    name: str  # as written in the results ("real", "embedded-in_captions-cfg2", "...+real:0.5")
    config: str | None = None  # synthetic configuration folder name
    real_fraction: float = 1.0


def parse_source(spec: str, configs: pd.DataFrame) -> Source:
    """``real``, ``PROMPT_SET@CFG`` / a configuration name, or either of them ``+real:F``."""
    from synkit.generate.plan import parse_config

    if spec == "real":
        return Source("real")
    base, plus, frac = spec.partition("+real:")
    if plus:
        try:
            fraction = float(frac)
        except ValueError:
            fraction = -1.0
        if not 0 < fraction < 1:
            raise ValueError(f"source {spec!r} has real fraction {frac!r}; it must be a number strictly between 0 and 1.")
    else:
        fraction = 0.0
    if base in set(configs["config"]):
        config = base
    else:
        prompt_set, scale = parse_config(base) if "@" in base else (base, float("nan"))
        hit = configs[(configs["prompt_set"] == prompt_set) & (configs["guidance_scale"] == scale)]
        if hit.empty:
            valid = ", ".join(["real", *sorted(configs["config"])])
            raise ValueError(f"source {spec!r} names no generated configuration; valid sources are {valid} (or PROMPT_SET@CFG, +real:F).")
        if len(hit) > 1:
            raise ValueError(f"source {spec!r} matches configurations of several generators ({', '.join(hit['config'])}); "
                             f"name one of them instead.")
        config = hit["config"].iloc[0]
    return Source(f"{config}+real:{fraction:g}" if plus else config, config, fraction)


def take(images: np.ndarray, labels: np.ndarray, order: np.ndarray, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    if n > len(order):
        raise ValueError(f"{what} has {len(order)} images, fewer than the {n} the ladder asks for; generate more or lower the sizes.")
    idx = order[:n]
    return images[idx], labels[idx]


def subset(source: Source, size: int, real: tuple[np.ndarray, np.ndarray], synthetic: tuple[np.ndarray, np.ndarray] | None, seed):
    """The nested training set of ``size`` images of ``source`` (uint8 images, labels): the first
    images of a class-balanced order of each pool drawn with ``seed`` (an int or a list of ints), so
    one seed's sizes are nested and every seed draws its own subsets (the replicates vary the data)."""
    real_images, real_labels = real
    n_real = size if source.config is None else int(round(size * source.real_fraction))
    parts = []
    if n_real:
        parts.append(take(real_images, real_labels, balanced_order(real_labels, seed), n_real, "the real pool"))
    if size - n_real:
        images, labels = synthetic
        parts.append(take(images, labels, balanced_order(labels, seed), size - n_real, f"configuration {source.config}"))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# ---------------------------------------------------------------- data


TO_TENSOR_MEAN, TO_TENSOR_STD = 0.286, 0.353  # Fashion-MNIST's pixel statistics: the in-memory worlds' standardization


def to_tensor(images: np.ndarray, mean: float = TO_TENSOR_MEAN, std: float = TO_TENSOR_STD) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float (N, C, H, W), standardized."""
    x = torch.tensor(np.asarray(images)).float().div_(255).sub_(mean).div_(std)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


class BatchData(torch.utils.data.Dataset):
    """In-memory images fetched a whole batch at a time (DataLoader calls ``__getitems__``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def __getitems__(self, idx: list[int]):
        idx = torch.as_tensor(idx)
        return self.images[idx], self.labels[idx]


def augment(x: torch.Tensor, step: int, seed: int) -> torch.Tensor:
    """Random horizontal flips per image and one shift of up to 2 pixels per batch, seeded by step."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


class FileImages(torch.utils.data.Dataset):
    """Images fetched one at a time by ``load(i) -> PIL`` through ``transform``, with labels."""

    def __init__(self, load, labels: np.ndarray, transform, index: np.ndarray | None = None):
        self.load, self.labels, self.transform = load, np.asarray(labels), transform
        self.index = np.arange(len(self.labels)) if index is None else np.asarray(index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        j = int(self.index[i])
        return self.transform(self.load(j)), int(self.labels[j])


class ShardImages:
    """Random access to a generated configuration's images, in index-major order, without unpacking:
    each shard's member offsets are read once from its tar headers."""

    def __init__(self, config_dir: str | Path):
        import tarfile

        from synkit.data.shards import verify

        self.dir = Path(config_dir)
        manifest = verify(self.dir, checksums=False)
        manifest = manifest.iloc[np.lexsort((manifest["class_index"].to_numpy(), manifest["index"].to_numpy()))]
        where = {}
        for shard in manifest["shard"].unique():
            with tarfile.open(self.dir / shard) as tar:
                for m in tar.getmembers():
                    key, _, ext = m.name.partition(".")
                    if ext == "png":
                        where[key] = (shard, m.offset_data, m.size)
        self.entries = [where[k] for k in manifest["key"]]
        self.labels = manifest["class_index"].to_numpy()
        self.digest = hashlib.sha256("".join(sorted(set(manifest["shard_sha256"]))).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.entries)

    def image(self, i: int):
        import io

        from PIL import Image

        shard, offset, size = self.entries[i]
        with open(self.dir / shard, "rb") as f:
            f.seek(offset)
            return Image.open(io.BytesIO(f.read(size))).convert("RGB")


def file_subset(source: Source, size: int, real, synthetic: ShardImages | None, seed, transform) -> torch.utils.data.Dataset:
    """The nested training set of ``size`` images of ``source`` for file-backed worlds (drawn as ``subset``)."""
    labels = np.asarray(real.labels)
    n_real = size if source.config is None else int(round(size * source.real_fraction))
    parts = []
    if n_real:
        order = balanced_order(labels, seed)
        if n_real > len(order):
            raise ValueError(f"the real pool has {len(order)} images, fewer than the {n_real} the ladder asks for; lower the sizes.")
        parts.append(FileImages(real.image, labels, transform, order[:n_real]))
    if size - n_real:
        if size - n_real > len(synthetic):
            raise ValueError(f"configuration {source.config} has {len(synthetic)} images, fewer than the {size - n_real} the ladder asks for.")
        parts.append(FileImages(synthetic.image, synthetic.labels, transform, balanced_order(np.asarray(synthetic.labels), seed)[: size - n_real]))
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)


# ---------------------------------------------------------------- model and evaluation


def create_model(config: TrainConfig, num_classes: int, in_chans: int):
    """``timm.create_model(config.model, num_classes, in_chans, **config.model_kwargs)`` (from scratch)."""
    import timm

    try:
        return timm.create_model(config.model, pretrained=False, num_classes=num_classes, in_chans=in_chans, **config.model_kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"model {config.model!r} is not a timm model name; list them with timm.list_models().") from None
        raise


def save_model(model, folder: str | Path, config: TrainConfig, in_chans: int, image_size: tuple[int, int],
               standardize: tuple[float, float] | None = None) -> Path:
    """A trained classifier as a timm model folder (``config.json`` with its architecture, arguments
    and preprocessing, ``model.safetensors``), written beside and renamed into place: any timm user
    loads it with ``timm.create_model("local-dir:<folder>", pretrained=True)`` (``load_model``).
    ``standardize``: the (mean, std) the images were standardized with (in-memory worlds)."""

    from timm.models import save_for_hf

    folder = Path(folder)
    data_config = {"input_size": (in_chans, *image_size)}
    if standardize is not None:
        data_config.update(mean=(standardize[0],) * in_chans, std=(standardize[1],) * in_chans)
    model_args = {**config.model_kwargs, "in_chans": in_chans}
    if any(not p.is_contiguous() for p in model.parameters()):  # channels_last weights: safetensors stores the standard layout
        import copy

        model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    with atomic(folder) as tmp:
        save_for_hf(model, str(tmp), model_args=model_args, safe_serialization=True, data_config=data_config)
    return folder


def load_model(folder: str | Path):
    """A classifier saved by ``save_model``, through timm's own loader (weights from safetensors)."""
    import timm

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} holds no timm model (config.json is missing); train the run first.")
    return timm.create_model(f"local-dir:{folder.resolve()}", pretrained=True).eval()


@torch.inference_mode()
def evaluate(model, eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]], class_names: list[str], batch_size: int = 1024,
             autocast: bool = True, device=None, channels_last: bool = False, workers: int = 0, accelerator=None) -> pd.DataFrame:
    """Cross-entropy loss and top-1 per eval set (in-memory (images, labels) tensors or a Dataset
    of (tensor, label)), per class and overall (class_index -1). With an ``accelerator`` of several
    processes each process evaluates its shard of every set and the per-image results are gathered
    (``runs.shard``, ``runs.gather``): every process returns the whole table."""
    model.eval()
    device = device or next(model.parameters()).device
    rows = []
    for name, value in eval_sets.items():
        part = runs.shard(accelerator, len(value) if isinstance(value, torch.utils.data.Dataset) else len(value[1]))
        if isinstance(value, torch.utils.data.Dataset):  # file-backed: stream through its transform
            batches = torch.utils.data.DataLoader(torch.utils.data.Subset(value, range(len(value))[part]), batch_size=batch_size, num_workers=workers)
        else:
            x, y = value[0][part], value[1][part]
            batches = ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size))
        losses, hits, ys = [], [], []
        for xb, yb in batches:
            xb = xb.to(device, non_blocking=True)
            if channels_last and xb.ndim == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
                logits = model(xb)
            logits = logits.float().cpu()
            losses.append(F.cross_entropy(logits, yb, reduction="none"))
            hits.append(logits.argmax(1) == yb)
            ys.append(yb)
        loss, hit, labels = runs.gather(accelerator, part, torch.cat(losses).numpy(), torch.cat(hits).numpy(), torch.cat(ys).numpy())
        rows.append({"eval_set": name, "class_index": -1, "class_name": "all", "n": len(labels), "loss": float(loss.mean()), "top1": float(hit.mean())})
        for c, cname in enumerate(class_names):
            m = labels == c
            rows.append({"eval_set": name, "class_index": c, "class_name": cname, "n": int(m.sum()),
                         "loss": float(loss[m].mean()) if m.any() else float("nan"),
                         "top1": float(hit[m].mean()) if m.any() else float("nan")})
    return pd.DataFrame(rows)


def train_run(
    images: np.ndarray,
    labels: np.ndarray,
    eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    class_names: list[str],
    steps: int,
    config: TrainConfig,
    run_dir: str | Path,
    data_key: str = "",
    accelerator=None,
    progress: bool = True,
    desc: str = "train",
) -> tuple[pd.DataFrame, dict]:
    """Train ``config.model`` from scratch for ``steps`` steps on (images, labels) and evaluate it.

    Resumes from ``run_dir/checkpoint.pt`` when its key matches; returns the cached results
    when ``run_dir/run.json`` has the same key. Returns (metrics table, run info)."""

    run_dir = Path(run_dir)
    key = runs.run_key(config, steps, data_key)
    ckpt_path = run_dir / "checkpoint.pt"
    done = runs.finished_run(run_dir, key)
    if done is not None:
        return done
    accelerator = accelerator or runs.make_accelerator()
    main = accelerator.is_main_process
    if main:
        for stale in ("run.json", "metrics.parquet"):
            (run_dir / stale).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    torch.manual_seed(config.seed)
    files = isinstance(images, torch.utils.data.Dataset)  # file-backed: timm's transforms, per-item loading
    if files:
        data, n_items, in_chans = images, len(images), 3
    else:
        x, y = to_tensor(images), torch.as_tensor(np.asarray(labels), dtype=torch.long)
        data, n_items, in_chans = BatchData(x, y), len(y), x.shape[1]
    model = create_model(config, len(class_names), in_chans=in_chans)
    # channels_last for in-memory data only: there it is 1.6x faster here; with timm's transforms on
    # file-backed batches of a few images a oneDNN kernel corrupted the heap on this CPU
    channels_last = config.channels_last and not files
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    import timm.optim

    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=config.lr, weight_decay=config.weight_decay, fused=True)  # one kernel a step
    scheduler = runs.make_scheduler(optimizer, steps, config.warmup)
    start = runs.load_checkpoint(ckpt_path, key, model, optimizer, scheduler)
    processes = accelerator.num_processes
    batch_size = min(config.batch_size, n_items)
    sampler = runs.StepBatches(n_items, batch_size, steps, config.seed, start, processes)
    if files:
        loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=config.workers, persistent_workers=False)
    else:
        loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=runs.whole_batch)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    t0 = time.perf_counter()
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not (progress and main), leave=False)
    model.train()
    step = start
    for xb, yb in loader:
        if config.augment and not files:  # file-backed data is augmented by timm's training transform
            xb = augment(xb, step, config.seed)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with runs.autocast(accelerator, config.mixed_precision):
            loss = F.cross_entropy(model(xb).float(), yb)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if step % config.checkpoint_every == 0 and step < steps and main:
            runs.save_checkpoint(ckpt_path, accelerator.unwrap_model(model), optimizer, scheduler, step, key)
    bar.close()
    train_s = time.perf_counter() - t0
    accelerator.wait_for_everyone()
    runs.sync_buffers(accelerator, accelerator.unwrap_model(model))
    metrics = evaluate(accelerator.unwrap_model(model), eval_sets, class_names, config.eval_batch_size,
                       autocast=config.mixed_precision != "no", channels_last=channels_last, workers=config.workers, accelerator=accelerator)
    info = {"key": key, "steps": steps, "size": int(n_items), "resumed_from": start, "train_s": round(train_s, 2),
            "images_per_s": round((steps - start) * batch_size * processes / max(train_s, 1e-9), 1), "processes": processes}
    if main:
        sample = data[0][0] if files else x[0]
        save_model(accelerator.unwrap_model(model), run_dir / "model", config, in_chans, tuple(sample.shape[-2:]),
                   None if files else (TO_TENSOR_MEAN, TO_TENSOR_STD))
        runs.finish_run(run_dir, metrics, info)
    accelerator.wait_for_everyone()
    return metrics, info


# ---------------------------------------------------------------- a ladder of runs


@dataclass
class TrainJob:
    """Every run of a study's training stage; JSON-serializable for ``python -m synkit.classify.train``."""

    study_dir: str
    world: str = "fashion"
    world_root: str | None = None
    image_size: int | None = None  # folder worlds: the in-memory image size (None: the images' own)
    web_size: int = 50_000
    real_size: int = 10_000
    split_seed: int = 0
    ood_roots: dict | None = None
    class_map: str | None = None
    sources: list = field(default_factory=lambda: ["real"])
    sizes: list = field(default_factory=list)  # empty: ladder_sizes(real_size, min_size, max_factor)
    min_size: int = 0  # 0: D_I / 32 (ladder_sizes)
    max_factor: float = 2.0
    sweep_size: int = 0  # > 0: also train every generated configuration at this size
    eval_sets: list = field(default_factory=list)  # empty: val and every OOD view
    eval_size: int = 0  # > 0: a class-balanced subset of each eval set
    ood_eval_size: int = 0  # > 0: a class-balanced subset of each OOD view (0: eval_size); sweep and capacity runs evaluate on val only
    train_config: dict = field(default_factory=dict)
    seed: int = 0  # the study seed: the first training seed
    seeds: int = 1  # training seeds per run: seed, seed + 1, ...
    capacity_source: str | None = None  # also train this source with the small model of capacity_config
    capacity_config: dict = field(default_factory=dict)  # TrainConfig fields of the small model (over train_config)
    workers: int = 0  # processes training independent runs at once (0: runs.auto_workers); not part of any result


def plan_runs(job: TrainJob, configs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: source, config, real_fraction, size, seed, steps, model ("default" or
    "small"), kind (ladder, sweep or capacity) and sweep (the run gives the configuration's
    performance at the sweep size, ladder runs included)."""
    d_i = job.real_size
    sizes = sorted(job.sizes) if job.sizes else ladder_sizes(d_i, job.min_size, job.max_factor)
    if any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes {sizes} are invalid; every size must be a whole number >= 1.")
    if not isinstance(job.seeds, int) or job.seeds < 1:
        raise ValueError(f"seeds={job.seeds!r} is invalid; it must be a whole number >= 1 (training seeds per run).")
    config = config_from(job.train_config, job.world)
    available = dict(zip(configs["config"], configs["images"])) if len(configs) else {}
    rows = []

    def ladder(spec: str, kind: str, model: str) -> list[dict]:
        src = parse_source(spec, configs)
        if src.config is None:
            cap = d_i
        elif src.real_fraction > 0:
            cap = min(available[src.config] / (1 - src.real_fraction), d_i / src.real_fraction)
        else:
            cap = available[src.config]
        mine = [s for s in sizes if s <= cap + 1e-9]
        if len(mine) < 3:
            raise ValueError(f"source {spec!r} has {int(cap)} images, enough for {len(mine)} of the sizes {sizes}; a fit needs at least 3.")
        return [{"source": src.name, "spec": spec, "config": src.config, "real_fraction": src.real_fraction, "size": s,
                 "kind": kind, "model": model} for s in mine]

    for spec in job.sources:
        rows += ladder(spec, "ladder", "default")
    if job.sweep_size:
        for c, n in available.items():
            rows.append({"source": c, "spec": c, "config": c, "real_fraction": 0.0, "size": int(min(job.sweep_size, n)),
                         "kind": "sweep", "model": "default"})
    if job.capacity_source:
        if not job.capacity_config:
            raise ValueError("capacity_source is set but capacity_config is empty; give the small model's TrainConfig fields (e.g. model_kwargs).")
        capacity_model(job)  # names a bad key now, not after the ladder
        rows += ladder(job.capacity_source, "capacity", "small")
    plan = pd.DataFrame(rows)
    swept = set(zip(plan.loc[plan["kind"] == "sweep", "source"], plan.loc[plan["kind"] == "sweep", "size"]))
    plan = plan.drop_duplicates(["source", "size", "model"])  # a ladder run at the sweep size serves both
    plan["sweep"] = [(s, n) in swept and m == "default" for s, n, m in zip(plan["source"], plan["size"], plan["model"])]
    d_min, d_max = min(plan["size"]), max(plan["size"])
    # a mix trains with the steps of real alone at its real count: compute-matched, so its gain is the images' alone
    counts = [round(s * f) if f > 0 else s for s, f in zip(plan["size"], plan["real_fraction"])]
    plan["steps"] = [schedule_steps(n, d_min, d_max, config.steps_min, config.steps_max) for n in counts]
    seeds = [job.seed + i for i in range(job.seeds)]
    plan = plan.merge(pd.DataFrame({"seed": seeds}), how="cross")
    return plan.sort_values(["seed", "kind", "source", "size"], kind="stable").reset_index(drop=True)


def capacity_model(job: TrainJob) -> TrainConfig:
    """The TrainConfig of the capacity runs: ``train_config`` with ``capacity_config`` over it."""
    merged = {**job.train_config, **job.capacity_config}
    if "model_kwargs" in job.capacity_config and "model" not in job.capacity_config:
        merged.setdefault("model", config_from(job.train_config, job.world).model)
    return config_from(merged, job.world)


def eval_arrays(world, eval_sets: list[str], eval_size: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 images and labels of each eval set; with ``eval_size``, the same class-balanced subset
    of val in every view."""
    out = {}
    for name in eval_sets:
        split = world.split(name)
        images, labels = np.asarray(split.images), np.asarray(split.labels)
        if eval_size and eval_size < len(labels):
            idx = np.sort(balanced_order(labels, seed)[:eval_size])
            images, labels = images[idx], labels[idx]
        out[name] = (images, labels)
    return out


def eval_tensors(world, eval_sets: list[str], eval_size: int, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {k: (to_tensor(x), torch.as_tensor(y, dtype=torch.long)) for k, (x, y) in eval_arrays(world, eval_sets, eval_size, seed).items()}


class LadderData:
    """Everything the runs of a job read, built once per process: the world, the eval sets, the
    real pool and (on first use) each synthetic configuration's images."""

    def __init__(self, job: TrainJob, plan: pd.DataFrame, configs: pd.DataFrame):
        from synkit.data.worlds import load_world

        self.job, self.plan, self.configs = job, plan, configs
        self.study = Path(job.study_dir)
        self.config = config_from(job.train_config, job.world)
        self.small = capacity_model(job) if job.capacity_source else None
        world = load_world(job.world, job.world_root, job.web_size, job.real_size, job.split_seed, job.ood_roots, job.class_map, job.image_size)
        self.class_names = [c.name for c in world.classes]
        eval_names = job.eval_sets or ["val", *world.ood_views]
        self.real = world.split("real")
        self.files = not hasattr(self.real, "images")  # imagenet / folder: images stream from disk through timm's transforms
        if self.files:
            import timm

            data_config = timm.data.resolve_data_config(model=create_model(self.config, len(self.class_names), 3))
            self.train_tf = timm.data.create_transform(**data_config, is_training=True)
            eval_tf = timm.data.create_transform(**data_config, is_training=False)
            self.evals = {}
            for name in eval_names:
                split = world.split(name)
                labels = np.asarray(split.labels)
                idx = np.sort(balanced_order(labels, job.split_seed)[: job.eval_size]) if job.eval_size else None
                self.evals[name] = FileImages(split.image, labels, eval_tf, idx)
        else:
            self.evals = eval_tensors(world, eval_names[:1], job.eval_size, job.split_seed)
            self.evals.update(eval_tensors(world, eval_names[1:], job.ood_eval_size or job.eval_size, job.split_seed))
            self.real_data = (np.asarray(self.real.images), np.asarray(self.real.labels))
        self.common = {"world": job.world, "web_size": job.web_size, "real_size": job.real_size, "split_seed": job.split_seed,
                       "eval_size": job.eval_size, "ood_eval_size": job.ood_eval_size}
        self.eval_names = eval_names
        self.synthetic: dict[str, tuple] = {}

    def _synthetic(self, name: str):
        from synkit.core.files import from_study
        from synkit.data.shards import read_images

        if name not in self.synthetic:
            if self.files:
                shards = ShardImages(self.study / "synthetic" / name)
                self.synthetic[name] = (shards, None, shards.digest)
            else:
                manifest_path = Path(from_study(self.configs.set_index("config").loc[name, "manifest"], self.study))
                if not manifest_path.exists():  # a table from another working directory: the configuration's own folder
                    manifest_path = self.study / "synthetic" / name / "manifest.parquet"
                pool = int(self.configs.set_index("config").loc[name, "images"])  # every seed draws from the whole pool
                imgs, man = read_images(manifest_path.parent, per_class=-(-pool // len(self.class_names)))
                order = np.lexsort((man["class_index"].to_numpy(), man["index"].to_numpy()))
                digest = hashlib.sha256("".join(sorted(set(man["shard_sha256"]))).encode()).hexdigest()[:16]
                imgs = imgs[order]
                if imgs.shape[1:] != self.real_data[0].shape[1:]:  # generated at another size or mode than the world's images
                    imgs = fit_images(imgs, self.real_data[0].shape[1:])
                self.synthetic[name] = (imgs, man["class_index"].to_numpy()[order], digest)  # in memory: 0.8 kB an image
        return self.synthetic[name]

    def run(self, row: dict, accelerator, progress: bool) -> tuple[pd.DataFrame, dict]:
        """Train (or reuse) the run of one plan row; return (metrics with the row's columns, info)."""
        config_name = row["config"] if isinstance(row["config"], str) else None
        source = Source(row["source"], config_name, row["real_fraction"])
        synth = self._synthetic(config_name) if config_name else None
        draw = [int(self.job.split_seed), int(row["seed"])]  # each training seed draws its own nested subsets
        if self.files:
            images, labels = file_subset(source, row["size"], self.real, synth[0] if synth else None, draw, self.train_tf), None
        else:
            images, labels = subset(source, row["size"], self.real_data, synth[:2] if synth else None, draw)
        # ladder and sweep runs are measured on every eval set (the sweep: prompts out of distribution); capacity runs on val only
        names = self.eval_names if row["kind"] in ("ladder", "sweep") else self.eval_names[:1]
        evals = {k: self.evals[k] for k in names}
        data_key = json.dumps({**self.common, "eval_sets": names, "source": row["source"], "size": row["size"],
                               "shards": synth[2] if synth else None, "draw": draw}, sort_keys=True)
        model_dir = safe_name(row["source"]) if row["model"] == "default" else f"{safe_name(row['source'])}/{row['model']}"
        run_dir = self.study / "train" / "runs" / model_dir / f"n{row['size']:08d}-s{row['seed']}"
        run_config = dataclasses.replace(self.small if row["model"] == "small" else self.config, seed=int(row["seed"]))
        metrics, info = train_run(images, labels, evals, self.class_names, row["steps"], run_config, run_dir, data_key, accelerator,
                                  progress, desc=run_label(row))
        base = {"source": row["source"], "config": config_name, "real_fraction": row["real_fraction"], "size": row["size"],
                "steps": row["steps"], "kind": row["kind"], "sweep": row["sweep"], "model": row["model"], "seed": int(row["seed"])}
        return metrics.assign(**base), {**base, **{k: info[k] for k in ("train_s", "images_per_s", "resumed_from")}}


def run_label(row: dict) -> str:
    return f"{row['source']}{'' if row['model'] == 'default' else ' (' + row['model'] + ' model)'} n={row['size']} seed {row['seed']}"


_WORKER: dict = {}


def _worker_init(job: TrainJob, plan: pd.DataFrame, configs: pd.DataFrame, threads: int) -> None:
    runs.die_with_parent()
    torch.set_num_threads(threads)
    _WORKER["data"] = LadderData(job, plan, configs)
    _WORKER["accelerator"] = runs.make_accelerator()


def _worker_run(row: dict):
    return _WORKER["data"].run(row, _WORKER["accelerator"], progress=False)


def _run_cost(row: dict) -> float:
    """Rough relative time of a run: its steps (the small model's cost about a third of the default's), plus its evaluation."""
    return row["steps"] * (0.35 if row["model"] == "small" else 1.0) + (50 if row["kind"] == "ladder" else 15)


def run_ladder(job: TrainJob, progress: bool = True, accelerator=None, workers: int | None = None) -> pd.DataFrame:
    """Train every run of ``job`` (skipping finished ones); write and return ``train/metrics.parquet``.

    Runs are independent: with ``workers`` > 1 (default: ``auto_workers``) they train in that many
    spawned processes at once. Every CPU run trains with ``runs.run_threads()`` threads, in this process
    or a worker, so the tables are the same whichever way they were trained on a machine."""
    study = Path(job.study_dir)
    configs_path = study / "synthetic" / "configs.parquet"
    configs = pd.read_parquet(configs_path) if configs_path.exists() else pd.DataFrame(columns=["config", "prompt_set", "guidance_scale", "images", "manifest"])
    plan = plan_runs(job, configs)
    if accelerator is None:
        accelerator = runs.make_accelerator()
    multi = accelerator.num_processes > 1
    workers = workers or job.workers
    if not workers:
        from synkit.data.worlds import in_memory, load_world

        world = load_world(job.world, job.world_root, job.web_size, job.real_size, job.split_seed, job.ood_roots, job.class_map, job.image_size)
        workers = 1 if multi else runs.auto_workers(files=not in_memory(world))  # file-backed worlds: the loader's workers instead
    rows = plan.to_dict("records")
    holder: dict = {}

    def in_process():
        holder["data"] = LadderData(job, plan, configs)
        return lambda row: holder["data"].run(row, accelerator, progress)

    results = runs.run_plan(rows, in_process, _worker_init, _worker_run, 1 if multi else workers, progress, "training runs",
                       accelerator.is_main_process, initargs=(job, plan, configs), cost=_run_cost, label=run_label)
    cols = ["source", "config", "real_fraction", "kind", "sweep", "model", "seed", "size", "steps", "eval_set", "class_index", "class_name",
            "n", "loss", "top1"]
    table = pd.concat([m for m, _ in results], ignore_index=True)[cols]
    if accelerator.is_main_process:
        write_parquet(table, study / "train" / "metrics.parquet")
        write_parquet(pd.DataFrame([info for _, info in results]), study / "train" / "runs.parquet")
    return table


def main(argv: list[str] | None = None) -> int:
    """``python -m synkit.classify.train job.json`` (also under ``accelerate launch``)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m synkit.classify.train JOB.json", file=sys.stderr)
        return 2
    job = TrainJob(**json.loads(Path(argv[0]).read_text()))
    run_ladder(job)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
