"""Progress of the long commands (``replay``, ``simulate``): bars on stderr, never stdout.

The replay and simulator code takes a :class:`Stages` factory or an :data:`Advance`
callback and knows nothing of tqdm; only :func:`stderr_bars` makes real bars. The models and
schemas never report progress: they are fed by loops that do.

A command's work is a few *stages* (reading a file, learning its labels, ...), each with a
bar of its own: ``with stages("models", total, " labels") as advance: ... advance(n)``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")

Advance = Callable[[int], object]
"""Called with how many more events a stage has processed (tqdm's ``update``)."""


class Stages(Protocol):
    """Opens a stage's progress: ``stages(name, total, unit)`` as a context manager that
    yields its :data:`Advance`. ``total`` is None when not known in advance (no ETA)."""

    def __call__(
        self, name: str, total: int | None, unit: str
    ) -> AbstractContextManager[Advance]: ...


def _ignore(n: int) -> None:
    pass


@contextmanager
def no_progress(name: str, total: int | None, unit: str) -> Iterator[Advance]:
    """Stages that report nothing (the default everywhere but the command line)."""
    yield _ignore


def stderr_bars(*, enabled: bool = True) -> Stages:
    """One tqdm bar per stage on stderr: count, rate, and ETA when the total is known.

    Off when ``enabled`` is False (``--no-progress``) and, as tqdm's ``disable=None`` does,
    when stderr is not a terminal, so pipes, files and CI logs get no bar. Log records
    written to the console while a bar is shown go through tqdm, above the bar.
    """

    @contextmanager
    def stage(name: str, total: int | None, unit: str) -> Iterator[Advance]:
        # tqdm ships no type hints (types-tqdm is not a dependency).
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        stream = sys.stderr  # looked up now: tests and callers may have replaced it
        sized = _terminal_sized(stream)
        bar = tqdm(
            total=total,
            desc=name,
            unit=unit,
            unit_scale=True,
            file=stream,
            disable=None if enabled else True,
            mininterval=0.5,
            dynamic_ncols=sized,  # follows the terminal's width as it is resized
            # tqdm draws nothing on a terminal that reports a size of 0 x 0
            ncols=None if sized else 80,
            nrows=None if sized else 24,
        )
        with bar:
            if bar.disable:
                yield bar.update
            else:
                with logging_redirect_tqdm(tqdm_class=tqdm):
                    yield bar.update

    return stage


def _terminal_sized(stream: object) -> bool:
    """True when ``stream`` is a terminal that knows its size (some pseudo-terminals, such
    as a container's or a test's, report 0 x 0)."""
    try:
        size = os.get_terminal_size(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return size.columns > 0 and size.lines > 0


def counted(items: Iterable[T], advance: Advance, step: int = 1) -> Iterator[T]:
    """``items``, calling ``advance`` as they are taken: with ``step=1`` the count is exact
    at every moment, even when the consumer takes only some items of an endless iterator;
    a larger ``step`` reports in steps (cheaper per item) and the remainder at the end."""
    pending = 0
    try:
        for item in items:
            pending += 1
            if pending >= step:
                advance(pending)
                pending = 0
            yield item
    finally:
        if pending:
            advance(pending)
