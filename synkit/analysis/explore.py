"""Ask new questions of a finished study in JupyterLab: ipywidgets controls that refit and redraw.

``per_class_explorer(study_dir)`` (06) and ``curves_explorer(study_dir)`` (05) read the study's tables and show
controls beside their views; every change refits what it needs and redraws. The refits are real: k and its interval
on the chosen sizes, metric, eval set and seeds come from ``scaling.fit_table`` (the code 05 and 06 run), and the
categories from ``per_class.categorize``; each source's fits are cached per (eval set, metric, size range, seed), so a
change refits only what it has not fitted before. Intervals here are the analytic ones (no bootstrap: it would make
each redraw slow); 05 and 06 write both.

Widgets need a live kernel with a frontend: in an executed copy (papermill, ``synkit run``) their cell shows one line
saying so, and the kernel-free explorer (``per_class.dashboard``, a Vega-Lite chart) stays the one that works there.
"""

from __future__ import annotations

import html
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from synkit.analysis import charts, per_class, scaling
from synkit.core.files import read_d_i
from synkit.core.layout import StudyFiles
from synkit.core.sources import is_mix

METRICS = ("loss", "error")  # what a power law is fitted to (error: 1 - top-1)
POOLED = "pooled"
LIVE_ONLY = ("Widgets: these controls refit and redraw only with a live kernel (JupyterLab: `make lab`, run this cell); "
             "an executed copy cannot show them, and the explorer above works without one.")


class Refits:
    """Fits of one study's ladder metrics on any eval set, metric, size range and seed, cached per source."""

    def __init__(self, metrics: pd.DataFrame, d_i: float):
        ladder = metrics[(metrics["kind"] == "ladder") & ~is_mix(metrics["source"])]
        self.classes = ladder[ladder["class_index"] >= 0]
        self.overall = metrics[(metrics["kind"] == "ladder") & (metrics["class_index"] == -1)]
        self.d_i = float(d_i)
        self.sizes = sorted(int(s) for s in ladder["size"].unique())
        self.cache: dict[tuple, pd.DataFrame] = {}
        self.fitted = 0  # fits computed (not read from the cache): what a redraw cost

    def rows(self, table: pd.DataFrame, source: str, eval_set: str, size_range: tuple, seed) -> pd.DataFrame:
        lo, hi = size_range
        keep = (table["source"] == source) & (table["eval_set"] == eval_set) & table["size"].between(lo, hi)
        if seed != POOLED:
            keep &= table["seed"] == int(seed)
        return table[keep]

    def class_fits(self, source: str, eval_set: str, metric: str, size_range: tuple, seed=POOLED) -> pd.DataFrame:
        """One row per class of ``source``: the fit on ``size_range`` (sizes inclusive) of ``metric`` on ``eval_set``
        (every seed pooled, or one); a class with fewer than 3 sizes there has NaN k and its reason in ``error``."""
        key = ("class", source, eval_set, metric, tuple(size_range), seed)
        if key not in self.cache:
            rows = self.rows(self.classes, source, eval_set, size_range, seed)
            fits = scaling.fit_table(rows, self.d_i, metric, by=("source", "class_index", "class_name"), n_boot=0,
                                     detect_bend=False, errors="record") if len(rows) else pd.DataFrame()
            self.fitted += len(fits)
            self.cache[key] = fits
        return self.cache[key]

    def study_fit(self, source: str, eval_set: str, metric: str, size_range: tuple, seed=POOLED) -> pd.DataFrame:
        """The whole-study fit of ``source`` (05's curves) on the same choices."""
        key = ("study", source, eval_set, metric, tuple(size_range), seed)
        if key not in self.cache:
            rows = self.rows(self.overall, source, eval_set, size_range, seed)
            fits = scaling.fit_table(rows, self.d_i, metric, by=("source", "eval_set"), n_boot=0, detect_bend=False,
                                     errors="record") if len(rows) else pd.DataFrame()
            self.fitted += len(fits)
            self.cache[key] = fits
        return self.cache[key]

    def categories(self, sources: list[str], eval_set: str, metric: str, size_range: tuple, seed=POOLED,
                   quality: pd.DataFrame | None = None, easy_quantile: float = 2 / 3, k_quantile: float = 0.5) -> pd.DataFrame:
        """06's per-class table (real beside every synthetic source, categories by the quantile rule) on these choices."""
        fits = pd.concat([self.class_fits(s, eval_set, metric, size_range, seed) for s in ["real", *sources]], ignore_index=True)
        if fits.empty or "k" not in fits:
            return pd.DataFrame(columns=["source", "class_index", "class_name", "k", "category"])
        table = per_class.compare_to_real(per_class.join_quality(fits, quality))
        return per_class.categorize(table, easy_quantile, k_quantile)


