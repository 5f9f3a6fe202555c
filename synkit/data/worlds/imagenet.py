"""The imagenet world: ImageNet-1k classes from package metadata, images from the user's folders.

Class names are open_clip's curated ImageNet names (the ones CLIP's zero-shot templates use);
wnids come from ``timm.data.ImageNetInfo``; lemmas, glosses and hypernym chains come from
WordNet 3.0 (the table shipped in synkit). Images, where a study needs them, are read from
folders laid out with one subfolder per wnid:

    world_root/train/n01440764/*.JPEG   -> split "real" (the real training pool, D_I = 1.28M)
    world_root/val/n01440764/*.JPEG     -> split "val"
    ood_roots = {"imagenet_r": "/data/imagenet-r", ...}   -> OOD views with wnid subfolders
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from synkit.data import wordnet
from synkit.data.worlds.base import ClassInfo, FileSplit, distinct_names, scan_class_folders


class ImageNetWorld:
    name = "imagenet"
    zero_shot_templates = None  # open_clip's 80 ImageNet templates, as the paper
    coarse_task = False
    web_captions = False
    image_format = (256, "RGB", "resize")  # generated images as stored: the paper's 256 px
    renamed: dict = {}  # class index -> (list name, the name used): filled when ``classes`` is read
    split_notes = {"real": "ImageNet's training images from your folder: D_I", "val": "ImageNet's validation images"}

    def __init__(self, root: str | Path | None = None, ood_roots: dict | None = None):
        self.root = Path(root) if root else None
        self.ood_roots = {str(k): Path(v) for k, v in (ood_roots or {}).items()}

    @property
    def ood_views(self) -> tuple[str, ...]:
        return tuple(self.ood_roots)

    @property
    def splits(self) -> tuple[str, ...]:
        return ("real", "val", *self.ood_views)

    @cached_property
    def classes(self) -> list[ClassInfo]:
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        out = []
        for i, name in enumerate(IMAGENET_CLASSNAMES):
            syn = wordnet.synset(info.index_to_label_name(i))
            out.append(ClassInfo(i, name, syn.wnid, syn.lemmas, syn.gloss, syn.hypernyms))
        out, self.renamed = distinct_names(out)  # open_clip names two pairs of classes alike (missile, sunglasses)
        return out

    def split(self, name: str) -> FileSplit:
        """Images of ``name``: real (world_root/train), val (world_root/val) or an OOD view."""
        if name in self.ood_roots:
            folder = self.ood_roots[name]
        elif name in ("real", "val"):
            if self.root is None:
                raise FileNotFoundError(
                    f"the imagenet world has no images for split {name!r}: set world_root to a folder with "
                    "train/ and val/, each holding one subfolder per wnid (n01440764/ ...)."
                )
            folder = self.root / ("train" if name == "real" else "val")
        else:
            raise ValueError(f"unknown split {name!r} of the imagenet world; valid splits are {', '.join(self.splits)}.")
        return scan_class_folders(folder, {c.wnid: c.index for c in self.classes}, name)
