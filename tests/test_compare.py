"""synkit.study.compare: two study folders, table by table."""

import pandas as pd

from synkit.study import compare


def study(root, loss=0.5, train_s=1.0):
    (root / "train").mkdir(parents=True)
    pd.DataFrame({"size": [1, 2], "loss": [0.7, loss], "train_s": [train_s, 2.0]}).to_parquet(root / "train" / "metrics.parquet")
    (root / "synthetic").mkdir()
    (root / "synthetic" / "shard-0.tar").write_bytes(b"abc")
    return root


def test_same_study_twice_is_the_same_whatever_the_timings(tmp_path):
    a, b = study(tmp_path / "a"), study(tmp_path / "b", train_s=9.0)
    assert compare.compare(a, b) == []
    assert compare.main([str(a), str(b)]) == 0


def test_one_cell_one_byte_or_one_file_differ(tmp_path):
    a, b = study(tmp_path / "a"), study(tmp_path / "b", loss=0.5000001)
    (b / "synthetic" / "shard-0.tar").write_bytes(b"abd")
    (b / "extra.parquet").write_bytes(b"")
    diffs = compare.compare(a, b)
    assert diffs == [f"extra.parquet: only in {b}", "synthetic/shard-0.tar: bytes differ", "train/metrics.parquet: columns ['loss'] differ"]
    assert compare.main([str(a), str(b)]) == 1
    assert compare.main([str(a), str(tmp_path / "nope")]) == 2
