"""A control experiment, not a timing: why does mixing a configuration's images into real hurt (row 10a)?

The fashion world's generator learns from a LAION-like corpus: a quarter of it in styles the real split lacks, and alt
text that names the class by another word, not at all, or wrongly. Two likely reasons for the mix's harm follow, and
this script tells them apart on a finished study, compute-matched as 04 trains its mixes (the steps of real alone at
the real count), each arm with the study's own seeds and draws:

- **styles**: a small classifier learns the web corpus's styles from its images (labels: ``world.styles_of("web")``)
  and tags every generated image; arm ``unstyled`` mixes in only images tagged with the original style;
- **wrong class**: 03's reference classifier labels every generated image; arm ``recognized`` mixes in only images
  it assigns to their prompt's class;
- ``random``: the configuration's whole pool, drawn as 04 draws it (it reproduces the study's own mix runs).

Each arm's gain is loss(real n) - loss(n real + n synthetic) on val, per seed. Run it on the mini study:

    python benchmarks/control_mix.py outputs/mini --config embedded-in_captions-cfg2 --real 312 1250
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synkit.analysis.findings.rules import interval
from synkit.classify import ladder, quality, train
from synkit.classify.data import Source, subset, to_tensor
from synkit.core.layout import MODEL, StudyFiles
from synkit.data.worlds import WorldSettings
from synkit.engine import runs


def style_tagger(world, folder: Path, steps: int = 300, seed: int = 0):
    """The fashion ResNet trained (synkit's own loop) to tell the web corpus's styles apart on all but 1000 of its
    images; returns (predict(images) -> style names, accuracy on the 1000 held out)."""
    web = world.split("web")
    images, styles = np.asarray(web.images), world.styles_of("web")
    names = sorted(set(styles))
    y = np.array([names.index(s) for s in styles])
    order = np.random.default_rng(seed).permutation(len(y))
    held, fit = order[:1000], order[1000:]
    held_set = {"held": (to_tensor(images[held]), torch.as_tensor(y[held]))}
    config = dataclasses.replace(train.config_from({}, "fashion"), seed=seed)
    metrics, _ = train.train_run(images[fit], y[fit], held_set, names, steps, config, folder, progress=False)
    model = train.load_model(folder / MODEL)

    @torch.inference_mode()
    def predict(imgs: np.ndarray) -> np.ndarray:
        x = to_tensor(imgs)
        out = [model(x[i : i + 1024]).argmax(1) for i in range(0, len(x), 1024)]
        return np.array(names, dtype=object)[torch.cat(out).numpy()]

    return predict, float(metrics.loc[metrics["class_index"] == -1, "top1"].iloc[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", help="a finished study folder, e.g. outputs/mini")
    ap.add_argument("--config", default="embedded-in_captions-cfg2", help="the generated configuration mixed into real")
    ap.add_argument("--real", type=int, nargs="+", default=[312, 1250], help="real counts (each mix adds as many synthetic)")
    args = ap.parse_args(argv)
    torch.set_num_threads(runs.run_threads())  # the thread count 04's runs train with: the same numbers as the study's own runs
    at = StudyFiles(args.study)
    notebooks = json.loads(at.parameters.read_text())["notebooks"]
    params = notebooks["04_train"]
    keys = {f.name for f in dataclasses.fields(ladder.TrainJob)}
    kept = {k: v for k, v in params.items() if k in keys and k not in ("study_dir", "eval_sets")}
    job = ladder.TrainJob(study_dir=str(args.study), **kept, eval_sets=["val"])  # the gains are on val: the OOD views stay unread
    configs = ladder.study_configs(at, job.sources)
    plan = ladder.plan_runs(job, configs)
    data = ladder.LadderData(job, plan, configs)
    world = job.load()
    pool_images, pool_labels, _ = data.synthetic_pool(args.config)
    tmp = Path(tempfile.mkdtemp(prefix="control-mix-"))
    tag, style_acc = style_tagger(world, tmp / "style-tagger")
    styles = tag(pool_images)
    shares = pd.Series(styles).value_counts(normalize=True).round(3).to_dict()
    print(f"style tagger: held-out accuracy on the web corpus {style_acc:.3f}; {args.config}'s {len(styles)} images: {shares}")
    p03 = notebooks["03_quality"]  # 03's own reference classifier, found (cached) from 03's parameters
    predict_ref, _, _ = quality.study_reference(
        WorldSettings.of(p03), len(data.class_names), p03.get("models_dir") or str(Path(p03["outputs_dir"]) / "models"),
        model=p03.get("reference_model"), weights=p03.get("reference_weights"), config=p03.get("reference_config"), seed=p03.get("seed", 0))
    pred, _ = predict_ref(pool_images)
    recognized = pred == pool_labels
    print(f"reference classifier: {recognized.mean():.3f} of the images in their prompt's class; "
          f"original style {recognized[styles == ''].mean():.3f}, other styles {recognized[styles != ''].mean():.3f}")

    arms = {"random": np.ones(len(styles), bool), "unstyled": styles == "", "recognized": recognized}
    real_steps = plan[(plan["source"] == "real")].drop_duplicates("size").set_index("size")["steps"]
    mixes = plan[plan["real_fraction"].between(0, 1, inclusive="neither")].drop_duplicates("size")["size"]
    mix_size = {int(round(m * 0.5)): int(m) for m in mixes}  # 04's mix with n real images (625 holds 312), else 2n
    rows = []
    for n in args.real:
        for seed in range(job.seed, job.seed + job.seeds):
            draw = [int(job.split_seed), seed]
            config = dataclasses.replace(data.config, seed=seed)
            sets = {"real": subset(Source("real"), n, data.real_data, None, draw)}
            for arm, keep in arms.items():
                mix = Source(f"{args.config}+real:0.5", args.config, 0.5)
                sets[arm] = subset(mix, mix_size.get(n, 2 * n), data.real_data, (pool_images[keep], pool_labels[keep]), draw)
            for arm, (images, labels) in sets.items():
                metrics, _ = train.train_run(images, labels, data.evals, data.class_names, int(real_steps[n]), config,
                                             tmp / f"{arm}-{n}-{seed}", progress=False)
                rows.append({"real": n, "seed": seed, "arm": arm, "loss": float(metrics.loc[metrics["class_index"] == -1, "loss"].iloc[0])})
    table = pd.DataFrame(rows).pivot_table(index=["real", "seed"], columns="arm", values="loss")
    gains = pd.DataFrame({arm: table["real"] - table[arm] for arm in arms})
    summary = gains.groupby("real").agg(["mean", "std"]).round(3)
    print("gain = loss(real n) - loss(mix), per seed:\n" + gains.round(3).to_string())
    study = pd.read_parquet(at.train_metrics)  # the random arm and real are the study's own runs: the same losses
    study = study[(study["eval_set"] == "val") & (study["class_index"] == -1) & (study["model"] == "default")]
    mine = study[study["source"].isin(["real", f"{args.config}+real:0.5"])].groupby(["source", "size"])["loss"].mean()
    for n in args.real:
        print(f"check at {n} real: study's real {mine.get(('real', n), float('nan')):.4f}, here {table.loc[n, 'real'].mean():.4f}; study's mix "
              f"{mine.get((f'{args.config}+real:0.5', mix_size.get(n, 2 * n)), float('nan')):.4f}, here {table.loc[n, 'random'].mean():.4f}")
    print("mean and sd over seeds:\n" + summary.to_string())
    for n in args.real:  # each arm against the whole pool, paired by seed (the same real draw and initialization)
        for arm in ("unstyled", "recognized"):
            diff = (gains.loc[n, arm] - gains.loc[n, "random"]).to_numpy()
            lo, hi = interval(diff.mean(), diff.std(ddof=1) / np.sqrt(len(diff)), len(diff) - 1, 0.05)
            print(f"{n} real: gain({arm}) - gain(random) = {diff.mean():.3f} [{lo:.3f}, {hi:.3f}] (95%, paired t)")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
