"""The folder world: a user's own labelled images, so the study runs on their data.

Layout: ``root/train/<class>/``, ``root/val/<class>/`` (split "val"); every other folder of ``root`` with the
same class subfolders is an OOD view named after it (``root/sketch/<class>/`` -> split "sketch"). The train folders
are split per class, by a fixed seeded draw: ``web_share`` (half) of each class's images are the ``web`` split, what an
embedded generator learns from, and the rest are ``real`` (D_I, and CLIP's real pairs): so the generator never saw the
images the study's real classifiers and CLIP learn from, as the paper's Stable Diffusion never saw ImageNet's.

Small images (at most ``MEMORY_MAX_SIZE`` pixels a side, such as digits, icons or CIFAR-style
photos) are held in memory as uint8 arrays, square at the largest side found (``image_size`` sets
another), grayscale when every image is, else RGB: the whole miniature study then runs on them as
on Fashion-MNIST (the embedded text-to-image model, its own reference classifier, the small
default classifier, CLIP). Larger images stay files, read through timm's transforms.

Class names are the subfolder names, or come from ``class_map``: a JSON file mapping each
folder name to a display name, or to ``{"name": ..., "wnid": "n03472535"}``. WordNet metadata
comes from the wnid where given, else from the class name's most frequent noun sense in the
WordNet database when it is installed; otherwise gloss and hypernyms stay empty, and the
prompt sets that need them say so.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from synkit.data import wordnet
from synkit.data.worlds.base import ArraySplit, ClassInfo, FileSplit, scan_class_folders

MEMORY_MAX_SIZE = 64  # images at most this many pixels a side are held in memory
WEB_SHARE = 0.5  # share of each class's train images held out of real for the embedded generator
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


class FolderWorld:
    name = "folder"
    zero_shot_templates = None  # open_clip's 80 ImageNet templates, as the paper
    coarse_task = False
    web_captions = False
    renamed: dict = {}  # a name given twice is refused (classes), not renamed
    web_styles: dict = {}  # its web share is in the train folders' own style (the world card)
    split_notes = {"web": "a share of each class of the train/ folders: the embedded generator's corpus",
                   "real": "the rest of the train/ folders: D_I and CLIP's real pairs", "val": "the val/ folders"}

    def __init__(self, root: str | Path, class_map: str | Path | None = None, image_size: int | None = None, web_share: float = WEB_SHARE):
        if not 0 < web_share < 1:
            raise ValueError(f"web_share={web_share!r} is invalid; give the share of each class's train images the generator learns from, between 0 and 1.")
        self.web_share = web_share
        self.root = Path(root)
        if not (self.root / "train").is_dir():
            raise FileNotFoundError(f"folder world root {self.root} has no train/ folder; expected train/<class>/ and val/<class>/.")
        if image_size is not None and not (isinstance(image_size, int) and 8 <= image_size <= MEMORY_MAX_SIZE):
            raise ValueError(f"image_size={image_size!r} is invalid; give a whole number from 8 to {MEMORY_MAX_SIZE} (or None: the images' own size).")
        self.class_map = Path(class_map) if class_map else None
        self.image_size = image_size
        self._arrays: dict[str, ArraySplit] = {}

    @cached_property
    def memory(self) -> tuple[int, str] | None:
        """(side, mode) when the images are held in memory (their largest side is at most
        ``MEMORY_MAX_SIZE``, or ``image_size`` is set), else None (files)."""
        files = self._files("train")
        sizes, modes = set(), set()
        for p in files.paths[:: max(1, len(files.paths) // 64)]:  # a sample of about 64 images spread over the classes
            with Image.open(p) as im:
                sizes.add(max(im.size))
                modes.add(im.mode)
        side = self.image_size or max(sizes)
        if self.image_size is None and side > MEMORY_MAX_SIZE:
            return None
        return side, "L" if modes <= GRAY_MODES else "RGB"

    @property
    def image_format(self) -> tuple[int, str, str]:
        """Generated images as stored (side, mode, how they reach it): the size and mode held in memory, else 256 px RGB."""
        side, mode = self.memory or (256, "RGB")
        return side, mode, "resize"

    @property
    def channels(self) -> int:
        return 3 if self.memory is None or self.memory[1] == "RGB" else 1

    @cached_property
    def folders(self) -> list[str]:
        return sorted(p.name for p in (self.root / "train").iterdir() if p.is_dir())

    @property
    def ood_views(self) -> tuple[str, ...]:
        return tuple(sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name not in ("train", "val", "web", "real")))

    @property
    def splits(self) -> tuple[str, ...]:
        return ("web", "real", "val", *self.ood_views)

    def _mapping(self) -> dict[str, dict]:
        if self.class_map is None:
            return {}
        raw = json.loads(self.class_map.read_text(encoding="utf-8"))
        unknown = sorted(set(raw) - set(self.folders))
        if unknown:
            raise ValueError(f"class_map {self.class_map} names folders that train/ lacks: {', '.join(unknown)}.")
        return {k: (v if isinstance(v, dict) else {"name": v}) for k, v in raw.items()}

    @cached_property
    def classes(self) -> list[ClassInfo]:
        mapping = self._mapping()
        db = wordnet.WordNet() if wordnet.WordNet.available() else None
        out = []
        for index, folder in enumerate(self.folders):
            entry = mapping.get(folder, {})
            name = entry.get("name", folder)
            wnid = entry.get("wnid")
            if wnid is None and db is not None:
                wnid = next(iter(db.lookup(name)), None)
            if wnid is None:
                out.append(ClassInfo(index, name))
                continue
            syn = wordnet.synset(wnid)
            out.append(ClassInfo(index, name, wnid, syn.lemmas, syn.gloss, syn.hypernyms))
        seen: dict[str, str] = {}
        for c in out:  # class names become file names ("T-shirt/top" -> "T-shirt_top"): they must stay distinct
            if not re.search(r"[A-Za-z0-9]", c.name):
                raise ValueError(f"class name {c.name!r} has no letter or digit to name its files by; give the class a real name in class_map.")
            if c.slug in seen:
                raise ValueError(f"class names {seen[c.slug]!r} and {c.name!r} both become the file name {c.slug!r}; rename one in class_map.")
            seen[c.slug] = c.name
        return out

    def _files(self, name: str) -> FileSplit:
        if name not in (*self.splits, "train"):
            raise ValueError(f"unknown split {name!r} of folder world {self.root}; valid splits are {', '.join(self.splits)}.")
        if name in ("web", "real"):
            train = self._files("train")
            idx = self._train_parts[name]
            return FileSplit([train.paths[i] for i in idx], train.labels[idx], train.ids[idx])
        return scan_class_folders(self.root / name, {f: i for i, f in enumerate(self.folders)}, name)

    @cached_property
    def _train_parts(self) -> dict[str, np.ndarray]:
        """Indices into the train folders' files: per class, a seeded ``web_share`` of them for ``web`` (at least one where
        the class has two or more, and always one left), the rest for ``real``."""
        labels = self._files("train").labels
        rng = np.random.default_rng(0)
        web = []
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            web.append(members[: min(len(members) - 1, max(1, round(self.web_share * len(members))))])
        web = np.sort(np.concatenate(web)).astype(np.int64)
        return {"web": web, "real": np.setdiff1d(np.arange(len(labels)), web)}

    def split(self, name: str) -> FileSplit | ArraySplit:
        """The split's images: uint8 arrays in memory for small images (see the module docstring), else files."""
        files = self._files(name)
        if self.memory is None:
            return files
        if name not in self._arrays:
            side, mode = self.memory
            images = np.stack([_square(p, side, mode) for p in files.paths])
            self._arrays[name] = ArraySplit(images, files.labels, files.ids)
        return self._arrays[name]


def _square(path: Path, side: int, mode: str) -> np.ndarray:
    """An image file as a uint8 array, converted to ``mode`` and resized to side x side."""
    with Image.open(path) as im:
        return fit_image(im, side, mode)


def fit_image(im: Image.Image, side: int, mode: str) -> np.ndarray:
    """``im`` converted to ``mode`` ("L" or "RGB") and resized (bicubic) to side x side, as a uint8 array."""
    im = im.convert(mode)
    if im.size != (side, side):
        im = im.resize((side, side), Image.BICUBIC)
    return np.asarray(im)


def fit_images(images: np.ndarray, shape: tuple) -> np.ndarray:
    """uint8 images converted and resized to ``shape`` ((S, S) grayscale or (S, S, 3) RGB), as a folder world's are."""
    return np.stack([fit_image(Image.fromarray(im), shape[0], "L" if len(shape) == 2 else "RGB") for im in images])
