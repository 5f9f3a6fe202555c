"""Where a study keeps what it makes: every artifact's path, named once.

A study folder (``outputs/<study>/``) holds one folder per stage; ``StudyFiles(study_dir)`` names each
file in it (``StudyFiles(d).train_metrics`` is ``d/train/metrics.parquet``), so the notebooks, the
report and the findings read and write the same paths without typing them. Charts are named by their
stem (``files.save_chart`` adds ``.json`` / ``.png``). Inside a stage, two kinds of folder repeat:

- a **shard folder** (one generated configuration; ``data/shards``): ``MANIFEST``, ``SHARD_CONFIG``,
  ``SIZES`` and ``INFO`` beside its ``.tar`` shards, and the configuration's ``GRID`` image;
- a **run folder** (one training run; ``engine/runs``): ``RUN_INFO``, ``RUN_METRICS``, ``CHECKPOINT``
  while unfinished, and the saved ``MODEL`` folder.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.parquet"
SHARD_CONFIG = "config.json"
SIZES = "sizes.json"
INFO = "_info.json"
GRID = "grid.png"

RUN_INFO = "run.json"
RUN_METRICS = "metrics.parquet"
CHECKPOINT = "checkpoint.pt"
MODEL = "model"


class _At:
    """A path below the study folder, read as an attribute of ``StudyFiles``."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, owner_obj, owner_type=None):
        return self if owner_obj is None else owner_obj.root.joinpath(*self.parts)


class StudyFiles:
    """Every artifact of the study in ``root``, by name."""

    parameters = _At("parameters.json")  # what ``synkit run`` gave each notebook
    executed_notebooks = _At("notebooks")
    report_page = _At("report.html")

    prompts = _At("prompts", "prompts.parquet")
    prompt_summary = _At("prompts", "summary.parquet")
    prompt_counts_chart = _At("prompts", "prompt_counts")

    synthetic = _At("synthetic")  # one shard folder per generated configuration
    generator = _At("synthetic", "generator.json")  # what 07 generates caption images with
    configs = _At("synthetic", "configs.parquet")

    quality_per_class = _At("quality", "per_class.parquet")
    quality_summary = _At("quality", "summary.parquet")
    reference = _At("quality", "reference.json")
    tradeoff_chart = _At("quality", "tradeoff")

    d_i = _At("train", "d_i.json")
    train_job = _At("train", "job.json")
    train_metrics = _At("train", "metrics.parquet")
    train_runs = _At("train", "runs.parquet")
    train_run_dirs = _At("train", "runs")

    scaling = _At("scaling")  # fits, fits_extended, capacity, mix: ``scaling_table(name)``
    residuals = _At("scaling", "residuals.parquet")
    curves = _At("scaling", "curves.parquet")
    ranking = _At("scaling", "ranking.parquet")
    quality_performance = _At("scaling", "quality_performance.parquet")
    figure1_chart = _At("scaling", "figure1")
    loss_val_chart = _At("scaling", "loss_val")
    ood_chart = _At("scaling", "ood")
    tradeoff_performance_chart = _At("scaling", "tradeoff_performance")
    capacity_chart = _At("scaling", "capacity")

    classes = _At("per_class", "classes.parquet")
    categories = _At("per_class", "categories.parquet")
    explain = _At("per_class", "explain.parquet")
    figure6_chart = _At("per_class", "figure6")
    figure7_chart = _At("per_class", "figure7")
    dashboard_chart = _At("per_class", "dashboard")

    clip = _At("clip")
    captions = _At("clip", "captions.parquet")
    real_images = _At("clip", "real_images.npy")
    real_pairs = _At("clip", "real_pairs")
    clip_synthetic = _At("clip", "synthetic")
    clip_job = _At("clip", "job.json")
    clip_metrics = _At("clip", "metrics.parquet")
    clip_runs = _At("clip", "runs.parquet")
    clip_run_dirs = _At("clip", "runs")
    table1 = _At("clip", "table1.parquet")
    clip_fits = _At("clip", "fits.parquet")
    figure8_chart = _At("clip", "figure8")
    mixed_gain = _At("clip", "mixed_gain.parquet")
    control = _At("clip", "control.parquet")
    control_metrics = _At("clip", "control", "metrics.parquet")
    control_runs = _At("clip", "control", "runs.parquet")
    control_run_dirs = _At("clip", "control", "runs")
    clip_cfg_sweep = _At("clip", "cfg_sweep")  # one study-like folder per guidance scale (sweep_cfg)
    clip_cfg_table = _At("clip", "cfg_sweep.parquet")

    findings = _At("report", "findings.parquet")
    gates = _At("report", "gates.parquet")
    world_card = _At("report", "world_card.parquet")

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"StudyFiles({str(self.root)!r})"

    def scaling_table(self, name: str) -> Path:
        """One of 05's fit tables: ``fits``, ``fits_extended``, ``capacity`` or ``mix``."""
        return self.root / "scaling" / f"{name}.parquet"

    def executed(self, stem: str, state: str = "") -> Path:
        """``synkit run``'s executed copy of notebook ``stem``: ``state`` "" (finished), "running", "failed" or
        "interrupted"; "done" is the finished notebook's stamp (its parameters and code digest)."""
        return self.root / "notebooks" / (f"{stem}.done.json" if state == "done" else f"{stem}{'.' + state if state else ''}.ipynb")

    def executed_stems(self) -> list[str]:
        """The notebooks with an executed copy of any state."""
        return sorted({p.name.split(".")[0] for p in (self.root / "notebooks").glob("*.ipynb")})

    def generation_job(self, config: str) -> Path:
        """The job file of one configuration's generation under ``accelerate launch``."""
        return self.root / "synthetic" / "_jobs" / f"{config}.json"

    def figure5(self, safe_class_name: str) -> Path:
        """06's real-beside-generated image of one class (its name made safe for a path)."""
        return self.root / "per_class" / f"figure5_{safe_class_name}.png"

    def figure5_images(self) -> list[Path]:
        return sorted((self.root / "per_class").glob("figure5_*.png"))

    def grids(self) -> list[Path]:
        """Every generated configuration's image grid."""
        return sorted(self.synthetic.glob(f"*/{GRID}"))


def manifest(shard_folder: str | Path) -> Path:
    return Path(shard_folder) / MANIFEST


def grid(shard_folder: str | Path) -> Path:
    return Path(shard_folder) / GRID
