"""CLIP training throughput: synkit's ``clip_train.train_clip`` (DataLoader with batched fetches from the
real/synthetic image bank, accelerate, checkpoints) against a plain loop over the same open_clip
model, captions and images, in one run, and their ratio.

    python benchmarks/clip.py                  # synkit-fashion-clip on 4000 web captions
    python benchmarks/clip.py --model ViT-B-16 --image-size 224 --captions 512 --batch-size 32

Both are timed on their training steps only; they alternate ``--repeats`` times, best of each.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import numpy as np
import open_clip
import torch

from synkit.clip import train as clip_train
from synkit.clip import data as clip_data

from synkit.core import precision


def plain_loop(config: clip_train.ClipConfig, bank: torch.Tensor, tokens: torch.Tensor, steps: int) -> float:
    torch.manual_seed(config.seed)
    model = open_clip.create_model(config.model, pretrained=None)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = open_clip.ClipLoss()
    n = len(tokens)
    g = torch.Generator().manual_seed(0)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, n, (config.batch_size,), generator=g)
        with precision.autocast("cpu", config.mixed_precision == "bf16"):
            img = model.encode_image(bank[idx], normalize=True)
            txt = model.encode_text(tokens[idx], normalize=True)
            loss = loss_fn(img.float(), txt.float(), model.logit_scale.exp())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    return steps * config.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=clip_train.FASHION_MODEL)
    ap.add_argument("--captions", type=int, default=4000)
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--mixed-precision", default="no")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    clip_train.register_models()
    config = clip_train.ClipConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size, mixed_precision=args.mixed_precision)
    tokenizer = open_clip.get_tokenizer(args.model)
    if args.model == clip_train.FASHION_MODEL:
        from synkit.data.worlds import load_world

        world = load_world("fashion")
        caps = clip_data.web_captions(world, args.captions)
        real = np.asarray(world.split("pairs").images)[caps["web_index"].to_numpy()]
        bank = torch.cat([clip_data.to_clip_tensor(real), clip_data.to_clip_tensor(255 - real)])
        tokens = tokenizer(caps["caption"].tolist())
    else:
        bank = torch.randn(2 * args.captions, 3, args.image_size, args.image_size)
        tokens = tokenizer([f"a photo of thing {i}" for i in range(args.captions)])
    steps = config.epochs * (args.captions // config.batch_size)
    print(f"model {args.model}, {args.captions} captions, batch {config.batch_size}, {steps} steps, mixed precision {config.mixed_precision}, "
          f"{torch.get_num_threads()} threads")
    ours, plain = [], []
    for r in range(args.repeats):
        plain.append(plain_loop(config, bank, tokens, steps))
        with tempfile.TemporaryDirectory() as tmp:
            _, info = clip_train.train_clip(bank, tokens, "mixed", config, tmp, lambda m, acc: __import__("pandas").DataFrame(), data_key=str(r), progress=False)
        ours.append(info["pairs_per_s"])
        print(f"  repeat {r}: plain {plain[-1]:.0f} pairs/s, synkit {ours[-1]:.0f} pairs/s")
    print(f"plain loop:  {max(plain):.0f} image-caption pairs/s (best of {args.repeats})")
    print(f"synkit:      {max(ours):.0f} pairs/s (best of {args.repeats})")
    print(f"ratio synkit / plain: {max(ours) / max(plain):.3f}")


if __name__ == "__main__":
    main()
