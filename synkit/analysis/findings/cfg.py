"""CFG and prompts: the quality trade-off and how it carries into training (Sec. 3.1, 4.2)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from synkit.analysis.findings.context import Study
from synkit.analysis.findings import rules
from synkit.analysis.findings.registry import finding
from synkit.analysis.findings.rules import (ALPHA, FAILS, HOLDS, INCONCLUSIVE, UNMEASURED, by_p, combine, directional, fmt, fmt_test,
                                   interval, paired, permutation)

CFG_PAPER = "best CFG ranges: Stable Diffusion [1.5, 10], Imagen [1, 2], Muse [0.1, 1]; lower than the default helps [3.1]"
TITLES = {"a": "Higher CFG makes images more recognizable (Sec. 3.1, 4.2)",
          "b": "Higher CFG makes images less diverse (Sec. 3.1, 4.2)",
          "c": "A low CFG trains a better classifier than the highest (Sec. 3.1)",
          "d": "As CFG rises, performance first improves, then falls (Sec. 4.2)",
          "e": "More diverse prompts give more diverse images at a fixed CFG (Sec. 4.2)",
          "f": "More diverse prompts give less recognizable images at a fixed CFG (Sec. 4.2)",
          "g": "Configurations train poorly when either recognizability or diversity is low (Sec. 4.2)"}


def quality_table(study: Study) -> pd.DataFrame | None:
    q = study.quality
    if q is not None and "series" in q:  # several generators: each (generator, prompt set) is its own CFG series
        q = q.assign(prompt_set=q["series"])
    return q


def sources_gates(configs) -> tuple[str, ...]:
    return tuple(f"source:{c}" for c in configs)


@finding(30)
def cfg_quality(study: Study, add) -> None:
    """3a/3b: per prompt set swept over >= 3 scales, F1(highest) - F1(lowest CFG) and diversity(lowest) - diversity(highest),
    paired over classes, Bonferroni over the prompt sets."""
    q = quality_table(study)
    if q is None or q.groupby("prompt_set")["guidance_scale"].nunique().max() < 3:
        for letter in "ab":
            add(f"3{letter}", TITLES[letter], CFG_PAPER, "fewer than 3 CFG scales per prompt set", "needs a CFG sweep", UNMEASURED)
        return
    sets = [p for p, g in q.groupby("prompt_set") if g["guidance_scale"].nunique() >= 3]
    level = ALPHA / len(sets)
    for letter, col, sign in (("a", "f1", 1), ("b", "diversity", -1)):
        parts, texts = [], []
        for ps in sets:
            part = q[q["prompt_set"] == ps]
            lo_g, hi_g = part["guidance_scale"].min(), part["guidance_scale"].max()
            a = part[part["guidance_scale"] == hi_g].set_index("class_index")[col]
            b = part[part["guidance_scale"] == lo_g].set_index("class_index")[col]
            t = paired((sign * (a - b)).dropna().to_numpy(), level)
            parts.append(directional(t))
            texts.append(f"{ps} (CFG {lo_g:g} to {hi_g:g}): {fmt_test(t)}")
        what = "F1(highest) - F1(lowest CFG)" if letter == "a" else "diversity(lowest) - diversity(highest CFG)"
        add(f"3{letter}", TITLES[letter], CFG_PAPER, f"{what}, paired over classes: " + "; ".join(texts),
            f"per prompt set, t-interval of the mean per-class difference at the Bonferroni level {level:.3f}", combine(parts),
            ("reference", *sources_gates(q.loc[q["prompt_set"].isin(sets), "config"].unique())))


def sweep_table(study: Study) -> pd.DataFrame | None:
    """The sweep runs' overall rows with their prompt set and CFG (built once per study: 3c-3d, 3g and 5t read it)."""
    if "_sweep" not in study.__dict__:
        m, q = study.metrics, quality_table(study)
        sweep = None
        if m is not None and q is not None and "sweep" in m:
            sweep = m[(m["class_index"] == -1) & m["sweep"]]
            sweep = None if sweep.empty else sweep.merge(q.drop_duplicates("config")[["config", "prompt_set", "guidance_scale"]], on="config")
        study.__dict__["_sweep"] = sweep
    return study.__dict__["_sweep"]


