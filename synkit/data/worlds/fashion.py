"""The fashion world: Fashion-MNIST as a miniature of the paper's ImageNet + LAION setting.

The paper's generators learned from LAION (web alt-text, long-tailed concepts, every style from photos to sketches),
were prompted for ImageNet's classes and judged on curated ImageNet photos (Sec. 3, 4.5, 4.6, 5.2). This world builds
that setting from Fashion-MNIST's 60k training images, by a design fixed before any study ran on it (issue 29):

- ``real``: the curated real pool, the ImageNet-train of this world (its size is D_I), in the original style;
- ``web``: what the embedded text-to-image model learns from (the LAION of this world), a web corpus with
  - **long-tailed concepts**: class counts fall geometrically with a class's rank, from the most images the pool
    allows for the commonest class to ``WEB_TAIL`` (1%) of that for the rarest; the ranks are a permutation drawn
    from ``split_seed`` (no class is chosen to be rare by hand);
  - **ambiguous names** (``web_senses``): on the web, ``ambiguous_names`` (default 2) class names also name another concept, the
    way "crane" names a bird and a machine: each such class and its second sense, a commoner class, are drawn from
    ``split_seed`` (no class is chosen by hand); the two senses are equally common in captions: as many of the
    second sense's images are captioned with the ambiguous name as the class's own images are (at most half of the
    second sense's name mentions);
  - **alt-text captions** (``alt_texts``): per image, the class is named by its name (``MENTIONS``: 55%), a WordNet
    synonym (15%), a hypernym (10%), not at all (15%) or wrongly, by another class's name (5%); a random number of
    the attribute captioner's phrases follows (lengths vary), and some captions are photo phrases ("a photo of a ...");
  - **styles the real split lacks** (``WEB_STYLES``): 25% of its images are sketches, silhouettes (the OOD views'
    styles), inverted or striped, and 80% of those captions say so ("a sketch of a ...");
- ``pairs``: CLIP's real image-text pairs, the same kind of web data (styles, alt-text) that the generator never
  learned from: ``PAIRS_PER_CLASS`` images of each class, disjoint from ``web`` and ``real``;
- ``val``: the 10k test images.

Out-of-distribution views of val: ``sketch`` (Sobel gradient magnitude, rescaled per image: an edge drawing),
``silhouette`` (pixels above 10% white, the rest black: the shape alone), both styles the web corpus has and real
lacks (the ImageNet-Sketch / -R analogs); and ``mild``, small shifts of framing (up to 2 pixels) and contrast (gamma
0.8-1.25) in the original style: the ImageNet-V2 analog, where the paper finds the gap does not narrow (Sec. 4.5).

Where the images come from, first found wins: ``root`` (or the environment variable ``SYNKIT_FASHION_MNIST_DIR``),
the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist), torchvision's download into
~/.cache/synkit.
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
OOD_VIEWS = ("sketch", "silhouette", "mild")
TRAIN_SIZE = 60_000
VERSION = 3  # the web corpus as a LAION analog (issue 29; 3: ambiguous names): part of every model key trained on this world
WEB_TAIL = 0.01  # the rarest class's count in the web corpus, as a share of the commonest's
WEB_STYLES = {"sketch": 0.08, "silhouette": 0.07, "inverted": 0.05, "striped": 0.05}  # share of web / pairs images per style
STYLE_WORDS = {"sketch": "a sketch of {}", "silhouette": "a silhouette of {}", "inverted": "an inverted photo of {}", "striped": "a striped {}"}
STYLE_NAMED = 0.8  # share of a styled image's captions that say its style
AMBIGUOUS = 2  # default: class names the web also uses for a second concept (another, commoner class), drawn from split_seed
MOST_AMBIGUOUS = 4  # each ambiguous class takes a commoner class as its second sense: at most 4 pairs of 10 classes
MENTIONS = {"name": 0.55, "synonym": 0.15, "hypernym": 0.10, "none": 0.15, "wrong": 0.05}  # how alt text names the class
PHOTO_PHRASES = ("a photo of a {}", "{} for sale", "a product photo of a {}", "my new {}")  # alt text's own phrasing
PHOTO_PHRASED = 0.2  # share of unstyled images' captions in one of those phrases
PAIRS_PER_CLASS = 500  # CLIP's real pairs: per class, held out of the generator's corpus


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


def inverted(images: np.ndarray) -> np.ndarray:
    """A light background and a dark item: 255 - x."""
    return (255 - images.astype(np.int16)).astype(np.uint8)


def striped(images: np.ndarray) -> np.ndarray:
    """The item printed with horizontal stripes: every other pair of rows at 45% of its intensity."""
    rows = (np.arange(images.shape[1]) // 2) % 2
    return (images * np.where(rows, 0.45, 1.0)[None, :, None]).round().astype(np.uint8)


def mild_shift(images: np.ndarray, seed: int = 7) -> np.ndarray:
    """Each image moved by up to 2 pixels each way and given a contrast curve (gamma 0.8-1.25), seeded per image."""
    rng = np.random.default_rng(seed)
    n = len(images)
    dx, dy = rng.integers(-2, 3, n), rng.integers(-2, 3, n)
    gamma = np.exp(rng.uniform(np.log(0.8), np.log(1.25), n))
    out = np.zeros_like(images)
    for i in range(n):
        moved = np.roll(np.roll(images[i], dy[i], axis=0), dx[i], axis=1)
        out[i] = (255 * (moved / 255.0) ** gamma[i]).round().astype(np.uint8)
    return out


STYLE_FUNCTIONS = {"sketch": sketch, "silhouette": silhouette, "inverted": inverted, "striped": striped}


class FashionWorld:
    """Fashion-MNIST as web corpus, CLIP pairs, real pool and val: fixed, seeded, disjoint parts of its 60k training
    images (the module docstring)."""

    name = "fashion"
    version = VERSION
    ood_views = OOD_VIEWS
    # the zero-shot templates: the caption style of this world's web text ("NAME, attributes") and a few plain
    # descriptions; documented here so results are comparable across runs
    zero_shot_templates = ("{}", "{}, an image", "a photo of a {}.", "a {}.", "a grayscale photo of a {}.", "a product photo of a {}.")
    coarse_task = True  # its classes group into WordNet's footwear / clothing / container
    web_captions = True  # its web data has alt-text captions of its own (the CLIP exact-names control rewrites them)
    image_format = (28, "L", "center_crop")  # generated images as stored: side, mode, how they reach it
    renamed: dict = {}  # its ten names are distinct
    web_styles = WEB_STYLES  # style -> share of the web corpus in a style the real split lacks (the world card)
    split_notes = {"web": "a LAION analog: long-tailed classes, alt-text captions, 25% in styles real lacks: the embedded generator's corpus",
                   "pairs": "CLIP's real pairs: the same kind of web data, never seen by the generator",
                   "real": "Fashion-MNIST training images in their own style: D_I", "val": "Fashion-MNIST's test images",
                   "sketch": "val as Sobel edge drawings (a web style)", "silhouette": "val as thresholded shapes (a web style)",
                   "mild": "val moved by up to 2 px, contrast changed: a mild shift (the ImageNet-V2 analog)"}

    def __init__(self, root: str | Path | None = None, web_size: int = 50_000, real_size: int = 10_000, split_seed: int = 0,
                 ambiguous_names: int = AMBIGUOUS):
        for key, value in (("web_size", web_size), ("real_size", real_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r} is invalid; it must be a positive whole number of images.")
        if not isinstance(ambiguous_names, int) or not 0 <= ambiguous_names <= MOST_AMBIGUOUS:
            raise ValueError(f"ambiguous_names={ambiguous_names!r} is invalid; it must be a whole number from 0 (no ambiguous "
                             f"class names) to {MOST_AMBIGUOUS}.")
        most = TRAIN_SIZE - 10 * PAIRS_PER_CLASS - 10 * 500  # every class keeps room for its pairs and some web images
        if real_size > most:
            raise ValueError(f"real_size={real_size} leaves too few of Fashion-MNIST's {TRAIN_SIZE} training images for the web "
                             f"corpus and CLIP's pairs; choose real_size at most {most}.")
        self.root = root
        self.web_size, self.real_size, self.split_seed = web_size, real_size, split_seed
        self.ambiguous_names = ambiguous_names

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
        return ("web", "pairs", "real", "val", *self.ood_views)

    @cached_property
    def web_ranks(self) -> np.ndarray:
        """Each class's rank on the web (0: the commonest), a permutation drawn from ``split_seed``."""
        return np.random.default_rng([self.split_seed, 3]).permutation(len(CLASS_NAMES))

    def web_counts(self, available: np.ndarray) -> np.ndarray:
        """Images per class in the web corpus: geometric in the class's rank, from the commonest class's (as many as
        ``available`` allows, or ``web_size`` in all) down to ``WEB_TAIL`` of that, at least 1."""
        profile = WEB_TAIL ** (self.web_ranks / (len(CLASS_NAMES) - 1))
        head = min(float(np.min(available / profile)), self.web_size / float(profile.sum()))
        return np.minimum(available, np.maximum(1, np.floor(head * profile))).astype(np.int64)

    @cached_property
    def web_senses(self) -> dict[int, int]:
        """The ambiguous names: class index -> the class its name also names on the web (a commoner one), drawn from
        ``split_seed`` (module docstring)."""
        rng = np.random.default_rng([self.split_seed, 7])
        ranks = self.web_ranks
        senses: dict[int, int] = {}
        for a in map(int, rng.permutation(np.flatnonzero(ranks > 0))):
            if len(senses) == self.ambiguous_names:
                break
            used = {*senses, *senses.values()}
            commoner = [b for b in map(int, np.flatnonzero(ranks < ranks[a])) if b not in used]
            if commoner and a not in used:
                senses[a] = int(rng.choice(commoner))
        if len(senses) < self.ambiguous_names:
            raise ValueError(f"split_seed={self.split_seed} draws only {len(senses)} ambiguous class names with a commoner "
                             f"second sense, not ambiguous_names={self.ambiguous_names}; choose fewer or another split_seed.")
        return senses

    @cached_property
    def _train_indices(self) -> dict[str, np.ndarray]:
        _, labels = read_part(self.folder, "train")
        order = np.random.default_rng(self.split_seed).permutation(TRAIN_SIZE)
        real, pool = order[TRAIN_SIZE - self.real_size :], order[: TRAIN_SIZE - self.real_size]
        pairs, web = [], []
        for c in range(len(CLASS_NAMES)):
            members = pool[labels[pool] == c]  # in the seeded order
            pairs.append(members[:PAIRS_PER_CLASS])
            web.append(members[PAIRS_PER_CLASS:])
        counts = self.web_counts(np.array([len(m) for m in web]))
        web = [m[:k] for m, k in zip(web, counts)]
        return {"real": np.sort(real), "pairs": np.sort(np.concatenate(pairs)), "web": np.sort(np.concatenate(web))}

    @cached_property
    def _draws(self) -> dict[str, np.ndarray]:
        """Per training image (by its index in the 60k), the seeded draws its web style and alt text are made of."""
        rng = np.random.default_rng([self.split_seed, 5])
        n = TRAIN_SIZE
        styles = ("", *WEB_STYLES)
        return {
            "style": rng.choice(len(styles), n, p=[1 - sum(WEB_STYLES.values()), *WEB_STYLES.values()]),
            "style_named": rng.random(n) < STYLE_NAMED,
            "mention": rng.choice(len(MENTIONS), n, p=list(MENTIONS.values())),
            "pick": rng.random(n),  # which synonym, hypernym or wrong class
            "length": rng.random(n),  # how many of the captioner's phrases
            "phrase": np.where(rng.random(n) < PHOTO_PHRASED, rng.integers(0, len(PHOTO_PHRASES), n), -1),
            "sense": rng.random(n),  # which of a second sense's images take the ambiguous name
        }

    def styles_of(self, name: str) -> np.ndarray:
        """The style of each image of a web split (``web``, ``pairs``): "" for the original style, else a ``WEB_STYLES`` key."""
        styles = np.array(["", *WEB_STYLES], dtype=object)
        return styles[self._draws["style"][self._train_indices[name]]]

    def split(self, name: str) -> ArraySplit:
        """Images of split ``name``: web, pairs, real, val, or an OOD view of val (sketch, silhouette, mild)."""
        if name in ("web", "pairs", "real"):
            images, labels = read_part(self.folder, "train")
            idx = self._train_indices[name]
            images = images[idx]
            if name != "real":
                images = images.copy()
                styles = self.styles_of(name)
                for style, fn in STYLE_FUNCTIONS.items():
                    hit = styles == style
                    if hit.any():
                        images[hit] = fn(images[hit])
            return ArraySplit(images, labels[idx], np.array([f"train-{i:05d}" for i in idx]))
        if name == "val" or name in self.ood_views:
            images, labels = read_part(self.folder, "test")
            view = {"sketch": sketch, "silhouette": silhouette, "mild": mild_shift}.get(name)
            if view is not None:
                images = view(images)
            ids = np.array([f"test-{i:05d}" for i in range(len(labels))])
            return ArraySplit(images, labels, ids)
        raise ValueError(f"unknown split {name!r} of the fashion world; valid splits are {', '.join(self.splits)}.")

    def alt_texts(self, name: str, exact_names: bool = False) -> list[str]:
        """The alt text of each image of a web split (``web``, ``pairs``), fixed per image (module docstring);
        ``exact_names``: the same captions with every class mention replaced by the class's own name (CLIP's control)."""
        from synkit.data.captions import load_captioner

        if name not in ("web", "pairs"):
            raise ValueError(f"split {name!r} has no alt text; the fashion world's web splits are web and pairs.")
        data = self.split(name)
        idx = self._train_indices[name]
        d = {k: v[idx] for k, v in self._draws.items()}
        phrases = [t.split(", ") if t != "a blank image" else [] for t in load_captioner(self.name).caption_arrays(data.images)]
        kinds = list(MENTIONS)
        labels = np.asarray(data.labels, int)  # and whose name each "name" mention says:
        named_as = labels if exact_names else self._ambiguous_names(labels, d["mention"] == kinds.index("name"), d["sense"])
        out = []
        for i, (label, style) in enumerate(zip(data.labels, self.styles_of(name))):
            c = self.classes[int(label)]
            kind = "name" if exact_names else kinds[d["mention"][i]]
            word = _mention(self.classes, self.classes[named_as[i]] if kind == "name" else c, kind, d["pick"][i])
            described = ", ".join(phrases[i][: int(d["length"][i] * (len(phrases[i]) + 1))])
            if style and d["style_named"][i]:
                thing = (_article(word) if word else "something") if style != "striped" else (word or "item")
                head = STYLE_WORDS[style].format(thing)
            elif word and d["phrase"][i] >= 0:
                head = PHOTO_PHRASES[d["phrase"][i]].format(word)
            else:
                head = word
            out.append(", ".join(t for t in (head, described) if t) or "an image")
        return out

    def _ambiguous_names(self, labels: np.ndarray, named: np.ndarray, sense: np.ndarray) -> np.ndarray:
        """Per image, the class whose name its "name" mention says: its own, or, for as many of a second sense's
        named images as the ambiguous class has (at most half of them, lowest ``sense`` draws first), the ambiguous
        class's."""
        out = labels.copy()
        for a, b in self.web_senses.items():
            own = int(np.sum(named & (labels == a)))
            theirs = np.flatnonzero(named & (labels == b))
            take = theirs[np.argsort(sense[theirs], kind="stable")[: min(own, len(theirs) // 2)]]
            out[take] = a
        return out


def _mention(classes, c: ClassInfo, kind: str, pick: float) -> str:
    """How an alt text names class ``c``: its name, a synonym (a WordNet lemma other than the name), a hypernym (one of
    the two nearest levels), nothing, or another class's name; ``pick`` in [0, 1) chooses among the candidates."""
    if kind == "synonym":
        options = [w for w in c.lemmas if w.lower() != c.name.lower()] or [c.name]
    elif kind == "hypernym":
        options = [level[0] for level in c.hypernyms[:2]] or [c.name]
    elif kind == "wrong":
        options = [o.name for o in classes if o.index != c.index]
    elif kind == "none":
        return ""
    else:
        options = [c.name]
    return options[int(pick * len(options))].replace("_", " ")


def _article(word: str) -> str:
    return f"{'an' if word[0].lower() in 'aeiou' else 'a'} {word}"
