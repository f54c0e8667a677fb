"""The label pipeline's core, free of Faust: decode a batch, dead-letter rejects, store the rest.

The Faust agent (``labelwatch.streams.app``) hands each batch of raw messages to
:meth:`LabelPipeline.process` and acks the batch's offsets only after it returns. ``process``
returns only once every message of the batch is accounted for: stored in ClickHouse or
delivered to the dead-letter topic. Failures of either output are retried with capped
exponential back-off, which also pauses consumption (the agent is not handed the next batch),
so a slow or down ClickHouse never makes the worker drop events or grow without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from labelwatch.schemas import InvalidEvent, LabelEvent, decode_label_event
from labelwatch.sinks.clickhouse import SourcePosition
from labelwatch.sinks.metrics import Metrics
from labelwatch.streams.dead_letter import RawMessage

log = logging.getLogger(__name__)

T = TypeVar("T")


class DeadLetterOutput(Protocol):
    """Where rejected messages go. ``send`` returns once all are durably delivered."""

    async def send(self, rejects: Sequence[tuple[RawMessage, InvalidEvent]]) -> None: ...


class LabelEventOutput(Protocol):
    """Where valid label events go. ``write`` returns once the batch is durably stored."""

    async def write(self, events: Sequence[tuple[LabelEvent, SourcePosition]]) -> int: ...


class LabelPipeline:
    """Validate, route and store label events, one batch at a time."""

    def __init__(
        self,
        *,
        events: LabelEventOutput,
        dead_letters: DeadLetterOutput,
        metrics: Metrics,
        max_message_bytes: int,
        retry_max_seconds: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._events = events
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._max_message_bytes = max_message_bytes
        self._retry_max_seconds = retry_max_seconds
        self._sleep = sleep

    async def process(self, batch: Sequence[RawMessage]) -> None:
        """Account for every message of ``batch``; returns when all are stored or dead-lettered."""
        valid: list[tuple[LabelEvent, SourcePosition]] = []
        rejects: list[tuple[RawMessage, InvalidEvent]] = []
        for message in batch:
            try:
                event = decode_label_event(message.value, max_bytes=self._max_message_bytes)
            except InvalidEvent as rejection:
                rejects.append((message, rejection))
            else:
                valid.append(
                    (event, SourcePosition(message.topic, message.partition, message.offset))
                )
        self._count_decoded(batch, valid, rejects)
        if rejects:
            await self._retrying("dead_letter", lambda: self._dead_letters.send(rejects))
            for message, reject in rejects:
                self._metrics.events_dead_lettered.labels(message.topic, reject.code).inc()
        if valid:
            started = time.perf_counter()
            written = await self._retrying("clickhouse", lambda: self._events.write(valid))
            self._metrics.sink_batch_seconds.labels("label_events").observe(
                time.perf_counter() - started
            )
            self._metrics.sink_rows_written.labels("label_events").inc(written)

    def _count_decoded(
        self,
        batch: Sequence[RawMessage],
        valid: Sequence[tuple[LabelEvent, SourcePosition]],
        rejects: Sequence[tuple[RawMessage, InvalidEvent]],
    ) -> None:
        per_topic: dict[str, int] = {}
        for message in batch:
            per_topic[message.topic] = per_topic.get(message.topic, 0) + 1
        for topic, n in per_topic.items():
            self._metrics.events_consumed.labels(topic).inc(n)
        per_topic.clear()
        for _, source in valid:
            per_topic[source.topic] = per_topic.get(source.topic, 0) + 1
        for topic, n in per_topic.items():
            self._metrics.events_valid.labels(topic).inc(n)

    async def _retrying(self, component: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it succeeds, backing off 0.1 s, 0.2 s, ... up to the cap."""
        delay = 0.1
        while True:
            try:
                return await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.errors.labels(component).inc()
                log.warning(
                    "%s write failed (%s: %s); retrying in %.1f s",
                    component,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await self._sleep(delay)
                delay = min(delay * 2, self._retry_max_seconds)
