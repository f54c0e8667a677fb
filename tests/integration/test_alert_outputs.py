"""Alerts leave the worker: stored in ClickHouse once per (alert_id, state), published to the
alerts topic of a real broker before the batch is acknowledged, counted, and retried on failure.

The detectors are not involved: hand-made alerts are raised through the real tracker's output.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from labelwatch.models.tracker import QualityOutput, QualityTracker
from labelwatch.schemas import InvalidEvent, LabelEvent, SourcePosition
from labelwatch.schemas.alerts import Alert, alert_id
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name, sink_rows
from labelwatch.sinks.metrics import Metrics
from labelwatch.sinks.migrations import migrate
from labelwatch.streams.alerts import read_alerts
from labelwatch.streams.app import FaustAlerts, create_app
from labelwatch.streams.dead_letter import RawMessage
from labelwatch.streams.pipeline import LabelPipeline
from labelwatch.streams.topics import end_offsets, ensure_topics

INGESTED = datetime(2026, 1, 2, tzinfo=UTC)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHARD = "labels:0"


def make_alert(
    kind: str,
    state: str,
    annotator: str,
    opened_offset: int,
    offset: int,
    severity: str = "warning",
    **evidence: float | int | str | None,
) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": alert_id(kind, "p", annotator, SHARD, opened_offset),
            "kind": kind,
            "state": state,
            "severity": severity,
            "ts": T0 + timedelta(seconds=offset, milliseconds=250),
            "project": "p",
            "annotator_id": annotator,
            "score": 11.5 if state == "opened" else 0.5,
            "threshold": 10.0,
            "reason": f"{kind} {state}",
            "evidence": evidence,
            "detector": "test",
            "shard": SHARD,
            "offset": offset,
            "opened_offset": opened_offset,
        }
    )


DRIFT_OPENED = make_alert("annotator_drift", "opened", "ann-1", 2, 2, before=0.9, after=0.4)
DRIFT_RESOLVED = make_alert("annotator_drift", "resolved", "ann-1", 2, 4, window=50)
SPAM_OPENED = make_alert(
    "spammer_suspected", "opened", "ann-2", 3, 3, severity="critical", top_label="x", rate=None
)


class AlertingTracker(QualityTracker):
    """The real tracker, plus hand-made alerts raised by the labels at given offsets."""

    def __init__(self, raise_at: dict[int, list[Alert]]) -> None:
        super().__init__()
        self.raise_at = raise_at

    def apply(self, events: Sequence[tuple[LabelEvent, SourcePosition]]) -> QualityOutput:
        out = super().apply(events)
        for _, source in events:
            out.alerts += self.raise_at.get(source.offset, [])
        return out


class NoDeadLetters:
    async def send(self, rejects: Sequence[tuple[RawMessage, InvalidEvent]]) -> None:
        raise AssertionError(f"unexpected rejects: {rejects}")


class FlakyAlerts:
    """Records what was published; the first ``fail_times`` calls raise like a down broker."""

    def __init__(self, fail_times: int) -> None:
        self.fail_times = fail_times
        self.attempts = 0
        self.published: list[Alert] = []

    async def publish(self, alerts: Sequence[Alert]) -> None:
        self.attempts += 1
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("broker unavailable")
        self.published.extend(alerts)


def label(offset: int) -> RawMessage:
    body = {
        "event_id": f"ev-{offset}",
        "ts": (T0 + timedelta(seconds=offset)).isoformat(),
        "project": "p",
        "item_id": f"it-{offset // 2}",
        "annotator_id": f"ann-{offset % 3}",
        "label": "x",
    }
    return RawMessage("labels", 0, offset, None, json.dumps(body).encode())


def metric(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def alerts_counted(metrics: Metrics, kind: str, severity: str, state: str) -> float:
    labels = {"kind": kind, "severity": severity, "state": state}
    return metric(metrics, "labelwatch_alerts_total", labels)


@pytest.fixture
def client(ch_settings: Settings) -> Iterator[Client]:
    c = connect(settings=ch_settings)
    migrate(c, database_name(ch_settings))
    yield c
    c.command(f"DROP DATABASE IF EXISTS {database_name(ch_settings)}")
    c.close()


def stored_states(client: Client, db: str) -> list[tuple[str, str, str]]:
    return [
        (r[0], r[1], r[2])
        for r in client.query(
            f"SELECT alert_id, state, kind FROM {db}.alerts FINAL ORDER BY offset"
        ).result_rows
    ]


def test_alerts_are_stored_once_per_state(client: Client, ch_settings: Settings) -> None:
    db = database_name(ch_settings)
    writer = ClickHouseWriter(connect(settings=ch_settings), db)

    def write(alerts: list[Alert]) -> dict[str, int]:
        # One ingest time: a retry in the pipeline re-sends the very same rows.
        rows = sink_rows([], QualityOutput(alerts=alerts), INGESTED)
        return asyncio.run(writer.write_tables(rows))

    try:
        assert write([DRIFT_OPENED]) == {"alerts": 1}
        write([DRIFT_OPENED])  # exact retry: dropped by the dedup token
        # The episode's next state, alone in a later batch, is a new row, not a retry.
        write([DRIFT_RESOLVED])
        write([SPAM_OPENED, DRIFT_RESOLVED])  # a replayed batch overlapping: collapsed by key
    finally:
        writer.close()

    assert client.command(f"SELECT count() FROM {db}.alerts") == 4
    assert stored_states(client, db) == [
        (DRIFT_OPENED.alert_id, "opened", "annotator_drift"),
        (SPAM_OPENED.alert_id, "opened", "spammer_suspected"),
        (DRIFT_OPENED.alert_id, "resolved", "annotator_drift"),
    ]
    row = client.query(
        f"SELECT toUnixTimestamp64Milli(ts), severity, annotator_id, score, threshold, reason, "
        f"evidence, detector, shard, opened_offset, schema_version "
        f"FROM {db}.alerts FINAL WHERE alert_id = '{SPAM_OPENED.alert_id}'"
    ).first_row
    assert row[0] == int(SPAM_OPENED.ts.timestamp() * 1000)
    assert row[1:6] == ("critical", "ann-2", 11.5, 10.0, "spammer_suspected opened")
    assert json.loads(row[6]) == {"top_label": "x", "rate": None}
    assert row[7:] == ("test", SHARD, 3, 1)
    types = dict(
        client.query(
            f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'alerts'"
        ).result_rows
    )
    assert types["ts"] == "DateTime64(3, 'UTC')" and types["evidence"] == "String"


@pytest.mark.broker
def test_pipeline_publishes_alerts_to_the_alerts_topic(
    kafka_bootstrap: str, ch_settings: Settings, client: Client, tmp_path: Path
) -> None:
    tag = secrets.token_hex(4)
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        app_id=f"alerts-{tag}",
        topic_labels=f"alerts-{tag}.labels",
        topic_dead_letter=f"alerts-{tag}.dead-letter",
        topic_alerts=f"alerts-{tag}.alerts",
        topic_review=f"alerts-{tag}.review",
        topic_partitions=2,
        data_dir=tmp_path,
        clickhouse_dsn=ch_settings.resolved_dsn(),
        clickhouse_database=ch_settings.clickhouse_database,
        _env_file=None,  # type: ignore[call-arg]
    )
    ensure_topics(settings)
    db = database_name(settings)
    metrics = Metrics()
    tracker = AlertingTracker({2: [DRIFT_OPENED], 3: [SPAM_OPENED], 4: [DRIFT_RESOLVED]})

    async def run() -> None:
        app = create_app(settings, metrics=metrics)
        topic = app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw")
        writer = ClickHouseWriter(connect(settings=settings), db)
        pipeline = LabelPipeline(
            tables=writer,
            tracker=tracker,
            dead_letters=NoDeadLetters(),
            alerts=FaustAlerts(topic),
            metrics=metrics,
            max_message_bytes=4096,
        )
        try:
            await pipeline.process([label(i) for i in range(3)])
            await pipeline.process([label(i) for i in range(3, 6)])
        finally:
            writer.close()
            await app.producer.stop()

    asyncio.run(run())

    # On the topic when process returned: the alerts as sent, keyed by annotator, in order.
    records = read_alerts(settings, {p: 0 for p in end_offsets(settings, settings.topic_alerts)})
    assert sorted(records, key=lambda r: r[1].offset) == [
        (b"ann-1", DRIFT_OPENED),
        (b"ann-2", SPAM_OPENED),
        (b"ann-1", DRIFT_RESOLVED),
    ]
    ann_1 = [a.state for key, a in records if key == b"ann-1"]
    assert ann_1 == ["opened", "resolved"]

    assert alerts_counted(metrics, "annotator_drift", "warning", "opened") == 1
    assert alerts_counted(metrics, "annotator_drift", "warning", "resolved") == 1
    assert alerts_counted(metrics, "spammer_suspected", "critical", "opened") == 1
    assert alerts_counted(metrics, "spammer_suspected", "critical", "resolved") == 0
    # Series of kinds that never fired exist at 0, so rate() and increase() see the first one.
    never_fired = 'labelwatch_alerts_total{kind="low_reliability",severity="info",state="opened"}'
    assert f"{never_fired} 0.0".encode() in metrics.exposition()
    assert metric(metrics, "labelwatch_sink_rows_written_total", {"table": "alerts"}) == 3
    assert [s for _, s, _ in stored_states(client, db)] == ["opened", "opened", "resolved"]


def test_a_failing_alerts_output_is_retried_before_anything_is_stored(
    client: Client, ch_settings: Settings
) -> None:
    db = database_name(ch_settings)
    writer = ClickHouseWriter(connect(settings=ch_settings), db)
    alerts = FlakyAlerts(fail_times=3)
    metrics = Metrics()
    stored_while_failing: list[int] = []

    async def sleep(delay: float) -> None:
        stored_while_failing.append(client.command(f"SELECT count() FROM {db}.label_events"))

    pipeline = LabelPipeline(
        tables=writer,
        tracker=AlertingTracker({1: [DRIFT_OPENED, SPAM_OPENED]}),
        dead_letters=NoDeadLetters(),
        alerts=alerts,
        metrics=metrics,
        max_message_bytes=4096,
        sleep=sleep,
    )
    try:
        asyncio.run(pipeline.process([label(i) for i in range(4)]))
    finally:
        writer.close()

    assert alerts.attempts == 4  # three failures, then success: nothing dropped
    assert alerts.published == [DRIFT_OPENED, SPAM_OPENED]
    # Published before the batch is stored (and so before it can be acked).
    assert stored_while_failing == [0, 0, 0]
    assert client.command(f"SELECT count() FROM {db}.label_events") == 4
    assert metric(metrics, "labelwatch_errors_total", {"component": "alerts"}) == 3
    # Counted once per alert delivered, not once per attempt.
    assert alerts_counted(metrics, "annotator_drift", "warning", "opened") == 1
    assert alerts_counted(metrics, "spammer_suspected", "critical", "opened") == 1


def test_an_alerts_output_that_stays_down_holds_the_batch(
    client: Client, ch_settings: Settings
) -> None:
    db = database_name(ch_settings)
    writer = ClickHouseWriter(connect(settings=ch_settings), db)
    alerts = FlakyAlerts(fail_times=1_000)
    metrics = Metrics()
    delays: list[float] = []

    class Stopped(Exception):
        pass

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 8:
            raise Stopped  # stands in for the worker being stopped mid-back-off

    pipeline = LabelPipeline(
        tables=writer,
        tracker=AlertingTracker({0: [DRIFT_OPENED]}),
        dead_letters=NoDeadLetters(),
        alerts=alerts,
        metrics=metrics,
        max_message_bytes=4096,
        retry_max_seconds=1.0,
        sleep=sleep,
    )
    with pytest.raises(Stopped):
        asyncio.run(pipeline.process([label(0), label(1)]))
    writer.close()

    # process never returned, so the agent would not ack; nothing was stored or counted.
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert alerts.published == []
    assert client.command(f"SELECT count() FROM {db}.label_events") == 0
    assert alerts_counted(metrics, "annotator_drift", "warning", "opened") == 0


def test_without_an_alerts_output_alerts_are_still_stored(
    client: Client, ch_settings: Settings
) -> None:
    db = database_name(ch_settings)
    writer = ClickHouseWriter(connect(settings=ch_settings), db)
    metrics = Metrics()
    pipeline = LabelPipeline(
        tables=writer,
        tracker=AlertingTracker({0: [DRIFT_OPENED]}),
        dead_letters=NoDeadLetters(),
        metrics=metrics,
        max_message_bytes=4096,
    )
    try:
        asyncio.run(pipeline.process([label(0)]))
    finally:
        writer.close()
    assert stored_states(client, db) == [(DRIFT_OPENED.alert_id, "opened", "annotator_drift")]
    # Nothing was published, so nothing is counted as published.
    assert alerts_counted(metrics, "annotator_drift", "warning", "opened") == 0
