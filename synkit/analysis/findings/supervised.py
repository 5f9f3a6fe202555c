"""Supervised scaling: the power law, real against synthetic, prompts, CFG's effect on k, out of distribution, capacity."""

from __future__ import annotations

import math

import numpy as np

from synkit.analysis import scaling
from synkit.analysis.findings.context import MILD_SHIFT_VIEWS, Study, config_of
from synkit.analysis.findings.registry import finding
from synkit.analysis.findings.rules import (ALPHA, FAILS, HOLDS, INCONCLUSIVE, UNMEASURED, at_level, combine, directional, fmt, fmt_test,
                                   interval, line, negate, p_text, power_law_verdict)

PAPER = {
    "range": "power law from 0.125M to 4M synthetic images with ViT-B [4.3]",
    "bend": "ViT-B bends after ~4M images (about 3x D_I = 1.3M); ViT-L stays straight to 8M [4.4]",
}


def needs(*sources: str) -> tuple[str, ...]:
    """The gates a row on these ladder sources rests on."""
    return ("real_scales", *(f"source:{c}" for c in map(config_of, sources) if c))


@finding(10)
def power_law(study: Study, add) -> None:
    """1, per synthetic ladder source: ``rules.power_law_verdict`` on its val-loss fit (sizes up to D_I)."""
    title = "Loss on synthetic images falls as a power law of their number (Sec. 4.3)"
    if not study.synth:
        add("1", title, PAPER["range"], "no synthetic ladder", "the ladder has no synthetic source", UNMEASURED)
        return
    for i, s in enumerate(study.synth):
        fit = study.fit(s)
        add(f"1{'abcdefghij'[i]}", f"{title}: {study.lab(s)}", PAPER["range"],
            f"val loss over {int(fit['fit_min_size'])}-{int(fit['fit_max_size'])} images ({int(fit['n_sizes'])} sizes, "
            f"{int(fit['n_seeds'])} seeds): {study.k_text(s)}",
            f"k's interval from the size means; quadratic term in log size {fmt(fit['curve'])}, {p_text(fit['curve_p'])} "
            f"(lack of fit against seed spread, reported only: {p_text(fit['lof_p'])})", power_law_verdict(fit), needs(s))


@finding(20)
def real_beats_synthetic(study: Study, add) -> None:
    """2: k(real) - k(best synthetic by k) on val loss > 0."""
    title = "Real images scale better than synthetic ones in-domain: larger k on val (Sec. 4.3)"
    paper = "real's k above every synthetic configuration's on ImageNet val (Figure 1, Figure 3; k not printed)"
    if not (study.have_real and study.best):
        add("2", title, paper, "no real or synthetic fit", "the ladder lacks real or synthetic sources", UNMEASURED)
        return
    level = ALPHA / len(study.synth)  # the best of m sources is picked on these data: its interval at the Bonferroni level
    t = scaling.compare(study.fit("real"), study.fit(study.best), alpha=level)
    add("2", title, paper, f"{study.k_text('real')}; best synthetic {study.k_text(study.best)}",
        f"k(real) - k({study.lab(study.best)}) = {fmt_test(t)} (Welch at the Bonferroni level {level:.3f} over the {len(study.synth)} "
        f"synthetic sources the best is picked from), one-sided {p_text(t['p_greater'])}", directional(t), needs(study.best))


