"""The fashion world: Fashion-MNIST as a miniature of the paper's ImageNet + LAION setting.

Splits (fixed and seeded; ``web`` and ``real`` are disjoint parts of the 60k training images):

- ``web``: what the embedded text-to-image model learns from (the LAION of this world);
- ``real``: the curated real pool, the ImageNet-train of this world (its size is D_I);
- ``val``: the 10k test images.

Out-of-distribution views of val (stand-ins for ImageNet-Sketch / -R):

- ``sketch``: the Sobel gradient magnitude of each image, rescaled to 0..255 per image: an
  edge drawing with no fill or texture;
- ``silhouette``: every pixel above 10% intensity set to white, the rest black: the shape
  alone, with no shading, print or texture.

Where the images come from, first found wins: ``root`` (or the environment variable
``SYNKIT_FASHION_MNIST_DIR``), the Debian package ``dataset-fashion-mnist``
(/usr/share/datasets/fashion-mnist), torchvision's download into ~/.cache/synkit.
"""

from __future__ import annotations

import gzip
import os
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from synkit.data import wordnet
from synkit.data.worlds.base import ArraySplit, ClassInfo

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "SYNKIT_FASHION_MNIST_DIR"
CACHE_DIR = Path.home() / ".cache" / "synkit" / "fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Each class's WordNet 3.0 noun synset, chosen by hand (offsets checked against data.noun).
FASHION_WNIDS = (
    "n03595614",  # jersey, T-shirt, tee_shirt
    "n04489008",  # trouser, pant
    "n04021028",  # pullover, slipover
    "n03236735",  # dress, frock
    "n03057021",  # coat
    "n04133789",  # sandal
    "n04197391",  # shirt
    "n03472535",  # gym_shoe, sneaker, tennis_shoe
    "n02774152",  # bag, handbag, pocketbook, purse
    "n02872752",  # boot
)
OOD_VIEWS = ("sketch", "silhouette")
TRAIN_SIZE = 60_000


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        for cand in (folder / name, folder / "FashionMNIST" / "raw" / name):
            if cand.is_file():
                return cand
    return None


def _has_files(folder: Path) -> bool:
    return all(_find_file(folder, stem) for pair in FILES.values() for stem in pair)


