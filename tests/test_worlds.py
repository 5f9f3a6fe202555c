import json

import numpy as np
import pytest

from synkit.data.worlds import fashion as fashion_mod
from synkit.data.worlds import load_world, safe_name
from tests.conftest import make_image_folder


def test_safe_name():
    assert safe_name("T-shirt/top") == "T-shirt_top"
    assert safe_name("Ankle boot") == "Ankle_boot"
    assert safe_name("../..") == "_"
    assert "/" not in safe_name("a/b\\c:d")


def test_fashion_splits_fixed_disjoint_and_sized(fashion):
    web, pairs, real, val = (fashion.split(s) for s in ("web", "pairs", "real", "val"))
    assert (len(real), len(val)) == (2_000, 10_000) and len(pairs) == 10 * fashion_mod.PAIRS_PER_CLASS
    assert len(web) <= 20_000
    assert not set(web.ids) & set(real.ids) and not set(web.ids) & set(pairs.ids) and not set(pairs.ids) & set(real.ids)
    again = load_world("fashion", web_size=20_000, real_size=2_000)
    assert np.array_equal(again.split("real").ids, real.ids) and np.array_equal(again.split("web").images, web.images)
    other = load_world("fashion", web_size=20_000, real_size=2_000, split_seed=1)
    assert not np.array_equal(other.split("real").ids, real.ids)
    assert real.images.shape == (2_000, 28, 28) and real.images.dtype == np.uint8
    assert set(np.unique(real.labels)) == set(range(10))
    img, label = real[0]
    assert img.size == (28, 28) and label == real.labels[0]


def test_clip_pairs_share_no_image_with_the_generators_corpus(fashion):
    # by content: the pixels as the generator and CLIP see them (styles applied)
    from synkit.analysis.world_card import image_hashes
    from synkit.data.worlds import pairs_split, t2i_split

    assert (t2i_split(fashion), pairs_split(fashion)) == ("web", "pairs")
    web, pairs, real = (set(image_hashes(fashion.split(s).images)) for s in ("web", "pairs", "real"))
    assert len(web) > 5_000 and len(pairs) > 4_500
    assert not web & pairs and not web & real


def test_the_web_corpus_is_long_tailed_by_a_seeded_rank(fashion):
    counts = np.bincount(fashion.split("web").labels, minlength=10)
    by_rank = counts[np.argsort(fashion.web_ranks)]
    assert np.all(np.diff(by_rank) <= 0) and by_rank[0] / by_rank[-1] >= 0.8 / fashion_mod.WEB_TAIL
    # the pool allows about 4,500 of the commonest class; a smaller web_size scales every class down
    assert by_rank[0] > 4_000
    small = load_world("fashion", web_size=500, real_size=2_000)
    assert np.bincount(small.split("web").labels, minlength=10).sum() <= 500
    assert not np.array_equal(load_world("fashion", web_size=20_000, real_size=2_000, split_seed=1).web_ranks, fashion.web_ranks)


def test_web_styles_and_alt_text_follow_the_design(fashion):
    raw, raw_labels = fashion_mod.read_part(fashion.folder, "train")
    real = fashion.split("real")
    assert np.array_equal(real.images, raw[[int(i.split("-")[1]) for i in real.ids]])  # real keeps its own style
    web = fashion.split("web")
    styles = fashion.styles_of("web")
    for style, share in fashion_mod.WEB_STYLES.items():
        assert abs(np.mean(styles == style) - share) < 0.015, style
    sketched = np.flatnonzero(styles == "sketch")[:20]
    plain = raw[[int(web.ids[i].split("-")[1]) for i in sketched]]
    assert np.array_equal(web.images[sketched], fashion_mod.sketch(plain))
    texts = fashion.alt_texts("web")
    assert texts == fashion.alt_texts("web") and len(texts) == len(web)
    names = np.array([fashion.classes[y].name.lower() for y in web.labels])
    named = np.array([n in t.lower() for n, t in zip(names, texts)])
    assert 0.5 < named.mean() < 0.75  # the name 55%, plus a synonym or a wrong class that happens to contain it
    said = [t.startswith(fashion_mod.STYLE_WORDS[s].split("{")[0]) for s, t in zip(styles, texts) if s]
    assert 0.7 < np.mean(said) < 0.9
    assert len({len(t.split(", ")) for t in texts}) >= 5  # lengths vary
    exact = fashion.alt_texts("web", exact_names=True)
    assert all(n in t.lower() for n, t in zip(names, exact))
    with pytest.raises(ValueError, match="split 'real' has no alt text"):
        fashion.alt_texts("real")


