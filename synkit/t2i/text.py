"""Text through a pipeline's own text path: prompts encoded once per distinct text (for generation and for
training synkit's own models on captions), and quieting the libraries' truncation warnings."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass


@contextlib.contextmanager
def quiet():
    """Silence diffusers' and transformers' truncation warnings (they list every padded prompt)."""
    import diffusers
    import transformers

    levels = diffusers.logging.get_verbosity(), transformers.logging.get_verbosity()
    diffusers.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers.logging.set_verbosity(levels[0])
        transformers.logging.set_verbosity(levels[1])


def _sd_text(pipe, texts: list[str]) -> dict:
    return {"prompt_embeds": pipe.encode_prompt(texts, pipe.device, 1, False)[0]}


def _if_text(pipe, texts: list[str]) -> dict:  # clean_caption off: the same text the model was trained on
    return {"prompt_embeds": pipe.encode_prompt(texts, do_classifier_free_guidance=False, device=pipe.device, clean_caption=False)[0]}


def _amused_text(pipe, texts: list[str]) -> dict:  # as AmusedPipeline.__call__: pooled text_embeds and the penultimate hidden states
    ids = pipe.tokenizer(texts, return_tensors="pt", padding="max_length", truncation=True,
                         max_length=pipe.tokenizer.model_max_length).input_ids.to(pipe.device)
    out = pipe.text_encoder(ids, return_dict=True, output_hidden_states=True)
    return {"prompt_embeds": out.text_embeds, "encoder_hidden_states": out.hidden_states[-2]}


@dataclass(frozen=True)
class PipelineTraits:
    """What synkit knows of a diffusers pipeline class: how its own text path encodes prompts ahead (``encode``: None,
    prompts go to the call), and whether its sampler takes one generator for the batch instead of one per image (the batch
    then shares a generator seeded with its first image's seed: still fixed per shard, so runs stay reproducible)."""

    encode: Callable | None = None
    per_batch_seed: bool = False


# the registry: diffusers pipeline class name -> traits; any other pipeline gets the defaults
PIPELINES = {"StableDiffusionPipeline": PipelineTraits(_sd_text), "IFPipeline": PipelineTraits(_if_text),
             "AmusedPipeline": PipelineTraits(_amused_text, per_batch_seed=True)}


def traits(pipe) -> PipelineTraits:
    """The registry's traits of ``pipe``'s class (the one place synkit tells pipelines apart)."""
    return PIPELINES.get(type(pipe).__name__, PipelineTraits())


def encode_batch(pipe, texts: list[str]) -> dict:
    """The call arguments the pipeline's own text path computes for ``texts``, one row each."""
    encode = traits(pipe).encode
    if encode is None:
        raise TypeError(f"{type(pipe).__name__} is not one of the pipelines whose prompts synkit encodes ahead ({', '.join(PIPELINES)}).")
    return encode(pipe, texts)


def encode_texts(pipe, texts: list[str], batch_size: int = 256) -> tuple[dict, dict]:
    """Each distinct text of ``texts`` (in that order) and the empty negative prompt, encoded through
    the pipeline's own text path in fixed batches: (arguments per text, negative arguments with one
    row), keyed as the pipeline's call names them (``prompt_embeds``, ``negative_prompt_embeds``, and
    for aMUSEd ``encoder_hidden_states`` too). For small models the text encoder can cost more than the
    denoising, and a shard often repeats a class name or template."""
    import torch

    with torch.inference_mode():
        parts = [encode_batch(pipe, texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        positive = {k: torch.cat([part[k] for part in parts]) for k in parts[0]}
        negative = {f"negative_{k}": v for k, v in encode_batch(pipe, [""]).items()}
    return positive, negative


def text_inputs(pipe, prompts: list[str], batch_size: int = 256) -> dict:
    """The pipeline call's text arguments for ``prompts`` (one row each, negatives the empty prompt),
    equal to what ``pipe(prompt=...)`` computes."""
    import torch

    unique = list(dict.fromkeys(prompts))
    positive, negative = encode_texts(pipe, unique, batch_size)
    index = {p: i for i, p in enumerate(unique)}
    return select_rows(positive, negative, torch.tensor([index[p] for p in prompts]))


def select_rows(positive: dict, negative: dict, idx) -> dict:
    rows = {k: v[idx] for k, v in positive.items()}
    return {**rows, **{k: v.expand(len(idx), *v.shape[1:]) for k, v in negative.items()}}


def prompt_embeddings(pipe, prompts: list[str], batch_size: int = 256):
    """``prompt_embeds`` and ``negative_prompt_embeds`` of a Stable Diffusion or IF pipeline (``text_inputs``)."""
    out = text_inputs(pipe, prompts, batch_size)
    return out["prompt_embeds"], out["negative_prompt_embeds"]
