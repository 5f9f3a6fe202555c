import math

import numpy as np
import pandas as pd
import pytest

from synkit.analysis import scaling


def simulate(k=0.3, l_di=0.4, d_i=10_000, sizes=(625, 1250, 2500, 5000, 10_000, 20_000), noise=0.02, seed=0, bend_at=None, k_after=0.02):
    rng = np.random.default_rng(seed)
    x = np.log(np.asarray(sizes, float)) - math.log(d_i)
    logl = math.log(l_di) - k * x
    if bend_at is not None:
        xb = math.log(bend_at) - math.log(d_i)
        logl = np.where(x > xb, math.log(l_di) - k * xb - k_after * (x - xb), logl)
    return np.asarray(sizes), np.exp(logl + rng.normal(0, noise, len(x)))


def test_recovers_known_exponent_inside_its_interval():
    sizes, loss = simulate(k=0.3, l_di=0.4, noise=0.02, seed=1)
    fit = scaling.fit_power_law(sizes, loss, d_i=10_000)
    assert fit["k_lo"] < 0.3 < fit["k_hi"]
    assert fit["k_boot_lo"] < 0.3 < fit["k_boot_hi"]
    assert fit["neg_log_l_di_lo"] < -math.log(0.4) < fit["neg_log_l_di_hi"]
    assert abs(fit["k"] - 0.3) < 0.05 and fit["r2"] > 0.95
    assert fit["bend_size"] is None and fit["n_fit"] == 6


def test_interval_coverage_is_about_95_percent():
    hits = 0
    for seed in range(200):
        sizes, loss = simulate(k=0.25, noise=0.05, seed=seed)
        fit = scaling.fit_power_law(sizes, loss, d_i=10_000, n_boot=10, detect_bend=False)
        hits += fit["k_lo"] < 0.25 < fit["k_hi"]
    assert 0.88 <= hits / 200 <= 0.99


def test_finds_a_bend_and_fits_the_straight_range():
    sizes = (500, 1000, 2000, 4000, 8000, 16000, 32000, 64000)
    d, loss = simulate(k=0.35, sizes=sizes, noise=0.01, seed=3, bend_at=8000, k_after=0.0)
    fit = scaling.fit_power_law(d, loss, d_i=10_000)
    assert fit["bend_size"] == 8000
    assert fit["fit_max_size"] == 8000 and fit["n_fit"] == 5
    assert fit["k_lo"] < 0.35 < fit["k_hi"]
    # without the bend search the slope is pulled flat
    assert scaling.fit_power_law(d, loss, d_i=10_000, detect_bend=False)["k"] < 0.3


def test_no_bend_on_a_straight_law():
    d, loss = simulate(k=0.35, sizes=(500, 1000, 2000, 4000, 8000, 16000, 32000, 64000), noise=0.01, seed=4)
    assert scaling.find_bend(d, loss)["bend_size"] is None


@pytest.mark.parametrize(
    "sizes, values, message",
    [
        ([1000, 2000], [0.5, 0.4], "at least 3 distinct data sizes"),
        ([1000, 1000, 2000], [0.5, 0.45, 0.4], "at least 3 distinct data sizes"),
        ([1000, 2000, 4000], [0.5, 0.0, 0.3], "0.0 at size 2000 is not a positive finite number"),
        ([1000, 2000, 4000], [0.5, -1, 0.3], "-1.0 at size 2000"),
        ([1000, 2000, 4000], [0.5, float("nan"), 0.3], "nan at size 2000"),
        ([1000, 2000, 4000], [0.5, 0.4], "equal length"),
        ([0, 2000, 4000], [0.5, 0.4, 0.3], "data size 0.0 is invalid"),
    ],
)
def test_bad_inputs_fail_clearly(sizes, values, message):
    with pytest.raises(ValueError, match=message):
        scaling.fit_power_law(sizes, values, d_i=1000)


