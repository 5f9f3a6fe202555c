"""CLIP's tables: zero-shot top-1 by scale and setup (the paper's Table 1), the mixed setup's gain over real, and
the exact-names control."""

from __future__ import annotations

import pandas as pd

from synkit.analysis.scaling import mean_difference


def table1(metrics: pd.DataFrame) -> pd.DataFrame:
    """Zero-shot top-1 by scale and setup (rows) and eval set (columns), with the average (Table 1)."""
    wide = metrics.pivot_table(index=["scale", "setup"], columns="eval_set", values="top1")
    wide["average"] = wide.mean(axis=1)
    return wide


def mixed_gain(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mixed minus real, per scale and eval set, in top-1 points (the paper: largest when data is scarce)."""
    wide = metrics.pivot_table(index=["scale", "eval_set"], columns="setup", values="top1")
    return (wide["mixed"] - wide["real"]).rename("mixed_minus_real").reset_index()


def control_table(metrics: pd.DataFrame, control: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Zero-shot val top-1 at the control's scale: real with exact names against synthetic and
    against real with the usual loose names (Welch intervals over seeds)."""
    n = int(control["scale"].max())
    pick = lambda t, setup: t[(t["setup"] == setup) & (t["scale"] == n) & (t["eval_set"] == "val")].sort_values("seed")["top1"]  # noqa: E731
    exact = pick(control, "real-exact-names")
    rows = []
    for other in ("synthetic", "real"):
        t = mean_difference(exact, pick(metrics, other), alpha)
        rows.append({"test": f"real with exact names - {other}, val top-1 at {n}", "scale": n, "exact_names_top1": float(exact.mean()),
                     "other_top1": float(pick(metrics, other).mean()), "diff": t["diff"], "lo": t["lo"], "hi": t["hi"]})
    return pd.DataFrame(rows)
