"""The pixel family (Imagen / DeepFloyd IF): an ``IFPipeline`` whose UNet denoises the pixels themselves (see
``synkit.t2i.families``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from synkit.core import precision
from synkit.engine import loop
from synkit.t2i import base, registry
from synkit.t2i import latent as t2i
from synkit.t2i.base import FamilyFields, flush_denormals, start_training, tokenizer_and_encoder, training_record
from synkit.t2i.text import encode_texts, quiet

PIXEL_STEPS = 6  # sampler steps of the pixel family (DPM-Solver++): 6 steps gave F1 within 0.01 of 10 steps at CFG 4 and 8, 1.5x faster


@dataclass(frozen=True)
class PixelConfig(FamilyFields):
    """The pixel-diffusion family; each field is part of the cache key."""

    max_tokens: int = 32  # the tokenizer's limit; IFPipeline pads every prompt to 77 tokens itself
    # the text encoder reads max_tokens positions back (synkit.t2i.minilm.MiniLMCroppedModel): the UNet attends to the same text positions
    # as the other families' models; measured here (4256 captions), encoded in 11-12 s against 32.5 s at 77, a UNet training step
    # 0.40 s against 0.44-0.47 s
    crop_text: bool = True
    resolution: int = 28  # the UNet's native size: fashion's 28x28 (other worlds' images are resized to it)
    unet_channels: tuple[int, ...] = (16, 32, 64)
    attention_levels: int = 1  # coarsest levels with cross-attention to the caption
    cross_attention_dim: int = 128
    unet_steps: int = 600  # with Min-SNR weighting: F1 0.91 at CFG 8 took 700 steps, 900 without it (measured here)
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 50
    ema_decay: float = 0.999
    cond_dropout: float = 0.1
    prediction_type: str = "epsilon"
    beta_schedule: str = "squaredcos_cap_v2"  # IF's cosine schedule
    snr_gamma: float = 5.0  # Min-SNR loss weighting (Hang et al. 2023): faster convergence; 0: plain MSE
    caption_mix: tuple[float, ...] = (0.2, 0.2, 0.1, 0.1, 0.4)


def build_pixel(config: PixelConfig, channels: int = 1):
    """The untrained IFPipeline of ``config`` (seeded UNet, frozen MiniLM, DPM-Solver++ with thresholding)."""
    from diffusers import DPMSolverMultistepScheduler, IFPipeline, UNet2DConditionModel

    torch.manual_seed(config.seed)
    n, a = len(config.unet_channels), config.attention_levels
    unet = UNet2DConditionModel(
        # IFPipeline splits the UNet's output into noise and IF's learned variance; the DPM-Solver sampler uses only the
        # noise half (variance_type None), so the variance half is left untrained
        sample_size=config.resolution, in_channels=channels, out_channels=2 * channels, layers_per_block=1,
        block_out_channels=config.unet_channels, norm_num_groups=8,
        down_block_types=("DownBlock2D",) * (n - a) + ("CrossAttnDownBlock2D",) * a,
        up_block_types=("CrossAttnUpBlock2D",) * a + ("UpBlock2D",) * (n - a),
        mid_block_type="UNetMidBlock2DCrossAttn" if a else "UNetMidBlock2D",
        attention_head_dim=1, encoder_hid_dim=384, encoder_hid_dim_type="text_proj", cross_attention_dim=config.cross_attention_dim,
    )
    t2i.plain_attention(unet)
    if config.crop_text:
        from synkit.t2i.minilm import MiniLMCroppedModel

        tokenizer, encoder = tokenizer_and_encoder(config, MiniLMCroppedModel)
        encoder.config.synkit_max_tokens, encoder.config.synkit_sep_token_id = config.max_tokens, tokenizer.sep_token_id
    else:
        tokenizer, encoder = tokenizer_and_encoder(config)
    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_schedule=config.beta_schedule, prediction_type=config.prediction_type,
        thresholding=True, sample_max_value=1.0, timestep_spacing="trailing",  # Imagen's dynamic thresholding at every step
    )
    return IFPipeline(tokenizer=tokenizer, text_encoder=encoder, unet=unet, scheduler=scheduler, safety_checker=None,
                      feature_extractor=None, watermarker=None, requires_safety_checker=False)


def train_pixel(config: PixelConfig, out_dir, progress: bool = True, checkpoint_every: int = 100,
                callback: Callable[[str, int, float], None] | None = None) -> Path:
    """Train the pixel-space UNet on the web split; ``out_dir/pipeline`` (an IFPipeline), resumable from checkpoints."""
    from diffusers import DDPMScheduler


    out, device, world, web, pixels = start_training(config, out_dir, -1.0, check)
    times = {}
    pipe = build_pixel(config, channels=pixels.shape[1]).to(device)
    t0 = time.perf_counter()
    sampler = t2i.CaptionSampler(world, web, config.caption_mix)
    with precision.autocast(device), quiet():
        table = encode_texts(pipe, sampler.strings)[0]["prompt_embeds"].to(torch.bfloat16).cpu()
    times["captions_s"] = time.perf_counter() - t0
    unet = pipe.unet.train()
    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
    alphas = noise_sched.alphas_cumprod
    snr_table = alphas / (1 - alphas)
    ema = loop.EMA(unet, config.ema_decay)

    def step_fn(step: int) -> torch.Tensor:
        rng, gen = loop.step_rng(config.seed, 1, step)
        idx = rng.integers(0, len(pixels), config.batch_size)
        cond = table[torch.from_numpy(sampler.draw(rng, idx, config.cond_dropout))].to(device, precision.compute_dtype(device))
        x = pixels[torch.from_numpy(idx)]
        noise = torch.randn(x.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(x),), generator=gen)
        noisy = noise_sched.add_noise(x, noise, t)
        target = noise if config.prediction_type == "epsilon" else noise_sched.get_velocity(x, noise, t)
        with precision.autocast(device):
            pred = unet(noisy.to(device), t.to(device), cond).sample[:, : x.shape[1]].float()
        loss = (pred - target.to(device)).pow(2).mean(dim=(1, 2, 3))
        if config.snr_gamma > 0:  # Min-SNR-gamma: each step's weight min(SNR, gamma) / SNR (epsilon), / (SNR + 1) (v)
            snr = snr_table[t]
            capped = snr.clamp(max=config.snr_gamma)
            weight = (capped / snr.clamp(min=1e-12)) if config.prediction_type == "epsilon" else capped / (snr + 1)
            loss = loss * weight.to(device)
        return loss.mean()

    t0 = time.perf_counter()
    with flush_denormals():
        loop.train_loop("pixel", unet, config.unet_steps, config.lr, config.warmup_steps, out / "checkpoint-unet.pt", checkpoint_every,
                        progress, callback, step_fn, ema=ema)
    times["unet_s"] = time.perf_counter() - t0
    ema.copy_to(unet)
    unet.eval().requires_grad_(False)
    return t2i.save_pipeline(pipe, out, training_record(config, times, device))


def check(config: PixelConfig) -> None:
    base.check_common(config, config.unet_channels)
    if len(config.unet_channels) != 3:
        raise ValueError(f"unet_channels={config.unet_channels} must have 3 entries ({config.resolution} -> "
                         f"{config.resolution // 2} -> {config.resolution // 4} pixels).")
    if not 0 <= config.attention_levels <= 3:
        raise ValueError(f"attention_levels={config.attention_levels} must be 0..3.")
    if config.prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type={config.prediction_type!r} must be 'epsilon' or 'v_prediction'.")


registry.register(registry.Family("embedded-pixel", PixelConfig, base.family_key,
                                  lambda config, models_dir, progress: registry.ensure_trained(config, models_dir, progress, train_pixel),
                                  PIXEL_STEPS, rank=1))
