"""The alerts topic format: one :class:`~labelwatch.schemas.alerts.Alert` per record.

Key: the alert's subject (UTF-8; the annotator for quality alerts), so every alert about a
subject is in one partition, in the order it was raised. Value: the alert as JSON
(``Alert.model_dump_json()``); read it back with ``Alert.model_validate_json``. An alert may
be delivered more than once (a retried or replayed batch): consumers keep one record per
``(alert_id, state)``.
"""

from __future__ import annotations

from labelwatch.schemas.alerts import Alert
from labelwatch.settings import Settings
from labelwatch.streams.topics import read_range


def alert_record(alert: Alert) -> tuple[bytes, bytes]:
    """The ``(key, value)`` of an alert's record on the alerts topic."""
    return alert.subject.encode(), alert.model_dump_json().encode()


def read_alerts(
    settings: Settings, start: dict[int, int], *, timeout_s: float = 20.0
) -> list[tuple[bytes | None, Alert]]:
    """``(key, alert)`` records from ``start`` (partition -> offset) to the current end, in
    partition and offset order."""
    records = read_range(settings, settings.topic_alerts, start, timeout_s=timeout_s)
    return [(r.key, Alert.model_validate_json(r.value)) for r in records]
