"""One study's tables, read once from its files, and the lookups every row of the findings shares."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synkit.analysis.findings.rules import fmt_k
from synkit.core.layout import StudyFiles
from synkit.core.sources import parse as parse_source


MILD_SHIFT_VIEWS = ("v2", "imagenet-v2", "imagenetv2", "mild")  # eval-set names read as the ImageNet-V2 analog

def short_names(study_dir: Path) -> dict[str, str]:
    """Configuration folder -> ``prompt_set@CFG`` for labels (``generator: prompt_set@CFG`` in a study of several generators)."""
    path = StudyFiles(study_dir).configs
    if not path.exists():
        return {}
    configs = pd.read_parquet(path)
    several = "generator" in configs and configs["generator"].nunique() > 1
    return {r.config: f"{r.generator + ': ' if several else ''}{r.prompt_set}@{r.guidance_scale:g}" for r in configs.itertuples()}


def config_generators(study_dir: Path) -> dict[str, str]:
    """Configuration folder -> the generator (name) that made it."""
    path = StudyFiles(study_dir).configs
    if not path.exists():
        return {}
    configs = pd.read_parquet(path)
    return dict(zip(configs["config"], configs["generator"])) if "generator" in configs else {}


def label(source: str, names: dict[str, str]) -> str:
    parsed = parse_source(source)
    return f"{names.get(parsed.base, parsed.base)}{' + real ' + parsed.fraction if parsed.is_mix else ''}"


def config_of(source: str) -> str | None:
    """The generated configuration a ladder source trains on (None: real)."""
    return parse_source(source).config


@dataclass
class Study:
    """The files of one study, and the lookups rows share."""

    dir: Path
    tables: dict = field(default_factory=dict)

    @classmethod
    def read(cls, study_dir: str | Path) -> Study:
        d = Path(study_dir)
        at = StudyFiles(d)
        paths = {"fits": at.scaling_table("fits"), "extended": at.scaling_table("fits_extended"), "capacity": at.scaling_table("capacity"),
                 "mix": at.scaling_table("mix"), "metrics": at.train_metrics, "quality": at.quality_per_class, "classes": at.classes,
                 "clip_metrics": at.clip_metrics, "clip_fits": at.clip_fits, "clip_control": at.control, "configs": at.configs,
                 "clip_cfg": at.clip_cfg_table}
        tables = {k: pd.read_parquet(path) if path.exists() else None for k, path in paths.items()}
        ref = at.reference
        tables["reference"] = json.loads(ref.read_text()) if ref.exists() else None
        di = at.d_i
        tables["d_i"] = json.loads(di.read_text()).get("d_i") if di.exists() else None
        m = tables["metrics"]
        if tables["d_i"] is None and m is not None and (m["source"] == "real").any():  # a study folder without 04's record: real's top
            tables["d_i"] = int(m.loc[m["source"] == "real", "size"].max())
        return cls(d, tables)

    def __getattr__(self, name):
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    # ------------------------------------------------------------ names

    @property
    def names(self) -> dict[str, str]:
        if "_names" not in self.__dict__:
            self.__dict__["_names"] = short_names(self.dir)
        return self.__dict__["_names"]

    @property
    def generators(self) -> dict[str, str]:
        return config_generators(self.dir)

    def lab(self, source: str) -> str:
        return label(source, self.names)

    def prompt_set(self, source: str) -> str:
        return self.names.get(source, source).split(": ")[-1].split("@")[0]

    def cfg(self, source: str) -> float:
        if self.configs is None or source not in set(self.configs["config"]):
            return float("nan")
        return float(self.configs.set_index("config").loc[source, "guidance_scale"])

    @property
    def classes_count(self) -> int:
        for t, col in ((self.quality, "class_index"), (self.metrics, "class_index")):
            if t is not None and col in t:
                return int(t.loc[t[col] >= 0, col].nunique())
        return 0

    # ------------------------------------------------------------ fits

    def fit_rows(self, metric: str = "loss", eval_set: str = "val") -> pd.DataFrame | None:
        """The fits (sizes up to D_I) of one metric and eval set, indexed by source (read once)."""
        cache = self.__dict__.setdefault("_fit_rows", {})
        if (metric, eval_set) not in cache:
            table = self.fits
            cache[(metric, eval_set)] = None if table is None else \
                table[(table["metric"] == metric) & (table["eval_set"] == eval_set)].set_index("source")
        return cache[(metric, eval_set)]

    def fit(self, source: str, eval_set: str = "val", metric: str = "loss"):
        rows = self.fit_rows(metric, eval_set)
        return None if rows is None or source not in rows.index else rows.loc[source]

    def k_text(self, source: str, eval_set: str = "val") -> str:
        """k on loss with its interval, and k on error beside it (the paper reports both)."""
        loss, err = self.fit(source, eval_set), self.fit(source, eval_set, "error")
        text = f"{self.lab(source)} k = {fmt_k(loss)}" if loss is not None else f"{self.lab(source)} k = n/a"
        if err is not None and np.isfinite(err["k"]):
            text += f" (error: {fmt_k(err)})"
        return text

    @property
    def ladder(self) -> pd.DataFrame | None:
        """Every ladder run's overall rows (class_index -1), read once."""
        if "_ladder" not in self.__dict__:
            m = self.metrics
            self.__dict__["_ladder"] = None if m is None else m[(m["kind"] == "ladder") & (m["class_index"] == -1)]
        return self.__dict__["_ladder"]

    @property
    def ladder_sources(self) -> list[str]:
        return [] if self.ladder is None else list(dict.fromkeys(self.ladder["source"]))

    @property
    def synth(self) -> list[str]:
        """Synthetic ladder sources with a val loss fit (no mixes)."""
        if "_synth" in self.__dict__:
            return self.__dict__["_synth"]
        val = self.fit_rows()
        self.__dict__["_synth"] = [s for s in self.ladder_sources if s != "real" and not parse_source(s).is_mix and val is not None and s in val.index
                and np.isfinite(val.loc[s, "k"])]
        return self.__dict__["_synth"]

    @property
    def have_real(self) -> bool:
        val = self.fit_rows()
        return val is not None and "real" in val.index and np.isfinite(val.loc["real", "k"])

    @property
    def best(self) -> str | None:
        """The synthetic ladder source with the largest k on val loss."""
        val = self.fit_rows()
        return max(self.synth, key=lambda s: val.loc[s, "k"]) if self.synth else None

    @property
    def views(self) -> list[str]:
        return sorted(set(self.fits.loc[self.fits["metric"] == "loss", "eval_set"]) - {"val"}) if self.fits is not None else []

    @property
    def styled_views(self) -> list[str]:
        """The OOD views in another style (the ImageNet-R / -Sketch analogs): every view but a mild shift (``MILD_SHIFT_VIEWS``)."""
        return [v for v in self.views if v.lower() not in MILD_SHIFT_VIEWS]
