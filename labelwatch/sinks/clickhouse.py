"""ClickHouse access: one code path for the embedded chDB engine and a ClickHouse server.

The target is a DSN (see :class:`labelwatch.settings.Settings`): ``chdb:///abs/path`` opens the
embedded engine in this process through clickhouse-connect's chDB backend, ``http(s)://...``
connects to a server. Only one process can open a chDB path at a time.

clickhouse-connect's client is synchronous; :class:`ClickHouseWriter` is the async face the
worker uses, running every call on one dedicated thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from pydantic import TypeAdapter
from pydantic_core import to_json

from labelwatch.models.agreement import Coincidence
from labelwatch.models.revocations import Revocation
from labelwatch.models.tracker import (
    AgreementSnapshot,
    AnnotatorSnapshot,
    Checkpoint,
    FindingSnapshot,
    ItemSnapshot,
    LabelOutcome,
    QualityOutput,
    ReviewItem,
)
from labelwatch.schemas import LabelEvent, PrivacySignal, SourcePosition
from labelwatch.schemas.alerts import Alert, EvidenceValue
from labelwatch.settings import Settings

T = TypeVar("T")

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
    "source_topic_id",
    "source_partition",
    "source_offset",
    "source_index",
    "ingested_at",
    "consensus_label",
    "consensus_confidence",
    "agrees",
    "gold_correct",
    "model_label",
    "model_confidence",
    "task_type",
    "guideline_version",
)
ITEM_CONSENSUS_COLUMNS: tuple[str, ...] = (
    "project",
    "item_id",
    "consensus_label",
    "confidence",
    "n_votes",
    "gold_label",
    "closed",
    "updated_at",
    "shard",
    "version",
)
ANNOTATOR_RELIABILITY_COLUMNS: tuple[str, ...] = (
    "ts",
    "project",
    "annotator_id",
    "shard",
    "n_labels",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "gold_seen",
    "gold_accuracy",
    "correct",
    "total",
    "per_class_accuracy",
)
# (alert_id, state) first: together they identify a row.
ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id",
    "state",
    "kind",
    "severity",
    "ts",
    "project",
    "annotator_id",
    "score",
    "threshold",
    "reason",
    "evidence",
    "detector",
    "shard",
    "offset",
    "opened_offset",
    "schema_version",
    "ingested_at",
    "item_id",
    "subject",
)
PRIVACY_SIGNAL_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "project",
    "source",
    "kind",
    "severity",
    "annotator_id",
    "item_id",
    "count",
    "attributes",
    "attributes_dropped",
    "late",
    "schema_version",
    "source_topic",
    "source_topic_id",
    "source_partition",
    "source_offset",
    "source_index",
    "ingested_at",
)
REVOKED_ITEM_COLUMNS: tuple[str, ...] = (
    "project",
    "item_id",
    "revoked_at",
    "kind",
    "event_id",
    "ingested_at",
)
REVIEW_QUEUE_COLUMNS: tuple[str, ...] = (
    "review_id",
    "project",
    "item_id",
    "kind",
    "priority",
    "rank",
    "stratum",
    "inclusion_probability",
    "reason",
    "offered_at",
    "window_start",
    "shard",
    "ingested_at",
)
AGREEMENT_COLUMNS: tuple[str, ...] = (
    "ts",
    "project",
    "shard",
    "window_start",
    "n_units",
    "n_values",
    "alpha",
    "coincidence",
)
CONFUSION_FINDING_COLUMNS: tuple[str, ...] = (
    "finding_id",
    "ts",
    "project",
    "kind",
    "guideline_version",
    "baseline_version",
    "reference",
    "given",
    "old_rate",
    "new_rate",
    "ratio",
    "support_before",
    "support_after",
    "annotators",
    "sentence",
    "shard",
    "offset",
    "ingested_at",
)
CHECKPOINT_COLUMNS: tuple[str, ...] = (
    "source_topic",
    "source_topic_id",
    "source_partition",
    "last_offset",
    "n_labels",
    "state",
    "created_at",
)
ANNOTATOR_MINUTE_INPUT_COLUMNS: tuple[str, ...] = (
    "project",
    "annotator_id",
    "minute",
    "shard",
    "next_offset",
    "labels",
    "with_consensus",
    "agreed",
    "gold_seen",
    "gold_right",
    "durations",
    "alerts_opened",
)
# Insert order matters: a checkpoint is only useful once the labels it covers, the alerts
# they raised and their per-minute counts are stored (recovery replays only what comes after
# the checkpoint); the per-minute counts come after the labels they count (see
# ClickHouseWriter.count_missing_minutes).
TABLES: dict[str, tuple[str, ...]] = {
    "label_events": LABEL_EVENT_COLUMNS,
    "privacy_signals": PRIVACY_SIGNAL_COLUMNS,
    "revoked_items": REVOKED_ITEM_COLUMNS,
    "item_consensus": ITEM_CONSENSUS_COLUMNS,
    "annotator_reliability": ANNOTATOR_RELIABILITY_COLUMNS,
    "alerts": ALERT_COLUMNS,
    "review_queue": REVIEW_QUEUE_COLUMNS,
    "agreement": AGREEMENT_COLUMNS,
    "confusion_findings": CONFUSION_FINDING_COLUMNS,
    "annotator_minute_input": ANNOTATOR_MINUTE_INPUT_COLUMNS,
    "model_checkpoints": CHECKPOINT_COLUMNS,
}


def minute_shard(topic: str, topic_id: str, partition: int) -> str:
    """A label shard's name in ``annotator_minute_agg.next_offsets``."""
    return f"{topic}/{topic_id}:{partition}"