@finding(35)
def cfg_raises_k(study: Study, add) -> None:
    """3h: tuning CFG raises k apart from prompts: k(class names at the lowest CFG) - k(class names at the highest)."""
    title = "Tuning CFG raises k, prompts held fixed: class names at a low CFG against the default (Sec. 4.3)"
    paper = "class names with the default CFG scale poorly; a lower CFG scales better (Figure 3; k not printed)"
    named = sorted((s for s in study.synth if study.prompt_set(s) == "classnames"), key=study.cfg)
    if len(named) < 2 or study.cfg(named[0]) == study.cfg(named[-1]):
        add("3h", title, paper, "fewer than 2 class-name ladders at different CFG scales",
            "needs classnames@LOW and classnames@HIGH on 04_train's ladder", UNMEASURED)
        return
    low, high = named[0], named[-1]
    t = scaling.compare(study.fit(low), study.fit(high))
    add("3h", title, paper, f"{study.k_text(low)}; {study.k_text(high)}",
        f"k({study.lab(low)}) - k({study.lab(high)}) = {fmt_test(t)} (Welch), one-sided {p_text(t['p_greater'])}", directional(t),
        needs(low, high))


@finding(40)
def prompts_scale(study: Study, add) -> None:
    """4: diverse prompts scale better than class names at the same CFG (prompts alone): per CFG with both,
    k(best diverse ladder) - k(class names), Bonferroni over the CFGs compared."""
    title = "Diverse prompts (captions, templates) give steeper scaling than class names at the same CFG (Sec. 4.2-4.3)"
    paper = "IN-Captions and templates scale better than class names (Figure 3; k not printed)"
    pairs = []
    for named in (s for s in study.synth if study.prompt_set(s) == "classnames"):
        diverse = [s for s in study.synth if study.prompt_set(s) != "classnames" and study.cfg(s) == study.cfg(named)]
        if diverse:
            pairs.append((max(diverse, key=lambda s: study.fit(s)["k"]), named))
    if not pairs:
        add("4", title, paper, "no class-name ladder at the CFG of a diverse-prompt ladder",
            "needs e.g. in_captions@2 and classnames@2 on 04_train's ladder (the same CFG: prompts alone)", UNMEASURED)
        return
    level = ALPHA / len(pairs)
    tests = [(d, n, at_level(scaling.compare(study.fit(d), study.fit(n)), level)) for d, n in pairs]
    add("4", title, paper, "; ".join(f"{study.k_text(d)} vs {study.k_text(n)}" for d, n, _ in tests),
        "; ".join(f"k({study.lab(d)}) - k({study.lab(n)}) = {fmt_test(t)}" for d, n, t in tests)
        + (f" (Welch at the Bonferroni level {level:.3f})" if len(pairs) > 1 else " (Welch)"),
        combine([directional(t) for *_, t in tests]), needs(*[s for pair in pairs for s in pair]))


@finding(50)
def ood_gap(study: Study, add) -> None:
    """5: per OOD view, the real-synthetic k gap narrows: gap(val) - gap(view) > 0 (the four fits treated as independent);
    on a mild-shift view (the ImageNet-V2 analog) the gap persists: gap(view) > 0, the control."""
    best, views = study.best, study.views
    if not (study.have_real and best and views):
        add("5", "The real-synthetic k gap is smaller out of distribution (Sec. 4.5)", "Figure 4", "no OOD fits",
            "needs real and synthetic fits on OOD views", UNMEASURED)
        return
    gap_val = scaling.compare(study.fit("real"), study.fit(best))
    level = ALPHA / len(study.synth)
    letters = iter("abcdefgh")
    styled = [v for v in views if v.lower() not in MILD_SHIFT_VIEWS]
    mild = [v for v in views if v.lower() in MILD_SHIFT_VIEWS]
    for view in styled:
        if study.fit("real", view) is None or study.fit(best, view) is None:
            continue
        gap_view = scaling.compare(study.fit("real", view), study.fit(best, view))
        t = scaling.welch(gap_val["diff"] - gap_view["diff"], gap_val["se"], gap_val["df"], gap_view["se"], gap_view["df"], alpha=level)
        add(f"5{next(letters)}", f"The real-synthetic k gap is smaller on a shifted view ({view}) than in-domain (Sec. 4.5)",
            "the gap narrows on ImageNet-R and -Sketch (Figure 4)",
            f"k(real) - k({study.lab(best)}): val {fmt_test(gap_val)}, {view} {fmt_test(gap_view)}; "
            f"on {view}: {study.k_text('real', view)}, {study.k_text(best, view)}",
            f"val gap - {view} gap = {fmt_test(t)} at the Bonferroni level {level:.3f} (the best of {len(study.synth)} sources on val), "
            f"one-sided {p_text(t['p_greater'])}", directional(t), needs(best))
    title = "On a mild shift (the ImageNet-V2 analog) real images still scale better: the gap does not narrow (Sec. 4.5, control)"
    if not mild:
        add(f"5{next(letters)}", title, "on ImageNet-V2 the scaling mirrors in-domain, real ahead (Figure 4)",
            f"this world's views ({', '.join(views)}) are all stylized; none is a mild shift",
            f"needs an eval set named one of {', '.join(MILD_SHIFT_VIEWS)}: a view of val with small changes of framing or contrast",
            UNMEASURED)
    for view in mild:
        if study.fit("real", view) is None or study.fit(best, view) is None:
            continue
        gap_view = scaling.compare(study.fit("real", view), study.fit(best, view))
        add(f"5{next(letters)}", title, "on ImageNet-V2 the scaling mirrors in-domain, real ahead (Figure 4)",
            f"k(real) - k({study.lab(best)}) on {view} = {fmt_test(gap_view)}; on val {fmt_test(gap_val)}",
            f"gap on {view} > 0 (Welch), one-sided {p_text(gap_view['p_greater'])}", directional(gap_view), needs(best))
    style_coverage(study, best, styled, mild, add)


