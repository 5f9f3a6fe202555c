import json
import types

import numpy as np
import pandas as pd
import pytest
import torch

from synkit.analysis import clip_tables
from synkit.clip import ladder as clip
from synkit.clip import train as clip_train
from synkit.clip import zero_shot as clip_zero_shot
from synkit.clip import data as clip_data

from synkit.core.layout import RUN_INFO, StudyFiles
from synkit.generate import render as generate
from synkit.generate import plan
from synkit.data import shards
from tests.conftest import kill_at_checkpoint


def test_mixed_sampler_draws_both_images_of_a_caption_across_epochs():
    n, batch, epochs = 40, 8, 12
    steps = epochs * (n // batch)
    drawn = {i: set() for i in range(n)}
    for idx in clip_data.ClipBatches(n, batch, steps, seed=0, setup="mixed"):
        for j in idx:
            drawn[j % n].add(j >= n)  # True: the synthetic image
    assert all(kinds == {True, False} for kinds in drawn.values())
    real = [j for b in clip_data.ClipBatches(n, batch, steps, 0, "real") for j in b]
    synth = [j for b in clip_data.ClipBatches(n, batch, steps, 0, "synthetic") for j in b]
    assert max(real) < n and min(synth) >= n and [j - n for j in synth] == real  # same caption order
    full = list(clip_data.ClipBatches(n, batch, steps, 0, "mixed"))
    assert list(clip_data.ClipBatches(n, batch, steps, 0, "mixed", start=7)) == full[7:]
    with pytest.raises(ValueError, match="setup 'both' is unknown"):
        clip_data.ClipBatches(n, batch, steps, 0, "both")


def test_captions_coarse_task_and_scales(fashion):
    caps = clip_data.web_captions(fashion, 50, seed=1)
    assert caps["caption_id"].is_unique and len(caps) == 50
    assert np.bincount(caps["class_index"], minlength=10).tolist() == [5] * 10
    alt = fashion.alt_texts("pairs")  # the pairs' own alt text, and with exact names for the control
    assert caps["caption"].tolist() == [alt[i] for i in caps["web_index"]]
    exact = clip_data.web_captions(fashion, 50, seed=1, exact_names=True)
    assert list(exact["web_index"]) == list(caps["web_index"]) and all(n.lower() in t.lower() for n, t in zip(exact["class_name"], exact["caption"]))
    names, mapping = clip_data.coarse_task(fashion.classes)
    assert names == ["footwear", "clothing", "container"]
    assert [names[m] for m in mapping] == ["clothing"] * 5 + ["footwear", "clothing", "footwear", "container", "footwear"]
    assert clip.clip_scales(8000, 1000) == [1000, 2000, 4000, 8000]
    with pytest.raises(ValueError, match="min_scale=0"):
        clip.clip_scales(100, 0)
    with pytest.raises(ValueError, match="clip_config key 'lr_max' is unknown"):
        clip_train.clip_config_from({"lr_max": 1})


def test_tiny_clip_trains_on_each_setup(tmp_path, fashion):
    caps = clip_data.web_captions(fashion, 64)
    web = np.asarray(fashion.split("pairs").images)
    real = web[caps["web_index"].to_numpy()]
    synth = 255 - real
    config = clip_train.ClipConfig(epochs=2, batch_size=16, checkpoint_every=3)
    evals, tasks = clip_zero_shot.world_tasks(fashion, 200, None)
    assert [t["name"] for t in tasks] == ["val", "sketch", "silhouette", "mild", "val-coarse"]
    table = clip.run_ladder(caps, real, synth, evals, tasks, [16, 32, 64], config, tmp_path, progress=False)
    assert set(table["setup"]) == set(clip_data.SETUPS) and sorted(table["scale"].unique()) == [16, 32, 64]
    assert set(table["eval_set"]) == {"val", "sketch", "silhouette", "mild", "val-coarse"}
    assert table["top1"].between(0, 1).all() and (table["loss"] > 0).all()
    t1 = clip_tables.table1(table)
    assert "average" in t1.columns and len(t1) == 9
    assert len(clip_tables.mixed_gain(table)) == 3 * 5
    # same runs again: reused, not retrained
    run_info = StudyFiles(tmp_path).clip_run_dirs / "mixed" / "n00000064-s0" / RUN_INFO
    stamp = run_info.stat().st_mtime_ns
    again = clip.run_ladder(caps, real, synth, evals, tasks, [16, 32, 64], config, tmp_path, progress=False)
    assert run_info.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(table, again)
    with pytest.raises(ValueError, match="setup 'both' is unknown"):
        clip.run_ladder(caps, real, synth, evals, tasks, [16], config, tmp_path, setups=("both",), progress=False)


def _caption_study(root, fashion, tiny_sd, n=64):
    """A study folder with clip/captions.parquet and one generated image per caption."""
    out = root / "clip"
    out.mkdir(parents=True)
    caps = clip_data.web_captions(fashion, n)
    caps.to_parquet(out / "captions.parquet")
    job = plan.GenJob(prompts=str(out / "captions.parquet"), captions=str(out / "captions.parquet"), prompt_set="captions",
                          guidance_scale=2.0, images_per_class=n, out_dir=str(out / "synthetic"), generator=str(tiny_sd), steps=2,
                          height=32, width=32, resolution=28, mode="L", resize_mode="center_crop", batch_size=32, shard_size=32)
    generate.generate_config(job, progress=False)
    return root


def test_a_killed_clip_run_resumes_and_matches(tmp_path, fashion, tiny_sd):
    import shutil

    straight = _caption_study(tmp_path / "straight", fashion, tiny_sd)
    killed = tmp_path / "killed"
    shutil.copytree(straight, killed)
    spec = {"web_size": 20_000, "real_size": 2_000, "scales": [64], "setups": ["mixed"], "eval_size": 300,
            "clip_config": {"epochs": 8, "batch_size": 8, "checkpoint_every": 4}}
    reference = clip.run_job(clip.ClipJob(study_dir=str(straight), **spec), progress=False)
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"study_dir": str(killed), **spec}))
    ckpt = killed / "clip" / "runs" / "mixed" / "n00000064-s0" / "checkpoint.pt"
    assert kill_at_checkpoint("synkit.clip.ladder", job_file, ckpt), "the CLIP run never wrote a checkpoint before it was killed"
    resumed = clip.run_job(clip.ClipJob(study_dir=str(killed), **spec), progress=False)
    runs = pd.read_parquet(killed / "clip" / "runs.parquet")
    assert runs["resumed_from"].iloc[0] > 0 and not ckpt.exists()
    np.testing.assert_allclose(reference["loss"], resumed["loss"], atol=1e-3)
    assert np.abs(reference["top1"].to_numpy() - resumed["top1"].to_numpy()).max() <= 0.01


