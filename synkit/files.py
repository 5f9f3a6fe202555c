"""Writing result files so that a file that exists is always complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd


def atomic_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_parquet(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def write_json(data, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def save_chart(chart, path_stem: str | Path) -> list[Path]:
    """Save an altair chart as interactive HTML (vega's JavaScript inline: it opens offline), PNG
    (vl-convert) and its Vega-Lite spec (JSON, for the report) next to each other."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for suffix in (".html", ".png", ".json"):
        dest = stem.with_suffix(suffix)
        tmp = atomic_path(dest).with_suffix(suffix)
        chart.save(str(tmp), **({"scale_factor": 2} if suffix == ".png" else {"inline": True} if suffix == ".html" else {}))
        os.replace(tmp, dest)
        out.append(dest)
    return out


def read_d_i(study_dir: str | Path, default: int) -> int:
    """D_I as 04_train recorded it (``train/d_i.json``: a folder world's real split size), else ``default``."""
    path = Path(study_dir) / "train" / "d_i.json"
    return int(json.loads(path.read_text())["d_i"]) if path.exists() else int(default)


def stored_path(path: str | Path, study_dir: str | Path) -> str:
    """A path to keep in a study's tables: relative to the study folder when it lies in the outputs
    folder above it (so the study reads the same from any working directory, and can move), else as given."""
    path, base = Path(path).resolve(), Path(study_dir).resolve()
    return os.path.relpath(path, base) if path.is_relative_to(base.parent) else str(path)


def from_study(value: str | None, study_dir: str | Path) -> str | None:
    """A path kept by ``stored_path`` back as a usable one (taken from the study folder when it
    exists there); absolute paths, hub ids and older tables' paths as they are."""
    if not value or Path(value).is_absolute():
        return value
    candidate = Path(study_dir) / value
    return str(candidate) if candidate.exists() else value
