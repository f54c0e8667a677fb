"""LabelPipeline: every message of a batch ends up stored or dead-lettered, failures retried."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from labelwatch.schemas import InvalidEvent
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name
from labelwatch.sinks.metrics import Metrics
from labelwatch.sinks.migrations import migrate
from labelwatch.streams.dead_letter import RawMessage
from labelwatch.streams.pipeline import LabelPipeline


class RecordingDeadLetters:
    def __init__(self, fail_times: int = 0) -> None:
        self.sent: list[tuple[RawMessage, InvalidEvent]] = []
        self.fail_times = fail_times

    async def send(self, rejects: Sequence[tuple[RawMessage, InvalidEvent]]) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("broker unavailable")
        self.sent.extend(rejects)


class FlakyOutput:
    """Wraps the real writer; the first ``fail_times`` writes raise like a down server."""

    def __init__(self, inner: ClickHouseWriter, fail_times: int) -> None:
        self.inner = inner
        self.fail_times = fail_times
        self.attempts = 0
        self.run = inner.run
        self.load_checkpoint = inner.load_checkpoint
        self.stored_labels_after = inner.stored_labels_after

    async def write_tables(self, tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]:
        self.attempts += 1
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("ClickHouse is down")
        return await self.inner.write_tables(tables)


def message(offset: int, value: bytes | None) -> RawMessage:
    return RawMessage("labels", 0, offset, b"k", value)


def good(i: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"ev-{i}",
            "ts": "2026-05-01T00:00:00Z",
            "project": "p",
            "item_id": f"it-{i}",
            "annotator_id": "a",
            "label": "x",
        }
    ).encode()


async def no_sleep(_: float) -> None:
    return None


def metric(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_batch_is_split_into_stored_and_dead_lettered(ch_settings: Settings) -> None:
    db = database_name(ch_settings)
    client = connect(settings=ch_settings)
    migrate(client, db)
    writer = ClickHouseWriter(connect(settings=ch_settings), db)
    dead = RecordingDeadLetters(fail_times=1)
    output = FlakyOutput(writer, fail_times=2)
    metrics = Metrics()
    pipeline = LabelPipeline(
        tables=output, dead_letters=dead, metrics=metrics, max_message_bytes=2048, sleep=no_sleep
    )
    batch = [message(i, good(i)) for i in range(5)]
    batch += [message(5, b"{oops"), message(6, None), message(7, b"x" * 4096)]
    asyncio.run(pipeline.process(batch))
    writer.close()

    assert output.attempts == 3  # two failures, then success: nothing dropped
    assert [(m.offset, r.code) for m, r in dead.sent] == [
        (5, "invalid_json"),
        (6, "empty"),
        (7, "oversized"),
    ]
    stored = client.query(f"SELECT source_offset FROM {db}.label_events ORDER BY source_offset")
    assert [r[0] for r in stored.result_rows] == [0, 1, 2, 3, 4]
    client.close()

    assert metric(metrics, "labelwatch_events_consumed_total", {"topic": "labels"}) == 8
    assert metric(metrics, "labelwatch_events_valid_total", {"topic": "labels"}) == 5
    assert (
        metric(
            metrics,
            "labelwatch_events_dead_lettered_total",
            {"topic": "labels", "code": "oversized"},
        )
        == 1
    )
    assert metric(metrics, "labelwatch_sink_rows_written_total", {"table": "label_events"}) == 5
    assert metric(metrics, "labelwatch_errors_total", {"component": "clickhouse"}) == 2
    assert metric(metrics, "labelwatch_errors_total", {"component": "dead_letter"}) == 1
    assert b"labelwatch_sink_batch_seconds_bucket" in metrics.exposition()
