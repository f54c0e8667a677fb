"""Privacy signals end to end: labels and privacy signals go through the real broker into a
real ``labelwatch worker`` with pseudonymization on. Spikes, exposures, access violations and
labels on revoked items come out on the alerts topic and in ClickHouse; the raw annotator ids
reach neither ClickHouse, nor the alerts topic, nor the worker's log."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from labelwatch.privacy_simulator import (
    ExposureIncident,
    PrivacySimulationConfig,
    PrivacySimulator,
    SpikeIncident,
)
from labelwatch.schemas.pseudonym import Pseudonymizer
from labelwatch.simulator import PROJECT_LABELS, LabelingSimulator, SimulationConfig, encode_event
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.streams.alerts import read_alerts
from labelwatch.streams.dead_letter import parse_dead_letter
from labelwatch.streams.produce import produce
from labelwatch.streams.topics import ensure_topics, read_range, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration.conftest import settings_from

pytestmark = pytest.mark.broker

KEY = "e2e-pseudonym-key-0123456789"
T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
HOURS = 3.0


def test_privacy_alerts_through_kafka_with_pseudonymous_ids(
    e2e_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = e2e_env | {
        "LABELWATCH_TOPIC_PARTITIONS": "2",
        "LABELWATCH_PSEUDONYM_KEY": KEY,
        "LABELWATCH_PRIVACY_ATTRIBUTE_ALLOWLIST": '["pii_type"]',
    }
    settings = settings_from(env, monkeypatch)
    ensure_topics(settings)

    # Labels over the same three hours as the signals.
    sim = LabelingSimulator(
        SimulationConfig(
            seed=3,
            run_id="priv",
            annotators=8,
            events_per_second=600 / (HOURS * 3600),
            projects={"animals": PROJECT_LABELS["animals"]},
        )
    )
    stream = sim.labels(T0)
    labels = [next(stream).event for _ in range(600)]
    # Revoke an item between its first and second label: its later labels must be alerted.
    by_item: dict[str, list[dict[str, object]]] = {}
    for e in labels:
        by_item.setdefault(str(e["item_id"]), []).append(e)
    item, given = next((i, g) for i, g in by_item.items() if len(g) >= 3)
    t1, t2 = (datetime.fromisoformat(str(e["ts"])) for e in given[:2])
    revoked_at = t1 + (t2 - t1) / 2
    after = {
        str(e["event_id"]) for e in given if datetime.fromisoformat(str(e["ts"])) >= revoked_at
    }

    privacy = PrivacySimulator(
        PrivacySimulationConfig(seed=4, projects=("animals",), project_scale={"animals": 1.0})
    )
    spike_at = T0 + timedelta(hours=2)
    incidents = [
        SpikeIncident("animals", "pii_detected", spike_at, duration_seconds=1500.0),
        ExposureIncident("animals", T0 + timedelta(minutes=100), "ann-003", "animals-x-1"),
    ]
    signals = [s.event for s in privacy.signals(T0, T0 + timedelta(hours=HOURS), incidents)]
    signals.append(
        {
            "event_id": "revoke-1",
            "ts": revoked_at.isoformat(),
            "project": "animals",
            "source": "consent-service",
            "kind": "consent_revoked",
            "severity": "high",
            "item_id": item,
        }
    )
    signals.sort(key=lambda s: str(s["ts"]))
    bad = b'{"event_id": "bad-1", "kind": "pii_detected"}'

    log = tmp_path / "worker.log"
    worker = WorkerProcess.start(settings, log, env=env)
    try:
        produce(
            settings,
            settings.topic_privacy,
            [(b"animals", encode_event(s)) for s in signals] + [(b"animals", bad)],
        )
        produce(
            settings,
            settings.topic_labels,
            [(str(e["item_id"]).encode(), encode_event(e)) for e in labels],
        )
        assert wait_for_lag_zero(settings, timeout_s=120) == 0
        metrics = worker.get("/metrics").decode()
    finally:
        exit_code = worker.stop()
    worker_log = log.read_text()
    assert exit_code == 0, worker_log[-3000:]

    alias = Pseudonymizer(KEY.encode())
    records = read_alerts(settings, {0: 0, 1: 0})
    published = {(a.alert_id, a.state): a for _, a in records}
    opened = [a for a in published.values() if a.state == "opened"]
    assert all(key == a.subject.encode() for key, a in records)

    spike = [a for a in opened if a.kind == "privacy_spike" and a.subject == "pii_detected"]
    assert len(spike) == 1, [a.reason for a in opened if a.kind == "privacy_spike"]
    delay = (spike[0].ts - spike_at).total_seconds()
    assert 0 <= delay <= 2 * settings.privacy_window_seconds, spike[0].reason

    exposure = [a for a in opened if a.kind == "privacy_exposure"]
    assert [(a.annotator_id, a.severity) for a in exposure] == [(alias("ann-003"), "critical")]

    revoked = [a for a in opened if a.kind == "revoked_item_labeled"]
    assert {a.evidence["label_event_id"] for a in revoked} == after
    assert {a.subject for a in revoked} == {item}

    # Violations in the simulated background alert each time; under pseudonyms.
    violations = [a for a in opened if a.kind == "access_violation"]
    assert all(a.annotator_id.startswith("p-") for a in violations)

    # The malformed signal went to the dead-letter topic with its reason.
    dead = [
        parse_dead_letter(r.headers, r.value)
        for r in read_range(settings, settings.topic_dead_letter, {0: 0, 1: 0})
    ]
    assert [(d.source_topic, d.code) for d in dead] == [(settings.topic_privacy, "invalid_fields")]
    assert "ts" in dead[0].fields and "project" in dead[0].fields

    # ClickHouse: every signal once, alerts as published, and no raw annotator id anywhere.
    client = connect(settings=settings)
    db = database_name(settings)
    try:
        deadline = time.monotonic() + 30
        while True:
            n = client.query(f"SELECT count() FROM {db}.privacy_signals FINAL").first_row[0]
            if n >= len(signals) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert n == len(signals)
        stored = client.query(
            f"SELECT alert_id, state FROM {db}.alerts FINAL WHERE kind IN "
            "('privacy_spike', 'privacy_exposure', 'revoked_item_labeled', 'access_violation')"
        ).result_rows
        privacy_published = {
            k for k, a in published.items() if a.kind.startswith(("privacy", "revoked", "access"))
        }
        assert set(stored) == privacy_published
        leaked = client.query(
            f"SELECT count() FROM {db}.label_events WHERE annotator_id LIKE 'ann-%'"
        ).first_row[0]
        assert leaked == 0
        names = client.query(f"SELECT DISTINCT annotator_id FROM {db}.privacy_signals").result_rows
        assert all(name == "" or name.startswith("p-") for (name,) in names)
        profile = client.query(
            f"SELECT annotator_id, exposures FROM {db}.annotator_profile "
            "WHERE annotator_id = {a:String}",
            parameters={"a": alias("ann-003")},
        ).result_rows
        assert profile and profile[0][1] >= 1
    finally:
        client.close()
    for record in records:
        assert b"ann-0" not in record[1].model_dump_json().encode()
    assert "ann-0" not in worker_log and KEY not in worker_log
    assert 'labelwatch_privacy_signals_total{kind="pii_detected"' in metrics
