"""CLIP's data: the web captions (the fashion world's alt text), the setups, images as CLIP's input tensors (and their
statistics), eval sets and labelled folders, and the batches of a run (in memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synkit.classify import data as classify_data
from synkit.core.images import to_tensor
from synkit.engine import runs

SETUPS = ("real", "synthetic", "mixed")


def to_clip_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 grayscale (N, H, W) -> (N, 3, H, W) standardized with the fashion statistics (the gray
    channel repeated); uint8 RGB (N, H, W, 3) -> standardized with open_clip's OpenAI mean and std."""
    import open_clip

    images = np.asarray(images)
    if images.ndim == 3:
        return classify_data.to_tensor(images).expand(-1, 3, -1, -1).contiguous()
    return to_tensor(images, 255.0, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)


def image_stats(images: np.ndarray) -> tuple[tuple, tuple]:
    """The per-channel (mean, std) ``to_clip_tensor`` standardizes these images with (for a saved model's preprocessing)."""
    import open_clip

    if np.asarray(images).ndim == 3:
        return (classify_data.TO_TENSOR_MEAN,) * 3, (classify_data.TO_TENSOR_STD,) * 3
    return tuple(open_clip.OPENAI_DATASET_MEAN), tuple(open_clip.OPENAI_DATASET_STD)


def square(image, size: int) -> np.ndarray:
    """An RGB PIL image resized on its shorter side and center-cropped to size x size (uint8)."""
    from PIL import ImageOps

    return np.asarray(ImageOps.fit(image.convert("RGB"), (size, size)))


COARSE_TARGETS = ("footwear", "clothing", "container")


def web_captions(world, n: int, seed: int = 0, synonym_rate: float = 0.2, hypernym_rate: float = 0.2,
                 exact_names: bool = False) -> pd.DataFrame:
    """The first ``n`` captions of the world's pair pool (``worlds.pairs_split``: fashion's ``pairs``, web data its
    generator never saw; a folder world's ``real``) in a seeded class-balanced order: caption_id, caption, class_index,
    class_name, source_id, web_index (the image's index in that split). A pool with alt text of its own (fashion) gives
    its alt text; any other gets a class word (the name, or at the given rates a WordNet lemma or hypernym) and the
    offline captioner's description. ``exact_names``: every caption names its class by its name (CLIP's control)."""
    from synkit.data.captions import load_captioner
    from synkit.data.worlds import has_alt_text, pairs_split

    pool = pairs_split(world)
    web = world.split(pool)
    labels = np.asarray(web.labels)
    if n > len(labels):
        raise ValueError(f"clip_max_scale={n} captions were asked for; the {pool} split, this world's caption pool, has {len(labels)} images: "
                         f"set clip_max_scale to at most {len(labels)}.")
    order = classify_data.balanced_order(labels, seed)[:n]
    classes = world.classes
    if has_alt_text(world):
        alt = world.alt_texts(pool, exact_names=exact_names)
        texts = [alt[i] for i in order]
    else:
        if exact_names:
            synonym_rate = hypernym_rate = 0.0
        described = load_captioner(world.name).caption_arrays(np.asarray(web.images)[order])
        rng = np.random.default_rng([seed, 7])
        texts = []
        for i, text in zip(order, described):
            c = classes[int(labels[i])]
            u = rng.random()
            if u < synonym_rate and c.lemmas:
                word = c.lemmas[rng.integers(len(c.lemmas))]
            elif u < synonym_rate + hypernym_rate and c.hypernyms:
                word = c.hypernyms[rng.integers(min(2, len(c.hypernyms)))][0]
            else:
                word = c.name
            texts.append(f"{word}, {text}")
    rows = [{"caption_id": f"web-{int(i):06d}", "caption": text, "class_index": int(labels[i]), "class_name": classes[int(labels[i])].name,
             "source_id": str(web.ids[i]), "web_index": int(i)} for i, text in zip(order, texts)]
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


def split_arrays(world, names: list[str], eval_size: int, image_size: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 images and labels of the world's eval splits: fashion's arrays as they are; file
    splits loaded, squared to ``image_size`` and limited to a class-balanced ``eval_size``."""
    if world.split(names[0]).in_memory:
        out = classify_data.eval_arrays(world, names, eval_size, 0)
        if image_size and any(x.shape[1] != image_size for x, _ in out.values()):  # in memory at another size than CLIP's input
            from PIL import Image

            out = {k: (np.stack([square(Image.fromarray(im), image_size) for im in x]), y) for k, (x, y) in out.items()}
        return out
    out = {}
    for name in names:
        split = world.split(name)
        labels = np.asarray(split.labels)
        idx = np.sort(classify_data.balanced_order(labels, 0)[:eval_size]) if eval_size else np.arange(len(labels))
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
    idx = np.sort(classify_data.balanced_order(labels, 0)[: per_class * len(names)]) if per_class else np.arange(len(labels))
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
