"""Power-law fits of loss against data size, as the paper writes them:

    log L = -k (log D - log D_I) + log L_{D_I}

``k`` is the scaling ability (how fast loss falls as data grows) and ``-log L_{D_I}`` the
performance at D_I, the size of the real training set. Both come from an ordinary least-squares
fit (statsmodels) of log L on log D - log D_I, with 95% intervals two ways: the analytic
t-interval of OLS, and a residual bootstrap (fitted values plus resampled, df-corrected
residuals; pairs bootstrap degenerates with 5 points).

**Seeds and sizes.** A study trains every (source, size) with several seeds, and each seed draws
its own nested subsets of the data (``synkit.classify.data``), so the seeds are replicates of the data as
well as of the initialization. Points that share a size are not independent: at the top of a ladder
every seed trains on much the same images (at D_I, on all of the real pool), and a size whose draw
or schedule happens to be odd moves every seed's point together. The fit is therefore made on the
mean log value at each size (OLS of the size means): its residuals carry both the seed-to-seed
spread and whatever the sizes share, and the t-interval of k has (sizes - 2) degrees of freedom,
the honest count of independent points when sizes are the clusters (pooling every seed's point
as independent gave intervals too narrow whenever a size's draw was odd). With balanced seeds
the point estimate equals the pooled fit's. ``fit_table`` also fits each seed alone and reports
the spread of those k's (``k_seed_sd``, ``n_seeds``) as a check.

**Is the curve straight?** ``curve_p`` tests a quadratic term in log size on the size means over
every size given, a bend included (a t-test with sizes - 3 degrees of freedom; needs >= 4 sizes):
the size means' own scatter is its
error term, so shared size effects are not mistaken for curvature. ``lof_p`` (the classic
lack-of-fit F-test of size means against the seed-to-seed pure error) is reported beside it, but
it counts every shared size effect as lack of fit, which is why no verdict rests on it.

**Comparisons** (``compare``): the difference of two fits' k (or -log L_{D_I}) with a Welch
t-interval from their standard errors (Welch-Satterthwaite degrees of freedom). Fits on the same
trained models (val and an OOD view) are treated as independent, which overstates the variance of
their difference when they are positively correlated: the test is conservative there.

**Bends.** The law holds over a range and then flattens when the model runs out of capacity
(the paper's ViT-B after ~4M images). ``find_bend`` fits a hinge, a line whose slope may change
at one of the measured sizes, at every size that leaves >= 3 sizes before it and >= 1 after,
on the size means, and keeps the best; an F-test against the straight line, Bonferroni-corrected for the number of
candidate sizes, decides whether the bend is real (p < alpha) and whether it flattens. When it
is, the fit uses the straight range only and reports the bend.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from synkit.core.sources import is_mix

FIT_COLUMNS = [
    "k", "k_lo", "k_hi", "k_boot_lo", "k_boot_hi",
    "neg_log_l_di", "neg_log_l_di_lo", "neg_log_l_di_hi", "neg_log_l_di_boot_lo", "neg_log_l_di_boot_hi",
    "r2", "n_points", "n_fit", "fit_min_size", "fit_max_size", "bend_size", "bend_p", "bend_change",
    "intercept", "slope", "cov_intercept", "cov_slope", "cov_cross", "df_resid",
    "k_se", "neg_log_l_di_se", "n_sizes", "lof_p", "curve", "curve_p", "k_seed_sd", "n_seeds",
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


def size_means(sizes, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct sizes, the mean log value at each, and the number of points there (sizes ascending)."""
    d, y = np.asarray(sizes, float), np.log(np.asarray(values, float))
    distinct, index, counts = np.unique(d, return_inverse=True, return_counts=True)
    return distinct, np.bincount(index, weights=y) / counts, counts