_L = {name: i for i, name in enumerate(LABEL_EVENT_COLUMNS)}
_A = {name: i for i, name in enumerate(ALERT_COLUMNS)}


def _minute(ts: datetime) -> datetime:
    return _utc(ts).astimezone(UTC).replace(second=0, microsecond=0)


def annotator_minute_rows(
    label_rows: Sequence[Sequence[Any]], alert_rows: Sequence[Sequence[Any]]
) -> list[tuple[Any, ...]]:
    """``annotator_minute_input`` rows counting a batch's ``label_events`` and ``alerts`` rows:
    one per project, annotator, minute and label shard, with the shard's next offset after
    the batch's labels; opened alerts go on rows of shard ''."""
    groups: dict[tuple[str, str, datetime, str], list[Any]] = {}
    next_offset: dict[str, int] = {}

    def group(project: str, annotator: str, ts: datetime, shard: str) -> list[Any]:
        key = (project, annotator, _minute(ts), shard)
        if key not in groups:
            groups[key] = [0, 0, 0, 0, 0, [], []]
        return groups[key]

    for row in label_rows:
        shard = minute_shard(
            row[_L["source_topic"]], row[_L["source_topic_id"]], row[_L["source_partition"]]
        )
        next_offset[shard] = max(next_offset.get(shard, 0), row[_L["source_offset"]] + 1)
        g = group(row[_L["project"]], row[_L["annotator_id"]], row[_L["ts"]], shard)
        agrees, gold = row[_L["agrees"]], row[_L["gold_correct"]]
        g[0] += 1
        g[1] += agrees is not None
        g[2] += agrees == 1
        g[3] += gold is not None
        g[4] += gold == 1
        if row[_L["duration_ms"]] is not None:
            g[5].append(row[_L["duration_ms"]])
    for row in alert_rows:
        if row[_A["state"]] == "opened":
            g = group(row[_A["project"]], row[_A["annotator_id"]], row[_A["ts"]], "")
            g[6].append(row[_A["alert_id"]])
    return [
        (project, annotator, minute, shard, next_offset.get(shard, 0), *counts)
        for (project, annotator, minute, shard), counts in groups.items()
    ]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_STORED_LABEL_COLUMNS = (
    "event_id, ts, project, item_id, annotator_id, label, gold_label, duration_ms, "
    "schema_version, model_label, model_confidence, task_type, guideline_version"
)
_N_STORED_LABEL_COLUMNS = len(_STORED_LABEL_COLUMNS.split(","))


def _stored_label(row: Sequence[Any]) -> LabelEvent:
    """A stored label back as an event, from a row starting with _STORED_LABEL_COLUMNS
    (validated when it was first read, so not validated again)."""
    return LabelEvent.model_construct(
        event_id=row[0],
        ts=_utc(row[1]),
        project=row[2],
        item_id=row[3],
        annotator_id=row[4],
        label=row[5],
        gold_label=row[6],
        duration_ms=row[7],
        schema_version=row[8],
        model_label=row[9],
        model_confidence=row[10],
        task_type=row[11],
        guideline_version=row[12],
    )


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


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def label_event_row(
    event: LabelEvent,
    source: SourcePosition,
    ingested_at: datetime,
    outcome: LabelOutcome | None = None,
    topic_id: str = "",
) -> tuple[Any, ...]:
    """One ``label_events`` row, in :data:`LABEL_EVENT_COLUMNS` order."""
    o = outcome or _NO_OUTCOME
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
        topic_id,
        source.partition,
        source.offset,
        source.index,
        ingested_at,
        o.consensus_label,
        o.consensus_confidence,
        _flag(o.agrees),
        _flag(o.gold_correct),
        event.model_label,
        event.model_confidence,
        event.task_type,
        event.guideline_version,
    )


