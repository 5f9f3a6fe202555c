"""Altair charts of the study; notebooks only display them."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw


def prompt_counts(table: pd.DataFrame) -> alt.Chart:
    """Distinct prompts per class for each prompt set (a bar per set, log scale)."""
    from synkit.prompts import PROMPT_SETS

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