def config_means(sweep: pd.DataFrame, eval_set: str = "val") -> pd.DataFrame:
    """Mean log loss over seeds of each swept configuration on one eval set: one point per configuration (a configuration's
    generated pool is shared by its seeds, so the seeds alone would understate how much two configurations differ by chance)."""
    part = sweep[sweep["eval_set"] == eval_set].assign(log_loss=lambda t: np.log(t["loss"]))
    return part.groupby(["prompt_set", "guidance_scale", "config"], as_index=False).agg(log_loss=("log_loss", "mean"), seeds=("seed", "nunique"))


def trend(means: pd.DataFrame) -> dict:
    """Per prompt set with >= 4 scales, a quadratic in log CFG through its configuration means; the residual variance pooled
    over prompt sets is the variance of one configuration's mean about its trend (its pool and its seeds together)."""
    fits, ss, df = {}, 0.0, 0
    for ps, part in means.groupby("prompt_set"):
        x = np.log(part["guidance_scale"].to_numpy(float))
        X = np.column_stack([np.ones(len(x)), x, x * x])
        if len(x) < 3:
            continue
        coef, *_ = np.linalg.lstsq(X, part["log_loss"].to_numpy(float), rcond=None)
        fits[ps] = (coef, np.linalg.pinv(X.T @ X), float(x.min()), float(x.max()))
        ss += float(np.sum((part["log_loss"].to_numpy(float) - X @ coef) ** 2))
        df += len(x) - 3
    return {"fits": fits, "s2": ss / df if df > 0 else float("nan"), "df": float(df)}


def config_difference(means: pd.DataFrame, a: str, b: str, pooled: dict, alpha: float) -> dict:
    """Mean log loss of configuration a minus b, with the pooled trend variance for each."""
    m = means.set_index("config")["log_loss"]
    se = math.sqrt(2 * pooled["s2"]) if np.isfinite(pooled["s2"]) else float("nan")
    lo, hi = interval(float(m[a] - m[b]), se, pooled["df"], alpha)
    return {"diff": float(m[a] - m[b]), "lo": lo, "hi": hi, "se": se, "df": pooled["df"]}


@finding(31)
def cfg_training(study: Study, add) -> None:
    """3c: log loss at the highest CFG minus at the CFG nearest 2 (the paper's choice for Stable Diffusion); 3d: a quadratic in
    log CFG through the configurations' mean log loss: performance first improves then falls when the slope is below 0 at the
    lowest CFG and above 0 at the highest (both separated); it does not hold when either end's slope is separated the other
    way (best at an end). Both use the variance of a configuration's mean about its prompt set's quadratic trend, pooled over
    prompt sets (``trend``), so a configuration's pool counts once; intervals at the Bonferroni level over prompt sets."""
    sweep = sweep_table(study)
    means = config_means(sweep) if sweep is not None else None
    sets = [p for p, g in means.groupby("prompt_set") if g["guidance_scale"].nunique() >= 3] if means is not None else []
    if not sets:
        for letter in "cd":
            add(f"3{letter}", TITLES[letter], CFG_PAPER, "no sweep over >= 3 CFG scales", "needs 04_train's sweep_size and a CFG sweep",
                UNMEASURED)
        return
    means = means[means["prompt_set"].isin(sets)]
    pooled = trend(means)
    level = ALPHA / len(sets)
    parts_c, parts_d, texts_c, texts_d = [], [], [], []
    for ps in sets:
        part = means[means["prompt_set"] == ps].sort_values("guidance_scale")
        scales = part["guidance_scale"].tolist()
        low = min(scales, key=lambda g: (abs(g - 2.0), g))
        cfg_of = dict(zip(part["guidance_scale"], part["config"]))
        t = config_difference(means, cfg_of[scales[-1]], cfg_of[low], pooled, level)
        parts_c.append(directional(t))
        texts_c.append(f"{ps}: log loss(CFG {scales[-1]:g}) - log loss(CFG {low:g}) = {fmt_test(t)}")
        ends = end_slopes(pooled, ps, level)
        parts_d.append(ends["verdict"])
        texts_d.append(f"{ps}: slope of log loss in log CFG at {scales[0]:g} {fmt_test(ends['low'])}, at {scales[-1]:g} "
                       f"{fmt_test(ends['high'])} (lowest mean loss at CFG {part.loc[part['log_loss'].idxmin(), 'guidance_scale']:g})")
    size, seeds = int(sweep["size"].max()), int(sweep["seed"].nunique())
    gates = ("real_scales", *sources_gates(means["config"].unique()))
    how = (f"sweep runs at {size} images, mean over {seeds} seeds per configuration; its variance about the quadratic trend "
           f"pooled over prompt sets ({pooled['df']:g} df); intervals at the Bonferroni level {level:.3f}")
    add("3c", TITLES["c"], CFG_PAPER, "; ".join(texts_c), how, combine(parts_c), gates)
    add("3d", TITLES["d"], "performance improves, then falls as CFG rises (Figure 2)", "; ".join(texts_d),
        "holds: the slope is separated below 0 at the lowest CFG and above 0 at the highest; does not hold: either is separated "
        "the other way; " + how, combine(parts_d), gates)