def find_bend(sizes, values, alpha: float = 0.05) -> dict:
    """The size after which log values stop falling along a straight line, if the data say so.

    On the size means (see the module docstring), hinges sit at distinct sizes with >= 3 sizes up
    to the hinge and >= 1 after it. Returns {"bend_size": size or None, "p": corrected p-value or
    None, "change": the slope change at the best hinge (> 0: the curve flattens)}."""
    from scipy import stats

    d, v = _check(sizes, values, "loss")
    distinct, y, _ = size_means(d, v)
    x = np.log(distinct)
    m = len(x)
    none = {"bend_size": None, "p": None, "change": None}
    candidates = list(distinct[2:-1])  # >= 3 sizes up to the hinge, >= 1 after it
    if m < 5 or not candidates:  # a hinge has 3 parameters; the F-test needs >= 2 residual dfs
        return none
    sse0 = float(np.sum(_lstsq_resid(np.column_stack([np.ones(m), x]), y) ** 2))
    best = None
    for size in candidates:
        resid = _hinge_resid(x, y, size)
        sse1 = float(np.sum(resid[0] ** 2))
        if best is None or sse1 < best[1]:
            best = (float(size), sse1, resid[1])
    size, sse1, change = best
    df1 = m - 3
    if sse1 <= 1e-300:
        p = 0.0 if sse0 > 1e-12 else 1.0
    else:
        f = (sse0 - sse1) / (sse1 / df1)
        p = float(stats.f.sf(f, 1, df1))
    p = min(1.0, p * len(candidates))
    if p < alpha and change > 0:  # the slope rises toward zero: the curve flattens
        return {"bend_size": size, "p": p, "change": change}
    return {**none, "p": p, "change": change}


def _lstsq_resid(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return y - X @ coef


def _hinge_resid(x: np.ndarray, y: np.ndarray, at: float) -> tuple[np.ndarray, float]:
    """Residuals of the hinge fit of y on x (log sizes) with a slope change at ``at``, and that change."""
    X = np.column_stack([np.ones(len(x)), x, np.maximum(0.0, x - math.log(at))])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return y - X @ coef, float(coef[2])


def lack_of_fit_p(sizes, values) -> float:
    """p-value of the classic lack-of-fit F-test of a straight line in log-log space, from replicate
    points (seeds) at the same sizes; NaN without replicates or with fewer than 3 distinct sizes.
    Reported only: it counts effects that a size's points share as lack of fit (``curvature``)."""
    from scipy import stats

    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(values, float))
    _, index, counts = np.unique(x, return_inverse=True, return_counts=True)
    m, n = len(counts), len(y)
    if m < 3 or n - m < 1:
        return float("nan")
    ss_pe = float(((y - (np.bincount(index, weights=y) / counts)[index]) ** 2).sum())
    sse = float(np.sum(_lstsq_resid(np.column_stack([np.ones(n), x]), y) ** 2))
    ss_lof = max(sse - ss_pe, 0.0)
    if ss_pe <= 1e-300:
        return 0.0 if ss_lof > 1e-12 else 1.0
    f = (ss_lof / (m - 2)) / (ss_pe / (n - m))
    return float(stats.f.sf(f, m - 2, n - m))


