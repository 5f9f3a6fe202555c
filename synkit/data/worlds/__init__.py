"""Worlds: where a study's classes, WordNet metadata and real images come from.

A world gives class names with WordNet metadata (``ClassInfo``), real images by split
(``world.split("real")``, ``"val"``, ``"web"`` where the world has one) and out-of-distribution
views of val (``world.ood_views``, each also a split name).

- ``fashion``: Fashion-MNIST, embedded (Debian package ``dataset-fashion-mnist``).
- ``imagenet``: the 1000 ImageNet classes from timm/open_clip metadata; images from user folders.
- ``folder``: any labelled image folder (``train/<class>/``, ``val/<class>/``, more folders = OOD views);
  small images are held in memory like Fashion-MNIST's.

``t2i_split(world)`` names the split an embedded text-to-image model learns from: ``web`` (fashion's LAION analog;
a folder world's web share of its train images, held out of ``real``). ``pairs_split(world)`` names the split CLIP's
real image-text pairs come from: fashion's ``pairs`` (web data the generator never saw), a folder world's ``real``
(disjoint from its ``web``), so CLIP's synthetic images never re-render pairs the generator learned from.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synkit.data.worlds.base import (  # noqa: F401  (the World protocol's pieces, for callers)
    IMAGE_SUFFIXES, ArraySplit, ClassInfo, FileSplit, Split, safe_name, scan_class_folders)

WORLDS = ("fashion", "imagenet", "folder")

def t2i_split(world) -> str:
    """The split an embedded text-to-image model trains on: ``web`` where the world has one, else ``real``."""
    return "web" if "web" in world.splits else "real"


def pairs_split(world) -> str:
    """The split CLIP's real pairs come from: ``pairs`` where the world has one, else ``real`` (a folder world's, whose
    generator learns from its ``web`` share)."""
    return "pairs" if "pairs" in world.splits else "real"


def has_alt_text(world) -> bool:
    """Whether the world's web data comes with alt text of its own (``world.alt_texts``: fashion's LAION analog): then its
    generators learn from that alone and CLIP's real pairs carry it."""
    return callable(getattr(world, "alt_texts", None))


def fingerprint(world, split: str) -> str:
    """A short hash of a split's content (images and labels, in memory or as files): what keys a
    model trained on it, so the same data at another path keeps its key."""
    import hashlib

    data = world.split(split)
    h = hashlib.sha256(np.asarray(data.labels).tobytes())
    if data.in_memory:
        h.update(np.ascontiguousarray(data.images).tobytes())
    else:
        for p in data.paths:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


WORLD_FIELDS = ("world", "world_root", "class_map", "image_size")


def world_of(config):
    """The world a model's config learns from (its fields world, world_root, class_map, image_size,
    web_size, real_size, split_seed and ambiguous_names: the study's world parameters)."""
    return WorldSettings.of(dataclasses.asdict(config)).load()


def key_payload(config, splits) -> dict:
    """A model config's fields for its cache key, with the world fields replaced by the data: the
    default fashion world (Debian's files) by name; any other by the content of ``splits(world)``
    (``fingerprint``), so the same images at another path give the same key."""
    import dataclasses

    from synkit.data.worlds.fashion import VERSION

    payload = {k: v for k, v in dataclasses.asdict(config).items() if k not in WORLD_FIELDS}
    payload["world"] = f"fashion-v{VERSION}"  # its splits changed with each version
    if config.world != "fashion" or config.world_root or config.class_map or config.image_size:
        world = world_of(config)
        payload.update(world=config.world, data=[fingerprint(world, s) for s in splits(world)], image_size=config.image_size)
    return payload


@dataclasses.dataclass(frozen=True)
class WorldFields:
    """The world a model learns from, declared once: the fields every model config that trains on a world keeps
    (and keys: the default fashion world by name, any other by its images' content, ``key_payload``)."""

    world: str = "fashion"  # fashion, imagenet or folder (WORLDS)
    world_root: str | None = None  # its images (fashion: Debian's files when None)
    web_size: int = 50_000  # fashion: the most images its web corpus (what the embedded generators learn from) holds; its long tail leaves fewer
    real_size: int = 10_000  # fashion: images in the real split, D_I
    split_seed: int = 0  # fashion: seed of the fixed web / pairs / real split, the web's class ranks, styles and alt text
    ambiguous_names: int = 2  # fashion: class names its web also uses for another, commoner class (0: none)
    class_map: str | None = None  # folder world: JSON with class names / wnids
    image_size: int | None = None  # folder world: the in-memory image size (None: the images' own)


@dataclasses.dataclass(frozen=True)
class WorldSettings(WorldFields):
    """The study's world parameters, as every notebook declares them, in one object passed by name
    (``WorldSettings.of(globals())`` in a notebook; ``.load()`` gives the world, ``.fields()`` the
    values for a job or model config that keeps them as its own fields). Jobs that evaluate on the
    world's OOD views are WorldSettings themselves (``TrainJob``, ``ClipJob``)."""

    ood_roots: dict | None = None  # imagenet: OOD view name -> folder

    @classmethod
    def of(cls, namespace: dict) -> WorldSettings:
        """The settings among ``namespace``'s names (a notebook's parameters, a job's fields); the rest keep their defaults."""
        return WorldSettings(**{f.name: namespace[f.name] for f in dataclasses.fields(WorldSettings) if f.name in namespace})

    def fields(self, *, ood: bool = True) -> dict:
        """The world fields' values (without ``ood_roots`` for a model config, which keeps only ``WorldFields``)."""
        names = [f.name for f in dataclasses.fields(WorldSettings if ood else WorldFields)]
        return {name: getattr(self, name) for name in names}

    def load(self):
        return load_world(**self.fields())


def in_memory(world) -> bool:
    """Whether the world's images are uint8 arrays in memory (fashion, small-image folder worlds)."""
    return world.name == "fashion" or getattr(world, "memory", None) is not None


def load_world(
    world: str,
    world_root: str | None = None,
    web_size: int = 50_000,
    real_size: int = 10_000,
    split_seed: int = 0,
    ambiguous_names: int = 2,
    ood_roots: dict | None = None,
    class_map: str | None = None,
    image_size: int | None = None,
):
    """The world named ``world`` with its options (the notebooks' shared parameters)."""
    if world == "fashion":
        from synkit.data.worlds.fashion import FashionWorld

        return FashionWorld(root=world_root, web_size=web_size, real_size=real_size, split_seed=split_seed,
                            ambiguous_names=ambiguous_names)
    if world == "imagenet":
        from synkit.data.worlds.imagenet import ImageNetWorld

        return ImageNetWorld(root=world_root, ood_roots=ood_roots)
    if world == "folder":
        from synkit.data.worlds.folder import FolderWorld

        if world_root is None:
            raise ValueError("world 'folder' needs world_root: a folder with train/ and val/, one subfolder per class.")
        return FolderWorld(root=world_root, class_map=class_map, image_size=image_size)
    raise ValueError(f"unknown world {world!r}; valid worlds are {', '.join(WORLDS)}.")
