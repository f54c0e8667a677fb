"""Where a message was read from: the Kafka coordinates that travel with every event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """A message's topic, partition and offset."""

    topic: str
    partition: int
    offset: int
