"""CLIP's images as tensors: the setups, and the one conversion of uint8 images to CLIP's input (and its statistics)."""

from __future__ import annotations

import numpy as np
import torch

from synkit.classify import train
from synkit.classify import data

SETUPS = ("real", "synthetic", "mixed")


def to_clip_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 grayscale (N, H, W) -> (N, 3, H, W) standardized with the fashion statistics (the gray
    channel repeated); uint8 RGB (N, H, W, 3) -> standardized with open_clip's OpenAI mean and std."""
    import open_clip

    images = np.asarray(images)
    if images.ndim == 3:
        return data.to_tensor(images).expand(-1, 3, -1, -1).contiguous()
    x = torch.tensor(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def image_stats(images: np.ndarray) -> tuple[tuple, tuple]:
    """The per-channel (mean, std) ``to_clip_tensor`` standardizes these images with (for a saved model's preprocessing)."""
    import open_clip

    if np.asarray(images).ndim == 3:
        return (data.TO_TENSOR_MEAN,) * 3, (train.TO_TENSOR_STD,) * 3
    return tuple(open_clip.OPENAI_DATASET_MEAN), tuple(open_clip.OPENAI_DATASET_STD)


def square(image, size: int) -> np.ndarray:
    """An RGB PIL image resized on its shorter side and center-cropped to size x size (uint8)."""
    from PIL import ImageOps

    return np.asarray(ImageOps.fit(image.convert("RGB"), (size, size)))
