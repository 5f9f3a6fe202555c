"""Terminal progress lines (synkit.core.progress): what a person watching `synkit run` reads."""

import io
import re
import sys
import time

from synkit.core import progress


def test_bars_write_plain_lines_with_counts_rates_and_time_left(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", out)
    monkeypatch.setenv(progress.ENV, "4/8 04_train")
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    with progress.tqdm(total=10, desc="training runs", unit="run", file=io.StringIO()) as outer:
        with progress.tqdm(total=300, desc="real n=10000 seed 1", unit="step", file=io.StringIO()) as inner:
            for _ in range(30):
                time.sleep(0.002)
                inner.update(1)
            inner.set_postfix(loss="0.512")
            inner.update(1)
        outer.update(1)
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("[4/8 04_train, ") for line in lines)
    nested = [line for line in lines if "training runs: 0/10 runs" in line and "real n=10000 seed 1: " in line]
    assert nested, lines  # outer bar first, then the inner one
    last = [line for line in lines if "31/300 steps" in line][-1]
    assert re.search(r"[\d.]+ steps/s", last) and "loss=0.512" in last and re.search(r"~\d+(m\d\ds|s) left", last)


def test_heartbeat_speaks_while_a_step_is_slow(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", out)
    monkeypatch.setenv(progress.ENV, "2/8 02_generate")
    monkeypatch.setattr(progress, "HEARTBEAT", 0.3)
    bar = progress.tqdm(total=5, desc="t2i unet", unit="step", file=io.StringIO())
    try:
        before = len(out.getvalue().splitlines())
        time.sleep(2.5)  # no update at all: the heartbeat still reports
        assert len(out.getvalue().splitlines()) >= before + 2
    finally:
        bar.close()
    assert "t2i unet: 0/5 steps" in out.getvalue()


def test_silent_outside_synkit_run_and_when_disabled(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", out)
    monkeypatch.delenv(progress.ENV, raising=False)
    with progress.tqdm(total=3, desc="x", file=io.StringIO()) as bar:
        bar.update(3)
    monkeypatch.setenv(progress.ENV, "1/8 01_prompts")
    with progress.tqdm(total=3, desc="y", disable=True) as bar:
        bar.update(3)
    assert out.getvalue() == ""
