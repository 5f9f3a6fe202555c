"""Per-class scaling: which classes a text-to-image model can teach, and why.

For every source and class, the paper's power law is fitted to that class's val loss over the
ladder (``scaling.fit_power_law``), giving k (scaling ability) and -log L_{D_I} (performance at
D_I) with intervals. The quality stage's per-class recognizability (F1) and diversity join them.

**Categories** (the paper's Figure 6), for each class of each synthetic source:

- ``Easy``: performance at D_I in the top ``1 - easy_quantile`` of classes;
- ``Scaling``: not Easy, and k at or above the ``k_quantile`` quantile (a steep curve);
- ``Poor``: not Easy, k below that quantile, and performance below the median (flat and low);
- ``Other``: the rest (flat but middling); ``Unfit`` where the fit failed (too few sizes).

Thresholds are quantiles of the distribution of all synthetic (source, class) pairs of the study
(``scope="all"``; ``"source"`` uses each source's own classes), so the rule is free of units
(k and -log L differ across worlds and models), reproducible, and has no random state. A
clustering of 10 points (fashion) would be unstable; quantiles are not. Classes whose synthetic
k beats their real k are flagged (``beats_real``: point estimates; ``beats_real_ci``: the
synthetic interval lies wholly above the real one).

The explorer (``dashboard``) is one Vega-Lite chart with selections: pick a source in its menu,
click a class in the scatter, and it shows the class's curves against real data, its category,
its quality numbers and sample images (carried in the chart as data URLs). It needs no kernel
and no network: the same chart in the notebook, in JupyterLab and in ``dashboard.html``.
"""

from __future__ import annotations

import io
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from synkit.analysis import scaling
from synkit.core.sources import is_mix
from synkit.core.sources import parse as parse_source

CATEGORIES = ("Easy", "Scaling", "Poor", "Other", "Unfit")


def class_fits(metrics: pd.DataFrame, d_i: float, eval_set: str = "val", alpha: float = 0.05, n_boot: int = 500,
               seed: int = 0) -> pd.DataFrame:
    """Per source and class: the power-law fit of the class's loss over sizes up to D_I, every
    seed's point pooled (no bend search: per-class curves are too noisy for it), plus its mean
    loss and top-1 at the smallest and largest sizes and its top-1 at D_I (where trained)."""
    per = metrics[(metrics["class_index"] >= 0) & (metrics["kind"] == "ladder") & (metrics["eval_set"] == eval_set)]
    per = per[~is_mix(per["source"])]  # real + synthetic mixes are 05's question, not a class's
    if per.empty:
        raise ValueError(f"the training metrics have no per-class ladder rows for eval set {eval_set!r}; valid eval sets are "
                         f"{', '.join(sorted(metrics['eval_set'].unique()))}.")
    # sizes up to D_I: the range every source shares, so a class's k compares with its real k
    fits = scaling.fit_table(per, d_i, "loss", by=("source", "class_index", "class_name"), alpha=alpha, n_boot=n_boot,
                             seed=seed, detect_bend=False, errors="record", max_size=d_i)
    per = per.groupby(["source", "class_index", "size"], as_index=False)[["loss", "top1"]].mean()  # mean over seeds
    by = per.sort_values("size").groupby(["source", "class_index"])
    ends = pd.DataFrame({
        "start_size": by["size"].first(), "start_top1": by["top1"].first(), "start_loss": by["loss"].first(),
        "final_size": by["size"].last(), "final_top1": by["top1"].last(), "final_loss": by["loss"].last(),
    }).reset_index()
    at_di = per[per["size"] == d_i][["source", "class_index", "top1"]].rename(columns={"top1": "top1_at_di"})
    return fits.merge(ends, on=["source", "class_index"]).merge(at_di, on=["source", "class_index"], how="left").assign(eval_set=eval_set)


