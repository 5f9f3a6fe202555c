"""Two more embedded text-to-image model families, so the miniature measures the paper's third factor,
the kind of model (Sec. 3.1: Stable Diffusion denoises an autoencoder's latents, Imagen denoises
pixels, Muse unmasks visual tokens). Each trains offline on the same images, with the same frozen
MiniLM text encoder and the same caption mix as the latent model (``synkit.t2i``), and is a standard
diffusers pipeline saved with ``save_pretrained`` and loaded by its pipeline class:

- ``embedded-pixel`` (Imagen / DeepFloyd IF): ``IFPipeline`` with a ``UNet2DConditionModel`` that
  denoises the 28x28 pixels themselves, conditioned on MiniLM's token states, cosine noise schedule
  and dynamic thresholding (Imagen's two pixel-space devices), DPM-Solver++ sampling. One stage: IF and
  Imagen cascade a 64-pixel base into super-resolution stages because their targets are 256 and 1024
  pixels; at 28x28 a second stage would run at the full size anyway and cost more than it saves.
- ``embedded-tokens`` (Muse / aMUSEd): ``AmusedPipeline`` with a ``VQModel`` that turns a 28x28 image
  into 14x14 tokens of a learned codebook and a ``UVit2DModel`` (with a learned position embedding,
  ``synkit.uvit``, as MaskGIT and Muse have) that predicts masked tokens from the caption, trained with
  the cosine masking schedule and unmasked over a few steps by ``AmusedScheduler``. MiniLM answers the
  pipeline's CLIP-shaped calls through ``synkit.minilm``.

Guidance scales are each pipeline's own: diffusers' aMUSEd applies guidance only above 1 (the paper's
Muse range of 0.1-1 is another implementation's scale), so each family has its own sweep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synkit import precision, t2i

FAMILY_KEY_VERSION = 1
PIXEL_STEPS = 6  # sampler steps of the pixel family (DPM-Solver++): 6 steps gave F1 within 0.01 of 10 steps at CFG 4 and 8, 1.5x faster
# unmasking steps of the token family's generation: 6 scored F1 within 0.016 of 8 either way at CFG 2-4 (150 in_captions images per
# class, two reference classifiers; benchmarks/sampler_steps.py) at 1.35-1.5x the images/s; 12 and 16 were no better at CFG 4
TOKEN_STEPS = 6


@dataclass(frozen=True)
class WorldFields:
    """What every embedded family learns from (the world and its split) and its seed; fields of the cache key."""

    web_size: int = 50_000
    real_size: int = 10_000
    split_seed: int = 0
    world: str = "fashion"
    world_root: str | None = None
    class_map: str | None = None
    image_size: int | None = None
    seed: int = 0

    def __post_init__(self):
        t2i.normalize_fields(self)


@dataclass(frozen=True)
class PixelConfig(WorldFields):
    """The pixel-diffusion family; each field is part of the cache key."""

    max_tokens: int = 32  # the tokenizer's limit; IFPipeline pads every prompt to 77 tokens itself
    # the text encoder reads max_tokens positions back (synkit.minilm.MiniLMCroppedModel): the UNet attends to the same text positions
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


@dataclass(frozen=True)
class TokensConfig(WorldFields):
    """The masked-token family; each field is part of the cache key."""

    max_tokens: int = 32
    resolution: int = 28  # image side; each VQ level after the first halves it (28x28 -> 14x14 tokens)
    # VQ tokenizer
    vq_channels: tuple[int, ...] = (16, 32)  # 2 levels: 14x14 tokens (3 levels' 7x7 tokens reconstructed at F1 0.70 only)
    # 128 codes: reconstruction F1 0.848 against 0.841 with 512 (1000 val images, 03's reference), the transformer's F1 within
    # noise of 512's at the same steps, and sampling 2.3x faster (fewer logits to draw from; measured here)
    codebook_size: int = 128
    latent_channels: int = 4
    vq_steps: int = 400
    vq_plain_steps: int = 150  # the first steps train a plain autoencoder (no quantization); then the codebook starts from its outputs
    vq_batch_size: int = 64
    vq_lr: float = 2e-3
    # transformer
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    # token embeddings and conv blocks: the 2x2 tokens a transformer position holds are merged from these channels (32 were
    # too few to carry four tokens: F1 0.64 against 0.75-0.78 with 64-128 and a position embedding, measured here)
    conv_channels: int = 64
    downsample: bool = True  # the transformer layers work on a 2x coarser grid than the tokens (as aMUSEd-512 does; 2.7x faster a step)
    res_blocks: int = 1  # conv blocks before and after the transformer
    positions: bool = True  # a learned position embedding (synkit.uvit), as MaskGIT and Muse have; UVit2DModel has none
    unet_steps: int = 800  # transformer steps (the name the other families use for their denoiser)
    batch_size: int = 64  # 800 steps of 64 learned more than 500 of 128 here, in 60% of the time
    lr: float = 1.5e-3
    warmup_steps: int = 50
    ema_decay: float = 0.999
    cond_dropout: float = 0.1
    caption_mix: tuple[float, ...] = (0.2, 0.2, 0.1, 0.1, 0.4)


CONFIGS = {"embedded": t2i.T2IConfig, "embedded-pixel": PixelConfig, "embedded-tokens": TokensConfig}
MICRO_COND_DIM = 8  # each of aMUSEd's 5 micro-conditions (size, crop, aesthetic score) embedded in 8 numbers


def family_of(config) -> str:
    return next(name for name, cls in CONFIGS.items() if isinstance(config, cls))


def cache_key(config) -> str:
    if isinstance(config, t2i.T2IConfig):
        return t2i.cache_key(config)
    from synkit.worlds import key_payload, t2i_split

    payload = {"version": FAMILY_KEY_VERSION, "family": family_of(config), **key_payload(config, lambda world: [t2i_split(world)])}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def default_steps(family: str) -> int:
    return {"embedded": t2i.DEFAULT_STEPS, "embedded-pixel": PIXEL_STEPS, "embedded-tokens": TOKEN_STEPS}[family]


def config_for(family: str, values: dict):
    """The config of ``family`` (``embedded``, ``embedded-pixel``, ``embedded-tokens``) from plain values."""
    if family not in CONFIGS:
        raise ValueError(f"generator {family!r} is not an embedded family; valid: {', '.join(CONFIGS)} (or a hub id or pipeline folder).")
    return t2i.config_from(values, CONFIGS[family])


def _check(config) -> None:
    mix = config.caption_mix
    if len(mix) != len(t2i.CAPTION_FORMS) or min(mix) < 0 or sum(mix) <= 0:
        raise ValueError(f"caption_mix={mix} must be {len(t2i.CAPTION_FORMS)} non-negative weights for {t2i.CAPTION_FORMS}.")
    if not 0 <= config.cond_dropout < 1:
        raise ValueError(f"cond_dropout={config.cond_dropout} must be in [0, 1).")
    if config.resolution % 4:
        raise ValueError(f"resolution={config.resolution} must be a multiple of 4 (two 2x downsamplings).")
    channels = config.unet_channels if isinstance(config, PixelConfig) else (*config.vq_channels, config.conv_channels)
    if any(c % 8 for c in channels):
        raise ValueError(f"channels {channels} must be multiples of 8 (group norm).")
    if isinstance(config, PixelConfig):
        if len(config.unet_channels) != 3:
            raise ValueError(f"unet_channels={config.unet_channels} must have 3 entries ({config.resolution} -> "
                             f"{config.resolution // 2} -> {config.resolution // 4} pixels).")
        if not 0 <= config.attention_levels <= 3:
            raise ValueError(f"attention_levels={config.attention_levels} must be 0..3.")
        if config.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type={config.prediction_type!r} must be 'epsilon' or 'v_prediction'.")
    else:
        if len(config.vq_channels) not in (2, 3):
            raise ValueError(f"vq_channels={config.vq_channels} must have 2 or 3 entries (a 2x or 4x smaller token grid).")
        if not 0 <= config.vq_plain_steps < config.vq_steps:
            raise ValueError(f"vq_plain_steps={config.vq_plain_steps} must be in [0, vq_steps={config.vq_steps}): the codebook needs steps of its own.")
        if config.downsample and token_side(config) % 2:
            raise ValueError(f"downsample needs an even token grid; {config.resolution} pixels give {token_side(config)} tokens a side.")
        if config.hidden_size % config.heads:
            raise ValueError(f"hidden_size={config.hidden_size} must be a multiple of heads={config.heads}.")


def token_side(config: TokensConfig) -> int:
    """Tokens per image side: the resolution halved at every VQ level after the first."""
    return config.resolution // 2 ** (len(config.vq_channels) - 1)


def _images(web_images, resolution: int, low: float) -> torch.Tensor:
    """uint8 (N, H, W[, 3]) -> float (N, C, resolution, resolution) in [low, 1]."""
    x = torch.from_numpy(np.array(web_images, dtype=np.float32)).div(255)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x * (1 - low) + low


def _start(config, out_dir, low: float):
    """A family's training start: the config checked, its folder, device, world, web split and its images in [low, 1]."""
    _check(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world, web = t2i.web_split(config)
    return out, t2i._device(), world, web, _images(web.images, config.resolution, low)


def _tokenizer_and_encoder(config, encoder_cls=None):
    from transformers import BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(t2i.minilm_folder(), model_max_length=config.max_tokens)
    with t2i._quiet():  # MiniLM's pooler weights go unused (the token family pools by masked mean)
        encoder = (encoder_cls or BertModel).from_pretrained(t2i.minilm_folder()).eval()
    return tokenizer, encoder


# ---------------------------------------------------------------- pixel diffusion


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
        from synkit.minilm import MiniLMCroppedModel

        tokenizer, encoder = _tokenizer_and_encoder(config, MiniLMCroppedModel)
        encoder.config.synkit_max_tokens, encoder.config.synkit_sep_token_id = config.max_tokens, tokenizer.sep_token_id
    else:
        tokenizer, encoder = _tokenizer_and_encoder(config)
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

    from synkit.generate import encode_texts

    out, device, world, web, pixels = _start(config, out_dir, -1.0)
    times = {}
    pipe = build_pixel(config, channels=pixels.shape[1]).to(device)
    t0 = time.perf_counter()
    sampler = t2i.CaptionSampler(world, web, config.caption_mix)
    with precision.autocast(device), t2i._quiet():
        table = encode_texts(pipe, sampler.strings)[0]["prompt_embeds"].to(torch.bfloat16).cpu()
    times["captions_s"] = time.perf_counter() - t0
    unet = pipe.unet.train()
    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)
    alphas = noise_sched.alphas_cumprod
    snr_table = alphas / (1 - alphas)
    ema = t2i._EMA(unet, config.ema_decay)

    def step_fn(step: int) -> torch.Tensor:
        rng, gen = t2i._step_rng(config, 1, step)
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
    with _flush_denormals():
        t2i._train_loop("pixel", unet, config.unet_steps, config.lr, config.warmup_steps, out / "checkpoint-unet.pt", checkpoint_every,
                        progress, callback, step_fn, ema=ema)
    times["unet_s"] = time.perf_counter() - t0
    ema.copy_to(unet)
    unet.eval().requires_grad_(False)
    return t2i.save_pipeline(pipe, out, _record(config, times, device))


