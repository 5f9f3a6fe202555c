"""synkit: an open study kit for the scaling laws of synthetic images."""

from synkit.record import record

__version__ = "0.1.0"
__all__ = ["record", "__version__"]
