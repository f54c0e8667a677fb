"""Re-reading a range of the labels topic (a consumer-group offset reset, the way an operator
replays a topic) leaves every table, aggregate and the alerts topic as they were."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, TopicPartition

from labelwatch.settings import Settings
from labelwatch.simulator import PROJECT_LABELS, LabelingSimulator, SimulationConfig, encode_event
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.streams.produce import produce
from labelwatch.streams.topics import end_offsets, ensure_topics, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration.conftest import settings_from

pytestmark = pytest.mark.broker

N_EVENTS = 3_000


def run_worker_until_caught_up(settings: Settings, env: dict[str, str], log: Path) -> str:
    """Start a worker, wait until the group's lag is 0, stop it; returns its /metrics."""
    worker = WorkerProcess.start(settings, log, env=env)
    try:
        assert wait_for_lag_zero(settings, timeout_s=120) == 0, log.read_text()[-3000:]
        metrics = worker.get("/metrics").decode()
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, log.read_text()[-3000:]
    return metrics


def store(settings: Settings) -> dict[str, Any]:
    """Everything a user reads: raw row counts, the tables under FINAL, every view."""
    db = database_name(settings)
    client = connect(settings=settings)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in client.query(sql.replace("{db}", db)).result_rows]

    try:
        return {
            # Before merges: the views count every row inserted into label_events. (A restart
            # re-writes the snapshots and alerts of the labels after the last checkpoint, in
            # case a crash came between inserts; those tables collapse them by key and the
            # alerts view counts distinct ids, so they are compared as users read them.)
            "label_rows": rows("SELECT count() FROM {db}.label_events"),
            "labels": rows(
                "SELECT event_id, source_partition, source_offset, consensus_label, agrees, "
                "gold_correct FROM {db}.label_events FINAL ORDER BY event_id"
            ),
            "items": rows("SELECT * FROM {db}.item_consensus_latest ORDER BY project, item_id"),
            "reliability": rows(
                "SELECT ts, project, annotator_id, shard, n_labels, accuracy, correct, total "
                "FROM {db}.annotator_reliability FINAL ORDER BY ALL"
            ),
            "alerts": rows(
                "SELECT alert_id, state, kind, severity, annotator_id, offset, reason "
                "FROM {db}.alerts FINAL ORDER BY alert_id, state"
            ),
            "minute": rows("SELECT * FROM {db}.annotator_minute ORDER BY ALL"),
            "hour": rows("SELECT * FROM {db}.annotator_hour ORDER BY ALL"),
            "reliability_hour": rows("SELECT * FROM {db}.annotator_reliability_hour ORDER BY ALL"),
            "open_alerts": rows("SELECT * FROM {db}.open_alerts ORDER BY ALL"),
        }
    finally:
        client.close()


def redelivered(metrics: str, topic: str) -> float:
    name = f'labelwatch_events_redelivered_total{{topic="{topic}"}}'
    values = [
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name)
    ]
    return sum(values)


def test_reading_a_topic_range_again_changes_nothing(
    e2e_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = e2e_env | {
        "LABELWATCH_TOPIC_PARTITIONS": "2",
        "LABELWATCH_CHECKPOINT_EVERY_LABELS": "700",
    }
    settings = settings_from(env, monkeypatch)
    ensure_topics(settings)
    sim = LabelingSimulator(
        SimulationConfig(
            seed=8,
            run_id="resend",
            annotators=12,
            behaviours={"spammer_fast": 1, "spammer_constant": 1},
            projects={"animals": PROJECT_LABELS["animals"]},
            events_per_second=20.0,
        )
    )
    stream = sim.labels(datetime(2026, 7, 1, tzinfo=UTC))
    events = [next(stream).event for _ in range(N_EVENTS)]
    produce(
        settings,
        settings.topic_labels,
        [(str(e["item_id"]).encode(), encode_event(e)) for e in events],
    )
    run_worker_until_caught_up(settings, env, tmp_path / "first.log")
    before = store(settings)
    assert before["label_rows"] == [(N_EVENTS,)]
    assert len(before["alerts"]) >= 2 and before["minute"] and before["reliability"]
    alerts_end = end_offsets(settings, settings.topic_alerts)

    # The operator rewinds the group: partition 0 to its start, partition 1 to its middle.
    ends = end_offsets(settings, settings.topic_labels)
    rewind = {0: 0, 1: ends[1] // 2}
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers(), **settings.kafka_client_options()
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the stopped worker's membership may take a moment to expire
            errors = admin.reset_group_offsets(
                settings.app_id,
                {TopicPartition(settings.topic_labels, p): o for p, o in rewind.items()},
            )
            if all(r["error"].errno == 0 for r in errors.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        admin.close()
    assert all(r["error"].errno == 0 for r in errors.values()), errors
    assert {tp.partition: r["offset"] for tp, r in errors.items()} == rewind

    metrics = run_worker_until_caught_up(settings, env, tmp_path / "second.log")
    # The range was read again (so the check below is not vacuous) ...
    assert redelivered(metrics, settings.topic_labels) == ends[0] + ends[1] - ends[1] // 2
    # ... and changed nothing: not the tables, not the views, not the alerts topic.
    after = store(settings)
    for name, value in before.items():
        assert after[name] == value, name
    assert end_offsets(settings, settings.topic_alerts) == alerts_end
