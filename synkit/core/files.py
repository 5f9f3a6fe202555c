"""Writing result files so that a file that exists is always complete: every write in synkit goes
through ``atomic`` (a temporary name beside the destination, renamed onto it once complete)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


def atomic_path(path: Path) -> Path:
    """The temporary name ``atomic`` writes ``path`` under (hidden, per process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def rename(src: str | Path, dest: str | Path) -> Path:
    """Move ``src`` onto ``dest`` in one step (the one rename of synkit: a reader sees the old or the new)."""
    os.replace(src, dest)
    return Path(dest)


@contextlib.contextmanager
def atomic(path: str | Path, suffix: bool = False, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (ending in its suffix when ``suffix``, for writers that read it) to
    write a file or a folder at; when the block ends it is renamed onto ``path`` (a folder already there is
    replaced, or kept and the new one dropped when ``keep_existing``: another process finished the same work
    first); when the block raises it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    tmp = tmp.with_suffix(path.suffix) if suffix else tmp
    _remove(tmp)  # left by a process that died here
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if keep_existing and path.exists():
        _remove(tmp)
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    rename(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_parquet(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` to ``path`` via a temporary file and a rename."""
    with atomic(path) as tmp:
        table.to_parquet(tmp, index=False)
    return Path(path)


def write_json(data, path: str | Path) -> Path:
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    with atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_chart(chart, path_stem: str | Path) -> list[Path]:
    """Save an altair chart as interactive HTML (vega's JavaScript inline: it opens offline), PNG
    (vl-convert) and its Vega-Lite spec (JSON, for the report) next to each other."""
    stem = Path(path_stem)
    out = []
    for suffix in (".html", ".png", ".json"):
        with atomic(stem.with_suffix(suffix), suffix=True) as tmp:
            chart.save(str(tmp), **({"scale_factor": 2} if suffix == ".png" else {"inline": True} if suffix == ".html" else {}))
        out.append(stem.with_suffix(suffix))
    return out


def write_npy(array, path: str | Path) -> Path:
    """An array as ``.npy`` (numpy's own format: no pickle) via a temporary file and a rename."""
    import numpy as np

    with atomic(path, suffix=True) as tmp:
        np.save(tmp, array, allow_pickle=False)
    return Path(path)


def read_d_i(study_dir: str | Path, default: int) -> int:
    """D_I as 04_train recorded it (``train/d_i.json``: a folder world's real split size), else ``default``."""
    from synkit.core.layout import StudyFiles

    path = StudyFiles(study_dir).d_i
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
