"""The world card: what a study's world is, and which of the paper's mechanisms it has, measured from the study's files.

The paper explains its results by its setting: a pretrained web-scale text-to-image model (Stable Diffusion, Imagen,
Muse; Sec. 3.1) prompted for ImageNet's classes and judged on curated photos. Poor classes are concepts the model fails
to render (Sec. 4.6); the synthetic-real gap narrows on ImageNet-R and -Sketch but not on ImageNet-V2 (Sec. 4.5); CLIP
learns from noisy web pairs (LAION-400M, Sec. 1 and 5.1) and its gap to real is put down to concept mismatch (Sec. 5.2).
A verdict in a world without the mechanism says something about the world, not the paper; the card says which
mechanisms this world has, one row each, with the rule that decides "present":

- concept failure: the generator's per-class recognizability (03's reference F1) at its best configuration has >= 2
  classes below 0.5 and more than half above 0.8;
- long-tailed concepts: the commonest class of the generator's corpus is >= 3x as frequent as the rarest;
- ambiguous names: some class name's captions in the generator's corpus show one other class in >= 1/3 of them;
- alt-text captions: >= 10% of CLIP's real captions (07) do not name their class by its name;
- styles the real split lacks: a share > 0 of the generator's corpus is in another style (the world declares it);
- a mild-shift view (the ImageNet-V2 analog): the world has an OOD view named one of ``MILD_SHIFT_VIEWS``;
- CLIP pairs apart from the generator's data: none of CLIP's real pair images is, by content hash, among the images the
  generator learned from.

Each rule needs the study's own files; a row that cannot be decided says "not measured" and why.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from synkit.analysis.findings.context import MILD_SHIFT_VIEWS
from synkit.core.layout import StudyFiles

COLUMNS = ["mechanism", "paper", "this world", "present"]
YES, NO, UNMEASURED = "yes", "no", "not measured"


def study_world(study_dir: str | Path):
    """The study's world: from the parameters ``synkit run`` recorded, else from what 04 wrote beside D_I; a study
    with neither is refused."""
    from synkit.data.worlds import WorldSettings

    at = StudyFiles(study_dir)
    params = json.loads(at.parameters.read_text()) if at.parameters.exists() else {}
    settings = next((ns for ns in params.get("notebooks", {}).values() if "world" in ns), None)
    if settings is None and at.d_i.exists():
        settings = json.loads(at.d_i.read_text())
    if settings is None or "world" not in settings:
        raise FileNotFoundError(f"{at.root} names no world: neither {at.parameters.name} nor {at.d_i} says which; "
                                "run 04_train for this study first (or `synkit run` it)")
    return WorldSettings.of(settings).load()


def image_hashes(images) -> list[str]:
    """One content hash per image (its pixels as stored)."""
    return [hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images]


def splits_text(world) -> str:
    """The world's splits, each with its size and what it is."""
    notes = getattr(world, "split_notes", {})
    return "; ".join(f"{name}: {len(world.split(name))} images{', ' + notes[name] if name in notes else ''}" for name in world.splits)


def _embedded(study: Path) -> bool:
    configs = StudyFiles(study).configs
    return configs.exists() and pd.read_parquet(configs)["generator"].astype(str).str.startswith("embedded").any()


def concept_failure(quality: pd.DataFrame | None) -> dict:
    paper = "Poor classes are concepts the generator fails to render (Sec. 4.6, Figure 5)"
    if quality is None or quality.empty:
        return {"paper": paper, "this world": "needs 03_quality's per-class table", "present": UNMEASURED}
    parts = []
    present = False
    for generator, part in quality.groupby("generator", sort=True):
        best = part.groupby("config")["f1"].mean().idxmax()
        f1 = part.loc[part["config"] == best, "f1"].to_numpy(float)
        low, high = int((f1 < 0.5).sum()), int((f1 > 0.8).sum())
        present |= low >= 2 and high > len(f1) / 2
        parts.append(f"{generator} at {best}: per-class F1 {f1.min():.2f}-{f1.max():.2f}, {low} of {len(f1)} classes below 0.5, "
                     f"{high} above 0.8")
    return {"paper": paper, "this world": "; ".join(parts), "present": YES if present else NO}


def long_tail(labels: np.ndarray | None, n_classes: int) -> dict:
    paper = "web data: concepts are long-tailed (the paper's generators learned from web-scale data, Sec. 1 and 3.1)"
    if labels is None:
        return {"paper": paper, "this world": "the generator is pretrained: its corpus is not in this study", "present": UNMEASURED}
    counts = np.bincount(np.asarray(labels, int), minlength=n_classes)
    ratio = counts.max() / max(counts.min(), 1)
    return {"paper": paper, "this world": f"the generator's corpus: {counts.min()}-{counts.max()} images per class ({ratio:.1f}x)",
            "present": YES if ratio >= 3 else NO}