class StudyTables:
    """What the explorers read from a finished study: its metrics, D_I, quality, configurations and short names."""

    def __init__(self, study_dir: str | Path):
        from synkit.analysis.findings import short_names

        self.at = StudyFiles(study_dir)
        if not self.at.train_metrics.exists():
            raise FileNotFoundError(f"{self.at.train_metrics} does not exist: run the study's 04_train first.")
        self.metrics = pd.read_parquet(self.at.train_metrics)
        self.d_i = read_d_i(self.at.root, int(self.metrics.loc[self.metrics["source"] == "real", "size"].max()))
        self.quality = pd.read_parquet(self.at.quality_per_class) if self.at.quality_per_class.exists() else None
        self.configs = pd.read_parquet(self.at.configs) if self.at.configs.exists() else pd.DataFrame(columns=["config", "manifest"])
        self.names = short_names(self.at.root)
        self.refits = Refits(self.metrics, self.d_i)

    def label(self, source: str) -> str:
        return self.names.get(source, source)

    def sources(self) -> list[str]:
        """The synthetic ladder sources with per-class rows (no mixes)."""
        return sorted(s for s in self.refits.classes["source"].unique() if s != "real")

    def world(self):
        """The study's world (``world_card.study_world``: its parameters, else 04's record beside D_I)."""
        from synkit.analysis.world_card import study_world

        return study_world(self.at.root)


def scatter_chart(table: pd.DataFrame, label: str) -> alt.Chart:
    """k against performance at D_I for one source's classes, with k's interval and the categories."""
    data = table.dropna(subset=["k"]).assign(source=label)
    lo, hi = (float(data["k"].min()), float(data["k"].max())) if len(data) else (0.0, 1.0)
    pad = 0.5 * (hi - lo) + 0.05  # the axis follows the points; intervals wider than it are cut at its ends
    x_scale = alt.Scale(domain=[lo - pad, hi + pad], clamp=True)
    base = alt.Chart(data).encode(y=alt.Y("neg_log_l_di:Q", title="-log L at D_I (performance)"))
    bars = base.mark_rule(opacity=0.5).encode(x=alt.X("k_lo:Q", title="k (scaling ability)", scale=x_scale), x2="k_hi:Q",
                                              color=alt.Color("category:N"))
    dots = base.mark_point(filled=True, size=70).encode(x="k:Q", color="category:N",
                                                          tooltip=["class_name", "category", alt.Tooltip("k:Q", format=".3f"),
                                                                   alt.Tooltip("k_lo:Q", format=".3f"), alt.Tooltip("k_hi:Q", format=".3f")])
    names = base.mark_text(align="left", dx=6, fontSize=10).encode(x="k:Q", text="class_name")
    return (bars + dots + names).properties(width=420, height=300, title=f"{label}: k against performance per class")


