"""Worlds: where a study's classes, WordNet metadata and real images come from.

A world gives class names with WordNet metadata (``ClassInfo``), real images by split
(``world.split("real")``, ``"val"``, ``"web"`` where the world has one) and out-of-distribution
views of val (``world.ood_views``, each also a split name).

- ``fashion``: Fashion-MNIST, embedded (Debian package ``dataset-fashion-mnist``).
- ``imagenet``: the 1000 ImageNet classes from timm/open_clip metadata; images from user folders.
- ``folder``: any labelled image folder (``train/<class>/``, ``val/<class>/``, more folders = OOD views);
  small images are held in memory like Fashion-MNIST's.

``t2i_split(world)`` names the split an embedded text-to-image model learns from: fashion's
``web`` split (disjoint from ``real``); a folder world has no web of its own, so it is the ``real``
(train) split itself: its generator has seen D_I's images, unlike the paper's Stable Diffusion,
and the study's comparisons of synthetic and real images read as distillation of that split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

WORLDS = ("fashion", "imagenet", "folder")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


@dataclass(frozen=True)
class ClassInfo:
    """One class: its index, display name and WordNet noun synset (empty fields where unknown)."""

    index: int
    name: str
    wnid: str | None = None
    lemmas: list[str] = field(default_factory=list)
    gloss: str = ""
    hypernyms: list[list[str]] = field(default_factory=list)

    @property
    def slug(self) -> str:
        """The class name made safe for file paths ("T-shirt/top" -> "T-shirt_top")."""
        return safe_name(self.name)


def safe_name(name: str) -> str:
    """A file-name-safe form of ``name``: path separators and odd characters become ``_``."""
    slug = re.sub(r"\.{2,}", "_", re.sub(r"[^A-Za-z0-9._-]+", "_", name)).strip("._")  # no ".." anywhere
    return slug or "_"


class Split(Protocol):
    """Real images of one split: ``labels`` and ``ids`` (numpy arrays), ``image(i)`` as PIL."""

    labels: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int: ...

    def image(self, i: int) -> Image.Image: ...


@dataclass
class ArraySplit:
    """A split held in memory as uint8 arrays (N, H, W) or (N, H, W, C)."""

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.image(i), int(self.labels[i])


@dataclass
class FileSplit:
    """A split of image files on disk."""

    paths: list[Path]
    labels: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:
        with Image.open(self.paths[i]) as im:
            return im.convert("RGB")

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.image(i), int(self.labels[i])


def scan_class_folders(root: Path, folder_to_index: dict[str, int], split_name: str) -> FileSplit:
    """Image files under ``root/<folder>/`` for every folder in ``folder_to_index``, sorted.

    Folders not in the mapping are skipped (ImageNet-R and -A hold 200-class subsets).
    """
    if not root.is_dir():
        raise FileNotFoundError(f"split {split_name!r}: folder {root} does not exist.")
    paths, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name not in folder_to_index:
            continue
        files = sorted(p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [folder_to_index[sub.name]] * len(files)
    if not paths:
        raise FileNotFoundError(
            f"split {split_name!r}: no images under {root}; expected one subfolder per class "
            f"(such as {next(iter(folder_to_index))}/) holding image files."
        )
    ids = np.array([f"{split_name}/{p.relative_to(root).as_posix()}" for p in paths])
    return FileSplit(paths, np.array(labels, dtype=np.int64), ids)


def t2i_split(world) -> str:
    """The split an embedded text-to-image model trains on: ``web`` where the world has one, else ``real``."""
    return "web" if "web" in world.splits else "real"


def fingerprint(world, split: str) -> str:
    """A short hash of a split's content (images and labels, in memory or as files): what keys a
    model trained on it, so the same data at another path keeps its key."""
    import hashlib

    data = world.split(split)
    h = hashlib.sha256(np.asarray(data.labels).tobytes())
    if hasattr(data, "images"):
        h.update(np.ascontiguousarray(data.images).tobytes())
    else:
        for p in data.paths:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


WORLD_FIELDS = ("world", "world_root", "class_map", "image_size")


def world_of(config):
    """The world a model's config learns from (its fields world, world_root, class_map, image_size,
    web_size, real_size and split_seed: the study's world parameters)."""
    return load_world(config.world, config.world_root, config.web_size, config.real_size, config.split_seed, class_map=config.class_map,
                      image_size=config.image_size)


def key_payload(config, splits) -> dict:
    """A model config's fields for its cache key, with the world fields replaced by the data: the
    default fashion world (Debian's files) by name; any other by the content of ``splits(world)``
    (``fingerprint``), so the same images at another path give the same key."""
    import dataclasses

    payload = {k: v for k, v in dataclasses.asdict(config).items() if k not in WORLD_FIELDS}
    payload["world"] = "fashion"
    if config.world != "fashion" or config.world_root or config.class_map or config.image_size:
        world = world_of(config)
        payload.update(world=config.world, data=[fingerprint(world, s) for s in splits(world)], image_size=config.image_size)
    return payload


def in_memory(world) -> bool:
    """Whether the world's images are uint8 arrays in memory (fashion, small-image folder worlds)."""
    return world.name == "fashion" or getattr(world, "memory", None) is not None


def load_world(
    world: str,
    world_root: str | None = None,
    web_size: int = 50_000,
    real_size: int = 10_000,
    split_seed: int = 0,
    ood_roots: dict | None = None,
    class_map: str | None = None,
    image_size: int | None = None,
):
    """The world named ``world`` with its options (the notebooks' shared parameters)."""
    if world == "fashion":
        from synkit.worlds.fashion import FashionWorld

        return FashionWorld(root=world_root, web_size=web_size, real_size=real_size, split_seed=split_seed)
    if world == "imagenet":
        from synkit.worlds.imagenet import ImageNetWorld

        return ImageNetWorld(root=world_root, ood_roots=ood_roots)
    if world == "folder":
        from synkit.worlds.folder import FolderWorld

        if world_root is None:
            raise ValueError("world 'folder' needs world_root: a folder with train/ and val/, one subfolder per class.")
        return FolderWorld(root=world_root, class_map=class_map, image_size=image_size)
    raise ValueError(f"unknown world {world!r}; valid worlds are {', '.join(WORLDS)}.")
