"""Privacy signals into ClickHouse (chDB): pseudonymized ids, allowlisted attributes, revoked
items found from either side, shard recovery, retention TTLs and the annotator purge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from labelwatch.cli import main
from labelwatch.models.privacy import PrivacyConfig
from labelwatch.models.privacy_tracker import PrivacyTracker
from labelwatch.models.revocations import RevocationRegistry
from labelwatch.schemas import InvalidEvent
from labelwatch.schemas.alerts import Alert
from labelwatch.schemas.pseudonym import Pseudonymizer
from labelwatch.settings import Retention, Settings
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name
from labelwatch.sinks.metrics import Metrics
from labelwatch.sinks.migrations import RETENTION_TABLES, migrate, ttl_clause
from labelwatch.sinks.purge import PURGED_TABLES, purge_annotator
from labelwatch.streams.dead_letter import RawMessage
from labelwatch.streams.pipeline import LabelPipeline, Revocations
from labelwatch.streams.privacy_pipeline import PrivacyPipeline

T0 = datetime(2026, 5, 1, tzinfo=UTC)
KEY = b"0123456789abcdef-test-key"


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[RawMessage, InvalidEvent]] = []

    async def send(self, rejects: Sequence[tuple[RawMessage, InvalidEvent]]) -> None:
        self.sent.extend(rejects)


class Published:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def publish(self, alerts: Sequence[Alert]) -> None:
        self.alerts.extend(alerts)


def signal(offset: int, seconds: float, kind: str, **extra: Any) -> RawMessage:
    body = {
        "event_id": f"sig-{offset}",
        "ts": (T0 + timedelta(seconds=seconds)).isoformat(),
        "project": "p",
        "source": "scanner",
        "kind": kind,
        "severity": "low",
        **extra,
    }
    return RawMessage("privacy", 0, offset, b"p", json.dumps(body).encode())


def label(offset: int, seconds: float, item: str, annotator: str) -> RawMessage:
    body = {
        "event_id": f"lab-{offset}",
        "ts": (T0 + timedelta(seconds=seconds)).isoformat(),
        "project": "p",
        "item_id": item,
        "annotator_id": annotator,
        "label": "x",
    }
    return RawMessage("labels", 0, offset, item.encode(), json.dumps(body).encode())


class Worker:
    """A label and a privacy pipeline sharing one writer and one revocation registry, as the
    Faust app wires them."""

    def __init__(self, settings: Settings, *, checkpoint_every: int = 2000) -> None:
        db = database_name(settings)
        admin = connect(settings=settings)
        migrate(admin, db, settings.retention())
        admin.close()
        self.writer = ClickHouseWriter(connect(settings=settings), db)
        self.published = Published()
        self.dead = DeadLetters()
        self.metrics = Metrics()
        writer = self.writer

        async def reload() -> list[Any]:
            return await writer.run(writer.revocations)

        self.revocations = Revocations(RevocationRegistry(), reload)
        pseudonymize = Pseudonymizer(KEY)
        self.labels = LabelPipeline(
            tables=writer,
            dead_letters=self.dead,
            metrics=self.metrics,
            alerts=self.published,
            max_message_bytes=4096,
            pseudonymize=pseudonymize,
            revocations=self.revocations,
        )
        self.privacy = PrivacyPipeline(
            tables=writer,
            dead_letters=self.dead,
            metrics=self.metrics,
            tracker=PrivacyTracker(PrivacyConfig(), checkpoint_every=checkpoint_every),
            revocations=self.revocations,
            alerts=self.published,
            max_message_bytes=4096,
            attribute_allowlist=frozenset({"pii_type"}),
            pseudonymize=pseudonymize,
        )

    def close(self) -> None:
        self.writer.close()


def every_stored_value(settings: Settings) -> str:
    """Every row of every table of the database, as one text."""
    client = connect(settings=settings)
    db = database_name(settings)
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        parameters={"db": db},
    ).result_rows
    text = []
    for (table,) in tables:
        columns = client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String} AND type NOT LIKE 'AggregateFunction%'",
            parameters={"db": db, "t": table},
        ).result_rows
        names = ", ".join(f"`{c}`" for (c,) in columns)
        rows = client.query(f"SELECT {names} FROM {db}.{table}").result_rows
        text.append(repr(rows))
    client.close()
    return "\n".join(text)


def test_raw_annotator_ids_and_unlisted_attributes_never_reach_clickhouse(
    ch_settings: Settings,
) -> None:
    worker = Worker(ch_settings)
    secret_value = "555-0100-secret-phone"

    async def run() -> None:
        await worker.labels.process(
            [label(i, i, f"it-{i % 5}", f"raw-ann-{i % 3}") for i in range(30)]
        )
        await worker.privacy.process(
            [
                signal(
                    0,
                    10,
                    "pii_exposed_to_annotator",
                    severity="critical",
                    annotator_id="raw-ann-1",
                    item_id="it-1",
                    attributes={"pii_type": "phone", "matched_text": secret_value},
                ),
                signal(1, 20, "access_violation", annotator_id="raw-ann-2"),
            ]
        )

    asyncio.run(run())
    worker.close()
    stored = every_stored_value(ch_settings)
    assert "raw-ann-" not in stored
    assert secret_value not in stored and "matched_text" not in stored
    alias = Pseudonymizer(KEY)("raw-ann-1")
    assert alias in stored
    client = connect(settings=ch_settings)
    db = database_name(ch_settings)
    row = client.query(
        f"SELECT annotator_id, attributes, attributes_dropped FROM {db}.privacy_signals "
        "WHERE event_id = 'sig-0'"
    ).first_row
    assert row == (alias, '{"pii_type":"phone"}', 1)
    kinds = {a.kind: a for a in worker.published.alerts}
    assert kinds["privacy_exposure"].annotator_id == alias
    assert kinds["access_violation"].subject == Pseudonymizer(KEY)("raw-ann-2")
    assert all("raw-ann-" not in a.model_dump_json() for a in worker.published.alerts)
    client.close()


def test_a_label_on_a_revoked_item_is_alerted_whichever_arrives_first(
    ch_settings: Settings,
) -> None:
    worker = Worker(ch_settings)

    async def run() -> None:
        # Labels of it-a at 100 s and 300 s arrive before its revocation (at 200 s of event
        # time): only the later one is after the revocation.
        await worker.labels.process([label(0, 100, "it-a", "u1"), label(1, 300, "it-a", "u2")])
        await worker.privacy.process([signal(0, 200, "consent_revoked", item_id="it-a")])
        # it-b is revoked first; its later label comes afterwards.
        await worker.privacy.process([signal(1, 250, "deletion_requested", item_id="it-b")])
        await worker.labels.process([label(2, 240, "it-b", "u3"), label(3, 260, "it-b", "u1")])

    asyncio.run(run())
    revoked = [a for a in worker.published.alerts if a.kind == "revoked_item_labeled"]
    assert sorted((a.item_id, a.evidence["label_event_id"]) for a in revoked) == [
        ("it-a", "lab-1"),
        ("it-b", "lab-3"),
    ]
    assert all(a.severity == "critical" and a.state == "opened" for a in revoked)
    client = connect(settings=ch_settings)
    db = database_name(ch_settings)
    stored = client.query(
        f"SELECT item_id, subject FROM {db}.alerts FINAL "
        "WHERE kind = 'revoked_item_labeled' ORDER BY item_id"
    ).result_rows
    assert stored == [("it-a", "it-a"), ("it-b", "it-b")]
    items = client.query(f"SELECT item_id, kind FROM {db}.revoked_items ORDER BY item_id")
    assert items.result_rows == [("it-a", "consent_revoked"), ("it-b", "deletion_requested")]
    client.close()
    worker.close()

    # A new worker (a restart) knows the stored revocations before its first label.
    again = Worker(ch_settings)
    asyncio.run(again.labels.process([label(4, 400, "it-a", "u3")]))
    assert [a.evidence["label_event_id"] for a in again.published.alerts] == ["lab-4"]
    again.close()


def test_privacy_shard_resumes_from_its_checkpoint_and_skips_redelivery(
    ch_settings: Settings,
) -> None:
    burst = [signal(i, i * 30.0, "pii_detected") for i in range(60)]  # 2 per 60 s, 30 min
    first = Worker(ch_settings, checkpoint_every=25)
    asyncio.run(first.privacy.process(burst[:40]))
    first.close()
    # A second worker takes the partition from the checkpoint the first wrote at the end of
    # its batch (offset 39); the redelivered 30..39 are neither counted nor stored again.
    second = Worker(ch_settings, checkpoint_every=25)
    asyncio.run(second.privacy.process(burst[30:]))
    second.close()
    client = connect(settings=ch_settings)
    db = database_name(ch_settings)
    count = client.query(f"SELECT count(), uniqExact(event_id) FROM {db}.privacy_signals")
    assert count.first_row == (60, 60)
    checkpoints = client.query(
        f"SELECT last_offset, n_labels FROM {db}.model_checkpoints "
        "WHERE source_topic = 'privacy' ORDER BY last_offset"
    ).result_rows
    assert checkpoints == [(39, 40)]
    client.close()
    assert (
        second.metrics.registry.get_sample_value(
            "labelwatch_privacy_signals_total", {"kind": "pii_detected", "severity": "low"}
        )
        == 20
    )


def test_retention_ttls_follow_the_settings(ch_settings: Settings) -> None:
    client = connect(settings=ch_settings)
    db = database_name(ch_settings)
    migrate(client, db, Retention(raw_days=30, aggregate_days=365))

    def ddl(table: str) -> str:
        row = client.query(
            "SELECT create_table_query FROM system.tables WHERE database = {db:String} "
            "AND name = {t:String}",
            parameters={"db": db, "t": table},
        ).first_row
        return str(row[0])

    assert "TTL toDateTime(ingested_at) + toIntervalDay(30)" in ddl("label_events")
    assert "TTL toDateTime(ingested_at) + toIntervalDay(30)" in ddl("privacy_signals")
    assert "TTL minute + toIntervalDay(365)" in ddl("annotator_minute_agg")
    for table in RETENTION_TABLES:
        assert f"TTL {ttl_clause(table, Retention(30, 365))}" in ddl(table)
    assert "TTL" not in ddl("revoked_items")
    migrate(client, db, Retention(raw_days=7, aggregate_days=90))
    assert "TTL toDateTime(ingested_at) + toIntervalDay(7)" in ddl("label_events")
    assert "TTL toDateTime(ts) + toIntervalDay(90)" in ddl("alerts")
    client.close()


def test_purge_erases_one_annotator_and_nobody_else(ch_settings: Settings) -> None:
    worker = Worker(ch_settings, checkpoint_every=1)
    gone, kept = Pseudonymizer(KEY)("leaver"), Pseudonymizer(KEY)("stayer")

    async def run() -> None:
        await worker.labels.process(
            [
                label(i, i * 10.0, f"it-{i // 3}", ("leaver", "stayer", "third")[i % 3])
                for i in range(60)
            ]
        )
        await worker.privacy.process(
            [
                signal(0, 5, "access_violation", annotator_id="leaver"),
                signal(1, 6, "access_violation", annotator_id="stayer"),
            ]
        )

    asyncio.run(run())
    worker.close()
    client = connect(settings=ch_settings)
    db = database_name(ch_settings)
    dry = purge_annotator(client, db, gone, delete=False)
    assert dry.rows["label_events"] == 20 and dry.rows["privacy_signals"] == 1
    assert dry.rows["alerts"] >= 1 and not dry.deleted
    assert purge_annotator(client, db, gone, delete=False).rows == dry.rows  # nothing deleted
    done = purge_annotator(client, db, gone)
    assert done.rows == dry.rows and done.deleted
    after = purge_annotator(client, db, gone, delete=False)
    assert after.total == 0, after.rows
    assert gone not in every_stored_value(ch_settings)
    survivors = purge_annotator(client, db, kept, delete=False)
    assert survivors.rows["label_events"] == 20 and survivors.rows["privacy_signals"] == 1
    assert set(PURGED_TABLES) >= {"label_events", "privacy_signals", "alerts"}
    client.close()


def test_cli_purge_turns_the_raw_id_into_the_pseudonym_and_needs_yes(
    ch_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = Worker(ch_settings)
    asyncio.run(worker.labels.process([label(i, i, f"it-{i}", "leaver") for i in range(4)]))
    worker.close()
    monkeypatch.setenv("LABELWATCH_CLICKHOUSE_DSN", ch_settings.resolved_dsn())
    monkeypatch.setenv("LABELWATCH_CLICKHOUSE_DATABASE", database_name(ch_settings))
    monkeypatch.setenv("LABELWATCH_PSEUDONYM_KEY", KEY.decode())
    alias = Pseudonymizer(KEY)("leaver")

    assert main(["db", "purge", "--annotator", "leaver"]) == 0
    dry = capsys.readouterr().out
    assert f"5 rows found (dry run: add --yes to delete) for annotator {alias}" in dry
    assert "leaver" not in dry  # only the stored id is shown
    assert "label_events                     4" in dry  # and its per-minute aggregate row
    assert main(["db", "purge", "--annotator", "leaver", "--yes"]) == 0
    assert f"5 rows deleted for annotator {alias}" in capsys.readouterr().out
    assert main(["db", "purge", "--annotator", alias, "--stored-id"]) == 0
    assert "0 rows found" in capsys.readouterr().out
    assert main(["pseudonym", "leaver"]) == 0
    assert capsys.readouterr().out.strip() == f"leaver\t{alias}"
