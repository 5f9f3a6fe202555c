"""Altair charts of the study; notebooks only display them."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

VEGALITE_MIME = "application/vnd.vegalite.v5+json"


def _offline_renderer(spec: dict, **metadata) -> tuple[dict, dict]:
    """Charts as their Vega-Lite spec alone: JupyterLab 4 draws it with the vega it bundles (no
    network, and it is a safe output, so untrusted and papermill-executed notebooks show it too).
    SVG rather than canvas: the marks stay elements (accessible labels, clickable, testable)."""
    bundle = {VEGALITE_MIME: spec, "text/plain": "<Vega-Lite chart: open the notebook in JupyterLab; a PNG is saved beside it>"}
    return bundle, {VEGALITE_MIME: {"embed_options": {"renderer": "svg", "actions": False}}}


def use_offline_renderer() -> None:
    """Make notebook charts render offline (``_offline_renderer``); altair's default loads vega from a CDN."""
    if "synkit" not in alt.renderers.names():
        alt.renderers.register("synkit", _offline_renderer)
    alt.renderers.enable("synkit")


use_offline_renderer()


def prompt_counts(table: pd.DataFrame) -> alt.Chart:
    """Distinct prompts per class for each prompt set (a bar per set, log scale)."""
    from synkit.data.prompts import PROMPT_SETS

    per_class = table.groupby(["prompt_set", "class_name"])["prompt"].nunique().rename("distinct").reset_index()
    order = [s for s in PROMPT_SETS if s in set(per_class["prompt_set"])]
    base = alt.Chart(per_class).encode(
        y=alt.Y("prompt_set:N", sort=order, title=None),
    )
    bars = base.mark_bar(opacity=0.6).encode(
        x=alt.X("mean(distinct):Q", scale=alt.Scale(type="log"), title="distinct prompts per class (bar: mean; ticks: classes)"),
        tooltip=["prompt_set", alt.Tooltip("mean(distinct):Q", format=".1f")],
    )
    dots = base.mark_tick(color="black").encode(x="distinct:Q", tooltip=["prompt_set", "class_name", "distinct"])
    return (bars + dots).properties(width=420, height=24 * len(order), title="Prompt sets: how many different prompts each class gets")


