"""How a training source is written, parsed in one place: ``real``, a generated configuration (``PROMPT_SET@CFG``
or its folder name), or a mix ``<configuration>+real:F`` (the configuration's images with a fraction F of real ones)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

REAL = "real"
MIX = "+real:"


@dataclass(frozen=True)
class SourceSpec:
    base: str  # "real" or the configuration as written (PROMPT_SET@CFG or a folder name)
    fraction: str | None = None  # the real fraction as written after +real:, None where the source is no mix

    @property
    def is_mix(self) -> bool:
        return self.fraction is not None

    @property
    def config(self) -> str | None:
        """The generated configuration it trains on (None: real alone)."""
        return None if self.base == REAL else self.base

    def real_fraction(self) -> float:
        """The mix's real fraction as a number, checked: strictly between 0 and 1."""
        try:
            value = float(self.fraction)
        except (TypeError, ValueError):
            value = -1.0
        if not 0 < value < 1:
            raise ValueError(f"source {self.base + MIX + str(self.fraction)!r} has real fraction {self.fraction!r}; "
                             "it must be a number strictly between 0 and 1.")
        return value


def parse(source: str) -> SourceSpec:
    base, plus, fraction = str(source).partition(MIX)
    return SourceSpec(base, fraction if plus else None)


def mix_name(config: str, fraction: float) -> str:
    """The name a mix source has in the results (``<configuration folder>+real:0.5``)."""
    return f"{config}{MIX}{fraction:g}"


def is_mix(sources: pd.Series) -> pd.Series:
    """Which of a column's sources are mixes."""
    return sources.astype(str).str.contains(MIX, regex=False)
