"""CLIP pairs streamed from webdataset shards: order, ranks, resume, mixing, memory."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from synkit.clip import data as clip_data
from synkit.clip import ladder as clip
from synkit.clip import train as clip_train
from synkit.clip.stream import CaptionStream, StreamSpec, caption_table, records, expand_urls, shuffled, takes_synthetic, write_pairs


def _pairs(fashion, n):
    web = np.asarray(fashion.split("web").images)[:n]
    labels = np.asarray(fashion.split("web").labels)[:n]
    caps = pd.DataFrame({"caption_id": [f"web-{i:06d}" for i in range(n)],
                         "caption": [f"{fashion.classes[c].name}, picture {i}" for i, c in enumerate(labels)]})
    return caps, web


def _tokens(texts):
    """A stand-in tokenizer: each caption's index (its last word) and length."""
    return torch.tensor([[int(t.rsplit(" ", 1)[1]), len(t)] for t in texts])


def test_pairs_written_as_shards_read_back_in_order(tmp_path, fashion):
    caps, web = _pairs(fashion, 250)
    spec = write_pairs(caps, web, tmp_path / "pairs", shard_size=100)
    assert spec.endswith("pairs-{000000..000002}.tar") and len(expand_urls(spec)) == 3
    table = caption_table(spec, 250)
    assert table["caption"].tolist() == caps["caption"].tolist() and table["caption_id"].tolist() == caps["caption_id"].tolist()
    first = next(records(expand_urls(spec), 1))
    from PIL import Image
    import io

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(first[1]))), web[0])
    with pytest.raises(ValueError, match="hold 250 image-caption pairs, fewer than the 300 asked for"):
        caption_table(spec, 300)
    with pytest.raises(FileNotFoundError, match="caption shard .*none-0.tar does not exist; clip_shards must name LAION-style"):
        expand_urls(str(tmp_path / "none-{0..3}.tar"))


def test_shuffle_buffer_is_a_seeded_permutation_and_the_mixed_choice_is_even():
    a = list(shuffled(iter(range(1000)), 64, np.random.default_rng(1)))
    assert sorted(a) == list(range(1000)) and a != list(range(1000))
    assert a == list(shuffled(iter(range(1000)), 64, np.random.default_rng(1)))
    share = np.mean([takes_synthetic(0, 0, i) for i in range(4000)])
    assert 0.46 < share < 0.54
    assert [takes_synthetic(0, 1, i) for i in range(50)] != [takes_synthetic(0, 2, i) for i in range(50)]


def _texts(batches):
    return [t for _, tokens in batches for t in tokens[:, 0].tolist()]


def test_stream_epochs_ranks_and_resume(tmp_path, fashion):
    caps, web = _pairs(fashion, 200)
    spec = StreamSpec(write_pairs(caps, web, tmp_path / "pairs", shard_size=64), None, 160, buffer=32)
    whole = list(CaptionStream(spec, "real", 20, 16, seed=3, tokenizer=_tokens))  # 8 steps an epoch, 2 epochs
    assert len(whole) == 16 and whole[0][0].shape == (20, 3, 28, 28)
    first, second = _texts(whole[:8]), _texts(whole[8:])
    expected = list(range(160))
    assert sorted(first) == expected and sorted(second) == expected and first != second  # every caption once an epoch, reshuffled
    # resume at step 11: the same batches as the uninterrupted stream from there
    resumed = list(CaptionStream(spec, "real", 20, 16, seed=3, tokenizer=_tokens, start=11))
    assert len(resumed) == 5
    for (x, t), (y, u) in zip(resumed, whole[11:]):
        assert torch.equal(x, y) and torch.equal(t, u)
    # two processes split each epoch between them: 4 steps each, disjoint, together the epoch
    ranks = [list(CaptionStream(spec, "real", 20, 4, seed=3, tokenizer=_tokens, rank=r, world=2)) for r in (0, 1)]
    a, b = _texts(ranks[0]), _texts(ranks[1])
    assert len(a) == len(b) == 80 and sorted(a + b) == expected
    # each image is its caption's, standardized as the in-memory path does
    images, tokens = whole[3]
    assert torch.equal(images, clip_data.to_clip_tensor(web[tokens[:, 0].numpy()]))


