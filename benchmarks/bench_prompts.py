"""Prompt-stage speed: the fashion attribute captioner over the whole web split, and the
imagenet prompt sets from metadata. Prints each against a baseline measured in the same
process (reading the web split), since these machines are noisy.

    python benchmarks/bench_prompts.py
"""

import time

from synkit.data import prompts
from synkit.data.captions import FashionCaptioner
from synkit.data.worlds import load_world


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    fashion = load_world("fashion")
    web, t_read = timed(lambda: fashion.split("web"))
    _, t_read = timed(lambda: fashion.split("web"))  # warm: the gz read is cached, this is the index + copy
    caps, t_cap = timed(lambda: FashionCaptioner().caption_arrays(web.images))
    print(f"baseline: web split ({len(web)} images) in {t_read:.3f} s")
    print(f"attribute captioner: {len(caps) / t_cap:,.0f} images/s ({t_cap:.2f} s; {t_cap / t_read:.1f}x the baseline)")
    imagenet = load_world("imagenet")
    _ = imagenet.classes
    sets = ["classnames", "classname_description", "classname_hypernyms", "clip_templates_7", "clip_templates_80"]
    table, t_in = timed(lambda: prompts.build_prompts(imagenet, sets))
    print(f"imagenet metadata sets: {len(table):,} prompts in {t_in:.2f} s ({t_in / t_read:.1f}x the baseline)")


if __name__ == "__main__":
    main()
