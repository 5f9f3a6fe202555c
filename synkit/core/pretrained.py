"""Loading pretrained checkpoints by hub id or local path, with one clear error when they are absent.

No weights can be downloaded on machines without internet: a hub id works when its files are
in the local Hugging Face cache (or the hub is reachable), a local folder always works.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or os.sep + os.sep in name


def load_pretrained(loader: Callable[[str], T], name_or_path: str, what: str, param: str) -> T:
    """``loader(name_or_path)``, turning a missing checkpoint into one sentence naming ``param``.

    ``what`` says what the checkpoint is for ("the word2sen T5 model"); ``param`` is the study
    parameter a user sets to point at a local copy.
    """
    if not name_or_path:
        raise ValueError(f"{what} needs a checkpoint: set {param} to a hub id or a local folder.")
    path = Path(name_or_path).expanduser()
    if path.exists():
        return loader(str(path))
    if _looks_like_path(name_or_path):
        raise FileNotFoundError(f"{param}={name_or_path!r}: that folder does not exist; {what} needs a checkpoint there.")
    try:
        return loader(name_or_path)
    except OSError as err:
        raise FileNotFoundError(
            f"{param}={name_or_path!r}: {what} is not in the local Hugging Face cache and could not be downloaded "
            f"({type(err).__name__}); copy the checkpoint to a local folder and set {param} to it."
        ) from None
