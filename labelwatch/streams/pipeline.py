"""The label pipeline's core, free of Faust: decode, dead-letter rejects, learn, store the rest.

The Faust agent (``labelwatch.streams.app``) hands each batch of raw messages to
:meth:`LabelPipeline.process` and acks the batch's offsets only after it returns. ``process``
returns only once every message of the batch is accounted for: stored in ClickHouse or
delivered to the dead-letter topic, and every alert the batch raised delivered to the alerts
topic (when an alerts output is given) and stored in ClickHouse. Failures of any output are
retried with capped exponential back-off, which also pauses consumption (the agent is not
handed the next batch), so a slow or down ClickHouse never makes the worker drop events or
grow without bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from labelwatch.models.revocations import Revocation, RevocationRegistry
from labelwatch.models.tracker import Checkpoint, QualityOutput, QualityTracker, ReviewItem
from labelwatch.schemas import (
    InvalidEvent,
    LabelEvent,
    PrivacySignal,
    SourcePosition,
    decode_label_message,
)
from labelwatch.schemas.alerts import Alert
from labelwatch.sinks.clickhouse import sink_rows
from labelwatch.sinks.metrics import Metrics
from labelwatch.streams.dead_letter import RawMessage

log = logging.getLogger(__name__)

T = TypeVar("T")


class DeadLetterOutput(Protocol):
    """Where rejected messages go. ``send`` returns once all are durably delivered."""

    async def send(self, rejects: Sequence[tuple[RawMessage, InvalidEvent]]) -> None: ...


class AlertOutput(Protocol):
    """Where alerts go (the alerts topic). ``publish`` returns once all are durably delivered;
    publishing an alert twice is harmless (consumers deduplicate by ``alert_id`` and state)."""

    async def publish(self, alerts: Sequence[Alert]) -> None: ...


class ReviewOutput(Protocol):
    """Where review picks go (the review topic). ``publish`` returns once all are durably
    delivered; publishing a pick twice is harmless (consumers deduplicate by ``review_id``)."""

    async def publish(self, items: Sequence[ReviewItem]) -> None: ...


class ShardStore(Protocol):
    """What every shard restore reads back (see :func:`read_stored_shard`)."""

    def load_checkpoint(self, topic: str, topic_id: str, partition: int) -> Checkpoint | None: ...

    def recent_event_ids(
        self, table: str, topic: str, topic_id: str, partition: int, offset: int, limit: int
    ) -> list[str]: ...


class TableOutput(ShardStore, Protocol):
    """Where rows go (ClickHouse). ``write_tables`` returns once all are durably stored; the
    other calls read back what shard recovery needs."""

    async def write_tables(self, tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]: ...

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def stored_labels_after(
        self, topic: str, topic_id: str, partition: int, offset: int
    ) -> list[tuple[LabelEvent, SourcePosition]]: ...

    def count_missing_minutes(
        self, topic: str, topic_id: str, partition: int, replayed: Sequence[tuple[datetime, int]]
    ) -> int: ...


class Revocations:
    """The revoked items a worker's label and privacy pipelines share, behind one lock.

    ``reload`` reads every stored revocation (other workers' too); with ``refresh_seconds``
    the label pipeline calls it at most that often (a ClickHouse server shared by several
    workers). With one worker (chDB) the privacy pipeline's own additions are all there is.
    """

    def __init__(
        self,
        registry: RevocationRegistry,
        reload: Callable[[], Awaitable[list[Revocation]]] | None = None,
        refresh_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.lock = asyncio.Lock()
        self._reload = reload
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._loaded_at: float | None = None

    async def refresh_if_due(self) -> None:
        if self._reload is None:
            return
        now = self._clock()
        due = self._loaded_at is None or (
            self._refresh_seconds is not None and now - self._loaded_at >= self._refresh_seconds
        )
        if due:
            self.registry.update(await self._reload())
            self._loaded_at = now


class LabelPipeline:
    """Validate, route and store label events, one batch at a time.

    Without ``alerts`` the tracker's alerts are stored in ClickHouse but published nowhere.
    """

    def __init__(
        self,
        *,
        tables: TableOutput,
        dead_letters: DeadLetterOutput,
        metrics: Metrics,
        alerts: AlertOutput | None = None,
        reviews: ReviewOutput | None = None,
        max_message_bytes: int,
        tracker: QualityTracker | None = None,
        topic_ids: Mapping[str, str] | None = None,
        retry_max_seconds: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        pseudonymize: Callable[[str], str] | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self._tables = tables
        self._pseudonymize = pseudonymize
        self._revocations = revocations
        self._tracker = tracker
        # Kafka topic ids: a re-created topic restarts at offset 0 and must not inherit the
        # stored state of its predecessor.
        self._topic_ids = dict(topic_ids or {})
        self._dead_letters = dead_letters
        self._alerts = alerts
        self._reviews = reviews
        self._metrics = metrics
        self._max_message_bytes = max_message_bytes
        self._retry_max_seconds = retry_max_seconds
        self._sleep = sleep
        self._revoked: set[tuple[str, int]] = set()

    def partitions_revoked(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget the models of ``partitions`` before the next batch: another worker may
        advance them, so if they come back they are restored from ClickHouse afresh."""
        self._revoked.update(partitions)

    async def process(self, batch: Sequence[RawMessage]) -> None:
        """Account for every message of ``batch``; returns when all are stored or dead-lettered."""
        if self._tracker is not None:
            for topic, partition in self._revoked:
                self._tracker.drop(topic, partition)
        self._revoked.clear()
        valid = await decode_batch(
            batch,
            functools.partial(decode_label_message, max_bytes=self._max_message_bytes),
            self._pseudonymize,
            self._dead_letters,
            self._metrics,
            self._retrying,
        )
        if not valid:
            return
        quality = QualityOutput()
        to_store = valid
        fresh_alerts: list[Alert] = []
        fresh_reviews: list[ReviewItem] = []
        if self._tracker is not None:
            tracker = self._tracker
            quality = await self._restore_shards(tracker, valid)
            applied = tracker.apply(valid)
            quality.extend(applied)
            fresh_alerts = applied.alerts
            fresh_reviews = applied.reviews
            self._observe_quality(tracker, quality)
            # A redelivered label whose row is stored stays as it was, and a label sent again
            # under a recent event_id has its original stored: neither is learned again (see
            # QualityTracker.apply) nor written again.
            stored = [tracker.already_stored(source) for _, source in valid]
            keep = [not (s or d) for s, d in zip(stored, applied.duplicates, strict=True)]
            to_store = [v for v, k in zip(valid, keep, strict=True) if k]
            quality.outcomes = [o for o, k in zip(applied.outcomes, keep, strict=True) if k]
            for counter, flags in (
                (self._metrics.events_redelivered, stored),
                (self._metrics.events_duplicate, applied.duplicates),
            ):
                flagged = Counter(s.topic for (_, s), f in zip(valid, flags, strict=True) if f)
                for topic, n in flagged.items():
                    counter.labels(topic).inc(n)
        # Published before the ClickHouse write: that write may include a checkpoint past the
        # labels that raised an alert, after which a crash would never re-raise it. The other
        # way round, a crash only re-raises (same alert_id) and publishes it again. Alerts a
        # shard restore re-raises from stored labels were published before those labels were
        # stored, so they are only written to ClickHouse again (in case a crash came between
        # the two inserts), not published twice.
        if self._revocations is None:
            written, started = await self._publish_and_store(
                to_store, quality, fresh_alerts, fresh_reviews
            )
        else:
            # Under the revocations' lock: a revocation processed meanwhile either is seen
            # here, or waits until these labels are stored and then finds them (see
            # labelwatch.streams.privacy_pipeline).
            async with self._revocations.lock:
                await self._revocations.refresh_if_due()
                revoked = self._revocations.registry.check(to_store)
                quality.alerts.extend(revoked)
                written, started = await self._publish_and_store(
                    to_store, quality, fresh_alerts + revoked, fresh_reviews
                )
        if self._tracker is not None:
            # Duplicates included: their event is stored (at its first offset).
            self._tracker.mark_stored(valid)
        self._metrics.sink_batch_seconds.labels("label_events").observe(
            time.perf_counter() - started
        )
        for table, n in written.items():
            self._metrics.sink_rows_written.labels(table).inc(n)

    async def _publish_and_store(
        self,
        to_store: list[tuple[LabelEvent, SourcePosition]],
        quality: QualityOutput,
        fresh_alerts: list[Alert],
        fresh_reviews: list[ReviewItem],
    ) -> tuple[dict[str, int], float]:
        if fresh_alerts and self._alerts is not None:
            await self._publish_alerts(self._alerts, fresh_alerts)
        # Review picks follow the alerts' rule (see above): published before the write.
        if fresh_reviews and self._reviews is not None:
            output = self._reviews
            await self._retrying("review_queue", lambda: output.publish(fresh_reviews))
        for item in fresh_reviews:
            self._metrics.review_picks.labels(item.kind).inc()
        tables = sink_rows(to_store, quality, datetime.now(UTC), self._topic_ids)
        started = time.perf_counter()
        written = await self._retrying("clickhouse", lambda: self._tables.write_tables(tables))
        return written, started

    async def _publish_alerts(self, output: AlertOutput, alerts: Sequence[Alert]) -> None:
        await self._retrying("alerts", lambda: output.publish(alerts))
        for alert in alerts:
            self._metrics.alerts.labels(alert.kind, alert.severity, alert.state).inc()

    async def _restore_shards(
        self, tracker: QualityTracker, valid: Sequence[tuple[LabelEvent, SourcePosition]]
    ) -> QualityOutput:
        """Load every shard this batch needs and this worker does not hold yet."""
        out = QualityOutput()
        for topic, partition in {(s.topic, s.partition) for _, s in valid}:
            if tracker.has_shard(topic, partition):
                continue
            shard = (topic, self._topic_ids.get(topic, ""), partition)
            stored = await read_stored_shard(
                self._read_back,
                self._tables,
                "label_events",
                self._tables.stored_labels_after,
                shard,
                tracker.dedup_window,
            )
            replayed = [(event.ts, source.offset) for event, source in stored.later]
            counted = await self._read_back(
                functools.partial(self._tables.count_missing_minutes, *shard, replayed)
            )
            if counted:
                log.warning(
                    "shard %s:%d: %d stored labels were not counted per minute (a crash "
                    "between the two inserts); counted them now",
                    topic,
                    partition,
                    counted,
                )
            restored = tracker.restore(
                topic, partition, stored.checkpoint, stored.later, stored.recent_ids
            )
            out.extend(restored)
        return out

    async def _read_back(self, read: Callable[[], T]) -> T:
        """Run a blocking ClickHouse read on the writer thread, retried like writes."""
        return await self._retrying("clickhouse", functools.partial(self._tables.run, read))

    def _observe_quality(self, tracker: QualityTracker, quality: QualityOutput) -> None:
        items, annotators = tracker.tracked()
        self._metrics.tracked_items.set(items)
        self._metrics.tracked_annotators.set(annotators)
        for snapshot in quality.annotators:
            self._metrics.annotator_accuracy.observe(snapshot.accuracy)
        if quality.findings:
            self._metrics.confusion_findings.inc(len(quality.findings))

    async def _retrying(self, component: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await retrying(
            component, attempt, self._metrics, self._sleep, self._retry_max_seconds
        )


E = TypeVar("E", LabelEvent, PrivacySignal)


@dataclass
class StoredShard(Generic[E]):
    """What ClickHouse holds of a shard: its newest checkpoint, the events stored after it
    (offset order), and the ids of the ``window`` events stored up to it (dedup window)."""

    checkpoint: Checkpoint | None
    later: list[tuple[E, SourcePosition]]
    recent_ids: list[str]


async def read_stored_shard(
    read_back: Callable[[Callable[[], Any]], Awaitable[Any]],
    tables: ShardStore,
    table: str,
    stored_after: Callable[[str, str, int, int], list[tuple[E, SourcePosition]]],
    shard: tuple[str, str, int],
    window: int,
) -> StoredShard[E]:
    """Read back what a shard's restore needs (``shard``: topic, topic id, partition), each
    read through ``read_back`` (on the writer thread, retried)."""
    topic, _, partition = shard
    checkpoint = await read_back(functools.partial(tables.load_checkpoint, *shard))
    after = -1 if checkpoint is None else checkpoint.last_offset
    later = await read_back(functools.partial(stored_after, *shard, after))
    recent = await read_back(
        functools.partial(tables.recent_event_ids, table, *shard, after, window)
    )
    log.info(
        "shard %s:%d restored: checkpoint at offset %s, %d stored events replayed from %s, "
        "%d recent event ids",
        topic,
        partition,
        after,
        len(later),
        table,
        len(recent) + len(later),
    )
    return StoredShard(checkpoint, later, recent)


async def decode_batch(
    batch: Sequence[RawMessage],
    decode: Callable[[bytes | None], Sequence[E | InvalidEvent]],
    pseudonymize: Callable[[str], str] | None,
    dead_letters: DeadLetterOutput,
    metrics: Metrics,
    retry: Callable[[str, Callable[[], Awaitable[None]]], Awaitable[None]],
) -> list[tuple[E, SourcePosition]]:
    """Validate a batch: returns the valid events with their positions (annotator ids
    pseudonymized when a pseudonymizer is given) once every invalid message, or invalid
    event of a batched envelope, has been delivered to the dead-letter output; counts both.

    ``decode`` turns a message value into its events (one, or an envelope's), raising
    :class:`InvalidEvent` when the message as a whole is unusable."""
    valid: list[tuple[E, SourcePosition]] = []
    rejects: list[tuple[RawMessage, InvalidEvent]] = []
    for message in batch:
        try:
            decoded = decode(message.value)
        except InvalidEvent as rejection:
            rejects.append((message, rejection))
            continue
        for index, event in enumerate(decoded):
            if isinstance(event, InvalidEvent):
                # One event of an envelope: the dead-letter topic gets that event alone.
                rejects.append((dataclasses.replace(message, value=event.element), event))
                continue
            if pseudonymize is not None and event.annotator_id is not None:
                event = event.model_copy(update={"annotator_id": pseudonymize(event.annotator_id)})
            source = SourcePosition(message.topic, message.partition, message.offset, index)
            valid.append((event, source))
    consumed = Counter(source.topic for _, source in valid)
    rejected = Counter(message.topic for message, _ in rejects)
    for topic in consumed.keys() | rejected.keys():
        metrics.events_consumed.labels(topic).inc(consumed[topic] + rejected[topic])
    for topic, n in consumed.items():
        metrics.events_valid.labels(topic).inc(n)
    if rejects:
        await retry("dead_letter", lambda: dead_letters.send(rejects))
        for message, reject in rejects:
            metrics.events_dead_lettered.labels(message.topic, reject.code).inc()
    return valid


class ShuttingDown(Exception):
    """The worker is stopping while an output keeps failing. The batch is given up: it is
    not acked, so its offsets are not committed and the next worker gets it again."""


async def retrying(
    component: str,
    attempt: Callable[[], Awaitable[T]],
    metrics: Metrics,
    sleep: Callable[[float], Awaitable[None]],
    max_seconds: float,
) -> T:
    """Run ``attempt`` until it succeeds, backing off 0.1 s, 0.2 s, ... up to ``max_seconds``.

    ``sleep`` may raise (the worker's raises :class:`ShuttingDown` once it is stopping), which
    ends the retrying."""
    delay = 0.1
    while True:
        try:
            result = await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.errors.labels(component).inc()
            # Only the error's type: /ready shows it unauthenticated; the log has the message.
            metrics.output_failed(component, type(exc).__name__, time.time())
            log.warning(
                "%s write failed (%s: %s); retrying in %.1f s",
                component,
                type(exc).__name__,
                exc,
                delay,
            )
            await sleep(delay)
            delay = min(delay * 2, max_seconds)
        else:
            metrics.output_recovered(component)
            return result
