"""Power-law fits of loss against data size, as the paper writes them:

    log L = -k (log D - log D_I) + log L_{D_I}

``k`` is the scaling ability (how fast loss falls as data grows) and ``-log L_{D_I}`` the
performance at D_I, the size of the real training set. Both come from an ordinary least-squares
fit (statsmodels) of log L on log D - log D_I, with 95% intervals two ways: the analytic
t-interval of OLS, and a residual bootstrap (fitted values plus resampled, df-corrected
residuals; pairs bootstrap degenerates with 5 points).

**Bends.** The law holds over a range and then flattens when the model runs out of capacity
(the paper's ViT-B after ~4M images). ``find_bend`` fits a hinge, a line whose slope may change
at one of the measured sizes, at every size that leaves >= 3 points before it and >= 1 after,
and keeps the best; an F-test against the straight line, Bonferroni-corrected for the number of
candidate sizes, decides whether the bend is real (p < alpha) and whether it flattens. When it
is, the fit uses the straight range only and reports the bend.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

FIT_COLUMNS = [
    "k", "k_lo", "k_hi", "k_boot_lo", "k_boot_hi",
    "neg_log_l_di", "neg_log_l_di_lo", "neg_log_l_di_hi", "neg_log_l_di_boot_lo", "neg_log_l_di_boot_hi",
    "r2", "n_points", "n_fit", "fit_min_size", "fit_max_size", "bend_size", "bend_p",
    "intercept", "slope", "cov_intercept", "cov_slope", "cov_cross", "df_resid",
]


def _check(sizes, values, what: str) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(sizes, dtype=float)
    v = np.asarray(values, dtype=float)
    if d.shape != v.shape or d.ndim != 1:
        raise ValueError(f"sizes ({d.shape}) and {what} values ({v.shape}) must be two lists of equal length.")
    if len(np.unique(d)) < 3:
        raise ValueError(f"a power-law fit needs at least 3 distinct data sizes; got {len(np.unique(d))} ({sorted(set(d.tolist()))}).")
    bad = ~np.isfinite(d) | (d <= 0)
    if bad.any():
        raise ValueError(f"data size {float(d[bad][0])!r} is invalid; sizes must be positive.")
    bad = ~np.isfinite(v) | (v <= 0)
    if bad.any():
        raise ValueError(f"{what} {float(v[bad][0])!r} at size {d[bad][0]:g} is not a positive finite number; a power law needs positive values.")
    order = np.argsort(d, kind="stable")
    return d[order], v[order]


def _ols(x: np.ndarray, y: np.ndarray):
    import statsmodels.api as sm

    return sm.OLS(y, sm.add_constant(x, has_constant="add")).fit()


def find_bend(sizes, values, alpha: float = 0.05) -> dict:
    """The size after which log values stop falling along a straight line, if the data say so.

    Returns {"bend_size": size or None, "p": corrected p-value or None, "index": last index of
    the straight range}."""
    from scipy import stats

    d, v = _check(sizes, values, "loss")
    x, y = np.log(d), np.log(v)
    n = len(x)
    none = {"bend_size": None, "p": None, "index": n - 1}
    candidates = list(range(2, n - 1))  # >= 3 points before the hinge, >= 1 after it
    if n < 5 or not candidates:  # a hinge has 3 parameters; the F-test needs >= 2 residual dfs
        return none
    sse0 = float(np.sum(_ols(x, y).resid ** 2))
    best = None
    for j in candidates:
        X = np.column_stack([np.ones(n), x, np.maximum(0.0, x - x[j])])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        sse1 = float(np.sum((y - X @ coef) ** 2))
        if best is None or sse1 < best[1]:
            best = (j, sse1, coef[2])
    j, sse1, change = best
    df1 = n - 3
    if sse1 <= 1e-300:
        p = 0.0 if sse0 > 1e-12 else 1.0
    else:
        f = (sse0 - sse1) / (sse1 / df1)
        p = float(stats.f.sf(f, 1, df1))
    p = min(1.0, p * len(candidates))
    if p < alpha and change > 0:  # the slope rises toward zero: the curve flattens
        return {"bend_size": float(d[j]), "p": p, "index": j}
    return {**none, "p": p}


def fit_power_law(
    sizes, values, d_i: float, alpha: float = 0.05, n_boot: int = 1000, seed: int = 0, detect_bend: bool = True,
) -> dict:
    """Fit log L = -k (log D - log D_I) + log L_{D_I}; return k, -log L_{D_I}, their analytic and
    bootstrap (1 - alpha) intervals, R^2, the bend (if any) and what is needed to draw the line."""
    d, v = _check(sizes, values, "loss")
    if not d_i > 0:
        raise ValueError(f"D_I={d_i!r} is invalid; it must be the positive size of the real training set.")
    bend = find_bend(d, v, alpha) if detect_bend else {"bend_size": None, "p": None, "index": len(d) - 1}
    keep = slice(0, bend["index"] + 1)
    df, vf = d[keep], v[keep]
    x, y = np.log(df) - math.log(d_i), np.log(vf)
    res = _ols(x, y)
    (a, b), ci = res.params, res.conf_int(alpha)
    cov = res.cov_params()
    # residual bootstrap
    rng = np.random.default_rng(seed)
    n = len(x)
    resid = res.resid * math.sqrt(n / max(n - 2, 1))
    X = np.column_stack([np.ones(n), x])
    draws = res.fittedvalues[None, :] + rng.choice(resid, size=(n_boot, n), replace=True)
    coefs = np.linalg.lstsq(X, draws.T, rcond=None)[0]  # (2, n_boot)
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    a_boot, b_boot = np.percentile(coefs[0], [lo, hi]), np.percentile(coefs[1], [lo, hi])
    return {
        "k": -b, "k_lo": -ci[1][1], "k_hi": -ci[1][0], "k_boot_lo": -b_boot[1], "k_boot_hi": -b_boot[0],
        "neg_log_l_di": -a, "neg_log_l_di_lo": -ci[0][1], "neg_log_l_di_hi": -ci[0][0],
        "neg_log_l_di_boot_lo": -a_boot[1], "neg_log_l_di_boot_hi": -a_boot[0],
        "r2": float(res.rsquared) if np.ptp(y) > 0 else float("nan"), "n_points": int(len(d)), "n_fit": int(n),
        "fit_min_size": float(df.min()), "fit_max_size": float(df.max()),
        "bend_size": bend["bend_size"], "bend_p": bend["p"],
        "intercept": a, "slope": b, "cov_intercept": cov[0][0], "cov_slope": cov[1][1], "cov_cross": cov[0][1],
        "df_resid": float(res.df_resid),
    }


def metric_values(table: pd.DataFrame, metric: str) -> pd.Series:
    """``loss`` or ``error`` (1 - top-1) from a metrics table."""
    if metric == "loss":
        return table["loss"]
    if metric == "error":
        return 1 - table["top1"]
    raise ValueError(f"metric {metric!r} is unknown; valid metrics are loss, error.")


def fit_table(metrics: pd.DataFrame, d_i: float, metric: str = "loss", by=("source", "eval_set"), alpha: float = 0.05,
              n_boot: int = 1000, seed: int = 0, detect_bend: bool = True, errors: str = "raise") -> pd.DataFrame:
    """One fit per group of ``by`` over the ``size`` column; ``errors="record"`` writes a failed
    group's message into an ``error`` column instead of raising (per-class tables)."""
    rows = []
    values = metrics.assign(_value=metric_values(metrics, metric))
    for key, group in values.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        head = dict(zip(by, key), metric=metric)
        try:
            fit = fit_power_law(group["size"], group["_value"], d_i, alpha, n_boot, seed, detect_bend)
            rows.append({**head, **fit, "error": None})
        except ValueError as err:
            if errors == "raise":
                raise ValueError(f"{', '.join(f'{k}={v}' for k, v in zip(by, key))}: {err}") from None
            rows.append({**head, **{c: np.nan for c in FIT_COLUMNS}, "error": str(err)})
    return pd.DataFrame(rows)


