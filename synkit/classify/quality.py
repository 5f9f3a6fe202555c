"""Quality of synthetic images, as the paper measures it, with a reference classifier.

- **Recognizability**: the reference classifier labels a configuration's images; per class F1
  (precision: images labelled as the class really are of it; recall: images of the class are
  labelled so), averaged over classes.
- **Diversity**: per class, the standard deviation of the reference classifier's penultimate
  features over that class's images, averaged over feature dimensions; averaged over classes.

The fashion world's reference classifier is a small CNN trained on the ``real`` split (28x28
images are too small for ImageNet architectures), cached under ``outputs/models/`` keyed by its
training parameters and the split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from synkit.core.progress import tqdm

from synkit.core import precision
from synkit.core.images import to_tensor
from synkit.data.worlds import WorldFields
from synkit.engine import loop
from synkit.core.files import atomic, write_json


@dataclass(frozen=True)
class ReferenceConfig(WorldFields):
    """Training parameters of the reference classifier (all part of its cache key); it learns the real split of the
    world of its ``WorldFields`` (fashion, or a folder world held in memory), in the key by content."""

    seed: int = 0
    width: int = 32  # channels of the first block; doubled twice
    epochs: int = 12  # 20 before: 1.7x faster at about the same val top-1 (closing note of the speed issue)
    batch_size: int = 128
    lr: float = 3e-3


REFERENCE_VERSION = 2  # bump when a code change alters what a config trains (2: channels_last training)


class FashionCNN(nn.Module):
    """Three conv blocks and global pooling; ``features`` is the penultimate layer (4 x width)."""

    def __init__(self, width: int = 32, num_classes: int = 10, in_chans: int = 1):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            )

        self.body = nn.Sequential(
            block(in_chans, width), nn.MaxPool2d(2), block(width, 2 * width), nn.MaxPool2d(2), block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) with Fashion-MNIST's statistics; (N, H, W, 3) -> (N, 3, H, W)
    standardized to about zero mean and unit spread."""
    return to_tensor(images, 255.0, *((0.286, 0.353) if np.ndim(images) == 3 else (0.5, 0.25)))


def reference_key(config: ReferenceConfig) -> str:
    """A short hash of the training parameters and the data: the default fashion world by name, any
    other by the content of its real and val images (the same data at another path keeps its key)."""
    from synkit.data.worlds import key_payload

    payload = {"model": "FashionCNN", "version": REFERENCE_VERSION, **key_payload(config, lambda world: ["real", "val"])}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


@torch.inference_mode()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels and penultimate features (float32) of uint8 images."""
    model.eval()
    labels, feats = [], []
    for i in range(0, len(images), batch_size):
        with precision.autocast("cpu"):
            f = model.features(_tensor(images[i : i + batch_size]))
            logits = model.head(f)
        labels.append(logits.float().argmax(1).numpy())
        feats.append(f.float().numpy())
    return np.concatenate(labels), np.concatenate(feats)


def train_reference(config: ReferenceConfig, out_dir: str | Path, progress: bool = True) -> Path:
    """Train the fashion reference classifier on ``real`` (random flips and 2-pixel shifts),
    write ``model.safetensors`` and ``reference.json`` (val accuracy) atomically; return the folder."""
    from safetensors.torch import save_file

    from synkit.data.worlds import in_memory, world_of

    world = world_of(config)
    if not in_memory(world):
        raise ValueError(f"synkit trains its own reference classifier on images held in memory; the {config.world} world's images are "
                         "larger: set image_size, or give reference_model (a timm classifier of the world's classes).")
    real, val = world.split("real"), world.split("val")
    torch.manual_seed(config.seed)
    x, y = _tensor(real.images), torch.from_numpy(np.asarray(real.labels))
    # channels_last: 1.3x faster training steps on CPU here (oneDNN's preferred layout for these convs)
    model = FashionCNN(config.width, len(world.classes), x.shape[1]).to(memory_format=torch.channels_last)
    steps_per_epoch = -(-len(x) // config.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()
    bar = tqdm(total=config.epochs * steps_per_epoch, desc="reference classifier", unit="step", disable=not progress)
    model.train()

    def batches():  # each epoch a permutation; random flips and 2-pixel shifts, all from the run's own generator
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), config.batch_size):
                idx = order[i : i + config.batch_size]
                xb = x[idx]
                flip = torch.rand(len(xb), generator=gen) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
                dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
                yield torch.roll(xb, shifts=(dy, dx), dims=(2, 3)).contiguous(memory_format=torch.channels_last), y[idx]

    def loss_of(batch, step):
        with precision.autocast("cpu"):
            return F.cross_entropy(model(batch[0]).float(), batch[1], label_smoothing=0.05)

    total = config.epochs * steps_per_epoch
    loop.optimizer_steps(batches(), loss_of, None, opt, sched, 0, total, total, None, bar, show_loss_every=1)
    pred, _ = predict(model, val.images)
    val_acc = float((pred == val.labels).mean())
    out = Path(out_dir)
    with atomic(out, keep_existing=True) as tmp:  # kept: another process finished first with the same key
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")  # safetensors stores the standard layout
        write_json({"config": dataclasses.asdict(config), "val_top1": val_acc, "train_s": time.perf_counter() - t0,
                    "num_classes": len(world.classes), "in_chans": int(x.shape[1]), "classes": [c.name for c in world.classes]},
                   tmp / "reference.json")
    return out


def ensure_reference(config: ReferenceConfig, models_dir: str | Path = "outputs/models", progress: bool = True) -> Path:
    """The cached reference classifier folder, trained first when missing."""
    out = Path(models_dir) / f"reference-{reference_key(config)}"
    if (out / "reference.json").exists():
        return out
    return train_reference(config, out, progress)


def load_reference(folder: str | Path) -> tuple[FashionCNN, dict]:
    """The classifier and its record (val accuracy, config) from a folder ``train_reference`` wrote."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info = json.loads((folder / "reference.json").read_text())
    model = FashionCNN(info["config"]["width"], info.get("num_classes", 10), info.get("in_chans", 1))
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model.eval(), info


