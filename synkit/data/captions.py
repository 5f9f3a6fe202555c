"""Captioners: a sentence describing each image, for IN-Captions prompts and the web split.

- ``FashionCaptioner`` measures what is in a Fashion-MNIST image (tone, texture, contrast,
  width, length, fill, where it is lighter) and says it in words, so captions describe the
  image and differ between images of one class. It never names the class.
- ``ImageCaptioner`` does the same for any other world's images (any size, grayscale or colour,
  plus the object's colour): the offline captioner of folder and ImageNet worlds.
- ``Blip2Captioner`` runs BLIP-2 (as the paper did for ImageNet) through transformers, from a
  hub id or a local folder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from synkit.core.pretrained import load_pretrained

# Cut points chosen at roughly even quantiles of the web split (see the module docstring).
TONE = ((115, "dark"), (150, "dim"), (185, "light"), (np.inf, "bright"))
TEXTURE = ((0.42, "smooth"), (0.6, "plain"), (0.9, "textured"), (np.inf, "intricate"))
WIDTH = ((16, "narrow"), (25, "medium-width"), (np.inf, "wide"))
LENGTH = ((17, "short"), (26, "mid-length"), (np.inf, "long"))
FOREGROUND = 26  # pixel value above which a pixel belongs to the item (about 10%)


def _word(value: float, scale) -> str:
    return next(word for cut, word in scale if value < cut)


def fashion_attributes(images: np.ndarray) -> list[dict]:
    """Measured attributes of uint8 images (N, 28, 28): numbers and the words for them."""
    x = images.astype(np.float32)
    fg = x > FOREGROUND
    n = fg.sum((1, 2)).clip(1)
    tone = (x * fg).sum((1, 2)) / n
    lap = np.abs(4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:])
    texture = (lap * fg[:, 1:-1, 1:-1]).sum((1, 2)) / n / tone.clip(1)
    spread = np.sqrt(((x - tone[:, None, None]) ** 2 * fg).sum((1, 2)) / n) / tone.clip(1)
    height, width = fg.any(2).sum(1), fg.any(1).sum(1)
    fill = n / (height * width).clip(1)
    half = x.shape[1] // 2
    top = (x[:, :half] * fg[:, :half]).sum((1, 2)) / fg[:, :half].sum((1, 2)).clip(1)
    bottom = (x[:, half:] * fg[:, half:]).sum((1, 2)) / fg[:, half:].sum((1, 2)).clip(1)
    lighter = (top - bottom) / tone.clip(1)
    out = []
    for i in range(len(x)):
        out.append(
            {
                "tone": _word(tone[i], TONE),
                "texture": _word(texture[i], TEXTURE),
                "contrast": "even" if spread[i] < 0.24 else ("high-contrast" if spread[i] > 0.38 else ""),
                "width": _word(width[i], WIDTH),
                "length": _word(height[i], LENGTH),
                "fill": "open" if fill[i] < 0.55 else ("solid" if fill[i] > 0.75 else ""),
                "lighter": "lighter at the top" if lighter[i] > 0.08 else ("lighter at the bottom" if lighter[i] < -0.08 else ""),
                "empty": bool(n[i] <= 1 and not fg[i].any()),
            }
        )
    return out


class FashionCaptioner:
    """Says in words what it measures in Fashion-MNIST images; never names the class."""

    name = "fashion-attributes"

    def caption_arrays(self, images: np.ndarray) -> list[str]:
        """Captions of uint8 grayscale images (N, H, W)."""
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"FashionCaptioner wants uint8 grayscale images (N, H, W); got {images.dtype} {images.shape}.")
        captions = []
        for a in fashion_attributes(images):
            if a["empty"]:
                captions.append("a blank image")
                continue
            look = ", ".join(w for w in (a["tone"], a["texture"], a["contrast"]) if w)
            shape = f"{a['width']} and {a['length']}"
            captions.append(", ".join(w for w in (look, shape, a["fill"], a["lighter"]) if w))
        return captions

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        return self.caption_arrays(np.stack([np.asarray(im.convert("L")) for im in images]))


COLORS = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (260, "blue"), (300, "purple"), (345, "pink"), (361, "red"))


class ImageCaptioner:
    """The offline captioner of every other world: the fashion captioner's measurements on any
    image (grayscale, resized to 28x28, a light background turned dark so the object is the bright
    part) plus the object's colour for colour images. It describes, never names the class; BLIP-2
    (``captioner_model``) gives the paper's kind of captions where its weights are at hand."""

    name = "image-attributes"

    def caption_arrays(self, images: np.ndarray) -> list[str]:
        """Captions of uint8 images (N, H, W) or (N, H, W, 3)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
            raise ValueError(f"ImageCaptioner wants uint8 images (N, H, W) or (N, H, W, 3); got {images.dtype} {images.shape}.")
        return self.caption([Image.fromarray(im) for im in images])

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        grays, colors = [], []
        for im in images:
            rgb = im.convert("RGB")
            gray = np.asarray(rgb.convert("L").resize((28, 28), Image.BILINEAR)).astype(np.int16)
            border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
            if np.median(border) > 127:  # a light background: invert, so the object is the bright part as in Fashion-MNIST
                gray = 255 - gray
            grays.append(gray.clip(0, 255).astype(np.uint8))
            colors.append(_color_word(np.asarray(rgb.resize((28, 28), Image.BILINEAR)), grays[-1] > FOREGROUND))
        texts = FashionCaptioner().caption_arrays(np.stack(grays))
        return [f"{c}, {t}" if c and t != "a blank image" else t for c, t in zip(colors, texts)]


def _color_word(rgb: np.ndarray, mask: np.ndarray) -> str:
    """The object's colour ("" for gray objects): the hue of its mean pixel when it is saturated enough."""
    if not mask.any():
        return ""
    r, g, b = (rgb[..., k][mask].mean() / 255 for k in range(3))
    hi, lo = max(r, g, b), min(r, g, b)
    if hi - lo < 0.15:
        return ""
    if hi == r:
        hue = (60 * (g - b) / (hi - lo)) % 360
    elif hi == g:
        hue = 60 * (b - r) / (hi - lo) + 120
    else:
        hue = 60 * (r - g) / (hi - lo) + 240
    return next(word for cut, word in COLORS if hue < cut)