def ambiguous_names(world, labels: np.ndarray | None) -> dict:
    """``labels``: the generator's corpus's labels (None: the generator is not the study's own)."""
    paper = "a name the web uses for another concept leaves its class hard to render: Poor classes (Sec. 4.6, Figure 5)"
    from synkit.data.worlds import has_alt_text, t2i_split

    if labels is None or not has_alt_text(world):
        return {"paper": paper, "this world": "needs an embedded generator whose corpus has alt text", "present": UNMEASURED}
    texts, labels = world.alt_texts(t2i_split(world)), np.asarray(labels, int)
    shares = []
    for c in world.classes:
        word = re.compile(rf"(?<![\w-]){re.escape(c.name.lower())}(?![\w-])")
        shown = labels[[bool(word.search(t.lower())) for t in texts]]
        others = np.bincount(shown[shown != c.index], minlength=len(world.classes))
        if len(shown):
            shares.append((others.max() / len(shown), c.name, world.classes[int(others.argmax())].name))
    top = sorted(shares, reverse=True)[:3]
    what = "; ".join(f"captions saying '{a}' show {b} in {share:.0%}" for share, a, b in top)
    return {"paper": paper, "this world": f"the generator's corpus: {what}", "present": YES if top and top[0][0] >= 1 / 3 else NO}


def alt_text(captions: pd.DataFrame | None) -> dict:
    paper = "web captions are noisy alt-text (Sec. 1); CLIP learns from LAION-400M pairs (Sec. 5.1)"
    if captions is None or captions.empty:
        return {"paper": paper, "this world": "needs 07_clip's caption pool", "present": UNMEASURED}
    named = [name.lower() in text.lower() for text, name in zip(captions["caption"], captions["class_name"])]
    share = 1 - float(np.mean(named))
    return {"paper": paper, "this world": f"{share:.0%} of CLIP's {len(captions)} real captions do not name their class",
            "present": YES if share >= 0.1 else NO}


def styles(world, embedded: bool) -> dict:
    paper = "the generator has seen styles the real training set lacks: the gap narrows on ImageNet-R and -Sketch (Sec. 4.5)"
    if not embedded:
        return {"paper": paper, "this world": "the generator is pretrained: its corpus is not in this study", "present": UNMEASURED}
    shares = getattr(world, "web_styles", {})
    total = float(sum(shares.values()))
    what = ", ".join(f"{k} {v:.0%}" for k, v in shares.items()) or "none: every image in the real split's style"
    return {"paper": paper, "this world": f"styles in the generator's corpus: {what}", "present": YES if total > 0 else NO}


def mild_view(world) -> dict:
    views = [v for v in world.ood_views if v.lower() in MILD_SHIFT_VIEWS]
    return {"paper": "a mild shift (ImageNet-V2) where the gap stays as in-domain: the style mechanism's control (Sec. 4.5)",
            "this world": f"OOD views: {', '.join(world.ood_views) or 'none'}", "present": YES if views else NO}


def clip_overlap(world, captions: pd.DataFrame | None, embedded: bool) -> dict:
    paper = "CLIP's real pairs are web pairs; its synthetic images come from a separately trained generator (Sec. 5.1-5.2)"
    if captions is None or "web_index" not in captions or not embedded:
        why = "needs 07_clip's pairs drawn from the world's own pool and an embedded generator"
        return {"paper": paper, "this world": why, "present": UNMEASURED}
    from synkit.data.worlds import pairs_split, t2i_split

    corpus, pool = world.split(t2i_split(world)), world.split(pairs_split(world))
    if not (corpus.in_memory and pool.in_memory):
        return {"paper": paper, "this world": "the generator's corpus is file-backed: not hashed here", "present": UNMEASURED}
    seen = set(image_hashes(np.asarray(corpus.images)))
    pairs = image_hashes(np.asarray(pool.images)[captions["web_index"].to_numpy(int)])
    both = sum(h in seen for h in pairs)
    return {"paper": paper, "this world": f"{both} of CLIP's {len(pairs)} real pair images are in the generator's corpus (content hash)",
            "present": YES if both == 0 else NO}


def world_card(study_dir: str | Path) -> tuple[pd.DataFrame, str]:
    """The card's rows (mechanism, paper, this world, present) and a line on the world's splits (no rows, and why, for a
    study that names no world)."""
    from synkit.data.worlds import t2i_split

    d = Path(study_dir)
    at = StudyFiles(d)
    try:
        world = study_world(d)
    except FileNotFoundError as err:
        return pd.DataFrame(columns=COLUMNS), str(err)
    embedded = _embedded(d)
    quality = pd.read_parquet(at.quality_per_class) if at.quality_per_class.exists() else None
    captions = pd.read_parquet(at.captions) if at.captions.exists() else None
    labels = np.asarray(world.split(t2i_split(world)).labels) if embedded else None
    rows = {"concept failure": concept_failure(quality), "long-tailed concepts": long_tail(labels, len(world.classes)),
            "ambiguous names": ambiguous_names(world, labels), "alt-text captions": alt_text(captions), "styles the real split lacks": styles(world, embedded),
            "a mild-shift view": mild_view(world), "CLIP pairs apart from the generator's data": clip_overlap(world, captions, embedded)}
    table = pd.DataFrame([{"mechanism": name, **row} for name, row in rows.items()], columns=COLUMNS)
    return table, f"world {world.name!r}: {splits_text(world)}"
