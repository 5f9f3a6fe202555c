"""Where the mini study's CPU time goes: torch.profiler's top operators in each of its hot loops,
one training step each at the study's own sizes and precision (bf16 autocast):

- the embedded model's VAE (02, batch 64) and UNet (02, batch 256, MiniLM-sized text tokens);
- the supervised classifier (04: the fashion ResNet, batch 128, channels_last, one thread per worker);
- the small CLIP (07: synkit-fashion-clip, batch 128, fp32 as the study trains it).

    python benchmarks/hot_loops.py            # top 6 operators per loop
    python benchmarks/hot_loops.py --top 12 --steps 10

Times are self CPU time over ``--steps`` profiled steps after 3 warm-up steps; the step time is
printed beside them (wall clock, the same steps, profiler off). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from synkit.core import precision


def vae_step(threads: int):
    from synkit.t2i import latent as t2i

    torch.set_num_threads(threads)
    vae, _ = t2i.build_models(t2i.T2IConfig())
    opt = torch.optim.AdamW(vae.parameters(), fused=True)
    x = torch.randn(64, 1, 32, 32)

    def step():
        with precision.autocast("cpu"):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample()).sample.float()
        (F.mse_loss(rec, x) + 1e-4 * post.kl().mean()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def unet_step(threads: int):
    from synkit.t2i import latent as t2i

    torch.set_num_threads(threads)
    _, unet = t2i.build_models(t2i.T2IConfig())
    opt = torch.optim.AdamW(unet.parameters(), fused=True)
    noisy, t, cond = torch.randn(256, 4, 8, 8), torch.randint(0, 1000, (256,)), torch.randn(256, 32, 384)

    def step():
        with precision.autocast("cpu"):
            loss = unet(noisy, t, cond).sample.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def classifier_step(threads: int):
    from synkit.classify import train
    from synkit.classify import data

    torch.set_num_threads(threads)
    config = train.config_from({}, "fashion")
    model = train.create_model(config, 10, 1).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, fused=True)
    x = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))

    def step():
        with precision.autocast("cpu"):
            loss = F.cross_entropy(model(data.augment(x, 0, 0)).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def clip_step(threads: int):
    import open_clip

    from synkit.clip import data as clip_data
    from synkit.clip import train as clip_train

    torch.set_num_threads(threads)
    clip_train.register_models()
    model = clip_train.from_scratch(clip_train.FASHION_MODEL)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    loss_fn = open_clip.ClipLoss()
    images = clip_data.to_clip_tensor(np.random.default_rng(0).integers(0, 255, (128, 28, 28), dtype=np.uint8))
    tokens = open_clip.get_tokenizer(clip_train.FASHION_MODEL)(["a photo of a bag"] * 128)

    def step():
        img = model.encode_image(images, normalize=True)
        txt = model.encode_text(tokens, normalize=True)
        loss_fn(img, txt, model.logit_scale.exp()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


LOOPS = {"02 VAE (2 threads)": (vae_step, 2), "02 UNet (2 threads)": (unet_step, 2),
         "04 classifier (1 thread)": (classifier_step, 1), "07 CLIP (1 thread)": (clip_step, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--top", type=int, default=6)
    args = ap.parse_args()
    for name, (build, threads) in LOOPS.items():
        step = build(threads)
        for _ in range(3):
            step()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        ms = (time.perf_counter() - t0) / args.steps * 1000
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in rows) or 1
        print(f"{name}: {ms:.0f} ms a step")
        for e in rows[: args.top]:
            print(f"   {100 * e.self_cpu_time_total / total:5.1f}%  {e.key}")


if __name__ == "__main__":
    main()
