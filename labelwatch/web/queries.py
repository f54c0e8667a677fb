"""The dashboard's read queries: plain functions of a clickhouse-connect client.

Each function takes the client, the database name (validated by
:class:`~labelwatch.settings.Settings`, never user input) and its filters, runs a few bounded
SELECTs and returns a JSON-able dict (datetimes as ISO 8601 text, non-finite numbers as None).
No Faust here: the worker runs these on its ClickHouse writer thread
(:mod:`labelwatch.web.pages`), the tests call them on a chDB client directly.

Where the numbers come from:

- *Reliability* is read from ``annotator_reliability``, which holds one snapshot per
  annotator, shard and event-time tick, and only for annotators active in that tick. An
  annotator's reliability *now* pools each shard's latest snapshot (:func:`pool_shards`):
  labels add up, the accuracy is the shards' accuracies weighted by their soft label counts
  (``total``; with one shard: exactly the stored accuracy), and the interval is the envelope
  of the shards' intervals (lowest low, highest high), as the ``annotator_reliability_hour``
  view does: conservative, exact with one shard. Reliability *over time* applies the same
  pooling at every tick to each shard's latest snapshot as of that tick.
- *Labels, agreement, gold accuracy and speed* (median seconds per label) come from
  ``annotator_minute_agg`` (what the ``annotator_profile`` view computes, plus the merged
  t-digest of time per label), exact counts of the stored labels.
- *Anomaly score* is the score of the newest state of the annotator's ``annotator_anomaly``
  alerts (a robust z for ``robust_z:*`` detectors, a disagreement ratio for
  ``copied_answers``); *open alerts* come from the ``open_alerts`` view.
- *Change points* are the times ``annotator_drift`` episodes opened, with their reason and
  evidence.
- *Privacy signals* per kind over time come from the ``privacy_minute`` view, over a window
  that ends at the newest stored minute (event time, not the wall clock).

Duplicates: ``alerts`` and ``annotator_reliability`` are ReplacingMergeTrees, so a row may be
stored twice until a merge. Every query here is immune: states are collapsed per alert id
with ``argMax``/``countIf``, or read with ``FINAL``; a duplicated snapshot has the same
values as its twin.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from labelwatch.sinks.query import json_value

__all__ = [
    "MAX_ANNOTATORS",
    "annotator_detail",
    "annotators",
    "open_alerts",
    "pool_shards",
    "privacy",
    "reliability_series",
]

MAX_ANNOTATORS = 2000
MAX_ALERTS = 500
# Snapshots read for one annotator's chart (the newest ones), and points drawn at most.
MAX_SNAPSHOTS = 5000
MAX_POINTS = 400
MAX_PRIVACY_MINUTES = 7 * 24 * 60
MAX_PRIVACY_POINTS = 240


def _settings(timeout_seconds: float) -> dict[str, Any]:
    # join_use_nulls: an annotator without snapshots or alerts gets NULL there, not 0 / ''.
    return {"max_execution_time": timeout_seconds, "join_use_nulls": 1}


def _utc(value: datetime) -> datetime:
    # Every time in the store is UTC; the client returns some (results of max(), ...) without
    # a zone, which a browser would read as local time.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _value(value: Any) -> Any:
    return json_value(_utc(value) if isinstance(value, datetime) else value)


def _rows(
    client: Client, sql: str, parameters: Mapping[str, Any], timeout_seconds: float
) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=dict(parameters), settings=_settings(timeout_seconds))
    names = result.column_names
    return [
        {name: _value(value) for name, value in zip(names, row, strict=True)}
        for row in result.result_rows
    ]


def _evidence(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def pool_shards(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Pool each shard's latest snapshot of one annotator into one reliability.

    ``snapshots`` are mappings with ``accuracy``, ``accuracy_low``, ``accuracy_high``,
    ``n_labels`` and ``total``, one per shard. Returns None for no snapshot.

    Examples
    --------
    >>> a = {"accuracy": 0.9, "accuracy_low": 0.8, "accuracy_high": 0.95, "n_labels": 30,
    ...      "total": 30.0}
    >>> b = {"accuracy": 0.6, "accuracy_low": 0.4, "accuracy_high": 0.75, "n_labels": 10,
    ...      "total": 10.0}
    >>> pool_shards([a, b])
    {'accuracy': 0.825, 'accuracy_low': 0.4, 'accuracy_high': 0.95, 'n_labels': 40, 'shards': 2}
    """
    rows = list(snapshots)
    if not rows:
        return None
    weight = sum(float(r["total"]) for r in rows)
    if weight > 0:
        accuracy = sum(float(r["accuracy"]) * float(r["total"]) for r in rows) / weight
    else:
        accuracy = sum(float(r["accuracy"]) for r in rows) / len(rows)
    return {
        "accuracy": round(accuracy, 6),
        "accuracy_low": min(float(r["accuracy_low"]) for r in rows),
        "accuracy_high": max(float(r["accuracy_high"]) for r in rows),
        "n_labels": sum(int(r["n_labels"]) for r in rows),
        "shards": len(rows),
    }


