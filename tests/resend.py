"""Streams with events sent again, for the duplicate-handling tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def with_resends(items: Sequence[T], every: int, lag: int) -> list[T]:
    """``items`` with every ``every``-th one (from the first) repeated ``lag`` positions
    later, as a producer retrying after a timeout would; repeats due past the end are
    dropped.

    >>> with_resends("abcdef", every=2, lag=2)
    ['a', 'b', 'c', 'a', 'd', 'e', 'c', 'f']
    """
    out: list[T] = []
    pending: dict[int, list[T]] = {}
    for i, item in enumerate(items):
        out.append(item)
        out += pending.pop(i, [])
        if i % every == 0:
            pending.setdefault(i + lag, []).append(item)
    return out