class Blip2Captioner:
    """BLIP-2 captions via transformers (``Blip2ForConditionalGeneration``), greedy and batched."""

    def __init__(self, model: str, device: str | None = None, batch_size: int = 16, max_new_tokens: int = 30, prompt: str | None = None):
        import torch
        from transformers import AutoProcessor, Blip2ForConditionalGeneration

        self.name = model
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.processor = load_pretrained(AutoProcessor.from_pretrained, model, "the BLIP-2 captioner", "captioner_model")
        self.model = load_pretrained(
            lambda m: Blip2ForConditionalGeneration.from_pretrained(m, dtype=dtype), model, "the BLIP-2 captioner", "captioner_model"
        ).to(self.device).eval()
        self.batch_size, self.max_new_tokens, self.prompt = batch_size, max_new_tokens, prompt

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        import torch

        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            kwargs = {"text": [self.prompt] * len(batch)} if self.prompt else {}
            inputs = self.processor(images=batch, return_tensors="pt", **kwargs).to(self.device, self.model.dtype)
            with torch.inference_mode():
                ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            out += [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]
        return out


OFFLINE_CAPTIONERS = {"fashion": FashionCaptioner}  # a world's own offline captioner; any other: ImageCaptioner


def load_captioner(world: str, captioner_model: str | None = None, **kwargs):
    """BLIP-2 from ``captioner_model`` (a hub id or local folder, as the paper), else the offline
    attribute captioner: ``FashionCaptioner`` in the fashion world, ``ImageCaptioner`` in the others."""
    if captioner_model in (None, ""):
        return OFFLINE_CAPTIONERS.get(world, ImageCaptioner)()
    if captioner_model == FashionCaptioner.name:
        return FashionCaptioner()
    if captioner_model == ImageCaptioner.name:
        return ImageCaptioner()
    return Blip2Captioner(captioner_model, **kwargs)
