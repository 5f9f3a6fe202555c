"""How long the widget explorer's refits take at ImageNet's 1000 classes (synthetic metrics: real and one generated
source, 6 sizes, 3 seeds): a cold refit of every class, the same choice again (the cache), and a new size range;
printed as seconds and as ratios against the cold refit, measured in this one process."""

import math
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


def main() -> None:
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
