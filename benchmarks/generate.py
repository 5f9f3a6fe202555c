"""Generation throughput: synkit's batched, sharded generation vs a naive loop (one pipeline
call per prompt) with the same model, steps and CFG, in one run, and their ratio.

    python benchmarks/generate.py                       # the embedded fashion model (trained if not cached)
    python benchmarks/generate.py --generator PATH --height 512 --steps 25 --cfg 7.5 --resolution 256

The naive loop does not write images; synkit's number includes PNG encoding and shard writing.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from synkit.generate import render as generate
from synkit.generate import plan

from synkit.data import prompts
from synkit.data.worlds import load_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="embedded")
    ap.add_argument("--models-dir", default="outputs/models")
    ap.add_argument("--prompt-set", default="clip_templates_80")
    ap.add_argument("--cfg", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--images-per-class", type=int, default=200)
    ap.add_argument("--naive-images", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()

    steps = args.steps
    path = args.generator
    if path == "embedded":
        from synkit.t2i import latent as t2i

        cfg = t2i.T2IConfig()
        path = str(t2i.ensure_t2i(cfg, args.models_dir))
        steps = steps or t2i.DEFAULT_STEPS
    steps = steps or 25
    world = load_world("fashion")
    with tempfile.TemporaryDirectory() as tmp:
        table = prompts.build_prompts(world, [args.prompt_set])
        table.to_parquet(Path(tmp) / "prompts.parquet")
        pipe = generate.load_pipeline(path, args.dtype)
        fashion_like = args.resolution <= 64
        job = plan.GenJob(
            prompts=str(Path(tmp) / "prompts.parquet"), prompt_set=args.prompt_set, guidance_scale=args.cfg,
            images_per_class=args.images_per_class, out_dir=str(Path(tmp) / "bench"), generator=path, steps=steps,
            height=args.height, width=args.height, resolution=args.resolution,
            resize_mode="center_crop" if fashion_like else "resize", mode="L" if fashion_like else "RGB",
            dtype=args.dtype, batch_size=args.batch_size, shard_size=max(args.batch_size, 1000),
        )
        # warm-up, as the study is warm after its first configuration: one small configuration of the same prompt set
        # encodes the set (the pipeline keeps it for every CFG scale) and creates the kernels for this batch shape
        warm = dataclasses.replace(job, out_dir=str(Path(tmp) / "warm"), images_per_class=max(1, args.batch_size // 10))
        generate.generate_config(warm, pipe=pipe, progress=False)
        stats = generate.generate_config(job, pipe=pipe)
        fast = stats["images_per_s"]

        planned = plan.plan_images(table, args.prompt_set, args.images_per_class, 0, "bench")
        rows = planned.iloc[: args.naive_images]
        t0 = time.perf_counter()
        with torch.inference_mode(), generate.autocast(pipe, args.dtype):
            for prompt, seed in zip(rows["prompt"], rows["seed"]):
                pipe(prompt=prompt, guidance_scale=args.cfg, num_inference_steps=steps, height=args.height, width=args.height,
                     generator=torch.Generator().manual_seed(int(seed)), output_type="np")
        naive = len(rows) / (time.perf_counter() - t0)
    print(f"model {args.generator}: {steps} steps, CFG {args.cfg}, {args.height}px, dtype {args.dtype}, batch {args.batch_size}")
    print(f"synkit batched generation: {fast:,.1f} images/s ({stats['made']} images, shards written)")
    print(f"naive loop (one call per prompt): {naive:,.1f} images/s ({len(rows)} images)")
    print(f"ratio: {fast / naive:.1f}x")


if __name__ == "__main__":
    main()
