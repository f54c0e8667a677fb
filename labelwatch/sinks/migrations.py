"""Versioned, idempotent ClickHouse schema migrations (``labelwatch db migrate``).

Each migration has a version, a name and DDL statements written with ``IF NOT EXISTS`` so a
half-applied migration can simply be run again. Applied versions are recorded in
``schema_migrations``; running ``migrate`` twice, or from two workers at once, is harmless.
Never edit a released migration: add a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from labelwatch.settings import Retention


@dataclass(frozen=True)
class Migration:
    """One schema step. ``{db}`` in a statement is replaced by the database name."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "label_events",
        (
            # ReplacingMergeTree keyed by event_id collapses redelivered events; the
            # deduplication window drops a retried batch (same token) outright.
            """
            CREATE TABLE IF NOT EXISTS {db}.label_events (
                event_id String,
                ts DateTime64(3, 'UTC'),
                project LowCardinality(String),
                item_id String,
                annotator_id String,
                label LowCardinality(String),
                gold_label LowCardinality(Nullable(String)),
                duration_ms Nullable(UInt32),
                schema_version UInt16,
                source_topic LowCardinality(String),
                source_topic_id LowCardinality(String),
                source_partition UInt32,
                source_offset UInt64,
                ingested_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(ts)
            ORDER BY (project, event_id)
            SETTINGS non_replicated_deduplication_window = 1000
            """,
        ),
    ),
    Migration(
        2,
        "consensus_and_reliability",
        (
            # What the monitor concluded when the label was stored (NULL for older rows).
            """
            ALTER TABLE {db}.label_events
                ADD COLUMN IF NOT EXISTS consensus_label LowCardinality(Nullable(String)),
                ADD COLUMN IF NOT EXISTS consensus_confidence Nullable(Float32),
                ADD COLUMN IF NOT EXISTS agrees Nullable(UInt8),
                ADD COLUMN IF NOT EXISTS gold_correct Nullable(UInt8)
            """,
            # Latest consensus per item; version = source position (offset, then index in a
            # batched envelope: SourcePosition.sequence), so the newest row wins.
            """
            CREATE TABLE IF NOT EXISTS {db}.item_consensus (
                project LowCardinality(String),
                item_id String,
                consensus_label LowCardinality(Nullable(String)),
                confidence Float32,
                n_votes UInt16,
                gold_label LowCardinality(Nullable(String)),
                closed UInt8,
                updated_at DateTime64(3, 'UTC'),
                shard LowCardinality(String),
                version UInt64
            )
            ENGINE = ReplacingMergeTree(version)
            ORDER BY (project, item_id)
            SETTINGS non_replicated_deduplication_window = 1000
            """,
            # Reliability over time: one snapshot per annotator, shard and event-time tick.
            """
            CREATE TABLE IF NOT EXISTS {db}.annotator_reliability (
                ts DateTime64(3, 'UTC'),
                project LowCardinality(String),
                annotator_id String,
                shard LowCardinality(String),
                n_labels UInt32,
                accuracy Float32,
                accuracy_low Float32,
                accuracy_high Float32,
                gold_seen UInt32,
                gold_accuracy Nullable(Float32),
                correct Float64,
                total Float64,
                per_class_accuracy Map(String, Float32)
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(ts)
            ORDER BY (project, annotator_id, shard, ts)
            SETTINGS non_replicated_deduplication_window = 1000
            """,
            # Model state per input partition, with the last offset it includes. The topic id
            # tells a deleted and re-created topic (offsets from 0 again) from the old one.
            """
            CREATE TABLE IF NOT EXISTS {db}.model_checkpoints (
                source_topic LowCardinality(String),
                source_topic_id LowCardinality(String),
                source_partition UInt32,
                last_offset Int64,
                n_labels UInt64,
                state String CODEC(ZSTD(3)),
                created_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree(last_offset)
            ORDER BY (source_topic, source_topic_id, source_partition)
            """,
        ),
    ),
    Migration(
        3,
        "alerts",
        (
            # One row per state an alert episode reached (opened, resolved). alert_id is derived
            # from the episode, so the key collapses re-sent states; no PARTITION BY ts, because
            # duplicates in different partitions would never be merged.
            """
            CREATE TABLE IF NOT EXISTS {db}.alerts (
                alert_id String,
                state LowCardinality(String),
                kind LowCardinality(String),
                severity LowCardinality(String),
                ts DateTime64(3, 'UTC'),
                project LowCardinality(String),
                annotator_id String,
                score Float64,
                threshold Float64,
                reason String,
                evidence String,
                detector LowCardinality(String),
                shard LowCardinality(String),
                offset Int64,
                opened_offset Int64,
                schema_version UInt16,
                ingested_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            ORDER BY (project, annotator_id, kind, alert_id, state)
            SETTINGS non_replicated_deduplication_window = 1000
            """,
        ),
    ),
    Migration(
        4,
        "live_analytics",
        (
            # Per annotator, project and minute, fed by two materialized views. Both count
            # what each inserted block adds, so a block must reach them once: inserts set
            # deduplicate_blocks_in_dependent_materialized_views (a retried block dropped by
            # label_events is then dropped here too), and the worker does not write a
            # redelivered label again. Alerts are counted as distinct ids, because a crash
            # may re-raise one in a different block.
            """
            CREATE TABLE IF NOT EXISTS {db}.annotator_minute_agg (
                project LowCardinality(String),
                annotator_id String,
                minute DateTime('UTC'),
                labels SimpleAggregateFunction(sum, UInt64),
                with_consensus SimpleAggregateFunction(sum, UInt64),
                agreed SimpleAggregateFunction(sum, UInt64),
                gold_seen SimpleAggregateFunction(sum, UInt64),
                gold_right SimpleAggregateFunction(sum, UInt64),
                duration_digest AggregateFunction(quantileTDigest(0.5), Nullable(UInt32)),
                alerts_opened AggregateFunction(uniqExact, String)
            )
            ENGINE = AggregatingMergeTree
            PARTITION BY toYYYYMM(minute)
            ORDER BY (project, annotator_id, minute)
            SETTINGS non_replicated_deduplication_window = 1000
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.annotator_minute_labels_mv
            TO {db}.annotator_minute_agg AS
            SELECT
                project,
                annotator_id,
                toStartOfMinute(ts) AS minute,
                count() AS labels,
                countIf(isNotNull(agrees)) AS with_consensus,
                countIf(ifNull(agrees, 0) = 1) AS agreed,
                countIf(isNotNull(gold_correct)) AS gold_seen,
                countIf(ifNull(gold_correct, 0) = 1) AS gold_right,
                quantileTDigestState(0.5)(duration_ms) AS duration_digest
            FROM {db}.label_events
            GROUP BY project, annotator_id, minute
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.annotator_minute_alerts_mv
            TO {db}.annotator_minute_agg AS
            SELECT
                project,
                annotator_id,
                toStartOfMinute(ts) AS minute,
                uniqExactState(alert_id) AS alerts_opened
            FROM {db}.alerts
            WHERE state = 'opened'
            GROUP BY project, annotator_id, minute
            """,
            # The finalized views users query.
            """
            CREATE VIEW IF NOT EXISTS {db}.annotator_minute AS
            SELECT
                project,
                annotator_id,
                minute,
                n AS labels,
                if(n_consensus = 0, NULL, n_agreed / n_consensus) AS agreement_rate,
                n_gold AS gold_seen,
                if(n_gold = 0, NULL, n_gold_right / n_gold) AS gold_accuracy,
                median_ms AS median_duration_ms,
                n_alerts AS alerts_opened
            FROM (
                SELECT
                    project,
                    annotator_id,
                    minute AS minute,
                    sum(labels) AS n,
                    sum(with_consensus) AS n_consensus,
                    sum(agreed) AS n_agreed,
                    sum(gold_seen) AS n_gold,
                    sum(gold_right) AS n_gold_right,
                    quantileTDigestMerge(0.5)(duration_digest) AS median_ms,
                    uniqExactMerge(alerts_opened) AS n_alerts
                FROM {db}.annotator_minute_agg
                GROUP BY project, annotator_id, minute
            )
            """,
            """
            CREATE VIEW IF NOT EXISTS {db}.annotator_hour AS
            SELECT
                project,
                annotator_id,
                hour,
                n AS labels,
                if(n_consensus = 0, NULL, n_agreed / n_consensus) AS agreement_rate,
                n_gold AS gold_seen,
                if(n_gold = 0, NULL, n_gold_right / n_gold) AS gold_accuracy,
                median_ms AS median_duration_ms,
                n_alerts AS alerts_opened
            FROM (
                SELECT
                    project,
                    annotator_id,
                    toStartOfHour(minute) AS hour,
                    sum(labels) AS n,
                    sum(with_consensus) AS n_consensus,
                    sum(agreed) AS n_agreed,
                    sum(gold_seen) AS n_gold,
                    sum(gold_right) AS n_gold_right,
                    quantileTDigestMerge(0.5)(duration_digest) AS median_ms,
                    uniqExactMerge(alerts_opened) AS n_alerts
                FROM {db}.annotator_minute_agg
                GROUP BY project, annotator_id, hour
            )
            """,
            # Reliability over time: each shard's last snapshot in the hour, pooled over the
            # shards that saw the annotator in it (soft counts add up across shards).
            """
            CREATE VIEW IF NOT EXISTS {db}.annotator_reliability_hour AS
            SELECT
                project,
                annotator_id,
                hour,
                sum(correct) / nullIf(sum(total), 0) AS accuracy,
                min(accuracy_low) AS accuracy_low_min,
                max(accuracy_high) AS accuracy_high_max,
                sum(n_labels) AS n_labels,
                count() AS shards
            FROM (
                SELECT
                    project,
                    annotator_id,
                    shard,
                    toStartOfHour(ts) AS hour,
                    argMax(correct, ts) AS correct,
                    argMax(total, ts) AS total,
                    argMax(n_labels, ts) AS n_labels,
                    argMax(accuracy_low, ts) AS accuracy_low,
                    argMax(accuracy_high, ts) AS accuracy_high
                FROM {db}.annotator_reliability
                GROUP BY project, annotator_id, shard, hour
            )
            GROUP BY project, annotator_id, hour
            """,
            # Each item's newest consensus.
            """
            CREATE VIEW IF NOT EXISTS {db}.item_consensus_latest AS
            SELECT
                project,
                item_id,
                argMax(consensus_label, version) AS consensus_label,
                argMax(confidence, version) AS confidence,
                argMax(n_votes, version) AS n_votes,
                argMax(gold_label, version) AS gold_label,
                argMax(closed, version) AS closed,
                max(updated_at) AS updated_at
            FROM {db}.item_consensus
            GROUP BY project, item_id
            """,
            # Episodes without a resolved state, with their newest severity, score and reason.
            """
            CREATE VIEW IF NOT EXISTS {db}.open_alerts AS
            SELECT
                alert_id,
                project,
                annotator_id,
                kind,
                anyIf(detector, state = 'opened') AS detector,
                argMax(severity, (ts, offset)) AS severity,
                minIf(ts, state = 'opened') AS opened_at,
                max(ts) AS updated_at,
                argMax(score, (ts, offset)) AS score,
                any(threshold) AS threshold,
                argMax(reason, (ts, offset)) AS reason
            FROM {db}.alerts
            GROUP BY alert_id, project, annotator_id, kind
            HAVING countIf(state = 'resolved') = 0
            """,
        ),
    ),
    Migration(
        5,
        "privacy",
        (
            # Privacy signals as received, minus what is not allowlisted: attributes keeps
            # only the allowlisted keys (JSON), attributes_dropped counts the others. late = 1
            # when the signal's window had closed before it arrived (counted in no rate).
            """
            CREATE TABLE IF NOT EXISTS {db}.privacy_signals (
                event_id String,
                ts DateTime64(3, 'UTC'),
                project LowCardinality(String),
                source LowCardinality(String),
                kind LowCardinality(String),
                severity LowCardinality(String),
                annotator_id String,
                item_id String,
                count UInt64,
                attributes String,
                attributes_dropped UInt16,
                late UInt8,
                schema_version UInt16,
                source_topic LowCardinality(String),
                source_topic_id LowCardinality(String),
                source_partition UInt32,
                source_offset UInt64,
                ingested_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(ts)
            ORDER BY (project, event_id)
            SETTINGS non_replicated_deduplication_window = 1000
            """,
            # Items that must no longer be labeled, from consent_revoked and
            # deletion_requested signals; read by every worker. No TTL: a revocation stays.
            """
            CREATE TABLE IF NOT EXISTS {db}.revoked_items (
                project LowCardinality(String),
                item_id String,
                revoked_at DateTime64(3, 'UTC'),
                kind LowCardinality(String),
                event_id String,
                ingested_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            ORDER BY (project, item_id, event_id)
            SETTINGS non_replicated_deduplication_window = 1000
            """,
            # Privacy alerts are about items and signal rates as well as annotators.
            """
            ALTER TABLE {db}.alerts
                ADD COLUMN IF NOT EXISTS item_id String DEFAULT '',
                ADD COLUMN IF NOT EXISTS subject String DEFAULT annotator_id
            """,
            # Per annotator: privacy signals that name them, beside their labeling quality.
            """
            CREATE VIEW IF NOT EXISTS {db}.annotator_privacy_risk AS
            SELECT
                project,
                annotator_id,
                countIf(kind = 'pii_exposed_to_annotator') AS exposures,
                countIf(kind = 'pii_exposed_to_annotator' AND severity IN ('high', 'critical'))
                    AS serious_exposures,
                countIf(kind = 'access_violation') AS access_violations,
                countIf(kind = 'bulk_export') AS bulk_exports,
                count() AS signals,
                max(ts) AS last_signal_at
            FROM {db}.privacy_signals FINAL
            WHERE annotator_id != ''
            GROUP BY project, annotator_id
            """,
            """
            CREATE VIEW IF NOT EXISTS {db}.annotator_profile AS
            SELECT
                q.project AS project,
                q.annotator_id AS annotator_id,
                q.labels AS labels,
                q.agreement_rate AS agreement_rate,
                q.gold_accuracy AS gold_accuracy,
                q.last_minute AS last_active,
                ifNull(r.exposures, 0) AS exposures,
                ifNull(r.serious_exposures, 0) AS serious_exposures,
                ifNull(r.access_violations, 0) AS access_violations,
                ifNull(r.bulk_exports, 0) AS bulk_exports
            FROM (
                SELECT
                    project,
                    annotator_id,
                    sum(labels) AS labels,
                    if(sum(with_consensus) = 0, NULL, sum(agreed) / sum(with_consensus))
                        AS agreement_rate,
                    if(sum(gold_seen) = 0, NULL, sum(gold_right) / sum(gold_seen))
                        AS gold_accuracy,
                    max(minute) AS last_minute
                FROM {db}.annotator_minute_agg
                GROUP BY project, annotator_id
            ) AS q
            LEFT JOIN {db}.annotator_privacy_risk AS r
                ON q.project = r.project AND q.annotator_id = r.annotator_id
            """,
            # Privacy signals per project, kind and event-time minute.
            """
            CREATE VIEW IF NOT EXISTS {db}.privacy_minute AS
            SELECT
                project,
                kind,
                toStartOfMinute(ts) AS minute,
                count() AS signals,
                sum(count) AS occurrences,
                countIf(severity IN ('high', 'critical')) AS serious
            FROM {db}.privacy_signals FINAL
            GROUP BY project, kind, minute
            """,
        ),
    ),
    Migration(
        6,
        "batched_envelopes",
        (
            # An event's index in its message: 0, or its place in a batched envelope's
            # "events". (source_partition, source_offset, source_index) names one event.
            """
            ALTER TABLE {db}.label_events
                ADD COLUMN IF NOT EXISTS source_index UInt32 DEFAULT 0 AFTER source_offset
            """,
            """
            ALTER TABLE {db}.privacy_signals
                ADD COLUMN IF NOT EXISTS source_index UInt32 DEFAULT 0 AFTER source_offset
            """,
        ),
    ),
    Migration(
        7,
        "label_event_v2",
        (
            # Schema version 2 of label events: the model's pre-label shown to the annotator,
            # the task type and the guideline version (NULL for version 1 events). Float64, so
            # a restarted worker replays exactly the confidence that was sent.
            """
            ALTER TABLE {db}.label_events
                ADD COLUMN IF NOT EXISTS model_label LowCardinality(Nullable(String)),
                ADD COLUMN IF NOT EXISTS model_confidence Nullable(Float64),
                ADD COLUMN IF NOT EXISTS task_type LowCardinality(Nullable(String)),
                ADD COLUMN IF NOT EXISTS guideline_version LowCardinality(Nullable(String))
            """,
        ),
    ),
    Migration(
        8,
        "review_queue",
        (
            # Items picked for expert review: the highest priorities of each event-time window
            # ('priority') and a stratified random share ('random', with the probability the
            # item had of being drawn, for unbiased audit estimates). review_id names the
            # item's pick, so a replayed pick collapses.
            """
            CREATE TABLE IF NOT EXISTS {db}.review_queue (
                review_id String,
                project LowCardinality(String),
                item_id String,
                kind LowCardinality(String),
                priority Float64,
                rank UInt32,
                stratum String,
                inclusion_probability Nullable(Float64),
                reason String,
                offered_at DateTime64(3, 'UTC'),
                window_start DateTime64(3, 'UTC'),
                shard LowCardinality(String),
                ingested_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(window_start)
            ORDER BY (project, review_id)
            SETTINGS non_replicated_deduplication_window = 1000
            """,
        ),
    ),
    Migration(
        9,
        "root_causes",
        (
            # Inter-annotator agreement: each shard's running coincidence counts per project,
            # written at reliability ticks; window_start 1970-01-01 holds the totals, other
            # rows the units whose latest label fell in that event-time window. Shards hold
            # disjoint items, so the counts of the shards' newest rows add up (see
            # labelwatch.models.agreement.Coincidence); coincidence is JSON [[c, k, o_ck]].
            """
            CREATE TABLE IF NOT EXISTS {db}.agreement (
                ts DateTime64(3, 'UTC'),
                project LowCardinality(String),
                shard LowCardinality(String),
                window_start DateTime64(3, 'UTC'),
                n_units UInt32,
                n_values UInt32,
                alpha Nullable(Float64),
                coincidence String
            )
            ENGINE = ReplacingMergeTree(ts)
            ORDER BY (project, shard, window_start)
            """,
            # Changes in the confusion structure: which class became read as which, since
            # which guideline version or change point, with the rates and their support.
            """
            CREATE TABLE IF NOT EXISTS {db}.confusion_findings (
                finding_id String,
                ts DateTime64(3, 'UTC'),
                project LowCardinality(String),
                kind LowCardinality(String),
                guideline_version LowCardinality(String),
                baseline_version LowCardinality(String),
                reference LowCardinality(String),
                given LowCardinality(String),
                old_rate Float64,
                new_rate Float64,
                ratio Float64,
                support_before UInt32,
                support_after UInt32,
                annotators UInt32,
                sentence String,
                shard LowCardinality(String),
                offset Int64,
                ingested_at DateTime64(3, 'UTC')
            )
            ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(ts)
            ORDER BY (project, finding_id)
            """,
            # Who read which class as which, per project, guideline version and day; the
            # reference is the gold answer, else the consensus right after the label.
            """
            CREATE VIEW IF NOT EXISTS {db}.class_confusion AS
            SELECT
                project,
                ifNull(guideline_version, '') AS guideline_version,
                toDate(ts) AS day,
                ifNull(gold_label, consensus_label) AS reference,
                label AS given,
                count() AS labels
            FROM {db}.label_events FINAL
            WHERE reference IS NOT NULL
            GROUP BY project, guideline_version, day, reference, given
            """,
            # Pre-label use per project, annotator and day. "Wrong" is judged against gold,
            # else the consensus right after the label (which the label itself took part in).
            """
            CREATE VIEW IF NOT EXISTS {db}.prelabel_use AS
            SELECT
                project,
                annotator_id,
                toDate(ts) AS day,
                countIf(model_label IS NOT NULL) AS shown,
                countIf(label = model_label) AS accepted,
                countIf(model_label != ifNull(gold_label, consensus_label)) AS wrong_shown,
                countIf(label = model_label AND model_label != ifNull(gold_label, consensus_label))
                    AS wrong_accepted,
                countIf(model_label = ifNull(gold_label, consensus_label)) AS model_agrees
            FROM {db}.label_events FINAL
            WHERE model_label IS NOT NULL
            GROUP BY project, annotator_id, day
            """,
        ),
    ),
    Migration(
        10,
        "open_alerts_subject",
        (
            # open_alerts gains what each alert is about (the annotator, the signal kind of
            # a privacy spike, the item of a revoked-item label, "model" for model_drift).
            "DROP VIEW IF EXISTS {db}.open_alerts",
            """
            CREATE VIEW IF NOT EXISTS {db}.open_alerts AS
            SELECT
                alert_id,
                project,
                annotator_id,
                kind,
                anyIf(detector, state = 'opened') AS detector,
                argMax(severity, (ts, offset)) AS severity,
                minIf(ts, state = 'opened') AS opened_at,
                max(ts) AS updated_at,
                argMax(score, (ts, offset)) AS score,
                any(threshold) AS threshold,
                argMax(reason, (ts, offset)) AS reason,
                any(subject) AS subject
            FROM {db}.alerts
            GROUP BY alert_id, project, annotator_id, kind
            HAVING countIf(state = 'resolved') = 0
            """,
        ),
    ),
    Migration(
        11,
        "annotator_minute_crash_consistent",
        (
            # The per-minute aggregates were filled by materialized views on label_events and
            # alerts. An insert and its views' inserts are not atomic (ClickHouse#104661): a
            # worker killed in between (the embedded engine dies with it) left the labels
            # stored and never counted, and their redelivery is not written again. The worker
            # now writes the aggregates itself, one insert per batch through a Null table,
            # after the labels and alerts and before the checkpoint. Each row carries, per
            # label shard, the next offset it counted up to; restoring a shard counts the
            # stored labels at or above it (see ClickHouseWriter.count_missing_minutes).
            "DROP VIEW IF EXISTS {db}.annotator_minute_labels_mv",
            "DROP VIEW IF EXISTS {db}.annotator_minute_alerts_mv",
            """
            ALTER TABLE {db}.annotator_minute_agg ADD COLUMN IF NOT EXISTS next_offsets
                SimpleAggregateFunction(maxMap, Tuple(Array(String), Array(UInt64)))
            """,
            # One row per project, annotator, minute and label shard of a batch. Alert-only
            # rows have shard ''; an alert is counted once by id, whichever rows carry it.
            """
            CREATE TABLE IF NOT EXISTS {db}.annotator_minute_input (
                project LowCardinality(String),
                annotator_id String,
                minute DateTime('UTC'),
                shard String,
                next_offset UInt64,
                labels UInt64,
                with_consensus UInt64,
                agreed UInt64,
                gold_seen UInt64,
                gold_right UInt64,
                durations Array(UInt32),
                alerts_opened Array(String)
            )
            ENGINE = Null
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.annotator_minute_input_mv
            TO {db}.annotator_minute_agg AS
            SELECT
                project,
                annotator_id,
                minute,
                labels,
                with_consensus,
                agreed,
                gold_seen,
                gold_right,
                arrayReduce(
                    'quantileTDigestState(0.5)', CAST(durations, 'Array(Nullable(UInt32))')
                ) AS duration_digest,
                arrayReduce('uniqExactState', alerts_opened) AS alerts_opened,
                if(shard = '', ([], []), ([shard], [next_offset])) AS next_offsets
            FROM {db}.annotator_minute_input
            """,
            # A store written by the views: every stored label is counted, so each shard
            # is marked as counted up to its newest label (a zero row on that label's key,
            # so it shows nowhere).
            """
            INSERT INTO {db}.annotator_minute_agg
                (project, annotator_id, minute, next_offsets)
            SELECT
                argMax(project, source_offset),
                argMax(annotator_id, source_offset),
                toStartOfMinute(argMax(ts, source_offset)),
                ([concat(source_topic, '/', source_topic_id, ':', toString(source_partition))],
                 [max(source_offset) + 1])
            FROM {db}.label_events
            GROUP BY source_topic, source_topic_id, source_partition
            """,
        ),
    ),
)