def per_class_quality(pred: np.ndarray, feats: np.ndarray, labels: np.ndarray, num_classes: int) -> pd.DataFrame:
    """Per class: F1 of the reference classifier's labels, and the diversity of its features."""
    from sklearn.metrics import f1_score

    if len(pred) != len(labels) or len(feats) != len(labels):
        raise ValueError(f"predictions ({len(pred)}), features ({len(feats)}) and labels ({len(labels)}) must have equal length.")
    f1 = f1_score(labels, pred, labels=list(range(num_classes)), average=None, zero_division=0)
    rows = []
    for c in range(num_classes):
        mine = feats[labels == c]
        rows.append({
            "class_index": c, "n": int(len(mine)), "f1": float(f1[c]),
            "diversity": float(mine.std(axis=0).mean()) if len(mine) > 1 else float("nan"),
        })
    return pd.DataFrame(rows)


DEFAULT_TIMM_REFERENCE = "vit_base_patch16_224.augreg2_in21k_ft_in1k"


def study_reference(settings, n_classes: int, models_dir: str | Path, *, model: str | None = None, weights: str | None = None,
                    config: dict | None = None, seed: int = 0):
    """03_quality's reference classifier: synkit's own, trained on the real split of the world of ``settings``
    (``WorldSettings``) and cached, when the world is held in memory and no ``model`` is named; else the
    pretrained timm classifier ``model`` (ImageNet's ViT-B/16 by default) with ``weights``. Returns
    (predict: images -> (labels, features), info with its val top-1, NaN where not measured here, a line to print)."""
    from synkit.data.worlds import in_memory

    world = settings.load()
    if model is None and in_memory(world):
        fields = {f.name for f in dataclasses.fields(ReferenceConfig)}
        unknown = sorted(set(config or {}) - fields)
        if unknown:
            raise ValueError(f"reference_config key {unknown[0]!r} is unknown; valid keys are {', '.join(sorted(fields))}.")
        ref_dir = ensure_reference(ReferenceConfig(**settings.fields(ood=False), **{"seed": seed, **(config or {})}), models_dir)
        net, info = load_reference(ref_dir)
        line = f"reference classifier {ref_dir.name}: val top-1 {info['val_top1']:.3f} (trained on {len(world.split('real'))} real images)"
        return (lambda images: predict(net, images)), info, line
    model = model or DEFAULT_TIMM_REFERENCE
    net, data_config = load_timm_reference(model, weights, num_classes=n_classes)
    line = f"reference classifier: {model} ({weights or 'hub weights'})"
    return (lambda images: predict_timm(net, data_config, images)), {"val_top1": float("nan"), "model": model}, line


