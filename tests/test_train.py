import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from synkit.engine import runs

from synkit.classify import train
from synkit.classify import ladder
from synkit.classify import data
from tests.conftest import kill_at_checkpoint


def test_ladder_sizes_are_log_spaced_and_contain_d_i():
    assert train.ladder_sizes(10_000, 625, 2.0) == [625, 1250, 2500, 5000, 10_000, 20_000]
    assert train.ladder_sizes(10_000, 625, 1.0) == [625, 1250, 2500, 5000, 10_000]
    assert 10_000 in train.ladder_sizes(10_000, 1000, 4.0, per_doubling=2)
    # unset (0), the ladder follows D_I: six sizes over 1.5 decades up to it, then the synthetic extension
    assert train.ladder_sizes(10_000, 0, 2.0) == [312, 625, 1250, 2500, 5000, 10_000, 20_000]
    assert train.ladder_sizes(4000, 0, 1.0) == [125, 250, 500, 1000, 2000, 4000]
    with pytest.raises(ValueError, match="min_size=-1"):
        train.ladder_sizes(10_000, -1)


def test_steps_are_linear_in_log_size():
    steps = [train.schedule_steps(s, 625, 20_000, 100, 400) for s in (625, 1250, 2500, 5000, 10_000, 20_000)]
    assert steps[0] == 100 and steps[-1] == 400
    assert np.allclose(np.diff(steps), 60, atol=1)


