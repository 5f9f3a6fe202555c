"""The GPU check's code paths: at tiny sizes on any machine (so they cannot rot), at full size on CUDA."""

import json

import pytest
import torch

from synkit import gpu_check


def test_gpu_check_runs_every_path_at_tiny_sizes(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--tiny", "--out", str(out), "--parts", "generation,train_vit_b16,clip_vit_b16,two_processes"]) == 0
    results = json.loads(out.read_text())
    assert results["sizes"] == "tiny"
    gen = results["generation"]
    assert gen["images"] == gpu_check.TINY.gen_images and gen["ratio"] > 0
    vit = results["train_vit_b16"]
    assert vit["steps"] == gpu_check.TINY.train_steps and vit["timm_reload_max_diff"] < 1e-4
    clip = results["clip_vit_b16"]
    assert 0.0 <= clip["zero_shot_top1"] <= 1.0 and clip["open_clip_reload_max_diff"] < 1e-4
    if torch.cuda.device_count() < 2:
        assert "skipped" in results["two_processes"]


def test_gpu_check_names_an_unknown_part():
    with pytest.raises(SystemExit, match="part 'vae' is unknown; valid parts are generation"):
        gpu_check.main(["--tiny", "--parts", "vae"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_check_full_size(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "gpu_check.json")]) == 0
