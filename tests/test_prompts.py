import pandas as pd
import pytest

from synkit.data import prompts
from synkit.data.captions import FashionCaptioner, load_captioner
from synkit.data.worlds import load_world
from tests.conftest import make_image_folder

NO_DOWNLOAD = ["classnames", "classname_description", "classname_hypernyms", "clip_templates_7", "clip_templates_80", "in_captions"]


@pytest.fixture(scope="module")
def fashion_table(fashion):
    return prompts.build_prompts(fashion, NO_DOWNLOAD, seed=0, captioner=FashionCaptioner(), captions_per_class=20)


def test_fashion_table_shape_and_counts(fashion_table):
    t = fashion_table
    assert list(t.columns) == prompts.COLUMNS
    per = t.groupby(["prompt_set", "class_index"]).size().unstack()
    assert (per.loc["clip_templates_80"] == 80).all() and (per.loc["clip_templates_7"] == 7).all()
    assert (per.loc["classnames"] == 1).all() and (per.loc["in_captions"] == 20).all()
    assert set(t["world"]) == {"fashion"}
    assert t.loc[t.prompt_set == "classnames", "prompt"].tolist()[0] == "T-shirt/top"


def test_hypernym_prompts_reach_footwear(fashion_table):
    hyp = fashion_table[fashion_table.prompt_set == "classname_hypernyms"].set_index("class_name")["prompt"]
    assert "footwear" in hyp["Sandal"] and "footwear" in hyp["Sneaker"]
    assert hyp["Sneaker"].startswith("Sneaker, gym shoe, tennis shoe, shoe")
    desc = fashion_table[fashion_table.prompt_set == "classname_description"].set_index("class_name")["prompt"]
    assert desc["Sneaker"] == "Sneaker, a canvas shoe with a pliable rubber sole"


def test_in_captions_differ_within_class_and_name_sources(fashion_table, fashion):
    cap = fashion_table[fashion_table.prompt_set == "in_captions"]
    for name, group in cap.groupby("class_name"):
        assert group["prompt"].str.startswith(f"{name}, ").all()
        assert group["prompt"].nunique() >= 8, name
    real = fashion.split("real")
    label_of = dict(zip(real.ids, real.labels))
    assert all(label_of[s] == c for s, c in zip(cap["source_id"], cap["class_index"]))
    assert cap["source_id"].is_unique


def test_deterministic_for_a_seed(fashion, fashion_table):
    again = prompts.build_prompts(fashion, NO_DOWNLOAD, seed=0, captioner=FashionCaptioner(), captions_per_class=20)
    pd.testing.assert_frame_equal(again, fashion_table)
    other = prompts.build_prompts(fashion, ["in_captions"], seed=1, captioner=FashionCaptioner(), captions_per_class=20)
    assert set(other["source_id"]) != set(fashion_table.loc[fashion_table.prompt_set == "in_captions", "source_id"])


def test_hypernym_depth(fashion):
    one = prompts.classname_hypernyms(fashion.classes, depth=1)
    assert one[5]["prompt"] == "Sandal, shoe"
    with pytest.raises(ValueError, match="hypernym_depth=0"):
        prompts.classname_hypernyms(fashion.classes, depth=0)


def test_imagenet_sets_from_metadata_alone():
    world = load_world("imagenet")
    t = prompts.build_prompts(world, ["classnames", "classname_description", "classname_hypernyms", "clip_templates_7", "clip_templates_80"])
    counts = t.groupby("prompt_set").size()
    assert counts["classnames"] == 1000 and counts["clip_templates_80"] == 80_000 and counts["clip_templates_7"] == 7_000
    hyp = t[t.prompt_set == "classname_hypernyms"]["prompt"].iloc[0]
    assert hyp == "tench, Tinca tinca, cyprinid, cyprinid fish, cypriniform fish"
    assert prompts.summary(t).loc["classname_description", "classes"] == 1000


def test_word2sen_tiny_t5(fashion, tiny_t5):
    t = prompts.build_prompts(fashion, ["word2sen"], seed=3, word2sen_model=str(tiny_t5), word2sen_per_class=4)
    assert len(t) == 40 and (t.groupby("class_index").size() == 4).all()
    again = prompts.build_prompts(fashion, ["word2sen"], seed=3, word2sen_model=str(tiny_t5), word2sen_per_class=4)
    assert again["prompt"].tolist() == t["prompt"].tolist()


def test_word2sen_without_checkpoint_fails_clearly(fashion, tmp_path):
    with pytest.raises(FileNotFoundError, match="word2sen_model='mrm8488/t5-base-finetuned-common_gen'.*local Hugging Face cache"):
        prompts.build_prompts(fashion, ["word2sen"], word2sen_model="mrm8488/t5-base-finetuned-common_gen")
    with pytest.raises(FileNotFoundError, match="that folder does not exist"):
        prompts.build_prompts(fashion, ["word2sen"], word2sen_model=str(tmp_path / "t5"))


def test_in_captions_with_blip2_on_imagenet_folders(tmp_path, tiny_blip2):
    make_image_folder(tmp_path, ["n01440764", "n01443537"], per_class=3)
    world = load_world("imagenet", world_root=str(tmp_path))
    rows = prompts.in_captions(world, world.classes[:2], load_captioner("imagenet", str(tiny_blip2), max_new_tokens=3), per_class=2)
    assert [r["class_name"] for r in rows] == ["tench", "tench", "goldfish", "goldfish"]
    assert all(r["prompt"].startswith(r["class_name"] + ", ") for r in rows)
    assert rows[0]["source_id"].startswith("real/n01440764/")


def test_folder_world_without_wordnet_entry_says_so(tmp_path, monkeypatch):
    from synkit.data import wordnet

    monkeypatch.setattr(wordnet.WordNet, "available", staticmethod(lambda root=None: False))
    make_image_folder(tmp_path, ["widget"], per_class=1)
    world = load_world("folder", world_root=str(tmp_path))
    assert prompts.build_prompts(world, ["classnames"])["prompt"].tolist() == ["widget"]
    with pytest.raises(ValueError, match="class 'widget' has no WordNet synset"):
        prompts.build_prompts(world, ["classname_hypernyms"])


def test_unknown_prompt_set():
    with pytest.raises(ValueError, match="unknown prompt set 'class_names'"):
        prompts.build_prompts(load_world("imagenet"), ["class_names"])
    with pytest.raises(ValueError, match="must be a list of set names"):
        prompts.build_prompts(load_world("imagenet"), "classnames")


def test_examples_and_chart(fashion_table):
    from synkit.analysis.charts import prompt_counts

    ex = prompts.examples(fashion_table, n_classes=3)
    assert ex.shape == (6, 3) and list(ex.columns) == ["T-shirt/top", "Trouser", "Pullover"]
    spec = prompt_counts(fashion_table).to_dict()
    assert spec["layer"][0]["mark"]["type"] == "bar"