def test_balanced_order_prefixes_are_nested_and_balanced():
    labels = np.repeat(np.arange(10), 50)[np.random.default_rng(0).permutation(500)]
    order = data.balanced_order(labels, seed=3)
    assert sorted(order) == list(range(500))
    for n in (10, 100, 250):
        assert np.bincount(labels[order[:n]], minlength=10).tolist() == [n // 10] * 10
    assert np.array_equal(order, data.balanced_order(labels, seed=3))
    assert not np.array_equal(order, data.balanced_order(labels, seed=4))


def test_subsets_nest_and_mixes_keep_their_fraction():
    real = (np.arange(100, dtype=np.uint8).reshape(100, 1, 1).repeat(2, 1), np.repeat(np.arange(10), 10))
    synth = (np.full((60, 2, 1), 255, np.uint8), np.tile(np.arange(10), 6))
    small, _ = data.subset(data.Source("real"), 20, real, None, 0)
    big, _ = data.subset(data.Source("real"), 40, real, None, 0)
    assert {x.tobytes() for x in small} <= {x.tobytes() for x in big}
    mix = data.Source("c+real:0.25", "c", 0.25)
    images, labels = data.subset(mix, 40, real, synth, 0)
    assert (images[:, 0, 0] == 255).sum() == 30 and len(labels) == 40
    with pytest.raises(ValueError, match="configuration c has 60 images, fewer than the 70"):
        data.subset(mix, 93, real, synth, 0)


def test_each_seed_draws_its_own_nested_subsets_and_a_mix_shares_real_alones_draw():
    real = (np.arange(200, dtype=np.uint8).reshape(200, 1, 1), np.repeat(np.arange(10), 20))
    synth = (np.arange(200, dtype=np.uint8).reshape(200, 1, 1) + 50, np.tile(np.arange(10), 20))
    keys = lambda images: {x.tobytes() for x in images}  # noqa: E731
    for seed in ([0, 0], [0, 1]):
        small, big = (keys(data.subset(data.Source("real"), n, real, None, seed)[0]) for n in (20, 100))
        assert small <= big  # nested within a seed
        s_small, s_big = (keys(data.subset(data.Source("c", "c"), n, real, synth, seed)[0]) for n in (20, 100))
        assert s_small <= s_big
    a, b = (keys(data.subset(data.Source("real"), 50, real, None, seed)[0]) for seed in ([0, 0], [0, 1]))
    assert a != b and len(a & b) < 40  # two seeds: two draws of the real pool
    a, b = (keys(data.subset(data.Source("c", "c"), 50, real, synth, seed)[0]) for seed in ([0, 0], [0, 1]))
    assert a != b  # and of the generated pool
    real_part = data.subset(data.Source("c+real:0.5", "c", 0.5), 60, real, synth, [0, 1])[0][:30]
    assert keys(real_part) == keys(data.subset(data.Source("real"), 30, real, None, [0, 1])[0])  # the mix adds to real's own draw


def test_a_mix_trains_the_steps_of_real_alone_at_its_real_count():
    configs = pd.DataFrame({"config": ["m-classnames-cfg2"], "prompt_set": ["classnames"], "guidance_scale": [2.0], "images": [2000]})
    job = ladder.TrainJob(study_dir="x", real_size=400, sources=["real", "classnames@2+real:0.5"], sizes=[50, 100, 200, 400, 800])
    plan = ladder.plan_runs(job, configs).set_index(["source", "size"])["steps"]
    for n in (100, 200, 400):
        assert plan[("m-classnames-cfg2+real:0.5", 2 * n)] == plan[("real", n)]


def test_sources_resolve_and_bad_ones_name_the_valid_choices():
    configs = pd.DataFrame({"config": ["m-classnames-cfg2"], "prompt_set": ["classnames"], "guidance_scale": [2.0], "images": [200]})
    assert data.parse_source("classnames@2", configs).config == "m-classnames-cfg2"
    assert data.parse_source("m-classnames-cfg2+real:0.5", configs).real_fraction == 0.5
    with pytest.raises(ValueError, match="valid sources are real, m-classnames-cfg2"):
        data.parse_source("classnames@3", configs)
    with pytest.raises(ValueError, match="real fraction '1.5'"):
        data.parse_source("classnames@2+real:1.5", configs)
    job = ladder.TrainJob(study_dir="x", real_size=400, sources=["real", "classnames@2"], sizes=[50, 100, 200, 400])
    plan = ladder.plan_runs(job, configs)
    assert plan.groupby("source")["size"].max().to_dict() == {"real": 400, "m-classnames-cfg2": 200}
    assert plan["steps"].is_monotonic_increasing or plan.groupby("source")["steps"].apply(lambda s: s.is_monotonic_increasing).all()
    with pytest.raises(ValueError, match="has 200 images, enough for 2 of the sizes"):
        ladder.plan_runs(ladder.TrainJob(study_dir="x", real_size=400, sources=["classnames@2"], sizes=[100, 200, 300, 400]), configs)
    with pytest.raises(ValueError, match="train_config key 'lr_max' is unknown"):
        ladder.plan_runs(ladder.TrainJob(study_dir="x", train_config={"lr_max": 1}), configs)


def test_plan_repeats_every_run_over_seeds_and_adds_capacity_runs():
    configs = pd.DataFrame({"config": ["m-classnames-cfg2"], "prompt_set": ["classnames"], "guidance_scale": [2.0], "images": [800]})
    job = ladder.TrainJob(study_dir="x", real_size=400, sources=["real", "classnames@2"], sizes=[100, 200, 400, 800], seed=5, seeds=3,
                         sweep_size=200, capacity_source="classnames@2", capacity_config={"model_kwargs": {"channels": [8, 8, 8, 8]}})
    plan = ladder.plan_runs(job, configs)
    assert sorted(plan["seed"].unique()) == [5, 6, 7]
    per_seed = plan.groupby("seed").size()
    assert (per_seed == per_seed.iloc[0]).all()
    # real 3 sizes + classnames 4 sizes (its 200 run is also the sweep run) + 4 capacity runs, per seed
    assert per_seed.iloc[0] == 3 + 4 + 4
    small = plan[plan["model"] == "small"]
    assert set(small["kind"]) == {"capacity"} and sorted(small["size"].unique()) == [100, 200, 400, 800]
    assert plan.loc[(plan["kind"] == "ladder") & (plan["size"] == 200) & (plan["source"] == "m-classnames-cfg2"), "sweep"].all()
    assert not small["sweep"].any()
    assert ladder.capacity_model(job).model_kwargs == {"channels": [8, 8, 8, 8]}
    with pytest.raises(ValueError, match="seeds=0 is invalid"):
        ladder.plan_runs(ladder.TrainJob(study_dir="x", real_size=400, sizes=[100, 200, 400], seeds=0), configs)
    with pytest.raises(ValueError, match="capacity_config is empty"):
        ladder.plan_runs(ladder.TrainJob(study_dir="x", real_size=400, sizes=[100, 200, 400], capacity_source="real"), configs)
    with pytest.raises(ValueError, match="train_config key 'width' is unknown"):
        ladder.plan_runs(ladder.TrainJob(study_dir="x", real_size=400, sizes=[100, 200, 400], capacity_source="real",
                                       capacity_config={"width": 3}), configs)


def test_the_sweep_trains_only_the_named_prompt_sets():
    configs = pd.DataFrame({"config": ["m-classnames-cfg2", "m-classnames-cfg4", "m-in_captions-cfg2"],
                            "prompt_set": ["classnames", "classnames", "in_captions"], "guidance_scale": [2.0, 4.0, 2.0],
                            "images": [800, 800, 800]})
    job = ladder.TrainJob(study_dir="x", real_size=400, sizes=[100, 200, 400], sweep_size=200)
    everything = ladder.plan_runs(job, configs)
    assert set(everything.loc[everything["kind"] == "sweep", "source"]) == set(configs["config"])
    named = ladder.plan_runs(ladder.TrainJob(**{**job.__dict__, "sweep_prompt_sets": ["classnames"]}), configs)
    assert set(named.loc[named["kind"] == "sweep", "source"]) == {"m-classnames-cfg2", "m-classnames-cfg4"}
    with pytest.raises(ValueError, match="sweep_prompt_sets names 'clip_templates_80', which 02_generate did not render; valid prompt sets are classnames, in_captions"):
        ladder.plan_runs(ladder.TrainJob(**{**job.__dict__, "sweep_prompt_sets": ["clip_templates_80"]}), configs)


def test_step_batches_resume_where_they_stopped():
    full = list(runs.StepBatches(100, 16, steps=20, seed=1))
    assert len(full) == 20 and all(len(b) == 16 for b in full)
    assert list(runs.StepBatches(100, 16, steps=20, seed=1, start=7)) == full[7:]
    epoch0 = [i for b in full[:6] for i in b]
    assert len(set(epoch0)) == 96  # an epoch draws without replacement


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="'no_such_net' is not a timm model name"):
        train.create_model(train.TrainConfig(model="no_such_net"), 10, 1)


