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
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from synkit.core.progress import tqdm

from synkit.core import precision

from synkit.engine import runs

from synkit.classify import data
from synkit.clip.data import SETUPS, image_stats, square, to_clip_tensor  # noqa: F401  (clip.square etc. for callers)
from synkit.core.files import atomic, write_parquet

CONTROL = "real-exact-names"  # the fashion world's control: real images, captions naming each class exactly
FASHION_MODEL = "synkit-fashion-clip"
# The fashion zero-shot templates: the caption style of this world's web text ("NAME, attributes")
# and a few plain descriptions; documented here so results are comparable across runs.
FASHION_TEMPLATES = ("{}", "{}, an image", "a photo of a {}.", "a {}.", "a grayscale photo of a {}.", "a product photo of a {}.")
COARSE_TARGETS = ("footwear", "clothing", "container")


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


# ---------------------------------------------------------------- captions and label sets


def web_captions(world, n: int, seed: int = 0, synonym_rate: float = 0.2, hypernym_rate: float = 0.2) -> pd.DataFrame:
    """The first ``n`` captions of the world's caption pool (fashion: the web split; a folder world held
    in memory: its train split, ``worlds.t2i_split``) in a seeded class-balanced order: caption_id,
    caption, class_index, class_name, source_id, web_index. Each caption is a class word (the name,
    or at the given rates a WordNet lemma or hypernym) and the offline captioner's description."""
    from synkit.data.captions import load_captioner
    from synkit.data.worlds import t2i_split

    pool = t2i_split(world)
    web = world.split(pool)
    labels = np.asarray(web.labels)
    if n > len(labels):
        raise ValueError(f"clip_max_scale={n} captions were asked for; the {pool} split, this world's caption pool, has {len(labels)} images: "
                         f"set clip_max_scale to at most {len(labels)}.")
    order = data.balanced_order(labels, seed)[:n]
    texts = load_captioner(world.name).caption_arrays(np.asarray(web.images)[order])
    rng = np.random.default_rng([seed, 7])
    classes = world.classes
    rows = []
    for i, text in zip(order, texts):
        c = classes[int(labels[i])]
        u = rng.random()
        if u < synonym_rate and c.lemmas:
            word = c.lemmas[rng.integers(len(c.lemmas))]
        elif u < synonym_rate + hypernym_rate and c.hypernyms:
            level = c.hypernyms[rng.integers(min(2, len(c.hypernyms)))]
            word = level[0]
        else:
            word = c.name
        rows.append({"caption_id": f"web-{int(i):06d}", "caption": f"{word}, {text}", "class_index": int(labels[i]),
                     "class_name": c.name, "source_id": str(web.ids[i]), "web_index": int(i)})
    return pd.DataFrame(rows)


def coarse_task(classes, targets=COARSE_TARGETS) -> tuple[list[str], np.ndarray]:
    """A coarser label set from WordNet: each class goes to the first of ``targets`` on its
    hypernym chain. Returns (coarse names, class -> coarse index)."""
    mapping = []
    for c in classes:
        chain = [lemma for level in c.hypernyms for lemma in level]
        hit = next((t for t in chain if t in targets), None)
        if hit is None:
            raise ValueError(f"class {c.name!r} has none of {', '.join(targets)} among its WordNet hypernyms; choose other coarse targets.")
        mapping.append(targets.index(hit))
    used = sorted(set(mapping))
    return [targets[t] for t in used], np.array([used.index(m) for m in mapping])


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


