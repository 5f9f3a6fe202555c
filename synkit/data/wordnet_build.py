"""Regenerate the WordNet table shipped with synkit (``synkit/data/wordnet.json``) from a WordNet 3.0 database:

    python -m synkit.data.wordnet_build [WORDNET_DIR]

It holds the synsets the built-in worlds name: ImageNet's 1000 (timm's class metadata), then the fashion world's.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from synkit.core.files import write_text
from synkit.data.wordnet import DEFAULT_DIR, TABLE, WordNet
from synkit.data.worlds.fashion import FASHION_WNIDS


def table_wnids() -> list[str]:
    """The synsets the shipped table must hold: ImageNet's 1000 wnids, then the fashion world's."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    imagenet = [info.index_to_label_name(i) for i in range(info.num_classes())]
    return imagenet + [w for w in FASHION_WNIDS if w not in imagenet]


def build_table(root: str | Path = DEFAULT_DIR) -> dict[str, dict]:
    """The shipped table, from a WordNet 3.0 database."""
    wn = WordNet(root)
    out = {}
    for wnid in table_wnids():
        fields = asdict(wn.synset(wnid))
        del fields["wnid"]
        out[wnid] = fields
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = argv[0] if argv else DEFAULT_DIR
    table = build_table(root)
    dest = Path(__file__).parent / TABLE
    write_text(json.dumps(table, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n", dest)
    print(f"wrote {len(table)} synsets to {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