def curves_chart(tables: StudyTables, classes: list[str], sources: list[str], eval_set: str, metric: str, size_range: tuple,
                 seed) -> alt.Chart:
    """The chosen classes' points and fitted lines on the chosen range, one panel per class, a color per source."""
    refits = tables.refits
    points, fits = [], []
    for source in sources:
        rows = refits.rows(refits.classes, source, eval_set, size_range, seed)
        rows = rows[rows["class_name"].isin(classes)]
        points.append(rows.assign(metric=metric, value=scaling.metric_values(rows, metric), source=tables.label(source)))
        f = refits.class_fits(source, eval_set, metric, size_range, seed)
        if len(f) and "k" in f:
            fits.append(f[f["class_name"].isin(classes) & f["k"].notna()].assign(source=tables.label(source)))
    fit_table = pd.concat(fits, ignore_index=True) if fits else pd.DataFrame()
    curves = scaling.fit_curves(fit_table[["source", "class_name", "metric", *scaling.FIT_COLUMNS]], refits.d_i) if len(fit_table) \
        else pd.DataFrame(columns=["source", "class_name", "metric", "size", "fit", "lo", "hi"])
    return charts.scaling_curves(pd.concat(points, ignore_index=True), curves, column="class_name", row="metric",
                                 title=f"{metric} on {eval_set}, sizes {size_range[0]}-{size_range[1]}")


