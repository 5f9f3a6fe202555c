"""The world card: each mechanism's measurement from a study's files, and its rule."""

import numpy as np
import pandas as pd

from synkit.analysis import report, world_card
from synkit.core.files import write_json, write_parquet
from synkit.core.layout import StudyFiles
from synkit.data.worlds.fashion import CLASS_NAMES

WORLD = {"world": "fashion", "web_size": 20_000, "real_size": 2_000}


def study(tmp_path, f1_by_class, captions=None) -> StudyFiles:
    at = StudyFiles(tmp_path / "study")
    write_json({"d_i": 2_000, **WORLD}, at.d_i)
    write_parquet(pd.DataFrame({"config": ["embedded-in_captions-cfg2"], "generator": ["embedded"]}), at.configs)
    rows = [{"config": f"embedded-in_captions-cfg{g}", "generator": "embedded", "class_index": c, "class_name": CLASS_NAMES[c],
             "f1": f1 * (1 if g == 2 else 0.5)} for g in (1, 2) for c, f1 in enumerate(f1_by_class)]
    write_parquet(pd.DataFrame(rows), at.quality_per_class)
    if captions is not None:
        write_parquet(captions, at.captions)
    return at


def test_the_card_measures_each_mechanism_from_the_study(tmp_path, fashion, monkeypatch):
    from synkit.clip.data import web_captions

    captions = web_captions(fashion, 200, 0)
    at = study(tmp_path, [0.3, 0.4, 0.6, 0.6] + [0.9] * 6, captions)
    card, splits = world_card.world_card(at.root)
    card = card.set_index("mechanism")
    # the best configuration (CFG 2, its mean F1 twice CFG 1's): two classes below 0.5, six of ten above 0.8
    assert "2 of 10 classes below 0.5, 6 above 0.8" in card.loc["concept failure", "this world"]
    assert card.loc["concept failure", "present"] == "yes"
    counts = np.bincount(fashion.split("web").labels, minlength=10)
    assert f"{counts.min()}-{counts.max()} images per class" in card.loc["long-tailed concepts", "this world"]
    assert card.loc["long-tailed concepts", "present"] == "yes" and counts.max() >= 50 * counts.min()  # the web corpus's tail
    # the ambiguous names the world drew: each one's captions show its second sense about as often as its own class
    row = card.loc["ambiguous names"]
    for a, b in fashion.web_senses.items():
        assert f"captions saying '{fashion.classes[a].name}' show {fashion.classes[b].name} in" in row["this world"]
    assert row["present"] == "yes"
    unnamed = np.mean([n.lower() not in t.lower() for t, n in zip(captions["caption"], captions["class_name"])])
    assert f"{unnamed:.0%} of CLIP's 200 real captions" in card.loc["alt-text captions", "this world"]
    assert card.loc["alt-text captions", "present"] == ("yes" if unnamed >= 0.1 else "no")
    # CLIP's pairs come from web data the generator never learned from: none of them is found by its pixels
    assert card.loc["CLIP pairs apart from the generator's data", "this world"].startswith("0 of CLIP's 200 real pair images")
    assert card.loc["CLIP pairs apart from the generator's data", "present"] == "yes"
    assert card.loc["styles the real split lacks", "present"] == "yes" and "sketch 8%" in card.loc["styles the real split lacks", "this world"]
    assert card.loc["a mild-shift view", "present"] == "yes"
    assert splits.startswith(f"world 'fashion': web: {len(counts.nonzero()[0]) and counts.sum()} images") and "mild: 10000 images" in splits
    # the rule the other way: pairs drawn from the generator's own corpus are all found by their pixels
    import synkit.data.worlds as worlds

    monkeypatch.setattr(worlds, "pairs_split", lambda world: "web")
    card, _ = world_card.world_card(at.root)
    row = card.set_index("mechanism").loc["CLIP pairs apart from the generator's data"]
    assert row["this world"].startswith("200 of CLIP's 200 real pair images") and row["present"] == "no"
    monkeypatch.undo()
    # one class fewer below 0.5: no longer a spread of concept failures
    at = study(tmp_path / "even", [0.3, 0.6, 0.6, 0.6] + [0.9] * 6)
    card, _ = world_card.world_card(at.root)
    assert card.set_index("mechanism").loc["concept failure", "present"] == "no"
    assert card.set_index("mechanism").loc["alt-text captions", "present"] == "not measured"  # no 07 in this study
    monkeypatch.setattr(type(fashion), "web_senses", {})  # no ambiguous names: only the noise of wrong mentions is left
    plain = world_card.study_world(at.root)
    row = world_card.ambiguous_names(plain, plain.split("web").labels)
    assert row["present"] == "no", row
    monkeypatch.undo()
    page = report.card_section(at.root)
    assert "<h2>World card</h2>" in page and "Absent here:" in page and "concept failure" in page


def test_pixels_decide_the_hash_and_a_study_without_a_world_gets_no_card(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 28, 28), dtype=np.uint8)
    same = images.copy()
    same[2, 0, 0] ^= 1  # one pixel changed
    a, b = world_card.image_hashes(images), world_card.image_hashes(same)
    assert a[:2] == b[:2] and a[2] != b[2] and len(set(a)) == 3
    card, why = world_card.world_card(tmp_path / "nothing")
    assert card.empty and "names no world" in why
    assert "not available" in report.card_section(tmp_path / "nothing")