def end_slopes(pooled: dict, prompt_set: str, alpha: float = ALPHA) -> dict:
    """The slope of the prompt set's quadratic trend (``trend``) at its lowest and highest CFG with t-intervals, and the
    verdict of "the loss first falls, then rises" (an interior optimum)."""
    nan = {"diff": float("nan"), "lo": float("nan"), "hi": float("nan")}
    if prompt_set not in pooled["fits"] or not pooled["df"] > 0:
        return {"low": nan, "high": nan, "verdict": UNMEASURED}
    coef, inv, x_lo, x_hi = pooled["fits"][prompt_set]
    out = {}
    for end, at in (("low", x_lo), ("high", x_hi)):
        grad = np.array([0.0, 1.0, 2 * at])
        value, se = float(grad @ coef), math.sqrt(max(pooled["s2"] * float(grad @ inv @ grad), 0.0))
        lo, hi = interval(value, se, pooled["df"], alpha)
        out[end] = {"diff": value, "lo": lo, "hi": hi}
    if out["low"]["hi"] < 0 and out["high"]["lo"] > 0:
        verdict = HOLDS
    elif out["low"]["lo"] > 0 or out["high"]["hi"] < 0:
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    return {**out, "verdict": verdict}


@finding(32)
def prompts_quality(study: Study, add) -> None:
    """3e/3f: at each CFG where class names and a more diverse prompt set were both rendered, diversity(diverse) -
    diversity(class names) and F1(class names) - F1(diverse), paired over classes, Bonferroni over the pairs."""
    q = quality_table(study)
    pairs = []
    if q is not None:
        for g, part in q.groupby("guidance_scale"):
            sets = set(part["prompt_set"])
            named = [s for s in sets if s.split(": ")[-1] == "classnames"]
            for n in named:
                prefix = n[: -len("classnames")]
                pairs += [(g, n, d) for d in sorted(sets) if d != n and d.startswith(prefix) and d.split(": ")[-1] != "classnames"]
    if not pairs:
        for letter in "ef":
            add(f"3{letter}", TITLES[letter], "class names < CLIP templates < IN-Captions in diversity (Figure 2)",
                "no CFG scale with class names and another prompt set", "needs classnames and another prompt set at one CFG in 02_generate",
                UNMEASURED)
        return
    level = ALPHA / len(pairs)
    for letter, col, sign in (("e", "diversity", 1), ("f", "f1", -1)):
        table = q.pivot_table(index="class_index", columns=["prompt_set", "guidance_scale"], values=col)
        tests = [(g, d, paired((sign * (table[(d, g)] - table[(n, g)])).dropna().to_numpy(), level)) for g, n, d in pairs]
        what = "diversity(prompt set) - diversity(class names)" if letter == "e" else "F1(class names) - F1(prompt set)"
        add(f"3{letter}", TITLES[letter], "class names < CLIP templates < IN-Captions in diversity; recognizability the other way (Figure 2)",
            f"{what}, paired over classes: " + "; ".join(f"{d}@{g:g}: {fmt_test(t)}" for g, d, t in tests),
            f"every (CFG, prompt set) pair at the Bonferroni level {level:.3f}", combine([directional(t) for *_, t in tests]),
            ("reference", *sources_gates(q.loc[q["prompt_set"].isin({p for pair in pairs for p in pair[1:]}), "config"].unique())))


