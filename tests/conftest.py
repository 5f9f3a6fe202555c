"""Shared fixtures: tiny random pretrained models built from configs (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub id that is not cached fails at once, not after retries
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # several test processes (make test): each gets its share of the cores' threads,
    # for itself and the processes it starts (PyTorch's OpenMP threads spin: two processes of all-core pools run slower than one)
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _threads = str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """Tests that read the smoke study run in one test process (``--dist loadgroup``), so it runs once."""
    for item in items:
        if "smoke" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("smoke"))

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def fashion():
    from synkit.data.worlds import load_world

    return load_world("fashion", web_size=20_000, real_size=2_000)


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    """A random 1-layer T5 with ByT5's tokenizer (which needs no vocabulary file)."""
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    path = tmp_path_factory.mktemp("tiny_t5")
    cfg = T5Config(
        vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    T5ForConditionalGeneration(cfg).save_pretrained(path)
    ByT5Tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_blip2(tmp_path_factory) -> Path:
    """A random BLIP-2 (ViT + Q-Former + OPT, as Salesforce/blip2-opt-2.7b) with a ByT5 tokenizer."""
    from tokenizers import AddedToken
    from transformers import (
        Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, Blip2QFormerConfig, Blip2VisionConfig,
        BlipImageProcessor, ByT5Tokenizer, OPTConfig,
    )

    path = tmp_path_factory.mktemp("tiny_blip2")
    tok = ByT5Tokenizer(extra_ids=0)
    tok.add_special_tokens({"additional_special_tokens": [AddedToken("<image>", normalized=False, special=True)]})
    tok.image_token = "<image>"
    text = OPTConfig(
        vocab_size=len(tok), hidden_size=32, ffn_dim=64, num_hidden_layers=1, num_attention_heads=2,
        word_embed_proj_dim=32, bos_token_id=1, eos_token_id=1, pad_token_id=0, max_position_embeddings=64,
    )
    vision = Blip2VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    qformer = Blip2QFormerConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, encoder_hidden_size=32, vocab_size=100)
    cfg = Blip2Config(
        vision_config=vision.to_dict(), qformer_config=qformer.to_dict(), text_config=text.to_dict(),
        num_query_tokens=4, image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    Blip2ForConditionalGeneration(cfg).save_pretrained(path)
    Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok, num_query_tokens=4).save_pretrained(path)
    return path


