"""What every world is made of: classes with WordNet metadata, and splits of images held in memory (``ArraySplit``)
or read from files (``FileSplit``) behind one ``Split`` protocol."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

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


def distinct_names(classes: list[ClassInfo]) -> tuple[list[ClassInfo], dict[int, tuple[str, str]]]:
    """The classes with no two sharing a name (a list such as open_clip's ImageNet names calls two classes "missile"
    and two "sunglasses": they would get the same prompts and the same files). In a group of classes that share a
    name, the first whose first WordNet lemma is that name keeps it (else the group's first); every other takes its
    first lemma that no class uses (ImageNet: 744 "projectile", 836 "sunglass"), else the name with its wnid. Returns (classes, {index: (old,
    new)})."""
    import collections
    import dataclasses

    count = collections.Counter(c.name for c in classes)
    used = set(count)
    # the class that keeps a shared name: the first whose first lemma it is, else the first of the group
    keeper = {}
    for c in classes:
        if count[c.name] > 1 and (c.name not in keeper or (c.lemmas[:1] == [c.name] and keeper[c.name][1] is False)):
            keeper[c.name] = (c.index, c.lemmas[:1] == [c.name])
    renamed: dict[int, tuple[str, str]] = {}
    out = []
    for c in classes:
        if count[c.name] > 1 and keeper[c.name][0] != c.index:
            new = next((lemma for lemma in c.lemmas if lemma not in used), f"{c.name} ({c.wnid or c.index})")
            used.add(new)
            renamed[c.index] = (c.name, new)
            c = dataclasses.replace(c, name=new)
        out.append(c)
    return out, renamed


class Split(Protocol):
    """Real images of one split: ``labels`` and ``ids`` (numpy arrays), ``image(i)`` as PIL; ``in_memory``: whether
    ``images`` holds them all as one uint8 array (``ArraySplit``) or they are files read one by one (``FileSplit``)."""

    labels: np.ndarray
    ids: np.ndarray
    in_memory: bool

    def __len__(self) -> int: ...

    def image(self, i: int) -> Image.Image: ...


class LabelledImages:
    """What both kinds of split share: a length and (image, label) items, from ``labels`` and ``image(i)``."""

    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return self.image(i), int(self.labels[i])


@dataclass
class ArraySplit(LabelledImages):
    """A split held in memory as uint8 arrays (N, H, W) or (N, H, W, C)."""

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    in_memory = True

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])


@dataclass
class FileSplit(LabelledImages):
    """A split of image files on disk."""

    paths: list[Path]
    labels: np.ndarray
    ids: np.ndarray
    in_memory = False

    def image(self, i: int) -> Image.Image:
        with Image.open(self.paths[i]) as im:
            return im.convert("RGB")


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