@finding(33)
def weakest_quality(study: Study, add) -> None:
    """3g: over the sweep's configurations, Spearman's rho of the weaker of the two qualities (each as a rank among the
    configurations, the smaller of the two) with performance (-val loss, mean over seeds), by a permutation test."""
    sweep, q = sweep_table(study), quality_table(study)
    if sweep is None or q is None:
        add("3g", TITLES["g"], "configurations perform poorly when either recognizability or diversity falls below a threshold (Figure 2)",
            "no sweep runs", "needs 04_train's sweep_size", UNMEASURED)
        return
    val = sweep[sweep["eval_set"] == "val"].groupby("config")["loss"].mean()
    summary = q.groupby("config")[["f1", "diversity"]].mean().join(val, how="inner")
    weaker = np.minimum(summary["f1"].rank(pct=True), summary["diversity"].rank(pct=True)).to_numpy()
    t = permutation(weaker, -summary["loss"].to_numpy(), "spearman")
    add("3g", TITLES["g"], "configurations perform poorly when either recognizability or diversity falls below a threshold (Figure 2)",
        f"over {len(summary)} configurations: Spearman rho of the weaker quality's rank with -val loss = {fmt(t['diff'])}",
        f"permutation test ({rules.N_PERM} shuffles), one-sided p = {t['p_greater']:.3f} (the other way: {t['p_less']:.3f})",
        by_p(t["p_greater"], t["p_less"]) if len(summary) >= 5 else UNMEASURED,
        ("real_scales", "reference", *sources_gates(summary.index)))


@finding(51)
def templates_ood(study: Study, add) -> None:
    """5 (templates): on each styled OOD view, at the CFG nearest 2 where both were swept, log loss(IN-Captions) - log loss(80 CLIP
    templates), each configuration's mean over seeds with the view's pooled trend variance (``trend``), Bonferroni over views."""
    title = "80 CLIP templates do better than IN-Captions out of distribution (Sec. 4.5)"
    paper = "with 80 CLIP templates the gain over real on ImageNet-R and -Sketch is larger than with IN-Captions (Figure 4)"
    sweep = sweep_table(study)
    ood = sweep[sweep["eval_set"].isin(study.styled_views)] if sweep is not None else None  # R / Sketch analogs, not a mild shift
    if ood is None or ood.empty or not {"clip_templates_80", "in_captions"} <= set(ood["prompt_set"]):
        add("5t", title, paper, "no sweep runs of clip_templates_80 and in_captions on OOD views",
            "needs both prompt sets in 02_generate and in 04_train's sweep (sweep_size, sweep_prompt_sets)", UNMEASURED)
        return
    shared = set(ood.loc[ood["prompt_set"] == "clip_templates_80", "guidance_scale"]) & set(ood.loc[ood["prompt_set"] == "in_captions", "guidance_scale"])
    g = min(shared, key=lambda x: (abs(x - 2.0), x))
    views = sorted(ood["eval_set"].unique())
    level = ALPHA / len(views)
    tests = []
    for view in views:
        means = config_means(sweep, view)
        cfg_of = {(r.prompt_set, r.guidance_scale): r.config for r in means.itertuples()}
        tests.append((view, config_difference(means, cfg_of[("in_captions", g)], cfg_of[("clip_templates_80", g)], trend(means), level)))
    configs = ood.loc[ood["guidance_scale"] == g, "config"].unique()
    add("5t", title, paper, f"CFG {g:g}, {int(ood['size'].max())} images: "
        + "; ".join(f"{v}: log loss(in_captions) - log loss(clip_templates_80) = {fmt_test(t)}" for v, t in tests),
        f"configuration means over seeds, each view's variance about the prompt sets' quadratic trends; Bonferroni level {level:.3f}",
        combine([directional(t) for _, t in tests]), ("real_scales", *sources_gates(configs)))
