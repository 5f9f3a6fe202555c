"""A ladder of supervised runs: every source x size x seed (and the CFG sweep, and the small model), planned, run in one
process or in worker processes (or launched on many GPUs: ``python -m synkit.classify.ladder job.json``), and gathered
into long tables."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synkit.classify.data import (
    FileImages,
    ShardImages,
    Source,
    balanced_order,
    eval_tensors,
    file_subset,
    parse_source,
    subset,
)
from synkit.classify.train import TrainConfig, config_from, create_model, ladder_sizes, schedule_steps, train_run
from synkit.core.files import write_parquet
from synkit.core.layout import StudyFiles, manifest
from synkit.data.worlds import WorldSettings, safe_name
from synkit.data.worlds.folder import fit_images
from synkit.engine import runs


@dataclass(frozen=True, kw_only=True)
class TrainJob(WorldSettings):
    """Every run of a study's training stage on the world of its ``WorldSettings``; JSON-serializable for
    ``python -m synkit.classify.ladder``."""

    study_dir: str
    sources: list = field(default_factory=lambda: ["real"])
    sizes: list = field(default_factory=list)  # empty: ladder_sizes(real_size, min_size, max_factor)
    min_size: int = 0  # 0: D_I / 32 (ladder_sizes)
    max_factor: float = 2.0
    sweep_size: int = 0  # > 0: also train every generated configuration at this size
    sweep_prompt_sets: list = field(default_factory=list)  # the sweep's prompt sets (empty: every generated one)
    eval_sets: list = field(default_factory=list)  # empty: val and every OOD view
    eval_size: int = 0  # > 0: a class-balanced subset of each eval set
    ood_eval_size: int = 0  # > 0: a class-balanced subset of each OOD view (0: eval_size); capacity runs evaluate on val only
    train_config: dict = field(default_factory=dict)
    seed: int = 0  # the study seed: the first training seed
    seeds: int = 1  # training seeds per run: seed, seed + 1, ...
    capacity_source: str | None = None  # also train this source with the small model of capacity_config
    capacity_config: dict = field(default_factory=dict)  # TrainConfig fields of the small model (over train_config)
    workers: int = 0  # processes training independent runs at once (0: runs.auto_workers); not part of any result


def study_configs(at, sources: list) -> pd.DataFrame:
    """02_generate's configurations table of the study whose files are ``at`` (``StudyFiles``); a study that
    trains on real images only may have none (an empty table)."""
    if at.configs.exists():
        return pd.read_parquet(at.configs)
    if list(sources) != ["real"]:
        raise FileNotFoundError(f"{at.configs} does not exist: run 02_generate for study {at.root.name!r} first (sources {sources} need it).")
    return pd.DataFrame(columns=["config", "prompt_set", "guidance_scale", "images", "manifest"])


def plan_runs(job: TrainJob, configs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: source, config, real_fraction, size, seed, steps, model ("default" or
    "small"), kind (ladder, sweep or capacity) and sweep (the run gives the configuration's
    performance at the sweep size, ladder runs included)."""
    d_i = job.real_size
    sizes = sorted(job.sizes) if job.sizes else ladder_sizes(d_i, job.min_size, job.max_factor)
    if any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes {sizes} are invalid; every size must be a whole number >= 1.")
    if not isinstance(job.seeds, int) or job.seeds < 1:
        raise ValueError(f"seeds={job.seeds!r} is invalid; it must be a whole number >= 1 (training seeds per run).")
    config = config_from(job.train_config, job.world)
    available = dict(zip(configs["config"], configs["images"])) if len(configs) else {}
    rows = []

    def ladder(spec: str, kind: str, model: str) -> list[dict]:
        src = parse_source(spec, configs)
        if src.config is None:
            cap = d_i
        elif src.real_fraction > 0:
            cap = min(available[src.config] / (1 - src.real_fraction), d_i / src.real_fraction)
        else:
            cap = available[src.config]
        mine = [s for s in sizes if s <= cap + 1e-9]
        if len(mine) < 3:
            raise ValueError(f"source {spec!r} has {int(cap)} images, enough for {len(mine)} of the sizes {sizes}; a fit needs at least 3.")
        return [{"source": src.name, "spec": spec, "config": src.config, "real_fraction": src.real_fraction, "size": s,
                 "kind": kind, "model": model} for s in mine]

    for spec in job.sources:
        rows += ladder(spec, "ladder", "default")
    if job.sweep_size:
        swept_sets = set(job.sweep_prompt_sets or configs["prompt_set"])
        unknown = sorted(swept_sets - set(configs["prompt_set"]))
        if unknown:
            raise ValueError(f"sweep_prompt_sets names {unknown[0]!r}, which 02_generate did not render; valid prompt sets are "
                             f"{', '.join(sorted(set(configs['prompt_set'])))}.")
        swept = configs[configs["prompt_set"].isin(swept_sets)]
        for c, n in zip(swept["config"], swept["images"]):
            rows.append({"source": c, "spec": c, "config": c, "real_fraction": 0.0, "size": int(min(job.sweep_size, n)),
                         "kind": "sweep", "model": "default"})
    if job.capacity_source:
        if not job.capacity_config:
            raise ValueError("capacity_source is set but capacity_config is empty; give the small model's TrainConfig fields (e.g. model_kwargs).")
        capacity_model(job)  # names a bad key now, not after the ladder
        rows += ladder(job.capacity_source, "capacity", "small")
    plan = pd.DataFrame(rows)
    swept = set(zip(plan.loc[plan["kind"] == "sweep", "source"], plan.loc[plan["kind"] == "sweep", "size"]))
    plan = plan.drop_duplicates(["source", "size", "model"])  # a ladder run at the sweep size serves both
    plan["sweep"] = [(s, n) in swept and m == "default" for s, n, m in zip(plan["source"], plan["size"], plan["model"])]
    d_min, d_max = min(plan["size"]), max(plan["size"])
    # a mix trains with the steps of real alone at its real count: compute-matched, so its gain is the images' alone
    counts = [round(s * f) if f > 0 else s for s, f in zip(plan["size"], plan["real_fraction"])]
    plan["steps"] = [schedule_steps(n, d_min, d_max, config.steps_min, config.steps_max) for n in counts]
    seeds = [job.seed + i for i in range(job.seeds)]
    plan = plan.merge(pd.DataFrame({"seed": seeds}), how="cross")
    return plan.sort_values(["seed", "kind", "source", "size"], kind="stable").reset_index(drop=True)