def applied_versions(client: Client, database: str) -> set[int]:
    """Versions already recorded in ``schema_migrations`` (empty before the first run)."""
    exists = client.query(f"EXISTS TABLE {database}.schema_migrations").first_row
    if not exists or not exists[0]:
        return set()
    # The database name is validated by Settings (identifier pattern), never user SQL.
    query = f"SELECT DISTINCT version FROM {database}.schema_migrations"  # noqa: S608
    result = client.query(query)
    return {int(row[0]) for row in result.result_rows}


# table -> (time expression, raw?). Raw events carry annotator ids and what they did one by
# one; aggregates and alerts are what the monitor concluded.
RETENTION_TABLES: dict[str, tuple[str, bool]] = {
    "label_events": ("toDateTime(ingested_at)", True),
    "privacy_signals": ("toDateTime(ingested_at)", True),
    "annotator_reliability": ("toDateTime(ts)", False),
    "annotator_minute_agg": ("minute", False),
    "item_consensus": ("toDateTime(updated_at)", False),
    "alerts": ("toDateTime(ts)", False),
    "review_queue": ("toDateTime(window_start)", False),
    "confusion_findings": ("toDateTime(ts)", False),
    # A project's totals row is rewritten with a newer ts at every flush, so only the
    # totals of a project idle for the whole retention go.
    "agreement": ("toDateTime(ts)", False),
}


