"""The GPU check: the full-size paths of the paper's study, run through synkit's own code with
random weights built from configs (nothing is downloaded), each timed against a plain baseline.

- **generation**: a Stable-Diffusion-1.5-architecture pipeline (860M-parameter UNet, SD's VAE, a
  CLIP ViT-L text encoder) through ``synkit.generate.render`` at 512 px / 25 steps in fp16, against
  diffusers' default pipeline call on the same prompts (images/s ratio);
- **train_vit_b16**: ViT-B/16 supervised steps through ``synkit.classify.train.train_run`` (accelerate, bf16
  autocast, sharded evaluation) against a plain PyTorch loop (images/s ratio); the run's saved
  model is loaded back by ``timm.create_model("local-dir:...")`` and must give the same logits;
- **clip_vit_b16**: open_clip ViT-B-16 steps through ``synkit.clip.train.train_clip`` with zero-shot
  evaluation on the device (``clip_zero_shot.zero_shot``); the saved model is loaded back by
  ``open_clip.create_model_and_transforms("local-dir:...")`` and must give the same features;
- **two_processes** (only with two or more GPUs): a small ladder under ``accelerate launch`` on two
  processes (``runs.launch``), its evaluation sharded and gathered.

On a machine without CUDA the same paths run at tiny sizes (``--tiny``, the default there), so the
check cannot rot: the test suite runs it. ``make gpu-check`` runs it and writes
``outputs/gpu_check.json``; a part that fails is reported with its error and the check exits 1.

    python -m synkit.study.gpu_check [--tiny] [--out outputs/gpu_check.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from synkit.core.layout import StudyFiles


@dataclass(frozen=True)
class Sizes:
    """How large each part runs: ``FULL`` on a GPU (the paper's architectures), ``TINY`` on a CPU."""

    unet: dict  # UNet2DConditionModel arguments
    vae_channels: tuple
    text_layers: int
    text_width: int
    gen_size: int
    gen_steps: int
    gen_images: int
    gen_batch: int
    vit: str
    vit_kwargs: dict
    vit_size: int
    train_steps: int
    train_batch: int
    clip_model: str
    clip_size: int
    clip_captions: int
    clip_batch: int
    dtype: str


FULL = Sizes(unet=dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8), vae_channels=(128, 256, 512, 512), text_layers=12,
             text_width=768, gen_size=512, gen_steps=25, gen_images=64, gen_batch=16, vit="vit_base_patch16_224", vit_kwargs={},
             vit_size=224, train_steps=60, train_batch=128, clip_model="ViT-B-16", clip_size=224, clip_captions=4096, clip_batch=256,
             dtype="float16")
TINY = Sizes(unet=dict(sample_size=8, cross_attention_dim=32, attention_head_dim=4, block_out_channels=(32, 64), layers_per_block=1,
                       down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                       norm_num_groups=8),
             vae_channels=(8, 8, 16, 16), text_layers=2, text_width=32, gen_size=64, gen_steps=2, gen_images=8, gen_batch=4,
             vit="vit_tiny_patch16_224", vit_kwargs={"img_size": 32, "depth": 2}, vit_size=32, train_steps=4, train_batch=16,
             clip_model="synkit-fashion-clip", clip_size=28, clip_captions=64, clip_batch=16, dtype="float32")


