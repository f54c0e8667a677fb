"""The ClickHouse sink against a real embedded engine (chDB): migrations, rows, types, dedup."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name
from labelwatch.sinks.migrations import MIGRATIONS, applied_versions, current_version, migrate


@pytest.fixture
def client(ch_settings: Settings) -> Iterator[Client]:
    c = connect(settings=ch_settings)
    yield c
    c.command(f"DROP DATABASE IF EXISTS {database_name(ch_settings)}")
    c.close()


def event(i: int, **changes: object) -> LabelEvent:
    body: dict[str, object] = {
        "event_id": f"e-{i}",
        "ts": datetime(2026, 5, 1, 12, 0, i % 60, 250_000, tzinfo=UTC),
        "project": "p1",
        "item_id": f"item-{i // 3}",
        "annotator_id": f"ann-{i % 4}",
        "label": "cat",
    }
    body.update(changes)
    return LabelEvent.model_validate(body, strict=False)


def test_migrate_is_versioned_and_idempotent(client: Client, ch_settings: Settings) -> None:
    db = database_name(ch_settings)
    first = migrate(client, db)
    assert [m.version for m in first] == [m.version for m in MIGRATIONS]
    assert migrate(client, db) == []
    assert applied_versions(client, db) == {m.version for m in MIGRATIONS}
    assert max(applied_versions(client, db)) == current_version()
    assert int(client.command(f"EXISTS TABLE {db}.label_events")) == 1


def test_rows_land_with_the_right_types(client: Client, ch_settings: Settings) -> None:
    db = database_name(ch_settings)
    migrate(client, db)
    writer = ClickHouseWriter(connect(settings=ch_settings), db)
    batch = [
        (event(1, gold_label="dog", duration_ms=1500), SourcePosition("labels", 2, 41)),
        (event(2), SourcePosition("labels", 0, 7)),
    ]
    assert asyncio.run(writer.write(batch)) == 2
    writer.close()

    types = dict(
        client.query(
            f"SELECT name, type FROM system.columns WHERE database = '{db}' "
            "AND table = 'label_events'"
        ).result_rows
    )
    assert types["ts"] == "DateTime64(3, 'UTC')"
    assert types["duration_ms"] == "Nullable(UInt32)"
    assert types["gold_label"] == "LowCardinality(Nullable(String))"
    rows = client.query(
        f"SELECT event_id, toUnixTimestamp64Milli(ts), gold_label, duration_ms, source_partition, "
        f"source_offset, schema_version FROM {db}.label_events ORDER BY event_id"
    ).result_rows
    expected_ms = int(datetime(2026, 5, 1, 12, 0, 1, 250_000, tzinfo=UTC).timestamp() * 1000)
    assert rows[0] == ("e-1", expected_ms, "dog", 1500, 2, 41, 2)
    assert rows[1][0] == "e-2" and rows[1][2] is None and rows[1][3] is None


def test_redelivered_events_collapse(client: Client, ch_settings: Settings) -> None:
    db = database_name(ch_settings)
    migrate(client, db)
    writer = ClickHouseWriter(connect(settings=ch_settings), db)
    batch = [(event(i), SourcePosition("labels", 0, i)) for i in range(10)]
    asyncio.run(writer.write(batch))
    asyncio.run(writer.write(batch))  # exact retry: dropped by the dedup token
    asyncio.run(writer.write(batch[3:7]))  # a different batch overlapping: collapsed by key
    writer.close()
    # The exact retry never became rows; the overlapping batch did, until merged away.
    assert client.command(f"SELECT count() FROM {db}.label_events") == 14
    assert client.command(f"SELECT count() FROM {db}.label_events FINAL") == 10
    assert client.command(f"SELECT uniqExact(event_id) FROM {db}.label_events") == 10


def test_version_2_fields_are_stored_and_read_back_for_recovery(
    client: Client, ch_settings: Settings
) -> None:
    db = database_name(ch_settings)
    migrate(client, db)
    writer = ClickHouseWriter(connect(settings=ch_settings), db)
    v2 = event(
        1,
        model_label="dog",
        model_confidence=0.123456789,
        task_type="animals",
        guideline_version="v3",
    )
    v1 = event(2, schema_version=1)
    batch = [(v2, SourcePosition("labels", 0, 5)), (v1, SourcePosition("labels", 0, 6))]
    asyncio.run(writer.write(batch))
    back = asyncio.run(writer.run(lambda: writer.stored_labels_after("labels", "", 0, 4)))
    writer.close()
    # What a restarted worker replays into its models is the event that was sent.
    assert [e for e, _ in back] == [v2, v1]
    assert [p.offset for _, p in back] == [5, 6]
    assert client.query(
        f"SELECT model_label, model_confidence, task_type, guideline_version, schema_version "
        f"FROM {db}.label_events ORDER BY event_id"
    ).result_rows == [
        ("dog", 0.123456789, "animals", "v3", 2),
        (None, None, None, None, 1),
    ]


def test_open_alerts_say_what_each_alert_is_about(client: Client, ch_settings: Settings) -> None:
    from labelwatch.schemas.alerts import Alert, alert_id
    from labelwatch.sinks.clickhouse import alert_row

    db = database_name(ch_settings)
    migrate(client, db)
    now = datetime(2026, 5, 1, tzinfo=UTC)
    drift = Alert(
        alert_id=alert_id("model_drift", "p1", "model", "labels:0", 7),
        kind="model_drift",
        state="opened",
        severity="warning",
        ts=now,
        project="p1",
        subject="model",
        score=26.0,
        threshold=25.0,
        reason="the model's pre-labels agree with the crowd 51% of the time lately",
        shard="labels:0",
        offset=7,
        opened_offset=7,
    )
    writer = ClickHouseWriter(connect(settings=ch_settings), db)
    asyncio.run(writer.write_tables({"alerts": [alert_row(drift, now)]}))
    writer.close()
    rows = client.query(f"SELECT kind, annotator_id, subject FROM {db}.open_alerts").result_rows
    assert rows == [("model_drift", "", "model")]
