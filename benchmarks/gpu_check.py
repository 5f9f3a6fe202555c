"""GPU check of the full-size paths on one CUDA device, with random weights built from configs
(no downloads): Stable Diffusion 1.5-architecture generation through ``synkit.generate``, ViT-B/16
training through ``synkit.train.train_run``, and CLIP ViT-B/16 training plus zero-shot through
``synkit.clip``. Each part prints its throughput, or the error it stopped with (a failing part does
not stop the others), and one JSON line at the end.

    python benchmarks/gpu_check.py --out results.json

Not a test: CI has no GPU. The numbers are for the closing notes and the README's GPU-hour estimates.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def sd15_pipeline(folder: Path) -> Path:
    """A StableDiffusionPipeline with Stable Diffusion 1.5's architecture and random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # SD 1.5's UNet (860M)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4, sample_size=512)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                        max_position_embeddings=77, vocab_size=49408))
    simple = SimpleTokenizer()
    tok_dir = folder / "_tok"
    tok_dir.mkdir(parents=True, exist_ok=True)
    vocab = dict(simple.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    merges = sorted(simple.bpe_ranks, key=simple.bpe_ranks.get)
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=DDIMScheduler(steps_offset=1),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "sd15-random")
    return folder / "sd15-random"


def check_generation(tmp: Path, images: int, steps: int) -> dict:
    from synkit import generate

    path = sd15_pipeline(tmp)
    prompts = pd.DataFrame({"prompt_set": "classnames", "class_index": np.arange(8).repeat(4), "class_name": [f"class {i // 4}" for i in range(32)],
                            "prompt_index": np.tile(np.arange(4), 8), "prompt": [f"a photo of a thing number {i}" for i in range(32)],
                            "source_id": ""})
    prompts.to_parquet(tmp / "prompts.parquet")
    job = generate.GenJob(prompts=str(tmp / "prompts.parquet"), prompt_set="classnames", guidance_scale=2.0,
                          images_per_class=images // 8, out_dir=str(tmp / "gen"), generator=str(path), steps=steps, height=512, width=512,
                          resolution=256, batch_size=16, shard_size=images)
    stats = generate.generate_config(job, progress=False)
    return {"images": stats["images"], "steps": steps, "size": 512, "images_per_s": stats["images_per_s"], "seconds": stats["seconds"]}


def check_train(tmp: Path, steps: int, batch: int) -> dict:
    from synkit import train

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch * 4, 224, 224, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, len(images))
    x = train.to_tensor(images[:512], mean=0.5, std=0.25)
    config = train.TrainConfig(model="vit_base_patch16_224", batch_size=batch, steps_min=steps, steps_max=steps, checkpoint_every=10**6,
                               channels_last=False, eval_batch_size=256)
    names = [str(i) for i in range(1000)]
    t0 = time.perf_counter()
    metrics, info = train.train_run(images, labels, {"val": (x, torch.as_tensor(labels[:512]))}, names, steps, config, tmp / "vit", progress=False)
    return {"model": "vit_base_patch16_224", "batch": batch, "steps": steps, "images_per_s": info["images_per_s"], "train_s": info["train_s"],
            "total_s": round(time.perf_counter() - t0, 1), "device": str(next(iter([torch.cuda.get_device_name(0)])))}


def check_clip(tmp: Path, n: int, batch: int) -> dict:
    import open_clip

    from synkit import clip

    rng = np.random.default_rng(0)
    config = clip.ClipConfig(model="ViT-B-16", epochs=1, batch_size=batch, image_size=224, mixed_precision="bf16", checkpoint_every=10**6)
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    tokens = tokenizer([f"a photo of thing {i % 100}" for i in range(n)])
    bank = torch.from_numpy(rng.standard_normal((2 * n, 3, 224, 224)).astype(np.float32))
    evals = {"val": (bank[:256], torch.as_tensor(rng.integers(0, 10, 256)))}
    tasks = [{"name": "val", "set": "val", "classes": [f"thing {i}" for i in range(10)], "mapping": np.arange(10)}]
    out = {"model": "ViT-B-16", "captions": n, "batch": batch}
    zero_shot_error = []

    def evaluate(model):
        try:
            return clip.zero_shot(model, tokenizer, evals, tasks, clip.FASHION_TEMPLATES)
        except Exception as err:  # noqa: BLE001 - the check reports what a GPU user would hit
            zero_shot_error.append(f"{type(err).__name__}: {err}")
            return pd.DataFrame([{"eval_set": "val", "task": "classes", "top1": float("nan"), "loss": float("nan")}])

    _, info = clip.train_clip(bank, tokens, "real", config, tmp / "clip", evaluate, progress=False)
    out.update(pairs_per_s=info["pairs_per_s"], train_s=info["train_s"], zero_shot="ok" if not zero_shot_error else zero_shot_error[0][:300])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--gen-images", type=int, default=64)
    ap.add_argument("--gen-steps", type=int, default=25)
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--clip-captions", type=int, default=4096)
    ap.add_argument("--clip-batch", type=int, default=256)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA device; this machine has none.")
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    parts = {"generation": lambda t: check_generation(t, args.gen_images, args.gen_steps),
             "train_vit_b16": lambda t: check_train(t, args.train_steps, args.train_batch),
             "clip_vit_b16": lambda t: check_clip(t, args.clip_captions, args.clip_batch)}
    for name, fn in parts.items():
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                results[name] = fn(Path(tmp))
            except Exception as err:  # noqa: BLE001
                results[name] = {"error": f"{type(err).__name__}: {err}"[:500], "trace": traceback.format_exc()[-1500:]}
        results[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(name, json.dumps(results[name], default=str), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