def ttl_clause(table: str, retention: Retention) -> str:
    """The TTL expression ``table`` gets under ``retention``."""
    column, raw = RETENTION_TABLES[table]
    days = retention.raw_days if raw else retention.aggregate_days
    return f"{column} + toIntervalDay({days})"


def apply_retention(client: Client, database: str, retention: Retention) -> list[str]:
    """Set each table's TTL to ``retention``; returns the tables whose TTL changed.

    Only a TTL that differs is modified, and without rewriting existing parts at once
    (``materialize_ttl_after_modify = 0``): old rows go at the next merges."""
    changed = []
    for table in RETENTION_TABLES:
        wanted = ttl_clause(table, retention)
        row = client.query(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = {db:String} AND name = {table:String}",
            parameters={"db": database, "table": table},
        ).first_row
        if row is None or f"TTL {wanted} " in f"{row[0]} ":
            continue
        client.command(
            f"ALTER TABLE {database}.{table} MODIFY TTL {wanted}",
            settings={"materialize_ttl_after_modify": 0},
        )
        changed.append(table)
    return changed


def migrate(client: Client, database: str, retention: Retention | None = None) -> list[Migration]:
    """Create the database and apply pending migrations in order; returns those applied.

    With ``retention``, the tables' TTLs are then set to it (see :func:`apply_retention`)."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"""
        CREATE TABLE IF NOT EXISTS {database}.schema_migrations (
            version UInt32, name String, applied_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree ORDER BY version
        """
    )
    done = applied_versions(client, database)
    applied: list[Migration] = []
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(statement.format(db=database))
        client.insert(
            f"{database}.schema_migrations",
            [(migration.version, migration.name, datetime.now(UTC))],
            column_names=("version", "name", "applied_at"),
        )
        applied.append(migration)
    if retention is not None:
        apply_retention(client, database, retention)
    return applied


def current_version() -> int:
    """The newest schema version this release knows."""
    return max(m.version for m in MIGRATIONS)
