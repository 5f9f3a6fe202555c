"""One CLIP run: open_clip's model built by name from scratch, its tokenizer and ``ClipLoss``, a fixed number of epochs over
the pairs (in memory or streamed), accelerate for devices, checkpoints and resume, the model saved as an open_clip folder."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from synkit.clip.data import ClipBatches
from synkit.core import precision
from synkit.core.files import atomic
from synkit.core.layout import CHECKPOINT, MODEL
from synkit.core.progress import tqdm
from synkit.engine import loop, runs

FASHION_MODEL = "synkit-fashion-clip"


def register_models() -> None:
    """Make synkit's open_clip model configs (synkit/data/*-clip.json) known to open_clip."""
    import open_clip

    for path in sorted((Path(__file__).resolve().parents[1] / "data").glob("*-clip.json")):
        if path.stem not in open_clip.list_models():
            open_clip.add_model_config(path)


@dataclass(frozen=True)
class ClipConfig:
    """How every CLIP run trains (all fields are part of each run's cache key)."""

    model: str = FASHION_MODEL
    epochs: int = 5  # the same at every scale, as the paper
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: float = 0.1
    seed: int = 0
    mixed_precision: str = "no"  # measured here: this small CLIP trains 1.1x faster in float32 than with bf16 autocast
    checkpoint_every: int = 100
    image_size: int | None = None  # force the model's input size (open_clip force_image_size); None: the config's

    def __post_init__(self):
        for key in ("epochs", "batch_size", "checkpoint_every"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"clip_config {key}={getattr(self, key)!r} is invalid; it must be a whole number >= 1.")
        if self.mixed_precision not in runs.MIXED_PRECISION:  # bf16 needs no loss scaling (no GradScaler state to keep)
            raise ValueError(f"clip_config mixed_precision={self.mixed_precision!r} is invalid; valid values are {', '.join(runs.MIXED_PRECISION)}.")
        object.__setattr__(self, "mixed_precision", precision.resolve(self.mixed_precision))  # keyed as run


def clip_config_from(values: dict) -> ClipConfig:
    fields = set(ClipConfig.__dataclass_fields__)
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"clip_config key {unknown[0]!r} is unknown; valid keys are {', '.join(sorted(fields))}.")
    return ClipConfig(**values)


def _optimizer(model, config: ClipConfig):
    """AdamW with weight decay on the weight matrices only (not on embeddings, biases, norms); fused: one kernel per step
    instead of a dozen per tensor (the 4.7M-entry token embedding made the per-tensor optimizer a fifth of every step,
    benchmarks/clip.py)."""
    decay = [p for nme, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in nme]
    rest = [p for nme, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in nme)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=config.lr,
                             fused=True)


def _prepared(model, optimizer, accelerator, bank, tokens, stream, setup: str, n: int, batch: int, steps: int, config: ClipConfig,
              start: int):
    """The model, optimizer and batches of a run, through ``accelerator.prepare``: in memory, N batches per step (one per
    process) from the image bank; streamed, each process its own share of the shards (``stream.CaptionStream``)."""
    import open_clip

    processes = accelerator.num_processes
    if stream is None:
        sampler = ClipBatches(n, batch, steps, config.seed, setup, start, processes)
        loader = torch.utils.data.DataLoader(runs.TensorPairs(bank, tokens), batch_sampler=sampler, collate_fn=runs.whole_batch)
        return accelerator.prepare(model, optimizer, loader)
    from synkit.clip.stream import CaptionStream

    loader = CaptionStream(stream, setup, batch, steps, config.seed, open_clip.get_tokenizer(config.model), start, accelerator.process_index,
                           processes)
    model, optimizer = accelerator.prepare(model, optimizer)
    return model, optimizer, loader