def style_coverage(study: Study, best: str, styled: list[str], mild: list[str], add) -> None:
    """5s (the style mechanism): the gap is smaller on each styled view than on the mild shift, gap(mild) - gap(view) > 0
    (Welch, the fits treated as independent, Bonferroni over the styled views); does not hold when any is separated below."""
    title = "The gap narrows on the styles the generator has seen, not on a mild shift (Sec. 4.5, style coverage)"
    paper = "the gap narrows on ImageNet-R and -Sketch (styles in LAION, not in ImageNet) and not on ImageNet-V2 (Figure 4)"
    have = [v for v in styled if study.fit("real", v) is not None and study.fit(best, v) is not None]
    base = next((v for v in mild if study.fit("real", v) is not None and study.fit(best, v) is not None), None)
    if not have or base is None:
        add("5s", title, paper, "needs fits on a styled view and on a mild-shift view",
            f"needs OOD views of both kinds (a mild shift named one of {', '.join(MILD_SHIFT_VIEWS)})", UNMEASURED)
        return
    gap_mild = scaling.compare(study.fit("real", base), study.fit(best, base))
    level = ALPHA / len(have)
    tests = []
    for view in have:
        gap_view = scaling.compare(study.fit("real", view), study.fit(best, view))
        tests.append((view, scaling.welch(gap_mild["diff"] - gap_view["diff"], gap_mild["se"], gap_mild["df"], gap_view["se"],
                                          gap_view["df"], alpha=level)))
    add("5s", title, paper, f"k(real) - k({study.lab(best)}) on {base} {fmt_test(gap_mild)}; "
        + "; ".join(f"{base} gap - {v} gap = {fmt_test(t)}" for v, t in tests),
        f"Welch at the Bonferroni level {level:.3f} over {len(tests)} styled views", combine([directional(t) for _, t in tests]), needs(best))


def at_size(ladder, source: str, view: str, size: float) -> tuple[float, float, float]:
    """Mean log loss over seeds of a ladder at one size, with the standard error of one size's mean read off the scatter
    of its size means about a straight line in log size over the whole ladder (sizes - 2 degrees of freedom): a size's
    seeds share its data, so their own spread would understate it; a curved ladder only widens it."""
    part = ladder[(ladder["source"] == source) & (ladder["eval_set"] == view)]
    sizes, y, _ = scaling.size_means(part["size"], part["loss"])
    if len(sizes) < 3 or size not in sizes:
        return float("nan"), float("nan"), float("nan")
    x = np.log(sizes)
    fit = line(x, y)
    scatter = float(np.sum((y - fit["coef"][0] - fit["coef"][1] * x) ** 2) / fit["df"])
    return float(y[list(sizes).index(size)]), math.sqrt(scatter), fit["df"]