def annotators(
    client: Client,
    database: str,
    *,
    project: str = "",
    annotator_id: str = "",
    limit: int = 500,
    timeout_seconds: float = 10.0,
) -> dict[str, Any]:
    """The annotator table: one row per (project, annotator) with labels, agreement, gold
    accuracy, speed, pooled reliability with its interval, anomaly score and open alerts.

    ``project`` / ``annotator_id`` ('' = all) filter; at most ``limit`` rows (capped at
    :data:`MAX_ANNOTATORS`), ordered by project and annotator; ``truncated`` says whether
    there were more."""
    limit = max(1, min(int(limit), MAX_ANNOTATORS))
    where = "({project:String} = '' OR project = {project:String}) AND " + (
        "({annotator:String} = '' OR annotator_id = {annotator:String})"
    )
    db = database
    sql = f"""
        SELECT
            a.project AS project,
            a.annotator_id AS annotator_id,
            a.n_labels AS labels,
            a.agreement_rate AS agreement_rate,
            a.n_gold AS gold_seen,
            a.gold_accuracy AS gold_accuracy,
            a.median_ms / 1000 AS median_seconds,
            a.last_active AS last_active,
            r.accuracy AS accuracy,
            r.accuracy_low AS accuracy_low,
            r.accuracy_high AS accuracy_high,
            r.n_labels AS reliability_labels,
            r.shards AS shards,
            r.as_of AS reliability_as_of,
            an.newest_score AS anomaly_score,
            an.newest_detector AS anomaly_detector,
            an.newest_state AS anomaly_state,
            o.n AS open_alerts,
            o.worst AS worst_open_severity,
            o.kinds AS open_alert_kinds
        FROM (
            -- What the annotator_profile view computes, plus the median time per label.
            -- (Aliases differ from the column names: ClickHouse would read an alias there.)
            SELECT
                project,
                annotator_id,
                sum(labels) AS n_labels,
                if(sum(with_consensus) = 0, NULL, sum(agreed) / sum(with_consensus))
                    AS agreement_rate,
                sum(gold_seen) AS n_gold,
                if(sum(gold_seen) = 0, NULL, sum(gold_right) / sum(gold_seen)) AS gold_accuracy,
                quantileTDigestMerge(0.5)(duration_digest) AS median_ms,
                max(minute) AS last_active
            FROM {db}.annotator_minute_agg
            WHERE {where}
            GROUP BY project, annotator_id
            HAVING n_labels > 0
        ) AS a
        LEFT JOIN (
            -- Each shard's latest snapshot, pooled (see pool_shards).
            SELECT
                project,
                annotator_id,
                if(sum(w) > 0, sum(acc * w) / sum(w), avg(acc)) AS accuracy,
                min(low) AS accuracy_low,
                max(high) AS accuracy_high,
                sum(n) AS n_labels,
                count() AS shards,
                max(newest) AS as_of
            FROM (
                SELECT
                    project,
                    annotator_id,
                    shard,
                    argMax(accuracy, ts) AS acc,
                    argMax(accuracy_low, ts) AS low,
                    argMax(accuracy_high, ts) AS high,
                    argMax(n_labels, ts) AS n,
                    argMax(total, ts) AS w,
                    max(ts) AS newest
                FROM {db}.annotator_reliability
                WHERE {where}
                GROUP BY project, annotator_id, shard
            )
            GROUP BY project, annotator_id
        ) AS r ON r.project = a.project AND r.annotator_id = a.annotator_id
        LEFT JOIN (
            SELECT
                project,
                annotator_id,
                argMax(score, (ts, offset)) AS newest_score,
                argMax(detector, (ts, offset)) AS newest_detector,
                argMax(state, (ts, offset)) AS newest_state
            FROM {db}.alerts
            WHERE kind = 'annotator_anomaly' AND {where}
            GROUP BY project, annotator_id
        ) AS an ON an.project = a.project AND an.annotator_id = a.annotator_id
        LEFT JOIN (
            SELECT
                project,
                annotator_id,
                count() AS n,
                arrayElement(['info', 'warning', 'critical'],
                    max(multiIf(severity = 'critical', 3, severity = 'warning', 2, 1))) AS worst,
                arraySort(groupUniqArray(kind)) AS kinds
            FROM {db}.open_alerts
            WHERE annotator_id != '' AND {where}
            GROUP BY project, annotator_id
        ) AS o ON o.project = a.project AND o.annotator_id = a.annotator_id
        ORDER BY project, annotator_id
        LIMIT {{limit:UInt32}}
    """  # noqa: S608 - the database name is validated by Settings; filters are parameters
    params = {"project": project, "annotator": annotator_id, "limit": limit + 1}
    rows = _rows(client, sql, params, timeout_seconds)
    for row in rows:
        row["open_alerts"] = row["open_alerts"] or 0
        row["open_alert_kinds"] = row["open_alert_kinds"] or []
    projects = sorted({r["project"] for r in rows})
    return {
        "annotators": rows[:limit],
        "truncated": len(rows) > limit,
        "projects": projects,
    }