def locate(root: str | Path | None = None, download: bool = True) -> Path:
    """The folder holding Fashion-MNIST's four idx files, by the order in the module docstring."""
    explicit = root or os.environ.get(ENV_VAR)
    if explicit:
        folder = Path(explicit)
        if not _has_files(folder):
            raise FileNotFoundError(
                f"Fashion-MNIST folder {folder} lacks the idx files (train-images-idx3-ubyte.gz, "
                "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)."
            )
        return folder
    for folder in (DEBIAN_DIR, CACHE_DIR):
        if _has_files(folder):
            return folder
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(CACHE_DIR), train=True, download=True)
            FashionMNIST(str(CACHE_DIR), train=False, download=True)
            if _has_files(CACHE_DIR):
                return CACHE_DIR
        except Exception as err:  # no network: fall through to the error naming the package
            reason = f" (torchvision's download failed: {err})"
        else:
            reason = ""
    else:
        reason = ""
    raise FileNotFoundError(
        f"Fashion-MNIST not found in {DEBIAN_DIR}{reason}; install it with "
        f"`apt-get install dataset-fashion-mnist` or set {ENV_VAR} to a folder with its four .gz files."
    )


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@lru_cache(maxsize=4)
def read_part(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of ``part`` ("train" or "test")."""
    images_stem, labels_stem = FILES[part]
    images = _read_idx(_find_file(folder, images_stem))
    labels = _read_idx(_find_file(folder, labels_stem)).astype(np.int64)
    images.setflags(write=False)
    return images, labels


def sketch(images: np.ndarray) -> np.ndarray:
    """Edge drawings: Sobel gradient magnitude, rescaled to 0..255 per image."""
    x = np.pad(images.astype(np.float32), ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (x[:, :-2, 2:] + 2 * x[:, 1:-1, 2:] + x[:, 2:, 2:]) - (x[:, :-2, :-2] + 2 * x[:, 1:-1, :-2] + x[:, 2:, :-2])
    gy = (x[:, 2:, :-2] + 2 * x[:, 2:, 1:-1] + x[:, 2:, 2:]) - (x[:, :-2, :-2] + 2 * x[:, :-2, 1:-1] + x[:, :-2, 2:])
    mag = np.hypot(gx, gy)
    peak = mag.reshape(len(mag), -1).max(axis=1).reshape(-1, 1, 1)
    return (255 * mag / np.maximum(peak, 1e-6)).round().astype(np.uint8)


def silhouette(images: np.ndarray, threshold: int = 26) -> np.ndarray:
    """Shapes only: pixels above ``threshold`` (about 10% intensity) white, the rest black."""
    return np.where(images > threshold, 255, 0).astype(np.uint8)


class FashionWorld:
    """Fashion-MNIST with fixed, seeded, disjoint ``web`` / ``real`` splits of its 60k training images."""

    name = "fashion"
    ood_views = OOD_VIEWS
    # the zero-shot templates: the caption style of this world's web text ("NAME, attributes") and a few plain
    # descriptions; documented here so results are comparable across runs
    zero_shot_templates = ("{}", "{}, an image", "a photo of a {}.", "a {}.", "a grayscale photo of a {}.", "a product photo of a {}.")
    coarse_task = True  # its classes group into WordNet's footwear / clothing / container
    web_captions = True  # its web split has alt-text captions of its own (the CLIP exact-names control rewrites them)
    image_format = (28, "L", "center_crop")  # generated images as stored: side, mode, how they reach it
    renamed: dict = {}  # its ten names are distinct
    web_styles: dict = {}  # style -> share of the web split in a style the real split lacks (the world card): none here
    split_notes = {"web": "Fashion-MNIST training images with offline attribute captions: the embedded generator's corpus",
                   "real": "Fashion-MNIST training images, disjoint from web: D_I", "val": "Fashion-MNIST's test images",
                   "sketch": "val as Sobel edge drawings", "silhouette": "val as thresholded shapes"}

    def __init__(self, root: str | Path | None = None, web_size: int = 50_000, real_size: int = 10_000, split_seed: int = 0):
        for key, value in (("web_size", web_size), ("real_size", real_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r} is invalid; it must be a positive whole number of images.")
        if web_size + real_size > TRAIN_SIZE:
            raise ValueError(
                f"web_size + real_size = {web_size + real_size} exceeds Fashion-MNIST's {TRAIN_SIZE} training images; "
                "choose sizes that sum to at most 60000."
            )
        self.root = root
        self.web_size, self.real_size, self.split_seed = web_size, real_size, split_seed

    @cached_property
    def folder(self) -> Path:
        return locate(self.root)

    @cached_property
    def classes(self) -> list[ClassInfo]:
        out = []
        for index, (name, wnid) in enumerate(zip(CLASS_NAMES, FASHION_WNIDS)):
            syn = wordnet.synset(wnid)
            out.append(ClassInfo(index, name, wnid, syn.lemmas, syn.gloss, syn.hypernyms))
        return out

    @property
    def splits(self) -> tuple[str, ...]:
        return ("web", "real", "val", *self.ood_views)

    def _train_indices(self) -> dict[str, np.ndarray]:
        order = np.random.default_rng(self.split_seed).permutation(TRAIN_SIZE)
        return {
            "web": np.sort(order[: self.web_size]),
            "real": np.sort(order[self.web_size : self.web_size + self.real_size]),
        }

    def split(self, name: str) -> ArraySplit:
        """Images of split ``name``: web, real, val, or an OOD view of val (sketch, silhouette)."""
        if name in ("web", "real"):
            images, labels = read_part(self.folder, "train")
            idx = self._train_indices()[name]
            return ArraySplit(images[idx], labels[idx], np.array([f"train-{i:05d}" for i in idx]))
        if name == "val" or name in self.ood_views:
            images, labels = read_part(self.folder, "test")
            if name == "sketch":
                images = sketch(images)
            elif name == "silhouette":
                images = silhouette(images)
            ids = np.array([f"test-{i:05d}" for i in range(len(labels))])
            return ArraySplit(images, labels, ids)
        raise ValueError(f"unknown split {name!r} of the fashion world; valid splits are {', '.join(self.splits)}.")