def train_clip(bank: torch.Tensor, tokens: torch.Tensor, setup: str, config: ClipConfig, run_dir: str | Path, evaluate,
               data_key: str = "", progress: bool = True, desc: str = "clip", image_stats: tuple | None = None,
               stream=None) -> tuple[pd.DataFrame, dict]:
    """Train ``config.model`` from scratch on ``len(tokens)`` captions for ``config.epochs`` epochs
    with the images of ``setup`` from ``bank`` ([real; synthetic], 2n images), then
    ``evaluate(model, accelerator)`` (every process calls it; it may shard the work). Resumes from a
    checkpoint; reuses a finished run with the same key. The model is saved in open_clip's format
    (``save_model``; ``image_stats``: the images' standardization) under ``run_dir/model``.

    ``stream`` (a ``clip_stream.StreamSpec``): read the pairs from webdataset shards as training goes
    instead of ``bank`` and ``tokens`` (both None then), memory flat in the number of captions."""
    import open_clip

    register_models()
    run_dir = Path(run_dir)
    n = stream.n if stream is not None else len(tokens)
    if stream is None and len(bank) != 2 * n:
        raise ValueError(f"the image bank has {len(bank)} images; it must hold the {n} real then the {n} synthetic images of the captions.")
    batch = min(config.batch_size, n)
    steps = config.epochs * max(n // batch, 1)
    data = {"data": data_key, "setup": setup, "n": n, **({"stream": stream.key()} if stream is not None else {})}
    key = runs.run_key(config, steps, json.dumps(data, sort_keys=True))
    ckpt_path = run_dir / CHECKPOINT
    done, accelerator = runs.start_run(run_dir, key)
    if done is not None:
        return done
    torch.manual_seed(config.seed)
    model = from_scratch(config.model, config.image_size)
    optimizer = _optimizer(model, config)
    scheduler = runs.make_scheduler(optimizer, steps, config.warmup)
    start = runs.load_checkpoint(ckpt_path, key, model, optimizer, scheduler)
    processes = accelerator.num_processes
    model, optimizer, loader = _prepared(model, optimizer, accelerator, bank, tokens, stream, setup, n, batch, steps, config, start)
    loss_fn = open_clip.ClipLoss(rank=accelerator.process_index, world_size=accelerator.num_processes)
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not progress, leave=False)
    t0 = time.perf_counter()
    model.train()
    core = accelerator.unwrap_model(model)

    def loss_of(batch, step):
        images, text = (t.to(accelerator.device, non_blocking=True) for t in batch)
        with runs.autocast(accelerator, config.mixed_precision):
            img, txt, scale = model(images, text)  # through the wrapper: under DDP its forward arms the gradient all-reduce
            return loss_fn(img.float(), txt.float(), scale)

    def clamp_temperature(_steps_done):
        with torch.no_grad():  # as CLIP: keep the temperature below 100
            core.logit_scale.clamp_(0, math.log(100))

    loop.optimizer_steps(loader, loss_of, accelerator, optimizer, scheduler, start, steps, config.checkpoint_every,
                         lambda step: runs.save_checkpoint(ckpt_path, core, optimizer, scheduler, step, key), bar, clamp_temperature)
    seconds = time.perf_counter() - t0
    runs.sync_buffers(accelerator, core)
    metrics = evaluate(core, accelerator)
    info = {"key": key, "steps": steps, "captions": n, "setup": setup, "resumed_from": start, "train_s": round(seconds, 2),
            "pairs_per_s": round((steps - start) * batch * processes / max(seconds, 1e-9), 1)}
    if accelerator.is_main_process:
        save_model(core, run_dir / MODEL, config, image_stats)
        runs.finish_run(run_dir, metrics, info)
    return metrics, info


def save_model(model, folder: str | Path, config: ClipConfig, image_stats: tuple | None = None) -> Path:
    """A trained CLIP as an open_clip model folder (``open_clip_config.json``: its model config and
    preprocessing; ``open_clip_model.safetensors``), written beside and renamed into place: any
    open_clip user loads it with ``open_clip.create_model_and_transforms("local-dir:<folder>")``
    (``load_model``). ``image_stats``: the (mean, std) per channel the images were standardized with
    (default: open_clip's OpenAI statistics, as ``to_clip_tensor`` uses for RGB images)."""
    import copy

    import open_clip
    from safetensors.torch import save_file

    register_models()
    model_cfg = copy.deepcopy(open_clip.get_model_config(config.model))
    if config.image_size:
        model_cfg["vision_cfg"]["image_size"] = config.image_size
    mean, std = image_stats or (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    folder = Path(folder)
    with atomic(folder) as tmp:
        tmp.mkdir(parents=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / "open_clip_model.safetensors")
        config_json = {"model_cfg": model_cfg, "preprocess_cfg": {"mean": list(mean), "std": list(std)}}
        (tmp / "open_clip_config.json").write_text(json.dumps(config_json, indent=1))
    return folder


def load_model(folder: str | Path):
    """(model, preprocess, tokenizer) of a CLIP saved by ``save_model``, through open_clip's own loaders."""
    import open_clip

    folder = Path(folder).resolve()
    if not (folder / "open_clip_config.json").exists():
        raise FileNotFoundError(f"{folder} holds no open_clip model (open_clip_config.json is missing); train the run first.")
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    return model.eval(), preprocess, open_clip.get_tokenizer(f"local-dir:{folder}")


class _NotAProblem(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


def from_scratch(name: str, image_size: int | None = None):
    """``open_clip.create_model(name)`` with random weights, as every CLIP run here starts; without
    open_clip's warning that no pretrained weights were loaded (one per run, in every terminal line)."""
    import open_clip

    quiet = _NotAProblem()
    logging.getLogger().addFilter(quiet)
    try:
        return open_clip.create_model(name, pretrained=None, force_image_size=image_size)
    finally:
        logging.getLogger().removeFilter(quiet)


def open_clip_tokenizer(model: str):
    import open_clip

    register_models()
    return open_clip.get_tokenizer(model)