_NO_OUTCOME = LabelOutcome(None, None, None, None)


def item_consensus_row(snapshot: ItemSnapshot) -> tuple[Any, ...]:
    c = snapshot.consensus
    return (
        snapshot.project,
        c.item,
        c.label,
        c.confidence,
        min(c.n_votes, 65535),
        c.gold,
        int(snapshot.closed),
        snapshot.updated_at,
        snapshot.shard,
        snapshot.version,
    )


def annotator_reliability_row(s: AnnotatorSnapshot) -> tuple[Any, ...]:
    return (
        s.ts,
        s.project,
        s.annotator_id,
        s.shard,
        s.n_labels,
        s.accuracy,
        s.accuracy_low,
        s.accuracy_high,
        s.gold_seen,
        s.gold_accuracy,
        s.correct,
        s.total,
        s.per_class_accuracy,
    )


# The same JSON as the evidence in the alerts topic (non-finite numbers become null).
_EVIDENCE_JSON: TypeAdapter[dict[str, EvidenceValue]] = TypeAdapter(dict[str, EvidenceValue])


def alert_row(alert: Alert, ingested_at: datetime) -> tuple[Any, ...]:
    """One ``alerts`` row, in :data:`ALERT_COLUMNS` order."""
    return (
        alert.alert_id,
        alert.state,
        alert.kind,
        alert.severity,
        alert.ts,
        alert.project,
        alert.annotator_id,
        alert.score,
        alert.threshold,
        alert.reason,
        _EVIDENCE_JSON.dump_json(alert.evidence).decode(),
        alert.detector,
        alert.shard,
        alert.offset,
        alert.opened_offset,
        alert.schema_version,
        ingested_at,
        alert.item_id,
        alert.subject,
    )


_ATTRIBUTES_JSON: TypeAdapter[dict[str, str | bool | int | float]] = TypeAdapter(
    dict[str, str | bool | int | float]
)


def privacy_signal_row(
    signal: PrivacySignal,
    source: SourcePosition,
    ingested_at: datetime,
    *,
    allowlist: frozenset[str],
    late: bool = False,
    topic_id: str = "",
) -> tuple[Any, ...]:
    """One ``privacy_signals`` row. Attribute values are kept only for allowlisted keys."""
    kept = {k: v for k, v in signal.attributes.items() if k in allowlist}
    return (
        signal.event_id,
        signal.ts,
        signal.project,
        signal.source,
        signal.kind,
        signal.severity,
        signal.annotator_id or "",
        signal.item_id or "",
        signal.count,
        _ATTRIBUTES_JSON.dump_json(kept).decode(),
        len(signal.attributes) - len(kept),
        int(late),
        signal.schema_version,
        source.topic,
        topic_id,
        source.partition,
        source.offset,
        source.index,
        ingested_at,
    )


def revoked_item_row(revocation: Revocation, ingested_at: datetime) -> tuple[Any, ...]:
    return (
        revocation.project,
        revocation.item_id,
        revocation.revoked_at,
        revocation.kind,
        revocation.event_id,
        ingested_at,
    )


def review_row(r: ReviewItem, ingested_at: datetime) -> tuple[Any, ...]:
    return (
        r.review_id,
        r.project,
        r.item_id,
        r.kind,
        r.priority,
        r.rank,
        r.stratum,
        r.inclusion_probability,
        r.reason,
        r.offered_at,
        r.window_start,
        r.shard,
        ingested_at,
    )


def agreement_row(a: AgreementSnapshot) -> tuple[Any, ...]:
    c = a.coincidence
    cells = [[k[0], k[1], v] for k, v in sorted(c.counts.items()) if v]
    return (
        a.ts,
        a.project,
        a.shard,
        a.window_start,
        c.n_units,
        c.n_values,
        c.alpha(),
        to_json(cells).decode(),
    )