def join_quality(fits: pd.DataFrame, quality: pd.DataFrame | None) -> pd.DataFrame:
    """Add each (config, class)'s recognizability (F1) and diversity from 03_quality's per-class table."""
    if quality is None or quality.empty:
        return fits.assign(recognizability=np.nan, diversity=np.nan)
    q = quality.rename(columns={"config": "source", "f1": "recognizability"})[["source", "class_index", "recognizability", "diversity"]]
    return fits.merge(q, on=["source", "class_index"], how="left")


def compare_to_real(table: pd.DataFrame, real: str = "real") -> pd.DataFrame:
    """Add the class's real k (and interval) and flag synthetic classes that scale better."""
    ref = table[table["source"] == real][["class_index", "k", "k_lo", "k_hi", "k_se", "df_resid", "neg_log_l_di"]]
    ref = ref.rename(columns={"k": "real_k", "k_lo": "real_k_lo", "k_hi": "real_k_hi", "k_se": "real_k_se", "df_resid": "real_df_resid",
                              "neg_log_l_di": "real_neg_log_l_di"})
    out = table.merge(ref, on="class_index", how="left")
    synthetic = out["source"] != real
    out["beats_real"] = synthetic & (out["k"] > out["real_k"])
    out["beats_real_ci"] = synthetic & (out["k_lo"] > out["real_k_hi"])
    return out


def categorize(table: pd.DataFrame, easy_quantile: float = 2 / 3, k_quantile: float = 0.5, scope: str = "all",
               real: str = "real") -> pd.DataFrame:
    """Assign Easy / Scaling / Poor / Other / Unfit to every synthetic (source, class) by the rule in
    the module docstring; the real source's rows get no category."""
    for name, q in (("easy_quantile", easy_quantile), ("k_quantile", k_quantile)):
        if not 0 < q < 1:
            raise ValueError(f"{name}={q!r} is invalid; it must be a quantile strictly between 0 and 1.")
    if scope not in ("all", "source"):
        raise ValueError(f"scope={scope!r} is invalid; valid scopes are all, source.")
    out = table.copy()
    out["category"] = None
    synthetic = (out["source"] != real) & out["k"].notna()
    groups = [out.index[synthetic]] if scope == "all" else [g.index for _, g in out[synthetic].groupby("source")]
    for idx in groups:
        part = out.loc[idx]
        easy_at = part["neg_log_l_di"].quantile(easy_quantile)
        steep_at = part["k"].quantile(k_quantile)
        low_at = part["neg_log_l_di"].median()
        easy = part["neg_log_l_di"] >= easy_at
        steep = part["k"] >= steep_at
        low = part["neg_log_l_di"] < low_at
        out.loc[idx, "category"] = np.select([easy, steep, low], ["Easy", "Scaling", "Poor"], "Other")
        out.loc[idx, "easy_threshold"], out.loc[idx, "k_threshold"], out.loc[idx, "low_threshold"] = easy_at, steep_at, low_at
    out.loc[(out["source"] != real) & out["k"].isna(), "category"] = "Unfit"
    return out


