"""Bring your own data: a folder of images that is not Fashion-MNIST (colour digits rendered in
tests/digits.py) runs the whole study offline, from world and world_root on top of the smoke settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synkit.classify import quality

from synkit.t2i import latent as t2i
from synkit.data.worlds.folder import FolderWorld
from synkit.data.worlds import fingerprint, in_memory, load_world, pairs_split, t2i_split
from tests.conftest import ROOT
from tests.digits import NAMES, make_digit_world


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_digit_world(tmp_path_factory.mktemp("digits") / "world", train=100, val=20, ood=20)


def test_small_images_are_held_in_memory(digits, tmp_path):
    world = load_world("folder", str(digits))
    assert world.memory == (32, "RGB") and in_memory(world) and t2i_split(world) == "web" and pairs_split(world) == "real"
    real, web = world.split("real"), world.split("web")
    assert real.images.shape == (500, 32, 32, 3) and real.images.dtype == np.uint8 and sorted(set(real.labels)) == list(range(10))
    assert len(web) == 500 and np.array_equal(np.bincount(web.labels), np.bincount(real.labels))  # half of each class
    assert world.ood_views == ("inverted",) and sorted(c.name for c in world.classes) == sorted(NAMES)
    assert load_world("folder", str(digits), image_size=16).split("val").images.shape == (200, 16, 16, 3)
    with pytest.raises(ValueError, match="image_size=100 is invalid; give a whole number from 8 to 64"):
        load_world("folder", str(digits), image_size=100)
    # the same images at another path: the same content key for the models trained on them
    moved = tmp_path / "elsewhere"
    shutil.copytree(digits, moved)
    assert fingerprint(load_world("folder", str(moved)), "real") == fingerprint(world, "real")
    config = t2i.T2IConfig(world="folder", world_root=str(digits))
    assert t2i.cache_key(config) == t2i.cache_key(t2i.T2IConfig(world="folder", world_root=str(moved))) != t2i.cache_key(t2i.T2IConfig())
    ref = quality.ReferenceConfig(world="folder", world_root=str(digits))
    assert quality.reference_key(ref) == quality.reference_key(quality.ReferenceConfig(world="folder", world_root=str(moved)))


def test_the_generator_never_learns_from_clips_real_pairs(digits):
    # a folder world's web share is held out of real, where CLIP's real pairs come from: no image in both, by content
    from synkit.analysis.world_card import image_hashes
    from synkit.clip.data import web_captions

    world = load_world("folder", str(digits))
    captions = web_captions(world, 200, 0)
    pairs = image_hashes(world.split(pairs_split(world)).images[captions["web_index"].to_numpy()])
    assert len(set(pairs)) == 200 and not set(pairs) & set(image_hashes(world.split(t2i_split(world)).images))
    assert not set(world.split("web").ids) & set(world.split("real").ids)
    with pytest.raises(ValueError, match="web_share=1.0 is invalid"):
        FolderWorld(digits, web_share=1.0)


def test_embedded_model_and_reference_learn_a_colour_folder_world(tmp_path):
    # the RGB path end to end at toy size: a 3-channel VAE, the folder's own captions, a 3-channel reference
    from synkit.generate import render as generate
    from synkit.generate import plan

    root = make_digit_world(tmp_path / "tiny", train=6, val=3, ood=0)
    config = t2i.T2IConfig(world="folder", world_root=str(root), vae_steps=2, unet_steps=2, batch_size=8, vae_batch_size=8)
    pipe_dir = t2i.ensure_t2i(config, tmp_path / "models", progress=False)
    assert json.loads((pipe_dir / "vae" / "config.json").read_text())["in_channels"] == 3
    pipe = generate.load_pipeline(str(pipe_dir), "auto")
    job = plan.GenJob(prompts="", prompt_set="classnames", guidance_scale=2.0, images_per_class=1, out_dir="x", generator=str(pipe_dir),
                          steps=2, resolution=32, resize_mode="resize", mode="RGB", dtype="auto")
    images = generate.render(pipe, job, ["seven", "two"], [1, 2])
    assert [np.asarray(im).shape for im in images] == [(32, 32, 3)] * 2
    ref = quality.ensure_reference(quality.ReferenceConfig(world="folder", world_root=str(root), epochs=1), tmp_path / "models", progress=False)
    model, info = quality.load_reference(ref)
    assert info["in_chans"] == 3 and info["num_classes"] == 10 and info["config"]["world_root"] == str(root)
    pred, feats = quality.predict(model, load_world("folder", str(root)).split("val").images)
    assert pred.shape == (30,) and feats.shape == (30, 128)


def test_large_images_stay_files_and_say_what_to_set(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (96, 80), "gray").save(tmp_path / split / name / "a.png")
    world = load_world("folder", str(tmp_path))
    assert world.memory is None and not in_memory(world) and not hasattr(world.split("real"), "images")
    with pytest.raises(ValueError, match="larger than 64 pixels: set its image_size"):
        t2i.train_t2i(t2i.T2IConfig(world="folder", world_root=str(tmp_path)), tmp_path / "model", progress=False)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_folder_world_runs_the_whole_study_offline(tmp_path):
    digits = make_digit_world(tmp_path / "world", train=100, val=20, ood=20, colour=False)
    params = yaml.safe_load((ROOT / "parameters" / "smoke.yaml").read_text())
    params.update(study="digits", world="folder", world_root=str(digits))  # on top of the smoke settings: the world, and sizes.
    # The smoke generator (80 steps) and reference (4 epochs) are too short to learn digits well (a longer generator took
    # this test from about 4 to 13 min on an AVX2-only CPU): what a folder world's models learn is tested in
    # test_known_answers; here the whole path runs, and the report says which of its premises failed
    params["overrides"]["02_generate"]["generators"] = []  # the latent model only: the model families are the smoke study's
    params["overrides"]["04_train"]["sources"] = ["real", "in_captions@4", "in_captions@4+real:0.5"]
    # the smoke study's own tests cover seeds, the capacity ladder, CLIP's three setups and its control; here one
    # seed and CLIP on real captions keep the folder world's whole path (every notebook) at a third less time
    params["seeds"] = 1
    params["overrides"]["04_train"]["capacity_source"] = None
    # and CLIP streams its pairs from shards (07 writes the folder's pairs as LAION-style shards): the streaming path
    # through the notebook, where the smoke study keeps the in-memory one
    params["overrides"]["07_clip"].update(clip_setups=["real"], clip_control=False, clip_stream=True)
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(params))
    out = tmp_path / "outputs"
    done = subprocess.run([sys.executable, "-m", "synkit", "run", str(path), "--set", f"outputs_dir={out}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1700)
    assert done.returncode == 0, done.stderr[-3000:]
    study = out / "digits"
    outputs = [o for c in json.loads((study / "notebooks" / "08_report.ipynb").read_text())["cells"] for o in c.get("outputs", [])]
    assert outputs and "NOT EVERY STAGE FINISHED" not in json.dumps(outputs)
    assert "Every stage finished." in (study / "report.html").read_text()
    # the embedded model drew these digits' classes (not Fashion-MNIST's) at the folder's size, and the reference
    # classifier learned the folder's real split
    summary = pd.read_parquet(study / "quality" / "summary.parquet")
    print("digits world: recognizability", dict(zip(summary["config"], summary["recognizability"].round(3))))
    from synkit.data.shards import read_images

    images, manifest = read_images(study / "synthetic" / "embedded-in_captions-cfg4", per_class=2)
    assert images.shape[1:] == (32, 32) and set(manifest["class_name"]) == set(NAMES)
    ref = json.loads(next((out / "models").glob("reference-*/reference.json")).read_text())
    assert ref["config"]["world"] == "folder" and ref["in_chans"] == 1 and ref["num_classes"] == 10
    assert json.loads((study / "train" / "d_i.json").read_text())["d_i"] == 500  # D_I: the half of train the generator never saw
    assert sorted(pd.read_parquet(study / "train" / "metrics.parquet")["eval_set"].unique()) == ["inverted", "val"]
    assert list((study / "per_class").glob("figure5_*.png")) and (study / "per_class" / "dashboard.html").exists()
    assert (study / "clip" / "metrics.parquet").exists() and (study / "synthetic" / "embedded-in_captions-cfg4" / "sizes.json").exists()
    assert list((study / "clip" / "real_pairs").glob("pairs-*.tar"))  # streamed from shards
    assert list((study / "clip" / "runs" / "real").glob("n*-s0/model/open_clip_config.json"))
    found = pd.read_parquet(study / "report" / "findings.parquet")
    assert len(found) >= 13
    gates = pd.read_parquet(study / "report" / "gates.parquet")  # printed for the README's numbers (pytest -s)
    failed = gates[gates["state"] == "FAILED"]
    html = (study / "report.html").read_text()
    assert all(g in html for g in failed["gate"])  # the report names every premise that failed ...
    for row in found.itertuples():  # ... and judges no row that rests on one
        if any(f"{g} failed" in row.why for g in failed["gate"]):
            assert row.verdict == "not measured", (row._1, row.verdict, row.why)
    print("digits world gates:", dict(zip(gates["key"], gates["state"])), "verdicts:", found["verdict"].value_counts().to_dict(),
          "reference val top-1:", round(ref["val_top1"], 3))


def test_generated_images_of_another_size_or_mode_are_fitted_to_the_world():
    from synkit.data.worlds.folder import fit_images

    rgb256 = np.random.default_rng(0).integers(0, 255, (2, 256, 256, 3), dtype=np.uint8)
    assert fit_images(rgb256, (32, 32)).shape == (2, 32, 32) and fit_images(rgb256[:, :40, :40], (32, 32, 3)).shape == (2, 32, 32, 3)


def test_folder_defaults_file_sampler_and_report_stages(tmp_path):
    from synkit.analysis import per_class
    from synkit.analysis import report
    from synkit.classify import train
    from tests.conftest import make_image_folder

    assert train.config_from({}, "folder").model == "resnet18" and train.config_from({}, "folder").model_kwargs["channels"] == [32, 64, 128, 256]
    root = make_image_folder(tmp_path / "big", ["cat", "dog"], per_class=4, size=80)  # > 64 px: files; half of each class is real
    world = load_world("folder", str(root))
    images = per_class.image_sampler(world, pd.DataFrame(columns=["config", "manifest"]), per_class=2)
    assert images("real", 1).shape == (2, 96, 96, 3)  # read from the files of that class only, squared
    nbs = tmp_path / "study" / "notebooks"
    nbs.mkdir(parents=True)
    for name in ("01_prompts.ipynb", "02_generate.ipynb", "03_quality.failed.ipynb", "04_train.interrupted.ipynb"):
        (nbs / name).write_text("{}")
    params = {"notebooks": {k: {} for k in ("01_prompts", "02_generate", "03_quality", "04_train", "05_scaling")}}
    states = dict(report.stages(tmp_path / "study", params).itertuples(index=False))
    assert states == {"01_prompts": "finished", "02_generate": "finished", "03_quality": "failed", "04_train": "interrupted", "05_scaling": "not run"}