def sd15_pipeline(folder: Path, sizes: Sizes) -> Path:
    """A StableDiffusionPipeline with Stable Diffusion 1.5's architecture (``FULL``) or a tiny one, random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**sizes.unet)
    n = len(sizes.vae_channels)
    vae = AutoencoderKL(block_out_channels=sizes.vae_channels, down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
                        layers_per_block=2 if sizes is FULL else 1, latent_channels=4, sample_size=sizes.gen_size,
                        norm_num_groups=32 if sizes is FULL else 8)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=sizes.text_width, intermediate_size=4 * sizes.text_width, num_hidden_layers=sizes.text_layers,
                                        num_attention_heads=12 if sizes is FULL else 4, max_position_embeddings=77, vocab_size=49408))
    # open_clip ships the CLIP BPE vocabulary offline: written in the Hugging Face tokenizer's format
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
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=DDIMScheduler(steps_offset=1, clip_sample=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "sd15-random")
    return folder / "sd15-random"


def check_generation(tmp: Path, sizes: Sizes, device: str) -> dict:
    """synkit.generate.render against diffusers' default call (same pipeline, prompts, steps, guidance)."""
    from diffusers import StableDiffusionPipeline

    from synkit.generate import render as generate
    from synkit.generate import plan

    path = sd15_pipeline(tmp, sizes)
    n, classes = sizes.gen_images, 8
    prompts = pd.DataFrame({"prompt_set": "classnames", "class_index": np.arange(classes).repeat(n // classes),
                            "class_name": [f"class {i // (n // classes)}" for i in range(n)], "prompt_index": np.tile(np.arange(n // classes), classes),
                            "prompt": [f"a photo of a thing number {i}" for i in range(n)], "source_id": ""})
    prompts.to_parquet(tmp / "prompts.parquet")
    job = plan.GenJob(prompts=str(tmp / "prompts.parquet"), prompt_set="classnames", guidance_scale=2.0, images_per_class=n // classes,
                          out_dir=str(tmp / "gen"), generator=str(path), steps=sizes.gen_steps, height=sizes.gen_size, width=sizes.gen_size,
                          resolution=min(256, sizes.gen_size), batch_size=sizes.gen_batch, shard_size=n, dtype=sizes.dtype)
    stats = generate.generate_config(job, progress=False)
    dtype = getattr(torch, sizes.dtype)
    pipe = StableDiffusionPipeline.from_pretrained(path, dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    texts = prompts["prompt"].tolist()
    pipe(texts[: sizes.gen_batch], num_inference_steps=sizes.gen_steps, guidance_scale=2.0, height=sizes.gen_size, width=sizes.gen_size)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for i in range(0, n, sizes.gen_batch):
        pipe(texts[i : i + sizes.gen_batch], num_inference_steps=sizes.gen_steps, guidance_scale=2.0, height=sizes.gen_size, width=sizes.gen_size)
    _sync(device)
    plain = n / (time.perf_counter() - t0)
    return {"images": stats["images"], "steps": sizes.gen_steps, "size": sizes.gen_size, "dtype": sizes.dtype,
            "synkit_images_per_s": round(stats["images_per_s"], 2), "diffusers_images_per_s": round(plain, 2),
            "ratio": round(stats["images_per_s"] / plain, 3), "max_pixel_diff": _first_image_diff(pipe, job, sizes)}


def _first_image_diff(pipe, job, sizes: Sizes) -> int:
    """The largest difference (uint8 levels) between synkit's first stored image and diffusers' own call for its prompt and
    seed, stored the same way: synkit's batching and precomputed prompt embeddings must not change an image."""
    from synkit.data import shards
    from synkit.generate import render as generate

    images, manifest = shards.read_images(job.out_dir, per_class=1, checksums=False)
    row = manifest.iloc[0]
    out = pipe([row["prompt"]], num_inference_steps=sizes.gen_steps, guidance_scale=job.guidance_scale, height=sizes.gen_size,
               width=sizes.gen_size, output_type="np", generator=[torch.Generator(device="cpu").manual_seed(int(row["seed"]))]).images
    ref = np.asarray(generate.finish(generate.to_uint8(out)[0], job.resolution, job.resize_mode, job.mode))
    return int(np.abs(ref.astype(int) - images[0].astype(int)).max())


def check_train(tmp: Path, sizes: Sizes, device: str) -> dict:
    """ViT-B/16 steps through train.train_run against a plain loop; the saved timm folder reloads to the same logits."""
    import timm

    from synkit.classify import train
    from synkit.classify import data

    rng = np.random.default_rng(0)
    s, batch, steps = sizes.vit_size, sizes.train_batch, sizes.train_steps
    images = rng.integers(0, 256, (batch * 4, s, s, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, len(images))
    x = data.to_tensor(images[:256])
    config = train.TrainConfig(model=sizes.vit, model_kwargs=sizes.vit_kwargs, batch_size=batch, steps_min=steps, steps_max=steps,
                               checkpoint_every=10**6, channels_last=False, eval_batch_size=256)
    names = [str(i) for i in range(1000)]
    metrics, info = train.train_run(images, labels, {"val": (x, torch.as_tensor(labels[:256]))}, names, steps, config, tmp / "vit", progress=False)
    # the plain loop: same model, optimizer, batches and precision, no synkit machinery
    model = timm.create_model(sizes.vit, num_classes=1000, **sizes.vit_kwargs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device == "cuda")
    xs, ys = data.to_tensor(images).to(device), torch.as_tensor(labels).to(device)
    for i in range(steps + 2):
        if i == 2:
            _sync(device)
            t0 = time.perf_counter()
        j = (i * batch) % len(ys)
        with torch.autocast(torch.device(device).type, torch.bfloat16):
            loss = F.cross_entropy(model(xs[j : j + batch]).float(), ys[j : j + batch])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    plain = steps * batch / (time.perf_counter() - t0)
    # the saved model, through timm's own loader
    trained = train.load_model(tmp / "vit" / "model").to(device)
    with torch.inference_mode():
        again = trained(x[:8].to(device)).float().cpu()
    saved = timm.create_model(f"local-dir:{(tmp / 'vit' / 'model').resolve()}", pretrained=True).eval()
    with torch.inference_mode():
        reloaded = saved(x[:8]).float()
    return {"model": sizes.vit, "batch": batch, "steps": steps, "synkit_images_per_s": info["images_per_s"],
            "plain_images_per_s": round(plain, 1), "ratio": round(info["images_per_s"] / plain, 3),
            "val_top1": float(metrics.query("class_index == -1")["top1"].iloc[0]),
            "timm_reload_max_diff": float((again - reloaded).abs().max())}


def check_clip(tmp: Path, sizes: Sizes, device: str) -> dict:
    """open_clip steps through clip_train.train_clip with zero-shot on the device; the saved folder reloads in open_clip."""
    import open_clip

    from synkit.clip import train as clip_train
    from synkit.clip import zero_shot as clip_zero_shot

    clip_train.register_models()
    rng = np.random.default_rng(0)
    n, s = sizes.clip_captions, sizes.clip_size
    config = clip_train.ClipConfig(model=sizes.clip_model, epochs=1, batch_size=sizes.clip_batch, image_size=s,
                             mixed_precision="bf16", checkpoint_every=10**6)
    tokenizer = open_clip.get_tokenizer(sizes.clip_model)
    tokens = tokenizer([f"a photo of thing {i % 100}" for i in range(n)])
    bank = torch.from_numpy(rng.standard_normal((2 * n, 3, s, s)).astype(np.float32))
    evals = {"val": (bank[:256], torch.as_tensor(rng.integers(0, 10, min(256, 2 * n))))}
    tasks = [{"name": "val", "set": "val", "classes": [f"thing {i}" for i in range(10)], "mapping": np.arange(10)}]
    evaluate = lambda model, acc: clip_zero_shot.zero_shot(model, tokenizer, evals, tasks, clip_zero_shot.FASHION_TEMPLATES, accelerator=acc)  # noqa: E731
    metrics, info = clip_train.train_clip(bank, tokens, "real", config, tmp / "clip", evaluate, progress=False)
    model, preprocess, _ = clip_train.load_model(tmp / "clip" / "model")
    again, _, _ = open_clip.create_model_and_transforms(f"local-dir:{(tmp / 'clip' / 'model').resolve()}")
    with torch.inference_mode():
        a = model.encode_image(bank[:4]).float()
        b = again.eval().encode_image(bank[:4]).float()
    return {"model": sizes.clip_model, "captions": n, "batch": sizes.clip_batch, "pairs_per_s": info["pairs_per_s"], "train_s": info["train_s"],
            "zero_shot_top1": float(metrics["top1"].iloc[0]), "open_clip_reload_max_diff": float((a - b).abs().max())}


def check_two_processes(tmp: Path, sizes: Sizes, device: str) -> dict:
    """A two-process training launch (accelerate) of a small ladder; its metrics must match one process's run count."""
    from synkit.classify import ladder
    from synkit.core import files
    from synkit.engine import runs

    job = {"study_dir": str(tmp), "world": "fashion", "web_size": 2000, "real_size": 1000, "sources": ["real"], "min_size": 500,
           "max_factor": 1.0, "eval_size": 500, "train_config": {"steps_min": 5, "steps_max": 10, "batch_size": 64}}
    job_file = files.write_json(job, tmp / "job.json")
    t0 = time.perf_counter()
    runs.launch("synkit.classify.ladder", [job_file], 2)
    table = pd.read_parquet(StudyFiles(tmp).train_metrics)
    planned = ladder.plan_runs(ladder.TrainJob(**job), pd.DataFrame({"config": [], "images": []}))
    return {"processes": 2, "runs": int(table[["size", "seed"]].drop_duplicates().shape[0]),
            "runs_planned": int(planned[["size", "seed"]].drop_duplicates().shape[0]), "seconds": round(time.perf_counter() - t0, 1)}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def disagreement(name: str, result: dict) -> str | None:
    """What makes a part fail although it ran: synkit's image differs from diffusers' own; a saved model does not reload
    to the same outputs; the two-process ladder does not finish every planned run."""
    if name == "generation" and result["max_pixel_diff"] > 1:
        return f"synkit's first image differs from diffusers' call by {result['max_pixel_diff']} levels (at most 1)"
    for key in ("timm_reload_max_diff", "open_clip_reload_max_diff"):
        if key in result and not result[key] < 1e-4:
            return f"{key} = {result[key]} (below 1e-4 expected)"
    if name == "two_processes" and result["runs"] != result["runs_planned"]:
        return f"{result['runs']} of {result['runs_planned']} planned runs finished"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (the default without CUDA)")
    ap.add_argument("--out", default=None, help="write the results here as JSON")
    ap.add_argument("--parts", default="generation,train_vit_b16,clip_vit_b16,two_processes")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    sizes = TINY if (args.tiny or not cuda) else FULL
    results = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "gpus": torch.cuda.device_count(), "sizes": "tiny" if sizes is TINY else "full",
               "torch": torch.__version__}
    parts = {"generation": check_generation, "train_vit_b16": check_train, "clip_vit_b16": check_clip, "two_processes": check_two_processes}
    failed = []
    for name in args.parts.split(","):
        if name not in parts:
            raise SystemExit(f"part {name!r} is unknown; valid parts are {', '.join(parts)}.")
        if name == "two_processes" and torch.cuda.device_count() < 2:
            results[name] = {"skipped": f"needs two or more GPUs; this machine has {torch.cuda.device_count()}"}
            print(name, json.dumps(results[name]), flush=True)
            continue
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                results[name] = parts[name](Path(tmp), sizes, device)
                problem = disagreement(name, results[name])
                if problem:
                    raise AssertionError(problem)
            except Exception as err:  # noqa: BLE001 - every part runs; a failure is reported and fails the check
                results[name] = {"error": f"{type(err).__name__}: {err}"[:500], "trace": traceback.format_exc()[-1500:]}
                failed.append(name)
        results[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(name, json.dumps(results[name], default=str), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    if failed:
        print(f"gpu check: {', '.join(failed)} failed", file=sys.stderr)
        return 1
    print(f"gpu check passed on {results['device']} ({results['sizes']} sizes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