SMALL = {"model": "resnet18", "model_kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64], "stem_width": 8},
         "batch_size": 32, "steps_min": 60, "steps_max": 120, "checkpoint_every": 10}


def _job(study_dir: Path) -> ladder.TrainJob:
    return ladder.TrainJob(study_dir=str(study_dir), web_size=1000, real_size=400, sources=["real"], sizes=[100, 200, 400],
                          eval_size=500, train_config=SMALL)


def test_a_killed_run_resumes_from_its_checkpoint_and_matches(tmp_path, fashion):
    reference = ladder.run_ladder(_job(tmp_path / "straight"), progress=False)
    killed = tmp_path / "killed"
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(vars(_job(killed))))
    ckpt = killed / "train" / "runs" / "real" / "n00000200-s0" / "checkpoint.pt"
    assert kill_at_checkpoint("synkit.classify.ladder", job_file, ckpt), "the run never wrote a checkpoint before it was killed"
    assert not (killed / "train" / "runs" / "real" / "n00000200-s0" / "run.json").exists()
    time.sleep(1)  # the training workers die with their parent (PR_SET_PDEATHSIG): nothing keeps writing
    stamp = {p: p.stat().st_mtime_ns for p in killed.rglob("*")}
    time.sleep(1.5)
    assert {p: p.stat().st_mtime_ns for p in killed.rglob("*") if p.exists()} == stamp
    resumed = ladder.run_ladder(_job(killed), progress=False)
    runs = pd.read_parquet(killed / "train" / "runs.parquet").set_index("size")
    assert runs.loc[200, "resumed_from"] > 0
    assert not ckpt.exists()
    a, b = reference.sort_values(["size", "eval_set", "class_index"]), resumed.sort_values(["size", "eval_set", "class_index"])
    np.testing.assert_allclose(a["loss"].to_numpy(), b["loss"].to_numpy(), atol=1e-3)
    assert np.abs(a["top1"].to_numpy() - b["top1"].to_numpy()).max() <= 0.01