def reliability_series(
    snapshots: Sequence[Mapping[str, Any]], max_points: int = MAX_POINTS
) -> list[dict[str, Any]]:
    """One annotator's reliability over time, pooled over shards at every tick.

    ``snapshots`` are in time order, each with ``ts`` and ``shard`` besides the fields
    :func:`pool_shards` reads. At each tick the shards' latest snapshots so far are pooled;
    with more than ``max_points`` ticks, evenly spaced ones are kept (always the last)."""
    latest: dict[str, Mapping[str, Any]] = {}
    points: list[dict[str, Any]] = []
    i = 0
    while i < len(snapshots):
        ts = snapshots[i]["ts"]
        while i < len(snapshots) and snapshots[i]["ts"] == ts:
            latest[str(snapshots[i]["shard"])] = snapshots[i]
            i += 1
        pooled = pool_shards(latest.values())
        assert pooled is not None
        points.append({"ts": ts, **pooled})
    if len(points) > max_points > 1:
        step = (len(points) - 1) / (max_points - 1)
        points = [points[round(k * step)] for k in range(max_points)]
    return points


def annotator_detail(
    client: Client,
    database: str,
    project: str,
    annotator_id: str,
    *,
    max_points: int = MAX_POINTS,
    max_alerts: int = 50,
    timeout_seconds: float = 10.0,
) -> dict[str, Any] | None:
    """One annotator in one project: its table row, reliability over time (pooled over
    shards; the newest :data:`MAX_SNAPSHOTS` snapshots, at most ``max_points`` points), its
    newest ``max_alerts`` alert episodes, and the change points among them (drift episodes
    opened). None when the annotator has no stored labels in ``project``."""
    table = annotators(
        client,
        database,
        project=project,
        annotator_id=annotator_id,
        limit=1,
        timeout_seconds=timeout_seconds,
    )
    if not table["annotators"]:
        return None
    db = database
    params = {"project": project, "annotator": annotator_id}
    snapshots = _rows(
        client,
        f"""
        SELECT ts, shard, accuracy, accuracy_low, accuracy_high, n_labels, total
        FROM (
            SELECT ts, shard, accuracy, accuracy_low, accuracy_high, n_labels, total
            FROM {db}.annotator_reliability FINAL
            WHERE project = {{project:String}} AND annotator_id = {{annotator:String}}
            ORDER BY ts DESC, shard
            LIMIT {MAX_SNAPSHOTS}
        )
        ORDER BY ts, shard
        """,  # noqa: S608 - validated database name; filters are parameters
        params,
        timeout_seconds,
    )
    episodes = _rows(
        client,
        f"""
        SELECT
            alert_id,
            kind,
            anyIf(detector, state = 'opened') AS detector,
            argMax(severity, (ts, offset)) AS severity,
            minIf(ts, state = 'opened') AS opened_at,
            if(countIf(state = 'resolved') > 0, maxIf(ts, state = 'resolved'), NULL)
                AS resolved_at,
            argMax(score, (ts, offset)) AS score,
            any(threshold) AS threshold,
            argMax(reason, (ts, offset)) AS reason,
            argMaxIf(evidence, (ts, offset), state = 'opened') AS evidence,
            any(shard) AS shard
        FROM {db}.alerts
        WHERE project = {{project:String}} AND annotator_id = {{annotator:String}}
        GROUP BY alert_id, kind
        HAVING countIf(state = 'opened') > 0
        ORDER BY opened_at DESC, alert_id
        LIMIT {{limit:UInt32}}
        """,  # noqa: S608 - validated database name; filters are parameters
        {**params, "limit": max(1, min(int(max_alerts), MAX_ALERTS))},
        timeout_seconds,
    )
    for episode in episodes:
        episode["evidence"] = _evidence(episode["evidence"])
        episode["open"] = episode["resolved_at"] is None
    change_points = sorted(
        (
            {
                "ts": e["opened_at"],
                "alert_id": e["alert_id"],
                "detector": e["detector"],
                "severity": e["severity"],
                "reason": e["reason"],
                "evidence": e["evidence"],
                "resolved_at": e["resolved_at"],
            }
            for e in episodes
            if e["kind"] == "annotator_drift"
        ),
        key=lambda c: str(c["ts"]),
    )
    return {
        "annotator": table["annotators"][0],
        "reliability": reliability_series(snapshots, max_points),
        "snapshots_read": len(snapshots),
        "change_points": change_points,
        "alerts": episodes,
    }


