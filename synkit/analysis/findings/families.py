"""The model family (Sec. 3.1, 4.2, 4.3): several text-to-image models in one study."""

from __future__ import annotations

from synkit.analysis import scaling
from synkit.analysis.findings.cfg import sources_gates
from synkit.analysis.findings.context import Study
from synkit.analysis.findings.registry import finding
from synkit.analysis.findings.rules import ALPHA, UNMEASURED, at_level, combine, directional, fmt_test, paired

FAMILY_PAPER = ("Stable Diffusion, Imagen and Muse with IN-Captions prompts sit close together in the recognizability-diversity "
                "plot (Figure 2) [4.2]; their own CFG ranges: SD [1.5, 10], Imagen [1, 2], Muse [0.1, 1] [3.1] (Sec. 4.2 gives the Imagen "
                "and Muse ranges the other way round)")
TITLES = {"a": "Each model family trades recognizability for diversity as its CFG rises: the families' trade-offs alike (Sec. 4.2)",
          "b": "Real images scale better than every family's synthetic images: larger k on val (Sec. 4.3, Figure 3)",
          "c": "The kind of text-to-image model changes how synthetic images scale: k differs between families (abstract, Sec. 4.3)"}


@finding(140)
def families(study: Study, add) -> None:
    """14a: every family's F1 rises and diversity falls over its own CFG range (paired over classes, Bonferroni over every
    part); 14b: k(real) - k(family's best ladder) > 0 for every family, Bonferroni over families; 14c: the largest minus the
    smallest family k, Welch at the Bonferroni level over the pairs. A one-model study: not measured."""
    q = study.quality
    gens = sorted(q["generator"].dropna().unique()) if q is not None and "generator" in q else []
    if len(gens) < 2:
        for letter in "abc":
            add(f"14{letter}", TITLES[letter], FAMILY_PAPER, "one text-to-image model",
                "needs several generators in one study (02_generate's generators; parameters/families.yaml)", UNMEASURED)
        return
    series = [(g, ps, part) for g in gens for ps, part in q[q["generator"] == g].groupby("prompt_set") if part["guidance_scale"].nunique() >= 2]
    level = ALPHA / max(2 * len(series), 1)
    parts, texts = [], []
    for g, ps, part in series:
        scales = sorted(part["guidance_scale"].unique())
        hi, lo = (part[part["guidance_scale"] == x].set_index("class_index") for x in (scales[-1], scales[0]))
        f1, div = paired((hi["f1"] - lo["f1"]).dropna().to_numpy(), level), paired((lo["diversity"] - hi["diversity"]).dropna().to_numpy(), level)
        parts += [directional(f1), directional(div)]
        best = part.groupby("guidance_scale")["f1"].mean()
        texts.append(f"{g} ({ps}, CFG {scales[0]:g} to {scales[-1]:g}): F1 {fmt_test(f1, 2)} up, diversity {fmt_test(div, 3)} down; "
                     f"best F1 {best.max():.3f} at CFG {best.idxmax():g}")
    add("14a", TITLES["a"], FAMILY_PAPER, "; ".join(texts) or "no family swept 2 or more CFG scales",
        f"per family and prompt set, over its own CFG range: F1(highest) - F1(lowest) and diversity(lowest) - diversity(highest), "
        f"paired over classes at the Bonferroni level {level:.4f}", combine(parts) if parts else UNMEASURED,
        ("reference", *sources_gates(q["config"].unique())))
    _family_k(study, add)


def _family_k(study: Study, add) -> None:
    val = study.fit_rows()
    ladders: dict[str, list[str]] = {}
    for source in study.synth:
        g = study.generators.get(source)
        if g is not None:
            ladders.setdefault(g, []).append(source)
    fam = {g: max(srcs, key=lambda s: val.loc[s, "k"]) for g, srcs in ladders.items()}
    gates = ("real_scales", *sources_gates(fam.values()))
    if not study.have_real or not fam:
        add("14b", TITLES["b"], "real's k above every synthetic model's on ImageNet val (Figure 3)", "no family ladder",
            "needs a real ladder and a ladder per family in 04_train", UNMEASURED)
    else:
        level = ALPHA / len(fam)
        tests = {g: at_level(scaling.compare(val.loc["real"], val.loc[s]), level) for g, s in fam.items()}
        add("14b", TITLES["b"], "real's k above every synthetic model's on ImageNet val (Figure 3; k not printed)",
            f"{study.k_text('real')}; " + ", ".join(study.k_text(s) for s in fam.values()),
            "; ".join(f"k(real) - k({g}) = {fmt_test(t)}" for g, t in tests.items()) + f"; Welch at the Bonferroni level {level:.3f}",
            combine([directional(t) for t in tests.values()]), gates)
    if len(fam) < 2:
        add("14c", TITLES["c"], "model type is one of three factors that 'significantly affect scaling behavior' (abstract); Figures 1, 3",
            "fewer than 2 family ladders", "needs a ladder per family in 04_train", UNMEASURED)
        return
    order = sorted(fam, key=lambda g: val.loc[fam[g], "k"], reverse=True)
    pairs = len(fam) * (len(fam) - 1) // 2
    t = scaling.compare(val.loc[fam[order[0]]], val.loc[fam[order[-1]]], alpha=ALPHA / pairs)
    at = {}
    ladder = study.ladder
    over = ladder[ladder["eval_set"] == "val"]
    for g, s in fam.items():
        rows = over[over["source"] == s]
        top = rows["size"].max()
        at[g] = (int(top), float(rows.loc[rows["size"] == top, "loss"].mean()), float(rows.loc[rows["size"] == top, "top1"].mean()))
    best = min(at, key=lambda g: at[g][1])
    worth = "; val loss / top-1 at the largest size: " + ", ".join(f"{g} {v[1]:.3f} / {v[2]:.3f} ({v[0]})" for g, v in at.items()) + \
        f"; worth most: {best}"
    add("14c", TITLES["c"], "model type is one of three factors that 'significantly affect scaling behavior' (abstract); Figures 1, 3",
        "k on val: " + ", ".join(f"{g}: {study.k_text(fam[g])}" for g in order) + worth,
        f"k({order[0]}) - k({order[-1]}) (largest minus smallest) = {fmt_test(t)}, Welch interval at the Bonferroni level 0.05/{pairs}",
        directional(t), gates)
