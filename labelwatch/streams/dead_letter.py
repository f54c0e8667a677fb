"""Dead-letter format: the original message bytes plus headers saying where it came from and why.

Value and key are the original bytes, untouched, so a fixed producer can re-send them. Headers:

=========================  ==============================================================
``lw.error.code``          stable rejection code (``invalid_json``, ``invalid_fields``, ...)
``lw.error.reason``        human-readable reason naming the byte, JSON position or fields
``lw.error.fields``        comma-separated offending field paths (may be empty)
``lw.source.topic``        topic the message was read from
``lw.source.partition``    its partition
``lw.source.offset``       its offset
``lw.source.index``        only for one event of a batched envelope: its index in
                           ``events`` (the value is then that event alone, as compact JSON)
=========================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from labelwatch.schemas import InvalidEvent
from labelwatch.settings import Settings
from labelwatch.streams.topics import read_range

HEADER_CODE = "lw.error.code"
HEADER_REASON = "lw.error.reason"
HEADER_FIELDS = "lw.error.fields"
HEADER_TOPIC = "lw.source.topic"
HEADER_PARTITION = "lw.source.partition"
HEADER_OFFSET = "lw.source.offset"
HEADER_INDEX = "lw.source.index"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message as read from Kafka, before any decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-letter record read back from the topic."""

    code: str
    reason: str
    fields: tuple[str, ...]
    source_topic: str
    source_partition: int
    source_offset: int
    value: bytes | None
    source_index: int | None = None


def dead_letter_headers(message: RawMessage, rejection: InvalidEvent) -> list[tuple[str, bytes]]:
    """Kafka headers for a rejected message (or one rejected event of an envelope)."""
    headers = [
        (HEADER_CODE, rejection.code.encode()),
        (HEADER_REASON, rejection.reason.encode()),
        (HEADER_FIELDS, ",".join(rejection.fields).encode()),
        (HEADER_TOPIC, message.topic.encode()),
        (HEADER_PARTITION, str(message.partition).encode()),
        (HEADER_OFFSET, str(message.offset).encode()),
    ]
    if rejection.index is not None:
        headers.append((HEADER_INDEX, str(rejection.index).encode()))
    return headers


def parse_dead_letter(
    headers: Iterable[tuple[str, bytes | None]], value: bytes | None
) -> DeadLetter:
    """Read a dead-letter record back (``KeyError`` if a header is missing)."""
    h = {k: (v or b"").decode() for k, v in headers}
    return DeadLetter(
        code=h[HEADER_CODE],
        reason=h[HEADER_REASON],
        fields=tuple(f for f in h[HEADER_FIELDS].split(",") if f),
        source_topic=h[HEADER_TOPIC],
        source_partition=int(h[HEADER_PARTITION]),
        source_offset=int(h[HEADER_OFFSET]),
        value=value,
        source_index=int(h[HEADER_INDEX]) if HEADER_INDEX in h else None,
    )


def read_dead_letters(
    settings: Settings, start: dict[int, int], *, timeout_s: float = 20.0
) -> list[DeadLetter]:
    """Dead letters from ``start`` (partition -> offset) to the current end, in source order."""
    records = read_range(
        settings,
        settings.topic_dead_letter,
        start,
        timeout_s=timeout_s,
        fetch_max_bytes=64 * 1024 * 1024,  # dead letters keep oversized originals
    )
    found = [parse_dead_letter(r.headers, r.value) for r in records]
    return sorted(
        found,
        key=lambda d: (d.source_topic, d.source_partition, d.source_offset, d.source_index or 0),
    )
