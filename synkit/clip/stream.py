"""CLIP data that streams from webdataset shards: memory flat in the number of captions.

The paper trains CLIP on LAION-400M subsets of 1M to 371M captions; no machine holds those images.
Here a run reads its image-caption pairs from shards as it trains:

- **Real pairs**: LAION-style shards (``<key>.jpg|png|webp`` + ``<key>.txt``; ``write_pairs`` writes
  them for a world held in memory). **Synthetic images**: 07's caption shards (one image per
  caption, in caption order, with the caption as ``txt``). A scale of n captions is the first n
  pairs of the real shards in order, as the in-memory path takes the first n captions.
- **Setups**: ``real`` reads the real shards, ``synthetic`` the synthetic ones, ``mixed`` both in
  step (their captions must agree) and takes, per caption and epoch, the synthetic image when a
  hash of (seed, epoch, caption index) says so (half the time): the same rule for every process
  and on resume, with no per-caption table in memory.
- **Order**: each epoch reads the captions in shard order through a seeded shuffle buffer of
  ``buffer`` samples (seed, epoch), as webdataset training does; this is a local shuffle, not the
  in-memory path's full permutation. Process p of N takes every N-th sample of the shuffled stream,
  and an epoch is ``n // (batch_size * N)`` steps for every process.
- **Resume at a step**: the epoch's stream is replayed up to the step as raw bytes (nothing decoded)
  and training continues with the same batches an uninterrupted run would have drawn.
- **Memory**: the shuffle buffer's raw samples, one tar member at a time, one decoded batch.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


def expand_urls(spec: str) -> list[str]:
    """Shard URLs from webdataset's brace notation (several joined by ``::``); local files must exist."""
    import webdataset as wds

    urls = [u for part in spec.split("::") for u in wds.shardlists.expand_urls(part)]
    missing = [u for u in urls if "://" not in u and not u.startswith("pipe:") and not Path(u).exists()]
    if not urls or missing:
        raise FileNotFoundError(f"caption shard {missing[0] if missing else spec} does not exist; clip_shards must name LAION-style "
                                "webdataset tar files (brace notation, e.g. /data/laion/{00000..00099}.tar).")
    return urls


def records(urls: list[str], limit: int | None = None, with_url: bool = False) -> Iterator[tuple]:
    """(key, image bytes, caption) of the shards' samples in order, the first ``limit`` (with the
    shard's URL last when ``with_url``); nothing is decoded. Samples without an image or a caption are
    skipped (as LAION shards have failed downloads)."""
    import webdataset as wds

    count = 0
    for sample in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples()):  # no node splitting: every process reads in order
        image = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
        if image is None or "txt" not in sample:
            continue
        row = (sample["__key__"], image, sample["txt"].decode("utf-8"))
        yield (*row, sample["__url__"]) if with_url else row
        count += 1
        if count == limit:
            return


def caption_table(spec: str, n: int) -> pd.DataFrame:
    """The first ``n`` captions of LAION-style shards (their images are not decoded): caption_id,
    caption, class_index (-1), class_name (""), source_id."""
    urls = expand_urls(spec)
    rows = [{"caption_id": key, "caption": text, "class_index": -1, "class_name": "", "source_id": key} for key, _, text in records(urls, n)]
    if len(rows) < n:
        raise ValueError(f"the shards {spec} hold {len(rows)} image-caption pairs, fewer than the {n} asked for.")
    return pd.DataFrame(rows)


def write_pairs(captions: pd.DataFrame, images: np.ndarray, folder: str | Path, shard_size: int = 1000) -> str:
    """Image-caption pairs as LAION-style shards (``<caption_id>.png`` + ``.txt``) in caption order,
    each written beside and renamed into place; returns the shards in brace notation. Complete
    shards of an earlier call with the same pairs are kept."""
    import webdataset as wds
    from PIL import Image

    from synkit.core.files import atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(captions)
    if len(images) != n:
        raise ValueError(f"{n} captions need as many images; {len(images)} were given.")
    shards = (n + shard_size - 1) // shard_size
    for s in range(shards):
        path = folder / f"pairs-{s:06d}.tar"
        if path.exists():
            continue
        with atomic(path) as tmp, open(tmp, "wb") as f:
            writer = wds.TarWriter(f, mtime=0.0)
            for i in range(s * shard_size, min(n, (s + 1) * shard_size)):
                buf = io.BytesIO()
                Image.fromarray(np.asarray(images[i])).save(buf, format="PNG")
                writer.write({"__key__": str(captions["caption_id"].iloc[i]), "png": buf.getvalue(), "txt": str(captions["caption"].iloc[i])})
            writer.close()
    return str(folder / f"pairs-{{{0:06d}..{shards - 1:06d}}}.tar")


def takes_synthetic(seed: int, epoch: int, index: int) -> bool:
    """The mixed setup's choice for caption ``index`` in ``epoch``: its synthetic image half the time."""
    return hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=1).digest()[0] < 128


