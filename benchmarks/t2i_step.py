"""The embedded model's UNet training step: synkit's loop (fused AdamW, foreach gradient clipping
and EMA, vectorized caption picks) against the per-tensor loop it replaced (AdamW and EMA one
tensor at a time, one ``rng.choice`` per example), on the same model and batches, alternating
``--repeats`` times in one process; prints ms per step of each and their ratio.

    python benchmarks/t2i_step.py [--steps 20] [--repeats 3] [--batch 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from synkit.core import precision

from synkit.t2i import latent as t2i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    config = t2i.T2IConfig()
    _, unet = t2i.build_models(config)
    unet.train()
    params = list(unet.parameters())
    rng0 = np.random.default_rng(0)
    n_classes, forms = 10, {f: [list(range(3 + k)) for k in range(10)] for f in ("name", "template", "hypernyms", "description")}
    labels = rng0.integers(0, n_classes, 50_000)
    full = rng0.integers(0, 4000, 50_000)
    table = torch.randn(4000, config.max_tokens, 384).to(torch.bfloat16)
    choices = np.zeros((5, n_classes, 12), dtype=np.int64)
    counts = np.ones((5, n_classes), dtype=np.int64)
    for fi, f in enumerate(("name", "template", "hypernyms", "description")):
        for c in range(n_classes):
            choices[fi, c, : len(forms[f][c])], counts[fi, c] = forms[f][c], len(forms[f][c])

    def batch(step: int, vectorized: bool):
        rng = np.random.default_rng([0, step])
        idx = rng.integers(0, len(labels), args.batch)
        form = rng.choice(5, args.batch, p=[0.2, 0.2, 0.1, 0.1, 0.4])
        if vectorized:
            pick = (rng.random(args.batch) * counts[form, labels[idx]]).astype(np.int64)
            ids = np.where(form == 4, full[idx], choices[form, labels[idx], pick])
        else:
            names = ("name", "template", "hypernyms", "description")
            ids = [int(full[i]) if f == 4 else int(rng.choice(forms[names[f]][int(labels[i])])) for i, f in zip(idx, form)]
        cond = table[torch.as_tensor(np.asarray(ids))]
        return torch.randn(args.batch, 4, 8, 8), torch.randint(0, 1000, (args.batch,)), cond, torch.randn(args.batch, 4, 8, 8)

    def run(new: bool) -> float:
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=new)
        ema = [p.detach().clone() for p in params]
        t0 = time.perf_counter()
        for step in range(args.steps):
            noisy, t, cond, target = batch(step, new)
            with precision.autocast("cpu"):
                loss = F.mse_loss(unet(noisy, t, cond).sample.float(), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True if new else None)
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                if new:
                    torch._foreach_lerp_(ema, [p.detach() for p in params], 0.001)
                else:
                    for e, p in zip(ema, params):
                        e.lerp_(p.detach(), 0.001)
        return (time.perf_counter() - t0) / args.steps * 1000

    run(True), run(False)  # warm-up
    best = {True: float("inf"), False: float("inf")}
    for _ in range(args.repeats):
        for new in (False, True):
            best[new] = min(best[new], run(new))
    print(f"per-tensor loop {best[False]:.0f} ms/step, synkit {best[True]:.0f} ms/step: ratio {best[False] / best[True]:.2f}x "
          f"(batch {args.batch}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
