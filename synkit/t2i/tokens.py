"""The token family (Muse / aMUSEd): an ``AmusedPipeline`` with a VQ tokenizer and a transformer that unmasks tokens
(see ``synkit.t2i.families``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from synkit.core import precision
from synkit.engine import loop
from synkit.t2i import base, registry
from synkit.t2i import latent as t2i
from synkit.t2i.base import FamilyFields, flush_denormals, start_training, tokenizer_and_encoder, training_record
from synkit.t2i.text import encode_texts, quiet

# unmasking steps of the token family's generation: 6 scored F1 within 0.016 of 8 either way at CFG 2-4 (150 in_captions images per
# class, two reference classifiers; benchmarks/sampler_steps.py) at 1.35-1.5x the images/s; 12 and 16 were no better at CFG 4
TOKEN_STEPS = 6


@dataclass(frozen=True)
class TokensConfig(FamilyFields):
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
    positions: bool = True  # a learned position embedding (synkit.t2i.uvit), as MaskGIT and Muse have; UVit2DModel has none
    unet_steps: int = 800  # transformer steps (the name the other families use for their denoiser)
    batch_size: int = 64  # 800 steps of 64 learned more than 500 of 128 here, in 60% of the time
    lr: float = 1.5e-3
    warmup_steps: int = 50
    ema_decay: float = 0.999
    cond_dropout: float = 0.1
    caption_mix: tuple[float, ...] = (0.2, 0.2, 0.1, 0.1, 0.4)


MICRO_COND_DIM = 8  # each of aMUSEd's 5 micro-conditions (size, crop, aesthetic score) embedded in 8 numbers


def token_side(config: TokensConfig) -> int:
    """Tokens per image side: the resolution halved at every VQ level after the first."""
    return config.resolution // 2 ** (len(config.vq_channels) - 1)


def build_tokens(config: TokensConfig, channels: int = 1):
    """The untrained AmusedPipeline of ``config``: VQ tokenizer, masked-token transformer, frozen MiniLM."""
    from diffusers import AmusedPipeline, AmusedScheduler, UVit2DModel, VQModel

    from synkit.t2i.minilm import MiniLMTextEncoder

    torch.manual_seed(config.seed)
    vq = VQModel(
        in_channels=channels, out_channels=channels, down_block_types=("DownEncoderBlock2D",) * len(config.vq_channels),
        up_block_types=("UpDecoderBlock2D",) * len(config.vq_channels),
        block_out_channels=config.vq_channels, layers_per_block=1, latent_channels=config.latent_channels,
        num_vq_embeddings=config.codebook_size, norm_num_groups=8, sample_size=config.resolution, mid_block_add_attention=False,
        lookup_from_codebook=True,  # AmusedPipeline decodes token ids through the codebook
    )
    from synkit.t2i.uvit import PositionalUVit2DModel

    transformer = (PositionalUVit2DModel if config.positions else UVit2DModel)(
        hidden_size=config.hidden_size, cond_embed_dim=384, micro_cond_encode_dim=MICRO_COND_DIM, micro_cond_embed_dim=5 * MICRO_COND_DIM,
        encoder_hidden_size=384, vocab_size=config.codebook_size + 1, codebook_size=config.codebook_size, in_channels=config.conv_channels,
        block_out_channels=config.conv_channels, num_res_blocks=config.res_blocks, block_num_heads=max(1, config.conv_channels // 32),
        num_hidden_layers=config.layers, num_attention_heads=config.heads, intermediate_size=2 * config.hidden_size,
        sample_size=token_side(config), downsample=config.downsample, upsample=config.downsample,
    )
    t2i.plain_attention(transformer)  # plain products: 1.8x faster training steps than the fused kernel here
    tokenizer, encoder = tokenizer_and_encoder(config, MiniLMTextEncoder)
    scheduler = AmusedScheduler(mask_token_id=config.codebook_size, masking_schedule="cosine")
    return AmusedPipeline(vqvae=vq, tokenizer=tokenizer, text_encoder=encoder, transformer=transformer, scheduler=scheduler)


def _train_vq(config: TokensConfig, vq, pixels: torch.Tensor, out: Path, checkpoint_every: int, progress: bool, callback) -> torch.Tensor:
    """Stage 1 of the token model: the VQ tokenizer; returns every web image's tokens (images, side, side)."""
    device = next(vq.parameters()).device

    # first a plain autoencoder, then its codebook starts from encoder outputs and trains with
    # quantization (reconstruction + commitment); a codebook started at random collapses onto few codes
    def vq_step(step: int) -> torch.Tensor:
        rng, gen = loop.step_rng(config.seed, 0, step)
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

    with flush_denormals():
        loop.train_loop("tokens-vq", vq, config.vq_steps, config.vq_lr, config.warmup_steps, out / "checkpoint-vq.pt", checkpoint_every,
                        progress, callback, vq_step)
    vq.eval().requires_grad_(False)
    loop.save_state({"model": vq.state_dict(), "opt": {}, "step": config.vq_steps}, out / "checkpoint-vq.pt")
    with torch.inference_mode():
        ids = torch.cat([vq.quantize(vq.encode(pixels[i : i + 512].to(device)).latents)[2][2] for i in range(0, len(pixels), 512)])
    side = token_side(config)
    return ids.view(len(pixels), side, side).cpu()


