"""Gates: what must be true before any verdict can mean anything.

A study whose classifier does not learn from real data, whose reference classifier cannot tell the
classes apart, whose generator draws nothing recognizable, or whose CLIP cannot beat chance on real
pairs would still produce numbers, and the rules would still turn noise into verdicts. Each gate
is checked with its numbers; a failed gate turns every row that rests on it into "not measured"
and the report opens with what failed and which parameter would fix it.

- ``real_scales``: real data scales on val: k(real)'s interval on val loss lies above 0;
- ``reference``: the reference classifier is well above chance: its val top-1 at least halfway
  from chance (1 / classes) to 1 (a pretrained reference not scored here passes, said so);
- ``source:<configuration>``: the configuration's images are recognizable above chance: mean
  per-class F1 minus 1 / classes, t-interval over classes above 0;
- ``generator``: at least one configuration passes its ``source`` gate (CLIP's caption images come from the
  same generator at another CFG, which 03 does not score);
- ``clip_real``: CLIP on real pairs beats chance at its smallest scale: mean zero-shot val top-1
  over seeds minus 1 / classes, t-interval above 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synkit.analysis.findings.context import Study
from synkit.analysis.findings.rules import fmt, fmt_k, paired


@dataclass
class Gate:
    key: str
    name: str
    passed: bool | None  # None: cannot be checked (its stage did not run)
    numbers: str
    fix: str


def study_gates(study: Study) -> list[Gate]:
    """Every gate of this study with its numbers."""
    gates = [_real_scales(study), _reference(study)]
    sources = _sources(study)
    gates += sources
    checked = [g.passed for g in sources if g.passed is not None]
    gates.append(Gate("generator", "the generator draws something recognizable", any(checked) if checked else None,
                      f"{sum(checked)} of {len(checked)} configurations recognizable above chance" if checked else "no quality table",
                      "train the text-to-image model longer (02_generate embedded_config unet_steps, web_size)"))
    gates.append(_clip_real(study))
    return gates


def _real_scales(study: Study) -> Gate:
    fix = "train longer (04_train train_config steps_min / steps_max) or widen the ladder (leave sizes unset: it follows D_I)"
    fit = study.fit("real")
    if fit is None or not np.isfinite(fit["k"]):
        return Gate("real_scales", "real data scales", None, "no real ladder", fix)
    return Gate("real_scales", "real data scales", bool(fit["k_lo"] > 1e-9), f"k(real) on val loss = {fmt_k(fit)}", fix)


def _reference(study: Study) -> Gate:
    fix = "train the reference classifier longer (03_quality reference_config epochs) or give a pretrained reference_model"
    ref = study.reference
    if not ref:
        return Gate("reference", "the reference classifier is well above chance", None, "no reference classifier recorded", fix)
    classes = int(ref.get("classes") or study.classes_count or 0)
    top1 = ref.get("val_top1")
    if top1 is None or not np.isfinite(top1):
        return Gate("reference", "the reference classifier is well above chance", True,
                    f"pretrained {ref.get('model', 'reference')}, not scored here", fix)
    chance = 1 / max(classes, 1)
    need = (1 + chance) / 2
    return Gate("reference", "the reference classifier is well above chance", bool(top1 >= need),
                f"val top-1 {top1:.3f} (chance {chance:.3f}; needs >= {need:.3f})", fix)


def _sources(study: Study) -> list[Gate]:
    q = study.quality
    if q is None or q.empty:
        return []
    chance = 1 / max(study.classes_count, 1)
    gates = []
    for config, part in q.groupby("config", sort=False):
        t = paired(part["f1"].to_numpy(float) - chance)
        gates.append(Gate(f"source:{config}", f"{study.lab(config)} is recognizable", bool(t["lo"] > 1e-9) if np.isfinite(t["lo"]) else None,
                          f"mean per-class F1 {t['diff'] + chance:.3f}, minus chance {chance:.3f} = {fmt(t['diff'], t['lo'], t['hi'])}",
                          "train the text-to-image model longer (02_generate embedded_config unet_steps, web_size) or raise its CFG"))
    return gates


def _clip_real(study: Study) -> Gate:
    fix = "train CLIP longer (07_clip clip_config epochs) or start from more captions (clip_min_scale)"
    m = study.clip_metrics
    if m is None or "seed" not in m:
        return Gate("clip_real", "CLIP on real pairs beats chance", None, "no CLIP runs", fix)
    v = m[(m["eval_set"] == "val") & (m.get("task", pd.Series("classes", index=m.index)) != "coarse") & (m["setup"] == "real")]
    if v.empty:
        return Gate("clip_real", "CLIP on real pairs beats chance", None, "no real CLIP runs", fix)
    small = v["scale"].min()
    chance = 1 / max(study.classes_count, 1)
    # top-1 is a count over at most a million images, stored as float32: rounded to 6 places, 0.1 of 10 classes is chance
    t = paired(np.round(v.loc[v["scale"] == small, "top1"].to_numpy(float), 6) - chance)
    passed = bool(t["lo"] > 1e-9) if np.isfinite(t["lo"]) else None  # exactly chance on every seed is not above it
    return Gate("clip_real", "CLIP on real pairs beats chance", passed,
                f"zero-shot val top-1 at {int(small)} captions {t['diff'] + chance:.3f}, minus chance {chance:.3f} = "
                f"{fmt(t['diff'], t['lo'], t['hi'])}", fix)


def gate_table(gates: list[Gate]) -> pd.DataFrame:
    return pd.DataFrame([{"gate": g.name, "key": g.key, "state": {True: "passed", False: "FAILED", None: "not checked"}[g.passed],
                          "numbers": g.numbers, "fix": g.fix if g.passed is False else ""} for g in gates],
                        columns=["gate", "key", "state", "numbers", "fix"])
