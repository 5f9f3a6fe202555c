"""CLIP (Sec. 5): real, synthetic and mixed image-caption sets against the caption count."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from synkit.analysis import scaling
from synkit.analysis.findings.context import Study
from synkit.analysis.findings.registry import finding
from synkit.analysis.findings.rules import (ALPHA, FAILS, UNMEASURED, combine, directional, fmt, fmt_k, fmt_test, line, line_slope,
                                   line_value, negate, p_text, power_law_verdict)

CLIP = "CLIP: ViT-B/16, 32 epochs, synthetic images from SD at CFG 1.5 [5.1]"
TABLE1 = ("Table 1 averages (15 datasets), 1M/4M/16M/128M/371M captions: synthetic 7.9/21.0/33.9/42.9/48.8, "
          "real 9.9/31.4/49.8/62.3/65.7, mixed 16.5/36.9/51.9/63.4/66.1")
MIXED_GAIN = "mixing adds up to 5% ImageNet zero-shot top-1 below 10M captions [5.2]"
GATE = ("clip_real", "generator")  # every CLIP row compares against the generator's caption images


def clip_val(study: Study, task: str = "fine") -> pd.DataFrame | None:
    m = study.clip_metrics
    if m is None or "seed" not in m:
        return None
    tasks = m["task"] if "task" in m else pd.Series("classes", index=m.index)
    # the fine task is scored on "val"; the coarse task (WordNet groups of the classes) on the same images as "val-coarse"
    v = m[(tasks == "coarse") & (m["eval_set"] == "val-coarse")] if task == "coarse" else m[(m["eval_set"] == "val") & (tasks != "coarse")]
    return v[v["setup"].isin(["real", "synthetic", "mixed"])]


def by_scale(v: pd.DataFrame, a: str, b: str | None = None) -> pd.Series:
    """Mean top-1 over seeds of setup a (minus setup b's) at each caption count."""
    m = v.groupby(["setup", "scale"])["top1"].mean()
    return m[a] - m[b] if b else m[a]


def scale_line(series: pd.Series, alpha: float = ALPHA) -> tuple[dict, np.ndarray]:
    """``rules.line`` through a per-scale series in log(captions): the seeds of a scale share their captions, so a scale is the
    unit whose spread the interval must carry."""
    x = np.log(series.index.to_numpy(float) / series.index.max())
    return line(x, series.to_numpy(float), alpha), x


@finding(70)
def mixing(study: Study, add) -> None:
    """From the mean zero-shot val top-1 over seeds at each caption count and lines in log(captions) through the differences
    (``scale_line``): 7a mixed - real at the smallest count > 0; 7b the gain shrinks (-slope > 0); 7c mixed beats both single
    sources at the smallest count (both lines there > 0; does not hold when either is separated below 0); 7d CLIP's CFG chosen
    by a sweep."""
    v = clip_val(study)
    titles = {"a": "CLIP: mixing real and synthetic images beats real alone when captions are few (Sec. 5.2, Table 1)",
              "b": "CLIP: the gain from mixing shrinks as captions grow (Sec. 5.2, Table 1)",
              "c": "CLIP: the mix beats both real and synthetic alone at small scale (Sec. 5.2, Table 1)"}
    if v is None or not {"real", "mixed"} <= set(v["setup"]) or v["scale"].nunique() < 3:
        for letter in "abc":
            add(f"7{letter}", titles[letter], CLIP, "no CLIP runs of real and mixed at 3 or more scales", "needs 07_clip", UNMEASURED)
    else:
        gain = by_scale(v, "mixed", "real")
        fit, x = scale_line(gain)
        small, large = int(gain.index.min()), int(gain.index.max())
        how = f"lines in log(captions) through the means over {int(v['seed'].nunique())} seeds at {len(gain)} scales ({fit['df']:g} df)"
        t_a, t_b = line_value(fit, x[0]), negate(line_slope(fit))
        add("7a", titles["a"], TABLE1 + "; " + MIXED_GAIN,
            "mixed - real zero-shot val top-1 by captions: " + ", ".join(f"{n}: {g:.3f}" for n, g in gain.items())
            + f"; the line at {small}: {fmt_test(t_a)}", how, directional(t_a), GATE)
        add("7b", titles["b"], "mixed - real average: +6.6 at 1M, +0.4 at 371M (Table 1)",
            f"slope of the gain in log(captions) = {fmt_test(negate(t_b))} (gain at {small} {gain.iloc[0]:.3f}, at {large} {gain.iloc[-1]:.3f})",
            how + "; -slope > 0", directional(t_b), GATE)
        if "synthetic" in set(v["setup"]):
            vs = {o: line_value(scale_line(by_scale(v, "mixed", o))[0], x[0]) for o in ("real", "synthetic")}
            add("7c", titles["c"], "mixed above both at 1M and 4M captions: 16.5 vs 9.9 real and 7.9 synthetic at 1M (Table 1 averages)",
                f"at {small} captions: mixed - real {fmt_test(vs['real'])}, mixed - synthetic {fmt_test(vs['synthetic'])}",
                how + "; both must separate above 0", combine([directional(t) for t in vs.values()]), GATE)
        else:
            add("7c", titles["c"], CLIP, "no synthetic CLIP runs", "needs 07_clip's synthetic setup", UNMEASURED)
    cfg_sweep(study, add)


PAPER_CLIP_CFG = 1.5  # the scale the paper's CLIP sweep picked (Sec. 5.1)


def cfg_sweep(study: Study, add) -> None:
    """7d: CLIP prefers a low CFG: in 07's sweep (``clip/cfg_sweep.parquet``), mean zero-shot val top-1 over seeds at the
    scale nearest the paper's 1.5 minus at the sweep's largest scale > 0 (Welch over the seeds' runs)."""
    title = "CLIP: caption images at a low CFG (the paper's 1.5) train CLIP better than at a high one (Sec. 5.1)"
    paper = "a CFG sweep for CLIP picked 1.5 (Sec. 5.1)"
    sweep = study.clip_cfg
    if sweep is None or sweep["guidance_scale"].nunique() < 2 or sweep.groupby("guidance_scale").size().min() < 2:
        add("7d", title, paper, "no CLIP CFG sweep with 2 or more seeds per scale",
            "needs 07_clip's clip_cfg_grid (and seeds >= 2)", UNMEASURED)
        return
    scales = sorted(sweep["guidance_scale"].unique())
    low = min(scales, key=lambda g: (abs(g - PAPER_CLIP_CFG), g))
    high = scales[-1]
    if low == high:
        add("7d", title, paper, f"the sweep's scales {scales} have nothing above {low:g}", "needs a scale above 1.5 in clip_cfg_grid", UNMEASURED)
        return
    a, b = (sweep.loc[sweep["guidance_scale"] == g, "top1"].to_numpy(float) for g in (low, high))
    t = scaling.mean_difference(a, b)
    means = sweep.groupby("guidance_scale")["top1"].mean()
    picked = float(sweep.loc[sweep["picked"], "guidance_scale"].iloc[0]) if "picked" in sweep and sweep["picked"].any() else float(means.idxmax())
    add("7d", title, paper,
        f"{int(sweep['captions'].iloc[0])} captions, zero-shot val top-1 by CFG: " + ", ".join(f"{g:g}: {v:.3f}" for g, v in means.items())
        + f"; picked {picked:g} for the caption images; CFG {low:g} - CFG {high:g} = {fmt_test(t)}",
        f"Welch over {len(a)} and {len(b)} seeds' runs", directional(t), GATE)


@finding(80)
def clip_scaling(study: Study, add) -> None:
    """8a: k(real) - k(synthetic) on zero-shot val loss; 8b: k_syn/k_real (CLIP) - k_best/k_real (supervised) > 0 by the delta
    method, not measured when its premise fails (8a does not hold, or no shortfall: ratio >= 1); 8c: real - synthetic top-1 at
    the largest scale; 8d: zero-shot top-1 on the coarse task rises from the smallest to the largest scale in every setup."""
    cf = study.clip_fits
    cf = cf[(cf["metric"] == "loss") & (cf["eval_set"] == "val")].set_index("source") if cf is not None else None
    if cf is None or not {"real", "synthetic"} <= set(cf.index) or not cf.loc[["real", "synthetic"], "k"].notna().all():
        add("8a", "CLIP: synthetic images scale slightly worse than real ones (Sec. 5.2)", "Figure 8", "no CLIP fits for real and synthetic",
            "needs both setups", UNMEASURED)
        add("8b", "CLIP: the synthetic shortfall in k is smaller than in supervised training (Sec. 5.2)", "Sec. 5.2", "no CLIP fits",
            "needs 07_clip", UNMEASURED)
    else:
        _k_rows(study, add, cf)
    v = clip_val(study)
    if v is not None and {"real", "synthetic"} <= set(v["setup"]) and v["scale"].nunique() >= 3:
        gap = by_scale(v, "real", "synthetic")
        fit, x = scale_line(gap)
        t = line_value(fit, x[-1])
        note = ""
        if study.clip_control is not None:
            note = "; control: " + "; ".join(f"{r.test}: {fmt(r.diff, r.lo, r.hi)}" for r in study.clip_control.itertuples())
        add("8c", "CLIP: a performance gap to real images persists (Sec. 5.2)", TABLE1,
            "real - synthetic zero-shot val top-1 by captions: " + ", ".join(f"{n}: {g:.3f}" for n, g in gap.items())
            + f"; the line at {int(gap.index.max())}: {fmt_test(t)}{note}",
            f"a line in log(captions) through the means over seeds at {len(gap)} scales ({fit['df']:g} df)", directional(t), GATE)
    else:
        add("8c", "CLIP: a performance gap to real images persists (Sec. 5.2)", TABLE1, "no CLIP runs at 3 or more scales", "needs 07_clip",
            UNMEASURED)
    _coarse(study, add)


def clip_k(study: Study, setup: str) -> str:
    """A CLIP setup's k on zero-shot val loss, and on the top-1 error beside it."""
    fits = study.clip_fits[study.clip_fits["eval_set"] == "val"].set_index(["metric", "source"])
    text = f"{setup} {fmt_k(fits.loc[('loss', setup)])}"
    if ("error", setup) in fits.index and np.isfinite(fits.loc[("error", setup), "k"]):
        text += f" (error: {fmt_k(fits.loc[('error', setup)])})"
    return text


def _k_rows(study: Study, add, cf) -> None:
    t_a = scaling.compare(cf.loc["real"], cf.loc["synthetic"])
    v_a = directional(t_a)
    add("8a", "CLIP: synthetic images scale slightly worse than real ones: smaller k (Sec. 5.2)",
        "synthetic's slope is below real's, by less than in supervised training (Figure 8; k not printed)",
        f"zero-shot val loss k: {clip_k(study, 'real')}, {clip_k(study, 'synthetic')}",
        f"k(real) - k(synthetic) = {fmt_test(t_a)}, one-sided {p_text(t_a['p_greater'])}", v_a, GATE)
    title = "CLIP: the synthetic shortfall in k is smaller than in supervised training (Sec. 5.2)"
    paper = "less pronounced than for supervised classifiers (Sec. 5.2, Figure 1)"
    best = study.best
    if not (study.have_real and best):
        add("8b", title, "Sec. 5.2", "no supervised fits", "needs 05_scaling", UNMEASURED)
        return
    t = ratio_test(cf.loc["synthetic"], cf.loc["real"], study.fit(best), study.fit("real"))
    measured = f"k_syn / k_real: CLIP {t['r_clip']:.2f}, supervised {t['r_sup']:.2f}"
    if v_a == FAILS or not t["r_clip"] < 1:
        add("8b", title, paper, measured, "not measured: its premise (8a, a CLIP shortfall) fails"
            + ("" if v_a == FAILS else f": the CLIP ratio is {t['r_clip']:.2f}, no shortfall to compare"), UNMEASURED)
        return
    add("8b", title, paper, measured, f"CLIP ratio - supervised ratio = {fmt_test(t)} (delta method)", directional(t),
        (*GATE, "real_scales", f"source:{best}"))


def ratio_test(k_syn, k_real, other_syn, other_real) -> dict:
    """(k_syn / k_real) - (other_syn / other_real) with delta-method standard errors (rows of fit tables)."""
    def ratio(a, b):
        r = a["k"] / b["k"]
        se = abs(r) * math.sqrt((a["k_se"] / a["k"]) ** 2 + (b["k_se"] / b["k"]) ** 2) if a["k"] and b["k"] else float("inf")
        return r, se, min(a["df_resid"], b["df_resid"])
    r1, se1, df1 = ratio(k_syn, k_real)
    r2, se2, df2 = ratio(other_syn, other_real)
    return {**scaling.welch(r1 - r2, se1, df1, se2, df2), "r_clip": r1, "r_sup": r2}


def _coarse(study: Study, add) -> None:
    title = "CLIP: zero-shot performance on other tasks rises with the caption count in every setup (Sec. 5.3, Table 1)"
    paper = "zero-shot top-1 on 15 datasets rises from 1M to 371M captions for real, synthetic and mixed (Table 1)"
    v = clip_val(study, "coarse")
    if v is None or v.empty or v["scale"].nunique() < 3:
        add("8d", title, paper, "no coarse-task zero-shot at 3 or more scales", "needs 07_clip with a world whose classes have WordNet "
            "hypernyms (the coarse task); at full size, Table 1's datasets through clip_benchmark on the exported open_clip folders",
            UNMEASURED)
        return
    setups = sorted(v["setup"].unique())
    level = ALPHA / len(setups)
    tests = {s: line_slope(scale_line(by_scale(v, s), level)[0]) for s in setups}
    add("8d", title, paper, "coarse task (footwear / clothing / container): slope of top-1 in log(captions): "
        + ", ".join(f"{s} {fmt_test(t)}" for s, t in tests.items()),
        f"lines through the means over seeds at {v['scale'].nunique()} scales, at the Bonferroni level {level:.3f}; every setup must rise",
        combine([directional(t) for t in tests.values()]), GATE)


@finding(130)
def clip_power_law(study: Study, add) -> None:
    """13: rule 1 applied to the zero-shot val loss of real, synthetic and mixed, Bonferroni over the setups."""
    cf = study.clip_fits
    cf = cf[(cf["metric"] == "loss") & (cf["eval_set"] == "val")].set_index("source") if cf is not None else None
    title = "CLIP: zero-shot loss follows a power law of the caption count in every setup (Sec. 5.2)"
    if cf is None:
        add("13", title, CLIP, "no CLIP runs", "needs 07_clip", UNMEASURED)
        return
    setups = [s for s in ("real", "synthetic", "mixed") if s in cf.index]
    level = ALPHA / max(len(setups), 1)
    parts = [(s, power_law_verdict(cf.loc[s], level)) for s in setups]
    add("13", title, "power law below ~64M captions for real, synthetic and mixed; " + CLIP,
        "k: " + ", ".join(clip_k(study, s) for s, _ in parts),
        "; ".join(f"{s}: quadratic term {p_text(cf.loc[s].get('curve_p'))} -> {vd}" for s, vd in parts)
        + f" (each at the Bonferroni level {level:.3f})", combine([vd for _, vd in parts]), GATE)


