"""Altair charts of the study; notebooks only display them."""

from __future__ import annotations

import altair as alt
import pandas as pd


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
