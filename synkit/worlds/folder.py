"""The folder world: a user's own labelled images, so the study runs on their data.

Layout: ``root/train/<class>/`` (split "real"), ``root/val/<class>/`` (split "val"); every
other folder of ``root`` with the same class subfolders is an OOD view named after it
(``root/sketch/<class>/`` -> split "sketch").

Class names are the subfolder names, or come from ``class_map``: a JSON file mapping each
folder name to a display name, or to ``{"name": ..., "wnid": "n03472535"}``. WordNet metadata
comes from the wnid where given, else from the class name's most frequent noun sense in the
WordNet database when it is installed; otherwise gloss and hypernyms stay empty, and the
prompt sets that need them say so.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path

from synkit import wordnet
from synkit.worlds import ClassInfo, FileSplit, scan_class_folders


class FolderWorld:
    name = "folder"

    def __init__(self, root: str | Path, class_map: str | Path | None = None):
        self.root = Path(root)
        if not (self.root / "train").is_dir():
            raise FileNotFoundError(f"folder world root {self.root} has no train/ folder; expected train/<class>/ and val/<class>/.")
        self.class_map = Path(class_map) if class_map else None

    @cached_property
    def folders(self) -> list[str]:
        return sorted(p.name for p in (self.root / "train").iterdir() if p.is_dir())

    @property
    def ood_views(self) -> tuple[str, ...]:
        return tuple(sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name not in ("train", "val")))

    @property
    def splits(self) -> tuple[str, ...]:
        return ("real", "val", *self.ood_views)

    def _mapping(self) -> dict[str, dict]:
        if self.class_map is None:
            return {}
        raw = json.loads(self.class_map.read_text(encoding="utf-8"))
        unknown = sorted(set(raw) - set(self.folders))
        if unknown:
            raise ValueError(f"class_map {self.class_map} names folders that train/ lacks: {', '.join(unknown)}.")
        return {k: (v if isinstance(v, dict) else {"name": v}) for k, v in raw.items()}

    @cached_property
    def classes(self) -> list[ClassInfo]:
        mapping = self._mapping()
        db = wordnet.WordNet() if wordnet.WordNet.available() else None
        out = []
        for index, folder in enumerate(self.folders):
            entry = mapping.get(folder, {})
            name = entry.get("name", folder)
            wnid = entry.get("wnid")
            if wnid is None and db is not None:
                wnid = next(iter(db.lookup(name)), None)
            if wnid is None:
                out.append(ClassInfo(index, name))
                continue
            syn = wordnet.synset(wnid)
            out.append(ClassInfo(index, name, wnid, syn.lemmas, syn.gloss, syn.hypernyms))
        seen: dict[str, str] = {}
        for c in out:  # class names become file names ("T-shirt/top" -> "T-shirt_top"): they must stay distinct
            if not re.search(r"[A-Za-z0-9]", c.name):
                raise ValueError(f"class name {c.name!r} has no letter or digit to name its files by; give the class a real name in class_map.")
            if c.slug in seen:
                raise ValueError(f"class names {seen[c.slug]!r} and {c.name!r} both become the file name {c.slug!r}; rename one in class_map.")
            seen[c.slug] = c.name
        return out

    def split(self, name: str) -> FileSplit:
        if name not in self.splits:
            raise ValueError(f"unknown split {name!r} of folder world {self.root}; valid splits are {', '.join(self.splits)}.")
        sub = {"real": "train"}.get(name, name)
        return scan_class_folders(self.root / sub, {f: i for i, f in enumerate(self.folders)}, name)
