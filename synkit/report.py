"""The study report: ``outputs/<study>/report.html``, built only from the files the notebooks wrote.

One self-contained page (vega-embed is inlined from vl-convert, images are base64): the
findings table (each of the paper's findings, this run's numbers, and whether this run agrees),
every chart (interactive, with its PNG), the fits tables, a sample grid per configuration, and
the parameters and library versions. ``findings`` is usable on its own (the notebook records it).
"""

from __future__ import annotations

import base64
import html
import json
import platform
from pathlib import Path

import pandas as pd

# "partly": the point estimates agree but the 95% intervals overlap, or only some sources/views agree
HOLDS, PARTLY, FAILS, UNMEASURED = "holds", "partly", "does not hold here", "not measured"


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def _verdict(ok: bool) -> str:
    return HOLDS if ok else FAILS


def findings(study_dir: str | Path) -> pd.DataFrame:
    """The paper's eight findings checked against this run: finding, paper, measured, verdict."""
    d = Path(study_dir)
    fits = _read(d / "scaling" / "fits.parquet")
    quality = _read(d / "scaling" / "quality_performance.parquet")
    per_class = _read(d / "per_class" / "classes.parquet")
    clip_metrics = _read(d / "clip" / "metrics.parquet")
    train_metrics = _read(d / "train" / "metrics.parquet")
    rows = []

    def add(n, finding, paper, measured, verdict):
        rows.append({"#": n, "finding": finding, "paper": paper, "this run": measured, "verdict": verdict})

    loss = fits[fits["metric"] == "loss"] if fits is not None else None
    val = loss[loss["eval_set"] == "val"].set_index("source") if loss is not None else None
    synth = [s for s in val.index if s != "real"] if val is not None else []

    # (1) power law
    if val is not None and synth:
        ok = [s for s in synth if val.loc[s, "r2"] >= 0.8 and val.loc[s, "k_lo"] > 0]
        text = "; ".join(f"{s}: k={val.loc[s, 'k']:.3f} [{val.loc[s, 'k_lo']:.3f}, {val.loc[s, 'k_hi']:.3f}], R²={val.loc[s, 'r2']:.2f}" for s in synth)
        add(1, "Synthetic-data loss follows a power law over the ladder", "log-linear from 0.125M to ~4M images (ViT-B)", text,
            HOLDS if len(ok) == len(synth) else PARTLY if ok else FAILS)
    else:
        add(1, "Synthetic-data loss follows a power law over the ladder", "log-linear to ~4M images", "no synthetic fits", UNMEASURED)

    # (2) real scales better in-domain
    if val is not None and "real" in val.index and synth:
        best = max(synth, key=lambda s: val.loc[s, "k"])
        r = val.loc["real"]
        add(2, "Real data scales better than synthetic in-domain", "real k above every synthetic k on ImageNet val",
            f"real k={r['k']:.3f} [{r['k_lo']:.3f}, {r['k_hi']:.3f}]; best synthetic {best} k={val.loc[best, 'k']:.3f} "
            f"[{val.loc[best, 'k_lo']:.3f}, {val.loc[best, 'k_hi']:.3f}]",
            HOLDS if r["k_lo"] > val.loc[best, "k_hi"] else PARTLY if r["k"] > val.loc[best, "k"] else FAILS)
    else:
        add(2, "Real data scales better than synthetic in-domain", "real k above synthetic k", "no real or synthetic fit", UNMEASURED)

    # (3) CFG trade-off, best in between
    if quality is not None and quality["guidance_scale"].nunique() >= 3:
        parts, rec_up, div_down, interior = [], 0, 0, 0
        sets = sorted(quality["prompt_set"].unique())
        for ps in sets:
            q = quality[quality["prompt_set"] == ps].sort_values("guidance_scale")
            r_rho = q["guidance_scale"].corr(q["recognizability"], method="spearman")
            d_rho = q["guidance_scale"].corr(q["diversity"], method="spearman")
            rec_up += r_rho > 0
            div_down += d_rho < 0
            best_txt = ""
            if "val_top1" in q and q["val_top1"].notna().all():
                best = q.loc[q["val_top1"].idxmax(), "guidance_scale"]
                inside = q["guidance_scale"].min() < best < q["guidance_scale"].max()
                interior += inside
                best_txt = f", best top-1 at CFG {best:g}"
            parts.append(f"{ps}: ρ(CFG, F1)={r_rho:+.2f}, ρ(CFG, diversity)={d_rho:+.2f}{best_txt}")
        tradeoff = rec_up == len(sets) and div_down == len(sets)
        verdict = HOLDS if tradeoff and interior == len(sets) else PARTLY if tradeoff or interior else FAILS
        add(3, "Higher CFG raises recognizability and lowers diversity; the best performance lies between the extremes",
            "a trade-off; best CFG below the default (SD 1.5-10)", "; ".join(parts), verdict)
    else:
        add(3, "CFG trades recognizability for diversity; the best lies between", "trade-off", "fewer than 3 CFG scales", UNMEASURED)

    # (4) diverse prompts scale better than class names
    if val is not None and synth:
        names = [s for s in synth if "classnames-" in s]
        diverse = [s for s in synth if s not in names]
        if names and diverse:
            best = max(diverse, key=lambda s: val.loc[s, "k"])
            add(4, "More diverse prompts (captions, templates) scale better than class names", "captions/templates k > class names k",
                f"best diverse {best} k={val.loc[best, 'k']:.3f}; " + ", ".join(f"{s} k={val.loc[s, 'k']:.3f}" for s in names),
                HOLDS if all(val.loc[best, "k_lo"] > val.loc[s, "k_hi"] for s in names)
                else PARTLY if all(val.loc[best, "k"] > val.loc[s, "k"] for s in names) else FAILS)
        else:
            add(4, "More diverse prompts scale better than class names", "captions/templates k > class names k", "the ladder lacks one of the two kinds", UNMEASURED)
    else:
        add(4, "More diverse prompts scale better than class names", "", "no fits", UNMEASURED)

    # (5) gap smaller OOD
    if loss is not None and "real" in set(loss["source"]) and synth:
        best = max(synth, key=lambda s: val.loc[s, "neg_log_l_di"])
        perf = loss.pivot_table(index="eval_set", columns="source", values="neg_log_l_di")
        gap = perf["real"] - perf[best]
        oods = [e for e in gap.index if e != "val"]
        text = f"gap in -log L at D_I (real - {best}): val {gap['val']:.3f}; " + ", ".join(f"{e} {gap[e]:.3f}" for e in oods)
        smaller = [e for e in oods if gap[e] < gap["val"]]
        add(5, "The synthetic-real gap is smaller on OOD views than in-domain", "smaller gap on ImageNet-Sketch/-R",
            text, HOLDS if len(smaller) == len(oods) and oods else PARTLY if smaller else FAILS)
    else:
        add(5, "The synthetic-real gap is smaller on OOD views", "", "no fits", UNMEASURED)

    # (6) classes scaling better on synthetic data
    if per_class is not None and "beats_real" in per_class:
        beats = per_class[per_class["beats_real"]]
        add(6, "Some classes scale better on synthetic than on real data", "some classes' synthetic k exceeds real k",
            f"{len(beats)} (source, class) pairs: " + ", ".join(f"{r.class_name} on {r.source} ({r.k:.3f} vs {r.real_k:.3f})" for r in beats.itertuples())
            + f"; with non-overlapping intervals: {int(per_class['beats_real_ci'].sum())}",
            HOLDS if per_class["beats_real_ci"].any() else PARTLY if len(beats) else FAILS)
    else:
        add(6, "Some classes scale better on synthetic data", "", "no per-class table", UNMEASURED)

    # (7) CLIP mixed beats real at small scales; (8) CLIP gap smaller than supervised
    if clip_metrics is not None and {"real", "mixed"} <= set(clip_metrics["setup"]):
        cv = clip_metrics[clip_metrics["eval_set"] == "val"].pivot_table(index="scale", columns="setup", values="top1")
        small = cv.index.min()
        add(7, "CLIP: mixing synthetic with real images beats real alone at small scales", "largest gain at small scales (Table 1)",
            "mixed - real val top-1 by scale: " + ", ".join(f"{n}: {cv.loc[n, 'mixed'] - cv.loc[n, 'real']:+.3f}" for n in cv.index),
            _verdict(cv.loc[small, "mixed"] > cv.loc[small, "real"]))
        if "synthetic" in cv and train_metrics is not None and synth:
            top = cv.index.max()
            clip_gap = (cv.loc[top, "real"] - cv.loc[top, "synthetic"]) / cv.loc[top, "real"]
            sup = train_metrics[(train_metrics["class_index"] == -1) & (train_metrics["eval_set"] == "val") & (train_metrics["kind"] == "ladder")]
            d_i = sup.loc[sup["source"] == "real", "size"].max()
            at = sup[sup["size"] == d_i].set_index("source")["top1"]
            best = max((s for s in synth if s in at.index), key=lambda s: at[s], default=None)
            if best is not None:
                sup_gap = (at["real"] - at[best]) / at["real"]
                add(8, "CLIP: the synthetic-real gap is smaller than in supervised training", "synthetic nearly matches real for CLIP",
                    f"relative top-1 gap: CLIP {clip_gap:+.3f} at {top} captions; supervised {sup_gap:+.3f} ({best} at D_I={d_i})",
                    _verdict(clip_gap < sup_gap))
            else:
                add(8, "CLIP: the gap is smaller than in supervised training", "", "no synthetic run at D_I", UNMEASURED)
        else:
            add(8, "CLIP: the gap is smaller than in supervised training", "", "no synthetic CLIP setup or no supervised runs", UNMEASURED)
    else:
        add(7, "CLIP: mixed beats real at small scales", "", "no CLIP runs", UNMEASURED)
        add(8, "CLIP: the gap is smaller than in supervised training", "", "no CLIP runs", UNMEASURED)
    return pd.DataFrame(rows)


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("synkit", "torch", "torchvision", "timm", "open_clip_torch", "diffusers", "transformers", "accelerate",
                "statsmodels", "altair", "papermill", "webdataset"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


CHARTS = [  # (section, title, file stem under the study folder)
    ("Prompts", "Distinct prompts per class", "prompts/prompt_counts"),
    ("Quality", "Recognizability vs diversity (Figure 2)", "quality/tradeoff"),
    ("Quality", "The trade-off colored by performance", "scaling/tradeoff_performance"),
    ("Scaling", "Val loss vs data size (Figure 3)", "scaling/loss_val"),
    ("Scaling", "Every eval set, loss and top-1 error (Figure 4)", "scaling/ood"),
    ("Per class", "k vs performance per class (Figure 6)", "per_class/figure6"),
    ("Per class", "Per-class curves (Figure 7)", "per_class/figure7"),
    ("Per class", "Explorer: pick a source, click a class", "per_class/dashboard"),
    ("CLIP", "Zero-shot vs captions (Figure 8)", "clip/figure8"),
]


def _img(path: Path, width: int | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    style = f' style="max-width:{width}px"' if width else ""
    return f'<img src="data:image/png;base64,{data}"{style} alt="{html.escape(path.name)}">'


def _table(df: pd.DataFrame | None, cls: str = "") -> str:
    if df is None or df.empty:
        return "<p><i>not produced by this run</i></p>"
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", classes=cls, border=0)


def build(study_dir: str | Path, params: dict | None = None) -> Path:
    """Write ``report.html`` into ``study_dir`` (via a temporary file and a rename); return its path."""
    import vl_convert as vlc

    from synkit.files import atomic_path

    d = Path(study_dir)
    found = findings(d)
    specs, sections = [], []
    for i, (section, title, stem) in enumerate(CHARTS):
        spec_path = (d / stem).with_suffix(".json")
        png = (d / stem).with_suffix(".png")
        if not spec_path.exists():
            continue
        specs.append((f"chart{i}", json.loads(spec_path.read_text())))
        png_html = f"<details><summary>PNG</summary>{_img(png, 900)}</details>" if png.exists() else ""
        sections.append((section, f'<h3>{html.escape(title)}</h3><div class="chart" id="chart{i}"></div>{png_html}'))
    grids = sorted((d / "synthetic").glob("*/grid.png"))
    grid_html = "".join(f"<figure>{_img(g, 420)}<figcaption>{html.escape(g.parent.name)}</figcaption></figure>" for g in grids)
    fig5 = "".join(f"<figure>{_img(g, 420)}<figcaption>{html.escape(g.stem)}</figcaption></figure>" for g in sorted((d / "per_class").glob("figure5_*.png")))
    fits = _read(d / "scaling" / "fits.parquet")
    fit_cols = ["source", "eval_set", "metric", "k", "k_lo", "k_hi", "k_boot_lo", "k_boot_hi", "neg_log_l_di", "neg_log_l_di_lo", "neg_log_l_di_hi", "r2", "bend_size"]
    clip_t1 = _read(d / "clip" / "table1.parquet")
    clip_fits = _read(d / "clip" / "fits.parquet")
    cats = _read(d / "per_class" / "categories.parquet")
    quality = _read(d / "quality" / "summary.parquet")
    verdict_cls = {HOLDS: "ok", PARTLY: "partly", FAILS: "no", UNMEASURED: "na"}
    rows = "".join(
        f'<tr class="{verdict_cls[r["verdict"]]}"><td>{r["#"]}</td><td>{html.escape(r["finding"])}</td><td>{html.escape(r["paper"])}</td>'
        f'<td>{html.escape(r["this run"])}</td><td><b>{html.escape(r["verdict"])}</b></td></tr>'
        for r in found.to_dict("records")
    )
    by_section: dict[str, list[str]] = {}
    for section, block in sections:
        by_section.setdefault(section, []).append(block)
    chart_html = "".join(f"<h2>{s}</h2>{''.join(blocks)}" for s, blocks in by_section.items())
    bundle = vlc.javascript_bundle()
    safe = {cid: json.dumps(spec).replace("</", "<\\/") for cid, spec in specs}  # no "</script>" inside the script
    embed = "".join(f"vegaEmbed('#{cid}', {safe[cid]}, {{actions: false}}).catch(e => console.error(e));\n" for cid, _ in specs)
    params_html = html.escape(json.dumps(params or {}, indent=2, default=str))
    ver = "".join(f"<tr><td>{k}</td><td>{html.escape(v)}</td></tr>" for k, v in versions().items())
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>synkit report: {html.escape(d.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }}
tr.ok td:last-child {{ color: #176f2c; }} tr.partly td:last-child {{ color: #9a6700; }} tr.no td:last-child {{ color: #b3261e; }}
figure {{ display: inline-block; margin: 6px; }} .chart {{ margin: 0.5em 0; }}
</style></head><body>
<h1>synkit report: study <code>{html.escape(d.name)}</code></h1>
<p>Everything here is read from the files under <code>{html.escape(str(d))}</code>; the verdicts describe this run, not the paper.</p>
<h2>Findings</h2>
<table id="findings"><tr><th>#</th><th>finding</th><th>paper</th><th>this run</th><th>verdict</th></tr>{rows}</table>
<h2>Fits (supervised)</h2>{_table(fits[fit_cols] if fits is not None else None)}
<h2>Per-class categories</h2>{_table(cats)}
<h2>Quality</h2>{_table(quality)}
<h2>CLIP: Table 1 (zero-shot top-1)</h2>{_table(clip_t1)}
<h2>CLIP fits</h2>{_table(clip_fits[["source", "eval_set", "metric", "k", "k_lo", "k_hi", "r2"]] if clip_fits is not None else None)}
{chart_html}
<h2>Samples per configuration</h2>{grid_html or "<p><i>no grids</i></p>"}
<h2>Real beside generated (Figure 5)</h2>{fig5 or "<p><i>none</i></p>"}
<h2>Parameters</h2><pre>{params_html}</pre>
<h2>Versions</h2><table>{ver}</table>
<script>{bundle}</script>
<script>{embed}</script>
</body></html>
"""
    out = d / "report.html"
    tmp = atomic_path(out)
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
