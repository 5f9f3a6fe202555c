"""A small image-folder world that is not Fashion-MNIST: digits rendered here, 32x32, in random
colours (RGB) or gray levels (grayscale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def digit(d: int, rng: np.random.Generator, size: int = 32, invert: bool = False, colour: bool = True) -> Image.Image:
    """One digit in a random bright colour (or gray level) on a random dark background (inverted:
    dark on light), at a random size, offset and slant."""
    background = tuple(int(v) for v in rng.integers(0, 60, 3))
    colour_ = tuple(int(v) for v in rng.integers(140, 256, 3))
    if not colour:
        background, colour_ = (background[0],) * 3, (colour_[0],) * 3
    colour = colour_
    if invert:
        background, colour = tuple(255 - v for v in background), tuple(255 - v for v in colour)
    font = ImageFont.load_default(size=int(rng.integers(20, 27)))
    glyph = Image.new("L", (size, size), 0)
    ImageDraw.Draw(glyph).text((size / 2 + rng.integers(-3, 4), size / 2 + rng.integers(-3, 4)), str(d), fill=255, font=font, anchor="mm")
    glyph = glyph.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
    image = Image.new("RGB", (size, size), background)
    image.paste(Image.new("RGB", (size, size), colour), mask=glyph)
    return image


def make_digit_world(root: Path, train: int = 100, val: int = 20, ood: int = 20, seed: int = 0, colour: bool = True) -> Path:
    """``root/{train,val,inverted}/<name>/*.png``: ``train`` / ``val`` / ``ood`` images per digit
    (grayscale PNGs when not ``colour``)."""
    rng = np.random.default_rng(seed)
    for split, n, invert in (("train", train, False), ("val", val, False), ("inverted", ood, True)):
        for d, name in enumerate(NAMES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = digit(d, rng, invert=invert, colour=colour)
                (image if colour else image.convert("L")).save(folder / f"{i:04d}.png")
    return root
