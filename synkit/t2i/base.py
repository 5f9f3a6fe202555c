"""What the pixel and token families share: the world fields of their configs, the web split's pixels, the
start of a training run, MiniLM as their text encoder, and the record saved beside each model."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from synkit.core.images import resize, to_tensor
from synkit.data.worlds import WorldFields
from synkit.engine import loop
from synkit.t2i import latent as t2i
from synkit.t2i import registry
from synkit.t2i.text import quiet

FAMILY_KEY_VERSION = 1


@dataclass(frozen=True)
class FamilyFields(WorldFields):
    """What every embedded family learns from (``WorldFields``: the world and its split) and its seed; fields of the cache key."""

    seed: int = 0

    def __post_init__(self):
        t2i.normalize_fields(self)


def web_pixels(web_images, resolution: int, low: float) -> torch.Tensor:
    """uint8 (N, H, W[, 3]) -> float (N, C, resolution, resolution) in [low, 1]."""
    return resize(to_tensor(web_images), resolution, 0.0, 1.0) * (1 - low) + low


def family_key(config) -> str:
    """The pixel and token families' cache key: the family, every config field and the data (as the latent model's)."""
    from synkit.data.worlds import key_payload, t2i_split

    payload = {"version": FAMILY_KEY_VERSION, "family": registry.family_of(config),
               **key_payload(config, lambda world: [t2i_split(world)])}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def check_common(config, channels) -> None:
    """What the pixel and token configs must both satisfy (each family checks the rest)."""
    mix = config.caption_mix
    if len(mix) != len(t2i.CAPTION_FORMS) or min(mix) < 0 or sum(mix) <= 0:
        raise ValueError(f"caption_mix={mix} must be {len(t2i.CAPTION_FORMS)} non-negative weights for {t2i.CAPTION_FORMS}.")
    if not 0 <= config.cond_dropout < 1:
        raise ValueError(f"cond_dropout={config.cond_dropout} must be in [0, 1).")
    if config.resolution % 4:
        raise ValueError(f"resolution={config.resolution} must be a multiple of 4 (two 2x downsamplings).")
    if any(c % 8 for c in channels):
        raise ValueError(f"channels {channels} must be multiples of 8 (group norm).")


def start_training(config, out_dir, low: float, check):
    """A family's training start: the config checked, its folder, device, world, web split and its images in [low, 1]."""
    check(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world, web = t2i.web_split(config)
    return out, loop.device(), world, web, web_pixels(web.images, config.resolution, low)


def tokenizer_and_encoder(config, encoder_cls=None):
    from transformers import BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(t2i.minilm_folder(), model_max_length=config.max_tokens)
    with quiet():  # MiniLM's pooler weights go unused (the token family pools by masked mean)
        encoder = (encoder_cls or BertModel).from_pretrained(t2i.minilm_folder()).eval()
    return tokenizer, encoder


@contextlib.contextmanager
def flush_denormals():
    """Flush denormal floats to zero while training on a CPU: Adam's second moments of rarely used codebook
    and token embeddings decay into the denormal range within a few hundred steps, and CPU arithmetic on
    denormals is many times slower (measured here: the token model's steps slowed from 0.34 s to 1.8 s)."""
    before = torch.set_flush_denormal(True)  # returns False where the CPU cannot (then nothing changes)
    try:
        yield
    finally:
        if before:
            torch.set_flush_denormal(False)


def training_record(config, times: dict, device) -> dict:
    family = registry.family_of(config)
    return {"key": registry.cache_key(config), "family": family, "config": dataclasses.asdict(config),
            "default_steps": registry.default_steps(family), "train_times_s": times, "device": str(device)}
