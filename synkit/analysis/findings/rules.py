"""The verdict rules and the tests they rest on, with the formatting every row shares.

- **holds**: the interval of the tested quantity lies wholly on the paper's side of zero (or the
  stated test rejects "no effect" in the paper's direction at 5%);
- **does not hold here**: the interval lies wholly on the *opposite* side (or the test rejects in the
  opposite direction); a point estimate on the wrong side is not enough;
- **inconclusive**: everything between: the data cannot separate the effect from noise;
- **not measured**: this study cannot test it, or a gate it rests on failed (the reason is given).

No row uses an equivalence margin: "no effect here" would need a margin fixed before the data,
and none of the paper's claims states one, so an interval around zero is inconclusive.

A row made of m parts (prompt sets, families, views) tests each part at the Bonferroni level 0.05/m:
it *does not hold* when any part is separated the wrong way, and *holds* when every part holds, so
under no effect each verdict stays at or below 5% whatever m is (``tests/test_verdicts.py``
simulates it).
"""

from __future__ import annotations

import math

import numpy as np

HOLDS, INCONCLUSIVE, FAILS, UNMEASURED = "holds", "inconclusive", "does not hold here", "not measured"
VERDICTS = (HOLDS, INCONCLUSIVE, FAILS, UNMEASURED)
ALPHA = 0.05
N_PERM = 5000  # permutation tests' shuffles (p-values resolve to 1 / (N_PERM + 1))


def directional(test: dict) -> str:
    """The verdict of a claim "quantity > 0" from its estimate and interval (``diff``, ``lo``, ``hi``)."""
    diff, lo, hi = (_num(test.get(k)) for k in ("diff", "lo", "hi"))
    if not np.isfinite(diff):
        return UNMEASURED
    if np.isfinite(lo) and lo > 0:
        return HOLDS
    if np.isfinite(hi) and hi < 0:
        return FAILS
    return INCONCLUSIVE


def by_p(p_paper: float, p_opposite: float, alpha: float = ALPHA) -> str:
    """The verdict of a one-sided test each way (a permutation test's two tails)."""
    if not (np.isfinite(p_paper) and np.isfinite(p_opposite)):
        return UNMEASURED
    if p_paper < alpha:
        return HOLDS
    return FAILS if p_opposite < alpha else INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """Parts together (each tested at the Bonferroni level): any *does not hold* -> does not hold;
    all *hold* -> holds; all *not measured* -> not measured; else inconclusive."""
    measured = [v for v in verdicts if v != UNMEASURED]
    if not measured:
        return UNMEASURED
    if FAILS in measured:
        return FAILS
    return HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE


def power_law_verdict(fit, alpha: float = ALPHA) -> str:
    """Rule 1 for one fit (a row of a fit table): *does not hold* when the loss rises with data (k's
    interval below 0) or the quadratic term in log size is significant at alpha / 2 (``curve_p``:
    not a straight line in log-log space; the two ways to fail share alpha, so a flat or a straight
    curve fails at most about alpha of the time); *holds* when k's interval is above 0 and the line
    is not rejected; else inconclusive. k's interval is read at ``alpha`` (the row's Bonferroni level)."""
    k = _num(None if fit is None else fit.get("k"))
    if fit is None or not np.isfinite(k):
        return UNMEASURED
    lo, hi = interval(fit["k"], fit["k_se"], fit["df_resid"], alpha)
    curve_p = _num(fit.get("curve_p"))
    if hi < 0 or (np.isfinite(curve_p) and curve_p < alpha / 2):
        return FAILS
    return HOLDS if lo > 0 else INCONCLUSIVE


def interval(value: float, se: float, df: float, alpha: float = ALPHA) -> tuple[float, float]:
    """value -/+ t(1 - alpha/2, df) se."""
    from scipy import stats

    if not (np.isfinite(se) and df > 0):
        return float("nan"), float("nan")
    t = float(stats.t.ppf(1 - alpha / 2, df))
    return value - t * se, value + t * se


def at_level(test: dict, alpha: float) -> dict:
    """A test with its interval recomputed at ``alpha`` (from its se and df)."""
    lo, hi = interval(test["diff"], _num(test.get("se")), _num(test.get("df")), alpha)
    return {**test, "lo": lo, "hi": hi}


def paired(diff, alpha: float = ALPHA) -> dict:
    """Mean of paired differences with its t-interval."""
    diff = np.asarray(diff, float)
    diff = diff[np.isfinite(diff)]
    if len(diff) < 2:
        return {"diff": float(diff.mean()) if len(diff) else float("nan"), "lo": float("nan"), "hi": float("nan"),
                "se": float("nan"), "df": float("nan")}
    m, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))
    lo, hi = interval(m, se, len(diff) - 1, alpha)
    return {"diff": m, "lo": lo, "hi": hi, "se": se, "df": float(len(diff) - 1)}


