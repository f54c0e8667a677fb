"""ClickHouse access: one code path for the embedded chDB engine and a ClickHouse server.

The target is a DSN (see :class:`labelwatch.settings.Settings`): ``chdb:///abs/path`` opens the
embedded engine in this process through clickhouse-connect's chDB backend, ``http(s)://...``
connects to a server. Only one process can open a chDB path at a time.

clickhouse-connect's client is synchronous; :class:`LabelEventWriter` is the async face the
worker uses, running every call on one dedicated thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from labelwatch.schemas import LabelEvent
from labelwatch.settings import Settings

LABEL_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "project",
    "item_id",
    "annotator_id",
    "label",
    "gold_label",
    "duration_ms",
    "schema_version",
    "source_topic",
    "source_partition",
    "source_offset",
    "ingested_at",
)


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a message was read: its topic, partition and offset."""

    topic: str
    partition: int
    offset: int


def database_name(settings: Settings) -> str:
    """The database to use: a server DSN's path if it has one, else ``clickhouse_database``."""
    parts = urlsplit(settings.resolved_dsn())
    if parts.scheme in ("http", "https"):
        path_db = unquote(parts.path.strip("/"))
        if path_db:
            return path_db
    return settings.clickhouse_database


def connect(*, settings: Settings) -> Client:
    """Open a clickhouse-connect client for the configured DSN (creating a chDB directory)."""
    dsn = settings.resolved_dsn()
    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        Path(parts.path).parent.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=dsn)
    # The database may not exist yet (migrations create it): connect to the default one.
    return clickhouse_connect.get_client(dsn=dsn, database="default")


def label_event_row(
    event: LabelEvent, source: SourcePosition, ingested_at: datetime
) -> tuple[Any, ...]:
    """One ``label_events`` row, in :data:`LABEL_EVENT_COLUMNS` order."""
    return (
        event.event_id,
        event.ts,
        event.project,
        event.item_id,
        event.annotator_id,
        event.label,
        event.gold_label,
        event.duration_ms,
        event.schema_version,
        source.topic,
        source.partition,
        source.offset,
        ingested_at,
    )


def dedup_token(event_ids: Sequence[str]) -> str:
    """A deterministic insert-deduplication token for a batch: a retried batch is dropped."""
    digest = hashlib.blake2b(digest_size=16)
    for event_id in event_ids:
        digest.update(event_id.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class LabelEventWriter:
    """Writes validated label events to ``label_events`` without blocking the event loop.

    All calls run on a single dedicated thread: the chDB engine and the HTTP client are used
    from one thread only, and inserts keep their order.
    """

    def __init__(self, client: Client, database: str) -> None:
        self._client = client
        self._table = f"{database}.label_events"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    def insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows synchronously, with a deduplication token derived from their ids."""
        token = dedup_token([row[0] for row in rows])
        self._client.insert(
            self._table,
            rows,
            column_names=LABEL_EVENT_COLUMNS,
            settings={"insert_deduplication_token": token},
        )

    async def write(self, events: Sequence[tuple[LabelEvent, SourcePosition]]) -> int:
        """Insert one batch on the writer thread; returns the number of rows written."""
        if not events:
            return 0
        now = datetime.now(UTC)
        rows = [label_event_row(event, source, now) for event, source in events]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.insert_rows, rows)
        return len(rows)

    def close(self) -> None:
        """Wait for pending inserts, then release the thread and the connection."""
        self._executor.shutdown(wait=True)
        self._client.close()