def test_ambiguous_names_follow_the_design(fashion):
    senses = fashion.web_senses
    ranks = fashion.web_ranks
    assert len(senses) == fashion_mod.AMBIGUOUS and all(ranks[b] < ranks[a] for a, b in senses.items())
    assert not set(senses) & set(senses.values())  # a second sense is not itself ambiguous
    assert load_world("fashion", web_size=20_000, real_size=2_000, split_seed=1).web_senses != senses
    web = fashion.split("web")
    texts, exact = fashion.alt_texts("web"), fashion.alt_texts("web", exact_names=True)
    kinds = fashion._draws["mention"][fashion._train_indices["web"]] == list(fashion_mod.MENTIONS).index("name")
    for a, b in senses.items():
        name = fashion.classes[a].name.lower()
        said = np.array([t.lower().startswith(name) or f" {name}" in t.lower() for t in texts])
        own, theirs = int(np.sum(kinds & (web.labels == a))), int(np.sum(kinds & (web.labels == b)))
        # as many of the second sense's named images say the ambiguous name as the class's own, at most half of them
        taken = int(np.sum(said & kinds & (web.labels == b)))
        assert taken == min(own, theirs // 2) > 0
        assert not any(name in t.lower() and y == b for t, y, k in zip(exact, web.labels, kinds) if k)  # the control: own names
    # none asked: every "name" mention says the image's own class, as the exact-names control does
    plain = load_world("fashion", web_size=20_000, real_size=2_000, ambiguous_names=0)
    assert plain.web_senses == {} and plain.alt_texts("web") != texts
    unchanged = ~np.isin(web.labels, list(senses.values()))
    assert [t for t, keep in zip(plain.alt_texts("web"), unchanged) if keep] == [t for t, keep in zip(texts, unchanged) if keep]
    with pytest.raises(ValueError, match=r"ambiguous_names=5 is invalid; it must be a whole number from 0 .* to 4"):
        load_world("fashion", ambiguous_names=5)


def test_fashion_classes_carry_wordnet(fashion):
    names = [c.name for c in fashion.classes]
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot"
    sneaker = fashion.classes[7]
    assert sneaker.wnid == "n03472535" and "sneaker" in sneaker.lemmas
    assert sneaker.hypernyms[1][0] == "footwear"
    assert all(c.gloss and c.hypernyms for c in fashion.classes)


def test_fashion_ood_views(fashion):
    val = fashion.split("val")
    for name in fashion.ood_views:
        view = fashion.split(name)
        assert view.images.shape == val.images.shape
        assert np.array_equal(view.labels, val.labels)
        assert not np.array_equal(view.images, val.images)
    assert set(np.unique(fashion.split("silhouette").images[:50])) <= {0, 255}
    assert fashion.split("sketch").images.max() == 255
    # the mild shift is val moved by at most 2 pixels with a contrast curve: aligned back, it correlates with val
    # almost perfectly; the styled views do not
    def aligned(name, n=40):
        view = fashion.split(name).images[:n].astype(float)
        return np.mean([max(np.corrcoef(np.roll(view[i], (-dy, -dx), (0, 1)).ravel(), val.images[i].ravel().astype(float))[0, 1]
                            for dy in range(-2, 3) for dx in range(-2, 3)) for i in range(n)])
    assert aligned("mild") > 0.97 and max(aligned("sketch"), aligned("silhouette")) < 0.95


def test_fashion_bad_sizes_and_split():
    with pytest.raises(ValueError, match="real_size=55000 leaves too few.*at most 50000"):
        load_world("fashion", real_size=55_000)
    with pytest.raises(ValueError, match="real_size=0 is invalid"):
        load_world("fashion", real_size=0)
    with pytest.raises(ValueError, match="unknown split 'train'.*web, pairs, real, val"):
        load_world("fashion").split("train")
    with pytest.raises(ValueError, match="unknown world 'mnist'"):
        load_world("mnist")


def test_fashion_missing_data_names_apt_package(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mod, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(fashion_mod, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv(fashion_mod.ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fashion_mod.locate(download=False)
    monkeypatch.setenv(fashion_mod.ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="lacks the idx files"):
        fashion_mod.locate()


def test_fashion_env_var_folder(tmp_path, monkeypatch):
    src = fashion_mod.locate()
    for f in src.glob("*.gz"):
        (tmp_path / f.name).symlink_to(f)
    monkeypatch.setenv(fashion_mod.ENV_VAR, str(tmp_path))
    assert fashion_mod.locate() == tmp_path


def test_imagenet_metadata_without_images():
    world = load_world("imagenet")
    assert len(world.classes) == 1000
    tench = world.classes[0]
    assert (tench.name, tench.wnid) == ("tench", "n01440764")
    assert tench.gloss.startswith("freshwater dace-like game fish")
    with pytest.raises(FileNotFoundError, match="set world_root"):
        world.split("real")


def test_imagenet_folders(tmp_path):
    make_image_folder(tmp_path / "in", ["n01440764", "n01443537"], per_class=2)
    make_image_folder(tmp_path / "r", ["n01443537"], splits=(".",), per_class=1)
    world = load_world("imagenet", world_root=str(tmp_path / "in"), ood_roots={"imagenet_r": str(tmp_path / "r")})
    real = world.split("real")
    assert len(real) == 4 and list(real.labels) == [0, 0, 1, 1]
    assert real.image(0).mode == "RGB"
    assert list(world.split("imagenet_r").labels) == [1]
    assert world.splits == ("real", "val", "imagenet_r")


def test_folder_world_names_and_mapping(tmp_path):
    root = make_image_folder(tmp_path / "data", ["sneaker", "tshirt", "zzz_unknown"], splits=("train", "val", "sketch"), per_class=2)
    world = load_world("folder", world_root=str(root))
    assert [c.name for c in world.classes] == ["sneaker", "tshirt", "zzz_unknown"]
    assert world.ood_views == ("sketch",)
    assert len(world.split("sketch")) == 6
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"tshirt": {"name": "T-shirt/top", "wnid": "n03595614"}, "sneaker": "Sneaker"}))
    world = load_world("folder", world_root=str(root), class_map=str(mapping))
    assert [c.name for c in world.classes][:2] == ["Sneaker", "T-shirt/top"]
    assert world.classes[1].hypernyms[0] == ["shirt"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"boots": "Boot"}))
    with pytest.raises(ValueError, match="names folders that train/ lacks: boots"):
        _ = load_world("folder", world_root=str(root), class_map=str(bad)).classes
    with pytest.raises(ValueError, match="needs world_root"):
        load_world("folder")


def test_the_imagenet_world_names_every_class_apart():
    """open_clip's list calls two classes "missile" and two "sunglasses": the world gives each its own name and files."""
    from synkit.data.worlds import load_world

    world = load_world("imagenet")
    names = [c.name for c in world.classes]
    assert len(set(names)) == len({c.slug for c in world.classes}) == 1000
    assert (names[657], names[744], names[836], names[837]) == ("missile", "projectile", "sunglass", "sunglasses")
    assert world.renamed == {744: ("missile", "projectile"), 836: ("sunglasses", "sunglass")}


def test_distinct_names_falls_back_to_the_wnid_when_no_lemma_is_free():
    from synkit.data.worlds.base import ClassInfo, distinct_names

    classes = [ClassInfo(0, "crane", "n1", ["crane"]), ClassInfo(1, "crane", "n2", ["crane"]), ClassInfo(2, "crane", "n3", ["derrick", "crane"])]
    out, renamed = distinct_names(classes)
    assert [c.name for c in out] == ["crane", "crane (n2)", "derrick"] and renamed == {1: ("crane", "crane (n2)"), 2: ("crane", "derrick")}
