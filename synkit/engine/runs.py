"""The run machinery supervised training (``synkit.classify.train``) and CLIP (``synkit.clip.ladder``) share.

- **Batches by step.** ``StepBatches``: the batches of steps ``start..steps``, epoch e a permutation
  seeded by (seed, e), so a resumed run draws the same batches as an uninterrupted one.
- **Checkpoints and run keys.** ``run_key`` (config, steps, data, loop version), ``save_checkpoint``
  / ``load_checkpoint`` (``weights_only`` loads, written beside and renamed), ``finish_run`` /
  ``finished_run`` (``run.json`` marks a run complete; a rerun with the same key reuses it).
- **Devices.** ``make_accelerator`` (mixed precision and dynamo pinned off: precision comes from
  each run's config, through ``autocast`` on the accelerator's device type).
- **Many runs.** ``run_plan``: independent runs in this process or in a pool of spawned processes
  with a fixed thread count (``auto_workers``, ``run_threads``), one progress bar.
- **Launch.** ``launch``: ``accelerate launch`` of a synkit module on N processes with pinned
  precision and dynamo, its output streamed to the notebook and the terminal as it happens.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections import deque
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from synkit.core.files import atomic, write_json, write_parquet
from synkit.core.layout import CHECKPOINT, RUN_INFO, RUN_METRICS
from synkit.core.precision import MIXED_PRECISION  # noqa: F401  (auto, no, bf16: see synkit.core.precision)
from synkit.core.progress import tqdm

# Part of every run's cache key: bump it when a change to the loop changes what a run computes.
LOOP_VERSION = 3  # 3: fused AdamW


class StepBatches(torch.utils.data.Sampler):
    """Batches of indices for steps ``start..steps``: epoch e is a permutation seeded by
    (seed, e), so a resumed run draws the same batches as an uninterrupted one. Subclasses map
    each batch with ``epoch_extra`` (drawn once per epoch after the permutation) and ``map``."""

    def __init__(self, n: int, batch_size: int, steps: int, seed: int, start: int = 0, processes: int = 1):
        self.n, self.batch_size, self.steps, self.seed, self.start, self.processes = n, batch_size, steps, seed, start, processes

    def __len__(self) -> int:
        return (self.steps - self.start) * self.processes

    def epoch_extra(self, generator: torch.Generator):
        return None

    def map(self, idx: torch.Tensor, extra) -> torch.Tensor:
        return idx

    def __iter__(self):
        per_epoch = max(self.n // self.batch_size, 1)  # drop the last partial batch
        first, last = self.start * self.processes, self.steps * self.processes
        epoch, perm, extra = -1, None, None
        for b in range(first, last):
            if b // per_epoch != epoch:
                epoch = b // per_epoch
                g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                perm = torch.randperm(self.n, generator=g)
                extra = self.epoch_extra(g)
            j = (b % per_epoch) * self.batch_size
            yield self.map(perm[j : j + self.batch_size], extra).tolist()


def whole_batch(batch):
    """A DataLoader collate_fn for datasets that return whole batches (``__getitems__``)."""
    return batch


class TensorPairs(torch.utils.data.Dataset):
    """Two in-memory tensors fetched a whole batch at a time (DataLoader calls ``__getitems__``, collate with
    ``whole_batch``): item i is ``(first[i], second[i % len(second)])``, so ``second`` may be shorter and repeat
    (a CLIP bank of real then synthetic images shares one set of caption tokens)."""

    def __init__(self, first: torch.Tensor, second: torch.Tensor):
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, i):
        return self.first[i], self.second[i % len(self.second)]

    def __getitems__(self, idx):
        idx = torch.as_tensor(idx)
        return self.first[idx], self.second[idx % len(self.second)]


def make_accelerator():
    """One Accelerator per process (its state is a process-wide singleton, so mixed precision is
    not set here but by ``autocast`` per run, from the run's config). Mixed precision and dynamo
    are pinned off here: a user's ``accelerate config`` default (fp16, a dynamo backend) would
    otherwise wrap every model without entering any run's cache key."""
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="no", dynamo_backend="no")


def autocast(accelerator, mixed_precision: str):
    """bf16 autocast on the accelerator's device (cpu or cuda) when ``mixed_precision == "bf16"``."""
    return torch.autocast(accelerator.device.type, torch.bfloat16, enabled=mixed_precision == "bf16")