def train_tokens(config: TokensConfig, out_dir, progress: bool = True, checkpoint_every: int = 100,
                 callback: Callable[[str, int, float], None] | None = None) -> Path:
    """Train the VQ tokenizer, then the masked-token transformer, on the web split; ``out_dir/pipeline`` (an AmusedPipeline)."""

    out, device, world, web, pixels = start_training(config, out_dir, 0.0, check)  # aMUSEd's VQ works in [0, 1]
    times = {}
    pipe = build_tokens(config, channels=pixels.shape[1]).to(device)
    vq = pipe.vqvae.train()

    t0 = time.perf_counter()
    tokens = _train_vq(config, vq, pixels, out, checkpoint_every, progress, callback)
    side = token_side(config)
    times["vq_s"] = time.perf_counter() - t0
    times["codes_used"] = int(tokens.unique().numel())

    # 2. Captions through the pipeline's own text path
    t0 = time.perf_counter()
    sampler = t2i.CaptionSampler(world, web, config.caption_mix)
    with precision.autocast(device), quiet():
        table = encode_texts(pipe, sampler.strings)[0]
    pooled, states = table["prompt_embeds"].to(torch.bfloat16).cpu(), table["encoder_hidden_states"].to(torch.bfloat16).cpu()
    times["captions_s"] = time.perf_counter() - t0

    # 3. Transformer: predict masked tokens (cosine masking ratio), condition dropout for guidance
    transformer = pipe.transformer.train()
    ema = loop.EMA(transformer, config.ema_decay)
    micro = torch.tensor([[config.resolution, config.resolution, 0, 0, 6.0]])  # what the pipeline passes by default
    mask_id, seq = config.codebook_size, side * side

    def step_fn(step: int) -> torch.Tensor:
        rng, gen = loop.step_rng(config.seed, 1, step)
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
    with flush_denormals():
        loop.train_loop("tokens", transformer, config.unet_steps, config.lr, config.warmup_steps, out / "checkpoint-transformer.pt",
                        checkpoint_every, progress, callback, step_fn, ema=ema)
    times["transformer_s"] = time.perf_counter() - t0
    ema.copy_to(transformer)
    transformer.eval().requires_grad_(False)
    return t2i.save_pipeline(pipe, out, training_record(config, times, device))


def check(config: TokensConfig) -> None:
    base.check_common(config, (*config.vq_channels, config.conv_channels))
    if len(config.vq_channels) not in (2, 3):
        raise ValueError(f"vq_channels={config.vq_channels} must have 2 or 3 entries (a 2x or 4x smaller token grid).")
    if not 0 <= config.vq_plain_steps < config.vq_steps:
        raise ValueError(f"vq_plain_steps={config.vq_plain_steps} must be in [0, vq_steps={config.vq_steps}): the codebook needs steps of its own.")
    if config.downsample and token_side(config) % 2:
        raise ValueError(f"downsample needs an even token grid; {config.resolution} pixels give {token_side(config)} tokens a side.")
    if config.hidden_size % config.heads:
        raise ValueError(f"hidden_size={config.hidden_size} must be a multiple of heads={config.heads}.")


registry.register(registry.Family("embedded-tokens", TokensConfig, base.family_key,
                                  lambda config, models_dir, progress: registry.ensure_trained(config, models_dir, progress, train_tokens),
                                  TOKEN_STEPS, rank=2))