def test_finished_runs_are_reused_and_tables_are_long_form(tmp_path, fashion):
    job = _job(tmp_path)
    job = dataclasses.replace(job, train_config={**SMALL, "steps_min": 5, "steps_max": 10})
    table = ladder.run_ladder(job, progress=False)
    assert set(table.columns) >= {"source", "size", "eval_set", "class_index", "class_name", "loss", "top1"}
    assert set(table["eval_set"]) == {"val", "sketch", "silhouette", "mild"}
    assert set(table["class_index"]) == set(range(-1, 10))
    assert (table[table["class_index"] >= 0].groupby(["size", "eval_set"])["n"].sum() == 500).all()
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "train" / "runs").rglob("metrics.parquet")}
    again = ladder.run_ladder(job, progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    pd.testing.assert_frame_equal(table, again)
    job = dataclasses.replace(job, train_config={**SMALL, "steps_min": 5, "steps_max": 11})  # a changed parameter retrains
    ladder.run_ladder(job, progress=False)
    assert any(p.stat().st_mtime_ns != t for p, t in stamp.items())


def test_file_backed_worlds_train_from_folders_and_shards(tmp_path, tiny_sd):
    """A folder world (images on disk) and a generated configuration (read from its shards
    without unpacking) through timm's transforms, evaluated on val and an OOD folder."""
    from synkit.generate import render as generate
    from synkit.generate import plan
    from synkit.data import prompts
    from synkit.data.worlds import load_world
    from tests.conftest import make_image_folder

    root = make_image_folder(tmp_path / "world", ["cat", "dog", "fox"], splits=("train", "val", "sketch"), per_class=8, size=72)  # > 64 px: stays files; half of each class is real
    world = load_world("folder", str(root))
    study = tmp_path / "study"
    prompts.build_prompts(world, ["classnames"]).to_parquet(tmp_path / "prompts.parquet")
    job = plan.GenJob(prompts=str(tmp_path / "prompts.parquet"), prompt_set="classnames", guidance_scale=2.0, images_per_class=4,
                          out_dir=str(study / "synthetic" / "tiny-classnames-cfg2"), generator=str(tiny_sd), steps=2, height=32,
                          width=32, resolution=32, batch_size=6, shard_size=5)
    generate.generate_config(job, progress=False)
    pd.DataFrame([{"config": "tiny-classnames-cfg2", "prompt_set": "classnames", "guidance_scale": 2.0, "images": 12,
                   "manifest": str(study / "synthetic" / "tiny-classnames-cfg2" / "manifest.parquet")}]).to_parquet(study / "synthetic" / "configs.parquet")
    shards = data.ShardImages(study / "synthetic" / "tiny-classnames-cfg2")
    assert len(shards) == 12 and shards.labels[:3].tolist() == [0, 1, 2] and shards.image(5).size == (32, 32)
    tj = ladder.TrainJob(study_dir=str(study), world="folder", world_root=str(root), real_size=12,
                        sources=["real", "classnames@2", "classnames@2+real:0.5"], sizes=[3, 6, 12],
                        train_config={"model": "resnet18", "model_kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 8, 8, 8]},
                                      "steps_min": 2, "steps_max": 3, "batch_size": 4, "workers": 0})
    table = ladder.run_ladder(tj, progress=False)
    assert set(table["eval_set"]) == {"val", "sketch"} and set(table["source"]) == {"real", "tiny-classnames-cfg2", "tiny-classnames-cfg2+real:0.5"}
    assert (table[table["class_index"] == -1]["n"] == 24).all() and table["loss"].gt(0).all()


def test_pretrained_timm_reference_from_a_local_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    from synkit.classify import quality

    model = timm.create_model("test_vit", num_classes=3)
    save_file(model.state_dict(), tmp_path / "ref.safetensors")
    ref, data_config = quality.load_timm_reference("test_vit", str(tmp_path / "ref.safetensors"), num_classes=3)
    images = np.random.default_rng(0).integers(0, 255, (5, 40, 40, 3), dtype=np.uint8)
    labels, feats = quality.predict_timm(ref, data_config, images)
    assert labels.shape == (5,) and set(labels) <= {0, 1, 2} and feats.shape[0] == 5
    with torch.inference_mode():
        x = timm.data.create_transform(**data_config)(__import__("PIL").Image.fromarray(images[0]))
        assert int(model.eval()(x[None]).argmax()) == labels[0]  # the file's weights, not random ones
    with pytest.raises(FileNotFoundError, match="reference_weights .*nope.safetensors does not exist"):
        quality.load_timm_reference("test_vit", str(tmp_path / "nope.safetensors"), 3)
    with pytest.raises(ValueError, match="reference_model 'vit_huge_9000' is not a timm model name"):
        quality.load_timm_reference("vit_huge_9000", str(tmp_path / "ref.safetensors"), 3)
    save_file(timm.create_model("test_vit", num_classes=1000).state_dict(), tmp_path / "in1k.safetensors")  # an ImageNet-1k head
    with pytest.raises(ValueError, match=r"do not fit reference_model 'test_vit' over the world's 3 classes .* reference_model None"):
        quality.load_timm_reference("test_vit", str(tmp_path / "in1k.safetensors"), num_classes=3)


def test_worker_processes_give_the_same_tables_as_one_process(tmp_path, fashion):
    """Every CPU run trains with runs.run_threads() threads, in the kernel or in a worker: the same numbers."""
    tables = []
    for workers in (1, 2):
        job = _job(tmp_path / f"w{workers}")
        job = dataclasses.replace(job, train_config={**SMALL, "steps_min": 5, "steps_max": 10}, seeds=2, workers=workers)
        tables.append(ladder.run_ladder(job, progress=False).sort_values(["seed", "size", "eval_set", "class_index"], ignore_index=True))
    assert len(tables[0]) == 2 * 3 * 4 * 11
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_a_saved_run_loads_in_timm_and_gives_its_logits(tmp_path, fashion):
    import timm

    job = _job(tmp_path / "s")
    job = dataclasses.replace(job, sizes=[100, 200, 400], train_config={**SMALL, "steps_min": 3, "steps_max": 3})
    ladder.run_ladder(job, progress=False, workers=1)
    folder = tmp_path / "s" / "train" / "runs" / "real" / "n00000100-s0" / "model"
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "resnet18" and config["model_args"]["channels"] == [8, 16, 32, 64]
    assert config["pretrained_cfg"]["input_size"] == [1, 28, 28] and config["pretrained_cfg"]["mean"] == [data.TO_TENSOR_MEAN]
    x = torch.randn(4, 1, 28, 28)
    ours, theirs = train.load_model(folder), timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    with torch.inference_mode():
        assert torch.equal(ours(x), theirs(x))
    # the weights are the trained ones: evaluating the loaded model reproduces the run's val loss
    evals = data.eval_tensors(fashion, ["val"], 500, 0)
    before = torch.get_num_threads()
    torch.set_num_threads(runs.run_threads())  # the run's own thread count and layout: the same bf16 roundings
    try:
        again = train.evaluate(theirs.to(memory_format=torch.channels_last), evals, [c.name for c in fashion.classes], autocast=True,
                               channels_last=True)
    finally:
        torch.set_num_threads(before)
    table = pd.read_parquet(folder.parent / "metrics.parquet")
    mine = table[(table.eval_set == "val") & (table.class_index == -1)].iloc[0]
    assert again.iloc[0]["top1"] == pytest.approx(mine["top1"]) and again.iloc[0]["loss"] == pytest.approx(mine["loss"], rel=1e-3)
    with pytest.raises(FileNotFoundError, match="holds no timm model"):
        train.load_model(tmp_path)


@pytest.mark.slow
def test_two_launched_processes_shard_the_evaluation_and_gather_it(tmp_path, fashion):
    """accelerate launch on two CPU processes (gloo): each evaluates half of val; the gathered table
    equals one process evaluating the saved model on all of it."""
    job = _job(tmp_path / "two")
    job = dataclasses.replace(job, sizes=[100, 200, 400], train_config={**SMALL, "steps_min": 4, "steps_max": 4, "mixed_precision": "no"})  # float32: no bf16 ties
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(vars(job)))
    lines = runs.launch("synkit.classify.ladder", [job_file], 2)
    assert any(line.startswith("training runs") for line in lines)  # the launched processes' bar reached this process
    table = pd.read_parquet(tmp_path / "two" / "train" / "metrics.parquet")
    val = table[(table.eval_set == "val") & (table["size"] == 200)].set_index("class_index")
    assert val.loc[-1, "n"] == 500 and val.loc[0:, "n"].sum() == 500
    model = train.load_model(tmp_path / "two" / "train" / "runs" / "real" / "n00000200-s0" / "model")
    evals = data.eval_tensors(fashion, ["val"], 500, 0)
    torch.set_num_threads(1)  # as each launched process
    one = train.evaluate(model.to(memory_format=torch.channels_last), evals, [c.name for c in fashion.classes], autocast=False,
                         channels_last=True).set_index("class_index")
    assert (one["n"] == val["n"]).all()
    assert np.allclose(one["top1"], val["top1"]) and np.allclose(one["loss"], val["loss"], rtol=1e-4, equal_nan=True)


