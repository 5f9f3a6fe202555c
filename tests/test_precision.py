"""synkit.core.precision: bf16 only where it is native, explicit requests kept (with a warning where emulated)."""

import warnings

import pytest
import torch

from synkit.clip import train as clip_train

from synkit.generate import plan

from synkit.core import precision

from synkit.classify import train


@pytest.fixture(params=[True, False], ids=["bf16-cpu", "avx2-cpu"])
def native(request, monkeypatch):
    """Pretend this CPU has (or lacks) native bf16."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: request.param)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    precision.bf16_native.cache_clear()
    yield request.param
    precision.bf16_native.cache_clear()


def test_auto_follows_the_cpu(native):
    assert precision.resolve("auto") == ("bf16" if native else "no")
    assert precision.resolve_dtype("auto") == ("bfloat16" if native else "float32")
    assert precision.compute_dtype("cpu") == (torch.bfloat16 if native else torch.float32)
    with precision.autocast("cpu"):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    # what runs is what is keyed
    assert train.TrainConfig().mixed_precision == ("bf16" if native else "no")
    assert clip_train.ClipConfig(mixed_precision="auto").mixed_precision == ("bf16" if native else "no")
    job = plan.GenJob(prompts="p", prompt_set="s", guidance_scale=2.0, images_per_class=1, out_dir="o", generator="g")
    assert job.dtype == ("bfloat16" if native else "float32")


def test_explicit_bf16_is_kept_and_warned_where_emulated(native):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert precision.resolve("bf16") == "bf16"
        assert precision.resolve_dtype("bfloat16", "cpu") == "bfloat16"
        assert precision.resolve("no") == "no"
    emulated = [w for w in caught if "emulates bf16" in str(w.message)]
    assert len(emulated) == (0 if native else 2)


def test_bad_values_name_the_valid_ones():
    with pytest.raises(ValueError, match="mixed_precision='fp16' is invalid; valid values are auto, no, bf16"):
        precision.resolve("fp16")
    with pytest.raises(ValueError, match="dtype='half' is invalid; valid values are auto, float32, bfloat16, float16"):
        precision.resolve_dtype("half")