def coincidence_of(n_units: int, cells_json: str) -> Coincidence:
    """The counts an ``agreement`` row holds (add the rows of several shards with ``+``)."""
    cells = json.loads(cells_json)
    return Coincidence({(c, k): float(v) for c, k, v in cells}, n_units)


def finding_row(f: FindingSnapshot, ingested_at: datetime) -> tuple[Any, ...]:
    x = f.finding
    ratio = x.ratio if math.isfinite(x.ratio) else 1e9
    return (
        f.finding_id,
        f.ts,
        x.project or "",
        x.kind,
        x.guideline or "",
        x.baseline or "",
        x.reference,
        x.given,
        x.old_rate,
        x.new_rate,
        ratio,
        x.old_support,
        x.new_support,
        x.annotators,
        x.sentence,
        f.shard,
        f.offset,
        ingested_at,
    )


def checkpoint_row(c: Checkpoint, created_at: datetime, topic_id: str = "") -> tuple[Any, ...]:
    return (c.topic, topic_id, c.partition, c.last_offset, c.n_labels, c.state, created_at)


def sink_rows(
    events: Sequence[tuple[LabelEvent, SourcePosition]],
    quality: QualityOutput,
    now: datetime,
    topic_ids: Mapping[str, str] | None = None,
) -> dict[str, list[tuple[Any, ...]]]:
    """Rows per table for one batch (outcomes, if any, align with ``events``).

    ``topic_ids`` maps topic names to Kafka topic ids (see ``model_checkpoints``)."""
    ids = topic_ids or {}
    outcomes: Sequence[LabelOutcome | None] = quality.outcomes or [None] * len(events)
    return {
        "label_events": [
            label_event_row(e, s, now, o, ids.get(s.topic, ""))
            for (e, s), o in zip(events, outcomes, strict=True)
        ],
        "item_consensus": [item_consensus_row(i) for i in quality.items],
        "annotator_reliability": [annotator_reliability_row(a) for a in quality.annotators],
        "alerts": [alert_row(a, now) for a in quality.alerts],
        "review_queue": [review_row(r, now) for r in quality.reviews],
        "agreement": [agreement_row(a) for a in quality.agreement],
        "confusion_findings": [finding_row(f, now) for f in quality.findings],
        "model_checkpoints": [
            checkpoint_row(c, now, ids.get(c.topic, "")) for c in quality.checkpoints
        ],
    }


def dedup_token(table: str, rows: Sequence[tuple[Any, ...]]) -> str:
    """A deterministic insert-deduplication token: the same rows retried are dropped.

    Built from the rows' whole content except the time they were ingested, so a batch
    retried after a timeout whose insert did land is not stored twice, while a later batch
    with new values for the same keys (an item's newer consensus) is a different insert and
    is kept. (Keying the token on the first columns alone silently dropped such updates.)

    The content is hashed as JSON (pydantic-core's serializer): a third of the time ``repr``
    took, which was a quarter of an insert's time."""
    columns = TABLES.get(table, ())
    skip = columns.index("ingested_at") if "ingested_at" in columns else -1
    kept = rows if skip < 0 else [row[:skip] + row[skip + 1 :] for row in rows]
    digest = hashlib.blake2b(table.encode(), digest_size=16)
    digest.update(to_json(kept, serialize_unknown=True))
    return digest.hexdigest()


