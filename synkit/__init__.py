"""synkit: an open study kit for the scaling laws of synthetic images."""

from synkit.core.record import record

__version__ = "0.1.0"
__all__ = ["enter", "record", "__version__"]


def enter(namespace: dict, notebook: str):
    """Every notebook's first step (``synkit.study.run.enter``): the project root, the default study."""
    from synkit.study.run import enter as _enter

    return _enter(namespace, notebook)
