"""Where bf16 pays: one answer for every stage.

bf16 autocast runs natively on CUDA GPUs and on CPUs with avx512_bf16 or AMX, where it is about 2x
faster than float32. Elsewhere PyTorch emulates it: on an AMD EPYC with AVX2 only (2 cores), a
convolution step ran 11x and a linear layer 8x slower than in float32 (``benchmarks/precision.py``).
So ``auto``, every stage's default, means bf16 where it is native and float32 where it is not; an
explicit ``bf16`` / ``bfloat16`` is done as asked, with a warning where it is emulated.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch

MIXED_PRECISION = ("auto", "no", "bf16")  # training: bf16 autocast needs no loss scaling (no GradScaler state)
DTYPES = ("auto", "float32", "bfloat16", "float16")  # generation: weights (CUDA) or autocast (CPU)


def _type(device) -> str:
    return device if isinstance(device, str) else torch.device(device).type


@functools.cache
def bf16_native(device="cpu") -> bool:
    """Whether bf16 arithmetic is native on this device type: any CUDA device; a CPU with avx512_bf16 or AMX."""
    kind = _type(device).split(":")[0]
    if kind == "cuda":
        return True
    if kind != "cpu":
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _warn_emulated(device, asked: str) -> None:
    if not bf16_native(device):
        warnings.warn(f"{asked} was asked for on a CPU without avx512_bf16 or AMX, where PyTorch emulates bf16 (about 10x "
                      "slower than float32 here); 'auto' picks float32 on such a CPU.", stacklevel=3)


def resolve(mixed_precision: str, device=None) -> str:
    """A training precision as run: ``auto`` becomes ``bf16`` where bf16 is native on ``device`` (default: this
    machine's), else ``no``; ``bf16`` and ``no`` stay, with a warning when ``bf16`` is emulated."""
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={mixed_precision!r} is invalid; valid values are {', '.join(MIXED_PRECISION)}.")
    device = device or default_device()
    if mixed_precision == "auto":
        return "bf16" if bf16_native(device) else "no"
    if mixed_precision == "bf16":
        _warn_emulated(device, "mixed_precision='bf16'")
    return mixed_precision


def resolve_dtype(dtype: str, device=None) -> str:
    """A generation dtype as run: ``auto`` is float16 weights on CUDA, bf16 autocast on a CPU where bf16 is native,
    float32 elsewhere; the others stay, with a warning when ``bfloat16`` is emulated on the CPU."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is invalid; valid values are {', '.join(DTYPES)}.")
    device = device or default_device()
    if dtype == "auto":
        if _type(device).startswith("cuda"):
            return "float16"
        return "bfloat16" if bf16_native(device) else "float32"
    if dtype == "bfloat16" and _type(device) == "cpu":
        _warn_emulated(device, "dtype='bfloat16'")
    return dtype


def autocast(device, enabled: bool | None = None):
    """bf16 autocast on ``device``'s type: where bf16 is native (``enabled=None``), or as ``enabled`` says."""
    kind = _type(device)
    on = bf16_native(kind) if enabled is None else enabled
    if not on:
        return contextlib.nullcontext()
    return torch.autocast(kind, torch.bfloat16)


def compute_dtype(device) -> torch.dtype:
    """The dtype tensors kept in bf16 (embedding tables) are fed in: bf16 where it is native, float32 elsewhere."""
    return torch.bfloat16 if bf16_native(device) else torch.float32
