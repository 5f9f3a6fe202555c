"""How long the widget explorers take to redraw.

``python benchmarks/explore.py``: the refits at ImageNet's 1000 classes (synthetic metrics: real and one generated
source, 6 sizes, 3 seeds): a cold refit of every class, the same choice again (the cache), and a new size range.
``python benchmarks/explore.py outputs/mini``: 06's and 05's explorers opened on a finished study, each control moved
once as a user would; the kernel's time per redraw (refits, charts, image strip; the browser's drawing comes on top).
Printed as seconds and as ratios against the first draw, measured in this one process."""

import contextlib
import io
import math
import sys
import time

import numpy as np
import pandas as pd

from synkit.analysis import explore

CLASSES, SIZES, SEEDS, D_I = 1000, [40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000], (0, 1, 2), 1_280_000


def metrics() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for source in ("real", "syn"):
        for size in SIZES:
            for seed in SEEDS:
                ks = 0.3 if source == "real" else rng.uniform(0.05, 0.5, CLASSES)
                loss = np.exp(-ks * math.log(size / D_I) + rng.normal(0, 0.02, CLASSES))
                rows.append(pd.DataFrame({"source": source, "kind": "ladder", "seed": seed, "size": size, "eval_set": "val",
                                          "class_index": np.arange(CLASSES), "class_name": [f"c{i}" for i in range(CLASSES)],
                                          "loss": loss, "top1": 1 / (1 + loss)}))
    return pd.concat(rows, ignore_index=True)


def study(folder: str) -> None:
    timings = {}

    def timed(name, change):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the views print their reprs outside a notebook
            result = change()
        timings[name] = time.perf_counter() - t0
        return result

    per_class = timed("06 explorer: first draw (every class of every source fitted)", lambda: explore.per_class_explorer(folder))
    sizes = per_class.sizes.options
    names = per_class.classes.allowed_tags
    for name, change in [
        ("06: size range without the smallest size", lambda: setattr(per_class.sizes, "index", (1, len(sizes) - 1))),
        ("06: metric error", lambda: setattr(per_class.metric, "value", "error")),
        ("06: another class", lambda: setattr(per_class.classes, "value", [names[-1]])),
        ("06: k quantile 0.3", lambda: setattr(per_class.steep, "value", 0.3)),
        ("06: back to the first size range (cached)", lambda: setattr(per_class.sizes, "index", (0, len(sizes) - 1))),
    ]:
        timed(name, change)
    curves = timed("05 explorer: first draw", lambda: explore.curves_explorer(folder))
    timed("05: size range without the smallest size", lambda: setattr(curves.sizes, "index", (1, len(curves.sizes.options) - 1)))
    timed("05: metric error", lambda: setattr(curves.metric, "value", "error"))
    first = next(iter(timings.values()))
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.2f} s ({seconds / first:.2f}x the first draw)")


def main() -> None:
    if len(sys.argv) > 1:
        return study(sys.argv[1])
    refits = explore.Refits(metrics(), D_I)
    timings = {}
    for name, size_range in (("cold refit, 2 sources x 1000 classes", (SIZES[0], SIZES[-1])), ("same choice again (cache)", (SIZES[0], SIZES[-1])),
                             ("new size range", (SIZES[1], SIZES[-1]))):
        t0 = time.perf_counter()
        table = refits.categories(["syn"], "val", "loss", size_range)
        timings[name] = time.perf_counter() - t0
    cold = timings["cold refit, 2 sources x 1000 classes"]
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.2f} s ({seconds / cold:.2f}x the cold refit)")
    print(f"classes with a category: {table['category'].notna().sum()}")


if __name__ == "__main__":
    main()