def test_mixed_stream_takes_the_choice_and_checks_caption_order(tmp_path, fashion):
    caps, web = _pairs(fashion, 96)
    real = write_pairs(caps, web, tmp_path / "real", shard_size=40)
    synthetic = write_pairs(caps, 255 - web, tmp_path / "synthetic", shard_size=32)  # other shard boundaries: caption order is what counts
    stream = CaptionStream(StreamSpec(real, synthetic, 96, buffer=1), "mixed", 96, 2, seed=5, tokenizer=_tokens)
    real_x, synth_x = clip_data.to_clip_tensor(web), clip_data.to_clip_tensor(255 - web)
    seen = []
    for epoch, (images, tokens) in enumerate(stream):  # buffer 1 and one batch an epoch: caption order
        order = tokens[:, 0].tolist()
        assert order == list(range(96))
        took = [torch.equal(images[j], synth_x[i]) for j, i in enumerate(order)]
        assert all(torch.equal(images[j], (synth_x if t else real_x)[i]) for j, (i, t) in enumerate(zip(order, took)))
        assert took == [takes_synthetic(5, epoch, i) for i in order]
        seen.append(took)
    assert seen[0] != seen[1]  # chosen again each epoch
    caps2 = caps.assign(caption=caps["caption"].str.upper())
    other = write_pairs(caps2, web, tmp_path / "other", shard_size=40)
    with pytest.raises(ValueError, match="caption 0 differs between the real shards"):
        list(CaptionStream(StreamSpec(real, other, 96), "mixed", 32, 1, seed=0, tokenizer=_tokens))
    with pytest.raises(ValueError, match="the synthetic setup streams synthetic shards, which were not given"):
        CaptionStream(StreamSpec(real, None, 96), "synthetic", 32, 1, seed=0, tokenizer=_tokens)


@pytest.mark.slow
def test_a_streaming_job_trains_saves_and_resumes_after_a_kill(tmp_path, fashion, tiny_sd):
    import shutil

    from tests.conftest import kill_at_checkpoint
    from tests.test_clip import _caption_study

    straight = _caption_study(tmp_path / "straight", fashion, tiny_sd)
    caps = pd.read_parquet(straight / "clip" / "captions.parquet")
    real = np.asarray(fashion.split("pairs").images)[caps["web_index"].to_numpy()]
    shards = write_pairs(caps, real, tmp_path / "real_pairs", shard_size=20)
    killed = tmp_path / "killed"
    shutil.copytree(straight, killed)
    spec = {"web_size": 20_000, "real_size": 2_000, "scales": [32, 64], "setups": ["mixed"], "eval_size": 200, "stream": True,
            "real_shards": shards, "stream_buffer": 16, "clip_config": {"epochs": 4, "batch_size": 8, "checkpoint_every": 4}}
    reference = clip.run_job(clip.ClipJob(study_dir=str(straight), **spec), progress=False)
    assert sorted(reference["scale"].unique()) == [32, 64] and reference["top1"].between(0, 1).all()
    model, _, tokenizer = clip_train.load_model(straight / "clip" / "runs" / "mixed" / "n00000064-s0" / "model")
    assert model.encode_text(tokenizer(["a shirt"])).shape[-1] > 0
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"study_dir": str(killed), **spec}))
    ckpt = killed / "clip" / "runs" / "mixed" / "n00000064-s0" / "checkpoint.pt"
    assert kill_at_checkpoint("synkit.clip.ladder", job_file, ckpt), "the streaming run never wrote a checkpoint before it was killed"
    resumed = clip.run_job(clip.ClipJob(study_dir=str(killed), **spec), progress=False)
    run_table = pd.read_parquet(killed / "clip" / "runs.parquet")
    assert run_table.set_index("captions").loc[64, "resumed_from"] > 0
    np.testing.assert_allclose(reference["loss"], resumed["loss"], atol=1e-3)
    assert np.abs(reference["top1"].to_numpy() - resumed["top1"].to_numpy()).max() <= 0.01


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys, tempfile
    from pathlib import Path
    import numpy as np, pandas as pd, torch
    from synkit.clip import train as clip_train
    from synkit.clip.stream import StreamSpec
    torch.set_num_threads(1)
    n, shards = int(sys.argv[1]), sys.argv[2]
    config = clip_train.ClipConfig(epochs=1, batch_size=128, checkpoint_every=10**6)
    evaluate = lambda m, acc: pd.DataFrame([{"eval_set": "val", "task": "classes", "top1": 0.0, "loss": 1.0}])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as tmp:
        _, info = clip_train.train_clip(None, None, "real", config, Path(tmp) / "run", evaluate, progress=False, stream=StreamSpec(shards, None, n, buffer=1000))
    print(json.dumps({"n": n, "steps": info["steps"], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "start_mb": before / 1024}))
""")


@pytest.mark.slow
def test_streaming_memory_is_flat_in_the_number_of_captions(tmp_path, fashion):
    """Peak RSS of a one-epoch streaming run at 640 and 6k captions: flat (the in-memory bank
    would grow by 2 x 5.4k x 3 x 28 x 28 float32 = 100 MB between the first and the last)."""
    caps, web = _pairs(fashion, 6000)
    shards = write_pairs(caps, web, tmp_path / "pairs", shard_size=2000)
    script = tmp_path / "memory.py"
    script.write_text(MEMORY_SCRIPT)
    peaks = {}
    for n in (640, 6000):
        done = subprocess.run([sys.executable, str(script), str(n), shards], capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        assert row["steps"] == n // 128
        peaks[n] = row["peak_mb"]
    print("peak RSS (MB) by captions:", {k: round(v) for k, v in peaks.items()})
    assert peaks[6000] - peaks[640] < 40, peaks