def image_grid(images: np.ndarray, class_index: np.ndarray, class_names: list[str], per_class: int = 8, scale: int = 2) -> Image.Image:
    """A grid of images: one row per class (its name on the left), ``per_class`` images across."""
    h, w = images.shape[1:3]
    label_w = 90
    grid = Image.new("RGB", (label_w + per_class * w * scale, len(class_names) * h * scale), "white")
    draw = ImageDraw.Draw(grid)
    for row, name in enumerate(class_names):
        draw.text((4, row * h * scale + h * scale // 2 - 5), name[:14], fill="black")
        for col, i in enumerate(np.flatnonzero(class_index == row)[:per_class]):
            tile = Image.fromarray(images[i]).convert("RGB").resize((w * scale, h * scale), Image.Resampling.NEAREST)
            grid.paste(tile, (label_w + col * w * scale, row * h * scale))
    return grid


def quality_tradeoff(summary: pd.DataFrame, performance: str | None = None, performance_title: str = "performance") -> alt.Chart:
    """Recognizability vs diversity, a point per configuration, shaped by prompt set (by ``series``,
    generator and prompt set, when the summary has that column: a study of several generators); colored
    by ``performance`` (a column, e.g. val top-1 of a model trained on the configuration) when given,
    else by CFG scale (the paper's Figure 2)."""
    by, by_title = ("series", "generator: prompt set") if "series" in summary else ("prompt_set", "prompt set")
    if performance:
        color = alt.Color(f"{performance}:Q", scale=alt.Scale(scheme="viridis"), title=performance_title)
    else:
        color = alt.Color("guidance_scale:Q", scale=alt.Scale(type="log", scheme="viridis"), title="CFG")
    base = alt.Chart(summary).encode(
        x=alt.X("diversity:Q", title="diversity (feature std per class)", scale=alt.Scale(zero=False)),
        y=alt.Y("recognizability:Q", title="recognizability (mean per-class F1)", scale=alt.Scale(zero=False)),
    )
    tooltip = ["config", by, "guidance_scale", alt.Tooltip("recognizability:Q", format=".3f"), alt.Tooltip("diversity:Q", format=".3f")]
    if performance:
        tooltip.append(alt.Tooltip(f"{performance}:Q", format=".3f", title=performance_title))
    points = base.mark_point(size=120, filled=True).encode(shape=alt.Shape(f"{by}:N", title=by_title), color=color, tooltip=tooltip)
    labels = base.mark_text(dx=9, dy=-7, fontSize=9).encode(text=alt.Text("guidance_scale:Q", format="g"))
    lines = base.mark_line(opacity=0.4).encode(detail=f"{by}:N", order="guidance_scale:Q")
    return (lines + points + labels).properties(width=420, height=320, title="Recognizability vs diversity of synthetic images (labels: CFG)")


def scaling_curves(points: pd.DataFrame, curves: pd.DataFrame, color: str = "source", title: str = "", column: str = "eval_set",
                   row: str = "metric") -> alt.Chart:
    """Measured values against data size on log-log axes with each fitted power law and its 95%
    band; a column per eval set and a row per metric (the paper's Figures 3 and 4).

    ``points``: color, eval_set, metric, size, value. ``curves``: color, eval_set, metric, size,
    fit, lo, hi (``scaling.fit_curves``)."""
    data = pd.concat([points.assign(layer="point"), curves.assign(layer="fit")], ignore_index=True)
    x = alt.X("size:Q", scale=alt.Scale(type="log", nice=False, padding=12), title="training images D")
    col = alt.Color(f"{color}:N", title=color)
    base = alt.Chart().encode(x=x, color=col)
    # log axes zoomed to the data (nice=False): a "nice" log domain spans whole decades and flattens every curve
    y_scale = alt.Scale(type="log", nice=False, zero=False, padding=8)
    band = base.transform_filter("datum.layer == 'fit'").mark_area(opacity=0.15).encode(
        y=alt.Y("lo:Q", scale=y_scale, title="value (log)"), y2="hi:Q")
    line = base.transform_filter("datum.layer == 'fit'").mark_line().encode(y=alt.Y("fit:Q", scale=y_scale))
    dots = base.transform_filter("datum.layer == 'point'").mark_point(filled=True, size=40, opacity=0.7).encode(
        y=alt.Y("value:Q", scale=y_scale),
        tooltip=[color, column, row, "size", alt.Tooltip("value:Q", format=".4f")])
    layered = alt.layer(band, line, dots, data=data).properties(width=230, height=190)
    return layered.facet(column=alt.Column(f"{column}:N", title=None), row=alt.Row(f"{row}:N", title=None)).resolve_scale(y="independent").properties(title=title)


def k_bars(fits: pd.DataFrame, title: str = "Scaling ability k per source and eval set (95% intervals)") -> alt.Chart:
    """The paper's Figure 1: k of real and every synthetic source, one panel per eval set, with
    intervals. ``fits``: source, eval_set, k, k_lo, k_hi (a loss fit table)."""
    data = fits[["source", "eval_set", "k", "k_lo", "k_hi"]].assign(kind=lambda t: np.where(t["source"] == "real", "real", "synthetic"))
    base = alt.Chart(data).encode(y=alt.Y("source:N", title=None, sort=alt.SortField("k", order="descending")))
    bars = base.mark_bar().encode(x=alt.X("k:Q", title="k: minus the slope of log loss on log D (sizes up to D_I)"),
                                  color=alt.Color("kind:N", scale=alt.Scale(domain=["real", "synthetic"], range=["#d62728", "#1f77b4"]), title=None),
                                  tooltip=["source", "eval_set", alt.Tooltip("k:Q", format=".3f"), alt.Tooltip("k_lo:Q", format=".3f"), alt.Tooltip("k_hi:Q", format=".3f")])
    whiskers = base.mark_rule(color="black").encode(x="k_lo:Q", x2="k_hi:Q")
    return alt.layer(bars, whiskers).properties(width=220, height=24 * data["source"].nunique()).facet(
        column=alt.Column("eval_set:N", title=None)).properties(title=title)
