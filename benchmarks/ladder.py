"""A ladder of independent training runs: in this process (one run at a time) against
``runs.auto_workers()`` spawned processes, in one run of this script, and their ratio. Every run
trains with ``runs.run_threads()`` threads either way, so the two tables must be identical (the
largest difference of any val loss is printed); for reference, the in-process ladder is also timed
with every core on each run (different float rounding, so different numbers).

    python benchmarks/ladder.py                  # 3 sizes x 2 seeds of real fashion images
    python benchmarks/ladder.py --seeds 3 --steps-max 300

Each side trains into a fresh temporary folder (nothing reused) and is timed end to end: data
preparation, training, evaluation and writing, as a study sees it.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from synkit.engine import runs

from synkit.classify import ladder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--sizes", default="1250,2500,5000")
    ap.add_argument("--steps-min", type=int, default=60)
    ap.add_argument("--steps-max", type=int, default=120)
    ap.add_argument("--eval-size", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workers = runs.auto_workers()
    config = {"steps_min": args.steps_min, "steps_max": args.steps_max, "batch_size": 128}
    print(f"{len(sizes)} sizes x {args.seeds} seeds of real images, {args.steps_min}-{args.steps_max} steps, eval on {args.eval_size}; "
          f"parallel side: {workers} processes")
    times = {1: [], workers: [], "all cores": []}
    tables = {}
    for r in range(args.repeats):
        for w in (1, workers, "all cores"):
            with tempfile.TemporaryDirectory() as tmp:
                job = ladder.TrainJob(study_dir=tmp, sources=["real"], sizes=sizes, seeds=args.seeds, eval_size=args.eval_size,
                                     train_config=config, workers=1 if w == "all cores" else w)
                t0 = time.perf_counter()
                if w == "all cores":  # bypass run_threads: one run at a time on every core
                    original = runs.run_threads
                    runs.run_threads = lambda: None
                    try:
                        tables[w] = ladder.run_ladder(job, progress=False)
                    finally:
                        runs.run_threads = original
                else:
                    tables[w] = ladder.run_ladder(job, progress=False)
                times[w].append(time.perf_counter() - t0)
            print(f"  repeat {r}: {w} process(es): {times[w][-1]:.1f} s")
    a, b = (tables[w].sort_values(["seed", "size", "eval_set", "class_index"])["loss"].to_numpy() for w in (1, workers))
    print(f"in-process, run_threads() threads: {min(times[1]):.1f} s for {len(sizes) * args.seeds} runs")
    print(f"in-process, every core per run:    {min(times['all cores']):.1f} s (other float rounding)")
    print(f"{workers} worker processes:              {min(times[workers]):.1f} s")
    print(f"ratio workers / in-process (same threads): {min(times[1]) / min(times[workers]):.2f}")
    print(f"ratio workers / in-process (every core):   {min(times['all cores']) / min(times[workers]):.2f}")
    print(f"largest |loss difference| between workers and in-process (same threads): {np.abs(a - b).max():.6f}")


if __name__ == "__main__":
    main()
