"""Per class (Sec. 4.6): which classes scale, and why the poor ones are poor."""

from __future__ import annotations

import pandas as pd

from synkit.analysis import scaling
from synkit.analysis.findings.context import Study
from synkit.analysis.findings import rules
from synkit.analysis.findings.registry import finding
from synkit.core.sources import is_mix
from synkit.analysis.findings.rules import FAILS, HOLDS, INCONCLUSIVE, UNMEASURED, by_p, fmt, fmt_test, holm, permutation

PER_CLASS = "per-class study: Stable Diffusion, IN-Captions, CFG 2.0 [4.6]"


def per_class_source(study: Study) -> tuple[str | None, pd.DataFrame | None]:
    """The synthetic source of the paper's per-class setting (in_captions@2 when on the ladder; else the first synthetic
    ladder source) and its rows of the per-class table (pooling configurations would mix in the CFG trade-off)."""
    c = study.classes
    if c is None or "k" not in c:
        return None, None
    part = c[(c["source"] != "real") & c["k"].notna() & ~is_mix(c["source"])]
    choices = list(dict.fromkeys(part["source"]))
    pick = next((s for s in choices if study.names.get(s, s) == "in_captions@2"), choices[0] if choices else None)
    return pick, part[part["source"] == pick]


@finding(60)
def scaling_classes(study: Study, add) -> None:
    """6: in the per-class setting, per class, k(synthetic) - k(real) (Welch), one-sided p-values with Holm over the classes:
    holds when any class is separated above real; does not hold when every class is separated below real (Holm, the other way)."""
    finding_text = "Some classes scale better on synthetic images than on real ones (Sec. 4.6, Figure 7)"
    paper = "some 'Scaling' classes surpass real images as data grows; " + PER_CLASS
    pick, part = per_class_source(study)
    c = study.classes
    if pick is None or not (c["source"] == "real").any() or "k_se" not in c:
        add("6", finding_text, paper, "no per-class fits", "needs 06_per_class with a real ladder", UNMEASURED)
        return
    real = c[c["source"] == "real"].set_index("class_index")
    part = part[part["class_index"].isin(real.index)]
    tests = [(r.class_name, scaling.compare(r._asdict(), real.loc[r.class_index])) for r in part.itertuples()]
    up = holm([t["p_greater"] for _, t in tests])
    down = holm([1 - t["p_greater"] for _, t in tests])
    verdict = HOLDS if any(up) else FAILS if all(down) else INCONCLUSIVE
    top = sorted(tests, key=lambda x: -x[1]["diff"])[:3]
    add("6", finding_text, paper,
        f"{study.lab(pick)}: {sum(t['diff'] > 0 for _, t in tests)} of {len(tests)} classes have k above real's; largest: "
        + ", ".join(f"{name} {fmt_test(t)}" for name, t in top),
        f"k(synthetic) - k(real) per class (Welch), Holm over {len(tests)} classes: {sum(up)} separated above real, "
        f"{sum(down)} below", verdict, ("real_scales", f"source:{pick}"))


@finding(61)
def poor_classes(study: Study, add) -> None:
    """6b: Poor classes are the ones the model cannot render: mean recognizability of the other classes minus the Poor ones',
    in the per-class setting (categories among its own classes, ``per_class.categorize``), by a permutation test over classes."""
    title = "Poor classes are the concepts the model cannot draw: lower recognizability than the rest (Sec. 4.6)"
    pick, part = per_class_source(study)
    if pick is None or "category" not in part or "recognizability" not in part:
        add("6b", title, PER_CLASS, "no per-class categories", "needs 03_quality and 06_per_class", UNMEASURED)
        return
    from synkit.analysis.per_class import categorize

    part = categorize(part.drop(columns=["category"]), scope="source").dropna(subset=["recognizability", "category"])  # its own classes
    poor = (part["category"] == "Poor").to_numpy().astype(int)
    if poor.sum() == 0 or poor.sum() == len(poor):
        add("6b", title, PER_CLASS, f"{study.lab(pick)}: {int(poor.sum())} Poor classes of {len(poor)}", "needs Poor and other classes",
            UNMEASURED)
        return
    t = permutation(poor, part["recognizability"].to_numpy(float), "mean_gap")
    names = ", ".join(part.loc[part["category"] == "Poor", "class_name"])
    add("6b", title, PER_CLASS,
        f"{study.lab(pick)}: Poor ({names}) mean F1 {part.loc[poor == 1, 'recognizability'].mean():.3f}, the other "
        f"{int((poor == 0).sum())} classes {part.loc[poor == 0, 'recognizability'].mean():.3f}; difference {fmt(t['diff'])}",
        f"permutation test over classes ({rules.N_PERM} shuffles), one-sided p = {t['p_greater']:.3f} (the other way: {t['p_less']:.3f})",
        by_p(t["p_greater"], t["p_less"]), ("real_scales", "reference", f"source:{pick}"))


@finding(90)
def recognizability_explains(study: Study, add) -> None:
    """9a/9b/9c: across the classes of the per-class setting, Spearman's rho of recognizability with performance at D_I
    (-log L), with k, and with the synthetic - real gap at D_I (-log L on synthetic minus on real: the class's difficulty
    on real data taken out; the concept-failure mechanism), by a permutation test (10 classes are too few for a
    percentile bootstrap)."""
    pick, part = per_class_source(study)
    if pick is None or "recognizability" not in part or part["recognizability"].isna().all():
        for letter in "abc":
            add(f"9{letter}", "Classes the model draws poorly train poorly (abstract, Sec. 4.6)", PER_CLASS, "no per-class table",
                "needs 03_quality and 06_per_class", UNMEASURED)
        return
    part = part.assign(gap_di=part["neg_log_l_di"] - part["real_neg_log_l_di"]) if "real_neg_log_l_di" in part else part
    for letter, col, what in (("a", "neg_log_l_di", "performance at D_I (-log L)"), ("b", "k", "k"),
                              ("c", "gap_di", "the synthetic - real gap at D_I (concept failure, the class's difficulty on real taken out)")):
        if col not in part:
            add(f"9{letter}", f"Classes the model draws poorly train poorly: per-class recognizability vs {what} (Sec. 4.6)", PER_CLASS,
                "no per-class real fits", "needs real on 04_train's ladder", UNMEASURED)
            continue
        t = permutation(part["recognizability"].to_numpy(float), part[col].to_numpy(float), "spearman")
        add(f"9{letter}", f"Classes the model draws poorly train poorly: per-class recognizability vs {what} (abstract, Sec. 4.6)",
            "Poor classes are those the model fails to render; " + PER_CLASS,
            f"{study.lab(pick)}: Spearman rho over its {t['n']} classes = {fmt(t['diff'], digits=2)}",
            f"permutation test ({rules.N_PERM} shuffles), one-sided p = {t['p_greater']:.3f} (the other way: {t['p_less']:.3f})",
            by_p(t["p_greater"], t["p_less"]), ("real_scales", "reference", f"source:{pick}"))


