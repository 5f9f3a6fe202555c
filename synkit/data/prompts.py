"""Prompt sets: the six kinds of text prompts from the paper, for any world.

- ``classnames``: the class name ("tench").
- ``classname_description``: class name and WordNet gloss ("tench, freshwater dace-like ...").
- ``classname_hypernyms``: class name, synset lemmas and the lemmas of ``hypernym_depth``
  hypernym levels ("tench, Tinca tinca, cyprinid, cyprinid fish" at depth 1).
- ``word2sen``: a T5 text-to-text model turns each class name into sentences (the paper: 100).
- ``clip_templates_7`` / ``clip_templates_80``: open_clip's ImageNet templates filled with the name.
- ``in_captions``: class name and a caption of a real training image of that class (BLIP-2 in
  the paper; the attribute captioner in the fashion world).

The table has one row per prompt: world, prompt_set, class_index, class_name, prompt_index
(within set and class), prompt, source_id (the captioned image, for in_captions). It is
deterministic for a seed.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from synkit.core.progress import tqdm

from synkit.data.worlds import ClassInfo

PROMPT_SETS = (
    "classnames",
    "classname_description",
    "classname_hypernyms",
    "word2sen",
    "clip_templates_7",
    "clip_templates_80",
    "in_captions",
)
COLUMNS = ["world", "prompt_set", "class_index", "class_name", "prompt_index", "prompt", "source_id"]


def _rows(cls: ClassInfo, prompts: list[str], sources: list[str | None] | None = None) -> list[dict]:
    sources = sources or [None] * len(prompts)
    return [
        {"class_index": cls.index, "class_name": cls.name, "prompt_index": i, "prompt": p, "source_id": s}
        for i, (p, s) in enumerate(zip(prompts, sources))
    ]


def _need_wordnet(cls: ClassInfo, what: str, prompt_set: str) -> None:
    if not cls.wnid:
        raise ValueError(
            f"class {cls.name!r} has no WordNet synset, so {prompt_set} has no {what} for it; "
            "give its wnid in the class_map or leave this prompt set out."
        )


def _dedupe(words: list[str]) -> list[str]:
    seen, out = set(), []
    for w in words:
        if w.lower() not in seen:
            seen.add(w.lower())
            out.append(w)
    return out


def classnames(classes: list[ClassInfo]) -> list[dict]:
    return [r for c in classes for r in _rows(c, [c.name])]


def classname_description(classes: list[ClassInfo]) -> list[dict]:
    out = []
    for c in classes:
        _need_wordnet(c, "gloss", "classname_description")
        out += _rows(c, [f"{c.name}, {c.gloss}"])
    return out


def classname_hypernyms(classes: list[ClassInfo], depth: int = 2) -> list[dict]:
    """Name, then the synset's lemmas, then the lemmas of ``depth`` hypernym levels, deduplicated."""
    if depth < 1:
        raise ValueError(f"hypernym_depth={depth} is invalid; it must be at least 1.")
    out = []
    for c in classes:
        _need_wordnet(c, "hypernyms", "classname_hypernyms")
        words = [c.name, *c.lemmas, *(w for level in c.hypernyms[:depth] for w in level)]
        out += _rows(c, [", ".join(_dedupe(words))])
    return out


