"""Prometheus metrics of the worker, served at ``/metrics`` on its web port.

Label values are bounded sets (topic names, rejection codes, table names, alert kinds,
severities and states): nothing that grows with annotators or items becomes a label.
"""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from labelwatch.schemas.alerts import ALERT_KINDS, SEVERITIES, AlertState

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """The worker's metrics, on a registry of their own (one per app, so tests are isolated)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events_consumed = Counter(
            "labelwatch_events_consumed",
            "Events read from input topics (a message, or each event of a batched envelope).",
            ["topic"],
            registry=self.registry,
        )
        self.events_valid = Counter(
            "labelwatch_events_valid",
            "Events that validated.",
            ["topic"],
            registry=self.registry,
        )
        self.events_redelivered = Counter(
            "labelwatch_events_redelivered",
            "Valid events read again after a restart or an offset reset whose rows were "
            "already stored; neither learned nor written again.",
            ["topic"],
            registry=self.registry,
        )
        self.events_duplicate = Counter(
            "labelwatch_events_duplicate",
            "Valid events whose event_id the partition learned recently (sent again at a new "
            "offset, see LABELWATCH_DEDUP_WINDOW); neither learned nor written again.",
            ["topic"],
            registry=self.registry,
        )
        self.events_dead_lettered = Counter(
            "labelwatch_events_dead_lettered",
            "Messages sent to the dead-letter topic, by rejection code.",
            ["topic", "code"],
            registry=self.registry,
        )
        self.sink_rows_written = Counter(
            "labelwatch_sink_rows_written",
            "Rows written to ClickHouse.",
            ["table"],
            registry=self.registry,
        )
        self.sink_batch_seconds = Histogram(
            "labelwatch_sink_batch_seconds",
            "Time to write one batch to ClickHouse.",
            ["table"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.tracked_items = Gauge(
            "labelwatch_tracked_items",
            "Open items held by this worker's consensus models.",
            registry=self.registry,
        )
        self.tracked_annotators = Gauge(
            "labelwatch_tracked_annotators",
            "Distinct annotators known to this worker's models.",
            registry=self.registry,
        )
        self.annotator_accuracy = Histogram(
            "labelwatch_annotator_accuracy",
            "Estimated accuracy of annotators, one observation per reliability snapshot.",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99),
            registry=self.registry,
        )
        self.alerts = Counter(
            "labelwatch_alerts",
            "Alerts published to the alerts topic, by kind, severity and state.",
            ["kind", "severity", "state"],
            registry=self.registry,
        )
        # Every series exists from the start at 0, so increase() sees the first alert too.
        for kind in ALERT_KINDS:
            for severity in SEVERITIES:
                for state in get_args(AlertState):
                    self.alerts.labels(kind, severity, state)
        self.notifications = Counter(
            "labelwatch_notifications",
            "Alerts pushed to Alertmanager or the webhook, by outcome (sent, failed: a post "
            "that will be retried, dropped: queue full while the receiver was down).",
            ["receiver", "outcome"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "labelwatch_consumer_lag",
            "Messages in the partition after the last one this worker processed.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.privacy_signals = Counter(
            "labelwatch_privacy_signals_total",
            "Valid privacy signals applied, by kind and severity.",
            ["kind", "severity"],
            registry=self.registry,
        )
        self.privacy_late = Counter(
            "labelwatch_privacy_signals_late_total",
            "Privacy signals that arrived after their rate window closed (stored, not counted).",
            ["kind"],
            registry=self.registry,
        )
        self.errors = Counter(
            "labelwatch_errors",
            "Errors by component; each was retried or dead-lettered, never dropped.",
            ["component"],
            registry=self.registry,
        )
        self.review_picks = Counter(
            "labelwatch_review_picks",
            "Items picked for expert review, by kind (priority, random).",
            ["kind"],
            registry=self.registry,
        )
        self.confusion_findings = Counter(
            "labelwatch_confusion_findings",
            "Changes found in the confusion structure (a class read as another more often).",
            registry=self.registry,
        )
        self.output_failing = Gauge(
            "labelwatch_output_failing",
            "1 while an output's writes fail and are being retried (consumption waits), else 0.",
            ["component"],
            registry=self.registry,
        )
        # component -> (since, last error) while its writes fail: what /ready reports.
        self.failing: dict[str, tuple[float, str]] = {}

    def output_failed(self, component: str, error: str, now: float) -> None:
        """Record a failed write of ``component`` (being retried)."""
        since = self.failing.get(component, (now, ""))[0]
        self.failing[component] = (since, error)
        self.output_failing.labels(component).set(1)

    def output_recovered(self, component: str) -> None:
        """Record a successful write of ``component``."""
        if self.failing.pop(component, None) is not None:
            self.output_failing.labels(component).set(0)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
