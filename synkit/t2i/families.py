"""Two more embedded text-to-image model families, so the miniature measures the paper's third factor,
the kind of model (Sec. 3.1: Stable Diffusion denoises an autoencoder's latents, Imagen denoises
pixels, Muse unmasks visual tokens). Each trains offline on the same images, with the same frozen
MiniLM text encoder and the same caption mix as the latent model (``synkit.t2i.latent``), and is a standard
diffusers pipeline saved with ``save_pretrained`` and loaded by its pipeline class:

- ``embedded-pixel`` (Imagen / DeepFloyd IF): ``IFPipeline`` with a ``UNet2DConditionModel`` that
  denoises the 28x28 pixels themselves, conditioned on MiniLM's token states, cosine noise schedule
  and dynamic thresholding (Imagen's two pixel-space devices), DPM-Solver++ sampling. One stage: IF and
  Imagen cascade a 64-pixel base into super-resolution stages because their targets are 256 and 1024
  pixels; at 28x28 a second stage would run at the full size anyway and cost more than it saves.
- ``embedded-tokens`` (Muse / aMUSEd): ``AmusedPipeline`` with a ``VQModel`` that turns a 28x28 image
  into 14x14 tokens of a learned codebook and a ``UVit2DModel`` (with a learned position embedding,
  ``synkit.t2i.uvit``, as MaskGIT and Muse have) that predicts masked tokens from the caption, trained with
  the cosine masking schedule and unmasked over a few steps by ``AmusedScheduler``. MiniLM answers the
  pipeline's CLIP-shaped calls through ``synkit.t2i.minilm``.

Guidance scales are each pipeline's own: diffusers' aMUSEd applies guidance only above 1 (the paper's
Muse range of 0.1-1 is another implementation's scale), so each family has its own sweep.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path





from synkit.t2i import latent as t2i
from synkit.t2i import registry
from synkit.t2i.pixel import PixelConfig, build_pixel, train_pixel  # noqa: F401  (each family registers itself at import)
from synkit.t2i.tokens import TokensConfig, build_tokens, train_tokens  # noqa: F401




CONFIGS = {name: registry.FAMILIES[name].config for name in registry.names()}
family_of, cache_key, default_steps = registry.family_of, registry.cache_key, registry.default_steps


def config_for(family: str, values: dict):
    """The config of ``family`` (``embedded``, ``embedded-pixel``, ``embedded-tokens``) from plain values."""
    if family not in CONFIGS:
        raise ValueError(f"generator {family!r} is not an embedded family; valid: {', '.join(CONFIGS)} (or a hub id or pipeline folder).")
    return t2i.config_from(values, CONFIGS[family])


def ensure_family(config, models_dir="outputs/models", progress: bool = True) -> Path:
    """The cached pipeline folder of ``config`` (any family), trained first (or resumed) when missing."""
    return registry.FAMILIES[family_of(config)].ensure(config, models_dir, progress)


# what one entry of 02_generate's ``generators`` may set (the rest comes from the notebook's own parameters)
GENERATOR_KEYS = ("generator", "generator_name", "embedded_config", "cascade", "scheduler", "steps", "height", "width", "prompt_sets",
                  "guidance_scales", "images_per_class", "ladder_configs", "ladder_images_per_class", "dtype", "batch_size")


def label(generator: str) -> str:
    """The short name of a generator in configuration folders: an embedded family's name, else the folder's or id's last part."""
    return generator if generator in CONFIGS else Path(str(generator).rstrip("/")).name


def generator_entries(generators: list, defaults: dict) -> list[dict]:
    """02_generate's generators, each a complete mapping of GENERATOR_KEYS: an entry (a mapping, or just a
    generator name) over the notebook's own parameters (``defaults``); no entries: the notebook's one
    generator. ``generator_name`` is an entry's own; so is ``embedded_config``, except that an entry of the
    notebook's own ``generator`` without one takes the notebook's (a family's training parameters do not
    carry over to another family)."""
    if not isinstance(generators, (list, tuple)):
        raise ValueError(f"generators={generators!r} must be a list of entries such as {{generator: embedded-pixel, guidance_scales: [1, 2]}}.")
    if not generators:
        entry = {k: defaults[k] for k in GENERATOR_KEYS}
        entry["generator_name"] = entry["generator_name"] or label(entry["generator"])
        return [entry]
    out = []
    for i, raw in enumerate(generators):
        entry = {"generator": raw} if isinstance(raw, str) else raw
        if not isinstance(entry, dict):
            raise ValueError(f"generators entry {i} ({raw!r}) must be a generator name or a mapping such as {{generator: embedded-pixel}}.")
        unknown = sorted(set(entry) - set(GENERATOR_KEYS))
        if unknown:
            raise ValueError(f"generators entry {i} has unknown key {unknown[0]!r}; valid keys are {', '.join(GENERATOR_KEYS)}.")
        merged = {**{k: defaults[k] for k in GENERATOR_KEYS}, "generator_name": None, **entry}
        if "embedded_config" not in entry:  # the notebook's embedded_config belongs to the notebook's generator only
            merged["embedded_config"] = defaults["embedded_config"] if merged["generator"] == defaults["generator"] else {}
        merged["generator_name"] = merged["generator_name"] or label(merged["generator"])
        out.append(merged)
    names = [e["generator_name"] for e in out]
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"two generators entries are named {dup!r}; give each a distinct generator_name (it names their folders).")
    return out


def resolve(entry: dict, world_values: dict, models_dir) -> tuple[str, int, int | None]:
    """(pipeline folder or hub id, sampler steps, generation height) of a generators entry; an
    embedded family is trained on first use (``world_values``: the world's fields of its config) and cached."""
    generator = entry["generator"]
    if generator not in CONFIGS:
        return generator, entry["steps"] or 25, entry["height"]
    config = config_for(generator, {**world_values, **(entry["embedded_config"] or {})})
    path = str(ensure_family(config, models_dir))
    # the latent model decodes 32x32 (28x28 padded); the pixel and token models work at their own resolution
    return path, entry["steps"] or default_steps(generator), entry["height"] or (32 if generator == "embedded" else None)


def main_train(argv: Sequence[str] | None = None) -> int:
    """``synkit train-t2i [--family F] [--models-dir DIR] [--set key=value ...]``: train (or reuse) an embedded model."""
    parser = argparse.ArgumentParser(prog="synkit train-t2i", description="Train or reuse an embedded text-to-image model.")
    parser.add_argument("--family", default="embedded", choices=list(CONFIGS),
                        help="embedded (latent diffusion), embedded-pixel (pixel diffusion) or embedded-tokens (masked tokens)")
    parser.add_argument("--models-dir", default="outputs/models", help="cache folder (default: outputs/models)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a field of the family's config (T2IConfig, PixelConfig, TokensConfig), repeatable (e.g. --set unet_steps=2000)")
    args = parser.parse_args(argv)
    path = ensure_family(t2i.parse_overrides(args.overrides, CONFIGS[args.family]), args.models_dir)
    print(path)
    return 0
