"""Where a message was read from: the Kafka coordinates that travel with every event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """A message's topic, partition and offset, and the event's index in its message (0
    unless the message is a batched envelope of several events)."""

    topic: str
    partition: int
    offset: int
    index: int = 0

    @property
    def sequence(self) -> int:
        """One number ordering events within a partition: offset, then index (an envelope
        holds at most 100,000 < 2**20 events)."""
        return (self.offset << 20) | self.index
