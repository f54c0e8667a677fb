"""Recognising an event sent twice: the event ids a shard learned most recently.

Kafka gives labelwatch at-least-once delivery of *offsets*; redelivered offsets are skipped
by offset (see :mod:`labelwatch.models.tracker`). A producer that sends the same event again
(an application-level retry after a timeout, a re-run export) puts it at a *new* offset, and
only its ``event_id`` tells. Each shard remembers the ids of the last ``window`` events it
learned; an event whose id is among them is a duplicate: it is neither learned nor stored
again, so models and aggregates count it once. Duplicates arriving later than ``window``
events after their original are learned again (ClickHouse still collapses their row).

The window is not checkpointed: on restore it is rebuilt from the shard's stored rows (every
learned event is stored, and only learned events are), so a restarted worker recognises the
same duplicates an uninterrupted one would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["RecentIds"]


class RecentIds:
    """The ids of the last ``window`` events added, oldest first out.

    Examples
    --------
    >>> recent = RecentIds(window=2)
    >>> recent.add("a"); recent.add("b")
    >>> "a" in recent, "b" in recent
    (True, True)
    >>> recent.add("c")  # "a" leaves the window
    >>> "a" in recent, len(recent)
    (False, 2)
    """

    def __init__(self, window: int, ids: Iterable[str] = ()) -> None:
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.window = window
        self._order: deque[str] = deque()
        # id -> how many times it is in ``_order`` (an id can come back after leaving).
        self._count: dict[str, int] = {}
        for event_id in ids:
            self.add(event_id)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._count

    def __len__(self) -> int:
        return len(self._order)

    def add(self, event_id: str) -> None:
        """Remember ``event_id`` as the newest learned event (forgetting the oldest)."""
        if self.window == 0:
            return
        self._order.append(event_id)
        self._count[event_id] = self._count.get(event_id, 0) + 1
        while len(self._order) > self.window:
            old = self._order.popleft()
            left = self._count[old] - 1
            if left:
                self._count[old] = left
            else:
                del self._count[old]
