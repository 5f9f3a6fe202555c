"""The embedded text-to-image model: training time, generation speed and quality.

Trains (or reuses the cache of) the default model, then reports:
- training time (VAE, caption encoding, UNet), from the run's t2i.json when cached;
- images/s with guidance at the default steps, batched, for bf16 autocast and fp32 (ratio in the
  same run), with prompt strings (the pipeline encodes them) and with ``encode_prompts``, and
  where a batch's time goes (text encoding, UNet, VAE decode);
- quality: a small CNN trained ~45 s (2500 steps) on the ``real`` split (its val accuracy), then for CFG
  1, 2, 4, 8 the mean per-class F1 of class-name images and their diversity (per class, std of
  the CNN's penultimate features, mean over dims, then over classes); real val as the reference;
- the caption-direction check: "{name}, dark" vs "{name}, bright" mean pixel intensity.

    python benchmarks/bench_t2i.py [--models-dir outputs/models] [--per-class 100] [--batch 512] [--set key=value ...]
"""

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from synkit.core import precision
from synkit.t2i.text import prompt_embeddings
from synkit.t2i.latent import DEFAULT_STEPS, ensure_t2i, parse_overrides
from synkit.data.worlds import load_world


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.body(x))


def as_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images)).float().div(255).sub(0.5).div(0.5).unsqueeze(1)


def train_cnn(images, labels, steps: int = 2500) -> SmallCNN:
    """A fixed number of steps (about 45 s on a 2-core CPU), so features and their spread compare across runs."""
    torch.manual_seed(0)
    net, x, y = SmallCNN(), as_input(images), torch.from_numpy(labels)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,))
        with precision.autocast("cpu"):
            loss = F.cross_entropy(net(x[idx]).float(), y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()
    return net.eval()


@torch.inference_mode()
def predict(net, images) -> tuple[np.ndarray, np.ndarray]:
    feats = torch.cat([net.body(as_input(images[i : i + 2048])) for i in range(0, len(images), 2048)])
    return net.head(feats).argmax(1).numpy(), feats.numpy()


def diversity(feats: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([feats[labels == c].std(0).mean() for c in np.unique(labels)]))


def generate(pipe, prompts, guidance, steps, batch, seed=0, bf16=True, embeds=True) -> np.ndarray:
    """uint8 (N, 28, 28): the pipeline's 32x32 output center-cropped to 28, as the generation stage does."""
    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        gens = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        kwargs = dict(zip(("prompt_embeds", "negative_prompt_embeds"), prompt_embeddings(pipe, chunk))) if embeds else {"prompt": chunk}
        with precision.autocast("cpu", bf16):
            images = pipe(**kwargs, guidance_scale=guidance, num_inference_steps=steps, generator=gens,
                          height=32, width=32, output_type="np").images
        out.append((images[:, 2:30, 2:30, 0] * 255).round().astype(np.uint8))
    return np.concatenate(out)


def timed(fn, repeats=2) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models-dir", default="outputs/models")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--cnn-steps", type=int, default=2500)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="a T2IConfig field")
    args = parser.parse_args()
    config = parse_overrides(args.overrides)
    t0 = time.perf_counter()
    path = ensure_t2i(config, args.models_dir)
    elapsed = time.perf_counter() - t0
    info = json.loads((path.parent / "t2i.json").read_text())
    times = info["train_times_s"]
    print(f"model: {path} ({f'trained now, {elapsed:.0f} s wall in all' if elapsed > 30 else 'cached'})")
    print("training: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f"; total {sum(times.values()):.0f} s")

    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(str(path))
    pipe.set_progress_bar_config(disable=True)
    n_params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    print(f"unet {n_params:.2f}M params, vae {sum(p.numel() for p in pipe.vae.parameters()) / 1e6:.2f}M, "
          f"{type(pipe.scheduler).__name__} {args.steps} steps, batch {args.batch}")

    world = load_world("fashion", web_size=config.web_size, real_size=config.real_size, split_seed=config.split_seed)
    names = [c.name for c in world.classes]
    prompts = [names[i % 10] for i in range(args.batch)]
    g = 4.0

    # speed: where a batch's time goes, then whole pipeline calls
    pe, ne = prompt_embeddings(pipe, prompts)
    lat = torch.randn(2 * args.batch, 4, 8, 8)
    for bf16 in (True, False):
        with torch.inference_mode(), precision.autocast("cpu", bf16):
            t_text = timed(lambda: (pipe.encode_prompt(prompts, "cpu", 1, True)), 1)
            t_unet = timed(lambda: pipe.unet(lat, 500, torch.cat([ne, pe])))
            t_vae = timed(lambda: pipe.vae.decode(lat[: args.batch] / pipe.vae.config.scaling_factor))
        print(f"{'bf16' if bf16 else 'fp32'} parts per batch of {args.batch}: text encoding (prompts + negatives) {t_text:.2f} s, "
              f"unet step (x2 for guidance) {t_unet:.3f} s x {args.steps}, vae decode {t_vae:.3f} s")
    rates = {}
    for embeds in (True, False):
        for bf16 in (True, False):
            t = timed(lambda b=bf16, e=embeds: generate(pipe, prompts, g, args.steps, args.batch, bf16=b, embeds=e), 2 if embeds else 1)
            rates[(embeds, bf16)] = args.batch / t
        src = "encode_prompts embeddings" if embeds else "prompt strings"
        print(f"images/s with guidance ({src}): bf16 {rates[(embeds, True)]:.0f}, fp32 {rates[(embeds, False)]:.0f}, "
              f"bf16/fp32 = {rates[(embeds, True)] / rates[(embeds, False)]:.2f}x")

    # quality
    real, val = world.split("real"), world.split("val")
    t0 = time.perf_counter()
    net = train_cnn(real.images, real.labels, args.cnn_steps)
    pred, feats = predict(net, val.images)
    print(f"reference CNN ({args.cnn_steps} steps, {time.perf_counter() - t0:.0f} s on real): val accuracy {np.mean(pred == val.labels):.3f}, "
          f"val F1 {f1_score(val.labels, pred, average='macro'):.3f}, val diversity {diversity(feats, val.labels):.3f}")
    labels = np.repeat(np.arange(10), args.per_class)
    class_prompts = [names[i] for i in labels]
    for guidance in (1.0, 2.0, 4.0, 8.0):
        images = generate(pipe, class_prompts, guidance, args.steps, args.batch)
        pred, feats = predict(net, images)
        print(f"CFG {guidance:g}: F1 {f1_score(labels, pred, average='macro'):.3f}, diversity {diversity(feats, labels):.3f}")

    # caption direction
    n = max(20, args.per_class // 2)
    means = {}
    for tone in ("dark", "bright"):
        images = generate(pipe, [f"{names[i % 10]}, {tone}" for i in range(10 * n)], g, args.steps, args.batch)
        means[tone] = images.astype(float).mean()
    f = world.split("web").images
    print(f"caption direction (CFG {g:g}): mean pixel 'dark' {means['dark']:.1f} vs 'bright' {means['bright']:.1f} "
          f"(web split {f.mean():.1f})")


if __name__ == "__main__":
    main()
