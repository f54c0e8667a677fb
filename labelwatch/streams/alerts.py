"""The alerts topic format: one :class:`~labelwatch.schemas.alerts.Alert` per record.

Key: the annotator id (UTF-8), so every alert about an annotator is in one partition, in the
order it was raised. Value: the alert as JSON (``Alert.model_dump_json()``); read it back with
``Alert.model_validate_json``. An alert may be delivered more than once (a retried or replayed
batch): consumers keep one record per ``(alert_id, state)``.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

from labelwatch.schemas.alerts import Alert
from labelwatch.settings import Settings


def alert_record(alert: Alert) -> tuple[bytes, bytes]:
    """The ``(key, value)`` of an alert's record on the alerts topic."""
    return alert.annotator_id.encode(), alert.model_dump_json().encode()


def read_alerts(
    settings: Settings, start: dict[int, int], *, timeout_s: float = 20.0
) -> list[tuple[bytes | None, Alert]]:
    """``(key, alert)`` records from ``start`` (partition -> offset) to the current end, in
    partition and offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers(),
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
    )
    try:
        parts = [TopicPartition(settings.topic_alerts, p) for p in start]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp.partition])
        ends = consumer.end_offsets(parts)
        found: list[tuple[int, int, bytes | None, Alert]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                found.extend(
                    (r.partition, r.offset, r.key, Alert.model_validate_json(r.value))
                    for r in records
                )
        return [(key, alert) for _, _, key, alert in sorted(found, key=lambda f: f[:2])]
    finally:
        consumer.close()