def open_alerts(
    client: Client,
    database: str,
    *,
    project: str = "",
    limit: int = 200,
    timeout_seconds: float = 10.0,
) -> dict[str, Any]:
    """Open alert episodes (every kind), worst severity first, then newest; with counts per
    kind and severity over all of them (not only the ``limit`` listed)."""
    limit = max(1, min(int(limit), MAX_ALERTS))
    db = database
    where = "({project:String} = '' OR project = {project:String})"
    rows = _rows(
        client,
        f"""
        SELECT
            o.alert_id AS alert_id,
            o.project AS project,
            o.kind AS kind,
            o.severity AS severity,
            o.annotator_id AS annotator_id,
            s.subject AS subject,
            s.item_id AS item_id,
            o.detector AS detector,
            o.opened_at AS opened_at,
            o.updated_at AS updated_at,
            o.score AS score,
            o.threshold AS threshold,
            o.reason AS reason
        FROM (
            SELECT *
            FROM {db}.open_alerts
            WHERE {where}
            ORDER BY multiIf(severity = 'critical', 3, severity = 'warning', 2, 1) DESC,
                updated_at DESC, alert_id
            LIMIT {{limit:UInt32}}
        ) AS o
        LEFT JOIN (
            SELECT alert_id, any(subject) AS subject, any(item_id) AS item_id
            FROM {db}.alerts
            WHERE state = 'opened' AND {where}
            GROUP BY alert_id
        ) AS s ON s.alert_id = o.alert_id
        ORDER BY multiIf(severity = 'critical', 3, severity = 'warning', 2, 1) DESC,
            updated_at DESC, alert_id
        """,  # noqa: S608 - validated database name; filters are parameters
        {"project": project, "limit": limit},
        timeout_seconds,
    )
    counts = _rows(
        client,
        f"SELECT kind, severity, count() AS n FROM {db}.open_alerts WHERE {where} "  # noqa: S608
        "GROUP BY kind, severity ORDER BY kind, severity",
        {"project": project},
        timeout_seconds,
    )
    total = sum(int(c["n"]) for c in counts)
    return {
        "alerts": rows,
        "total": total,
        "truncated": total > len(rows),
        "by_kind": _count_by(counts, "kind"),
        "by_severity": _count_by(counts, "severity"),
    }


