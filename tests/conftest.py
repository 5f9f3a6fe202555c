"""Shared fixtures: tiny random pretrained models built from configs (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub id that is not cached fails at once, not after retries

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def fashion():
    from synkit.worlds import load_world

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