def shuffled(items: Iterator, buffer: int, rng: np.random.Generator) -> Iterator:
    """A seeded shuffle buffer: hold ``buffer`` items, emit a random one as each new item arrives."""
    held: list = []
    for item in items:
        if len(held) < buffer:
            held.append(item)
            continue
        j = int(rng.integers(len(held)))
        held[j], item = item, held[j]
        yield item
    order = rng.permutation(len(held))
    for j in order:
        yield held[j]


@dataclass(frozen=True)
class StreamSpec:
    """Where a streaming CLIP run reads its pairs: ``real`` and ``synthetic`` shards (brace notation),
    the first ``n`` captions, images squared to ``image_size`` (None: as stored, e.g. fashion's 28 px
    grayscale), a shuffle buffer of ``buffer`` samples."""

    real: str | None
    synthetic: str | None
    n: int
    image_size: int | None = None
    buffer: int = 2000

    def key(self) -> dict:
        return {"real": self.real, "synthetic": self.synthetic, "n": self.n, "image_size": self.image_size, "buffer": self.buffer, "stream": 1}


class CaptionStream(torch.utils.data.IterableDataset):
    """Batches (images (B, 3, H, W) standardized as ``clip.data.to_clip_tensor``, tokens) of steps
    ``start..steps`` for process ``rank`` of ``world``; see the module docstring for the order."""

    def __init__(self, spec: StreamSpec, setup: str, batch_size: int, steps: int, seed: int, tokenizer, start: int = 0, rank: int = 0,
                 world: int = 1):
        from synkit.clip.data import SETUPS

        if setup not in SETUPS:
            raise ValueError(f"setup {setup!r} is unknown; valid setups are {', '.join(SETUPS)}.")
        need = {"real": [spec.real], "synthetic": [spec.synthetic], "mixed": [spec.real, spec.synthetic]}[setup]
        if any(u is None for u in need):
            raise ValueError(f"the {setup} setup streams {' and '.join(n for n, u in (('real', spec.real), ('synthetic', spec.synthetic)) if u is None)} "
                             "shards, which were not given.")
        self.spec, self.setup, self.batch_size, self.steps, self.seed = spec, setup, batch_size, steps, seed
        self.tokenizer, self.start, self.rank, self.world = tokenizer, start, rank, world
        self.steps_per_epoch = max(spec.n // (batch_size * world), 1)

    def __len__(self) -> int:
        return self.steps - self.start

    def _pairs(self, epoch: int) -> Iterator[tuple[bytes, str]]:
        """(image bytes, caption) of the first n captions in caption order, the setup's image chosen."""
        n = self.spec.n
        if self.setup == "real":
            source = ((image, text) for _, image, text in records(expand_urls(self.spec.real), n))
        elif self.setup == "synthetic":
            source = ((image, text) for _, image, text in records(expand_urls(self.spec.synthetic), n))
        else:
            real, synthetic = records(expand_urls(self.spec.real), n), records(expand_urls(self.spec.synthetic), n)
            source = self._mixed(real, synthetic, epoch)
        count = 0
        for pair in source:
            count += 1
            yield pair
        if count < n:
            raise ValueError(f"the {self.setup} shards hold {count} image-caption pairs, fewer than the {n} captions of this scale.")

    def _mixed(self, real, synthetic, epoch: int):
        for i, ((_, real_image, text), (_, synth_image, synth_text)) in enumerate(zip(real, synthetic)):
            if synth_text != text:
                raise ValueError(f"caption {i} differs between the real shards ({text[:60]!r}) and the synthetic ones ({synth_text[:60]!r}): "
                                 "the synthetic shards must follow the real shards' caption order; regenerate them from the same captions.")
            yield (synth_image if takes_synthetic(self.seed, epoch, i) else real_image), text

    def _decode(self, pairs: list[tuple[bytes, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        from synkit.clip.data import square, to_clip_tensor

        images = [Image.open(io.BytesIO(b)) for b, _ in pairs]
        if self.spec.image_size is None and all(im.mode == "L" for im in images):
            arrays = np.stack([np.asarray(im) for im in images])  # grayscale as stored (fashion): the in-memory path's tensors
        else:
            size = self.spec.image_size or images[0].size[0]
            arrays = np.stack([square(im, size) for im in images])
        return to_clip_tensor(arrays), self.tokenizer([t for _, t in pairs])

    def __iter__(self):
        step, per = self.start, self.batch_size
        while step < self.steps:
            epoch = step // self.steps_per_epoch
            skip = step - epoch * self.steps_per_epoch  # batches of this epoch already trained (resume): replayed undecoded
            rng = np.random.default_rng([self.seed, epoch, 29])
            mine = itertools.islice(shuffled(self._pairs(epoch), self.spec.buffer, rng), self.rank, None, self.world)
            mine = itertools.islice(mine, self.steps_per_epoch * per)
            for _ in range(skip * per):
                next(mine)
            for _ in range(skip, self.steps_per_epoch):
                batch = list(itertools.islice(mine, per))
                yield self._decode(batch)
                step += 1
                if step >= self.steps:
                    return
