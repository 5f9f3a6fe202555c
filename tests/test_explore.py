"""The widget explorer's refits are 05's and 06's fits on the chosen range (cached), and its views follow the controls
(run here without a browser; JupyterLab's own test opens 06)."""

import math

import numpy as np
import pandas as pd
import pytest

from synkit.analysis import explore, scaling
from synkit.core.files import write_json, write_parquet
from synkit.core.layout import StudyFiles
from synkit.data.worlds.fashion import CLASS_NAMES

SIZES = [100, 200, 400, 800]
D_I = 800


def metrics_table(seed: int = 0) -> pd.DataFrame:
    """real and one synthetic source, 10 classes whose k runs from 0.05 to 0.5 (real: 0.3), 2 seeds, val and sketch."""
    rng = np.random.default_rng(seed)
    rows = []
    for source in ("real", "cfgA"):
        for eval_set in ("val", "sketch"):
            for size in SIZES:
                for s in (0, 1):
                    for c in range(-1, 10):
                        k = 0.3 if source == "real" else 0.05 + 0.05 * max(c, 0)
                        loss = math.exp(-k * math.log(size / D_I) + 0.1 * c + rng.normal(0, 0.01))
                        rows.append({"source": source, "config": None if source == "real" else source, "real_fraction": 0.0,
                                     "kind": "ladder", "sweep": False, "model": "default", "seed": s, "size": size, "steps": 10,
                                     "eval_set": eval_set, "class_index": c, "class_name": "all" if c < 0 else CLASS_NAMES[c],
                                     "n": 100, "loss": loss, "top1": min(0.99, 1 / (1 + loss))})
    return pd.DataFrame(rows)


def test_refits_are_the_scaling_fits_on_the_chosen_range_and_are_cached():
    metrics = metrics_table()
    refits = explore.Refits(metrics, D_I)
    for size_range in [(100, 800), (200, 800)]:
        mine = refits.class_fits("cfgA", "val", "error", size_range)
        rows = metrics[(metrics["source"] == "cfgA") & (metrics["eval_set"] == "val") & (metrics["class_index"] >= 0)
                       & metrics["size"].between(*size_range)]
        theirs = scaling.fit_table(rows, D_I, "error", by=("source", "class_index", "class_name"), n_boot=0, detect_bend=False)
        np.testing.assert_array_equal(mine["k"].to_numpy(), theirs["k"].to_numpy())
        np.testing.assert_array_equal(mine["k_lo"].to_numpy(), theirs["k_lo"].to_numpy())
    fitted = refits.fitted
    refits.class_fits("cfgA", "val", "error", (200, 800))
    assert refits.fitted == fitted == 20  # two ranges x 10 classes, the third call from the cache
    one_seed = refits.class_fits("cfgA", "val", "loss", (100, 800), seed=1)
    assert one_seed["k"].notna().all() and not one_seed["k"].equals(refits.class_fits("cfgA", "val", "loss", (100, 800))["k"])
    assert refits.class_fits("cfgA", "val", "loss", (400, 800))["k"].isna().all()  # two sizes: no fit, said in error
    loss = refits.class_fits("cfgA", "val", "loss", (100, 800)).set_index("class_name")["k"]
    assert abs(loss["T-shirt/top"] - 0.05) < 0.02 and abs(loss["Ankle boot"] - 0.5) < 0.02  # the k the table was made with


def test_the_explorer_redraws_each_view_and_a_threshold_moves_classes(tmp_path, fashion):
    at = StudyFiles(tmp_path / "study")
    write_parquet(metrics_table(), at.train_metrics)
    write_json({"d_i": D_I, "world": "fashion"}, at.d_i)
    explorer = explore.per_class_explorer(at.root, classes=["Bag", "Trouser"])
    first = explorer.table.set_index(["source", "class_name"])["category"]
    explorer.steep.value = 0.2  # k quantile: more classes count as steep
    moved = explorer.table.set_index(["source", "class_name"])["category"]
    assert (first != moved).any()
    before = explorer.tables.refits.fitted
    explorer.sizes.index = (1, 3)
    assert explorer.tables.refits.fitted > before and "fits refitted" in explorer.status.value
    mine = explorer.table[(explorer.table["source"] == "cfgA") & (explorer.table["class_name"] == "Bag")].iloc[0]
    rows = explorer.tables.refits.rows(explorer.tables.refits.classes, "cfgA", "val", (200, 800), "pooled")
    bag = scaling.fit_power_law(rows.loc[rows["class_name"] == "Bag", "size"], rows.loc[rows["class_name"] == "Bag", "loss"], D_I,
                                n_boot=0, detect_bend=False)
    assert mine["k"] == bag["k"]


def test_the_curves_explorer_refits_the_whole_study_on_the_chosen_range(tmp_path):
    at = StudyFiles(tmp_path / "study")
    metrics = metrics_table()
    write_parquet(metrics, at.train_metrics)
    explorer = explore.curves_explorer(at.root)
    assert "real: k = " in explorer.facts.value and "cfgA: k = " in explorer.facts.value
    explorer.sizes.index = (1, 3)
    explorer.metric.value = "error"
    rows = metrics[(metrics["source"] == "real") & (metrics["eval_set"] == "val") & (metrics["class_index"] == -1)
                   & metrics["size"].between(200, 800)]
    fit = scaling.fit_power_law(rows["size"], 1 - rows["top1"], D_I, n_boot=0, detect_bend=False)
    assert f"real: k = {fit['k']:.4f} [{fit['k_lo']:.4f}, {fit['k_hi']:.4f}]" in explorer.facts.value


def test_under_synkit_run_the_explorers_only_say_they_need_a_live_kernel(tmp_path, monkeypatch, capsys):
    from synkit.core import progress

    monkeypatch.setenv(progress.ENV, "5/8 06_per_class")
    assert explore.per_class_explorer(tmp_path / "no study") is None and explore.curves_explorer(tmp_path / "no study") is None
    assert capsys.readouterr().out.count("live kernel") == 2


def test_the_world_comes_from_the_parameters_else_from_04s_record_else_a_clear_refusal(tmp_path, fashion):
    at = StudyFiles(tmp_path / "study")
    write_parquet(metrics_table(), at.train_metrics)
    tables = explore.StudyTables(at.root)
    with pytest.raises(FileNotFoundError, match="names no world: .*run 04_train"):
        tables.world()
    write_json({"d_i": D_I, "world": "fashion", "real_size": 2_000, "web_size": 20_000}, at.d_i)
    assert len(tables.world().split("real")) == 2_000  # 04's record, not the fashion defaults (10,000)
    write_json({"notebooks": {"06_per_class": {"world": "fashion", "real_size": 3_000, "web_size": 20_000}}}, at.parameters)
    assert len(tables.world().split("real")) == 3_000  # the parameters synkit run gave 06 come first
