"""The paper's findings, each judged against one study's files by one stated rule.

Every row states a claim of the paper in our words with its section, the paper's own numbers
where it prints them, this run's numbers with 95% intervals, the test (``why``) and a verdict
(``rules``: *holds* and *does not hold here* each need an interval wholly on one side of zero;
everything between is *inconclusive*). Before any verdict, ``gates`` check that the study can test
anything at all; a failed gate makes every row that rests on it *not measured*, with the numbers.

Rows live in modules by family of claims, each registered with its place in the table
(``registry.finding``): ``supervised`` (1 power law, 2 real vs synthetic, 3h CFG's effect on k,
4 prompts, 5 out of distribution, 11 beating real out of distribution, 12 capacity), ``cfg`` (3a-3g
the CFG and prompt trade-off, 5t templates out of distribution), ``classes`` (6, 6b, 9a-b per class),
``clip_rows`` (7a-d, 8a-d, 13), ``mix`` (10a-c) and ``families`` (14a-c). Each function's docstring
is its rule. Fits compare k over the common range (sizes up to D_I; ``synkit.analysis.scaling`` fits the size
means, so points that share a size count once), every k row gives k on error beside k on loss (the
verdict is on loss, the paper's Eq. 2), and every seed draws its own subsets of the data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from synkit.analysis.findings import cfg, classes, clip_rows, families, mix, supervised  # noqa: F401  (each registers its rows)
from synkit.analysis.findings.context import Study, config_generators, label, short_names  # noqa: F401
from synkit.analysis.findings.gates import Gate, gate_table, study_gates
from synkit.analysis.findings.registry import ROW_FAMILIES
from synkit.analysis.findings.rules import (FAILS, HOLDS, INCONCLUSIVE, UNMEASURED, VERDICTS, by_p, combine, directional, fmt,  # noqa: F401
                                   fmt_k, fmt_test, power_law_verdict)

COLUMNS = ["#", "finding", "paper", "this run", "why", "verdict"]


def findings(study_dir: str | Path) -> pd.DataFrame:
    """Every finding's row, in the registry's order, with the gates applied."""
    study = Study.read(study_dir)
    failed = {g.key: g for g in study_gates(study) if g.passed is False}
    rows: list[dict] = []

    def add(n, finding, paper, measured, why, verdict, needs: tuple[str, ...] = ()):
        assert verdict in VERDICTS, verdict
        broken = [failed[k] for k in needs if k in failed]
        if broken and verdict != UNMEASURED:
            verdict = UNMEASURED
            why = "not measured: " + "; ".join(f"{g.name} failed ({g.numbers})" for g in broken) + ". " + why
        rows.append({"#": str(n), "finding": finding, "paper": paper, "this run": measured, "why": why, "verdict": verdict})

    for _, _, family in ROW_FAMILIES:
        family(study, add)
    return pd.DataFrame(rows, columns=COLUMNS)


def gates(study_dir: str | Path) -> pd.DataFrame:
    """The study's gates: name, key, state (passed / FAILED / not checked), numbers and, when failed, the fix."""
    return gate_table(study_gates(Study.read(study_dir)))


__all__ = ["COLUMNS", "FAILS", "Gate", "HOLDS", "INCONCLUSIVE", "UNMEASURED", "VERDICTS", "findings", "gates", "label", "short_names"]