@contextlib.contextmanager
def _flush_denormals():
    """Flush denormal floats to zero while training on a CPU: Adam's second moments of rarely used codebook
    and token embeddings decay into the denormal range within a few hundred steps, and CPU arithmetic on
    denormals is many times slower (measured here: the token model's steps slowed from 0.34 s to 1.8 s)."""
    before = torch.set_flush_denormal(True)  # returns False where the CPU cannot (then nothing changes)
    try:
        yield
    finally:
        if before:
            torch.set_flush_denormal(False)


def _record(config, times: dict, device) -> dict:
    family = family_of(config)
    return {"key": cache_key(config), "family": family, "config": dataclasses.asdict(config), "default_steps": default_steps(family),
            "train_times_s": times, "device": str(device)}


# ---------------------------------------------------------------- masked visual tokens


def build_tokens(config: TokensConfig, channels: int = 1):
    """The untrained AmusedPipeline of ``config``: VQ tokenizer, masked-token transformer, frozen MiniLM."""
    from diffusers import AmusedPipeline, AmusedScheduler, UVit2DModel, VQModel

    from synkit.minilm import MiniLMTextEncoder

    torch.manual_seed(config.seed)
    vq = VQModel(
        in_channels=channels, out_channels=channels, down_block_types=("DownEncoderBlock2D",) * len(config.vq_channels),
        up_block_types=("UpDecoderBlock2D",) * len(config.vq_channels),
        block_out_channels=config.vq_channels, layers_per_block=1, latent_channels=config.latent_channels,
        num_vq_embeddings=config.codebook_size, norm_num_groups=8, sample_size=config.resolution, mid_block_add_attention=False,
        lookup_from_codebook=True,  # AmusedPipeline decodes token ids through the codebook
    )
    from synkit.uvit import PositionalUVit2DModel

    transformer = (PositionalUVit2DModel if config.positions else UVit2DModel)(
        hidden_size=config.hidden_size, cond_embed_dim=384, micro_cond_encode_dim=MICRO_COND_DIM, micro_cond_embed_dim=5 * MICRO_COND_DIM,
        encoder_hidden_size=384, vocab_size=config.codebook_size + 1, codebook_size=config.codebook_size, in_channels=config.conv_channels,
        block_out_channels=config.conv_channels, num_res_blocks=config.res_blocks, block_num_heads=max(1, config.conv_channels // 32),
        num_hidden_layers=config.layers, num_attention_heads=config.heads, intermediate_size=2 * config.hidden_size,
        sample_size=token_side(config), downsample=config.downsample, upsample=config.downsample,
    )
    t2i.plain_attention(transformer)  # plain products: 1.8x faster training steps than the fused kernel here
    tokenizer, encoder = _tokenizer_and_encoder(config, MiniLMTextEncoder)
    scheduler = AmusedScheduler(mask_token_id=config.codebook_size, masking_schedule="cosine")
    return AmusedPipeline(vqvae=vq, tokenizer=tokenizer, text_encoder=encoder, transformer=transformer, scheduler=scheduler)


def train_tokens(config: TokensConfig, out_dir, progress: bool = True, checkpoint_every: int = 100,
                 callback: Callable[[str, int, float], None] | None = None) -> Path:
    """Train the VQ tokenizer, then the masked-token transformer, on the web split; ``out_dir/pipeline`` (an AmusedPipeline)."""
    from synkit.generate import encode_texts

    out, device, world, web, pixels = _start(config, out_dir, 0.0)  # aMUSEd's VQ works in [0, 1]
    times = {}
    pipe = build_tokens(config, channels=pixels.shape[1]).to(device)
    vq = pipe.vqvae.train()

    # 1. VQ tokenizer: first a plain autoencoder, then its codebook starts from encoder outputs and trains with
    # quantization (reconstruction + commitment); a codebook started at random collapses onto few codes
    def vq_step(step: int) -> torch.Tensor:
        rng, gen = t2i._step_rng(config, 0, step)
        x = pixels[torch.from_numpy(rng.integers(0, len(pixels), config.vq_batch_size))].to(device)
        with precision.autocast(device):
            h = vq.encode(x).latents
        if step < config.vq_plain_steps:
            with precision.autocast(device):
                rec = vq.decoder(vq.post_quant_conv(h)).float()
            return F.mse_loss(rec, x)
        if step == config.vq_plain_steps:
            with torch.no_grad():
                sample = pixels[torch.randint(0, len(pixels), (max(64, config.codebook_size // 4),), generator=gen)].to(device)
                vectors = vq.encode(sample).latents.float().permute(0, 2, 3, 1).reshape(-1, h.shape[1])
                pick = torch.randperm(len(vectors), generator=gen)[: config.codebook_size]
                vq.quantize.embedding.weight.copy_(vectors[pick.to(device)])
        quant, commit, _ = vq.quantize(h.float())
        with precision.autocast(device):
            rec = vq.decoder(vq.post_quant_conv(quant)).float()
        return F.mse_loss(rec, x) + commit

    t0 = time.perf_counter()
    with _flush_denormals():
        t2i._train_loop("tokens-vq", vq, config.vq_steps, config.vq_lr, config.warmup_steps, out / "checkpoint-vq.pt", checkpoint_every,
                        progress, callback, vq_step)
    vq.eval().requires_grad_(False)
    t2i._save({"model": vq.state_dict(), "opt": {}, "step": config.vq_steps}, out / "checkpoint-vq.pt")
    with torch.inference_mode():
        ids = torch.cat([vq.quantize(vq.encode(pixels[i : i + 512].to(device)).latents)[2][2] for i in range(0, len(pixels), 512)])
    side = token_side(config)
    tokens = ids.view(len(pixels), side, side).cpu()
    times["vq_s"] = time.perf_counter() - t0
    times["codes_used"] = int(tokens.unique().numel())

    # 2. Captions through the pipeline's own text path
    t0 = time.perf_counter()
    sampler = t2i.CaptionSampler(world, web, config.caption_mix)
    with precision.autocast(device), t2i._quiet():
        table = encode_texts(pipe, sampler.strings)[0]
    pooled, states = table["prompt_embeds"].to(torch.bfloat16).cpu(), table["encoder_hidden_states"].to(torch.bfloat16).cpu()
    times["captions_s"] = time.perf_counter() - t0

    # 3. Transformer: predict masked tokens (cosine masking ratio), condition dropout for guidance
    transformer = pipe.transformer.train()
    ema = t2i._EMA(transformer, config.ema_decay)
    micro = torch.tensor([[config.resolution, config.resolution, 0, 0, 6.0]])  # what the pipeline passes by default
    mask_id, seq = config.codebook_size, side * side

    def step_fn(step: int) -> torch.Tensor:
        rng, gen = t2i._step_rng(config, 1, step)
        idx = rng.integers(0, len(tokens), config.batch_size)
        cap = torch.from_numpy(sampler.draw(rng, idx, config.cond_dropout))
        target = tokens[torch.from_numpy(idx)].view(len(idx), seq)
        ratio = torch.cos(torch.rand(len(idx), generator=gen) * math.pi / 2)
        count = (ratio * seq).ceil().clamp(min=1)
        ranks = torch.rand(len(idx), seq, generator=gen).argsort(1).argsort(1)
        masked = ranks < count[:, None]
        inputs = torch.where(masked, mask_id, target).view(len(idx), side, side)
        with precision.autocast(device):
            logits = transformer(inputs.to(device), encoder_hidden_states=states[cap].to(device, precision.compute_dtype(device)),
                                 pooled_text_emb=pooled[cap].to(device, precision.compute_dtype(device)),
                                 micro_conds=micro.expand(len(idx), -1).to(device))
        logits = logits.float().flatten(2).transpose(1, 2)  # (batch, tokens, codebook)
        return F.cross_entropy(logits[masked.to(device)], target.to(device)[masked.to(device)])

    t0 = time.perf_counter()
    with _flush_denormals():
        t2i._train_loop("tokens", transformer, config.unet_steps, config.lr, config.warmup_steps, out / "checkpoint-transformer.pt",
                        checkpoint_every, progress, callback, step_fn, ema=ema)
    times["transformer_s"] = time.perf_counter() - t0
    ema.copy_to(transformer)
    transformer.eval().requires_grad_(False)
    return t2i.save_pipeline(pipe, out, _record(config, times, device))


# ---------------------------------------------------------------- cache


TRAIN = {"embedded-pixel": train_pixel, "embedded-tokens": train_tokens}


def ensure_family(config, models_dir="outputs/models", progress: bool = True) -> Path:
    """The cached pipeline folder of ``config`` (any family), trained first (or resumed) when missing."""
    family = family_of(config)
    if family == "embedded":
        return t2i.ensure_t2i(config, models_dir, progress)
    run = Path(models_dir) / f"t2i-{family.removeprefix('embedded-')}-{cache_key(config)}"
    if (run / "pipeline" / "model_index.json").exists():
        return run / "pipeline"
    return TRAIN[family](config, run, progress=progress)


# ---------------------------------------------------------------- generators of a study

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