def split_arrays(world, names: list[str], eval_size: int, image_size: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 images and labels of the world's eval splits: fashion's arrays as they are; file
    splits loaded, squared to ``image_size`` and limited to a class-balanced ``eval_size``."""
    if hasattr(world.split(names[0]), "images"):
        out = data.eval_arrays(world, names, eval_size, 0)
        if image_size and any(x.shape[1] != image_size for x, _ in out.values()):  # in memory at another size than CLIP's input
            from PIL import Image

            out = {k: (np.stack([square(Image.fromarray(im), image_size) for im in x]), y) for k, (x, y) in out.items()}
        return out
    out = {}
    for name in names:
        split = world.split(name)
        labels = np.asarray(split.labels)
        idx = np.sort(data.balanced_order(labels, 0)[:eval_size]) if eval_size else np.arange(len(labels))
        out[name] = (np.stack([square(split.image(int(i)), image_size) for i in idx]), labels[idx])
    return out


def image_folder(root: str | Path, image_size: int, per_class: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A torchvision-style labelled folder (``root/<class>/<image>``, read with
    ``torchvision.datasets.ImageFolder``): images squared to ``image_size``, labels and class names
    (folder names, or the lines of ``root/classnames.txt`` in folder order when present)."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"zero-shot data set folder {root} does not exist; it must hold one subfolder per class.")
    data = ImageFolder(str(root))
    names = list(data.classes)
    names_file = root / "classnames.txt"
    if names_file.exists():
        names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if len(names) != len(data.classes):
            raise ValueError(f"{names_file} has {len(names)} names for {len(data.classes)} class folders; give one name per folder.")
    labels = np.array(data.targets)
    idx = np.sort(data.balanced_order(labels, 0)[: per_class * len(names)]) if per_class else np.arange(len(labels))
    images = np.stack([square(data.loader(data.samples[i][0]), image_size) for i in idx])
    return images, labels[idx], names


class ClipBatches(runs.StepBatches):
    """Index batches into the image bank [real images; synthetic images] for steps start..steps.

    Epoch e draws the captions in a permutation seeded by (seed, e) (``runs.StepBatches``);
    ``mixed`` picks, per caption and epoch, its synthetic image (index + n) or its real one with
    equal chance."""

    def __init__(self, n: int, batch_size: int, steps: int, seed: int, setup: str, start: int = 0, processes: int = 1):
        if setup not in SETUPS:
            raise ValueError(f"setup {setup!r} is unknown; valid setups are {', '.join(SETUPS)}.")
        super().__init__(n, batch_size, steps, seed, start, processes)
        self.setup = setup

    def epoch_extra(self, generator: torch.Generator):
        return torch.rand(self.n, generator=generator) < 0.5 if self.setup == "mixed" else None

    def map(self, idx: torch.Tensor, synth) -> torch.Tensor:
        if self.setup == "synthetic":
            return idx + self.n
        if self.setup == "mixed":
            return idx + self.n * synth[idx].long()
        return idx


class ClipData(torch.utils.data.Dataset):
    """Images of the bank and the tokens of their captions (bank index mod n), a batch at a time."""

    def __init__(self, bank: torch.Tensor, tokens: torch.Tensor):
        self.bank, self.tokens = bank, tokens

    def __len__(self) -> int:
        return len(self.bank)

    def __getitems__(self, idx):
        idx = torch.as_tensor(idx)
        return self.bank[idx], self.tokens[idx % len(self.tokens)]


# ---------------------------------------------------------------- zero-shot


@torch.inference_mode()
def class_embeddings(model, tokenizer, names: list[str], templates, device=None, autocast: bool = False) -> torch.Tensor:
    """The normalized mean of each class's template embeddings (C, D), on the model's device;
    templates are format strings or callables (open_clip's ImageNet templates)."""
    device = device or next(model.parameters()).device
    out = []
    for name in names:
        texts = [t(name) if callable(t) else t.format(name) for t in templates]
        with precision.autocast(device, autocast):
            emb = model.encode_text(tokenizer(texts).to(device), normalize=True).float()
        out.append(F.normalize(emb.mean(0), dim=-1))
    return torch.stack(out)


@torch.inference_mode()
def zero_shot(model, tokenizer, eval_sets: dict, tasks: list[dict], templates, batch_size: int = 1024, autocast: bool | None = None,
              accelerator=None) -> pd.DataFrame:
    """Top-1 and cross-entropy per task. ``eval_sets``: name -> (images (N,3,H,W), labels);
    ``tasks``: dicts with ``name`` (the row's eval_set), ``set`` (an eval set), ``classes`` (names)
    and ``mapping`` (eval-set label -> task label). Images go to the model's device in batches, in
    bf16 autocast where bf16 is native on that device (``autocast=None``; True or False forces it); with an ``accelerator`` of several processes
    each process encodes its shard and the per-image results are gathered (``runs.shard``/``gather``)."""
    model.eval()
    device = next(model.parameters()).device
    scale = model.logit_scale.exp().float()
    feats: dict[str, torch.Tensor] = {}
    rows = []
    for task in tasks:
        x, y = eval_sets[task["set"]]
        part = runs.shard(accelerator, len(y))
        if task["set"] not in feats:
            xs, parts = x[part], []
            for i in range(0, len(xs), batch_size):
                with precision.autocast(device, autocast):
                    parts.append(model.encode_image(xs[i : i + batch_size].to(device, non_blocking=True), normalize=True).float())
            feats[task["set"]] = torch.cat(parts)
        text = class_embeddings(model, tokenizer, task["classes"], templates, device)
        target = torch.as_tensor(np.asarray(task["mapping"])[y[part].numpy()], device=device)
        logits = scale * feats[task["set"]] @ text.T
        hit, loss = runs.gather(accelerator, part, (logits.argmax(1) == target).float().cpu().numpy(),
                                F.cross_entropy(logits, target, reduction="none").cpu().numpy())
        rows.append({"eval_set": task["name"], "task": task.get("task", "classes"), "top1": float(hit.mean()), "loss": float(loss.mean())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- one run


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
    ckpt_path = run_dir / "checkpoint.pt"
    done = runs.finished_run(run_dir, key)
    if done is not None:
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = runs.make_accelerator()
    torch.manual_seed(config.seed)
    model = from_scratch(config.model, config.image_size)
    decay = [p for nme, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in nme]
    rest = [p for nme, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in nme)]
    # fused: one kernel per step instead of a dozen per tensor; the 4.7M-entry token embedding made the
    # per-tensor optimizer a fifth of every step (benchmarks/clip.py)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=config.lr,
                                  fused=True)
    scheduler = runs.make_scheduler(optimizer, steps, config.warmup)
    start = runs.load_checkpoint(ckpt_path, key, model, optimizer, scheduler)
    processes = accelerator.num_processes
    if stream is None:
        sampler = ClipBatches(n, batch, steps, config.seed, setup, start, processes)  # N batches per step: one per process
        loader = torch.utils.data.DataLoader(ClipData(bank, tokens), batch_sampler=sampler, collate_fn=runs.whole_batch)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    else:  # each process streams its own share (clip_stream.CaptionStream)
        from synkit.clip.stream import CaptionStream

        loader = CaptionStream(stream, setup, batch, steps, config.seed, open_clip.get_tokenizer(config.model), start, accelerator.process_index,
                               processes)
        model, optimizer = accelerator.prepare(model, optimizer)
    loss_fn = open_clip.ClipLoss(rank=accelerator.process_index, world_size=accelerator.num_processes)
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not progress, leave=False)
    t0 = time.perf_counter()
    model.train()
    step = start
    core = accelerator.unwrap_model(model)
    for images, text in loader:
        images, text = images.to(accelerator.device, non_blocking=True), text.to(accelerator.device, non_blocking=True)
        with runs.autocast(accelerator, config.mixed_precision):
            img, txt, scale = model(images, text)  # through the wrapper: under DDP its forward arms the gradient all-reduce
            loss = loss_fn(img.float(), txt.float(), scale)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        with torch.no_grad():  # as CLIP: keep the temperature below 100
            core.logit_scale.clamp_(0, math.log(100))
        step += 1
        bar.update(1)
        if step % config.checkpoint_every == 0 and step < steps and accelerator.is_main_process:
            runs.save_checkpoint(ckpt_path, core, optimizer, scheduler, step, key)
    bar.close()
    seconds = time.perf_counter() - t0
    runs.sync_buffers(accelerator, core)
    metrics = evaluate(core, accelerator)
    info = {"key": key, "steps": steps, "captions": n, "setup": setup, "resumed_from": start, "train_s": round(seconds, 2),
            "pairs_per_s": round((steps - start) * batch * processes / max(seconds, 1e-9), 1)}
    if accelerator.is_main_process:
        save_model(core, run_dir / "model", config, image_stats)
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


# ---------------------------------------------------------------- the ladder


def clip_scales(max_scale: int, min_scale: int) -> list[int]:
    """Caption counts max_scale / 2^j down to min_scale."""
    if not 1 <= min_scale <= max_scale:
        raise ValueError(f"min_scale={min_scale} and max_scale={max_scale} are invalid; they need 1 <= min_scale <= max_scale.")
    out = [max_scale]
    while out[-1] // 2 >= min_scale:
        out.append(out[-1] // 2)
    return sorted(out)


def run_ladder(captions: pd.DataFrame, real_images: np.ndarray, synthetic_images: np.ndarray, evals: dict, tasks: list[dict],
               scales: list[int], config: ClipConfig, out_dir: str | Path, setups=SETUPS, templates=FASHION_TEMPLATES,
               progress: bool = True, seeds: list[int] = (0,), workers: int | None = None,
               control: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every setup at every scale (nested caption prefixes) with every seed, zero-shot on ``tasks``
    over ``evals`` (name -> uint8 images, labels); returns and writes ``metrics.parquet`` and ``runs.parquet``.
    Runs are independent: with ``workers`` > 1 (default ``runs.auto_workers()``) they train in that
    many spawned processes at once.

    ``control`` (captions in the same order, naming each class exactly) adds the control's runs to
    the same pool: real images with those captions at the largest scale, every seed, written to
    ``out_dir/control/`` (setup ``real-exact-names``) and not returned."""
    register_models()
    out = Path(out_dir)
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
    args = (captions, real_images, synthetic_images, evals, tasks, config, str(out), templates, control)
    if workers is None:  # open_clip's ImageNet templates are lambdas, which do not pickle to a worker: those run in-process
        workers = runs.auto_workers(files=any(callable(t) for t in templates))
    results = runs.run_plan(rows, lambda: ClipRuns(*args, progress=progress).run, _worker_init, _worker_run, workers, progress, "CLIP runs",
                             initargs=args, cost=lambda row: row["n"] + 600)  # + 600: the zero-shot evaluation, about 600 captions' time
    table = pd.concat([m for m, _ in results], ignore_index=True)[["setup", "scale", "seed", "eval_set", "task", "top1", "loss"]]
    run_table = pd.DataFrame([info for _, info in results])
    if control is not None:
        write_parquet(table[table["setup"] == CONTROL].reset_index(drop=True), out / "control" / "metrics.parquet")
        write_parquet(run_table[run_table["setup"] == CONTROL].reset_index(drop=True), out / "control" / "runs.parquet")
        table, run_table = table[table["setup"] != CONTROL].reset_index(drop=True), run_table[run_table["setup"] != CONTROL].reset_index(drop=True)
    write_parquet(table, out / "metrics.parquet")
    write_parquet(run_table, out / "runs.parquet")
    return table


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


class ClipRuns:
    """What every CLIP run of a ladder reads, built once per process: tokens, the image bank, eval tensors."""

    def __init__(self, captions, real_images, synthetic_images, evals, tasks, config, out_dir, templates, control=None,
                 progress: bool = False):
        import open_clip

        register_models()
        self.captions, self.tasks, self.config, self.out, self.templates = captions, tasks, config, Path(out_dir), templates
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
        caps, tokens, run_dir = self.captions.iloc[:n], self.tokens[:n], self.out / "runs" / setup / f"n{n:08d}-s{seed}"
        if setup == CONTROL:  # real images, their captions naming the class exactly
            caps, tokens, setup, run_dir = self.control.iloc[:n], self.control_tokens[:n], "real", self.out / "control" / "runs" / "real" / run_dir.name
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


def world_tasks(world, eval_size: int, image_size: int | None, extra_eval: list[dict] = ()) -> tuple[dict, list[dict]]:
    """Eval sets and zero-shot tasks: the world's classes on val and every OOD view, the coarse
    WordNet task (fashion), and each extra torchvision-style folder ({"name", "root"}) with its own names."""
    views = ["val", *world.ood_views]
    evals = split_arrays(world, views, eval_size, image_size)
    names = [c.name for c in world.classes]
    tasks = [{"name": v, "set": v, "classes": names, "mapping": np.arange(len(names))} for v in views]
    if world.name == "fashion":
        coarse_names, coarse_map = coarse_task(world.classes)
        tasks.append({"name": "val-coarse", "set": "val", "classes": coarse_names, "mapping": coarse_map, "task": "coarse"})
    for extra in extra_eval:
        if not {"name", "root"} <= set(extra):
            raise ValueError(f"clip_extra_eval entry {extra!r} needs a name and a root folder.")
        images, labels, classes = image_folder(extra["root"], image_size or 224, int(extra.get("per_class", 0)))
        evals[extra["name"]] = (images, labels)
        tasks.append({"name": extra["name"], "set": extra["name"], "classes": classes, "mapping": np.arange(len(classes)), "task": "dataset"})
    return evals, tasks


def templates_for(world_name: str):
    """Fashion's documented templates, else open_clip's 80 ImageNet templates (as the paper)."""
    if world_name == "fashion":
        return FASHION_TEMPLATES
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return OPENAI_IMAGENET_TEMPLATES


@dataclass
class ClipJob:
    """The training part of 07_clip, JSON-serializable for ``python -m synkit.clip.ladder job.json``:
    captions, real and generated images already exist under ``study_dir/clip/``."""

    study_dir: str
    world: str = "fashion"
    world_root: str | None = None
    web_size: int = 50_000
    real_size: int = 10_000
    split_seed: int = 0
    ood_roots: dict | None = None
    class_map: str | None = None
    image_size: int | None = None  # folder worlds: the in-memory image size (None: the images' own)
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
    from synkit.data.worlds import in_memory, load_world, t2i_split

    out = Path(job.study_dir) / "clip"
    config = clip_config_from(job.clip_config)
    world = load_world(job.world, job.world_root, job.web_size, job.real_size, job.split_seed, job.ood_roots, job.class_map, job.image_size)
    if job.stream:
        return run_stream_job(job, config, world, progress)
    captions = pd.read_parquet(out / "captions.parquet")
    synthetic, manifest = read_images(out / "synthetic", checksums=False)
    if list(manifest["caption_id"]) != list(captions["caption_id"].astype(str)):
        raise RuntimeError(f"the caption shards in {out / 'synthetic'} do not follow captions.parquet; delete the folder and rerun.")
    if "web_index" in captions and in_memory(world):
        real = np.asarray(world.split(t2i_split(world)).images)[captions["web_index"].to_numpy()]
    else:
        real = np.load(out / "real_images.npy")
    if config.image_size is None and real.shape[1] != 28:  # the model's input size follows the images (its config says 28)
        config = dataclasses.replace(config, image_size=int(real.shape[1]))
    if real.shape[1] != (config.image_size or 28) or synthetic.shape[1:] != real.shape[1:]:
        raise ValueError(f"CLIP's images must share one size: real {real.shape[1:]}, generated {synthetic.shape[1:]}, model input "
                         f"{config.image_size or 28}; set clip_image_size (other worlds) and clip_config image_size to the same size.")
    evals, tasks = world_tasks(world, job.eval_size, config.image_size or (real.shape[1] if real.ndim == 4 else None), job.extra_eval)
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under accelerate launch: one run at a time over every process
    control = exact_names_captions(job, world, len(captions)) if job.control else None
    return run_ladder(captions, real, synthetic, evals, tasks, job.scales, config, out, job.setups, templates_for(job.world), progress,
                      seeds=[job.seed + i for i in range(job.seeds)], workers=1 if launched else (job.workers or None), control=control)


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

    out = Path(job.study_dir) / "clip"
    if job.control:
        raise ValueError("the exact-names control runs on captions held in memory; set clip_control to false with clip_stream.")
    if not job.real_shards:
        raise ValueError("clip_stream needs the real pairs as shards: set clip_shards (other worlds), or let 07 write them (fashion).")
    synthetic = synthetic_shards(out / "synthetic") if {"synthetic", "mixed"} & set(job.setups) else None
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
    templates = templates_for(job.world)
    rows = [{"setup": s, "n": n, "seed": job.seed + i} for i in range(job.seeds) for n in sorted(job.scales) for s in job.setups]
    tables, infos = [], []
    for row in tqdm(rows, desc="CLIP runs (streaming)", unit="run", disable=not progress):
        spec = StreamSpec(job.real_shards, synthetic, row["n"], size, job.stream_buffer)
        metrics, info = train_clip(
            None, None, row["setup"], dataclasses.replace(config, seed=row["seed"]), out / "runs" / row["setup"] / f"n{row['n']:08d}-s{row['seed']}",
            lambda m, acc: zero_shot(m, tokenizer, eval_tensors, tasks, templates, accelerator=acc),
            data_key=json.dumps({"eval": eval_key, "eval_precision": precision.resolve("auto")}, sort_keys=True), progress=progress,
            desc=f"{row['setup']} n={row['n']} seed {row['seed']}", image_stats=stats, stream=spec)
        tables.append(metrics.assign(setup=row["setup"], scale=row["n"], seed=row["seed"]))
        infos.append({"setup": row["setup"], **{k: info[k] for k in ("captions", "steps", "train_s", "pairs_per_s", "resumed_from")}, "seed": row["seed"]})
    table = pd.concat(tables, ignore_index=True)[["setup", "scale", "seed", "eval_set", "task", "top1", "loss"]]
    if int(os.environ.get("RANK", "0")) == 0:
        write_parquet(table, out / "metrics.parquet")
        write_parquet(pd.DataFrame(infos), out / "runs.parquet")
    return table


def open_clip_tokenizer(model: str):
    import open_clip

    register_models()
    return open_clip.get_tokenizer(model)


def exact_names_captions(job: ClipJob, world, n: int) -> pd.DataFrame:
    """The captions of the control for "synthetic beats real" in the fashion world: the study's
    first ``n`` web images in the study's caption order, each caption naming the exact class (no
    loose lemma or hypernym). ``run_job`` trains real images with them at the largest scale."""
    if job.world != "fashion":
        raise ValueError(f"the exact-names control needs the fashion world's own captions; world {job.world!r} has none.")
    return web_captions(world, n, job.split_seed, synonym_rate=0.0, hypernym_rate=0.0)


def main(argv: list[str] | None = None) -> int:
    """``python -m synkit.clip.ladder job.json`` (also under ``accelerate launch``)."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m synkit.clip.ladder JOB.json", file=sys.stderr)
        return 2
    run_job(ClipJob(**json.loads(Path(argv[0]).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
