"""ML-assisted labeling end to end: schema version 2 events with pre-labels go through the
real broker into a real worker; automation-bias alerts, review picks (topic and table) and the
new label_events columns come out."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import pytest

from labelwatch.simulator import PROJECT_LABELS, LabelingSimulator, SimulationConfig, encode_event
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.streams.alerts import read_alerts
from labelwatch.streams.produce import produce
from labelwatch.streams.review import read_reviews
from labelwatch.streams.topics import ensure_topics, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration.conftest import settings_from

pytestmark = pytest.mark.broker

N_EVENTS = 4_000


def test_pre_labels_bias_alerts_and_review_picks_through_kafka_and_clickhouse(
    e2e_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = e2e_env | {
        "LABELWATCH_TOPIC_PARTITIONS": "1",  # one shard sees every label of an annotator
        "LABELWATCH_REVIEW_BUDGET_PER_HOUR": "12",
        "LABELWATCH_REVIEW_WINDOW_SECONDS": "600",
    }
    settings = settings_from(env, monkeypatch)
    ensure_topics(settings)
    # 2 labels per second of event time: 4,000 labels span 33 minutes, three review windows.
    sim = LabelingSimulator(
        SimulationConfig(
            seed=41,
            run_id="assist",
            annotators=20,
            behaviours={"automation_biased": 2},
            prelabel_share=0.7,
            model_accuracy=0.75,
            events_per_second=2.0,
            projects={"animals": PROJECT_LABELS["animals"]},
        )
    )
    events = [s.event for s in islice(sim.labels(datetime(2026, 6, 1, tzinfo=UTC)), N_EVENTS)]
    biased = {a.annotator_id for a in sim.annotators if a.kind == "automation_biased"}

    log = tmp_path / "worker.log"
    worker = WorkerProcess.start(settings, log, env=env)
    try:
        produce(
            settings,
            settings.topic_labels,
            [(str(e["item_id"]).encode(), encode_event(e)) for e in events],
        )
        assert wait_for_lag_zero(settings, timeout_s=120) == 0
        metrics = worker.get("/metrics").decode()
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, log.read_text()[-3000:]

    alerts = [a for _, a in read_alerts(settings, {0: 0}) if a.kind == "automation_bias"]
    assert {a.annotator_id for a in alerts if a.state == "opened"} == biased
    assert all("wrong pre-labels" in a.reason for a in alerts)

    picks = read_reviews(settings, {0: 0})
    assert picks, log.read_text()[-3000:]
    by_id = {p["review_id"]: p for _, p in picks}
    assert all(key == p["item_id"].encode() for key, p in picks)
    per_window = Counter(p["window_start"] for p in by_id.values())
    assert len(per_window) == 3 and max(per_window.values()) <= 2  # 12 an hour, 6 windows
    votes = Counter(str(e["item_id"]) for e in events)
    assert all(votes[p["item_id"]] >= settings.review_after_votes for p in by_id.values())
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("labelwatch_review_picks_total{")
    )
    assert counted == len(picks)
    random_picks = [p for p in by_id.values() if p["kind"] == "random"]
    assert all(0 < p["inclusion_probability"] <= 1 for p in random_picks)

    client = connect(settings=settings)
    db = database_name(settings)
    try:
        stored = client.query(
            f"SELECT review_id, item_id, kind, reason FROM {db}.review_queue FINAL"
        ).result_rows
        v2 = client.query(
            f"SELECT countIf(model_label IS NOT NULL), countIf(task_type = 'classification'), "
            f"count() FROM {db}.label_events FINAL"
        ).first_row
        kinds = dict(
            client.query(
                f"SELECT kind, count() FROM {db}.alerts FINAL WHERE state = 'opened' GROUP BY kind"
            ).result_rows
        )
    finally:
        client.close()
    assert {r[0] for r in stored} == set(by_id)
    assert all(r[3].startswith("consensus ") for r in stored)
    with_prelabel = sum(1 for e in events if "model_label" in e)
    assert v2 == (with_prelabel, N_EVENTS, N_EVENTS)
    assert kinds["automation_bias"] == len(biased)
