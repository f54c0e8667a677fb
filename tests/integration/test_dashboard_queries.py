"""The dashboard's read queries over chDB, with rows written by the real sink code: what each
view shows, how shards are pooled, and that stored duplicates change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from labelwatch.models.tracker import AnnotatorSnapshot, LabelOutcome, QualityOutput
from labelwatch.schemas import LabelEvent, PrivacySignal, SourcePosition
from labelwatch.schemas.alerts import Alert, alert_id
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import (
    ALERT_COLUMNS,
    ANNOTATOR_RELIABILITY_COLUMNS,
    ClickHouseWriter,
    alert_row,
    annotator_reliability_row,
    connect,
    database_name,
    privacy_signal_row,
    sink_rows,
)
from labelwatch.sinks.migrations import migrate
from labelwatch.web import queries

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(ch_settings: Settings) -> Iterator[tuple[Client, str]]:
    """A migrated database holding two annotators' labels, snapshots, alerts and privacy
    signals (see :func:`fill`)."""
    client = connect(settings=ch_settings)
    name = database_name(ch_settings)
    migrate(client, name)
    writer = ClickHouseWriter(connect(settings=ch_settings), name)
    try:
        fill(writer)
        yield client, name
    finally:
        writer.close()
        client.command(f"DROP DATABASE IF EXISTS {name}")
        client.close()


def label_events(n: int) -> tuple[list[tuple[LabelEvent, SourcePosition]], list[LabelOutcome]]:
    """``n`` labels of project p1 by ann-0 (even i) and ann-1 (odd i), 20 s apart: ann-0
    agrees with the consensus every time, ann-1 every other time; every third label has
    gold, right for ann-0 only; ann-0 takes 2 s per label, ann-1 4 s."""
    events, outcomes = [], []
    for i in range(n):
        annotator = f"ann-{i % 2}"
        event = LabelEvent.model_validate(
            {
                "event_id": f"e-{i}",
                "ts": T0 + timedelta(seconds=20 * i),
                "project": "p1",
                "item_id": f"item-{i // 3}",
                "annotator_id": annotator,
                "label": "cat",
                "duration_ms": 2000 if i % 2 == 0 else 4000,
            },
            strict=False,
        )
        events.append((event, SourcePosition("labels", i % 2, i)))
        agrees = True if i % 2 == 0 else (i // 2) % 2 == 0
        gold = (i % 2 == 0) if i % 3 == 0 else None
        outcomes.append(LabelOutcome("cat", 0.9, agrees, gold))
    return events, outcomes


def snapshot(
    minute: int, annotator: str, shard: int, n: int, accuracy: float, interval: tuple[float, float]
) -> AnnotatorSnapshot:
    return AnnotatorSnapshot(
        T0 + timedelta(minutes=minute),
        "p1",
        annotator,
        f"labels:{shard}",
        n,
        accuracy,
        interval[0],
        interval[1],
        0,
        None,
        accuracy * n,
        float(n),
        {},
    )


# ann-0 is seen by two shards; ann-1 by one, its accuracy falling (it drifts at minute 2).
SNAPSHOTS = [
    snapshot(1, "ann-0", 0, 10, 0.9, (0.80, 0.96)),
    snapshot(1, "ann-1", 1, 10, 0.8, (0.60, 0.90)),
    snapshot(2, "ann-0", 1, 10, 0.7, (0.50, 0.85)),
    snapshot(2, "ann-1", 1, 20, 0.6, (0.45, 0.72)),
    snapshot(3, "ann-0", 0, 30, 0.9, (0.85, 0.95)),
    snapshot(3, "ann-1", 1, 30, 0.5, (0.40, 0.60)),
]


def alert(
    kind: str,
    annotator: str,
    state: str,
    minute: int,
    score: float,
    *,
    detector: str = "",
    subject: str = "",
    severity: str = "warning",
    evidence: dict[str, Any] | None = None,
) -> Alert:
    episode = f"{kind}:{detector}"
    return Alert(
        alert_id=alert_id(episode, "p1", subject or annotator, "labels:1", 7),
        kind=kind,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        ts=T0 + timedelta(minutes=minute),
        project="p1",
        annotator_id=annotator,
        subject=subject,
        score=score,
        threshold=10.0,
        reason=f"{kind} {state}",
        evidence=evidence or {},
        detector=detector,
        shard="labels:1",
        offset=100 + minute,
        opened_offset=7,
    )


ALERTS = [
    # ann-1 drifts at minute 2 and stays drifted: a change point and an open alert.
    alert(
        "annotator_drift",
        "ann-1",
        "opened",
        2,
        11.5,
        detector="correctness",
        evidence={"accuracy_before": 0.8, "accuracy_after": 0.4},
    ),
    # ann-0 drifted briefly: a change point, resolved.
    alert("annotator_drift", "ann-0", "opened", 1, 10.5, detector="speed"),
    alert("annotator_drift", "ann-0", "resolved", 3, 1.0, detector="speed"),
    # Anomaly scores: ann-0's newest state is the resolution (score 2.5), ann-1's is open.
    alert("annotator_anomaly", "ann-0", "opened", 1, 7.5, detector="robust_z:pace"),
    alert("annotator_anomaly", "ann-0", "resolved", 3, 2.5, detector="robust_z:pace"),
    alert(
        "annotator_anomaly",
        "ann-1",
        "opened",
        2,
        8.0,
        detector="robust_z:agreement",
        severity="critical",
    ),
    # A rate spike: about a signal kind, no annotator.
    alert("privacy_spike", "", "opened", 0, 30.0, subject="pii_detected", detector="rate"),
]

# (minute, kind, severity, count): privacy signals of project p1.
SIGNALS = [
    (0, "pii_detected", "low", 1),
    (0, "pii_detected", "high", 2),
    (1, "pii_detected", "low", 1),
    (1, "access_violation", "high", 1),
    (3, "pii_detected", "critical", 1),
]


def fill(writer: ClickHouseWriter) -> None:
    events, outcomes = label_events(12)
    quality = QualityOutput(outcomes=outcomes, annotators=SNAPSHOTS, alerts=ALERTS)
    writer.insert_tables(sink_rows(events, quality, T0))
    signals = []
    for i, (minute, kind, severity, count) in enumerate(SIGNALS):
        signal = PrivacySignal.model_validate(
            {
                "event_id": f"s-{i}",
                "ts": T0 + timedelta(minutes=minute, seconds=5),
                "project": "p1",
                "source": "scanner",
                "kind": kind,
                "severity": severity,
                "annotator_id": "ann-1" if kind == "access_violation" else None,
                "count": count,
            },
            strict=False,
        )
        source = SourcePosition("privacy", 0, i)
        signals.append(privacy_signal_row(signal, source, T0, allowlist=frozenset()))
    writer.insert_tables({"privacy_signals": signals})


def test_annotator_table_pools_shards_and_joins_activity_and_alerts(
    store: tuple[Client, str],
) -> None:
    client, db = store
    table = queries.annotators(client, db)
    assert table["projects"] == ["p1"] and table["truncated"] is False
    rows = {r["annotator_id"]: r for r in table["annotators"]}
    assert list(rows) == ["ann-0", "ann-1"]
    ann0, ann1 = rows["ann-0"], rows["ann-1"]

    # ann-0: latest snapshot per shard is (shard 0, minute 3: 30 labels, 0.9) and
    # (shard 1, minute 2: 10 labels, 0.7), pooled by soft counts, interval = envelope.
    assert ann0["accuracy"] == pytest.approx((0.9 * 30 + 0.7 * 10) / 40)
    assert (ann0["accuracy_low"], ann0["accuracy_high"]) == pytest.approx((0.50, 0.95))
    assert (ann0["reliability_labels"], ann0["shards"]) == (40, 2)
    assert ann0["reliability_as_of"] == (T0 + timedelta(minutes=3)).isoformat()
    # ann-1: one shard, so exactly its newest snapshot.
    assert ann1["accuracy"] == pytest.approx(0.5)
    assert (ann1["accuracy_low"], ann1["accuracy_high"]) == pytest.approx((0.40, 0.60))
    assert (ann1["reliability_labels"], ann1["shards"]) == (30, 1)

    # Activity from the stored labels: 6 each; see label_events.
    assert (ann0["labels"], ann0["agreement_rate"], ann0["gold_seen"]) == (6, 1.0, 2)
    assert ann0["gold_accuracy"] == 1.0 and ann1["gold_accuracy"] == 0.0
    assert ann1["agreement_rate"] == 0.5
    assert ann0["median_seconds"] == pytest.approx(2.0)
    assert ann1["median_seconds"] == pytest.approx(4.0)
    assert ann1["last_active"] == (T0 + timedelta(minutes=3)).isoformat()

    # Anomaly: the newest state's score; open alerts: the drift and the anomaly of ann-1.
    assert (ann0["anomaly_score"], ann0["anomaly_state"]) == (2.5, "resolved")
    assert ann0["anomaly_detector"] == "robust_z:pace"
    assert (ann1["anomaly_score"], ann1["anomaly_state"]) == (8.0, "opened")
    assert ann0["open_alerts"] == 0 and ann0["open_alert_kinds"] == []
    assert ann1["open_alerts"] == 2
    assert ann1["open_alert_kinds"] == ["annotator_anomaly", "annotator_drift"]
    assert ann1["worst_open_severity"] == "critical"
    json.dumps(table)  # JSON-able as it is

    # Filters and the limit.
    assert queries.annotators(client, db, project="other")["annotators"] == []
    one = queries.annotators(client, db, limit=1)
    assert [r["annotator_id"] for r in one["annotators"]] == ["ann-0"] and one["truncated"]


def test_drill_down_has_reliability_over_time_and_change_points(
    store: tuple[Client, str],
) -> None:
    client, db = store
    detail = queries.annotator_detail(client, db, "p1", "ann-1")
    assert detail is not None
    assert detail["annotator"]["annotator_id"] == "ann-1"
    series = detail["reliability"]
    assert [p["ts"] for p in series] == [(T0 + timedelta(minutes=m)).isoformat() for m in (1, 2, 3)]
    assert [p["accuracy"] for p in series] == pytest.approx([0.8, 0.6, 0.5])
    assert [p["accuracy_low"] for p in series] == pytest.approx([0.6, 0.45, 0.4])
    assert [p["accuracy_high"] for p in series] == pytest.approx([0.9, 0.72, 0.6])
    (change,) = detail["change_points"]
    assert change["ts"] == (T0 + timedelta(minutes=2)).isoformat()
    assert change["detector"] == "correctness" and change["resolved_at"] is None
    assert change["evidence"] == {"accuracy_before": 0.8, "accuracy_after": 0.4}
    assert change["reason"] == "annotator_drift opened"
    assert {(a["kind"], a["open"]) for a in detail["alerts"]} == {
        ("annotator_drift", True),
        ("annotator_anomaly", True),
    }

    # ann-0: two shards pooled as of each tick (shard 0's minute-1 snapshot still counts
    # at minute 2); the last point is the table's value. Its drift episode was resolved.
    detail0 = queries.annotator_detail(client, db, "p1", "ann-0")
    assert detail0 is not None
    accuracies = [p["accuracy"] for p in detail0["reliability"]]
    assert accuracies == pytest.approx(
        [0.9, (0.9 * 10 + 0.7 * 10) / 20, (0.9 * 30 + 0.7 * 10) / 40]
    )
    assert [p["shards"] for p in detail0["reliability"]] == [1, 2, 2]
    assert detail0["reliability"][-1]["accuracy"] == pytest.approx(detail0["annotator"]["accuracy"])
    (resolved,) = detail0["change_points"]
    assert resolved["detector"] == "speed"
    assert resolved["resolved_at"] == (T0 + timedelta(minutes=3)).isoformat()
    json.dumps(detail0)

    assert queries.annotator_detail(client, db, "p1", "nobody") is None
    assert queries.annotator_detail(client, db, "p2", "ann-1") is None


def test_open_alerts_list_every_kind_worst_first(store: tuple[Client, str]) -> None:
    client, db = store
    listed = queries.open_alerts(client, db)
    alerts = listed["alerts"]
    # Critical first, then the most recently updated.
    assert [(a["kind"], a["severity"]) for a in alerts] == [
        ("annotator_anomaly", "critical"),
        ("annotator_drift", "warning"),
        ("privacy_spike", "warning"),
    ]
    by_kind = {a["kind"]: a for a in alerts}
    assert by_kind["privacy_spike"]["subject"] == "pii_detected"
    assert by_kind["privacy_spike"]["annotator_id"] == ""
    drift = by_kind["annotator_drift"]
    assert (drift["annotator_id"], drift["detector"], drift["score"]) == (
        "ann-1",
        "correctness",
        11.5,
    )
    assert drift["opened_at"] == (T0 + timedelta(minutes=2)).isoformat()
    assert listed["total"] == 3 and not listed["truncated"]
    assert listed["by_kind"] == {"annotator_anomaly": 1, "annotator_drift": 1, "privacy_spike": 1}
    assert listed["by_severity"] == {"critical": 1, "warning": 2}
    first = queries.open_alerts(client, db, limit=1)
    assert len(first["alerts"]) == 1 and first["truncated"] and first["total"] == 3


def test_privacy_signals_per_kind_and_minute(store: tuple[Client, str]) -> None:
    client, db = store
    view = queries.privacy(client, db)
    assert view["kinds"] == ["access_violation", "pii_detected"]
    pii = view["series"]["pii_detected"]
    m = [(T0 + timedelta(minutes=k)).isoformat() for k in range(4)]
    assert [(p["ts"], p["signals"], p["occurrences"], p["serious"]) for p in pii["points"]] == [
        (m[0], 2, 3, 1),
        (m[1], 1, 1, 0),
        (m[3], 1, 1, 1),
    ]
    assert (pii["signals"], pii["serious"]) == (4, 2)
    assert view["series"]["access_violation"]["signals"] == 1
    assert (view["start"], view["end"], view["bucket_minutes"]) == (m[0], m[3], 1)

    # The window ends at the newest minute: the last two minutes hold one pii signal.
    recent = queries.privacy(client, db, minutes=2)
    assert recent["kinds"] == ["pii_detected"] and recent["start"] == m[2]
    # A window longer than the data starts at the oldest signal; wide spans are bucketed.
    assert queries.privacy(client, db, minutes=600)["start"] == m[0]
    coarse = queries.privacy(client, db, max_points=2)
    assert coarse["bucket_minutes"] == 2
    assert [p["signals"] for p in coarse["series"]["pii_detected"]["points"]] == [3, 1]
    assert queries.privacy(client, db, project="other")["kinds"] == []


def test_stored_duplicates_change_nothing(ch_settings: Settings, store: tuple[Client, str]) -> None:
    client, db = store
    before = (
        queries.annotators(client, db),
        queries.annotator_detail(client, db, "p1", "ann-0"),
        queries.open_alerts(client, db),
    )
    # A redelivered batch stored again under another insert (as after a crash): the
    # ReplacingMergeTrees hold each row twice until a merge.
    client.insert(
        f"{db}.annotator_reliability",
        [annotator_reliability_row(s) for s in SNAPSHOTS],
        column_names=ANNOTATOR_RELIABILITY_COLUMNS,
    )
    client.insert(
        f"{db}.alerts",
        [alert_row(a, T0 + timedelta(hours=1)) for a in ALERTS],
        column_names=ALERT_COLUMNS,
    )
    assert client.command(f"SELECT count() FROM {db}.alerts") == 2 * len(ALERTS)
    stored = client.command(f"SELECT count() FROM {db}.annotator_reliability")
    assert stored == 2 * len(SNAPSHOTS)
    after = (
        queries.annotators(client, db),
        queries.annotator_detail(client, db, "p1", "ann-0"),
        queries.open_alerts(client, db),
    )
    assert after == before


def test_an_empty_store_answers_empty(ch_settings: Settings) -> None:
    client = connect(settings=ch_settings)
    db = database_name(ch_settings)
    migrate(client, db)
    try:
        assert queries.annotators(client, db) == {
            "annotators": [],
            "truncated": False,
            "projects": [],
        }
        assert queries.open_alerts(client, db)["alerts"] == []
        assert queries.privacy(client, db)["kinds"] == []
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
        client.close()
