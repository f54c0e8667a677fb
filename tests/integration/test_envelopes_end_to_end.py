"""Batched envelopes end to end: real broker, real worker process, real chDB store.

Envelopes of simulated labels, one of them holding invalid events, go in beside single
events; every valid event must be stored once at its (offset, index), every invalid one must
be dead-lettered alone with its index, and the rest of its envelope stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import pytest

from labelwatch.simulator import (
    LabelingSimulator,
    SimulationConfig,
    encode_event,
    kafka_batches,
)
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.streams.dead_letter import read_dead_letters
from labelwatch.streams.produce import produce
from labelwatch.streams.topics import end_offsets, ensure_topics, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration.conftest import settings_from

pytestmark = pytest.mark.broker


def test_envelopes_are_stored_per_event_and_bad_events_dead_lettered_alone(
    e2e_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(e2e_env, monkeypatch)
    ensure_topics(settings)
    sim = LabelingSimulator(SimulationConfig(seed=5, run_id="env"))
    events = [s.event for s in islice(sim.labels(datetime(2026, 6, 1, tzinfo=UTC)), 900)]
    keyed = [(str(e["item_id"]).encode(), encode_event(e)) for e in events]
    # 800 events in envelopes of up to 50, the last 100 one by one.
    records = list(kafka_batches(keyed[:800], 50, settings.topic_partitions)) + keyed[800:]
    # One envelope gets two invalid events: a wrong type and an unknown field.
    key, value = records[3]
    body = json.loads(value)
    body["events"][4]["duration_ms"] = "slow"
    body["events"][9]["colour"] = "red"
    bad_ids = {body["events"][4]["event_id"], body["events"][9]["event_id"]}
    records[3] = (key, json.dumps(body).encode())

    # This worker also logs JSON: every line it writes must be one JSON log object.
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess.start(
        settings, log_path, env={**e2e_env, "LABELWATCH_LOG_FORMAT": "json"}
    )
    try:
        produce(settings, settings.topic_labels, records)
        assert wait_for_lag_zero(settings, timeout_s=120) == 0
        metrics = worker.get("/metrics").decode()
    finally:
        exit_code = worker.stop()
    assert exit_code == 0
    log_lines = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    assert {"ts", "level", "logger", "message"} <= set(log_lines[0])
    assert any(line["message"].startswith("labelwatch worker: broker") for line in log_lines)

    client = connect(settings=settings)
    db = database_name(settings)
    try:
        stored = client.query(
            f"SELECT event_id, (source_partition, source_offset, source_index), "
            f"consensus_label IS NOT NULL, source_index "
            f"FROM {db}.label_events FINAL"
        ).result_rows
        rows = client.command(f"SELECT count() FROM {db}.label_events")
    finally:
        client.close()
    assert rows == len(stored) == len(events) - 2
    assert {r[0] for r in stored} == {e["event_id"] for e in events} - bad_ids
    assert all(r[2] for r in stored)  # every stored label went through the models
    assert len({r[1] for r in stored}) == len(stored)  # one event per position
    assert max(r[3] for r in stored) == 49  # events of full envelopes keep their index

    dead = read_dead_letters(
        settings, {p: 0 for p in end_offsets(settings, settings.topic_dead_letter)}
    )
    assert sorted((d.source_index, d.code) for d in dead) == [
        (4, "invalid_fields"),
        (9, "invalid_fields"),
    ]
    assert {json.loads(d.value or b"")["event_id"] for d in dead} == bad_ids
    assert all(d.reason.startswith(f"events[{d.source_index}]: ") for d in dead)
    consumed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("labelwatch_events_consumed_total{")
    )
    assert consumed == len(events)
