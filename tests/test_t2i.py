"""The embedded text-to-image model on a tiny config: train, cache, resume, save, load, generate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from synkit.t2i import families
from synkit.t2i import latent as t2i
from synkit.t2i.text import prompt_embeddings

TINY = t2i.T2IConfig(
    web_size=64, real_size=16, vae_channels=(8, 8, 16), vae_steps=4, vae_batch_size=8,
    unet_channels=(16, 32), cross_attention_dim=16, unet_steps=6, batch_size=8, warmup_steps=2,
)
TINY_ARGS = ["--set", "web_size=64", "--set", "real_size=16", "--set", "vae_channels=[8,8,16]", "--set", "vae_steps=4",
             "--set", "vae_batch_size=8", "--set", "unet_channels=[16,32]", "--set", "cross_attention_dim=16",
             "--set", "unet_steps=6", "--set", "batch_size=8", "--set", "warmup_steps=2"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def tiny_pipeline(models_dir):
    return t2i.ensure_t2i(TINY, models_dir, progress=False)


def _generate(pipe, guidance: float, **kwargs) -> np.ndarray:
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    if "prompt_embeds" not in kwargs:
        kwargs["prompt"] = ["Trouser", "Bag, dark, smooth, wide and short"]
    return pipe(**kwargs, guidance_scale=guidance, num_inference_steps=3, generator=gens, height=32, width=32, output_type="np").images


def test_pipeline_saves_loads_and_generates(tiny_pipeline):
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline, StableDiffusionPipeline

    assert tiny_pipeline.name == "pipeline" and tiny_pipeline.parent.name == f"t2i-{t2i.cache_key(TINY)}"
    for loader in (AutoPipelineForText2Image, DiffusionPipeline):
        assert isinstance(loader.from_pretrained(str(tiny_pipeline)), StableDiffusionPipeline)
    pipe = AutoPipelineForText2Image.from_pretrained(str(tiny_pipeline))
    pipe.set_progress_bar_config(disable=True)
    assert pipe.text_encoder.config.use_attention_mask and pipe.tokenizer.model_max_length == TINY.max_tokens
    low, high = _generate(pipe, 1.0), _generate(pipe, 8.0)
    assert low.shape == (2, 32, 32, 1) and np.isfinite(low).all()
    assert not np.allclose(low, high)
    assert _generate(pipe, 1.0).tolist() == low.tolist()  # same seeds, same images
    images = pipe(prompt="Sneaker", num_inference_steps=2, height=32, width=32).images
    assert images[0].mode == "L" and images[0].size == (32, 32)


def test_encode_prompts_matches_the_pipeline(tiny_pipeline):
    pipe = t2i.load_t2i(tiny_pipeline, device="cpu")
    prompts = ["Trouser", "Bag, dark, smooth, wide and short"]
    embeds, negative = prompt_embeddings(pipe, prompts + prompts[:1])
    assert embeds.shape == (3, TINY.max_tokens, 384) and torch.equal(embeds[0], embeds[2])
    direct = _generate(pipe, 4.0)
    via_embeds = _generate(pipe, 4.0, prompt_embeds=embeds[:2], negative_prompt_embeds=negative[:2])
    np.testing.assert_allclose(direct, via_embeds, atol=1e-5)


def test_cache_key_follows_the_training_parameters():
    base = t2i.cache_key(TINY)
    assert base == t2i.cache_key(dataclasses.replace(TINY))
    assert base == t2i.cache_key(dataclasses.replace(TINY, vae_channels=[8, 8, 16], lr=1e-3))  # as YAML gives them
    assert t2i.cache_key(t2i.T2IConfig(lr=1)) == t2i.cache_key(t2i.T2IConfig(lr=1.0))
    for change in ({"unet_steps": 7}, {"lr": 2e-3}, {"web_size": 65}, {"split_seed": 1}, {"caption_mix": (1, 0, 0, 0, 0)}):
        assert t2i.cache_key(dataclasses.replace(TINY, **change)) != base, change


def test_cache_is_reused_and_cli_parses(tiny_pipeline, models_dir, monkeypatch, capsys):
    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(t2i, "train_t2i", no_training)
    assert t2i.ensure_t2i(TINY, models_dir, progress=False) == tiny_pipeline
    assert families.main_train(["--models-dir", str(models_dir), *TINY_ARGS]) == 0
    assert capsys.readouterr().out.strip() == str(tiny_pipeline)
    with pytest.raises(ValueError, match="unet_steps='many' is invalid: it must be a int"):
        t2i.parse_overrides(["unet_steps=many"])
    with pytest.raises(ValueError, match="'unet_step' is not a training parameter of the embedded model; valid keys are"):
        t2i.parse_overrides(["unet_step=5"])
    # YAML 1.1 reads 2e-3 as a text: a float field takes it as the number, with the key of 0.002
    assert t2i.config_from({"lr": "2e-3"}) == t2i.config_from({"lr": 0.002})
    with pytest.raises(ValueError, match="lr='fast' is invalid: it must be a float"):
        t2i.config_from({"lr": "fast"})


def test_killed_training_resumes_from_its_checkpoint(tiny_pipeline, tmp_path):
    class Killed(Exception):
        pass

    def kill(stage, step, loss):
        if stage == "unet" and step == 3:
            raise Killed

    with pytest.raises(Killed):
        t2i.train_t2i(TINY, tmp_path, progress=False, checkpoint_every=2, callback=kill)
    assert (tmp_path / "checkpoint-unet.pt").exists() and not (tmp_path / "pipeline").exists()
    seen = []
    out = t2i.train_t2i(TINY, tmp_path, progress=False, checkpoint_every=2, callback=lambda *a: seen.append(a[:2]))
    assert seen[0] == ("unet", 3) and seen[-1] == ("unet", TINY.unet_steps)  # the VAE was done; the UNet went on from step 2
    assert not (tmp_path / "checkpoint-unet.pt").exists()
    from diffusers import UNet2DConditionModel

    resumed = UNet2DConditionModel.from_pretrained(out / "unet").state_dict()
    straight = UNet2DConditionModel.from_pretrained(tiny_pipeline / "unet").state_dict()
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, msg=name)


def test_bad_config_fails_with_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="caption_mix"):
        t2i.train_t2i(dataclasses.replace(TINY, caption_mix=(1, 0)), tmp_path)
    with pytest.raises(ValueError, match="multiples of 8"):
        t2i.train_t2i(dataclasses.replace(TINY, unet_channels=(12, 24)), tmp_path)