def score_configs(configs: pd.DataFrame, predict_fn, study_dir: str | Path, per_class: int, class_names: list[str]):
    """03_quality's tables: (per class: each configuration's recognizability (F1) and diversity on ``per_class`` of its
    images per class; the same by configuration, averaged over classes). Several generators: each (generator,
    prompt set) is its own CFG series."""
    from synkit.core.files import from_study
    from synkit.data.shards import read_images

    tables = []
    for row in configs.itertuples():
        images, manifest = read_images(Path(from_study(row.manifest, study_dir)).parent, per_class=per_class)
        labels, feats = predict_fn(images)
        table = per_class_quality(labels, feats, manifest["class_index"].to_numpy(), len(class_names))
        tables.append(table.assign(config=row.config, generator=getattr(row, "generator", None), prompt_set=row.prompt_set,
                                   guidance_scale=row.guidance_scale))
    scores = pd.concat(tables, ignore_index=True).assign(class_name=lambda t: [class_names[i] for i in t["class_index"]])
    if scores["generator"].nunique() > 1:
        scores["series"] = scores["generator"] + ": " + scores["prompt_set"]
    keys = ["config", "generator", "prompt_set", "guidance_scale"] + (["series"] if "series" in scores else [])
    summary = (
        scores.groupby(keys, as_index=False, dropna=False)
        .agg(recognizability=("f1", "mean"), diversity=("diversity", "mean"), images_per_class=("n", "min"))
        .sort_values(["generator", "prompt_set", "guidance_scale"])
    )
    return scores, summary


# ---------------------------------------------------------------- other worlds: a pretrained timm classifier


def load_timm_reference(name: str, weights: str | None = None, num_classes: int = 1000):
    """A pretrained timm classifier as the reference (the paper: a ViT-B at 86.2% top-1):
    weights from the hub by ``name``, or from a local ``weights`` file (safetensors or a state
    dict, read with ``weights_only``). Returns (model, data config)."""
    import timm

    overlay = None
    if weights:
        if not Path(weights).exists():
            raise FileNotFoundError(f"reference_weights {weights} does not exist; give a local .safetensors/.pth file or None for the hub.")
        overlay = {"file": str(weights), "num_classes": num_classes}  # else timm drops the head as a class-count mismatch
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=num_classes)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"reference_model {name!r} is not a timm model name; list them with timm.list_models(pretrained=True).") from None
        if "size mismatch" in str(err):  # e.g. an ImageNet-1k file for a 10-class world
            raise ValueError(f"reference_weights {weights} do not fit reference_model {name!r} over the world's {num_classes} classes "
                             "(a layer's size differs, such as a 1000-class head); give weights trained on this world's classes, "
                             "or reference_model None to train synkit's own reference on the real split.") from None
        raise
    except OSError as err:  # no network and not in the cache
        raise OSError(f"the weights of reference_model {name!r} are neither cached nor downloadable here ({err}); "
                      "set reference_weights to a local file.") from None
    return model.eval(), timm.data.resolve_data_config(model=model)


@torch.inference_mode()
def predict_timm(model, data_config: dict, images: np.ndarray, batch_size: int = 256, device: str | None = None,
                 autocast: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and pre-logits features of uint8 RGB images (N, H, W, 3) through timm's eval transform,
    in batches on ``device`` (default: cuda when present, else cpu; the model is moved there), in
    bf16 autocast on a GPU (``autocast``: default on for cuda, off for cpu, where the reference's
    features are compared in float32)."""
    import timm
    from PIL import Image

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    autocast = device.type == "cuda" if autocast is None else autocast
    model = model.to(device).eval()
    transform = timm.data.create_transform(**data_config, is_training=False)
    labels, feats = [], []
    with torch.inference_mode():
        for i in tqdm(range(0, len(images), batch_size), desc="reference predictions", unit="batch", leave=False):
            x = torch.stack([transform(Image.fromarray(im).convert("RGB")) for im in images[i : i + batch_size]]).to(device, non_blocking=True)
            with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
                f = model.forward_head(model.forward_features(x), pre_logits=True)
                logits = model.get_classifier()(f)
            labels.append(logits.argmax(1).cpu().numpy())
            feats.append(f.float().cpu().numpy())
    return np.concatenate(labels), np.concatenate(feats)
