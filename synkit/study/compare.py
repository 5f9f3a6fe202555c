"""Are two runs of a study the same? Every table (parquet) under two study folders, cell for cell, and every other
result file by its bytes; timings and paths (which differ between any two runs) are left out and named.

    python -m synkit.study.compare outputs/mini /elsewhere/outputs/mini

Prints one line per table or file that differs (and which columns), and exits 1 if any does.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# columns that measure the machine, not the study: seconds, rates, dates, where files lie
VOLATILE = ("_s", "_per_s", "seconds", "per_s", "wall", "time", "date", "path", "manifest", "dir", "folder", "resumed_from")
# files whose bytes hold timings, versions or executed notebooks
SKIP_SUFFIXES = (".ipynb", ".html", ".png", ".log", ".pt", ".json")


def volatile(column: str) -> bool:
    return any(column == v or column.endswith(v) or column.startswith(v) for v in VOLATILE)


def table_diff(a: pd.DataFrame, b: pd.DataFrame) -> str | None:
    """None when the two tables agree cell for cell on every column that is not volatile, else what differs."""
    cols_a = [c for c in a.columns if not volatile(str(c))]
    cols_b = [c for c in b.columns if not volatile(str(c))]
    if cols_a != cols_b:
        return f"columns differ: {sorted(set(cols_a) ^ set(cols_b))}"
    if len(a) != len(b):
        return f"{len(a)} rows against {len(b)}"
    bad = []
    for c in cols_a:
        x, y = a[c].reset_index(drop=True), b[c].reset_index(drop=True)
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            same = np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=True)
        else:
            same = x.astype(str).equals(y.astype(str))
        if not same:
            bad.append(str(c))
    return f"columns {bad} differ" if bad else None


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare(a: str | Path, b: str | Path) -> list[str]:
    a, b = Path(a), Path(b)
    out = []
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "models" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "models" not in p.parts}
    for rel in sorted(files_a ^ files_b):
        out.append(f"{rel}: only in {a if rel in files_a else b}")
    for rel in sorted(files_a & files_b):
        if rel.suffix == ".parquet":
            why = table_diff(pd.read_parquet(a / rel), pd.read_parquet(b / rel))
            if why:
                out.append(f"{rel}: {why}")
        elif rel.suffix not in SKIP_SUFFIXES and digest(a / rel) != digest(b / rel):
            out.append(f"{rel}: bytes differ")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m synkit.study.compare STUDY_DIR_A STUDY_DIR_B", file=sys.stderr)
        return 2
    for folder in argv:
        if not Path(folder).is_dir():
            print(f"{folder} is not a folder; give two study folders (such as outputs/mini).", file=sys.stderr)
            return 2
    diffs = compare(*argv)
    for line in diffs:
        print(line)
    print(f"{len(diffs)} differences" if diffs else "the same: every table cell for cell, every other result file byte for byte")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