def build_table(metrics: pd.DataFrame, quality: pd.DataFrame | None, d_i: float, eval_set: str = "val",
                easy_quantile: float = 2 / 3, k_quantile: float = 0.5, scope: str = "all", n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """fits + quality + comparison to real + categories: one row per (source, class)."""
    table = join_quality(class_fits(metrics, d_i, eval_set, n_boot=n_boot, seed=seed), quality)
    return categorize(compare_to_real(table), easy_quantile, k_quantile, scope)


def explain(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlations, over synthetic classes, of k and of -log L_{D_I} with recognizability
    and diversity: which quality measure goes with scaling and with performance."""
    syn = table[table["category"].notna() & (table["category"] != "Unfit")]
    rows = []
    for target in ("k", "neg_log_l_di"):
        for measure in ("recognizability", "diversity"):
            pair = syn[[target, measure]].dropna()
            rho = pair[target].corr(pair[measure], method="spearman") if len(pair) > 2 else np.nan
            rows.append({"of": target, "measure": measure, "spearman": rho, "n": len(pair)})
    return pd.DataFrame(rows)


def category_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per source and category: its classes and their mean k, performance and quality."""
    syn = table[table["category"].notna()]
    return (
        syn.groupby(["source", "category"])
        .agg(classes=("class_name", lambda s: ", ".join(s)), n=("class_name", "size"), k=("k", "mean"),
             neg_log_l_di=("neg_log_l_di", "mean"), recognizability=("recognizability", "mean"),
             diversity=("diversity", "mean"), beats_real=("beats_real", "sum"))
        .reset_index()
    )


# ---------------------------------------------------------------- charts


def scatter(table: pd.DataFrame, color: str, title: str | None = None, selection=None) -> alt.Chart:
    """k against performance at D_I, a point per (synthetic source, class), shaped by category and
    colored by ``color`` (diversity, recognizability or final_top1): one panel of Figure 6."""
    syn = table[table["category"].notna() & table["k"].notna()]
    chart = alt.Chart(syn).mark_point(filled=True, size=90).encode(
        x=alt.X("neg_log_l_di:Q", title="-log L at D_I (performance)", scale=alt.Scale(zero=False)),
        y=alt.Y("k:Q", title="k (scaling ability)", scale=alt.Scale(zero=False)),
        color=alt.Color(f"{color}:Q", scale=alt.Scale(scheme="viridis"), title=color),
        shape=alt.Shape("category:N", scale=alt.Scale(domain=list(CATEGORIES))),
        tooltip=["source", "class_name", "category", alt.Tooltip("k:Q", format=".3f"), alt.Tooltip("neg_log_l_di:Q", format=".3f"),
                 alt.Tooltip("recognizability:Q", format=".3f"), alt.Tooltip("diversity:Q", format=".3f"),
                 alt.Tooltip("final_top1:Q", format=".3f"), "beats_real"],
    ).properties(width=260, height=220, title=title or f"colored by {color}")
    if selection is not None:
        chart = chart.add_params(selection).encode(opacity=alt.condition(selection, alt.value(1.0), alt.value(0.25)))
    return chart


def figure6(table: pd.DataFrame) -> alt.HConcatChart:
    """k vs performance at D_I per class, colored in turn by diversity, recognizability and final top-1."""
    return alt.hconcat(*(scatter(table, c) for c in ("diversity", "recognizability", "final_top1"))).resolve_scale(color="independent")


def curve_points(metrics: pd.DataFrame, eval_set: str = "val") -> pd.DataFrame:
    per = metrics[(metrics["class_index"] >= 0) & (metrics["kind"] == "ladder") & (metrics["eval_set"] == eval_set)]
    per = per[~is_mix(per["source"])]  # real + synthetic mixes are 05's question, not a class's
    return per[["source", "class_index", "class_name", "size", "loss", "top1"]].assign(metric="loss", value=per["loss"])


def class_curves(points: pd.DataFrame, table: pd.DataFrame, classes: list[str], sources: list[str], d_i: float) -> alt.FacetChart:
    """Per-class loss against data size, synthetic vs real, for chosen classes (Figure 7)."""
    from synkit.analysis import charts

    keep = points["class_name"].isin(classes) & points["source"].isin(sources)
    fits = table[table["class_name"].isin(classes) & table["source"].isin(sources)].assign(metric="loss")
    curves = scaling.fit_curves(fits[["source", "class_name", "metric", *scaling.FIT_COLUMNS]], d_i)
    return charts.scaling_curves(points[keep], curves, column="class_name", row="metric", title="Per-class val loss vs training images")


def dashboard(table: pd.DataFrame, points: pd.DataFrame, samples: pd.DataFrame | None = None) -> alt.VConcatChart:
    """The explorer, one Vega-Lite chart that needs no kernel and no network (notebook, JupyterLab,
    ``dashboard.html``): choose a synthetic source in the menu, click a class in the scatter, and the
    panels follow: that class's facts (category, k with its interval, quality), its loss curves on the
    source and on real data, and (with ``samples``, from ``sample_table``) real images beside generated ones."""
    sources = sorted(table.loc[table["category"].notna(), "source"].unique())
    first = table[table["category"].notna()].sort_values("class_index")["class_name"].iloc[0]
    pick_source = alt.param(name="source_pick", value=sources[0], bind=alt.binding_select(options=sources, name="synthetic source "))
    # clear=False: a click on empty space keeps the class (an empty selection would show every class at once)
    pick_class = alt.selection_point(name="class_pick", fields=["class_name"], value=[{"class_name": first}], clear=False)
    top = scatter(table, "final_top1", "click a class (menu: source)", pick_class).add_params(pick_source).transform_filter(
        "datum.source == source_pick")
    base = alt.Chart(points).transform_filter(pick_class).transform_filter("datum.source == source_pick || datum.source == 'real'")
    lines = base.mark_line(point=True).encode(
        x=alt.X("size:Q", scale=alt.Scale(type="log"), title="training images D"),
        y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="val loss of the class"),
        color=alt.Color("source:N"), tooltip=["source", "class_name", "size", alt.Tooltip("loss:Q", format=".3f"), alt.Tooltip("top1:Q", format=".3f")],
    ).properties(width=380, height=220, title="the selected class: synthetic vs real")
    cats = alt.Chart(table[table["category"].notna()]).transform_filter("datum.source == source_pick").mark_bar().encode(
        x=alt.X("count():Q", title="classes"), y=alt.Y("category:N", sort=list(CATEGORIES)), color=alt.Color("category:N"),
        tooltip=["category", "count()"],
    ).properties(width=200, height=120, title="categories of this source")
    facts = alt.Chart(class_facts(table)).transform_filter(pick_class).transform_filter("datum.source == source_pick").mark_text(
        align="left", baseline="top", fontSize=12).encode(
        x=alt.value(4), y=alt.Y("line:O", axis=None), text="text:N").properties(width=300, height=120, title="the selected class")
    rows = [alt.hconcat(top, alt.vconcat(cats, facts))]
    if samples is not None and len(samples):
        side = int(samples["side"].max())
        pics = alt.Chart(samples).transform_filter(pick_class).transform_filter(
            "datum.source == source_pick || datum.source == 'real'").transform_calculate(
            row="datum.source == 'real' ? 'real' : 'generated'").mark_image(width=side, height=side).encode(
            x=alt.X("sample:O", axis=None), y=alt.Y("row:N", sort=["real", "generated"], title=None), url="url:N",
        ).properties(width=(side + 6) * int(samples["sample"].max() + 1), height=2 * (side + 10), title="real (top) and generated images")
        rows.append(alt.hconcat(lines, pics))
    else:
        rows.append(lines)
    return alt.vconcat(*rows)


def class_facts(table: pd.DataFrame) -> pd.DataFrame:
    """Lines of text per synthetic (source, class) for the explorer's facts panel."""
    real_k = table[table["source"] == "real"].set_index("class_index")["k"]
    rows = []
    for r in table[table["category"].notna()].itertuples():
        rk = real_k.get(r.class_index, np.nan)
        lines = [f"{r.class_name} on {r.source}: {r.category}",
                 f"k = {r.k:.3f} [{r.k_lo:.3f}, {r.k_hi:.3f}] (real: {'n/a' if pd.isna(rk) else f'{rk:.3f}'})",
                 f"-log L at D_I = {r.neg_log_l_di:.3f}; top-1 at {int(r.final_size)} images = {r.final_top1:.3f}",
                 f"recognizability (F1) = {r.recognizability:.3f}; diversity = {r.diversity:.3f}",
                 "scales better than on real data" if r.beats_real else ""]
        rows += [{"source": r.source, "class_name": r.class_name, "line": i, "text": t} for i, t in enumerate(lines) if t]
    return pd.DataFrame(rows)


def sample_table(table: pd.DataFrame, images, per_class: int = 6, max_classes: int = 100, side: int = 56) -> pd.DataFrame:
    """The explorer's sample images as PNG data URLs (the chart carries them: no files, no server):
    ``per_class`` real ones and generated ones of each synthetic source, for every class when there
    are at most ``max_classes`` (else the Scaling and Poor ones first, up to ``max_classes``).
    ``images(source, class_index)`` is ``image_sampler``'s function."""
    import base64

    from PIL import Image

    syn = table[table["category"].notna()]
    classes = syn.drop_duplicates("class_index").sort_values("class_index")
    if len(classes) > max_classes:
        order = classes.assign(named=classes["class_index"].isin(syn.loc[syn["category"].isin(["Scaling", "Poor"]), "class_index"]))
        classes = order.sort_values(["named", "class_index"], ascending=[False, True]).head(max_classes)
    rows = []
    for c in classes.itertuples():
        for source in ["real", *sorted(syn["source"].unique())]:
            for i, im in enumerate(np.asarray(images(source, int(c.class_index)))[:per_class]):
                buf = io.BytesIO()
                Image.fromarray(im).resize((side, side), Image.NEAREST if im.shape[0] < side else Image.BILINEAR).save(buf, format="png")
                rows.append({"source": source, "class_name": c.class_name, "sample": i, "side": side,
                             "url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()})
    return pd.DataFrame(rows)


def side_by_side(real_images: np.ndarray, synthetic_images: np.ndarray, title: str = "", per_row: int = 8, scale: int = 3):
    """Real images (top row) beside generated ones (bottom row) of one class (Figure 5), a PIL image."""
    from synkit.analysis import charts

    n = min(per_row, len(real_images), len(synthetic_images))
    if real_images.shape[1:] != synthetic_images.shape[1:]:  # e.g. real photos squared to 96 px beside 256 px generations
        from PIL import Image

        side = real_images.shape[1]
        as_rgb = lambda ims: np.stack([np.asarray(Image.fromarray(im).convert("RGB").resize((side, side))) for im in ims[:n]])  # noqa: E731
        real_images, synthetic_images = as_rgb(real_images), as_rgb(synthetic_images)
    images = np.concatenate([real_images[:n], synthetic_images[:n]])
    labels = np.repeat([0, 1], n)
    return charts.image_grid(images, labels, [f"real {title}"[:14], "synthetic"], per_class=n, scale=scale)


# ---------------------------------------------------------------- samples


def image_sampler(world, configs: pd.DataFrame, per_class: int = 8, file_size: int = 96, study_dir: str | Path | None = None):
    """``images(source, class_index)``: the first ``per_class`` real images of the class (``"real"``)
    or generated ones of a configuration, read once per source and cached (real image files are
    read per class and squared to ``file_size``). Manifest paths relative to ``study_dir`` (as
    02_generate stores them) are read from there."""
    from synkit.core.files import from_study
    from synkit.data.shards import read_images

    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    manifests = {c: from_study(m, study_dir) if study_dir else m for c, m in zip(configs["config"], configs["manifest"])}

    def images(source: str, class_index: int) -> np.ndarray:
        if source == "real" and not world.split("real").in_memory:  # image files: read only the class's first ones
            key = f"real|{class_index}"
            if key not in cache:
                from synkit.clip.data import square

                split = world.split("real")
                idx = np.flatnonzero(np.asarray(split.labels) == class_index)[:per_class]
                cache[key] = (np.stack([square(split.image(int(i)), file_size) for i in idx]), np.full(len(idx), class_index))
            return cache[key][0]
        if source not in cache:
            if source == "real":
                split = world.split("real")
                cache[source] = (np.asarray(split.images), np.asarray(split.labels))
            else:
                config = parse_source(source).base
                if config not in manifests:
                    raise ValueError(f"source {source!r} is not a generated configuration; valid ones are {', '.join(sorted(manifests))}.")
                imgs, man = read_images(Path(manifests[config]).parent, per_class=per_class, checksums=False)
                cache[source] = (imgs, man["class_index"].to_numpy())
        imgs, labels = cache[source]
        return imgs[labels == class_index][:per_class]

    return images
