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

from synkit.core.layout import StudyFiles
from synkit.analysis.findings import FAILS, HOLDS, INCONCLUSIVE, UNMEASURED, findings, gates  # noqa: F401  (findings, gates: the report's tables)


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


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


CHARTS = [  # (section, title, the chart's name in synkit.core.layout.StudyFiles)
    ("Headline", "Scaling ability k of real and synthetic images per eval set (Figure 1)", "figure1_chart"),
    ("Prompts", "Distinct prompts per class", "prompt_counts_chart"),
    ("Quality", "Recognizability vs diversity (Figure 2)", "tradeoff_chart"),
    ("Quality", "The trade-off colored by performance", "tradeoff_performance_chart"),
    ("Scaling", "Val loss vs data size (Figure 3)", "loss_val_chart"),
    ("Scaling", "Every eval set, loss and top-1 error (Figure 4)", "ood_chart"),
    ("Scaling", "A small model against the default one on the same ladder (Sec. 4.4)", "capacity_chart"),
    ("Per class", "k vs performance per class (Figure 6)", "figure6_chart"),
    ("Per class", "Per-class curves (Figure 7)", "figure7_chart"),
    ("Per class", "Explorer: pick a source, click a class", "dashboard_chart"),
    ("CLIP", "Zero-shot vs captions (Figure 8)", "figure8_chart"),
]


def _img(path: Path, width: int | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    style = f' style="max-width:{width}px"' if width else ""
    return f'<img src="data:image/png;base64,{data}"{style} alt="{html.escape(path.name)}">'


def _table(df: pd.DataFrame | None, cls: str = "", names: dict | None = None) -> str:
    """An HTML table: short source labels, three significant digits, empty cells for missing values."""
    from synkit.analysis.findings import label

    if df is None or df.empty:
        return "<p><i>not produced by this run</i></p>"
    df = df.copy()
    for col in ("source", "config"):
        if col in df and names is not None:
            df[col] = [label(str(v), names) for v in df[col]]
    df = df.astype(object).where(df.notna(), "")
    return df.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="", classes=cls, border=0)


def stages(study_dir: str | Path, params: dict | None = None) -> pd.DataFrame:
    """Each notebook of the study (from ``parameters.json``, else those found) and its state, from
    ``notebooks/``: finished, failed, interrupted, running or not run (08 itself counts as running)."""
    at = StudyFiles(study_dir)
    rows = []
    for stem in list((params or {}).get("notebooks", {})) or at.executed_stems():
        found = [s for s in ("failed", "interrupted", "running", "") if at.executed(stem, s).exists()]
        rows.append({"notebook": stem, "state": (found[0] or "finished") if found else "not run"})
    return pd.DataFrame(rows, columns=["notebook", "state"])


def card_section(study_dir: Path, card: tuple[pd.DataFrame, str] | None = None) -> str:
    """The world card at the top of the report (``synkit.analysis.world_card``, or ``card`` as it returned it): which of
    the paper's mechanisms this world has, measured, so a verdict about the world is not read as one about the paper."""
    from synkit.analysis.world_card import world_card

    table, splits = card if card is not None else world_card(study_dir)
    if table.empty:
        return f"<h2>World card</h2><p><i>not available: {html.escape(splits)}</i></p>"
    absent = table.loc[table["present"] == "no", "mechanism"].tolist()
    head = (f"<p>{html.escape(splits)}.</p><p>The paper explains its results by mechanisms of its setting; a row below says whether "
            "this world has each (rules: <code>synkit/analysis/world_card.py</code>). "
            + (f"<b>Absent here: {html.escape(', '.join(absent))}</b>: findings that rest on them describe this world, not the paper."
               if absent else "Every mechanism checked is present.") + "</p>")
    return f'<h2>World card</h2>{head}{_table(table)}'