def capacity_model(job: TrainJob) -> TrainConfig:
    """The TrainConfig of the capacity runs: ``train_config`` with ``capacity_config`` over it."""
    merged = {**job.train_config, **job.capacity_config}
    if "model_kwargs" in job.capacity_config and "model" not in job.capacity_config:
        merged.setdefault("model", config_from(job.train_config, job.world).model)
    return config_from(merged, job.world)


class LadderData:
    """Everything the runs of a job read, built once per process: the world, the eval sets, the
    real pool and (on first use) each synthetic configuration's images."""

    def __init__(self, job: TrainJob, plan: pd.DataFrame, configs: pd.DataFrame):
        self.job, self.plan, self.configs = job, plan, configs
        self.study = Path(job.study_dir)
        self.config = config_from(job.train_config, job.world)
        self.small = capacity_model(job) if job.capacity_source else None
        world = job.load()
        self.class_names = [c.name for c in world.classes]
        eval_names = job.eval_sets or ["val", *world.ood_views]
        self.real = world.split("real")
        self.files = not self.real.in_memory  # imagenet / folder: images stream from disk through timm's transforms
        if self.files:
            import timm

            data_config = timm.data.resolve_data_config(model=create_model(self.config, len(self.class_names), 3))
            self.train_tf = timm.data.create_transform(**data_config, is_training=True)
            eval_tf = timm.data.create_transform(**data_config, is_training=False)
            self.evals = {}
            for name in eval_names:
                split = world.split(name)
                labels = np.asarray(split.labels)
                idx = np.sort(balanced_order(labels, job.split_seed)[: job.eval_size]) if job.eval_size else None
                self.evals[name] = FileImages(split.image, labels, eval_tf, idx)
        else:
            self.evals = eval_tensors(world, eval_names[:1], job.eval_size, job.split_seed)
            self.evals.update(eval_tensors(world, eval_names[1:], job.ood_eval_size or job.eval_size, job.split_seed))
            self.real_data = (np.asarray(self.real.images), np.asarray(self.real.labels))
        self.common = {"world": job.world, "web_size": job.web_size, "real_size": job.real_size, "split_seed": job.split_seed,
                       "ambiguous_names": job.ambiguous_names, "eval_size": job.eval_size, "ood_eval_size": job.ood_eval_size}
        self.eval_names = eval_names
        self.synthetic: dict[str, tuple] = {}

    def synthetic_pool(self, name: str):
        """A configuration's whole pool (in memory: images, labels, digest of its shards; file-backed: the shards), loaded once."""
        from synkit.core.files import from_study
        from synkit.data.shards import read_images

        if name not in self.synthetic:
            if self.files:
                shards = ShardImages(StudyFiles(self.study).synthetic / name)
                self.synthetic[name] = (shards, None, shards.digest)
            else:
                manifest_path = Path(from_study(self.configs.set_index("config").loc[name, "manifest"], self.study))
                if not manifest_path.exists():  # a table from another working directory: the configuration's own folder
                    manifest_path = manifest(StudyFiles(self.study).synthetic / name)
                pool = int(self.configs.set_index("config").loc[name, "images"])  # every seed draws from the whole pool
                imgs, man = read_images(manifest_path.parent, per_class=-(-pool // len(self.class_names)))
                order = np.lexsort((man["class_index"].to_numpy(), man["index"].to_numpy()))
                digest = hashlib.sha256("".join(sorted(set(man["shard_sha256"]))).encode()).hexdigest()[:16]
                imgs = imgs[order]
                if imgs.shape[1:] != self.real_data[0].shape[1:]:  # generated at another size or mode than the world's images
                    imgs = fit_images(imgs, self.real_data[0].shape[1:])
                self.synthetic[name] = (imgs, man["class_index"].to_numpy()[order], digest)  # in memory: 0.8 kB an image
        return self.synthetic[name]

    def run(self, row: dict, accelerator, progress: bool) -> tuple[pd.DataFrame, dict]:
        """Train (or reuse) the run of one plan row; return (metrics with the row's columns, info)."""
        config_name = row["config"] if isinstance(row["config"], str) else None
        source = Source(row["source"], config_name, row["real_fraction"])
        synth = self.synthetic_pool(config_name) if config_name else None
        draw = [int(self.job.split_seed), int(row["seed"])]  # each training seed draws its own nested subsets
        if self.files:
            images, labels = file_subset(source, row["size"], self.real, synth[0] if synth else None, draw, self.train_tf), None
        else:
            images, labels = subset(source, row["size"], self.real_data, synth[:2] if synth else None, draw)
        # ladder and sweep runs are measured on every eval set (the sweep: prompts out of distribution); capacity runs on val only
        names = self.eval_names if row["kind"] in ("ladder", "sweep") else self.eval_names[:1]
        evals = {k: self.evals[k] for k in names}
        data_key = json.dumps({**self.common, "eval_sets": names, "source": row["source"], "size": row["size"],
                               "shards": synth[2] if synth else None, "draw": draw}, sort_keys=True)
        model_dir = safe_name(row["source"]) if row["model"] == "default" else f"{safe_name(row['source'])}/{row['model']}"
        run_dir = StudyFiles(self.study).train_run_dirs / model_dir / f"n{row['size']:08d}-s{row['seed']}"
        run_config = dataclasses.replace(self.small if row["model"] == "small" else self.config, seed=int(row["seed"]))
        metrics, info = train_run(images, labels, evals, self.class_names, row["steps"], run_config, run_dir, data_key, accelerator,
                                  progress, desc=run_label(row))
        base = {"source": row["source"], "config": config_name, "real_fraction": row["real_fraction"], "size": row["size"],
                "steps": row["steps"], "kind": row["kind"], "sweep": row["sweep"], "model": row["model"], "seed": int(row["seed"])}
        return metrics.assign(**base), {**base, **{k: info[k] for k in ("train_s", "images_per_s", "resumed_from")}}


def run_label(row: dict) -> str:
    return f"{row['source']}{'' if row['model'] == 'default' else ' (' + row['model'] + ' model)'} n={row['size']} seed {row['seed']}"


_WORKER: dict = {}


def _worker_init(job: TrainJob, plan: pd.DataFrame, configs: pd.DataFrame, threads: int) -> None:
    runs.die_with_parent()
    torch.set_num_threads(threads)
    _WORKER["data"] = LadderData(job, plan, configs)
    _WORKER["accelerator"] = runs.make_accelerator()


def _worker_run(row: dict):
    return _WORKER["data"].run(row, _WORKER["accelerator"], progress=False)


def _run_cost(row: dict) -> float:
    """Rough relative time of a run: its steps (the small model's cost about a third of the default's), plus its evaluation."""
    return row["steps"] * (0.35 if row["model"] == "small" else 1.0) + (50 if row["kind"] == "ladder" else 15)


def run_ladder(job: TrainJob, progress: bool = True, accelerator=None, workers: int | None = None) -> pd.DataFrame:
    """Train every run of ``job`` (skipping finished ones); write and return ``train/metrics.parquet``.

    Runs are independent: with ``workers`` > 1 (default: ``auto_workers``) they train in that many
    spawned processes at once. Every CPU run trains with ``runs.run_threads()`` threads, in this process
    or a worker, so the tables are the same whichever way they were trained on a machine."""
    at = StudyFiles(job.study_dir)
    configs = study_configs(at, job.sources)
    plan = plan_runs(job, configs)
    if accelerator is None:
        accelerator = runs.make_accelerator()
    multi = accelerator.num_processes > 1
    workers = workers or job.workers
    if not workers:
        from synkit.data.worlds import in_memory

        world = job.load()
        workers = 1 if multi else runs.auto_workers(files=not in_memory(world))  # file-backed worlds: the loader's workers instead
    rows = plan.to_dict("records")
    holder: dict = {}

    def in_process():
        holder["data"] = LadderData(job, plan, configs)
        return lambda row: holder["data"].run(row, accelerator, progress)

    results = runs.run_plan(rows, in_process, _worker_init, _worker_run, 1 if multi else workers, progress, "training runs",
                       accelerator.is_main_process, initargs=(job, plan, configs), cost=_run_cost, label=run_label)
    cols = ["source", "config", "real_fraction", "kind", "sweep", "model", "seed", "size", "steps", "eval_set", "class_index", "class_name",
            "n", "loss", "top1"]
    table = pd.concat([m for m, _ in results], ignore_index=True)[cols]
    if accelerator.is_main_process:
        write_parquet(table, at.train_metrics)
        write_parquet(pd.DataFrame([info for _, info in results]), at.train_runs)
    return table


def main(argv: list[str] | None = None) -> int:
    """``python -m synkit.classify.ladder job.json`` (also under ``accelerate launch``)."""
    return runs.job_main("synkit.classify.ladder", TrainJob, run_ladder, argv)


if __name__ == "__main__":
    raise SystemExit(main())