def kill_at_checkpoint(module: str, job_file: Path, checkpoint: Path, timeout: float = 180) -> bool:
    """Run ``python -m module job_file``, SIGKILL it as soon as ``checkpoint`` exists (or it ends, or
    ``timeout`` passes); return whether the checkpoint was written before the kill."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", module, str(job_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return checkpoint.exists()


def make_image_folder(root: Path, classes: list[str], splits=("train", "val"), per_class: int = 3, size: int = 16) -> Path:
    """A labelled image folder: root/<split>/<class>/<i>.png with random RGB images."""
    rng = np.random.default_rng(0)
    for split in splits:
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def clip_tokenizer(folder: Path):
    """A CLIPTokenizer with Stable Diffusion's real vocabulary, built from open_clip's BPE file."""
    import json as _json

    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    simple = SimpleTokenizer()
    folder.mkdir(parents=True, exist_ok=True)
    vocab = dict(simple.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")  # Hugging Face's names for CLIP's two special tokens
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    (folder / "vocab.json").write_text(_json.dumps(vocab))
    merges = sorted(simple.bpe_ranks, key=simple.bpe_ranks.get)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    """A Stable Diffusion pipeline of tiny random components (as diffusers' fast tests), saved to a folder."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    path = tmp_path_factory.mktemp("tiny_sd")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )
    text = CLIPTextModel(CLIPTextConfig(
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=16, intermediate_size=32,
        num_attention_heads=2, num_hidden_layers=1, vocab_size=49408, max_position_embeddings=16,
    ))
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text, tokenizer=clip_tokenizer(path / "_tok"), scheduler=DDIMScheduler(steps_offset=1, clip_sample=False),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(path / "pipeline")
    return path / "pipeline"


@pytest.fixture(scope="session")
def tiny_if(tmp_path_factory) -> tuple[Path, Path]:
    """DeepFloyd IF stage I and stage II (super-resolution) pipelines of tiny random components."""
    import torch
    from diffusers import DDPMScheduler, IFPipeline, IFSuperResolutionPipeline, UNet2DConditionModel
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    torch.manual_seed(0)

    def unet(stage2: bool) -> UNet2DConditionModel:
        extra = dict(class_embed_type="timestep", mid_block_scale_factor=1.414, time_embedding_act_fn="gelu", time_embedding_dim=32) if stage2 else {}
        return UNet2DConditionModel(
            sample_size=16 if stage2 else 8, layers_per_block=1, block_out_channels=[32, 64],
            down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"], mid_block_type="UNetMidBlock2DSimpleCrossAttn",
            up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"], in_channels=6 if stage2 else 3, out_channels=6,
            cross_attention_dim=32, encoder_hid_dim=32, attention_head_dim=8, addition_embed_type="text",
            addition_embed_type_num_heads=2, cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift", act_fn="gelu", **extra,
        )

    def scheduler() -> DDPMScheduler:
        return DDPMScheduler(
            beta_schedule="squaredcos_cap_v2", thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.0,
            variance_type="learned_range",
        )

    tok = ByT5Tokenizer()
    tok.model_max_length = 16
    text = T5EncoderModel(T5Config(vocab_size=384, d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=2))
    common = dict(tokenizer=tok, text_encoder=text, safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False)
    root = tmp_path_factory.mktemp("tiny_if")
    IFPipeline(unet=unet(False), scheduler=scheduler(), **common).save_pretrained(root / "stage1")
    IFSuperResolutionPipeline(
        unet=unet(True), scheduler=scheduler(), image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"), **common
    ).save_pretrained(root / "stage2")
    return root / "stage1", root / "stage2"


@pytest.fixture(scope="session")
def tiny_amused(tmp_path_factory) -> Path:
    """An aMUSEd (masked-token, like Muse) pipeline of tiny random components."""
    import torch
    from diffusers import AmusedPipeline, AmusedScheduler, UVit2DModel, VQModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_amused")
    transformer = UVit2DModel(
        hidden_size=8, use_bias=False, hidden_dropout=0.0, cond_embed_dim=8, micro_cond_encode_dim=2, micro_cond_embed_dim=10,
        encoder_hidden_size=8, vocab_size=32, codebook_size=8, in_channels=8, block_out_channels=8, num_res_blocks=1,
        downsample=True, upsample=True, block_num_heads=1, num_hidden_layers=1, num_attention_heads=1, attention_dropout=0.0,
        intermediate_size=8, layer_norm_eps=1e-06, ln_elementwise_affine=True,
    )
    vqvae = VQModel(
        act_fn="silu", block_out_channels=[8], down_block_types=["DownEncoderBlock2D"], in_channels=3, latent_channels=8,
        layers_per_block=1, norm_num_groups=8, num_vq_embeddings=8, out_channels=3, sample_size=8, up_block_types=["UpDecoderBlock2D"],
        mid_block_add_attention=False, lookup_from_codebook=True, force_upcast=False,
    )
    text = CLIPTextModelWithProjection(CLIPTextConfig(
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=8, intermediate_size=8, num_attention_heads=1,
        num_hidden_layers=1, vocab_size=49408, projection_dim=8, max_position_embeddings=16,
    ))
    AmusedPipeline(
        vqvae=vqvae, tokenizer=clip_tokenizer(root / "_tok"), text_encoder=text, transformer=transformer, scheduler=AmusedScheduler(mask_token_id=31),
    ).save_pretrained(root / "pipeline")
    return root / "pipeline"


def smoke_run(out: Path) -> tuple[Path, str]:
    """The smoke study through the real notebooks into ``out``: (study folder, the runner's log).
    Each line of the log is also kept with the second it arrived (``out/timeline.json``: the
    terminal progress test reads when lines came, not just what they said)."""
    import json
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "synkit", "run", "parameters/smoke.yaml", "--set", f"outputs_dir={out}"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    timeline = []
    try:
        for line in proc.stderr:  # as the lines arrive
            timeline.append((round(time.time() - t0, 2), line.rstrip("\n")))
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "\n".join(text for _, text in timeline)
    assert proc.returncode == 0, log[-3000:]
    (out / "timeline.json").write_text(json.dumps(timeline))
    return out / "smoke", log


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """One uninterrupted smoke study per test session (the notebook and reliability tests read it)."""
    return smoke_run(tmp_path_factory.mktemp("outputs"))