def curvature(sizes, values) -> dict:
    """The quadratic term of log value in (centred) log size on the size means, with its two-sided
    t-test: ``curve`` > 0 bends up (flattens), < 0 bends down; ``curve_p`` NaN with < 4 sizes."""
    distinct, y, _ = size_means(sizes, values)
    if len(distinct) < 4:
        return {"curve": float("nan"), "curve_p": float("nan")}
    from scipy import stats

    x = np.log(distinct)
    x = x - x.mean()
    X = np.column_stack([np.ones(len(x)), x, x * x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    df = len(x) - 3
    s2 = float(np.sum((y - X @ coef) ** 2)) / df
    se = math.sqrt(s2 * np.linalg.inv(X.T @ X)[2, 2])
    p = float(2 * stats.t.sf(abs(coef[2]) / se, df)) if se > 0 else (0.0 if abs(coef[2]) > 1e-12 else 1.0)
    return {"curve": float(coef[2]), "curve_p": p}


def fit_power_law(
    sizes, values, d_i: float, alpha: float = 0.05, n_boot: int = 1000, seed: int = 0, detect_bend: bool = True,
    what: str = "loss",
) -> dict:
    """Fit log L = -k (log D - log D_I) + log L_{D_I} on the size means (module docstring); return
    k, -log L_{D_I}, their analytic and bootstrap (1 - alpha) intervals, R^2, the bend (if any),
    the straightness tests and what is needed to draw the line. ``what`` names the values in errors
    (loss, error, ...)."""
    d, v = _check(sizes, values, what)
    if not d_i > 0:
        raise ValueError(f"D_I={d_i!r} is invalid; it must be the positive size of the real training set.")
    bend = find_bend(d, v, alpha) if detect_bend else {"bend_size": None, "p": None}
    keep = d <= bend["bend_size"] if bend["bend_size"] is not None else np.ones(len(d), bool)
    df, vf = d[keep], v[keep]
    distinct, y, _ = size_means(df, vf)
    x = np.log(distinct) - math.log(d_i)
    res = _ols(x, y)
    (a, b), ci = res.params, res.conf_int(alpha)
    cov = res.cov_params()
    m = len(x)
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    if n_boot > 0:  # residual bootstrap of the size means
        rng = np.random.default_rng(seed)
        resid = res.resid * math.sqrt(m / max(m - 2, 1))
        X = np.column_stack([np.ones(m), x])
        draws = res.fittedvalues[None, :] + rng.choice(resid, size=(n_boot, m), replace=True)
        coefs = np.linalg.lstsq(X, draws.T, rcond=None)[0]  # (2, n_boot)
        a_boot, b_boot = np.percentile(coefs[0], [lo, hi]), np.percentile(coefs[1], [lo, hi])
    else:
        a_boot = b_boot = np.array([np.nan, np.nan])
    return {
        "k": -b, "k_lo": -ci[1][1], "k_hi": -ci[1][0], "k_boot_lo": -b_boot[1], "k_boot_hi": -b_boot[0],
        "neg_log_l_di": -a, "neg_log_l_di_lo": -ci[0][1], "neg_log_l_di_hi": -ci[0][0],
        "neg_log_l_di_boot_lo": -a_boot[1], "neg_log_l_di_boot_hi": -a_boot[0],
        "r2": float(res.rsquared) if np.ptp(y) > 0 else float("nan"), "n_points": int(len(d)), "n_fit": int(len(df)),
        "fit_min_size": float(df.min()), "fit_max_size": float(df.max()),
        "bend_size": bend["bend_size"], "bend_p": bend["p"], "bend_change": bend.get("change"),
        "intercept": a, "slope": b, "cov_intercept": cov[0][0], "cov_slope": cov[1][1], "cov_cross": cov[0][1],
        "df_resid": float(res.df_resid), "k_se": float(math.sqrt(cov[1][1])), "neg_log_l_di_se": float(math.sqrt(cov[0][0])),
        "n_sizes": int(m), "lof_p": lack_of_fit_p(df, vf), **curvature(d, v),  # straightness over every size given
    }


def metric_values(table: pd.DataFrame, metric: str) -> pd.Series:
    """``loss`` or ``error`` (1 - top-1) from a metrics table."""
    if metric == "loss":
        return table["loss"]
    if metric == "error":
        return 1 - table["top1"]
    raise ValueError(f"metric {metric!r} is unknown; valid metrics are loss, error.")


def seed_slopes(sizes, values, seeds) -> np.ndarray:
    """k of each seed's points alone (seeds with >= 3 distinct sizes)."""
    x, y, seeds = np.log(np.asarray(sizes, float)), np.log(np.asarray(values, float)), np.asarray(seeds)
    out = []
    for s in np.unique(seeds):
        mine = seeds == s
        if len(np.unique(x[mine])) >= 3:
            xs = x[mine] - x[mine].mean()
            out.append(-float(xs @ (y[mine] - y[mine].mean()) / (xs @ xs)))
    return np.array(out)


def fit_table(metrics: pd.DataFrame, d_i: float, metric: str = "loss", by=("source", "eval_set"), alpha: float = 0.05,
              n_boot: int = 1000, seed: int = 0, detect_bend: bool = True, errors: str = "raise",
              max_size: float | None = None) -> pd.DataFrame:
    """One fit per group of ``by`` over the ``size`` column (every seed's points pooled when the
    table has a ``seed`` column); ``max_size`` keeps sizes up to it (the common range of a
    comparison); ``errors="record"`` writes a failed group's message into an ``error`` column
    instead of raising (per-class tables)."""
    rows = []
    values = metrics.assign(_value=metric_values(metrics, metric))
    if max_size is not None:
        values = values[values["size"] <= max_size]
    for key, group in values.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        head = dict(zip(by, key), metric=metric)
        try:
            fit = fit_power_law(group["size"], group["_value"], d_i, alpha, n_boot, seed, detect_bend, what=metric)
            if "seed" in group:
                kept = group[group["size"] <= fit["fit_max_size"]]
                ks = seed_slopes(kept["size"], kept["_value"], kept["seed"])
                fit.update(n_seeds=int(group["seed"].nunique()), k_seed_sd=float(np.std(ks, ddof=1)) if len(ks) > 1 else float("nan"))
            else:
                fit.update(n_seeds=1, k_seed_sd=float("nan"))
            rows.append({**head, **fit, "error": None})
        except ValueError as err:
            if errors == "raise":
                raise ValueError(f"{', '.join(f'{k}={v}' for k, v in zip(by, key))}: {err}") from None
            rows.append({**head, **{c: np.nan for c in FIT_COLUMNS}, "error": str(err)})
    return pd.DataFrame(rows)


def compare(a, b, what: str = "k", alpha: float = 0.05) -> dict:
    """``a[what] - b[what]`` for two fits (rows of a fit table) with its Welch (1 - alpha)
    t-interval and the one-sided p-value of "a > b"."""
    se_a, se_b = float(a[f"{what}_se"]), float(b[f"{what}_se"])
    diff = float(a[what]) - float(b[what])
    return welch(diff, se_a, float(a["df_resid"]), se_b, float(b["df_resid"]), alpha)


def welch(diff: float, se_a: float, df_a: float, se_b: float, df_b: float, alpha: float = 0.05) -> dict:
    """A difference with standard errors (and degrees of freedom) of its two parts: the Welch
    (1 - alpha) interval and the one-sided p-value that the difference is > 0."""
    from scipy import stats

    var = se_a**2 + se_b**2
    if not var > 0:
        return {"diff": diff, "lo": diff, "hi": diff, "se": 0.0, "df": float("inf"), "p_greater": 0.0 if diff > 0 else 1.0}
    df = var**2 / ((se_a**4 / max(df_a, 1)) + (se_b**4 / max(df_b, 1))) if se_a + se_b > 0 else float("inf")
    se = math.sqrt(var)
    t = stats.t.ppf(1 - alpha / 2, df)
    return {"diff": diff, "lo": diff - t * se, "hi": diff + t * se, "se": se, "df": float(df), "p_greater": float(stats.t.sf(diff / se, df))}


def mean_difference(a, b, alpha: float = 0.05) -> dict:
    """Mean of ``a`` minus mean of ``b`` (independent samples, e.g. one value per seed) with the
    Welch interval; with a single value on a side that side contributes no variance estimate,
    so the interval is NaN."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        d = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
        return {"diff": d, "lo": float("nan"), "hi": float("nan"), "se": float("nan"), "df": float("nan"), "p_greater": float("nan")}
    return welch(float(a.mean() - b.mean()), float(a.std(ddof=1) / math.sqrt(len(a))), len(a) - 1,
                 float(b.std(ddof=1) / math.sqrt(len(b))), len(b) - 1, alpha)


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


def hinge_change(sizes, values, at: float) -> dict:
    """The change of slope at ``at`` in log-log space (OLS of the mean log value at each size on log D
    and max(0, log D - log at)): > 0 means the curve flattens there. Returns bend_change,
    bend_change_se and df_resid (sizes - 3)."""
    d, v = _check(sizes, values, "loss")
    distinct, y, _ = size_means(d, v)
    x = np.log(distinct)
    X = np.column_stack([x, np.maximum(0.0, x - math.log(at))])
    import statsmodels.api as sm

    res = sm.OLS(y, sm.add_constant(X, has_constant="add")).fit()
    return {"bend_change": float(res.params[2]), "bend_change_se": float(res.bse[2]), "df_resid": float(res.df_resid), "hinge_size": float(at)}


def capacity_table(metrics: pd.DataFrame, d_i: float, source: str, eval_set: str = "val", alpha: float = 0.05,
                   n_boot: int = 1000) -> pd.DataFrame:
    """The capacity test on one source, for the small and the default model: the val-loss fit over
    the whole ladder with the bend search (``span="all"``), the fit over the top three sizes
    (``span="top"``), and (``span="hinge"``) the change of slope of each model at one hinge, the
    small model's bend size (or its best hinge when none is significant), so that the two
    models' flattening at the same size can be compared."""
    over = metrics[(metrics["class_index"] == -1) & (metrics["eval_set"] == eval_set) & (metrics["source"] == source)]
    over = over[over["kind"].isin(["ladder", "capacity"])]
    rows, parts = [], {}
    for model in ("small", "default"):
        part = over[over["model"] == model]
        if part["size"].nunique() < 3:
            raise ValueError(f"the {model} model has {part['size'].nunique()} sizes of {source!r}; the capacity test needs >= 3.")
        parts[model] = part
        top = sorted(part["size"].unique())[-3:]
        for span, rows_of, bend in (("all", part, True), ("top", part[part["size"].isin(top)], False)):
            fit = fit_table(rows_of, d_i, "loss", alpha=alpha, n_boot=n_boot, detect_bend=bend)
            rows.append(fit.assign(model=model, span=span))
    small_all = rows[0].iloc[0]
    hinge = small_all["bend_size"]
    if not (isinstance(hinge, float) and np.isfinite(hinge)):
        distinct, y, _ = size_means(parts["small"]["size"], parts["small"]["loss"])
        if len(distinct) >= 5:  # the small model's best hinge, significant or not
            hinge = min((float(np.sum(_hinge_resid(np.log(distinct), y, h)[0] ** 2)), float(h)) for h in distinct[2:-1])[1]
        else:
            hinge = None
    if hinge is not None:
        for model in ("small", "default"):
            part = parts[model]
            if part["size"].nunique() >= 4:
                rows.append(pd.DataFrame([{"source": source, "eval_set": eval_set, "metric": "loss", "model": model, "span": "hinge",
                                           **hinge_change(part["size"], part["loss"], hinge),
                                           "fit_min_size": float(part["size"].min()), "fit_max_size": float(part["size"].max())}]))
    return pd.concat(rows, ignore_index=True)


def mix_table(metrics: pd.DataFrame, real_fit, d_i: float, eval_set: str = "val", alpha: float = 0.05) -> pd.DataFrame:
    """Real + synthetic mixes against real alone, per real count n (val loss, one value per seed):
    ``gain`` = loss(real n) - loss(mix holding n real images), with its Welch interval, and the
    exchange rate: how many synthetic images do the work of one real image, from the real power
    law (``real_fit``, a fit-table row): the mix's synthetic count over (the real size with the
    mix's loss - n)."""
    over = metrics[(metrics["class_index"] == -1) & (metrics["eval_set"] == eval_set) & (metrics["kind"] == "ladder")]
    real = over[over["source"] == "real"]
    rows = []
    for source, part in over[is_mix(over["source"])].groupby("source"):
        fraction = float(part["real_fraction"].iloc[0])
        for size, group in part.groupby("size"):
            n_real = int(round(size * fraction))
            a = real[real["size"] == n_real]
            if a.empty:
                continue
            t = mean_difference(a.sort_values("seed")["loss"], group.sort_values("seed")["loss"], alpha)
            mix_loss = float(group["loss"].mean())
            d_eq = d_i * math.exp((math.log(mix_loss) - real_fit["intercept"]) / real_fit["slope"]) if real_fit["slope"] < 0 else float("nan")
            rows.append({"source": source, "size": int(size), "real_images": n_real, "synthetic_images": int(size) - n_real,
                         "real_loss": float(a["loss"].mean()), "mix_loss": mix_loss, "gain": t["diff"], "gain_lo": t["lo"],
                         "gain_hi": t["hi"], "gain_se": t["se"], "gain_df": t["df"], "real_equivalent": d_eq,
                         "real_per_synthetic": (d_eq - n_real) / (size - n_real),
                         # synthetic images that do the work of one real image (inf: they add nothing)
                         "exchange_rate": (size - n_real) / (d_eq - n_real) if d_eq > n_real else float("inf"),
                         "extrapolated": bool(d_eq > real["size"].max())})
    return pd.DataFrame(rows)


def crossover(mix: pd.DataFrame, d_i: float, alpha: float = 0.05) -> dict:
    """The real-set size below which adding a mix's synthetic images lowers val loss: the zero of a
    line fitted to the gain (``mix_table``'s, mean over seeds at each real count n) against
    log(n / D_I), with Fieller's (1 - alpha) interval for that zero (unbounded when the slope is not
    separated from 0). Returns n_star, n_lo, n_hi (real images; NaN / inf where undefined), the slope
    with its interval, and the number of real counts used."""
    from scipy import stats

    g = mix.groupby("real_images")["gain"].mean()
    out = {"n_star": float("nan"), "n_lo": float("nan"), "n_hi": float("nan"), "slope": float("nan"), "slope_lo": float("nan"),
           "slope_hi": float("nan"), "counts": int(len(g))}
    if len(g) < 3:
        return out
    x, y = np.log(g.index.to_numpy(float) / d_i), g.to_numpy(float)
    res = _ols(x, y)
    (a, b), ci_b, V = res.params, res.conf_int(alpha)[1], res.cov_params()
    out.update(slope=float(b), slope_lo=float(ci_b[0]), slope_hi=float(ci_b[1]))
    if b >= 0:
        return out  # the gain does not fall as real images grow: no size below which it helps
    t = float(stats.t.ppf(1 - alpha / 2, res.df_resid))
    grow = lambda v: d_i * math.exp(min(v, 700.0))  # noqa: E731  (a line that barely falls puts its zero far away: inf, not an error)
    out["n_star"] = grow(-a / b)
    qa, qb, qc = b * b - t * t * V[1][1], 2 * (a * b - t * t * V[0][1]), a * a - t * t * V[0][0]
    if qa > 0 and qb * qb - 4 * qa * qc >= 0:  # a bounded Fieller interval
        r = math.sqrt(qb * qb - 4 * qa * qc)
        lo, hi = sorted(((-qb - r) / (2 * qa), (-qb + r) / (2 * qa)))
        out.update(n_lo=grow(lo), n_hi=grow(hi))
    else:
        out.update(n_lo=0.0, n_hi=float("inf"))
    return out


def study_fits(metrics: pd.DataFrame, d_i: float, alpha: float = 0.05, n_boot: int = 1000, seed: int = 0,
               detect_bend: bool = True) -> dict[str, pd.DataFrame]:
    """Every table 05_scaling writes under ``scaling/``, from 04's metrics: ``fits`` (each ladder
    source, eval set and metric over sizes up to D_I, the range comparisons use), ``fits_extended``
    (the whole ladder, past D_I, with the bend search), ``capacity`` (small vs default model, when
    trained) and ``mix`` (real + synthetic vs real, when on the ladder)."""
    overall = metrics[(metrics["class_index"] == -1) & (metrics["kind"] == "ladder")]
    out = {
        "fits": pd.concat([fit_table(overall, d_i, m, alpha=alpha, n_boot=n_boot, seed=seed, detect_bend=detect_bend, max_size=d_i)
                           for m in ("loss", "error")], ignore_index=True),
        "fits_extended": pd.concat([fit_table(overall, d_i, m, alpha=alpha, n_boot=n_boot, seed=seed, detect_bend=detect_bend)
                                    for m in ("loss", "error")], ignore_index=True),
    }
    if "model" in metrics and (metrics["model"] == "small").any():
        out["capacity"] = capacity_table(metrics, d_i, metrics.loc[metrics["model"] == "small", "source"].iloc[0], alpha=alpha, n_boot=n_boot)
    fits = out["fits"]
    real = fits[(fits["metric"] == "loss") & (fits["eval_set"] == "val") & (fits["source"] == "real")]
    if len(real) and is_mix(overall["source"]).any():
        out["mix"] = mix_table(metrics, real.iloc[0], d_i, alpha=alpha)
    return out
