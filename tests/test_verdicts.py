"""The verdict rules' error rates, simulated: studies with no effect must rarely say "holds" or
"does not hold here", and k's interval must cover a known k at its nominal rate.

Every simulated study runs the real row code (``synkit.analysis.findings``' registered row families, the
gates included) on tables built in memory with the shapes 04-07 write: 6 sizes over 1.5 decades
up to D_I, 3 seeds, sizes that share an effect (the same data at a size) and noise on every point.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synkit.analysis import findings

from synkit.analysis import per_class

from synkit.analysis import scaling
from synkit.analysis.findings import rules
from synkit.analysis.findings.context import Study
from synkit.analysis.findings.registry import ROW_FAMILIES

D_I = 4000
SIZES = [125, 250, 500, 1000, 2000, 4000]
SEEDS = [0, 1, 2]
SOURCES = ["in_captions@2", "classnames@8", "classnames@2"]
SWEEP = [(p, g) for p in ("in_captions", "classnames", "clip_templates_80") for g in (1, 1.5, 2, 4, 8)]
SIZE_SD, POINT_SD = 0.02, 0.02  # log-loss noise shared by a size's points, and each point's own


def null_study(rng: np.random.Generator, effect: float = 0.0) -> Study:
    """One study with no effect anywhere (every source the same law; flat CFG, prompts and classes), except a real-synthetic
    k gap of ``effect`` when given (for power)."""
    rows = []

    def add(source, kind, size, seed, eval_set, log_loss, model="default", real_fraction=0.0, classes=True):
        for c in range(-1, 10 if classes else 0):
            value = log_loss + (rng.normal(0, POINT_SD) if c >= 0 else 0.0)
            rows.append({"source": source, "config": None if source == "real" else source.partition("+")[0], "real_fraction": real_fraction,
                         "kind": kind, "sweep": kind == "sweep", "model": model, "seed": seed, "size": size, "steps": 10,
                         "eval_set": eval_set, "class_index": c, "class_name": "all" if c < 0 else f"c{c}", "n": 100,
                         "loss": math.exp(value), "top1": 1 - 0.5 * math.exp(value)})

    shared = {}
    for source in ["real", *SOURCES]:
        k = 0.2 + (effect if source == "real" else 0.0)
        for view in ("val", "sketch"):
            for size in SIZES:
                u = rng.normal(0, SIZE_SD)
                shared[(source, view, size)] = u
                for seed in SEEDS:
                    add(source, "ladder", size, seed, view, -k * math.log(size / D_I) + u + rng.normal(0, POINT_SD),
                        classes=view == "val" and source in ("real", SOURCES[0]))  # per class: real and the per-class setting's source
    for size in SIZES[1:]:  # the mix holds size / 2 real images: the same law as real alone at its real count
        u = rng.normal(0, SIZE_SD)
        for seed in SEEDS:
            add(f"{SOURCES[0]}+real:0.5", "ladder", size, seed, "val", -0.2 * math.log(size / 2 / D_I) + u + rng.normal(0, POINT_SD),
                real_fraction=0.5, classes=False)
    for model in ("small", "default"):
        for size in SIZES:
            u = rng.normal(0, SIZE_SD)
            for seed in SEEDS:
                add(SOURCES[0], "capacity" if model == "small" else "ladder", size, seed, "val", -0.2 * math.log(size / D_I) + u + rng.normal(0, POINT_SD),
                    model=model, classes=False)
    for name, _ in [(f"{p}@{g:g}", 0) for p, g in SWEEP]:
        for view in ("val", "sketch"):
            u = rng.normal(0, SIZE_SD)
            for seed in SEEDS:
                add(name, "sweep", 1000, seed, view, 0.3 + u + rng.normal(0, POINT_SD), classes=False)
    metrics = pd.DataFrame(rows)
    metrics = metrics[~((metrics["kind"] == "ladder") & (metrics["model"] == "default") & (metrics["source"] == SOURCES[0])
                        & metrics.duplicated(["source", "kind", "size", "seed", "eval_set", "class_index"]))]
    configs = pd.DataFrame([{"config": f"{p}@{g:g}", "prompt_set": p, "guidance_scale": float(g), "images": 8000} for p, g in SWEEP])
    quality = pd.DataFrame([{"config": f"{p}@{g:g}", "prompt_set": p, "guidance_scale": float(g), "class_index": c, "class_name": f"c{c}",
                             "f1": 0.6 + rng.normal(0, 0.03), "diversity": 0.3 + rng.normal(0, 0.03)} for p, g in SWEEP for c in range(10)])
    ladder = metrics[(metrics["class_index"] == -1) & (metrics["kind"] == "ladder") & (metrics["model"] == "default")]
    fits = scaling.fit_table(ladder[~ladder["source"].str.contains("+", regex=False)], D_I, "loss", n_boot=0)  # verdicts read loss fits
    real_fit = fits[(fits["source"] == "real") & (fits["eval_set"] == "val") & (fits["metric"] == "loss")].iloc[0]
    clip_rows = []  # the seeds of a scale share its captions: an effect per (setup, scale, task) beside each run's own noise
    for setup in ("real", "synthetic", "mixed"):
        for n in (500, 1000, 2000, 4000, 8000):
            for task in ("classes", "coarse"):
                u, w = rng.normal(0, 0.02), rng.normal(0, 0.02)
                for seed in SEEDS:
                    top1 = (0.3 + 0.05 * math.log2(n / 1000) if task == "classes" else 0.5) + u + rng.normal(0, 0.02)
                    clip_rows.append({"setup": setup, "scale": n, "seed": seed, "eval_set": "val" if task == "classes" else "val-coarse",
                                      "task": task, "top1": top1,
                                      "loss": math.exp(-0.2 * math.log(n / 8000) + w + rng.normal(0, 0.02))})
    clip = pd.DataFrame(clip_rows)
    # 07's CLIP CFG sweep (7d): every scale alike, each seed's run its own noise
    cfg = pd.DataFrame([{"guidance_scale": g, "captions": 500, "seed": seed, "top1": 0.3 + rng.normal(0, 0.02), "loss": 1.0}
                        for g in (1.0, 1.5, 2.0, 4.0) for seed in SEEDS])
    cfg["picked"] = cfg["guidance_scale"] == cfg.groupby("guidance_scale")["top1"].mean().idxmax()
    fine = clip[clip["task"] == "classes"].rename(columns={"setup": "source", "scale": "size"})
    tables = {"metrics": metrics, "configs": configs, "quality": quality, "fits": fits, "extended": fits,
              "capacity": scaling.capacity_table(metrics, D_I, SOURCES[0], n_boot=0), "mix": scaling.mix_table(metrics, real_fit, D_I),
              "classes": per_class.build_table(metrics, quality, D_I, n_boot=0), "clip_metrics": clip,
              "clip_fits": scaling.fit_table(fine, 8000, "loss", n_boot=0), "clip_control": None, "clip_cfg": cfg,
              "reference": {"val_top1": 0.9, "classes": 10}, "d_i": D_I}
    return Study(Path("/nonexistent"), tables)


def run_rows(study: Study) -> dict[str, str]:
    """Every registered row on one in-memory study, with the gates applied as ``findings.findings`` does."""
    failed = {g.key for g in findings.gates.__globals__["study_gates"](study) if g.passed is False}
    out = {}

    def add(n, finding, paper, measured, why, verdict, needs=()):
        out[str(n)] = findings.UNMEASURED if failed & set(needs) else verdict

    for _, _, family in ROW_FAMILIES:
        family(study, add)
    return out


# rows whose "no effect" is not zero in this null study: 1x and 13 judge a power law (present here, k = 0.2); 12c needs a
# ladder past D_I (simulated below); 11 compares real at D_I with synthetic at its top, both D_I here
POWER_LAW_ROWS = ("1a", "1b", "1c", "13")


@pytest.mark.slow
def test_no_effect_gives_holds_and_does_not_hold_at_most_about_5_percent_each(monkeypatch):
    monkeypatch.setattr(rules, "N_PERM", 200)  # the same tests at a coarser p-value resolution (1/201)
    rng = np.random.default_rng(2024)
    sims = 500
    tally: dict[str, dict[str, int]] = {}
    for _ in range(sims):
        for row, verdict in run_rows(null_study(rng)).items():
            tally.setdefault(row, dict.fromkeys(findings.VERDICTS, 0))[verdict] += 1
    rates = pd.DataFrame(tally).T / sims
    print("\nverdict rates over", sims, "studies with no effect:\n", rates.round(3).to_string())
    judged = rates[rates[findings.UNMEASURED] < 1].drop(index=[r for r in POWER_LAW_ROWS if r in rates.index])
    assert len(judged) >= 25, judged.index.tolist()
    # about 5%: the nominal level plus three standard errors of a 500-study estimate
    limit = 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)
    assert (judged[findings.HOLDS] <= limit).all(), judged[judged[findings.HOLDS] > limit]
    assert (judged[findings.FAILS] <= limit).all(), judged[judged[findings.FAILS] > limit]
    laws = rates.loc[list(POWER_LAW_ROWS)]
    assert (laws[findings.FAILS] <= limit).all(), laws  # a straight law is rarely rejected


@pytest.mark.slow
def test_power_at_an_effect_the_size_of_the_papers_is_reported():
    # real's k above synthetic's by 0.1 on a k of 0.2 (the paper's Figure 1 shows real about twice synthetic in-domain)
    rng = np.random.default_rng(7)
    sims = 40
    hits = sum(run_rows(null_study(rng, effect=0.1))["2"] == findings.HOLDS for _ in range(sims))
    print(f"\npower of row 2 at k(real) - k(synthetic) = 0.1 (sizes {SIZES}, {len(SEEDS)} seeds, noise {SIZE_SD} + {POINT_SD}): {hits / sims:.2f}")
    assert hits > 0


def simulate_fit(rng, k, size_sd, point_sd, seed_slope_sd=0.0):
    sizes, values, seeds = [], [], []
    shared = {s: rng.normal(0, size_sd) for s in SIZES}
    for seed in SEEDS:
        slope = k + rng.normal(0, seed_slope_sd)
        for s in SIZES:
            sizes.append(s)
            seeds.append(seed)
            values.append(math.exp(-slope * math.log(s / D_I) + shared[s] + rng.normal(0, point_sd)))
    return scaling.fit_power_law(sizes, values, D_I, n_boot=0, detect_bend=False)


@pytest.mark.parametrize("size_sd, point_sd", [(0.03, 0.02), (0.0, 0.03)])
def test_k_interval_covers_a_known_k_at_its_nominal_rate(size_sd, point_sd):
    rng = np.random.default_rng(11)
    sims = 2000
    covered = 0
    for _ in range(sims):
        fit = simulate_fit(rng, 0.25, size_sd, point_sd)
        covered += fit["k_lo"] <= 0.25 <= fit["k_hi"]
    assert 0.93 <= covered / sims <= 0.97, covered / sims


def test_default_model_bend_past_d_i_is_rarely_claimed_on_a_straight_law():
    rng = np.random.default_rng(5)
    sizes = [*SIZES, 8000]
    calls = {findings.HOLDS: 0, findings.FAILS: 0}
    for _ in range(500):
        shared = {s: rng.normal(0, SIZE_SD) for s in sizes}
        part = pd.DataFrame([{"size": s, "loss": math.exp(-0.2 * math.log(s / D_I) + shared[s] + rng.normal(0, POINT_SD))}
                             for s in sizes for _ in SEEDS])
        h = scaling.hinge_change(part["size"], part["loss"], D_I)
        v = rules.directional(rules.at_level({"diff": h["bend_change"], "se": h["bend_change_se"], "df": h["df_resid"]}, 0.05))
        calls[v] = calls.get(v, 0) + 1
    assert calls[findings.HOLDS] <= 0.07 * 500 and calls[findings.FAILS] <= 0.07 * 500, calls