def test_other_worlds_read_laion_style_shards_and_extra_zero_shot_folders(tmp_path, tiny_sd):
    import webdataset as wds
    from PIL import Image

    from tests.conftest import make_image_folder

    classes = ["cat", "dog", "fox"]
    make_image_folder(tmp_path / "world", classes, per_class=4, size=20)
    make_image_folder(tmp_path / "pets", ["tabby", "corgi"], splits=(".",), per_class=3, size=24)
    (tmp_path / "pets" / "classnames.txt").write_text("tabby cat\ncorgi dog\n")
    rng = np.random.default_rng(0)
    (tmp_path / "laion").mkdir()
    with wds.TarWriter(str(tmp_path / "laion" / "00000.tar")) as sink:
        for i in range(10):
            img = Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
            sink.write({"__key__": f"{i:05d}", "jpg": img, "txt": f"a photo of a {classes[i % 3]} number {i}"})
    captions, real = clip.read_pairs(str(tmp_path / "laion" / "{00000..00000}.tar"), 8, 32)
    assert real.shape == (8, 32, 32, 3) and captions["caption"].iloc[1] == "a photo of a dog number 1"
    with pytest.raises(ValueError, match="hold 10 image-caption pairs, fewer than the 20"):
        clip.read_pairs(str(tmp_path / "laion" / "00000.tar"), 20, 32)
    with pytest.raises(FileNotFoundError, match="caption shard .*nope.tar does not exist"):
        clip.read_pairs(str(tmp_path / "nope.tar"), 2, 32)

    study = tmp_path / "study"
    out = study / "clip"
    out.mkdir(parents=True)
    captions.to_parquet(out / "captions.parquet")
    np.save(out / "real_images.npy", real)
    job = plan.GenJob(prompts=str(out / "captions.parquet"), captions=str(out / "captions.parquet"), prompt_set="captions",
                          guidance_scale=2.0, images_per_class=len(captions), out_dir=str(out / "synthetic"), generator=str(tiny_sd),
                          steps=2, height=32, width=32, resolution=32, resize_mode="center_crop", batch_size=8, shard_size=8)
    generate.generate_config(job, progress=False)
    table = clip.run_job(clip.ClipJob(
        study_dir=str(study), world="folder", world_root=str(tmp_path / "world"), scales=[4, 8],
        extra_eval=[{"name": "pets", "root": str(tmp_path / "pets")}],
        clip_config={"epochs": 1, "batch_size": 4, "image_size": 32},
    ), progress=False)
    assert set(table["eval_set"]) == {"val", "pets"} and len(table) == 2 * 3 * 2
    with pytest.raises(ValueError, match="must share one size: real .*32, 32, 3.*model input 16; set clip_image_size"):
        clip.run_job(clip.ClipJob(study_dir=str(study), world="folder", world_root=str(tmp_path / "world"), scales=[4],
                                  clip_config={"epochs": 1, "batch_size": 4, "image_size": 16}), progress=False)
    images, labels, names = clip_data.image_folder(tmp_path / "pets", 16)
    assert names == ["tabby cat", "corgi dog"] and images.shape == (6, 16, 16, 3) and sorted(set(labels)) == [0, 1]
    from synkit.data.worlds.fashion import FashionWorld
    from synkit.data.worlds.folder import FolderWorld

    assert len(clip_zero_shot.templates_for(FolderWorld)) == 80 and clip_zero_shot.templates_for(FashionWorld) == clip_zero_shot.FASHION_TEMPLATES