def clip_templates(classes: list[ClassInfo], n: int) -> list[dict]:
    """open_clip's ImageNet templates: the 7 simple ones or the 80 of CLIP's paper."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    templates = {7: SIMPLE_IMAGENET_TEMPLATES, 80: OPENAI_IMAGENET_TEMPLATES}.get(n)
    if templates is None:
        raise ValueError(f"there are CLIP template sets of 7 and 80, not {n}.")
    return [r for c in classes for r in _rows(c, [t(c.name) for t in templates])]


def word2sen(
    classes: list[ClassInfo],
    model: str,
    per_class: int = 100,
    seed: int = 0,
    input_template: str = "{name}",
    max_new_tokens: int = 32,
    device: str | None = None,
) -> list[dict]:
    """Sentences from a T5 text-to-text model for each class name, sampled with a per-class seed."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from synkit.core.pretrained import load_pretrained

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model, "the word2sen T5 model", "word2sen_model")
    t5 = load_pretrained(AutoModelForSeq2SeqLM.from_pretrained, model, "the word2sen T5 model", "word2sen_model")
    t5 = t5.to(device).eval()
    out = []
    for c in tqdm(classes, desc="word2sen", unit="class"):
        inputs = tokenizer([input_template.format(name=c.name)], return_tensors="pt").to(device)
        torch.manual_seed(seed * 1_000_003 + c.index)
        with torch.inference_mode():
            ids = t5.generate(
                **inputs, do_sample=True, top_p=0.95, num_return_sequences=per_class, max_new_tokens=max_new_tokens
            )
        sentences = [s.strip() for s in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        out += _rows(c, sentences)
    return out


def in_captions(world, classes: list[ClassInfo], captioner, per_class: int = 50, seed: int = 0, split: str = "real") -> list[dict]:
    """Class name + the caption of one of ``per_class`` seeded real images of the class."""
    data = world.split(split)
    rng = np.random.default_rng(seed)
    out = []
    for c in tqdm(classes, desc="in_captions", unit="class"):
        pool = np.flatnonzero(data.labels == c.index)
        if len(pool) == 0:
            raise ValueError(f"class {c.name!r} has no images in split {split!r}, so it cannot get in_captions prompts.")
        idx = np.sort(rng.choice(pool, size=min(per_class, len(pool)), replace=False))
        if data.in_memory and hasattr(captioner, "caption_arrays"):
            captions = captioner.caption_arrays(data.images[idx])
        else:
            captions = captioner.caption([data.image(int(i)) for i in idx])
        out += _rows(c, [f"{c.name}, {cap}" for cap in captions], [str(s) for s in data.ids[idx]])
    return out


def build_prompts(
    world,
    prompt_sets: list[str],
    seed: int = 0,
    hypernym_depth: int = 2,
    word2sen_model: str | None = None,
    word2sen_per_class: int = 100,
    word2sen_input: str = "{name}",
    captioner=None,
    captions_per_class: int = 50,
) -> pd.DataFrame:
    """The prompts table of ``world`` for ``prompt_sets`` (see the module docstring)."""
    if isinstance(prompt_sets, str):
        raise ValueError(f"prompt_sets={prompt_sets!r} must be a list of set names such as ['classnames'], not a string.")
    unknown = [s for s in prompt_sets if s not in PROMPT_SETS]
    if unknown:
        raise ValueError(f"unknown prompt set {unknown[0]!r}; valid sets are {', '.join(PROMPT_SETS)}.")
    classes = world.classes
    for index, (old, new) in sorted(world.renamed.items()):
        print(f"class {index} is named {old!r} in the world's list, as another class is: its prompts and files call it {new!r} "
              "(its first WordNet lemma that no class uses)", file=sys.stderr)
    builders = {
        "classnames": lambda: classnames(classes),
        "classname_description": lambda: classname_description(classes),
        "classname_hypernyms": lambda: classname_hypernyms(classes, hypernym_depth),
        "word2sen": lambda: word2sen(classes, word2sen_model, word2sen_per_class, seed, word2sen_input),
        "clip_templates_7": lambda: clip_templates(classes, 7),
        "clip_templates_80": lambda: clip_templates(classes, 80),
        "in_captions": lambda: in_captions(world, classes, captioner, captions_per_class, seed),
    }
    frames = []
    for name in dict.fromkeys(prompt_sets):
        if name == "in_captions" and captioner is None:
            raise ValueError("in_captions needs a captioner (synkit.data.captions.load_captioner).")
        frame = pd.DataFrame(builders[name](), columns=COLUMNS[2:])
        frame.insert(0, "prompt_set", name)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "world", world.name)
    table["source_id"] = table["source_id"].astype("string")
    return table[COLUMNS]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per prompt set: prompts, classes, prompts per class (min and max) and distinct prompts."""
    per_class = table.groupby(["prompt_set", "class_index"]).size()
    out = pd.DataFrame(
        {
            "prompts": table.groupby("prompt_set").size(),
            "classes": table.groupby("prompt_set")["class_index"].nunique(),
            "per_class_min": per_class.groupby("prompt_set").min(),
            "per_class_max": per_class.groupby("prompt_set").max(),
            "distinct": table.groupby("prompt_set")["prompt"].nunique(),
        }
    )
    order = [s for s in PROMPT_SETS if s in out.index]
    return out.loc[order]


def examples(table: pd.DataFrame, n_classes: int = 5, seed: int = 0) -> pd.DataFrame:
    """One sampled prompt per set (rows) and class (columns) for the first ``n_classes`` classes."""
    first = sorted(table["class_index"].unique())[:n_classes]
    sub = table[table["class_index"].isin(first)]
    picked = sub.groupby(["prompt_set", "class_index"], sort=False).sample(n=1, random_state=seed)
    wide = picked.pivot(index="prompt_set", columns="class_name", values="prompt")
    names = table.drop_duplicates("class_index").set_index("class_index").loc[first, "class_name"]
    return wide.reindex(index=[s for s in PROMPT_SETS if s in wide.index], columns=list(names))