class ClickHouseWriter:
    """Writes a batch's rows to ClickHouse, and reads back what recovery needs, off the loop.

    All calls run on one dedicated thread: the chDB engine and the HTTP client are used from
    one thread only, and inserts keep their order.
    """

    def __init__(self, client: Client, database: str) -> None:
        self._client = client
        self._db = database
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    @property
    def client(self) -> Client:
        """The connection; use it on the writer thread only (see :meth:`run`)."""
        return self._client

    def insert_tables(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        """Insert every non-empty table, in :data:`TABLES` order, each with a dedup token;
        the per-minute counts of the labels and alerts among them included."""
        tables = tables | {
            "annotator_minute_input": annotator_minute_rows(
                tables.get("label_events", []), tables.get("alerts", [])
            )
        }
        for table in TABLES:
            rows = tables.get(table)
            if rows:
                self._insert(table, rows)

    def _insert(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self._client.insert(
            f"{self._db}.{table}",
            rows,
            column_names=TABLES[table],
            settings={
                "insert_deduplication_token": dedup_token(table, rows),
                # Without it, a retried block dropped by a table as a duplicate still
                # reaches its materialized views and is counted twice there (the token
                # reaches them too: annotator_minute_input is a Null table).
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            },
        )

    async def write_tables(self, tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]:
        """:meth:`insert_tables` on the writer thread; returns rows written per table."""
        await self.run(self.insert_tables, tables)
        return {table: len(rows) for table, rows in tables.items() if rows}

    async def write(self, events: Sequence[tuple[LabelEvent, SourcePosition]]) -> int:
        """Insert label events alone (no model outcomes)."""
        written = await self.write_tables(sink_rows(events, QualityOutput(), datetime.now(UTC)))
        return written.get("label_events", 0)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def load_checkpoint(self, topic: str, topic_id: str, partition: int) -> Checkpoint | None:
        """The newest checkpoint of a shard, or None."""
        result = self._client.query(
            f"SELECT last_offset, n_labels, state FROM {self._db}.model_checkpoints "  # noqa: S608
            "WHERE source_topic = {topic:String} AND source_topic_id = {topic_id:String} "
            "AND source_partition = {partition:UInt32} ORDER BY last_offset DESC LIMIT 1",
            parameters={"topic": topic, "topic_id": topic_id, "partition": partition},
        )
        row = result.first_row
        if not row:
            return None
        state = row[2].decode() if isinstance(row[2], bytes) else row[2]
        return Checkpoint(topic, partition, int(row[0]), int(row[1]), state)

    def stored_labels_after(
        self, topic: str, topic_id: str, partition: int, offset: int
    ) -> list[tuple[LabelEvent, SourcePosition]]:
        """Label events of a shard stored with offsets above ``offset``, in offset order."""
        rows = self._shard_rows_after(
            "label_events", _STORED_LABEL_COLUMNS, topic, topic_id, partition, offset
        )
        return [
            (
                _stored_label(row),
                SourcePosition(
                    topic,
                    partition,
                    int(row[_N_STORED_LABEL_COLUMNS]),
                    int(row[_N_STORED_LABEL_COLUMNS + 1]),
                ),
            )
            for row in rows
        ]

    def _shard_rows_after(
        self, table: str, columns: str, topic: str, topic_id: str, partition: int, offset: int
    ) -> list[Sequence[Any]]:
        """``columns`` plus ``source_offset`` and ``source_index`` of a shard's rows stored in
        ``table`` with offsets above ``offset``, once per event, in (offset, index) order."""
        # The database name is validated by Settings, table and columns are this module's
        # constants; all values are bound parameters.
        result = self._client.query(
            f"SELECT {columns}, source_offset, source_index FROM {self._db}.{table} "  # noqa: S608
            "WHERE source_topic = {topic:String} AND source_topic_id = {topic_id:String} "
            "AND source_partition = {partition:UInt32} AND source_offset > {offset:Int64} "
            "ORDER BY source_offset, source_index LIMIT 1 BY source_offset, source_index",
            parameters={
                "topic": topic,
                "topic_id": topic_id,
                "partition": partition,
                "offset": offset,
            },
        )
        return list(result.result_rows)

    def count_missing_minutes(
        self, topic: str, topic_id: str, partition: int, replayed: Sequence[tuple[datetime, int]]
    ) -> int:
        """Count in ``annotator_minute_agg`` the shard's stored labels it does not count yet;
        returns how many there were. ``replayed``: (ts, offset) of the labels a restore
        replays, those stored after the shard's checkpoint.

        The counts of a batch are inserted after its labels, so a crash in between (of the
        embedded engine, or of the server) leaves labels stored and not counted, and the
        redelivered labels are not written again. Only replayed labels can be missing: the
        counts of the labels a checkpoint covers were inserted before it. The rows of the
        last batch that counted any of them lie on their minutes, and say up to which offset
        the shard is counted; the labels from there on are counted now, before the shard's
        next batch moves that mark."""
        if not replayed:
            return 0
        minutes = sorted({_minute(ts) for ts, _ in replayed})
        params = {"shard": minute_shard(topic, topic_id, partition), "minutes": minutes}
        row = self._client.query(
            "SELECT max(next_offsets.2[indexOf(next_offsets.1, {shard:String})]) "  # noqa: S608
            f"FROM {self._db}.annotator_minute_agg "
            "WHERE minute IN {minutes:Array(DateTime('UTC'))} "
            "AND has(next_offsets.1, {shard:String})",
            parameters=params,
        ).first_row
        counted = int(row[0] or 0) if row else 0
        from_offset = max(counted, min(offset for _, offset in replayed))
        if from_offset > max(offset for _, offset in replayed):
            return 0  # the usual case: nothing missing, and nothing more read
        columns = ", ".join(LABEL_EVENT_COLUMNS)
        rows = self._shard_rows_after(
            "label_events", columns, topic, topic_id, partition, from_offset - 1
        )
        if rows:
            self._insert("annotator_minute_input", annotator_minute_rows(rows, []))
        return len(rows)

    def recent_event_ids(
        self, table: str, topic: str, topic_id: str, partition: int, offset: int, limit: int
    ) -> list[str]:
        """Event ids of a shard's last ``limit`` rows in ``table`` (``label_events`` or
        ``privacy_signals``) at or below ``offset``, oldest first: the shard's dedup window
        at that offset (see labelwatch.models.dedup)."""
        if table not in ("label_events", "privacy_signals"):
            raise ValueError(f"no event ids in {table!r}")
        if limit <= 0 or offset < 0:
            return []
        result = self._client.query(
            f"SELECT event_id FROM ("  # noqa: S608
            f"SELECT event_id, source_offset, source_index FROM {self._db}.{table} "
            "WHERE source_topic = {topic:String} AND source_topic_id = {topic_id:String} "
            "AND source_partition = {partition:UInt32} AND source_offset <= {offset:Int64} "
            "ORDER BY source_offset DESC, source_index DESC "
            "LIMIT 1 BY source_offset, source_index LIMIT {limit:UInt64}"
            ") ORDER BY source_offset, source_index",
            parameters={
                "topic": topic,
                "topic_id": topic_id,
                "partition": partition,
                "offset": offset,
                "limit": limit,
            },
        )
        return [str(row[0]) for row in result.result_rows]

    def stored_signals_after(
        self, topic: str, topic_id: str, partition: int, offset: int
    ) -> list[tuple[PrivacySignal, SourcePosition]]:
        """Privacy signals of a shard stored with offsets above ``offset``, in offset order.

        Attributes come back as stored (allowlisted keys only); the detectors do not use
        them."""
        rows = self._shard_rows_after(
            "privacy_signals",
            "event_id, ts, project, source, kind, severity, annotator_id, item_id, count, "
            "schema_version",
            topic,
            topic_id,
            partition,
            offset,
        )
        out = []
        for row in rows:
            signal = PrivacySignal.model_construct(
                event_id=row[0],
                ts=_utc(row[1]),
                project=row[2],
                source=row[3],
                kind=row[4],
                severity=row[5],
                annotator_id=row[6] or None,
                item_id=row[7] or None,
                count=int(row[8]),
                attributes={},
                schema_version=row[9],
            )
            out.append((signal, SourcePosition(topic, partition, int(row[10]), int(row[11]))))
        return out

    def revocations(self) -> list[Revocation]:
        """Every stored revocation, the earliest per item."""
        result = self._client.query(
            "SELECT project, item_id, argMin(kind, revoked_at), argMin(event_id, revoked_at), "  # noqa: S608
            f"min(revoked_at) FROM {self._db}.revoked_items GROUP BY project, item_id"
        )
        return [
            Revocation(project, item, _utc(at), kind, event_id)
            for project, item, kind, event_id, at in result.result_rows
        ]

    def labels_after_revocation(
        self, revocation: Revocation
    ) -> list[tuple[LabelEvent, SourcePosition]]:
        """Stored labels of a revoked item given at or after its revocation."""
        result = self._client.query(
            f"SELECT {_STORED_LABEL_COLUMNS}, source_topic, source_partition, "  # noqa: S608
            f"source_offset, source_index FROM {self._db}.label_events FINAL "
            "WHERE project = {project:String} AND item_id = {item:String} "
            "AND ts >= {at:DateTime64(3, 'UTC')} ORDER BY ts",
            parameters={
                "project": revocation.project,
                "item": revocation.item_id,
                "at": revocation.revoked_at,
            },
        )
        n = _N_STORED_LABEL_COLUMNS
        return [
            (
                _stored_label(row),
                SourcePosition(row[n], int(row[n + 1]), int(row[n + 2]), int(row[n + 3])),
            )
            for row in result.result_rows
        ]

    def close(self) -> None:
        """Wait for pending work, then release the thread and the connection."""
        self._executor.shutdown(wait=True)
        self._client.close()