def test_caption_shards_keep_ids_and_open_clip_reads_them(tmp_path, fashion, tiny_sd):
    caps = clip_data.web_captions(fashion, 12)
    path = tmp_path / "captions.parquet"
    caps.to_parquet(path)
    job = plan.GenJob(prompts=str(path), captions=str(path), prompt_set="captions", guidance_scale=2.0, images_per_class=len(caps),
                          out_dir=str(tmp_path / "shards"), generator=str(tiny_sd), steps=2, height=32, width=32, resolution=28,
                          mode="L", resize_mode="center_crop", batch_size=4, shard_size=5)
    generate.generate_config(job, progress=False)
    images, manifest = shards.read_images(tmp_path / "shards")
    assert list(manifest["caption_id"]) == list(caps["caption_id"]) and list(manifest["prompt"]) == list(caps["caption"])
    assert len(images) == 12 and manifest["seed"].is_unique

    import open_clip
    from open_clip_train.data import get_wds_dataset

    clip_train.register_models()
    _, _, preprocess = open_clip.create_model_and_transforms(clip_train.FASHION_MODEL)
    tokenizer = open_clip.get_tokenizer(clip_train.FASHION_MODEL)
    shard_list = sorted(str(p) for p in (tmp_path / "shards").glob("shard-*.tar"))
    args = types.SimpleNamespace(
        train_data="::".join(shard_list), train_data_upsampling_factors=None, train_num_samples=12, batch_size=4, workers=0,
        seed=0, world_size=1, rank=0, dataset_resampled=False,
    )
    data = get_wds_dataset(args, preprocess, is_train=True, epoch=0, tokenizer=tokenizer)
    batches = list(data.dataloader)
    assert len(batches) == 3
    images_b, texts_b = batches[0]
    assert images_b.shape == (4, 3, 28, 28) and texts_b.shape == (4, 28)
    expected = {tuple(t.tolist()) for t in tokenizer(caps["caption"].tolist())}
    got = [tuple(t.tolist()) for _, texts in batches for t in texts]
    assert set(got) == expected  # every caption arrives once, as open_clip tokenizes it


def test_caption_table_needs_its_columns(tmp_path):
    with pytest.raises(ValueError, match="lacks column 'caption_id'"):
        plan.plan_captions(pd.DataFrame({"caption": ["a"]}), 0, "c")
    bad = pd.DataFrame({"caption_id": ["a", "a"], "caption": ["x", "y"], "class_index": [0, 0], "class_name": ["c", "c"], "source_id": [None, None]})
    with pytest.raises(ValueError, match="caption id 'a' appears more than once"):
        plan.plan_captions(bad, 0, "c")


def test_a_trained_clip_is_saved_for_open_clip_and_gives_its_features(tmp_path, fashion):
    import open_clip

    caps = clip_data.web_captions(fashion, 32)
    real = np.asarray(fashion.split("pairs").images)[caps["web_index"].to_numpy()]
    bank = torch.cat([clip_data.to_clip_tensor(real), clip_data.to_clip_tensor(255 - real)])
    tokenizer = clip_train.open_clip_tokenizer(clip_train.FASHION_MODEL)
    seen = {}

    def evaluate(model, accelerator):
        with torch.inference_mode():
            seen["image"] = model.encode_image(bank[:4], normalize=True)
            seen["text"] = model.encode_text(tokenizer(["a shirt", "a boot"]), normalize=True)
        return pd.DataFrame([{"eval_set": "val", "task": "classes", "top1": 0.5, "loss": 1.0}])

    clip_train.train_clip(bank, tokenizer(caps["caption"].tolist()), "real", clip_train.ClipConfig(epochs=1, batch_size=8), tmp_path / "run", evaluate,
                    progress=False, image_stats=clip_data.image_stats(real))
    folder = (tmp_path / "run" / "model").resolve()
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["image_size"] == 28 and config["preprocess_cfg"]["mean"] == [0.286] * 3
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    model.eval()
    with torch.inference_mode():
        assert torch.allclose(model.encode_image(bank[:4], normalize=True), seen["image"], atol=1e-5)
        assert torch.allclose(model.encode_text(tokenizer(["a shirt", "a boot"]), normalize=True), seen["text"], atol=1e-5)
    from PIL import Image

    x = preprocess(Image.fromarray(real[0]))  # open_clip's own preprocessing with the saved statistics: the study's tensor
    assert x.shape == (3, 28, 28) and torch.allclose(x, clip_data.to_clip_tensor(real[:1])[0], atol=1e-2)
    with pytest.raises(FileNotFoundError, match="holds no open_clip model"):
        clip_train.load_model(tmp_path)


def test_clip_config_names_an_unsupported_precision():
    with pytest.raises(ValueError, match="clip_config mixed_precision='fp16' is invalid; valid values are auto, no, bf16"):
        clip_train.ClipConfig(mixed_precision="fp16")