@finding(110)
def ood_beats_real(study: Study, add) -> None:
    """11: per styled OOD view (not a mild shift, where the paper has real ahead), mean log loss of real at D_I minus the best
    synthetic source's at its largest size (``at_size``:
    each with the scatter of its ladder's size means about a line as its standard error), Welch at the Bonferroni level over
    the synthetic sources; in-domain (the control) real stays ahead."""
    ladder, views, synth, d_i = study.ladder, study.styled_views, study.synth, study.d_i
    if ladder is None or not study.have_real or not synth or not views or not d_i:
        add("11", "Out of distribution, enough synthetic images beat the real set (Sec. 4.5)", "Figure 4", "no OOD runs",
            "needs real and synthetic ladders with OOD views", UNMEASURED)
        return
    ladder = ladder[ladder["model"] == "default"] if "model" in ladder else ladder
    level = ALPHA / len(synth)
    for i, view in enumerate(["val", *views]):
        a = at_size(ladder, "real", view, d_i)
        tests = []
        for s in synth:
            top = float(ladder.loc[ladder["source"] == s, "size"].max())
            b = at_size(ladder, s, view, top)
            if np.isfinite(a[0]) and np.isfinite(b[0]):
                tests.append((s, int(top), at_level(scaling.welch(a[0] - b[0], a[1], a[2], b[1], b[2]), level)))
        if not tests:
            continue
        s, top, t = max(tests, key=lambda x: x[2]["diff"])
        how = f"means over seeds; each size's standard error from its ladder's scatter about a line; Bonferroni over {len(tests)} sources"
        if view == "val":
            add("11 (control)", "In-domain (val), real at D_I stays ahead of the largest synthetic sets (Sec. 4.3, the control for 11)",
                "real ImageNet beats synthetic at the same and larger sizes on ImageNet val",
                f"log loss(real, {d_i}) - log loss({study.lab(s)}, {top}) = {fmt_test(t)}",
                how + "; the best synthetic source; *holds*: real's loss is lower", directional(negate(t)), needs(*synth))
            continue
        add(f"11{'abcdefgh'[i - 1]}", f"On a shifted view ({view}), enough synthetic images beat the real set (Sec. 4.5)",
            "synthetic surpasses real ImageNet on ImageNet-R and -Sketch at large scale (Muse, 80 CLIP templates; Figure 4)",
            f"log loss(real, {d_i}) - log loss({study.lab(s)}, {top}) = {fmt_test(t)}", how + "; the best synthetic source by mean",
            directional(t), needs(*synth))


@finding(120)
def capacity(study: Study, add) -> None:
    """12a: the small model's curve bends (hinge F-test on the size means, Bonferroni over hinges, flattening); does not hold when
    its slope change at its best hinge is separated below 0 (it steepens). 12b: at that hinge the small model flattens more than
    the default (Welch). 12c: the default model bends past D_I: its slope change at D_I > 0 on the whole ladder."""
    cap = study.capacity
    a_title, b_title = "A model too small for the data bends the power law (Sec. 4.4)", "A larger model keeps scaling where the small one bends (Sec. 4.4)"
    if cap is None or cap.empty or set(cap["model"]) < {"small", "default"}:
        add("12a", a_title, PAPER["bend"], "no capacity runs", "needs 04_train's capacity_source", UNMEASURED)
        add("12b", b_title, PAPER["bend"], "no capacity runs", "needs 04_train's capacity_source", UNMEASURED)
    else:
        _capacity_rows(study, add, cap, a_title, b_title)
    _default_bend(study, add)


