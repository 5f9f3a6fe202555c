"""uint8 images as float tensors, in one place: every model in synkit sees its images through ``to_tensor``
(layout (N, H, W) or (N, H, W, C) -> (N, C, H, W), then ``/ scale``, ``- mean``, ``/ std``) and, where it needs
another size, ``resize``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(images, scale: float = 255.0, mean=0.0, std=1.0) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W): ``(x / scale - mean) / std``. ``mean`` and ``std`` are
    numbers, or one per channel (sequences)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    x = x.div_(scale)
    if np.ndim(mean):
        return x.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))
    if mean != 0:
        x = x.sub_(mean)
    return x.div_(std) if std != 1 else x


def resize(x: torch.Tensor, size: int, low: float, high: float) -> torch.Tensor:
    """Float images (N, C, H, W) at ``size`` x ``size`` (bilinear with antialiasing), kept in [low, high]; as they are
    when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(low, high)
