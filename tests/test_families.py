"""The pixel-diffusion and masked-token families on tiny configs: train, save, reload through their
diffusers pipeline classes, generate deterministically, resume a killed training; a study's generators."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from synkit.t2i import families, text

from synkit.generate import render as generate
from synkit.generate import plan
from synkit.data import shards

TINY = {
    "embedded-pixel": families.PixelConfig(web_size=64, real_size=16, unet_channels=(8, 16, 16), cross_attention_dim=16, unet_steps=6,
                                           batch_size=8, warmup_steps=2, caption_mix=(1, 0, 0, 0, 1)),  # names and captions: few to encode
    "embedded-tokens": families.TokensConfig(web_size=64, real_size=16, vq_channels=(8, 16), vq_steps=4, vq_plain_steps=2, vq_batch_size=8, codebook_size=16,
                                             hidden_size=32, layers=1, heads=2, conv_channels=16, res_blocks=1, unet_steps=6, batch_size=8,
                                             warmup_steps=2, caption_mix=(1, 0, 0, 0, 1)),
}
PIPELINES = {"embedded-pixel": "IFPipeline", "embedded-tokens": "AmusedPipeline"}
PROMPTS = ["Trouser", "Bag, dark, smooth, wide and short"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("family-models")


@pytest.fixture(scope="module", params=sorted(TINY))
def family(request, models_dir):
    """(family name, its trained tiny pipeline folder)."""
    return request.param, families.ensure_family(TINY[request.param], models_dir, progress=False)


def _images(pipe, family: str, **text) -> np.ndarray:
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    if family == "embedded-tokens":  # aMUSEd's sampler takes one generator (text.PIPELINES: per_batch_seed)
        gens = gens[0]
    text = text or {"prompt": PROMPTS}
    return pipe(**text, guidance_scale=3.0, num_inference_steps=3, generator=gens, output_type="np").images


def test_family_saves_reloads_through_its_pipeline_class_and_generates_deterministically(family):
    import diffusers

    name, folder = family
    cls = getattr(diffusers, PIPELINES[name])
    generate.load_pipeline(str(folder), "float32", device="cpu")  # imports the components' modules (synkit.t2i.minilm)
    for loader in (cls, diffusers.DiffusionPipeline):
        pipe = loader.from_pretrained(str(folder))
        assert type(pipe) is cls
    pipe.set_progress_bar_config(disable=True)
    first = _images(pipe, name)
    assert first.shape == (2, 28, 28, 1) and np.isfinite(first).all() and 0 <= first.min() and first.max() <= 1
    assert _images(pipe, name).tolist() == first.tolist()  # same seeds, same images
    assert not np.array_equal(_images(pipe, name, prompt=PROMPTS[::-1]), first)
    # the text arguments synkit computes once per prompt equal the pipeline's own text path
    np.testing.assert_allclose(_images(pipe, name, **text.text_inputs(pipe, PROMPTS)), first, atol=1e-5)
    info = plan.generator_id(str(folder))
    assert info == f"embedded:{families.cache_key(TINY[name])}"


def test_family_generates_shards_through_the_generation_stage(family, tmp_path):
    import pandas as pd

    name, folder = family
    prompts = pd.DataFrame({"prompt_set": "in_captions", "class_index": [0, 1], "class_name": ["T-shirt/top", "Trouser"],
                            "prompt_index": 0, "prompt": ["T-shirt/top, light", "Trouser, dark"], "source_id": None})
    prompts.to_parquet(tmp_path / "prompts.parquet")
    jobs = plan.make_jobs(["in_captions"], [2.0], 3, tmp_path / "synthetic", generator_name=name, prompts=str(tmp_path / "prompts.parquet"),
                              generator=str(folder), steps=2, resolution=28, resize_mode="center_crop", mode="L", batch_size=4, shard_size=4)
    for job, pipe in generate.with_pipelines(jobs):
        generate.generate_config(job, pipe=pipe, progress=False)
    images, manifest = shards.read_images(jobs[0].out_dir)
    assert images.shape == (6, 28, 28) and manifest["generator"].eq(name).all()
    again = tmp_path / "again"
    job = dataclasses.replace(jobs[0], out_dir=str(again / jobs[0].name))
    generate.generate_config(job, progress=False)  # a fresh process's path: the pipeline loaded from the folder
    assert shards.read_images(job.out_dir)[0].tolist() == images.tolist()


def test_killed_family_training_resumes_to_the_same_weights(family, tmp_path):
    name, folder = family
    config = TINY[name]
    stage = {"embedded-pixel": "pixel", "embedded-tokens": "tokens"}[name]

    class Killed(Exception):
        pass

    def kill(at_stage, step, loss):
        if at_stage == stage and step == 3:
            raise Killed

    train = {"embedded-pixel": families.train_pixel, "embedded-tokens": families.train_tokens}[name]
    with pytest.raises(Killed):
        train(config, tmp_path, progress=False, checkpoint_every=2, callback=kill)
    assert list(tmp_path.glob("checkpoint-*.pt")) and not (tmp_path / "pipeline").exists()
    seen = []
    out = train(config, tmp_path, progress=False, checkpoint_every=2, callback=lambda *a: seen.append(a[:2]))
    assert seen[0] == (stage, 3) and seen[-1] == (stage, config.unet_steps)  # earlier stages were done; this one went on from step 2
    assert not list(tmp_path.glob("checkpoint-*.pt"))
    part = "unet" if name == "embedded-pixel" else "transformer"
    from safetensors.torch import load_file

    resumed = load_file(next((out / part).glob("*.safetensors")))
    straight = load_file(next((folder / part).glob("*.safetensors")))
    assert resumed.keys() == straight.keys()
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, msg=key)


def test_cache_keys_differ_between_families_and_follow_their_parameters():
    pixel, tokens = TINY["embedded-pixel"], TINY["embedded-tokens"]
    keys = {families.cache_key(pixel), families.cache_key(tokens), families.cache_key(families.t2i.T2IConfig())}
    assert len(keys) == 3
    assert families.cache_key(pixel) == families.cache_key(dataclasses.replace(pixel, unet_channels=[8, 16, 16]))  # as YAML gives them
    assert families.cache_key(dataclasses.replace(pixel, unet_steps=7)) != families.cache_key(pixel)
    assert families.cache_key(dataclasses.replace(tokens, codebook_size=32)) != families.cache_key(tokens)


def test_bad_family_parameters_fail_with_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="'vae_steps' is not a training parameter"):
        families.config_for("embedded-pixel", {"vae_steps": 4})
    with pytest.raises(ValueError, match="generator 'embedded-pixels' is not an embedded family; valid: embedded, embedded-pixel"):
        families.config_for("embedded-pixels", {})
    with pytest.raises(ValueError, match="multiples of 8"):
        families.train_pixel(dataclasses.replace(TINY["embedded-pixel"], unet_channels=(8, 12, 16)), tmp_path)
    with pytest.raises(ValueError, match="resolution=30 must be a multiple of 4"):
        families.train_tokens(dataclasses.replace(TINY["embedded-tokens"], resolution=30), tmp_path)


def test_generator_entries_merge_over_the_notebook_parameters():
    defaults = {k: None for k in families.GENERATOR_KEYS} | {"generator": "embedded", "prompt_sets": ["in_captions"],
                                                            "guidance_scales": [2.0], "embedded_config": {"unet_steps": 5}}
    one = families.generator_entries([], defaults)
    assert len(one) == 1 and one[0]["generator_name"] == "embedded" and one[0]["embedded_config"] == {"unet_steps": 5}
    several = families.generator_entries(["embedded", {"generator": "embedded-pixel", "guidance_scales": [1, 4]}], defaults)
    assert [e["generator_name"] for e in several] == ["embedded", "embedded-pixel"]
    assert several[1]["guidance_scales"] == [1, 4] and several[1]["prompt_sets"] == ["in_captions"]
    assert several[0]["embedded_config"] == {"unet_steps": 5}  # the notebook's own generator keeps the notebook's training parameters
    assert several[1]["embedded_config"] == {}  # another family's are its entry's own
    with pytest.raises(ValueError, match="generators entry 1 has unknown key 'cfg'; valid keys are generator, "):
        families.generator_entries(["embedded", {"generator": "embedded-pixel", "cfg": [1]}], defaults)
    with pytest.raises(ValueError, match="two generators entries are named 'embedded'"):
        families.generator_entries(["embedded", "embedded"], defaults)


def test_a_caption_form_without_weight_is_neither_drawn_nor_encoded():
    from synkit.t2i import latent as t2i

    fashion, web = t2i.web_split(TINY["embedded-pixel"])
    # the fashion world's web corpus has alt text of its own: the generator learns from it alone, whatever the weights
    alt = set(fashion.alt_texts("web"))
    assert set(t2i.CaptionSampler(fashion, web, (1, 1, 1, 1, 1)).strings) == set(t2i.CaptionSampler(fashion, web, (1, 0, 0, 0, 1)).strings) == alt | {""}

    class NoAltText:  # the same world without alt text of its own (a folder world's case): the prompt forms and their weights apply
        def __getattr__(self, name):
            if name == "alt_texts":
                raise AttributeError(name)
            return getattr(fashion, name)

    world = NoAltText()
    every = t2i.CaptionSampler(world, web, (1, 1, 1, 1, 1))
    few = t2i.CaptionSampler(world, web, (1, 0, 0, 0, 1))
    assert set(few.strings) < set(every.strings) and "a bad photo of a Trouser." in every.strings and "a bad photo of a Trouser." not in few.strings
    drawn = {few.strings[i] for i in few.draw(np.random.default_rng(0), np.arange(len(web.labels)), cond_dropout=0.0)}
    names = {n for c in world.classes for n in (c.name, *c.lemmas)}
    assert drawn <= names | {few.strings[i] for i in few.full} and drawn & names and drawn - names


def test_the_token_transformer_knows_where_a_fully_masked_token_is(tmp_path):
    # UVit2DModel alone gives every inner token of a fully masked grid the same logits (its convs see only padding
    # at the borders); the learned position embedding of synkit.t2i.uvit tells the positions apart, and round-trips
    from synkit.t2i.uvit import PositionalUVit2DModel

    config = dataclasses.replace(TINY["embedded-tokens"], downsample=False)
    masked = torch.full((1, 14, 14), config.codebook_size)
    args = {"encoder_hidden_states": torch.zeros(1, 3, 384), "pooled_text_emb": torch.zeros(1, 384), "micro_conds": torch.zeros(1, 5)}
    logits = {}
    for positions in (False, True):
        model = families.build_tokens(dataclasses.replace(config, positions=positions)).transformer.eval()
        with torch.no_grad():
            logits[positions] = model(masked, **args)[0, :, 5:9, 5:9].flatten(1)  # the inner 4x4 tokens, far from every border
    assert torch.allclose(logits[False], logits[False][:, :1], atol=1e-5)
    assert not torch.allclose(logits[True], logits[True][:, :1], atol=1e-3)
    model.save_pretrained(tmp_path)
    again = PositionalUVit2DModel.from_pretrained(tmp_path)
    assert type(again) is PositionalUVit2DModel and torch.equal(again.embed.position, model.embed.position)


def test_the_pixel_familys_text_encoder_reads_what_a_32_token_tokenizer_gives():
    """IFPipeline pads prompts to 77 tokens; the pixel family's encoder cuts them back to its limit, as the
    tokenizer truncates (a long caption ends in [SEP]), with the token states unchanged."""
    from transformers import BertConfig, BertTokenizerFast

    from synkit.t2i import latent as t2i
    from synkit.t2i.minilm import MiniLMCroppedModel

    tokenizer = BertTokenizerFast.from_pretrained(t2i.minilm_folder(), model_max_length=8)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        synkit_max_tokens=8, synkit_sep_token_id=tokenizer.sep_token_id)
    torch.manual_seed(0)
    encoder = MiniLMCroppedModel(config).eval()
    texts = ["Bag", "Ankle boot, dark, smooth, wide and short with a heel and a strap"]  # 3 and 16 tokens
    long = tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    short = tokenizer(texts, padding="max_length", max_length=8, truncation=True, return_tensors="pt")
    assert short.input_ids[1, -1] == tokenizer.sep_token_id and long.input_ids[1, 7] != tokenizer.sep_token_id
    with torch.no_grad():
        cut = encoder(long.input_ids, attention_mask=long.attention_mask)[0]
        plain = super(MiniLMCroppedModel, encoder).forward(input_ids=short.input_ids, attention_mask=short.attention_mask)[0]
        uncut = super(MiniLMCroppedModel, encoder).forward(input_ids=long.input_ids, attention_mask=long.attention_mask)[0]
    assert cut.shape == (2, 8, 16)
    torch.testing.assert_close(cut, plain)
    torch.testing.assert_close(cut[0], uncut[0, :8])  # a short prompt's states do not depend on the padding cut away
