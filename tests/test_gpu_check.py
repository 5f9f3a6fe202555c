"""The GPU check's code paths: at tiny sizes on any machine (so they cannot rot), at full size on CUDA."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

from synkit.study import gpu_check

ROOT = Path(__file__).resolve().parent.parent


def test_make_gpu_check_runs_every_path_at_tiny_sizes_without_cuda(tmp_path):
    out = tmp_path / "gpu_check.json"
    if torch.cuda.is_available():  # here the same entry point at tiny sizes; the full size is test_gpu_check_full_size
        assert gpu_check.main(["--tiny", "--out", str(out)]) == 0
    else:
        done = subprocess.run(["make", "-s", "gpu-check", f"GPU_CHECK_OUT={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "gpu check passed on cpu (tiny sizes)" in done.stdout
    results = json.loads(out.read_text())
    assert results["sizes"] == "tiny"
    gen = results["generation"]
    assert gen["images"] == gpu_check.TINY.gen_images and gen["max_pixel_diff"] <= 1  # synkit's image is diffusers' own
    vit = results["train_vit_b16"]
    assert vit["steps"] == gpu_check.TINY.train_steps and vit["timm_reload_max_diff"] < 1e-4
    clip = results["clip_vit_b16"]
    assert clip["open_clip_reload_max_diff"] < 1e-4
    if torch.cuda.device_count() < 2:
        assert "skipped" in results["two_processes"]


def test_gpu_check_names_an_unknown_part():
    with pytest.raises(SystemExit, match="part 'vae' is unknown; valid parts are generation"):
        gpu_check.main(["--tiny", "--parts", "vae"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_check_full_size(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "gpu_check.json")]) == 0


def test_a_part_that_runs_but_disagrees_fails():
    assert gpu_check.disagreement("generation", {"max_pixel_diff": 0}) is None
    assert "differs from diffusers' call by 9 levels" in gpu_check.disagreement("generation", {"max_pixel_diff": 9})
    assert "timm_reload_max_diff = 0.5" in gpu_check.disagreement("train_vit_b16", {"timm_reload_max_diff": 0.5})
    assert "3 of 4 planned runs" in gpu_check.disagreement("two_processes", {"runs": 3, "runs_planned": 4})
