"""Training throughput: synkit's training loop (``train.train_run``: DataLoader with batched
fetches, accelerate, per-step augmentation, checkpoints) against a plain PyTorch loop on the same
timm model, data, batch size, optimizer and bf16 autocast, in one run, and their ratio.

    python benchmarks/train.py                        # the fashion default model on 10k real images
    python benchmarks/train.py --model vit_base_patch16_224 --size 2048 --image-size 224 --channels 3 --batch-size 64

Both sides are timed on their training steps only (synkit's ``images_per_s`` excludes its
evaluation); they alternate ``--repeats`` times and the best of each is compared.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import timm.optim
import torch
import torch.nn.functional as F

from synkit.core import precision

from synkit.engine import runs

from synkit.classify import train
from synkit.classify import data


def plain_loop(config: train.TrainConfig, x: torch.Tensor, y: torch.Tensor, steps: int, num_classes: int) -> float:
    """Images/s of the textbook loop: index a batch, autocast, backward, step."""
    torch.manual_seed(config.seed)
    model = train.create_model(config, num_classes, in_chans=x.shape[1])
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = timm.optim.create_optimizer_v2(model, "adamw", lr=config.lr, weight_decay=config.weight_decay)
    sched = runs.make_scheduler(opt, steps, config.warmup)
    model.train()
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (config.batch_size,), generator=g)
        xb = x[idx]
        if config.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with precision.autocast("cpu", config.mixed_precision == "bf16"):
            loss = F.cross_entropy(model(xb).float(), y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    return steps * config.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="timm model name (default: the fashion default)")
    ap.add_argument("--model-kwargs", default=None, help="JSON dict for timm.create_model")
    ap.add_argument("--size", type=int, default=10_000, help="training images")
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    values = {"batch_size": args.batch_size, "checkpoint_every": 50}
    if args.model:
        values["model"] = args.model
        values["model_kwargs"] = json.loads(args.model_kwargs or "{}")
    config = train.config_from(values, "fashion")
    if args.image_size == 28 and args.channels == 1:
        from synkit.data.worlds import load_world

        real = load_world("fashion").split("real")
        images, labels = np.asarray(real.images)[: args.size], np.asarray(real.labels)[: args.size]
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.size, args.image_size, args.image_size, args.channels), dtype=np.uint8).squeeze(-1 if args.channels == 1 else ())
        labels = rng.integers(0, 10, args.size)
    x, y = data.to_tensor(images), torch.as_tensor(labels, dtype=torch.long)
    val = {"val": (x[:256], y[:256])}
    names = [str(c) for c in range(10)]
    print(f"model {config.model} {config.model_kwargs}, {args.size} images {tuple(x.shape[1:])}, batch {config.batch_size}, "
          f"{args.steps} steps, bf16 autocast, {torch.get_num_threads()} threads")
    ours, plain = [], []
    for r in range(args.repeats):
        plain.append(plain_loop(config, x, y, args.steps, 10))
        with tempfile.TemporaryDirectory() as tmp:
            _, info = train.train_run(images, labels, val, names, args.steps, config, tmp, data_key=str(r), progress=False)
        ours.append(info["images_per_s"])
        print(f"  repeat {r}: plain {plain[-1]:.0f} images/s, synkit {ours[-1]:.0f} images/s")
    ratio = max(ours) / max(plain)
    print(f"plain PyTorch loop: {max(plain):.0f} images/s (best of {args.repeats})")
    print(f"synkit train_run:   {max(ours):.0f} images/s (best of {args.repeats})")
    print(f"ratio synkit / plain: {ratio:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
