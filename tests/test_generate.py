"""Generation through a tiny random Stable Diffusion pipeline loaded from a local folder."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synkit.data import prompts
from synkit.generate.render import generate_config
from synkit.generate.plan import GenJob, config_name, plan_images
from synkit.data.shards import ShardError, read_images, verify
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def prompt_file(fashion, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.parquet"
    prompts.build_prompts(fashion, ["classnames", "clip_templates_7"]).to_parquet(path)
    return path


def make_job(prompt_file, tiny_sd, out_dir: Path, **kw) -> GenJob:
    fields = dict(
        prompts=str(prompt_file), prompt_set="clip_templates_7", guidance_scale=2.0, images_per_class=4,
        out_dir=str(out_dir), generator=str(tiny_sd), generator_name="tiny", steps=2, height=32, width=32,
        resolution=28, resize_mode="center_crop", mode="L", batch_size=4, shard_size=8,
    )
    fields.update(kw)
    return GenJob(**fields)


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.tar"))}


def test_plan_order_prompts_and_seeds(prompt_file):
    table = pd.read_parquet(prompt_file)
    plan = plan_images(table, "clip_templates_7", 10, seed=0, config="x")
    assert len(plan) == 100 and plan["key"].is_unique and plan["seed"].is_unique
    assert plan["class_index"].tolist()[:10] == list(range(10))  # index-major: every prefix is class-balanced
    per_class = plan[plan.class_index == 3]
    assert per_class["prompt_index"].iloc[:7].nunique() == 7  # the first 7 images use all 7 templates
    assert per_class["prompt_index"].value_counts().max() - per_class["prompt_index"].value_counts().min() <= 1
    assert plan.groupby("class_index")["prompt_index"].first().nunique() > 1  # classes are shuffled apart
    again = plan_images(table, "clip_templates_7", 10, seed=0, config="x")
    pd.testing.assert_frame_equal(plan, again)
    assert not plan["seed"].equals(plan_images(table, "clip_templates_7", 10, seed=0, config="y")["seed"])
    with pytest.raises(ValueError, match="prompt set 'in_captions' is not in the prompts table; it has classnames, clip_templates_7"):
        plan_images(table, "in_captions", 1, 0, "x")


def test_generates_shards_manifest_and_metadata(prompt_file, tiny_sd, tmp_path):
    job = make_job(prompt_file, tiny_sd, tmp_path / config_name("tiny", "clip_templates_7", 2.0))
    assert job.name == "tiny-clip_templates_7-cfg2"
    stats = generate_config(job, progress=False)
    assert stats["made"] == 40 and stats["images_per_s"] > 0
    manifest = verify(job.out_dir)
    assert len(manifest) == 40 and manifest["shard"].nunique() == 5
    images, rows = read_images(job.out_dir, per_class=2)
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8
    assert sorted(rows["class_index"].value_counts()) == [2] * 10
    import webdataset as wds

    sample = next(iter(wds.WebDataset(str(Path(job.out_dir) / "shard-00000.tar"), shardshuffle=False)))
    meta = json.loads(sample["json"])
    assert meta["guidance_scale"] == 2.0 and meta["steps"] == 2 and meta["prompt_set"] == "clip_templates_7"
    assert sample["txt"].decode() == meta["prompt"] and int(sample["cls"]) == meta["class_index"]
    assert meta["seed"] == int(manifest.loc[manifest.key == sample["__key__"], "seed"].iloc[0])
    # a rerun makes nothing new
    assert generate_config(job, progress=False)["made"] == 0


def test_the_same_generator_at_another_path_keeps_its_images(prompt_file, tiny_sd, tmp_path):
    import shutil

    from synkit.generate.plan import generator_id

    job = make_job(prompt_file, tiny_sd, tmp_path / "cfg")
    generate_config(job, progress=False)
    before = shard_bytes(Path(job.out_dir))
    moved = tmp_path / "moved" / "pipeline"
    shutil.copytree(tiny_sd, moved)
    assert generator_id(str(moved)) == generator_id(str(tiny_sd)) != generator_id("org/some-model")
    again = make_job(prompt_file, tiny_sd, tmp_path / "cfg", generator=str(moved))
    assert generate_config(again, progress=False)["made"] == 0  # nothing regenerated
    assert shard_bytes(Path(job.out_dir)) == before
    meta = json.loads(next(iter(__import__("webdataset").WebDataset(str(Path(job.out_dir) / "shard-00000.tar"), shardshuffle=False)))["json"])
    assert meta["generator"] == generator_id(str(tiny_sd)) and str(tiny_sd) not in json.dumps(meta)  # no path in the shard


def test_shards_carry_sample_counts_for_timm_and_open_clip(prompt_file, tiny_sd, tmp_path):
    # 30 images in shards of 8: the counts the readers take (no "|N" for timm, no --train-num-samples for open_clip)
    job = make_job(prompt_file, tiny_sd, tmp_path / "counts", images_per_class=3, shard_size=8)
    generate_config(job, progress=False)
    out = Path(job.out_dir)
    assert json.loads((out / "sizes.json").read_text()) == {f"shard-{k:05d}.tar": (8 if k < 3 else 6) for k in range(4)}
    import timm.data
    from open_clip_train.data import get_dataset_size

    dataset = timm.data.create_dataset("wds/synkit", root=str(out), split="train", is_training=True, batch_size=1, target_key="class_index")
    assert len(dataset) == 30
    labels = [int(target) for _, target in dataset]
    assert sorted(labels) == sorted(pd.read_parquet(out / "manifest.parquet")["class_index"].tolist())
    assert get_dataset_size(str(out / "shard-{00000..00003}.tar")) == (30, 4)


def test_guidance_changes_images_and_params_change_restarts(prompt_file, tiny_sd, tmp_path):
    a = make_job(prompt_file, tiny_sd, tmp_path / "a" / "same", guidance_scale=1.0)
    b = make_job(prompt_file, tiny_sd, tmp_path / "b" / "same", guidance_scale=8.0)
    generate_config(a, progress=False)
    generate_config(b, progress=False)
    ia, _ = read_images(a.out_dir)
    ib, _ = read_images(b.out_dir)
    assert not np.array_equal(ia, ib)
    changed = make_job(prompt_file, tiny_sd, tmp_path / "a" / "same", guidance_scale=1.0, steps=3)
    assert generate_config(changed, progress=False)["made"] == 40


def test_corrupt_and_truncated_shards_are_named(prompt_file, tiny_sd, tmp_path):
    job = make_job(prompt_file, tiny_sd, tmp_path / "cfg")
    generate_config(job, progress=False)
    reference = shard_bytes(Path(job.out_dir))
    shard = Path(job.out_dir) / "shard-00002.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="shard .*shard-00002.tar is corrupt"):
        verify(job.out_dir)
    shard.write_bytes(bytes(data[:3000]))
    with pytest.raises(ShardError, match="shard .*shard-00002.tar is truncated"):
        read_images(job.out_dir)
    shard.unlink()
    with pytest.raises(ShardError, match="shard .*shard-00002.tar is missing"):
        verify(job.out_dir)
    shard.write_bytes(bytes(data))  # corrupt again: a rerun notices and redoes exactly that shard
    assert generate_config(job, progress=False)["made"] == 8
    assert shard_bytes(Path(job.out_dir)) == reference
    (Path(job.out_dir) / "manifest.parquet").unlink()
    with pytest.raises(ShardError, match="has no manifest.parquet"):
        verify(job.out_dir)


def test_bad_job_values(prompt_file, tiny_sd, tmp_path):
    with pytest.raises(ValueError, match="images_per_class=0"):
        generate_config(make_job(prompt_file, tiny_sd, tmp_path / "x", images_per_class=0), progress=False)
    with pytest.raises(ValueError, match="resize_mode='stretch' is invalid"):
        generate_config(make_job(prompt_file, tiny_sd, tmp_path / "y", resize_mode="stretch"), progress=False)
    with pytest.raises(ValueError, match="resolution=64 is larger than the generated 32x32"):
        generate_config(make_job(prompt_file, tiny_sd, tmp_path / "z", resolution=64), progress=False)
    with pytest.raises(FileNotFoundError, match="generator=.*that folder does not exist"):
        generate_config(make_job(prompt_file, tiny_sd, tmp_path / "w", generator=str(tmp_path / "nope")), progress=False)


def run_cli(job_file: Path, *launcher: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [*launcher, "-m", "synkit.generate.render", str(job_file)] if launcher else [sys.executable, "-m", "synkit.generate.render", str(job_file)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_sigkill_then_resume_is_byte_identical(prompt_file, tiny_sd, tmp_path):
    ref = make_job(prompt_file, tiny_sd, tmp_path / "ref" / "cfg", images_per_class=40, shard_size=10, batch_size=5)
    generate_config(ref, progress=False)
    job = make_job(prompt_file, tiny_sd, tmp_path / "killed" / "cfg", images_per_class=40, shard_size=10, batch_size=5)
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(asdict(job)))
    out = Path(job.out_dir)
    proc = subprocess.Popen([sys.executable, "-m", "synkit.generate.render", str(job_file)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(list(out.glob("shard-*.tar"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("shard-*.tar")))
    assert not (out / "manifest.parquet").exists() and 3 <= done_before < 40, "the kill must land mid-run"
    run_cli(job_file)
    assert shard_bytes(out) == shard_bytes(Path(ref.out_dir))
    assert len(verify(out)) == 400 and not list(out.glob("*.tmp"))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "manifest.parquet"), pd.read_parquet(Path(ref.out_dir) / "manifest.parquet"))


@pytest.mark.slow
def test_two_accelerate_processes_equal_one(prompt_file, tiny_sd, tmp_path):
    # Floating-point sums depend on the number of threads, so both runs use one thread per process
    # (what accelerate's launcher sets): equal bytes hold for equal hardware, libraries and threads.
    one = make_job(prompt_file, tiny_sd, tmp_path / "one" / "cfg", images_per_class=6)
    two = make_job(prompt_file, tiny_sd, tmp_path / "two" / "cfg", images_per_class=6)
    (tmp_path / "one.json").write_text(json.dumps(asdict(one)))
    run_cli(tmp_path / "one.json", env={"OMP_NUM_THREADS": "1"})
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(asdict(two)))
    done = run_cli(
        job_file, sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert '"made": 32' in done.stdout  # the main process made its half: 4 of the 8 shards
    assert shard_bytes(Path(two.out_dir)) == shard_bytes(Path(one.out_dir))
    assert len(verify(two.out_dir)) == 60


def test_more_images_keep_complete_shards(prompt_file, tiny_sd, tmp_path):
    small = make_job(prompt_file, tiny_sd, tmp_path / "grow" / "cfg", images_per_class=3)  # 30 images: 3 full shards + 6
    generate_config(small, progress=False)
    before = shard_bytes(Path(small.out_dir))
    big = make_job(prompt_file, tiny_sd, tmp_path / "grow" / "cfg", images_per_class=5)
    assert generate_config(big, progress=False)["made"] == 50 - 24  # the 3 complete shards are kept
    ref = make_job(prompt_file, tiny_sd, tmp_path / "ref" / "cfg", images_per_class=5)
    generate_config(ref, progress=False)
    after = shard_bytes(Path(big.out_dir))
    assert after == shard_bytes(Path(ref.out_dir))
    assert all(after[k] == before[k] for k in ("shard-00000.tar", "shard-00001.tar", "shard-00002.tar"))
    shrink = make_job(prompt_file, tiny_sd, tmp_path / "grow" / "cfg", images_per_class=2)
    assert generate_config(shrink, progress=False)["made"] == 4
    assert len(verify(shrink.out_dir)) == 20


def test_deepfloyd_if_cascade(prompt_file, tiny_if, tmp_path):
    stage1, stage2 = tiny_if
    job = GenJob(
        prompts=str(prompt_file), prompt_set="classnames", guidance_scale=1.5, images_per_class=2, out_dir=str(tmp_path / "if"),
        generator=str(stage1), stages=[str(stage2)], steps=2, resolution=16, batch_size=4, shard_size=10,
    )
    assert generate_config(job, progress=False)["made"] == 20
    images, rows = read_images(job.out_dir)
    assert images.shape == (20, 16, 16, 3)  # stage II doubles stage I's 8 px


def test_amused_masked_token_model(prompt_file, tiny_amused, tmp_path):
    kw = dict(
        prompts=str(prompt_file), prompt_set="classnames", guidance_scale=0.5, images_per_class=2, generator=str(tiny_amused),
        steps=2, height=8, width=8, resolution=16, batch_size=4, shard_size=10,
    )
    a, b = GenJob(out_dir=str(tmp_path / "a" / "m"), **kw), GenJob(out_dir=str(tmp_path / "b" / "m"), **kw)
    generate_config(a, progress=False)
    generate_config(b, progress=False)
    assert shard_bytes(Path(a.out_dir)) == shard_bytes(Path(b.out_dir))
    import webdataset as wds

    sample = next(iter(wds.WebDataset(str(Path(a.out_dir) / "shard-00000.tar"), shardshuffle=False)))
    assert json.loads(sample["json"])["seed_scope"] == "batch"
