"""The privacy-signal pipeline's core, free of Faust: decode, dead-letter, detect, store.

Like :class:`~labelwatch.streams.pipeline.LabelPipeline`: ``process`` returns only once every
message of the batch is stored in ``privacy_signals`` or delivered to the dead-letter topic,
and every alert it raised is published and stored; failures are retried with back-off, which
pauses consumption. Annotator ids are pseudonymized right after validation when a key is set;
attribute values are stored only for allowlisted keys.

Revoked items. A ``consent_revoked`` or ``deletion_requested`` signal adds its item to the
worker's :class:`~labelwatch.streams.pipeline.Revocations` and is stored in
``revoked_items``. Labels given to the item from the revocation's event time on raise
``revoked_item_labeled``, whichever arrives first:

* a label processed after the revocation is checked by the label pipeline;
* a label stored before the revocation arrived is found here, by reading the item's stored
  labels back.

Both sides run under the same lock: the label pipeline holds it from its check until its
labels are stored, this pipeline from adding the revocation until it has read the stored
labels. So within one worker no label falls between the two. (Across workers sharing a
ClickHouse server, a worker learns others' revocations every ``refresh_seconds``; a label
stored by one worker in the seconds after another worker read the item's labels back can be
missed: see README "Privacy".)
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from labelwatch.models.privacy_tracker import PrivacyOutput, PrivacyTracker
from labelwatch.models.revocations import Revocation, revoked_label_alert
from labelwatch.schemas import (
    LabelEvent,
    PrivacySignal,
    SourcePosition,
    decode_privacy_message,
)
from labelwatch.schemas.alerts import Alert
from labelwatch.sinks.clickhouse import (
    alert_row,
    checkpoint_row,
    privacy_signal_row,
    revoked_item_row,
)
from labelwatch.sinks.metrics import Metrics
from labelwatch.streams.dead_letter import RawMessage
from labelwatch.streams.pipeline import (
    AlertOutput,
    DeadLetterOutput,
    Revocations,
    ShardStore,
    decode_batch,
    read_stored_shard,
    retrying,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class PrivacyTableOutput(ShardStore, Protocol):
    """Where privacy rows go, and what recovery and revocations read back (ClickHouse)."""

    async def write_tables(self, tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]: ...

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def stored_signals_after(
        self, topic: str, topic_id: str, partition: int, offset: int
    ) -> list[tuple[PrivacySignal, SourcePosition]]: ...

    def labels_after_revocation(
        self, revocation: Revocation
    ) -> list[tuple[LabelEvent, SourcePosition]]: ...


class PrivacyPipeline:
    """Validate, detect on and store privacy signals, one batch at a time."""

    def __init__(
        self,
        *,
        tables: PrivacyTableOutput,
        dead_letters: DeadLetterOutput,
        metrics: Metrics,
        tracker: PrivacyTracker,
        revocations: Revocations,
        max_message_bytes: int,
        alerts: AlertOutput | None = None,
        attribute_allowlist: frozenset[str] = frozenset(),
        pseudonymize: Callable[[str], str] | None = None,
        topic_ids: Mapping[str, str] | None = None,
        retry_max_seconds: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._tables = tables
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._tracker = tracker
        self._revocations = revocations
        self._max_message_bytes = max_message_bytes
        self._alerts = alerts
        self._allowlist = attribute_allowlist
        self._pseudonymize = pseudonymize
        self._topic_ids = dict(topic_ids or {})
        self._retry_max_seconds = retry_max_seconds
        self._sleep = sleep
        self._revoked: set[tuple[str, int]] = set()

    def partitions_revoked(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget the monitors of ``partitions`` before the next batch (see
        :meth:`LabelPipeline.partitions_revoked`)."""
        self._revoked.update(partitions)

    async def process(self, batch: Sequence[RawMessage]) -> None:
        """Account for every message of ``batch``; returns when all are stored or dead-lettered."""
        for topic, partition in self._revoked:
            self._tracker.drop(topic, partition)
        self._revoked.clear()
        valid = await decode_batch(
            batch,
            functools.partial(decode_privacy_message, max_bytes=self._max_message_bytes),
            self._pseudonymize,
            self._dead_letters,
            self._metrics,
            self._retrying,
        )
        if not valid:
            return
        restored = await self._restore_shards(valid)
        applied = self._tracker.apply(valid)
        now = datetime.now(UTC)
        rows: dict[str, list[tuple[Any, ...]]] = {
            "privacy_signals": [],
            "revoked_items": [],
            "alerts": [alert_row(a, now) for a in restored.alerts],
            "model_checkpoints": [],
        }
        new_revocations: list[Revocation] = []
        for (signal, source), late, duplicate in zip(
            valid, applied.late, applied.duplicates, strict=True
        ):
            if duplicate:
                self._metrics.events_duplicate.labels(source.topic).inc()
            if late is None:  # redelivered or sent again: applied and stored before
                continue
            self._metrics.privacy_signals.labels(signal.kind, signal.severity).inc()
            if late:
                self._metrics.privacy_late.labels(signal.kind).inc()
            rows["privacy_signals"].append(
                privacy_signal_row(
                    signal,
                    source,
                    now,
                    allowlist=self._allowlist,
                    late=late,
                    topic_id=self._topic_ids.get(source.topic, ""),
                )
            )
            revocation = Revocation.from_signal(signal)
            if revocation is not None:
                new_revocations.append(revocation)
                rows["revoked_items"].append(revoked_item_row(revocation, now))
        async with self._revocations.lock:
            await self._revocations.refresh_if_due()
            registry = self._revocations.registry
            added = [r for r in new_revocations if registry.add(r)]
            revoked_alerts = await self._labels_already_given(added)
            fresh = applied.alerts + revoked_alerts
            if fresh and self._alerts is not None:
                output = self._alerts
                await self._retrying("alerts", lambda: output.publish(fresh))
            for alert in fresh:
                self._metrics.alerts.labels(alert.kind, alert.severity, alert.state).inc()
            rows["alerts"] += [alert_row(a, now) for a in fresh]
            rows["model_checkpoints"] = [
                checkpoint_row(c, now, self._topic_ids.get(c.topic, ""))
                for c in applied.checkpoints
            ]
            written = await self._retrying("clickhouse", lambda: self._tables.write_tables(rows))
        for table, n in written.items():
            self._metrics.sink_rows_written.labels(table).inc(n)

    async def _labels_already_given(self, revocations: Sequence[Revocation]) -> list[Alert]:
        """Alerts for stored labels given to newly revoked items at or after revocation."""
        alerts = []
        for revocation in revocations:
            labels = await self._read_back(
                functools.partial(self._tables.labels_after_revocation, revocation)
            )
            alerts += [revoked_label_alert(e, s, revocation) for e, s in labels]
        return alerts

    async def _restore_shards(
        self, valid: Sequence[tuple[PrivacySignal, SourcePosition]]
    ) -> PrivacyOutput:
        out = PrivacyOutput()
        for topic, partition in sorted({(s.topic, s.partition) for _, s in valid}):
            if self._tracker.has_shard(topic, partition):
                continue
            stored = await read_stored_shard(
                self._read_back,
                self._tables,
                "privacy_signals",
                self._tables.stored_signals_after,
                (topic, self._topic_ids.get(topic, ""), partition),
                self._tracker.dedup_window,
            )
            restored = self._tracker.restore(
                topic, partition, stored.checkpoint, stored.later, stored.recent_ids
            )
            out.alerts += restored.alerts
        return out

    async def _read_back(self, read: Callable[[], T]) -> T:
        return await self._retrying("clickhouse", functools.partial(self._tables.run, read))

    async def _retrying(self, component: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await retrying(
            component, attempt, self._metrics, self._sleep, self._retry_max_seconds
        )