def test_launch_names_the_failure_with_its_last_lines(tmp_path):
    with pytest.raises(RuntimeError, match=r"accelerate launch of synkit.classify.ladder on 2 processes failed \(exit [1-9]\d*\); its last lines:\n(.|\n)*job"):
        runs.launch("synkit.classify.ladder", [tmp_path / "missing.json"], 2)
    with pytest.raises(ValueError, match="num_processes=1 is invalid for accelerate launch"):
        runs.launch_command("synkit.classify.ladder", ["job.json"], 1)


def test_job_modules_read_their_job_file_and_say_their_usage(tmp_path, capsys):
    from synkit.classify import ladder
    from synkit.generate import render

    assert ladder.main([]) == 2 and render.main([]) == 2
    err = capsys.readouterr().err
    assert "python -m synkit.classify.ladder JOB.json\n" in err and "python -m synkit.generate.render JOB.json [JOB.json ...]" in err
    (tmp_path / "job.json").write_text('{"a": 1, "b": [2]}')
    seen = []
    assert runs.job_main("m", dict, seen.append, [str(tmp_path / "job.json")]) == 0 and seen == [{"a": 1, "b": [2]}]
    pairs = runs.TensorPairs(torch.arange(5), torch.arange(2) * 10)  # the second repeats (a CLIP bank's shared captions)
    first, second = pairs.__getitems__([0, 3, 4])
    assert len(pairs) == 5 and first.tolist() == [0, 3, 4] and second.tolist() == [0, 10, 0]


def test_a_users_accelerate_defaults_do_not_leak_into_runs(tmp_path):
    """ACCELERATE_MIXED_PRECISION / ACCELERATE_DYNAMO_BACKEND (what `accelerate config` and its launcher
    set) do not change synkit's accelerator; launches pin both off."""
    env = {**os.environ, "ACCELERATE_MIXED_PRECISION": "bf16", "ACCELERATE_DYNAMO_BACKEND": "INDUCTOR"}
    code = "from synkit.engine import runs; a = runs.make_accelerator(); print(a.mixed_precision, a.state.dynamo_plugin.backend.value)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["no", "NO"]
    cmd = runs.launch_command("synkit.classify.ladder", ["job.json"], 2)
    assert cmd[cmd.index("--mixed_precision") + 1] == "no" and cmd[cmd.index("--dynamo_backend") + 1] == "no"
    with pytest.raises(ValueError, match="mixed_precision='fp16' is invalid; valid values are auto, no, bf16"):
        train.TrainConfig(mixed_precision="fp16")