def gates_section(table: pd.DataFrame) -> str:
    """The gates at the top of the report: what failed first, with the parameter that would fix it."""
    failed = table[table["state"] == "FAILED"]
    if len(failed):
        head = ('<p class="warn"><b>This study cannot test everything it was asked to.</b> '
                + " ".join(f"<b>{html.escape(r.gate)}</b> failed ({html.escape(r.numbers)}): {html.escape(r.fix)}." for r in failed.itertuples())
                + " Every finding that rests on a failed gate reads <i>not measured</i>.</p>")
    else:
        head = "<p>Every gate passed: the study can separate the findings it tests from noise where its data allow.</p>"
    return f'<h2>Gates: can this study test anything?</h2>{head}{_table(table[["gate", "state", "numbers", "fix"]])}'


def _charts(d: Path) -> tuple[list[tuple[str, dict]], str]:
    """Each saved chart's Vega-Lite spec (to embed) and the page's chart sections, with the PNG beside each."""
    specs, by_section, at = [], {}, StudyFiles(d)
    for i, (section, title, name) in enumerate(CHARTS):
        spec_path = getattr(at, name).with_suffix(".json")
        png = getattr(at, name).with_suffix(".png")
        if not spec_path.exists():
            continue
        specs.append((f"chart{i}", json.loads(spec_path.read_text())))
        png_html = f"<details><summary>PNG</summary>{_img(png, 900)}</details>" if png.exists() else ""
        by_section.setdefault(section, []).append(f'<h3>{html.escape(title)}</h3><div class="chart" id="chart{i}"></div>{png_html}')
    return specs, "".join(f"<h2>{s}</h2>{''.join(blocks)}" for s, blocks in by_section.items())


def _finding_rows(found: pd.DataFrame) -> str:
    verdict_cls = {HOLDS: "ok", INCONCLUSIVE: "partly", FAILS: "no", UNMEASURED: "na"}
    return "".join(
        f'<tr class="{verdict_cls[r["verdict"]]}"><td>{html.escape(r["#"])}</td><td>{html.escape(r["finding"])}</td><td>{html.escape(r["paper"])}</td>'
        f'<td>{html.escape(r["this run"])}</td><td class="why">{html.escape(r["why"])}</td><td><b>{html.escape(r["verdict"])}</b></td></tr>'
        for r in found.to_dict("records")
    )


def _stages(d: Path, params: dict | None) -> tuple[pd.DataFrame, str]:
    """The stage table and a line on whether every stage finished."""
    stage = stages(d, params)
    bad = stage[~stage["state"].isin(["finished"]) & (stage["notebook"] != "08_report")]
    stage_html = ('<p class="warn"><b>Not every stage finished:</b> ' + "; ".join(f"{r.notebook} {r.state}" for r in bad.itertuples())
                  + ". Findings that read their outputs are missing or come from an earlier run.</p>") if len(bad) else \
        "<p>Every stage finished.</p>"
    stage.loc[(stage["notebook"] == "08_report") & (stage["state"] == "running"), "state"] = "writing this page"
    return stage, stage_html


def _tables(d: Path) -> str:
    """The study's tables: fits, mixes, capacity, CLIP's control, per-class categories, quality, CLIP's Table 1 and fits."""
    from synkit.analysis.findings import short_names

    names = short_names(d)
    at = StudyFiles(d)
    fits = _read(at.scaling_table("fits"))
    fit_cols = ["source", "eval_set", "metric", "k", "k_lo", "k_hi", "k_seed_sd", "neg_log_l_di", "neg_log_l_di_lo", "neg_log_l_di_hi", "r2", "curve_p", "lof_p", "n_seeds"]
    mix = _read(at.scaling_table("mix"))
    capacity = _read(at.scaling_table("capacity"))
    control = _read(at.control)
    clip_t1 = _read(at.table1)
    clip_fits = _read(at.clip_fits)
    cats = _read(at.categories)
    quality = _read(at.quality_summary)
    return f"""<h2>Fits (supervised, sizes up to D_I, every seed)</h2>{_table(fits[fit_cols] if fits is not None else None, names=names)}
<h2>Real + synthetic against real alone</h2>{_table(mix, names=names)}
<h2>Capacity: small vs default model</h2>{_table(capacity[["source", "model", "span", "k", "k_lo", "k_hi", "fit_min_size", "fit_max_size", "bend_size", "bend_p"]] if capacity is not None else None, names=names)}
<h2>CLIP control</h2>{_table(control)}
<h2>Per-class categories</h2>{_table(cats, names=names)}
<h2>Quality</h2>{_table(quality, names=names)}
<h2>CLIP: Table 1 (zero-shot top-1)</h2>{_table(clip_t1)}
<h2>CLIP fits</h2>{_table(clip_fits[["source", "eval_set", "metric", "k", "k_lo", "k_hi", "r2"]] if clip_fits is not None else None)}"""