def _capacity_rows(study: Study, add, cap, a_title: str, b_title: str) -> None:
    small = cap[(cap["model"] == "small") & (cap["span"] == "all")].iloc[0]
    big = cap[(cap["model"] == "default") & (cap["span"] == "all")].iloc[0]
    hinge = cap[cap["span"] == "hinge"].set_index("model") if "span" in cap else None
    source = small["source"]
    bent = float(small["bend_size"]) if small["bend_size"] is not None and np.isfinite(small["bend_size"]) else float("nan")
    if not np.isfinite(float(small["bend_p"]) if small["bend_p"] is not None else float("nan")) or hinge is None or "small" not in hinge.index:
        verdict, change = UNMEASURED, "n/a"
    else:
        h = hinge.loc["small"]
        hinges = max(int(small["n_sizes"]) - 3, 1)  # the best of these hinges is picked on these data: Bonferroni over them
        lo, hi = interval(h["bend_change"], h["bend_change_se"], h["df_resid"], ALPHA / hinges)
        change = f"{fmt(h['bend_change'], lo, hi)} at {int(h['hinge_size'])} (interval at the Bonferroni level over {hinges} hinges)"
        verdict = HOLDS if np.isfinite(bent) else FAILS if hi < 0 else INCONCLUSIVE
    add("12a", a_title, PAPER["bend"],
        f"{study.lab(source)}, small model: bend at {int(bent) if np.isfinite(bent) else 'none'}; slope change (> 0: flattens) {change}",
        f"hinge F-test on the size means (Bonferroni over hinges): small {p_text(small['bend_p'])}, default {p_text(big['bend_p'])}; "
        "does not hold: the slope change's interval below 0", verdict, needs(source))
    if hinge is not None and {"small", "default"} <= set(hinge.index):
        a, b = hinge.loc["small"], hinge.loc["default"]
        t = scaling.compare(a, b, what="bend_change")
        add("12b", b_title, PAPER["bend"],
            f"slope change at {int(a['hinge_size'])} images (> 0: flattens): small {fmt(a['bend_change'])} (se {a['bend_change_se']:.3f}), "
            f"default {fmt(b['bend_change'])} (se {b['bend_change_se']:.3f})",
            f"change(small) - change(default) = {fmt_test(t)}, one-sided {p_text(t['p_greater'])}", directional(t), needs(source))
    else:
        add("12b", b_title, PAPER["bend"], "too few sizes for a hinge", "needs >= 5 sizes on the capacity ladder", UNMEASURED)


def _default_bend(study: Study, add) -> None:
    title = "The default model's power law bends past some multiple of D_I (Sec. 4.4)"
    ladder, d_i = study.ladder, study.d_i
    source = None
    if ladder is not None and d_i:
        val = ladder[(ladder["eval_set"] == "val") & (ladder.get("model", "default") == "default")]
        past = [s for s in study.synth if val.loc[val["source"] == s, "size"].max() > d_i and val.loc[val["source"] == s, "size"].nunique() >= 4]
        source = max(past, key=lambda s: val.loc[val["source"] == s, "size"].max()) if past else None
    if source is None:
        add("12c", title, PAPER["bend"], "no synthetic ladder past D_I", "needs a ladder source with sizes past D_I (04_train max_factor)",
            UNMEASURED)
        return
    part = val[val["source"] == source]
    h = scaling.hinge_change(part["size"], part["loss"], d_i)
    t = {"diff": h["bend_change"], "se": h["bend_change_se"], "df": h["df_resid"]}
    t = at_level(t, ALPHA)
    top = int(part["size"].max())
    add("12c", title, PAPER["bend"], f"{study.lab(source)}, default model, {int(part['size'].min())}-{top} images: slope change at D_I "
        f"= {fmt_test(t)} (> 0: flattens past D_I; the ladder reaches {top / d_i:g} x D_I, the paper's bend sits near 3 x)",
        "hinge OLS on the size means at D_I, t-interval", directional(t), needs(source))
