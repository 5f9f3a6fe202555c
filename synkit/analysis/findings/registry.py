"""The findings' registry: each row family is one function registered with its place in the table.

A row family reads a ``Study`` and calls ``add`` once per row; adding a finding is one new
function (in a module of its family of claims) decorated with ``@finding(order)``."""

from __future__ import annotations

from collections.abc import Callable

ROW_FAMILIES: list[tuple[float, str, Callable]] = []


def finding(order: float):
    """Register ``fn(study, add)`` to write its rows at ``order`` in the table."""
    def wrap(fn: Callable) -> Callable:
        ROW_FAMILIES.append((order, fn.__module__ + "." + fn.__name__, fn))
        ROW_FAMILIES.sort(key=lambda r: r[0])
        return fn
    return wrap
