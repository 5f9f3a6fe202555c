import numpy as np
import pytest

from synkit.classify import quality


def test_per_class_quality_f1_and_diversity():
    labels = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 1, 1])  # one class-0 image taken for class 1
    feats = np.array([[0.0, 0], [2, 0], [4, 0], [1, 1], [1, 1], [1, 1]])
    t = quality.per_class_quality(pred, feats, labels, num_classes=3)
    assert t["f1"].round(3).tolist() == [0.8, 0.857, 0.0]  # class 0: P 1, R 2/3; class 1: P 3/4, R 1
    assert t.loc[0, "diversity"] == pytest.approx(np.std([0, 2, 4]) / 2)  # std per dimension, averaged
    assert t.loc[1, "diversity"] == 0.0 and np.isnan(t.loc[2, "diversity"])
    assert t["n"].tolist() == [3, 3, 0]
    with pytest.raises(ValueError, match="must have equal length"):
        quality.per_class_quality(pred[:2], feats, labels, 3)


def test_reference_trains_caches_and_predicts(tmp_path, fashion):
    cfg = quality.ReferenceConfig(web_size=20_000, real_size=2_000, width=8, epochs=4)
    folder = quality.ensure_reference(cfg, tmp_path, progress=False)
    model, info = quality.load_reference(folder)
    assert 0.3 < info["val_top1"] <= 1.0  # four epochs on 2000 images are far above chance (0.1)
    assert quality.ensure_reference(cfg, tmp_path, progress=False) == folder  # reused, not retrained
    assert quality.reference_key(cfg) != quality.reference_key(quality.ReferenceConfig(web_size=20_000, real_size=2_000, width=8, epochs=2))
    images = fashion.split("val").images[:300]
    pred, feats = quality.predict(model, images)
    assert pred.shape == (300,) and feats.shape == (300, 32)
    again, _ = quality.predict(model, images)
    assert np.array_equal(pred, again)
