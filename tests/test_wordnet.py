import json

import pytest

from synkit.data import wordnet, wordnet_build

needs_db = pytest.mark.skipif(not wordnet.WordNet.available(), reason="WordNet database (Debian wordnet-base) not installed")


def test_shipped_table_covers_imagenet_and_fashion():
    table = wordnet.shipped_table()
    assert len(table) == 1008  # 1000 ImageNet synsets + 8 fashion synsets ImageNet lacks (sandal, jersey are shared)
    assert table["n01440764"].lemmas == ["tench", "Tinca tinca"]
    assert table["n01440764"].hypernyms[0] == ["cyprinid", "cyprinid fish"]
    assert table["n01440764"].hypernyms[-1] == ["entity"]


@pytest.mark.parametrize("wnid", ["n04133789", "n03472535", "n02872752"])  # sandal, sneaker, boot
def test_footwear_reached_by_shoes(wnid):
    chain = [lemma for level in wordnet.synset(wnid).hypernyms for lemma in level]
    assert "footwear" in chain


@needs_db
def test_table_regenerates_from_database():
    shipped = json.loads((wordnet.Path(wordnet.__file__).parent / wordnet.TABLE).read_text())
    assert wordnet_build.build_table() == shipped


@needs_db
def test_reader_parses_synsets_and_lookup():
    wn = wordnet.WordNet()
    sneaker = wn.synset("n03472535")
    assert sneaker.lemmas == ["gym shoe", "sneaker", "tennis shoe"]
    assert sneaker.gloss == "a canvas shoe with a pliable rubber sole"
    assert sneaker.hypernyms[:2] == [["shoe"], ["footwear", "footgear"]]
    assert wn.lookup("sneaker")[0] == "n03472535"  # first sense; the second is a person who sneaks
    assert wn.lookup("no such thing") == []


@needs_db
def test_reader_rejects_bad_ids():
    wn = wordnet.WordNet()
    with pytest.raises(ValueError, match="'x123'.*'n' and 8 digits"):
        wn.synset("x123")
    with pytest.raises(KeyError, match="no noun synset at offset 00000001"):
        wn.synset("n00000001")


def test_missing_database_error_names_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        wordnet.WordNet(tmp_path)
