"""05_scaling's tables, written where the study keeps them (``StudyFiles``): the fits (``scaling.study_fits``), each
fit's residuals and the fitted curves the charts draw."""

from __future__ import annotations

import pandas as pd

from synkit.analysis import scaling
from synkit.core.files import write_parquet

METRICS = ("loss", "error")


def write_fits(metrics: pd.DataFrame, d_i: float, at, *, alpha: float = 0.05, n_boot: int = 1000, seed: int = 0,
               detect_bend: bool = True) -> dict[str, pd.DataFrame]:
    """Fit 04's metrics and write every table of ``scaling/``: fits, fits_extended, capacity and mix (a table this
    study does not make is removed, so none lingers from an earlier run), residuals (sizes up to D_I) and curves
    (each ladder's whole-range fit). Returns the tables by name, ``curves`` included."""
    tables = scaling.study_fits(metrics, d_i, alpha=alpha, n_boot=n_boot, seed=seed, detect_bend=detect_bend)
    for name in ("fits", "fits_extended", "capacity", "mix"):
        if name in tables:
            write_parquet(tables[name], at.scaling_table(name))
        else:
            at.scaling_table(name).unlink(missing_ok=True)
    overall = metrics[(metrics["class_index"] == -1) & (metrics["kind"] == "ladder")]
    fits = tables["fits"]
    write_parquet(pd.concat([scaling.residuals(overall, fits[fits["metric"] == m], d_i) for m in METRICS]), at.residuals)
    tables["curves"] = scaling.fit_curves(tables["fits_extended"], d_i, alpha)
    write_parquet(tables["curves"], at.curves)
    return tables


def long_points(overall: pd.DataFrame) -> pd.DataFrame:
    """Every run's point once per metric (loss, error) in one ``value`` column: what the scaling charts draw."""
    return pd.concat([overall.assign(metric=m, value=scaling.metric_values(overall, m)) for m in METRICS])
