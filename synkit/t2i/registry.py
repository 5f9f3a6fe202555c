"""synkit's own text-to-image families, each registered by its module: its config class, how a config is keyed and
trained, and its sampler's default steps. ``synkit.t2i.families`` imports every family and dispatches through here.

A new family is one module that defines a config dataclass and a ``train(config, run_dir, progress=...)`` and calls
``register(Family(...))`` at import, plus its import in ``synkit.t2i.families``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Family:
    name: str  # as 02_generate's ``generator`` names it
    config: type  # the config dataclass (the cache key's fields)
    key: Callable  # config -> a short hash of everything the model depends on
    ensure: Callable  # (config, models_dir, progress) -> the trained pipeline folder (trained or resumed when missing)
    default_steps: int  # sampler steps when a study does not set them
    rank: int  # order in menus and messages


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def names() -> list[str]:
    return [f.name for f in sorted(FAMILIES.values(), key=lambda f: f.rank)]


def family_of(config) -> str:
    found = [f.name for f in FAMILIES.values() if type(config) is f.config]
    if not found:
        raise ValueError(f"{type(config).__name__} is not the config of a registered family ({', '.join(names())}).")
    return found[0]


def cache_key(config) -> str:
    return FAMILIES[family_of(config)].key(config)


def default_steps(family: str) -> int:
    return FAMILIES[family].default_steps


def ensure_trained(config, models_dir: str | Path, progress: bool, train: Callable) -> Path:
    """The cached pipeline folder ``models_dir/t2i-<family>-<key>/pipeline``, trained first (or resumed) when missing."""
    family = family_of(config)
    run = Path(models_dir) / f"t2i-{family.removeprefix('embedded-')}-{cache_key(config)}"
    if (run / "pipeline" / "model_index.json").exists():
        return run / "pipeline"
    return train(config, run, progress=progress)