def test_fit_table_curves_residuals_and_ranking():
    rows = []
    for source, k in (("real", 0.3), ("synth", 0.15)):
        for ev, shift in (("val", 0.0), ("sketch", 1.0)):
            d, loss = simulate(k=k, l_di=0.4 + shift, seed=len(rows))
            rows += [{"source": source, "eval_set": ev, "size": s, "loss": v, "top1": 0.5} for s, v in zip(d, loss)]
    metrics = pd.DataFrame(rows)
    fits = scaling.fit_table(metrics, 10_000)
    assert len(fits) == 4 and fits["error"].isna().all()
    rank = scaling.ranking(fits, "val")
    assert rank["source"].tolist() == ["real", "synth"]
    curves = scaling.fit_curves(fits, 10_000)
    assert ((curves["lo"] <= curves["fit"]) & (curves["fit"] <= curves["hi"])).all()
    res = scaling.residuals(metrics, fits, 10_000)
    assert len(res) == len(metrics) and res["residual"].abs().max() < 0.1
    err = scaling.fit_table(metrics, 10_000, metric="error")
    assert np.allclose(err["k"], 0, atol=1e-9)  # top-1 constant: a flat law
    with pytest.raises(ValueError, match="source=real, eval_set=sketch: .* at least 3"):
        scaling.fit_table(metrics[metrics["size"] <= 1250], 10_000)
    recorded = scaling.fit_table(metrics[metrics["size"] <= 1250], 10_000, errors="record")
    assert recorded["error"].str.contains("at least 3").all()
    perfect = metrics.assign(top1=np.where(metrics["size"] == 2500, 1.0, metrics["top1"]))  # error 0 at one size
    with pytest.raises(ValueError, match=r"eval_set=sketch: error 0.0 at size 2500 is not a positive"):
        scaling.fit_table(perfect, 10_000, metric="error")


def test_points_that_share_a_size_count_once():
    # three seeds at each of 6 sizes: the interval has 6 - 2 degrees of freedom, and a shared shift of one size's points moves
    # the fit as one point would (the seeds pooled as independent points gave 16)
    rng = np.random.default_rng(3)
    sizes = np.repeat([125, 250, 500, 1000, 2000, 4000], 3)
    loss = np.exp(-0.2 * np.log(sizes / 4000) + rng.normal(0, 0.01, len(sizes)))
    fit = scaling.fit_power_law(sizes, loss, d_i=4000, n_boot=0)
    assert fit["df_resid"] == 4 and fit["n_sizes"] == 6 and fit["n_points"] == 18
    means = scaling.fit_power_law(np.unique(sizes), np.exp([np.log(loss[sizes == s]).mean() for s in np.unique(sizes)]), d_i=4000, n_boot=0)
    assert math.isclose(fit["k"], means["k"]) and math.isclose(fit["k_se"], means["k_se"])


def test_curvature_rejects_a_bent_line_and_not_a_straight_one():
    sizes = np.repeat([125, 250, 500, 1000, 2000, 4000], 3)
    x = np.log(sizes / 4000)
    rng = np.random.default_rng(2)
    bent = scaling.curvature(sizes, np.exp(-0.2 * x + 0.05 * x * x + rng.normal(0, 0.01, len(x))))
    straight = scaling.curvature(sizes, np.exp(-0.2 * x + rng.normal(0, 0.01, len(x))))
    assert bent["curve"] > 0 and bent["curve_p"] < 0.01
    assert straight["curve_p"] > 0.05


def test_crossover_of_a_known_gain_line():
    n = np.array([125, 250, 500, 1000, 2000, 4000])
    gain = 0.25 - 0.1 * np.log2(n / 125) + np.array([0.004, -0.003, 0.002, -0.004, 0.003, -0.002])  # zero at 125 * 2^2.5 = 707
    cross = scaling.crossover(pd.DataFrame({"real_images": n, "gain": gain}), d_i=4000)
    assert abs(cross["n_star"] - 707) < 30 and cross["n_lo"] < 707 < cross["n_hi"] and cross["slope_hi"] < 0
    flat = scaling.crossover(pd.DataFrame({"real_images": n, "gain": 0.1 + 0.01 * np.log2(n)}), d_i=4000)
    assert not np.isfinite(flat["n_star"])  # a gain that does not fall has no crossover
