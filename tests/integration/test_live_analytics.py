"""The live-analytics views over chDB: what they compute, that a retried or redelivered
insert is not counted twice in the per-minute aggregates, and that labels a crash left
uncounted there are counted when their shard is restored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from labelwatch.models.tracker import AnnotatorSnapshot, LabelOutcome, QualityOutput
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.schemas.alerts import Alert, alert_id
from labelwatch.settings import Settings
from labelwatch.sinks import migrations
from labelwatch.sinks.clickhouse import (
    ANNOTATOR_MINUTE_INPUT_COLUMNS,
    LABEL_EVENT_COLUMNS,
    ClickHouseWriter,
    annotator_minute_rows,
    connect,
    database_name,
    dedup_token,
    sink_rows,
)
from labelwatch.sinks.migrations import MIGRATIONS, migrate

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(ch_settings: Settings) -> Iterator[tuple[Client, ClickHouseWriter, str]]:
    client = connect(settings=ch_settings)
    name = database_name(ch_settings)
    migrate(client, name)
    writer = ClickHouseWriter(connect(settings=ch_settings), name)
    yield client, writer, name
    writer.close()
    client.command(f"DROP DATABASE IF EXISTS {name}")
    client.close()


def labels(n: int, start: int = 0) -> tuple[list[tuple[LabelEvent, SourcePosition]], QualityOutput]:
    """``n`` labels of ann-0 (even i) and ann-1 (odd i), 20 s apart, with known outcomes:
    ann-0 agrees with the consensus on every label, ann-1 on every other one; every third
    label has gold, answered right by ann-0 only; durations 1000 + 100 * i ms."""
    events, outcomes = [], []
    for i in range(start, start + n):
        annotator = f"ann-{i % 2}"
        event = LabelEvent.model_validate(
            {
                "event_id": f"e-{i}",
                "ts": T0 + timedelta(seconds=20 * i),
                "project": "p1",
                "item_id": f"item-{i // 3}",
                "annotator_id": annotator,
                "label": "cat",
                "duration_ms": 1000 + 100 * i,
            },
            strict=False,
        )
        events.append((event, SourcePosition("labels", 0, i)))
        agrees = True if i % 2 == 0 else (i // 2) % 2 == 0
        gold = (i % 2 == 0) if i % 3 == 0 else None
        outcomes.append(LabelOutcome("cat", 0.9, agrees, gold))
    return events, QualityOutput(outcomes=outcomes)


def alert(annotator: str, state: str, minute: int, offset: int) -> Alert:
    return Alert(
        alert_id=alert_id("annotator_drift", "p1", annotator, "labels:0", 3),
        kind="annotator_drift",
        state=state,  # type: ignore[arg-type]
        severity="warning",
        ts=T0 + timedelta(minutes=minute),
        project="p1",
        annotator_id=annotator,
        score=12.0 if state == "opened" else 0.0,
        threshold=10.0,
        reason=state,
        shard="labels:0",
        offset=offset,
        opened_offset=3,
    )


def minute_rows(client: Client, db: str) -> list[tuple[Any, ...]]:
    return client.query(
        "SELECT annotator_id, toUnixTimestamp(minute), labels, agreement_rate, gold_seen, "
        f"gold_accuracy, median_duration_ms, alerts_opened FROM {db}.annotator_minute "
        "ORDER BY annotator_id, minute"
    ).result_rows


def test_views_compute_the_activity_per_annotator_and_window(
    db: tuple[Client, ClickHouseWriter, str],
) -> None:
    client, writer, name = db
    events, quality = labels(12)  # 4 minutes; ann-0 and ann-1 get 6 labels each
    quality.alerts = [alert("ann-1", "opened", 1, 5)]
    writer.insert_tables(sink_rows(events, quality, T0))

    rows = minute_rows(client, name)
    by_key = {(r[0], r[1]): r for r in rows}
    m1 = int((T0 + timedelta(minutes=1)).timestamp())
    # Minute 1 holds labels 3, 4, 5: ann-1 has labels 3 and 5 (agrees on 5 only, gold on 3).
    ann1 = by_key[("ann-1", m1)]
    assert ann1[2:6] == (2, 0.5, 1, 0.0)
    assert 1300 <= ann1[6] <= 1500 and ann1[7] == 1
    ann0 = by_key[("ann-0", m1)]  # label 4: agrees, no gold
    assert ann0[2:6] == (1, 1.0, 0, None) and ann0[7] == 0
    assert sum(r[2] for r in rows) == 12

    hour = client.query(
        f"SELECT annotator_id, labels, agreement_rate, gold_seen, gold_accuracy, alerts_opened "
        f"FROM {name}.annotator_hour ORDER BY annotator_id"
    ).result_rows
    # ann-0: labels 0, 2, .., 10, gold on 0 and 6, both right; ann-1: labels 1, 3, .., 11,
    # agreeing on 1, 5, 9, gold on 3 and 9, both wrong.
    assert hour == [("ann-0", 6, 1.0, 2, 1.0, 0), ("ann-1", 6, 0.5, 2, 0.0, 1)]


def test_open_alerts_and_latest_consensus(db: tuple[Client, ClickHouseWriter, str]) -> None:
    client, writer, name = db
    events, quality = labels(3)
    quality.alerts = [alert("ann-0", "opened", 0, 3), alert("ann-1", "opened", 0, 3)]
    writer.insert_tables(sink_rows(events, quality, T0))
    later = QualityOutput(alerts=[alert("ann-0", "resolved", 5, 40)])
    writer.insert_tables(sink_rows([], later, T0))

    open_now = client.query(
        f"SELECT annotator_id, kind, detector, score FROM {name}.open_alerts"
    ).result_rows
    assert open_now == [("ann-1", "annotator_drift", "", 12.0)]

    snapshots = [
        AnnotatorSnapshot(
            T0 + timedelta(minutes=m),
            "p1",
            "ann-0",
            f"labels:{shard}",
            10 * (m + 1),
            0.8,
            0.7,
            0.9,
            0,
            None,
            correct,
            10.0 * (m + 1),
            {},
        )
        for shard, m, correct in ((0, 0, 5.0), (0, 10, 99.0), (1, 5, 30.0))
    ]
    writer.insert_tables(sink_rows([], QualityOutput(annotators=snapshots), T0))
    reliability = client.query(
        f"SELECT accuracy, n_labels, shards FROM {name}.annotator_reliability_hour"
    ).result_rows
    # Each shard's newest snapshot in the hour, pooled: (99 + 30) / (110 + 60).
    assert reliability == [(pytest.approx(129 / 170), 170, 2)]


def test_a_retried_insert_is_not_counted_twice_by_the_views(
    db: tuple[Client, ClickHouseWriter, str],
) -> None:
    client, writer, name = db
    client.command(f"SYSTEM STOP MERGES {name}.annotator_minute_agg")

    def stored_rows() -> int:
        return int(client.command(f"SELECT count() FROM {name}.annotator_minute_agg"))

    events, quality = labels(12)
    tables = sink_rows(events, quality, T0)
    writer.insert_tables(tables)
    before, views_before = stored_rows(), minute_rows(client, name)
    writer.insert_tables(tables)  # a retry after a timeout whose insert had landed
    assert stored_rows() == before
    assert minute_rows(client, name) == views_before

    # The same retry of the counts without the dependent-view setting: the Null table keeps
    # nothing to deduplicate by, and the materialized view counts the block again. This is
    # what the writer's setting (with the token) prevents.
    counts = annotator_minute_rows(tables["label_events"], tables["alerts"])
    client.insert(
        f"{name}.annotator_minute_input",
        counts,
        column_names=ANNOTATOR_MINUTE_INPUT_COLUMNS,
        settings={
            "insert_deduplication_token": dedup_token("annotator_minute_input", counts),
            "deduplicate_blocks_in_dependent_materialized_views": 0,
        },
    )
    assert client.command(f"SELECT count() FROM {name}.label_events") == 12
    assert stored_rows() == 2 * before


def test_labels_a_crash_left_uncounted_are_counted_when_their_shard_is_restored(
    db: tuple[Client, ClickHouseWriter, str],
) -> None:
    """The labels' insert and their per-minute counts' insert are two inserts: a worker (and
    with it the embedded engine) killed in between leaves labels stored and not counted,
    and their redelivery is not written again. Restoring the shard counts them, once."""
    client, writer, name = db
    events, quality = labels(24)
    first = sink_rows(events[:10], QualityOutput(outcomes=quality.outcomes[:10]), T0)
    second = sink_rows(events[10:], QualityOutput(outcomes=quality.outcomes[10:]), T0)
    writer.insert_tables(first)
    # Killed after the labels' insert:
    client.insert(f"{name}.label_events", second["label_events"], column_names=LABEL_EVENT_COLUMNS)
    assert sum(r[2] for r in minute_rows(client, name)) == 10

    # A restore replays the labels stored after the shard's checkpoint; only they can be
    # missing. With the checkpoint past every stored label, nothing is read.
    assert writer.count_missing_minutes("labels", "", 0, []) == 0
    replayed = [(e.ts, s.offset) for e, s in events[6:]]  # checkpoint at offset 5
    assert writer.count_missing_minutes("labels", "", 0, replayed) == 14
    assert writer.count_missing_minutes("labels", "", 0, replayed) == 0  # counted once
    everything = sink_rows(events, quality, T0)
    client.command(f"CREATE DATABASE {name}_whole")
    try:
        migrate(client, f"{name}_whole")
        whole = ClickHouseWriter(client, f"{name}_whole")
        whole.insert_tables(everything)
        assert minute_rows(client, name) == minute_rows(client, f"{name}_whole")
    finally:
        client.command(f"DROP DATABASE IF EXISTS {name}_whole")

    # Later batches move the shard's mark on; nothing is counted twice after them.
    later, later_quality = labels(4, start=24)
    writer.insert_tables(sink_rows(later, later_quality, T0))
    replayed += [(e.ts, s.offset) for e, s in later]
    assert writer.count_missing_minutes("labels", "", 0, replayed) == 0
    assert sum(r[2] for r in minute_rows(client, name)) == 28


def test_migrating_a_store_filled_by_the_old_views_marks_every_label_counted(
    ch_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before migration 11 materialized views counted the labels; after it, restoring a
    shard must not count them again."""
    client = connect(settings=ch_settings)
    name = database_name(ch_settings)
    try:
        with monkeypatch.context() as m:
            m.setattr(migrations, "MIGRATIONS", [x for x in MIGRATIONS if x.version <= 10])
            migrate(client, name)
        events, quality = labels(12)
        rows = sink_rows(events, quality, T0)["label_events"]
        client.insert(f"{name}.label_events", rows, column_names=LABEL_EVENT_COLUMNS)
        before = minute_rows(client, name)
        assert sum(r[2] for r in before) == 12  # counted by the old views

        assert [x.version for x in migrate(client, name)] == [11]
        writer = ClickHouseWriter(client, name)
        replayed = [(e.ts, s.offset) for e, s in events]  # no checkpoint yet
        assert writer.count_missing_minutes("labels", "", 0, replayed) == 0
        assert minute_rows(client, name) == before
    finally:
        client.command(f"DROP DATABASE IF EXISTS {name}")
        client.close()