def _verdict_counts(found: pd.DataFrame) -> str:
    """The verdicts counted; the rows a study's design leaves out (not the ones a failed gate took) named."""
    counts = found["verdict"].value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in (HOLDS, INCONCLUSIVE, FAILS, UNMEASURED))
    left_out = found.loc[(found["verdict"] == UNMEASURED) & found["why"].str.startswith("needs"), "#"].tolist()
    if left_out:
        summary += (f" ({len(left_out)} of the not measured need parts this study leaves out, named in their why column: "
                    f"{', '.join(left_out)})")
    return summary


def build(study_dir: str | Path, params: dict | None = None, *, found: pd.DataFrame | None = None, gate_table: pd.DataFrame | None = None,
          card: tuple[pd.DataFrame, str] | None = None) -> Path:
    """Write ``report.html`` into ``study_dir`` (via a temporary file and a rename); return its path. The findings, the
    gates and the world card are computed here unless the caller has them already (08 does)."""
    import vl_convert as vlc

    from synkit.core.files import write_text

    d = Path(study_dir)
    found = findings(d) if found is None else found
    gate_html = gates_section(gates(d) if gate_table is None else gate_table)
    specs, chart_html = _charts(d)
    at = StudyFiles(d)
    grids = at.grids()
    grid_html = "".join(f"<figure>{_img(g, 420)}<figcaption>{html.escape(g.parent.name)}</figcaption></figure>" for g in grids)
    fig5 = "".join(f"<figure>{_img(g, 420)}<figcaption>{html.escape(g.stem)}</figcaption></figure>" for g in at.figure5_images())
    rows = _finding_rows(found)
    stage, stage_html = _stages(d, params)
    summary = _verdict_counts(found)
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
td.why {{ color: #555; font-size: 12px; }} p.warn {{ color: #b3261e; }} tr.ok td:last-child {{ color: #176f2c; }} tr.partly td:last-child {{ color: #9a6700; }} tr.no td:last-child {{ color: #b3261e; }}
figure {{ display: inline-block; margin: 6px; }} .chart {{ margin: 0.5em 0; }}
</style></head><body>
<h1>synkit report: study <code>{html.escape(d.name)}</code></h1>
<p>Everything here is read from the files under <code>{html.escape(str(d))}</code>; the verdicts describe this run, not the paper.</p>
{card_section(d, card)}
{gate_html}
<h2>Stages</h2>{stage_html}{_table(stage)}
<h2>Findings</h2>
<p>{len(found)} rows: {summary}. <b>holds</b>: the paper's direction, separated from noise (a 95% interval wholly on its side, or
the stated test rejecting at 5%); <b>does not hold here</b>: the opposite direction, equally separated (the interval wholly on the
other side); <b>inconclusive</b>: everything between, whatever side the point estimate falls on; <b>not measured</b>: this study
cannot test it, or a gate above failed. Every seed draws its own subsets of the data; fits use the size means, so points that
share a size count once. The rule of each row is the docstring of its function in <code>synkit/analysis/findings/</code>. Paper column:
the paper's claim in our words with its section and its printed numbers.</p>
<table id="findings"><tr><th>#</th><th>finding</th><th>paper</th><th>this run</th><th>why (test)</th><th>verdict</th></tr>{rows}</table>
{_tables(d)}
{chart_html}
<h2>Samples per configuration</h2>{grid_html or "<p><i>no grids</i></p>"}
<h2>Real beside generated (Figure 5)</h2>{fig5 or "<p><i>none</i></p>"}
<h2>Parameters</h2><pre>{params_html}</pre>
<h2>Versions</h2><table>{ver}</table>
<script>{bundle}</script>
<script>{embed}</script>
</body></html>
"""
    return write_text(page, at.report_page)
