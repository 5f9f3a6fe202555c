"""What a supervised run trains and is evaluated on: sources (real, a generated configuration, a mix), each seed's own
nested class-balanced draw of them, images as tensors (in memory) or files (decoded by workers), and the eval sets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from synkit.core import sources
from synkit.core.images import to_tensor as images_to_tensor


def balanced_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation in which every prefix is class-balanced (index-major)."""
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rank[rng.permutation(members)] = np.arange(len(members))
    return np.lexsort((labels, rank))


@dataclass(frozen=True)
class Source:
    """What a training set is drawn from: ``real``, a synthetic configuration, or a mix."""

    name: str  # as written in the results ("real", "embedded-in_captions-cfg2", "...+real:0.5")
    config: str | None = None  # synthetic configuration folder name
    real_fraction: float = 1.0


def parse_source(spec: str, configs: pd.DataFrame) -> Source:
    """``real``, ``PROMPT_SET@CFG`` / a configuration name, or either of them ``+real:F``."""
    from synkit.generate.plan import parse_config

    if spec == sources.REAL:
        return Source("real")
    parsed = sources.parse(spec)
    base, fraction = parsed.base, parsed.real_fraction() if parsed.is_mix else 0.0
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
    return Source(sources.mix_name(config, fraction) if parsed.is_mix else config, config, fraction)


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


TO_TENSOR_MEAN, TO_TENSOR_STD = 0.286, 0.353  # Fashion-MNIST's pixel statistics: the in-memory worlds' standardization


def to_tensor(images: np.ndarray, mean: float = TO_TENSOR_MEAN, std: float = TO_TENSOR_STD) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float (N, C, H, W), standardized."""
    return images_to_tensor(images, 255.0, mean, std)


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
