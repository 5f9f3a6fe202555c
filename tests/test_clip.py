import json
import types

import numpy as np
import pandas as pd
import pytest
import torch

from synkit import clip, generate


def test_mixed_sampler_draws_both_images_of_a_caption_across_epochs():
    n, batch, epochs = 40, 8, 12
    steps = epochs * (n // batch)
    drawn = {i: set() for i in range(n)}
    for idx in clip.ClipBatches(n, batch, steps, seed=0, setup="mixed"):
        for j in idx:
            drawn[j % n].add(j >= n)  # True: the synthetic image
    assert all(kinds == {True, False} for kinds in drawn.values())
    real = [j for b in clip.ClipBatches(n, batch, steps, 0, "real") for j in b]
    synth = [j for b in clip.ClipBatches(n, batch, steps, 0, "synthetic") for j in b]
    assert max(real) < n and min(synth) >= n and [j - n for j in synth] == real  # same caption order
    full = list(clip.ClipBatches(n, batch, steps, 0, "mixed"))
    assert list(clip.ClipBatches(n, batch, steps, 0, "mixed", start=7)) == full[7:]
    with pytest.raises(ValueError, match="setup 'both' is unknown"):
        clip.ClipBatches(n, batch, steps, 0, "both")


def test_captions_coarse_task_and_scales(fashion):
    caps = clip.web_captions(fashion, 50, seed=1)
    assert caps["caption_id"].is_unique and len(caps) == 50
    assert np.bincount(caps["class_index"], minlength=10).tolist() == [5] * 10
    assert caps["caption"].str.contains(", ").all()
    names, mapping = clip.coarse_task(fashion.classes)
    assert names == ["footwear", "clothing", "container"]
    assert [names[m] for m in mapping] == ["clothing"] * 5 + ["footwear", "clothing", "footwear", "container", "footwear"]
    assert clip.clip_scales(8000, 1000) == [1000, 2000, 4000, 8000]
    with pytest.raises(ValueError, match="min_scale=0"):
        clip.clip_scales(100, 0)
    with pytest.raises(ValueError, match="clip_config key 'lr_max' is unknown"):
        clip.clip_config_from({"lr_max": 1})


def test_tiny_clip_trains_on_each_setup_and_resumes(tmp_path, fashion):
    caps = clip.web_captions(fashion, 64)
    web = np.asarray(fashion.split("web").images)
    real = web[caps["web_index"].to_numpy()]
    synth = 255 - real
    config = clip.ClipConfig(epochs=2, batch_size=16, checkpoint_every=3)
    table = clip.run_ladder(caps, real, synth, fashion, [16, 32, 64], config, tmp_path, eval_size=200, progress=False)
    assert set(table["setup"]) == set(clip.SETUPS) and sorted(table["scale"].unique()) == [16, 32, 64]
    assert set(table["eval_set"]) == {"val", "sketch", "silhouette", "val-coarse"}
    assert table["top1"].between(0, 1).all() and (table["loss"] > 0).all()
    t1 = clip.table1(table)
    assert "average" in t1.columns and len(t1) == 9
    assert len(clip.mixed_gain(table)) == 3 * 4
    # same runs again: reused, not retrained
    stamp = (tmp_path / "runs" / "mixed" / "n00000064" / "run.json").stat().st_mtime_ns
    again = clip.run_ladder(caps, real, synth, fashion, [16, 32, 64], config, tmp_path, eval_size=200, progress=False)
    assert (tmp_path / "runs" / "mixed" / "n00000064" / "run.json").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(table, again)


def test_caption_shards_keep_ids_and_open_clip_reads_them(tmp_path, fashion, tiny_sd):
    caps = clip.web_captions(fashion, 12)
    path = tmp_path / "captions.parquet"
    caps.to_parquet(path)
    job = generate.GenJob(prompts=str(path), captions=str(path), prompt_set="captions", guidance_scale=2.0, images_per_class=len(caps),
                          out_dir=str(tmp_path / "shards"), generator=str(tiny_sd), steps=2, height=32, width=32, resolution=28,
                          mode="L", resize_mode="center_crop", batch_size=4, shard_size=5)
    generate.generate_config(job, progress=False)
    images, manifest = generate.read_images(tmp_path / "shards")
    assert list(manifest["caption_id"]) == list(caps["caption_id"]) and list(manifest["prompt"]) == list(caps["caption"])
    assert len(images) == 12 and manifest["seed"].is_unique

    import open_clip
    from open_clip_train.data import get_wds_dataset

    clip.register_models()
    _, _, preprocess = open_clip.create_model_and_transforms(clip.FASHION_MODEL)
    tokenizer = open_clip.get_tokenizer(clip.FASHION_MODEL)
    shards = sorted(str(p) for p in (tmp_path / "shards").glob("shard-*.tar"))
    args = types.SimpleNamespace(
        train_data="::".join(shards), train_data_upsampling_factors=None, train_num_samples=12, batch_size=4, workers=0,
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
        generate.plan_captions(pd.DataFrame({"caption": ["a"]}), 0, "c")
    bad = pd.DataFrame({"caption_id": ["a", "a"], "caption": ["x", "y"], "class_index": [0, 0], "class_name": ["c", "c"], "source_id": [None, None]})
    with pytest.raises(ValueError, match="caption id 'a' appears more than once"):
        generate.plan_captions(bad, 0, "c")
