"""Sampler steps of an embedded model (any family): images/s and quality at each number of steps, in one run.

For each steps value, the same seeded class-name prompts at each CFG are generated through the
study's own path (``generate.render`` with precomputed prompt embeddings, bf16 autocast) and scored
by 03's reference classifier (recognizability = mean per-class F1, diversity = mean per-class
feature spread). Images/s is reported as a ratio to the first steps value.

    python benchmarks/sampler_steps.py --steps 6,5,4 --cfg 2,8 --per-class 100
    python benchmarks/sampler_steps.py --set unet_steps=600 --set vae_steps=300   # another training schedule
    python benchmarks/sampler_steps.py --family embedded-tokens --steps 8,6 --cfg 2,3,4 --per-class 150 \
        --prompts outputs/mini/prompts/prompts.parquet --prompt-set in_captions --batch 125

Needs the cached embedded model and reference classifier (outputs/models/, made by a study run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from synkit.t2i import families, text

from synkit.generate import render as generate
from synkit.generate import plan

from synkit.classify import quality


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default="outputs/models")
    ap.add_argument("--steps", default="6,5,4")
    ap.add_argument("--cfg", default="2,8")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--family", default="embedded", choices=list(families.CONFIGS))
    ap.add_argument("--prompts", help="a study's prompts.parquet (default: the class names as prompts)")
    ap.add_argument("--prompt-set", default="in_captions", help="the prompt set of --prompts to cycle through per class")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a config field of the family's model to measure (trained and cached if new), repeatable")
    args = ap.parse_args()
    import yaml

    values = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    pipe_dir = families.ensure_family(families.config_for(args.family, values), args.models_dir)
    model, info = quality.load_reference(quality.ensure_reference(quality.ReferenceConfig(), args.models_dir))
    from synkit.data.worlds import load_world

    names = [c.name for c in load_world("fashion").classes]
    labels = np.repeat(np.arange(len(names)), args.per_class)
    if args.prompts:
        import pandas as pd

        table = pd.read_parquet(args.prompts)
        table = table[table["prompt_set"] == args.prompt_set]
        if table.empty:
            raise SystemExit(f"{args.prompts} has no prompts of the set {args.prompt_set!r}.")
        per = {c: table[table["class_index"] == c]["prompt"].tolist() for c in range(len(names))}
        prompts = [per[c][i % len(per[c])] for c in range(len(names)) for i in range(args.per_class)]
    else:
        prompts = [names[c] for c in labels]
    pipe = generate.load_pipeline(str(pipe_dir), "bfloat16", scheduler=None)
    print(f"{args.family}; reference val top-1 {info['val_top1']:.3f}; {len(prompts)} images per (steps, CFG)")
    prompt_set = args.prompt_set if args.prompts else "classnames"
    base = None
    for steps in (int(s) for s in args.steps.split(",")):
        for cfg in (float(c) for c in args.cfg.split(",")):
            job = plan.GenJob(prompts="", prompt_set=prompt_set, guidance_scale=cfg, images_per_class=args.per_class, out_dir="x",
                                  generator=str(pipe_dir), steps=steps, resolution=28, resize_mode="resize", mode="L", dtype="bfloat16",
                                  batch_size=args.batch)
            embeds = text.text_inputs(pipe, prompts, args.batch)
            t0 = time.perf_counter()
            images = []
            for b in range(0, len(prompts), args.batch):
                images += generate.render(pipe, job, prompts[b : b + args.batch], list(range(b, b + args.batch))[: len(prompts[b : b + args.batch])],
                                          embeds={k: v[b : b + args.batch] for k, v in embeds.items()})
            rate = len(images) / (time.perf_counter() - t0)
            arrays = np.stack([np.asarray(im) for im in images])
            pred, feats = quality.predict(model, arrays)
            table = quality.per_class_quality(pred, feats, labels, len(names))
            base = base or rate
            print(f"steps {steps} CFG {cfg:g}: {rate:.0f} images/s ({rate / base:.2f}x of the first), "
                  f"recognizability {table['f1'].mean():.3f}, diversity {table['diversity'].mean():.3f}")


if __name__ == "__main__":
    main()