def image_strip(tables: StudyTables, images, source: str, class_index: int, per_row: int = 6):
    """Real images of a class beside the generated ones at every CFG scale of the source's prompt set (and generator)."""
    configs = tables.configs
    row = configs[configs["config"] == source]
    same = configs
    if len(row) and "prompt_set" in configs:
        same = configs[configs["prompt_set"] == row["prompt_set"].iloc[0]]
        if "generator" in configs:
            same = same[same["generator"] == row["generator"].iloc[0]]
        same = same.sort_values("guidance_scale")
    rows = [("real", images("real", class_index))]
    rows += [(f"CFG {r.guidance_scale:g}", images(r.config, class_index)) for r in same.itertuples()]
    from synkit.data.worlds.folder import fit_images

    shape = rows[0][1].shape[1:]
    rows = [(name, imgs[:per_row] if imgs.shape[1:] == shape else fit_images(imgs[:per_row], shape)) for name, imgs in rows if len(imgs)]
    stacked = np.concatenate([imgs for _, imgs in rows])
    labels = np.concatenate([np.full(len(imgs), i) for i, (_, imgs) in enumerate(rows)])
    scale = max(1, 84 // stacked.shape[1])
    return charts.image_grid(stacked, labels, [name for name, _ in rows], per_row, scale=scale)


def facts_html(table: pd.DataFrame, classes: list[str], source: str, compare: str, label) -> str:
    """The chosen classes' fits as a small table: category, k with its interval, performance at D_I, on both sources."""
    rows = []
    for name in classes:
        for s in dict.fromkeys([source, compare]):
            r = table[(table["source"] == s) & (table["class_name"] == name)]
            if r.empty:
                continue
            r = r.iloc[0]
            why = str(r.get("error") or "no fit")
            k = f"n/a ({html.escape(why[:80])})" if pd.isna(r["k"]) else f"{r['k']:.4f} [{r['k_lo']:.4f}, {r['k_hi']:.4f}]"
            perf = "" if pd.isna(r["neg_log_l_di"]) else f"{r['neg_log_l_di']:.3f}"
            rows.append(f"<tr data-class='{html.escape(name)}' data-source='{html.escape(s)}'><td>{html.escape(name)}</td>"
                        f"<td>{html.escape(label(s))}</td><td>{html.escape(str(r.get('category') or ''))}</td>"
                        f"<td class='k'>{k}</td><td>{perf}</td></tr>")
    head = "<tr><th>class</th><th>source</th><th>category</th><th>k [95% interval]</th><th>-log L at D_I</th></tr>"
    return f"<table class='synkit-facts'>{head}{''.join(rows)}</table>"


class PerClassExplorer:
    """06's widget explorer: controls (source, compare-to, eval set, metric, classes, size range, category quantiles,
    seed) and views (the k-performance scatter with categories, category counts, the chosen classes' curves and
    fitted lines, and their images at every CFG scale), redrawn on every change."""

    def __init__(self, study_dir: str | Path, classes: list[str] | None = None):
        import ipywidgets as w

        self.tables = t = StudyTables(study_dir)
        sources = t.sources()
        if not sources:
            raise ValueError(f"study {t.at.root} has no synthetic ladder source with per-class metrics; 06's explorer needs one.")
        names = sorted(t.refits.classes["class_name"].unique())
        sizes, seeds = t.refits.sizes, sorted(int(s) for s in t.refits.classes["seed"].unique())
        option = [(t.label(s), s) for s in sources]
        self.source = w.Dropdown(options=option, value=sources[0], description="source")
        self.compare = w.Dropdown(options=[("real", "real"), *option], value="real", description="compare to")
        self.eval_set = w.Dropdown(options=sorted(t.refits.classes["eval_set"].unique()), value="val", description="eval set")
        self.metric = w.ToggleButtons(options=list(METRICS), value="loss", description="metric")
        self.classes = w.TagsInput(value=list(classes or names[:2]), allowed_tags=names, allow_duplicates=False)
        self.sizes = w.SelectionRangeSlider(options=sizes, index=(0, len(sizes) - 1), description="sizes", continuous_update=False)
        self.easy = w.FloatSlider(value=2 / 3, min=0.05, max=0.95, step=0.05, description="easy q", continuous_update=False)
        self.steep = w.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05, description="k q", continuous_update=False)
        self.seed = w.Dropdown(options=[POOLED, *seeds], value=POOLED, description="seeds")
        self.status, self.facts = w.HTML(), w.HTML()
        self.scatter, self.counts, self.curves, self.strip = (w.Output() for _ in range(4))
        self.controls = [self.source, self.compare, self.eval_set, self.metric, self.classes, self.sizes, self.easy, self.steep, self.seed]
        for control in self.controls:
            control.observe(lambda _: self.redraw(), names="value")
        self._images = None
        self.table = pd.DataFrame()
        self.widget = w.VBox([w.HBox([w.VBox(self.controls[:5]), w.VBox(self.controls[5:])]), self.status, self.facts,
                              w.HBox([self.scatter, self.counts]), self.curves, self.strip])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def choices(self) -> dict:
        return {"eval_set": self.eval_set.value, "metric": self.metric.value, "size_range": tuple(self.sizes.value),
                "seed": self.seed.value}

    def redraw(self) -> None:
        """Refit what the controls ask for (cached fits are reused) and draw every view again."""
        import time

        from IPython.display import display

        t0, before = time.perf_counter(), self.tables.refits.fitted
        c, t = self.choices(), self.tables
        self.table = t.refits.categories(t.sources(), quality=t.quality, easy_quantile=self.easy.value, k_quantile=self.steep.value, **c)
        mine = self.table[self.table["source"] == self.source.value]
        for out, view in ((self.scatter, scatter_chart(mine, t.label(self.source.value))),
                          (self.counts, mine["category"].value_counts().rename_axis("category").to_frame("classes")),
                          (self.curves, curves_chart(t, list(self.classes.value), [self.source.value, self.compare.value], **c))):
            out.clear_output(wait=True)
            with out:
                display(view)
        self.facts.value = facts_html(self.table, list(self.classes.value), self.source.value, self.compare.value, t.label)
        self._draw_strip()
        self.status.value = (f"<small>{t.refits.fitted - before} fits refitted, the rest from the cache; "
                             f"{time.perf_counter() - t0:.2f} s</small>")

    def _draw_strip(self) -> None:
        from IPython.display import display

        if self._images is None:
            self._images = per_class.image_sampler(self.tables.world(), self.tables.configs, study_dir=self.tables.at.root)
        index = dict(zip(self.table["class_name"], self.table["class_index"]))
        self.strip.clear_output(wait=True)
        with self.strip:
            for name in list(self.classes.value)[:4]:
                if name in index:
                    grid = image_strip(self.tables, self._images, self.source.value, int(index[name]))
                    print(name)
                    display(grid)


def batch() -> bool:
    """Whether this kernel runs a notebook for ``synkit run`` (an executed copy, no frontend): widgets are not built
    there (their messages to a client that draws nothing once left ``synkit run`` waiting on a finished cell)."""
    from synkit.core import progress

    return progress.reporting()


