"""A worker that restarts recovers its models from ClickHouse and ends where an
uninterrupted worker ends: checkpoint + stored labels + redelivered offsets skipped."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from labelwatch.models.tracker import QualityTracker
from labelwatch.schemas import InvalidEvent
from labelwatch.settings import Settings
from labelwatch.simulator import LabelingSimulator, SimulationConfig, encode_event
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name
from labelwatch.sinks.metrics import Metrics
from labelwatch.sinks.migrations import migrate
from labelwatch.streams.dead_letter import RawMessage
from labelwatch.streams.pipeline import LabelPipeline
from tests.resend import with_resends


class NoDeadLetters:
    async def send(self, rejects: Sequence[tuple[RawMessage, InvalidEvent]]) -> None:
        raise AssertionError(f"unexpected rejects: {rejects}")


def messages(n: int, run_id: str = "sim") -> list[RawMessage]:
    sim = LabelingSimulator(SimulationConfig(seed=21, events_per_second=20.0, run_id=run_id))
    offsets = [0, 0]
    out = []
    for label in islice(sim.labels(datetime(2026, 4, 1, tzinfo=UTC)), n):
        p = sum(str(label.event["item_id"]).encode()) % 2
        out.append(RawMessage("labels", p, offsets[p], None, encode_event(label.event)))
        offsets[p] += 1
    return out


def databases(ch_settings: Settings, n: int) -> list[Settings]:
    """``ch_settings`` and ``n - 1`` more databases in the same store, all migrated."""
    out = [ch_settings] + [
        ch_settings.model_copy(update={"clickhouse_database": f"t_{secrets.token_hex(6)}"})
        for _ in range(n - 1)
    ]
    for settings in out:
        client = connect(settings=settings)
        migrate(client, database_name(settings))
        client.close()
    return out


def pipeline(settings: Settings, topic_id: str = "t1") -> tuple[LabelPipeline, ClickHouseWriter]:
    writer = ClickHouseWriter(connect(settings=settings), database_name(settings))
    tracker = QualityTracker(snapshot_seconds=10.0, checkpoint_every_labels=150)
    return (
        LabelPipeline(
            tables=writer,
            tracker=tracker,
            dead_letters=NoDeadLetters(),
            metrics=Metrics(),
            max_message_bytes=4096,
            topic_ids={"labels": topic_id},
        ),
        writer,
    )


def feed(p: LabelPipeline, batch: list[RawMessage], size: int = 80) -> None:
    async def go() -> None:
        for start in range(0, len(batch), size):
            await p.process(batch[start : start + size])

    asyncio.run(go())


def tables(settings: Settings) -> dict[str, Any]:
    db = database_name(settings)
    client = connect(settings=settings)
    try:
        return {
            "items": client.query(
                f"SELECT project, item_id, consensus_label, round(confidence, 5), n_votes "
                f"FROM {db}.item_consensus FINAL ORDER BY project, item_id"
            ).result_rows,
            "reliability": client.query(
                f"SELECT ts, project, annotator_id, shard, n_labels, round(accuracy, 5) "
                f"FROM {db}.annotator_reliability FINAL ORDER BY ts, project, annotator_id, shard"
            ).result_rows,
            "labels": client.query(
                f"SELECT count(), uniqExact(event_id) FROM {db}.label_events FINAL"
            ).first_row,
            # Rows before merging: a redelivered label must not be written again.
            "label_rows": client.command(f"SELECT count() FROM {db}.label_events"),
            "outcomes": client.query(
                f"SELECT event_id, consensus_label, agrees, gold_correct "
                f"FROM {db}.label_events FINAL ORDER BY event_id"
            ).result_rows,
            "activity": client.query(
                f"SELECT * FROM {db}.annotator_minute ORDER BY project, annotator_id, minute"
            ).result_rows,
            "alerts": client.query(
                f"SELECT alert_id, state, kind, offset FROM {db}.alerts FINAL "
                "ORDER BY alert_id, state"
            ).result_rows,
        }
    finally:
        client.close()


def test_restart_recovers_models_exactly(ch_settings: Settings) -> None:
    data = messages(1200)
    control, restarted = databases(ch_settings, 2)

    p, writer = pipeline(control)
    feed(p, data)
    writer.close()

    p, writer = pipeline(restarted)
    feed(p, data[:800])
    writer.close()  # the worker dies; its models are gone
    p, writer = pipeline(restarted)
    # Kafka redelivers from the last committed offset, here somewhat before the crash point.
    feed(p, data[700:])
    writer.close()

    expected, got = tables(control), tables(restarted)
    assert got["labels"] == expected["labels"] == (1200, 1200)
    assert got["label_rows"] == 1200
    assert got["outcomes"] == expected["outcomes"]
    assert len(expected["activity"]) > 20 and got["activity"] == expected["activity"]
    assert got["alerts"] == expected["alerts"]
    assert len(expected["items"]) > 300 and got["items"] == expected["items"]
    assert len(expected["reliability"]) > 50 and got["reliability"] == expected["reliability"]


def test_a_recreated_topic_does_not_inherit_the_old_topics_state(ch_settings: Settings) -> None:
    databases(ch_settings, 1)
    p, writer = pipeline(ch_settings, topic_id="old")
    feed(p, messages(400, run_id="old"))
    writer.close()
    # The topic is deleted and created again: offsets start from 0 with new events.
    p, writer = pipeline(ch_settings, topic_id="new")
    feed(p, messages(400, run_id="new"))
    writer.close()
    db = database_name(ch_settings)
    client = connect(settings=ch_settings)
    try:
        votes = client.query(
            f"SELECT position(item_id, 'new') > 0, sum(n_votes) FROM {db}.item_consensus FINAL "
            "GROUP BY 1 ORDER BY 1"
        ).result_rows
    finally:
        client.close()
    # Every new label was learned (none skipped as "already applied" by old offsets), and
    # the old topic's items were not replayed into the new shards.
    assert votes == [(0, 400), (1, 400)]


def resent(batch: list[RawMessage], every: int, lag: int) -> list[RawMessage]:
    """``batch`` with every ``every``-th message sent again ``lag`` messages later, at a new
    offset of its partition (offsets renumbered)."""
    offsets = [0, 0]
    out = []
    for m in with_resends(batch, every, lag):
        out.append(RawMessage(m.topic, m.partition, offsets[m.partition], m.key, m.value))
        offsets[m.partition] += 1
    return out


def test_events_sent_again_are_stored_and_counted_once_across_a_restart(
    ch_settings: Settings,
) -> None:
    clean = messages(1200)
    noisy = resent(clean, every=6, lag=90)
    assert len(noisy) - len(clean) > 150
    runs = dict(zip(("clean", "noisy", "restarted"), databases(ch_settings, 3), strict=True))
    for name, data in (("clean", clean), ("noisy", noisy)):
        p, writer = pipeline(runs[name])
        feed(p, data)
        writer.close()
    p, writer = pipeline(runs["restarted"])
    feed(p, noisy[:900])
    writer.close()
    p, writer = pipeline(runs["restarted"])
    feed(p, noisy[850:])
    writer.close()

    expected, noisy_run, got = (tables(runs[n]) for n in ("clean", "noisy", "restarted"))
    for result in (noisy_run, got):
        assert result["labels"] == (1200, 1200)
        assert result["label_rows"] == 1200  # no duplicate was written, even unmerged
        # Per-minute activity (a materialized view over label_events) counts each label once.
        assert result["activity"] == expected["activity"]
        assert result["outcomes"] == expected["outcomes"]
        assert result["items"] == expected["items"]
        assert result["reliability"] == expected["reliability"]
    # Alert ids name offsets, which the copies shift; the restarted run equals its control.
    assert got["alerts"] == noisy_run["alerts"]


def test_a_partition_that_comes_back_after_a_rebalance_is_restored_from_the_store(
    ch_settings: Settings,
) -> None:
    """Worker A loses partition 0 to worker B, which advances it, then gets it back: A must
    not resume from the models it had (that would skip what B learned)."""
    data = messages(1500)
    control, shared = databases(ch_settings, 2)
    p, writer = pipeline(control)
    feed(p, data)
    writer.close()

    a, writer_a = pipeline(shared)
    b, writer_b = pipeline(shared)
    feed(a, data[:500])
    a.partitions_revoked([("labels", 0)])
    # B owns partition 0 now; A keeps partition 1.
    feed(b, [m for m in data[500:1000] if m.partition == 0])
    feed(a, [m for m in data[500:1000] if m.partition == 1])
    # Partition 0 comes back to A (B is gone); Kafka resumes at B's last commit.
    b.partitions_revoked([("labels", 0)])
    feed(a, data[1000:])
    writer_a.close()
    writer_b.close()

    expected, got = tables(control), tables(shared)
    assert got["labels"] == expected["labels"] == (1500, 1500)
    assert got["outcomes"] == expected["outcomes"]
    assert got["items"] == expected["items"]
    assert got["reliability"] == expected["reliability"]
    assert got["alerts"] == expected["alerts"]


def enveloped(data: list[RawMessage], size: int) -> list[RawMessage]:
    """The same events as batched envelopes of up to ``size`` events per partition, in order."""
    pending: dict[int, list[bytes]] = {0: [], 1: []}
    offsets = [0, 0]
    out = []

    def flush(p: int) -> None:
        body = b'{"events": [' + b", ".join(pending[p]) + b"]}"
        out.append(RawMessage("labels", p, offsets[p], None, body))
        offsets[p] += 1
        pending[p] = []

    for message in data:
        assert message.value is not None
        pending[message.partition].append(message.value)
        if len(pending[message.partition]) == size:
            flush(message.partition)
    for p in (0, 1):
        if pending[p]:
            flush(p)
    return out


def test_batched_envelopes_end_like_single_events_across_a_restart(
    ch_settings: Settings,
) -> None:
    data = messages(1200)
    singles, batched = databases(ch_settings, 2)
    p, writer = pipeline(singles)
    feed(p, data)
    writer.close()

    envelopes = enveloped(data, 7)  # not a divisor of the checkpoint interval (150)
    p, writer = pipeline(batched)
    feed(p, envelopes[:110], size=9)
    writer.close()  # the worker dies
    p, writer = pipeline(batched)
    feed(p, envelopes[95:], size=9)  # redelivered from before the crash point
    writer.close()

    expected, got = tables(singles), tables(batched)
    assert got["labels"] == expected["labels"] == (1200, 1200)
    assert got["label_rows"] == 1200
    for table in ("outcomes", "items", "reliability", "activity"):
        assert got[table] == expected[table], table
    # Alerts name the offset they were raised at, which differs: compare what they say.
    assert [a[1:3] for a in got["alerts"]] == [a[1:3] for a in expected["alerts"]]
    client = connect(settings=batched)
    positions = client.query(
        f"SELECT source_partition, source_offset, source_index, event_id "
        f"FROM {database_name(batched)}.label_events FINAL "
        "ORDER BY source_partition, source_offset, source_index"
    ).result_rows
    client.close()
    want = [
        (m.partition, m.offset, i, e["event_id"])
        for m in envelopes
        for i, e in enumerate(json.loads(m.value or b"")["events"])
    ]
    assert positions == sorted(want)