def line(x, y, alpha: float = ALPHA) -> dict:
    """OLS of y on x over points that are each a mean of one unit (a size, a scale, a real count):
    the residual variance then carries whatever the unit's replicates share, as the size-means fits
    do. Returns the coefficients, their covariance and the residual degrees of freedom."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    X = np.column_stack([np.ones(len(x)), x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    df = len(x) - 2
    s2 = float(np.sum((y - X @ coef) ** 2)) / df if df > 0 else float("nan")
    return {"coef": coef, "cov": s2 * np.linalg.inv(X.T @ X) if df > 0 else np.full((2, 2), np.nan), "df": float(df), "alpha": alpha}


def line_value(fit: dict, at: float, alpha: float | None = None) -> dict:
    """The fitted value of ``line`` at x = ``at`` with its t-interval."""
    grad = np.array([1.0, at])
    value, se = float(grad @ fit["coef"]), math.sqrt(max(float(grad @ fit["cov"] @ grad), 0.0)) if np.isfinite(fit["cov"]).all() else float("nan")
    lo, hi = interval(value, se, fit["df"], alpha or fit["alpha"])
    return {"diff": value, "lo": lo, "hi": hi, "se": se, "df": fit["df"]}


def line_slope(fit: dict, alpha: float | None = None) -> dict:
    """The slope of ``line`` with its t-interval."""
    value, se = float(fit["coef"][1]), math.sqrt(fit["cov"][1][1]) if np.isfinite(fit["cov"][1][1]) else float("nan")
    lo, hi = interval(value, se, fit["df"], alpha or fit["alpha"])
    return {"diff": value, "lo": lo, "hi": hi, "se": se, "df": fit["df"]}


def negate(test: dict) -> dict:
    """The test of "-quantity > 0"."""
    return {**test, "diff": -test["diff"], "lo": -test["hi"], "hi": -test["lo"]}


def permutation(x, y, stat: str, n_perm: int | None = None, seed: int = 0) -> dict:
    """A statistic of x and y and its one-sided permutation p-values both ways (y shuffled against x):
    ``p_greater`` (larger than under no association) and ``p_less``. ``stat``: ``"spearman"`` (rank
    correlation) or ``"mean_gap"`` (mean of y where x is 0 minus where x is 1)."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    nan = {"diff": float("nan"), "p_greater": float("nan"), "p_less": float("nan"), "n": int(len(x))}
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan
    rng = np.random.default_rng(seed)
    if stat == "spearman":
        x, y = rankdata(x), rankdata(y)
        x = (x - x.mean()) / np.linalg.norm(x - x.mean())
        y = (y - y.mean()) / np.linalg.norm(y - y.mean())
        weights = x  # Pearson of the ranks: a dot product once both are centred and scaled
    elif stat == "mean_gap":
        weights = np.where(x == 0, 1 / max((x == 0).sum(), 1), -1 / max((x == 1).sum(), 1))
    else:
        raise ValueError(f"stat={stat!r} is unknown; valid statistics are spearman, mean_gap.")
    observed = float(weights @ y)
    null = rng.permuted(np.tile(y, (n_perm or N_PERM, 1)), axis=1) @ weights
    n = len(null)
    return {"diff": observed, "p_greater": float((1 + np.sum(null >= observed - 1e-12)) / (n + 1)),
            "p_less": float((1 + np.sum(null <= observed + 1e-12)) / (n + 1)), "n": int(len(x))}


def holm(p_values: list[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected at family-wise level ``alpha``."""
    order = np.argsort(p_values)
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if not p_values[i] < alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


# ---------------------------------------------------------------- formatting


def fmt(value: float, lo: float | None = None, hi: float | None = None, digits: int | None = None) -> str:
    """A number rounded to what its interval supports: two significant digits of the half-width."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        half = (hi - lo) / 2
        d = max(0, min(4, 1 - math.floor(math.log10(half)))) if digits is None else digits
        return f"{value:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"
    d = 3 if digits is None else digits
    return f"{value:.{d}f}"


def fmt_k(fit) -> str:
    """A fit's k with its interval (a row of a fit table)."""
    return fmt(fit["k"], fit["k_lo"], fit["k_hi"])


def fmt_test(test: dict, digits: int | None = None) -> str:
    return fmt(test["diff"], test.get("lo"), test.get("hi"), digits)


def p_text(p: float) -> str:
    return "n/a" if p is None or not np.isfinite(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")


def _num(value) -> float:
    try:
        return float("nan") if value is None else float(value)
    except (TypeError, ValueError):
        return float("nan")