def make_scheduler(optimizer, steps: int, warmup: float):
    """Linear warmup over ``warmup`` of the steps, then cosine decay to zero."""
    w = max(1, int(round(warmup * steps)))

    def factor(t: int) -> float:
        if t < w:
            return (t + 1) / w
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (t - w) / max(1, steps - w))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_key(config, steps: int, data_key: str) -> str:
    """A run's cache key: its config (a dataclass), steps, data and the loop's version."""
    payload = json.dumps({"config": asdict(config), "steps": steps, "data": data_key, "loop": LOOP_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def finished_run(run_dir: Path, key: str) -> tuple[pd.DataFrame, dict] | None:
    """(metrics, info) of a run that finished with this key, else None."""
    info_path, metrics_path = run_dir / RUN_INFO, run_dir / RUN_METRICS
    if info_path.exists() and metrics_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("key") == key:
            return pd.read_parquet(metrics_path), info
    return None


def start_run(run_dir: Path, key: str, accelerator=None):
    """``(results, None)`` when ``run_dir`` holds a finished run with this key; else ``(None, accelerator)`` with the run's
    folder ready (another key's stale results removed, on the main process) for every process."""
    done = finished_run(run_dir, key)
    if done is not None:
        return done, None
    accelerator = accelerator or make_accelerator()
    if accelerator.is_main_process:
        for stale in (RUN_INFO, RUN_METRICS):
            (run_dir / stale).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    return None, accelerator


def load_checkpoint(path: Path, key: str, model, optimizer, scheduler) -> int:
    """Restore a checkpoint written for this key (``weights_only``); return the step to resume at (0: none)."""
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("key") != key:
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"])


def finish_run(run_dir: Path, metrics: pd.DataFrame, info: dict) -> None:
    """Write the run's metrics, then run.json (its presence marks the run complete), then drop the checkpoint."""
    write_parquet(metrics, run_dir / RUN_METRICS)
    write_json(info, run_dir / RUN_INFO)
    (run_dir / CHECKPOINT).unlink(missing_ok=True)


def save_checkpoint(path: Path, model, optimizer, scheduler, step: int, key: str) -> None:
    """Model, optimizer, scheduler and step under ``key``, written beside and renamed into place."""
    with atomic(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "step": step, "key": key}, tmp)


def auto_workers(files: bool = False) -> int:
    """Processes for independent runs: on a CPU-only machine, one per two cores, at least 2 when
    there are 2 cores (small models use two single-threaded processes better than one process
    with two threads: benchmarks/train.py); 1 with a GPU (accelerate owns the devices) or with
    file-backed data (its loader has workers of its own)."""
    if files or torch.cuda.is_available():
        return 1
    cores = os.cpu_count() or 1
    return 1 if cores < 2 else min(cores, max(2, cores // 2))


def run_threads() -> int | None:
    """Threads every CPU run trains with, in this process or in a worker: cores // auto_workers().
    The thread count changes float rounding, which training amplifies to seed-sized differences
    (measured: val loss 0.858 vs 0.880 for one run at 1 and 2 threads), so a run gets the same
    count whichever way it is trained; a rerun on the same machine gives the same bytes. None with
    a GPU (the device decides)."""
    if torch.cuda.is_available():
        return None
    return max(1, (os.cpu_count() or 1) // auto_workers())


def die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when the process that spawned it dies (a killed study leaves no
    orphan still training); elsewhere a no-op."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_plan(rows: list[dict], make_data, worker_init, worker_run, workers: int, progress: bool, desc: str, main: bool = True,
             initargs: tuple = (), cost=None, label=None) -> list:
    """Run ``rows`` in this process (``workers`` <= 1, with ``make_data().run``) or in a pool of
    ``workers`` spawned processes (each with ``cores // workers`` threads and its own data from
    ``worker_init(*initargs, threads)``); return the results in row order with one progress bar.
    With ``cost(row)`` (a rough run time) the pool takes the costliest runs first, so no worker is
    left with one long run at the end while the others idle. ``label(row)`` names a run on the bar
    (default: its ``label`` entry)."""
    label = label or (lambda row: str(row.get("label", "")))
    bar = tqdm(total=len(rows), desc=desc, unit="run", disable=not (progress and main))
    results = [None] * len(rows)
    threads = run_threads()
    if workers <= 1 or len(rows) <= 1:
        data = make_data()
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)  # the same thread count as a worker's: the same results
        try:
            for i, row in enumerate(rows):
                bar.set_postfix_str(label(row))
                results[i] = data(row)
                bar.update(1)
        finally:
            torch.set_num_threads(before)
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        threads = threads or 1
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=worker_init,
                                    initargs=(*initargs, threads)) as pool:
            order = sorted(range(len(rows)), key=lambda i: -cost(rows[i])) if cost else list(range(len(rows)))
            futures = {pool.submit(worker_run, rows[i]): i for i in order}
            pending = list(order)  # the pool takes runs in this order: its first `workers` are the ones training

            def running() -> None:
                bar.set_postfix_str("training " + "; ".join(label(rows[i]) for i in pending[:workers]), refresh=False)

            running()
            for fut in cf.as_completed(futures):
                results[futures[fut]] = fut.result()  # a run's error stops the ladder here, with its message
                pending.remove(futures[fut])
                running()
                bar.update(1)
    bar.close()
    return results


def sync_buffers(accelerator, model) -> None:
    """Give every process the main process's buffers (BatchNorm's running statistics), which each
    process updated from its own last batch: the sharded evaluation then scores one model, the one
    the main process saves."""
    if accelerator is None or accelerator.num_processes == 1:
        return
    import torch.distributed as dist

    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def shard(accelerator, n: int):
    """This process's share of ``n`` evaluation items: all of them in one process, else a strided
    slice (process i takes items i, i + N, ...), so N processes evaluate a set once between them."""
    if accelerator is None or accelerator.num_processes == 1:
        return slice(None)
    return slice(accelerator.process_index, n, accelerator.num_processes)


def gather(accelerator, part, *arrays):
    """Every process's per-item results of ``shard`` (numpy arrays, item order of the shard),
    gathered with accelerate's ``gather_for_metrics`` and put back in the set's order."""
    if accelerator is None or accelerator.num_processes == 1:
        return arrays
    import numpy as np

    pieces = accelerator.gather_for_metrics([(part.start, arrays)], use_gather_object=True)
    n, step = sum(len(a[0]) for _, a in pieces), accelerator.num_processes
    out = []
    for k, first in enumerate(arrays):
        full = np.empty(n, dtype=first.dtype)
        for start, a in pieces:
            full[start::step] = a[k]
        out.append(full)
    return tuple(out)


def job_files(module: str, argv: list[str] | None = None, many: bool = False) -> list[Path] | None:
    """The JOB.json argument(s) of ``python -m module`` (``sys.argv`` when ``argv`` is None; one, or one or more when
    ``many``), or None after printing the usage (the caller exits with 2)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 or (many and argv):
        return [Path(a) for a in argv]
    print(f"usage: [accelerate launch ...] python -m {module} JOB.json{' [JOB.json ...]' if many else ''}", file=sys.stderr)
    return None


def job_main(module: str, job_type, run, argv: list[str] | None = None) -> int:
    """A job module's entry point: ``run(job_type(**JOB.json))``; 0, or 2 after the usage when the arguments are wrong."""
    paths = job_files(module, argv)
    if paths is None:
        return 2
    run(job_type(**json.loads(paths[0].read_text())))
    return 0


def launch_command(module: str, args: list[str], num_processes: int) -> list[str]:
    """The ``accelerate launch`` command line for ``python -m module args`` on ``num_processes``
    processes of this machine. accelerate's mixed precision and dynamo are pinned off, never the
    user's ``accelerate config`` defaults: each run autocasts by its own config (part of its key)."""
    if not isinstance(num_processes, int) or num_processes < 2:
        raise ValueError(f"num_processes={num_processes!r} is invalid for accelerate launch; it must be a whole number >= 2.")
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", module, *map(str, args)]


def launch(module: str, args: list[str], num_processes: int, tail: int = 60) -> list[str]:
    """Run ``module`` under ``accelerate launch`` (``launch_command``) and stream its output, line by
    line as it comes, to this process's stdout (the notebook's cell) and, when a study runs from the
    terminal, to the terminal. Returns the output's lines; raises with the last ``tail`` lines when
    the launch fails."""
    import subprocess

    from synkit.core import progress as progress_lines

    cmd = launch_command(module, args, num_processes)
    terminal = os.environ.get(progress_lines.ENV)
    to_terminal = bool(terminal) and sys.stdout is not sys.__stdout__  # in a kernel under synkit run
    lines: list[str] = []
    last: deque[str] = deque(maxlen=tail)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env) as proc:
        for raw in proc.stdout:
            raw = raw.rstrip("\n")
            cut = raw.find(f"[{terminal}, ") if terminal else -1
            if cut >= 0:  # a process's own progress line (it inherits SYNKIT_PROGRESS): to the terminal as it is
                if to_terminal:
                    print(raw[cut:], file=sys.__stderr__, flush=True)
                raw = raw[:cut]
            line = raw.split("\r")[-1]  # a text bar's updates: its latest state
            if not line.strip():
                continue
            lines.append(line)
            last.append(line)
            print(line, flush=True)
            if to_terminal:
                print(f"[{terminal}] {line}", file=sys.__stderr__, flush=True)
    if proc.returncode != 0:
        shown = "\n".join(last)
        raise RuntimeError(f"accelerate launch of {module} on {num_processes} processes failed (exit {proc.returncode}); its last lines:\n{shown}")
    return lines