def _count_by(counts: Iterable[Mapping[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        out[str(c[key])] = out.get(str(c[key]), 0) + int(c["n"])
    return out


def privacy(
    client: Client,
    database: str,
    *,
    project: str = "",
    minutes: int = 180,
    max_points: int = MAX_PRIVACY_POINTS,
    timeout_seconds: float = 10.0,
) -> dict[str, Any]:
    """Privacy signals per kind over the last ``minutes`` of event time stored: the window
    ends at the newest signal's minute and starts ``minutes - 1`` minutes before, or at the
    oldest signal's minute if that is later. Buckets are whole minutes, as few as give each
    series at most ``max_points`` points. Each kind: its non-empty buckets (start, signals,
    occurrences, high or critical ones) and totals over the window."""
    minutes = max(1, min(int(minutes), MAX_PRIVACY_MINUTES))
    db = database
    where = "({project:String} = '' OR project = {project:String})"
    # The window's ends from the table itself: min and max need no FINAL (a duplicate has
    # the same ts), and no pass over privacy_minute's FINAL and GROUP BY.
    bounds = client.query(
        f"SELECT toStartOfMinute(min(ts)), toStartOfMinute(max(ts)), count() "  # noqa: S608
        f"FROM {db}.privacy_signals WHERE {where}",
        parameters={"project": project},
        settings=_settings(timeout_seconds),
    ).first_row
    if bounds is None or not bounds[2]:
        return {"kinds": [], "series": {}, "bucket_minutes": 1, "start": None, "end": None}
    oldest, end = (_utc(t) for t in bounds[:2])
    start = max(oldest, end - timedelta(minutes=minutes - 1))
    span = int((end - start).total_seconds() // 60) + 1
    bucket = max(1, -(-span // max(1, int(max_points))))
    rows = _rows(
        client,
        f"""
        SELECT
            kind,
            toStartOfInterval(minute, INTERVAL {bucket} MINUTE) AS ts,
            sum(signals) AS signals,
            sum(occurrences) AS occurrences,
            sum(serious) AS serious
        FROM {db}.privacy_minute
        WHERE {where} AND minute >= {{start:DateTime('UTC')}}
        GROUP BY kind, ts
        ORDER BY kind, ts
        """,  # noqa: S608 - validated database name, integers; filters are parameters
        {"project": project, "start": start},
        timeout_seconds,
    )
    series: dict[str, dict[str, Any]] = {}
    for row in rows:
        kind = str(row.pop("kind"))
        entry = series.setdefault(kind, {"points": [], "signals": 0, "serious": 0})
        entry["points"].append(row)
        entry["signals"] += int(row["signals"])
        entry["serious"] += int(row["serious"])
    return {
        "kinds": sorted(series),
        "series": series,
        "bucket_minutes": bucket,
        "start": _value(start),
        "end": _value(end),
    }
