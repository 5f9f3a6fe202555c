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
  nodes (``accelerate launch -m synkit.classify.ladder job.json``); it autocasts to bf16 where bf16 is
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

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from synkit.core.progress import tqdm

from synkit.core import precision

from synkit.engine import loop, runs
from synkit.core.files import atomic
from synkit.core.layout import CHECKPOINT, MODEL
from synkit.classify.data import TO_TENSOR_MEAN, TO_TENSOR_STD, augment, to_tensor


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


# ---------------------------------------------------------------- sources


# ---------------------------------------------------------------- data


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


def _data_and_model(images, labels, config: TrainConfig, n_classes: int):
    """A run's data (file-backed: the Dataset itself, with timm's transforms; in memory: a TensorPairs of standardized
    tensors) and its model, seeded by the config; channels_last for in-memory data only (1.6x faster here; with timm's
    transforms on file-backed batches of a few images a oneDNN kernel corrupted the heap on this CPU)."""
    torch.manual_seed(config.seed)
    files = isinstance(images, torch.utils.data.Dataset)
    x = None
    if files:
        data, in_chans = images, 3
    else:
        x, y = to_tensor(images), torch.as_tensor(np.asarray(labels), dtype=torch.long)
        data, in_chans = runs.TensorPairs(x, y), x.shape[1]  # images and labels, a batch at a time
    model = create_model(config, n_classes, in_chans=in_chans)
    if config.channels_last and not files:
        model = model.to(memory_format=torch.channels_last)
    return files, data, x, in_chans, model


def _steps(model, optimizer, scheduler, loader, accelerator, config: TrainConfig, start: int, steps: int, augmented: bool,
           channels_last: bool, bar, checkpoint) -> None:
    """The optimizer steps start..steps (``loop.optimizer_steps``): augment (in-memory data; file-backed data is augmented
    by timm's training transform), autocast, cross-entropy."""

    def loss_of(batch, step):
        xb, yb = batch
        if config.augment and augmented:
            xb = augment(xb, step, config.seed)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with runs.autocast(accelerator, config.mixed_precision):
            return F.cross_entropy(model(xb).float(), yb)

    model.train()
    loop.optimizer_steps(loader, loss_of, accelerator, optimizer, scheduler, start, steps, config.checkpoint_every, checkpoint, bar,
                         show_loss_every=10)


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
    ckpt_path = run_dir / CHECKPOINT
    done, accelerator = runs.start_run(run_dir, key, accelerator)
    if done is not None:
        return done
    main = accelerator.is_main_process
    files, data, x, in_chans, model = _data_and_model(images, labels, config, len(class_names))
    n_items = len(data)
    channels_last = config.channels_last and not files
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
    _steps(model, optimizer, scheduler, loader, accelerator, config, start, steps, not files, channels_last, bar,
           lambda step: runs.save_checkpoint(ckpt_path, accelerator.unwrap_model(model), optimizer, scheduler, step, key))
    train_s = time.perf_counter() - t0
    accelerator.wait_for_everyone()
    runs.sync_buffers(accelerator, accelerator.unwrap_model(model))
    metrics = evaluate(accelerator.unwrap_model(model), eval_sets, class_names, config.eval_batch_size,
                       autocast=config.mixed_precision != "no", channels_last=channels_last, workers=config.workers, accelerator=accelerator)
    info = {"key": key, "steps": steps, "size": int(n_items), "resumed_from": start, "train_s": round(train_s, 2),
            "images_per_s": round((steps - start) * batch_size * processes / max(train_s, 1e-9), 1), "processes": processes}
    if main:
        sample = data[0][0] if files else x[0]
        save_model(accelerator.unwrap_model(model), run_dir / MODEL, config, in_chans, tuple(sample.shape[-2:]),
                   None if files else (TO_TENSOR_MEAN, TO_TENSOR_STD))
        runs.finish_run(run_dir, metrics, info)
    accelerator.wait_for_everyone()
    return metrics, info


# ---------------------------------------------------------------- a ladder of runs
