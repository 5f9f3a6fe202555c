"""Progress people can watch from a terminal.

Every long loop of synkit counts its work with ``synkit.core.progress.tqdm`` (tqdm's own bar, in a
notebook or a terminal). Under ``synkit run`` a notebook's bars live inside its kernel, whose
output papermill writes into the executed notebook, not to the terminal; so there each bar also
writes plain lines to the kernel's original stderr (the terminal of ``synkit run``): which
notebook, how long it has run, every open bar (outer first) with its count, rate, postfix (the
loss, the run) and the time it has left, at most every ``INTERVAL`` seconds when the count moves
and at least every ``HEARTBEAT`` seconds while a bar is open. ``synkit run`` switches this on by
setting ``SYNKIT_PROGRESS`` to "<i>/<n> <notebook>" for each notebook's kernel.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from tqdm.auto import tqdm as _tqdm

ENV = "SYNKIT_PROGRESS"
INTERVAL = 5.0
HEARTBEAT = 10.0

_OPEN: list = []  # open reporting bars, outermost first
_LOCK = threading.Lock()
_STATE = {"last": 0.0, "start": time.time(), "thread": None}


def _fmt(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe(bar) -> str:
    """One bar as plain text: "desc: n/total units, rate, postfix, ~time left"."""
    d = bar.format_dict
    n, total, unit, elapsed = d["n"], d["total"], d["unit"], d["elapsed"]
    rate = d["rate"] or (n / elapsed if elapsed and n else None)
    units = unit + ("es" if unit.endswith(("s", "x")) else "s")
    text = f"{d['prefix'] or 'working'}: {n}/{total} {units}" if total else f"{d['prefix'] or 'working'}: {n} {units}"
    if rate:
        text += f", {rate:.1f} {units}/s" if rate >= 1 else f", {1 / rate:.1f} s/{unit}"
    if d.get("postfix"):
        text += f", {d['postfix']}"
    if rate and total:
        text += f", ~{_fmt((total - n) / rate)} left"
    return text


def line() -> str:
    """The current progress line: notebook, its time so far, every open bar (else the running cell)."""
    where = os.environ.get(ENV, "").strip()
    with _LOCK:
        work = " | ".join(describe(b) for b in _OPEN) or _STATE.get("cell") or "working"
    return f"[{where}, {_fmt(time.time() - _STATE['start'])}] {work}"


def _active() -> bool:
    return bool(_OPEN or _STATE.get("cell"))


def emit(force: bool = False) -> None:
    """Write the progress line to the terminal when ``INTERVAL`` has passed (or ``force``)."""
    now = time.time()
    if not _active() or (not force and now - _STATE["last"] < INTERVAL):
        return
    _STATE["last"] = now
    stream = sys.__stderr__
    if stream is not None:
        try:
            stream.write(line() + "\n")
            stream.flush()
        except (OSError, ValueError):  # the terminal went away: the notebook's own bars still count
            pass


def _heartbeat() -> None:
    while True:
        time.sleep(1.0)
        if _active() and time.time() - _STATE["last"] >= HEARTBEAT:
            emit(force=True)


def _start_heartbeat() -> None:
    if _STATE["thread"] is None:
        _STATE["thread"] = threading.Thread(target=_heartbeat, name="synkit-progress", daemon=True)
        _STATE["thread"].start()


def watch_cells() -> None:
    """In a kernel under ``synkit run``: name the running cell (its first line) in the progress
    lines while no bar is open, so a long cell without a bar is not silent either."""
    if not reporting() or _STATE.get("watching"):
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def before(info) -> None:
        first = next((ln.strip() for ln in (info.raw_cell or "").splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
        _STATE["cell"] = f"running cell: {first[:80]}"
        _STATE["cell_start"] = time.time()

    def after(result) -> None:
        _STATE["cell"] = None

    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)
    _STATE["watching"] = True
    _start_heartbeat()


def reporting() -> bool:
    """Whether bars write terminal lines (``synkit run`` set ``SYNKIT_PROGRESS``)."""
    return bool(os.environ.get(ENV))


class tqdm(_tqdm):  # noqa: N801 - a drop-in for tqdm.auto.tqdm
    """tqdm's bar (notebook or terminal); under ``synkit run`` it also reports to the terminal."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._reports = reporting() and not self.disable
        if self._reports:
            with _LOCK:
                _OPEN.append(self)
            _start_heartbeat()
            emit(force=len(_OPEN) == 1)  # a new outermost bar: say so at once

    def update(self, n=1):
        out = super().update(n)
        if self._reports:
            emit()
        return out

    def close(self):
        if getattr(self, "_reports", False):
            with _LOCK:
                if self in _OPEN:
                    _OPEN.remove(self)
            self._reports = False
        super().close()
