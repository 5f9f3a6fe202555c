"""Headline values recorded in an executed notebook, so tests and the report can read them back."""

from __future__ import annotations

import json
from pathlib import Path

MIME = "application/vnd.synkit.record+json"


def record(name: str, value) -> None:
    """Record a JSON-serializable headline ``value`` under ``name`` in the running notebook."""
    from IPython.display import display

    json.dumps(value)  # fail here, not when the notebook is saved
    display({MIME: {name: value}, "text/plain": f"{name} = {value!r}"}, raw=True)


def read_records(notebook: str | Path) -> dict:
    """All values recorded in an executed notebook, later records winning."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    out = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if MIME in data:
                out.update(data[MIME])
    return out