def per_class_explorer(study_dir: str | Path, classes: list[str] | None = None):
    """06's widget explorer over a finished study, drawn once; returns its widget (display it, or leave it last in a
    cell). Under ``synkit run`` only the line that says widgets need a live kernel."""
    print(LIVE_ONLY)
    if batch():
        return None
    explorer = PerClassExplorer(study_dir, classes)
    explorer.redraw()
    return explorer


class CurvesExplorer:
    """05's widget explorer: sources, eval set, metric and size range; the whole-study curves with their fitted lines,
    and k with its interval per source, refitted on every change."""

    def __init__(self, study_dir: str | Path):
        import ipywidgets as w

        self.tables = t = StudyTables(study_dir)
        sources = sorted(t.refits.overall["source"].unique(), key=lambda s: (s != "real", s))
        sizes = t.refits.sizes
        self.sources = w.SelectMultiple(options=[(t.label(s), s) for s in sources], value=tuple(sources[:3]), description="sources")
        self.eval_set = w.Dropdown(options=sorted(t.refits.overall["eval_set"].unique()), value="val", description="eval set")
        self.metric = w.ToggleButtons(options=list(METRICS), value="loss", description="metric")
        self.sizes = w.SelectionRangeSlider(options=sizes, index=(0, len(sizes) - 1), description="sizes", continuous_update=False)
        self.status, self.facts, self.curves = w.HTML(), w.HTML(), w.Output()
        self.controls = [self.sources, self.eval_set, self.metric, self.sizes]
        for control in self.controls:
            control.observe(lambda _: self.redraw(), names="value")
        self.widget = w.VBox([w.HBox([w.VBox(self.controls[:2]), w.VBox(self.controls[2:])]), self.status, self.facts, self.curves])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def redraw(self) -> None:
        import time

        from IPython.display import display

        t0, before, t = time.perf_counter(), self.tables.refits.fitted, self.tables
        c = {"eval_set": self.eval_set.value, "metric": self.metric.value, "size_range": tuple(self.sizes.value)}
        fits = [t.refits.study_fit(s, **c) for s in self.sources.value]
        fits = pd.concat([f for f in fits if len(f)], ignore_index=True) if any(len(f) for f in fits) else pd.DataFrame()
        rows = t.refits.overall
        rows = rows[rows["source"].isin(self.sources.value) & (rows["eval_set"] == c["eval_set"]) & rows["size"].between(*c["size_range"])]
        points = rows.assign(metric=c["metric"], value=scaling.metric_values(rows, c["metric"]))
        good = fits[fits["k"].notna()] if len(fits) and "k" in fits else pd.DataFrame()
        curves = scaling.fit_curves(good[["source", "eval_set", "metric", *scaling.FIT_COLUMNS]], t.refits.d_i) if len(good) \
            else pd.DataFrame(columns=["source", "eval_set", "metric", "size", "fit", "lo", "hi"])
        label = {"source": lambda f: [t.label(s) for s in f["source"]]}
        self.facts.value = "".join(
            f"<div data-source='{html.escape(r.source)}'>{html.escape(t.label(r.source))}: k = "
            + (f"{r.k:.4f} [{r.k_lo:.4f}, {r.k_hi:.4f}]" if pd.notna(r.k) else f"n/a ({html.escape(str(r.error)[:80])})") + "</div>"
            for r in fits.itertuples()) if len(fits) else "<div>no fit: pick a source</div>"
        self.curves.clear_output(wait=True)
        with self.curves:
            display(charts.scaling_curves(points.assign(**label), curves.assign(**label) if len(curves) else curves,
                                          title=f"{c['metric']} on {c['eval_set']}, sizes {c['size_range'][0]}-{c['size_range'][1]}"))
        self.status.value = f"<small>{t.refits.fitted - before} fits refitted, the rest from the cache; {time.perf_counter() - t0:.2f} s</small>"


def curves_explorer(study_dir: str | Path):
    """05's widget explorer over a finished study, drawn once; returns it (display it, or leave it last in a cell).
    Under ``synkit run`` only the line that says widgets need a live kernel."""
    print(LIVE_ONLY)
    if batch():
        return None
    explorer = CurvesExplorer(study_dir)
    explorer.redraw()
    return explorer
