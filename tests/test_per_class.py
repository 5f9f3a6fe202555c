import json

import numpy as np
import pandas as pd
import pytest

from synkit.analysis import per_class

SIZES = (100, 200, 400, 800)
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# synthetic: class 0 easy (low loss), 1 poor (high, flat), 2 scaling (high, steep); the rest middling
SYN_K = [0.10, 0.01, 0.60, 0.20, 0.15, 0.25, 0.20, 0.18, 0.22, 0.12]
SYN_L = [0.10, 1.50, 1.20, 0.40, 0.45, 0.35, 0.50, 0.42, 0.38, 0.60]


def fake_metrics(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for source, ks, ls in (("real", [0.3] * 10, [0.3] * 10), ("synth", SYN_K, SYN_L)):
        for c, (k, level) in enumerate(zip(ks, ls)):
            for s in SIZES:
                loss = level * (s / 400) ** -k * np.exp(rng.normal(0, 0.01))
                rows.append({"source": source, "kind": "ladder", "eval_set": "val", "class_index": c, "class_name": NAMES[c],
                             "size": s, "loss": loss, "top1": float(np.exp(-loss))})
    return pd.DataFrame(rows)


def fake_quality():
    return pd.DataFrame({"config": "synth", "class_index": range(10), "f1": np.linspace(0.5, 0.95, 10), "diversity": np.linspace(0.3, 0.1, 10)})


def test_per_class_fits_recover_each_class_and_categories_follow_the_rule():
    table = per_class.build_table(fake_metrics(), fake_quality(), d_i=400)
    syn = table[table["source"] == "synth"].set_index("class_index")
    assert np.allclose(syn["k"], SYN_K, atol=0.05)
    assert (syn["k_lo"] <= syn["k"]).all() and (syn["k"] <= syn["k_hi"]).all()
    assert syn.loc[0, "category"] == "Easy"
    assert syn.loc[1, "category"] == "Poor"
    assert syn.loc[2, "category"] == "Scaling"
    assert table.loc[table["source"] == "real", "category"].isna().all()
    # the rule, restated: Easy = top third of performance; then steep = Scaling; then low = Poor
    perf, k = syn["neg_log_l_di"], syn["k"]
    easy = perf >= perf.quantile(2 / 3)
    assert (syn["category"] == "Easy").equals(easy)
    assert (syn.loc[~easy, "category"] == np.where(k[~easy] >= k.quantile(0.5), "Scaling", np.where(perf[~easy] < perf.median(), "Poor", "Other"))).all()
    assert syn.loc[2, "beats_real"] and syn.loc[2, "beats_real_ci"] and not syn.loc[1, "beats_real"]
    assert syn["recognizability"].notna().all() and syn["final_size"].eq(800).all()
    summary = per_class.category_summary(table)
    assert summary["n"].sum() == 10 and "Trouser" in summary.set_index("category").loc["Poor", "classes"]
    corr = per_class.explain(table).set_index(["of", "measure"])["spearman"]
    assert corr.notna().all()


def test_bad_rule_parameters_and_unfit_classes():
    metrics = fake_metrics()
    with pytest.raises(ValueError, match="easy_quantile=1.5 is invalid"):
        per_class.build_table(metrics, None, 400, easy_quantile=1.5)
    with pytest.raises(ValueError, match="no per-class ladder rows for eval set 'sketch'; valid eval sets are val"):
        per_class.build_table(metrics, None, 400, eval_set="sketch")
    few = metrics[~((metrics["source"] == "synth") & (metrics["class_index"] == 4) & (metrics["size"] > 200))]
    table = per_class.build_table(few, None, 400)
    row = table[(table["source"] == "synth") & (table["class_index"] == 4)].iloc[0]
    assert row["category"] == "Unfit" and "at least 3" in row["error"]


def test_charts_build():
    metrics = fake_metrics()
    table = per_class.build_table(metrics, fake_quality(), 400)
    points = per_class.curve_points(metrics)
    for chart in (per_class.figure6(table), per_class.class_curves(points, table, ["Trouser"], ["synth", "real"], 400),
                  per_class.dashboard(table, points)):
        spec = chart.to_dict()
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite")
    html = per_class.dashboard(table, points).to_html()
    assert "class_pick" in html and "source_pick" in html
    grid = per_class.side_by_side(np.zeros((8, 28, 28), np.uint8), np.full((8, 28, 28), 255, np.uint8), "Bag")
    assert grid.size[1] == 2 * 28 * 3


def test_explorer_chart_carries_facts_curves_and_samples():
    """The explorer is one kernel-free chart: its facts, curves and sample images all follow the
    class selection (clicked in JupyterLab: tests/test_lab.py) and the source menu."""
    metrics = fake_metrics()
    table = per_class.build_table(metrics, fake_quality(), 400)
    calls = []

    def images(source, class_index):
        calls.append((source, class_index))
        return np.full((8, 28, 28), 10 * class_index + (source == "real"), np.uint8)

    samples = per_class.sample_table(table, images, per_class=3)
    classes = table.loc[table["category"].notna(), "class_name"].nunique()
    assert len(samples) == classes * 2 * 3 and samples["url"].str.startswith("data:image/png;base64,").all()
    assert ("synth", 2) in calls and ("real", 2) in calls
    spec = per_class.dashboard(table, per_class.curve_points(metrics), samples).to_dict()
    text = json.dumps(spec)
    assert '"image"' in text and "class_pick" in text and "source_pick" in text and "data:image/png;base64," in text
    facts = per_class.class_facts(table)
    pullover = " ".join(facts.loc[(facts["source"] == "synth") & (facts["class_name"] == "Pullover"), "text"])
    assert "Scaling" in pullover and "scales better than on real data" in pullover and "k = " in pullover
    few = per_class.sample_table(table, images, per_class=2, max_classes=3)
    assert few["class_name"].nunique() == 3


