"""A configuration's images on disk: webdataset shards (``shard-K.tar``) and their manifest; reading them back checks every
shard against the manifest (size, sha256, sample count) and names a missing, truncated or corrupt one."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from synkit.core.layout import MANIFEST


class ShardError(RuntimeError):
    """A shard is missing, truncated or corrupt; the message names it."""


def shard_path(out_dir: Path, k: int) -> Path:
    return out_dir / f"shard-{k:05d}.tar"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(config_dir: str | Path, checksums: bool = True) -> pd.DataFrame:
    """The configuration's manifest, after checking every shard against it (size, sha256,
    sample count); raises ShardError naming the first bad shard."""
    out = Path(config_dir)
    man = out / MANIFEST
    if not man.exists():
        raise ShardError(f"{out} has no {MANIFEST}: its generation did not finish; rerun 02_generate for it.")
    manifest = pd.read_parquet(man)
    for shard, group in manifest.groupby("shard", sort=True):
        p = out / shard
        expect = group.iloc[0]
        if not p.exists():
            raise ShardError(f"shard {p} is missing ({len(group)} images); rerun 02_generate to make it again.")
        if p.stat().st_size != expect["shard_bytes"]:
            raise ShardError(f"shard {p} is truncated or altered: {p.stat().st_size} bytes, the manifest says {expect['shard_bytes']}.")
        if checksums and sha256(p) != expect["shard_sha256"]:
            raise ShardError(f"shard {p} is corrupt: its sha256 differs from the manifest's; rerun 02_generate to redo it.")
    return manifest


def read_images(config_dir: str | Path, per_class: int | None = None, checksums: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """Images (N, H, W[, C]) uint8 and their manifest rows, in generation order, for the first
    ``per_class`` images of every class (a class-balanced prefix; all when None)."""
    out = Path(config_dir)
    manifest = verify(out, checksums)
    if per_class is not None:
        manifest = manifest[manifest["index"] < per_class]
    want = set(manifest["key"])
    found: dict[str, np.ndarray] = {}
    for shard in manifest["shard"].unique():
        try:
            with tarfile.open(out / shard) as tar:
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    if ext == "png" and key in want:
                        found[key] = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())))
        except (tarfile.TarError, OSError) as err:
            raise ShardError(f"shard {out / shard} cannot be read: {err}") from None
    lost = [k for k in manifest["key"] if k not in found]
    if lost:
        raise ShardError(f"{len(lost)} images of the manifest are not in the shards of {out} (first: {lost[0]}).")
    return np.stack([found[k] for k in manifest["key"]]), manifest.reset_index(drop=True)
