"""End to end: real Kafka broker, real ``labelwatch worker`` process, real chDB store.

Simulated events plus every kind of malformed message go in; the test checks that every
valid event is in ClickHouse exactly once (also after duplicates were re-sent), that every
malformed one is in the dead-letter topic with its original bytes, source offset and reason,
that /metrics counted them, and that the worker exits 0 on SIGTERM.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from labelwatch.simulator import (
    MALFORMED_KINDS,
    LabelingSimulator,
    SimulationConfig,
    encode_event,
    malformed_messages,
)
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.streams.dead_letter import read_dead_letters
from labelwatch.streams.produce import produce
from labelwatch.streams.topics import end_offsets, ensure_topics, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration.conftest import settings_from

pytestmark = pytest.mark.broker

N_EVENTS = 600
N_RESENT = 40


def test_events_flow_from_kafka_to_clickhouse_and_bad_ones_to_dead_letter(
    e2e_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(e2e_env, monkeypatch)
    ensure_topics(settings)
    sim = LabelingSimulator(SimulationConfig(seed=11, run_id="e2e"))
    labels = sim.labels(datetime(2026, 6, 1, tzinfo=UTC))
    events = [next(labels).event for _ in range(N_EVENTS)]
    bad = malformed_messages(3, MALFORMED_KINDS, max_message_bytes=settings.max_message_bytes)

    # Malformed messages go alone to partition-less keys; remember their payloads by bytes.
    records: list[tuple[bytes | None, bytes]] = []
    for i, event in enumerate(events):
        records.append((str(event["item_id"]).encode(), encode_event(event)))
        if i % 60 == 30 and bad:
            records.append((b"poison", bad[len(records) % len(bad)][1]))
    records += [(b"poison", value) for _, value in bad]
    # Producers retry: the same events arriving twice must not be stored twice.
    records += [(str(e["item_id"]).encode(), encode_event(e)) for e in events[:N_RESENT]]
    malformed_sent = [value for key, value in records if key == b"poison"]

    # Two worker lifetimes: the second must recover the models from ClickHouse and not
    # train them twice on anything the first one already learned.
    half = len(records) // 2
    metrics = []
    for run, part in enumerate((records[:half], records[half:])):
        log = tmp_path / f"worker{run}.log"
        worker = WorkerProcess.start(settings, log, env=e2e_env)
        try:
            # Ready: store open, both agents running, every input partition assigned to it.
            ready = worker.wait_ready(60)
            assert ready["problems"] == []
            assert ready["partitions_assigned"] == 2 * settings.topic_partitions
            produce(settings, settings.topic_labels, part)
            assert wait_for_lag_zero(settings, timeout_s=120) == 0
            metrics.append(worker.get("/metrics").decode())
        finally:
            exit_code = worker.stop()
        assert exit_code == 0, log.read_text()[-3000:]
    assert "restored: checkpoint at offset" in (tmp_path / "worker1.log").read_text()

    topic = settings.topic_labels

    def counter(name: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for text in metrics
            for line in text.splitlines()
            if line.startswith(f"{name}{{")
        )

    # SIGTERM committed what the first worker acked: the second one started after it.
    assert counter("labelwatch_events_consumed_total") == len(records)
    assert counter("labelwatch_events_valid_total") == N_EVENTS + N_RESENT
    assert counter("labelwatch_events_dead_lettered_total") == len(malformed_sent)
    assert f'labelwatch_events_consumed_total{{topic="{topic}"}}' in metrics[1]

    # Every valid event exactly once in ClickHouse, with the fields it was sent with.
    client = connect(settings=settings)
    db = database_name(settings)
    try:
        rows = client.query(
            f"SELECT event_id, item_id, annotator_id, label, gold_label, duration_ms "
            f"FROM {db}.label_events FINAL ORDER BY event_id"
        ).result_rows
        unique = client.query(f"SELECT uniqExact(event_id) FROM {db}.label_events").first_row
        enriched = client.query(
            f"SELECT countIf(consensus_label IS NULL), countIf(agrees = 1), "
            f"countIf(gold_label IS NOT NULL AND gold_correct IS NULL) "
            f"FROM {db}.label_events FINAL"
        ).first_row
        items = client.query(
            f"SELECT count(), countIf(consensus_label IS NULL), sum(n_votes) "
            f"FROM {db}.item_consensus FINAL"
        ).first_row
        reliability = client.query(
            f"SELECT uniqExact(annotator_id), count(), min(accuracy_low), max(accuracy_high), "
            f"sum(n_labels > 0) FROM {db}.annotator_reliability"
        ).first_row
        checkpoints = client.query(
            f"SELECT count(), min(last_offset) FROM {db}.model_checkpoints FINAL"
        ).first_row
    finally:
        client.close()
    assert unique == (N_EVENTS,)
    expected = sorted(
        (
            e["event_id"],
            e["item_id"],
            e["annotator_id"],
            e["label"],
            e["gold_label"],
            e["duration_ms"],
        )
        for e in events
    )
    assert rows == expected

    # The models ran live: every label enriched, every item has a consensus, and reliability
    # snapshots and checkpoints were written per shard (3 partitions).
    assert enriched[0] == 0 and enriched[1] > N_EVENTS * 0.6 and enriched[2] == 0
    n_items = len({(e["project"], e["item_id"]) for e in events})
    assert items[0] == n_items and items[1] == 0 and items[2] == N_EVENTS
    n_annotators = len({e["annotator_id"] for e in events})
    assert reliability[0] == n_annotators and reliability[1] >= n_annotators
    assert reliability[2] > 0.0 and reliability[3] <= 1.0 and reliability[4] == reliability[1]
    assert checkpoints[0] == 3 and checkpoints[1] >= 0

    # Every malformed message in the dead-letter topic: original bytes, source offset, reason.
    dead = read_dead_letters(
        settings, {p: 0 for p in end_offsets(settings, settings.topic_dead_letter)}
    )
    assert Counter(d.value for d in dead) == Counter(malformed_sent)
    assert {d.code for d in dead} == {code for code, _ in bad}
    assert all(d.reason and d.source_topic == topic for d in dead)
    source = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers(),
        enable_auto_commit=False,
        **settings.kafka_client_options(),
    )
    try:
        for letter in dead[:5]:
            tp = TopicPartition(topic, letter.source_partition)
            source.assign([tp])
            source.seek(tp, letter.source_offset)
            original = next(iter(source.poll(timeout_ms=5000, max_records=1).values()))[0]
            assert original.value == letter.value
    finally:
        source.close()