def fit_curves(fits: pd.DataFrame, d_i: float, alpha: float = 0.05, points: int = 30) -> pd.DataFrame:
    """The fitted line and its (1 - alpha) confidence band on a grid over each fit's range."""
    from scipy import stats

    rows = []
    keys = [c for c in fits.columns if c not in FIT_COLUMNS and c != "error"]
    for fit in fits.dropna(subset=["slope"]).to_dict("records"):
        grid = np.geomspace(fit["fit_min_size"], fit["fit_max_size"], points)
        x = np.log(grid) - math.log(d_i)
        mean = fit["intercept"] + fit["slope"] * x
        se = np.sqrt(np.maximum(fit["cov_intercept"] + x**2 * fit["cov_slope"] + 2 * x * fit["cov_cross"], 0))
        t = stats.t.ppf(1 - alpha / 2, max(fit["df_resid"], 1))
        for g, m, s in zip(grid, mean, se):
            rows.append({**{k: fit[k] for k in keys}, "size": g, "fit": math.exp(m), "lo": math.exp(m - t * s), "hi": math.exp(m + t * s)})
    return pd.DataFrame(rows)


def residuals(metrics: pd.DataFrame, fits: pd.DataFrame, d_i: float, by=("source", "eval_set")) -> pd.DataFrame:
    """Observed vs fitted log values per point, and whether the point was inside the fitted range."""
    metric = fits["metric"].iloc[0]
    table = metrics.assign(value=metric_values(metrics, metric)).merge(fits[[*by, "intercept", "slope", "fit_max_size"]], on=list(by))
    fitted = table["intercept"] + table["slope"] * (np.log(table["size"]) - math.log(d_i))
    return table.assign(
        metric=metric, log_value=np.log(table["value"]), log_fitted=fitted,
        residual=np.log(table["value"]) - fitted, in_fit=table["size"] <= table["fit_max_size"],
    )[[*by, "metric", "size", "value", "log_value", "log_fitted", "residual", "in_fit"]]


def ranking(fits: pd.DataFrame, eval_set: str = "val") -> pd.DataFrame:
    """Sources ranked by k on one eval set, with -log L_{D_I} and the intervals, as a table."""
    cols = ["source", "k", "k_lo", "k_hi", "neg_log_l_di", "neg_log_l_di_lo", "neg_log_l_di_hi", "r2", "bend_size"]
    return fits[fits["eval_set"] == eval_set][cols].sort_values("k", ascending=False).reset_index(drop=True)
