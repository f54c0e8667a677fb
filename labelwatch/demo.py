"""``labelwatch demo``: a bounded end-to-end run on the configured broker and store.

Starts a real worker process, produces simulated labeling events (and, on purpose, a few
malformed messages) for a given time, waits until the worker's consumer group has committed
everything, stops the worker with SIGTERM, and reports what reached ClickHouse and the
dead-letter topic. The store is read after the worker exits because an embedded chDB
directory can be opened by one process at a time.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from labelwatch.privacy_simulator import (
    ExposureIncident,
    PrivacySimulationConfig,
    PrivacySimulator,
    SpikeIncident,
)
from labelwatch.settings import Settings
from labelwatch.simulator import (
    MALFORMED_KINDS,
    LabelingSimulator,
    SimulatedLabel,
    SimulationConfig,
    encode_event,
    kafka_records,
    malformed_messages,
)
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.streams.dead_letter import read_dead_letters
from labelwatch.streams.produce import produce
from labelwatch.streams.topics import end_offsets, ensure_topics, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess

BAD_EVERY = 250  # about one malformed message per this many valid ones


def run_demo(settings: Settings, *, seconds: float, rate: float, seed: int) -> dict[str, Any]:
    """Run the demo and return its summary (``ok`` is False if something did not add up)."""
    run_id = f"demo-{secrets.token_hex(4)}"
    ensure_topics(settings)
    dead_letter_start = end_offsets(settings, settings.topic_dead_letter)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / "demo-worker.log"
    worker = WorkerProcess.start(settings, log_path)
    try:
        n_valid = max(1, int(seconds * rate))
        n_bad = max(MALFORMED_KINDS, n_valid // BAD_EVERY)  # every kind at least once
        bad = malformed_messages(seed, n_bad, max_message_bytes=settings.max_message_bytes)
        sim = LabelingSimulator(SimulationConfig(seed=seed, run_id=run_id))
        print(
            f"demo {run_id}: producing {n_valid} events and {len(bad)} malformed messages "
            f"over {seconds:.0f} s to {settings.topic_labels} at {settings.kafka_bootstrap}",
            file=sys.stderr,
        )
        truth: dict[str, str] = {}
        votes: dict[str, Counter[str]] = {}

        def remembered() -> Iterator[SimulatedLabel]:
            for label in sim.labels(datetime.now(UTC)):
                item = str(label.event["item_id"])
                truth[item] = label.true_label
                votes.setdefault(item, Counter())[str(label.event["label"])] += 1
                yield label

        labels_started = datetime.now(UTC)
        produced = produce(
            settings, settings.topic_labels, kafka_records(remembered(), n_valid, bad), rate=rate
        )
        signals, expected_alerts = _privacy_signals(run_id, seed, labels_started, votes)
        print(
            f"demo {run_id}: producing {len(signals)} privacy signals (two hours of event "
            f"time, with a spike, an exposure and a revoked item) to {settings.topic_privacy}",
            file=sys.stderr,
        )
        produce(
            settings,
            settings.topic_privacy,
            [(str(s["project"]).encode(), encode_event(s)) for s in signals],
        )
        lag = wait_for_lag_zero(settings, timeout_s=120)
    finally:
        exit_code = worker.stop()
    stored, per_project, duplicates = _count_rows(settings, run_id)
    signals_stored, privacy_alerts = _privacy_rows(settings, run_id)
    consensus, reliability = _quality(settings, run_id)
    kinds = {a.annotator_id: a.kind for a in sim.annotators}
    majority = {item: v.most_common(1)[0][0] for item, v in votes.items()}
    dead = read_dead_letters(settings, dead_letter_start)
    dead_by_code = Counter(d.code for d in dead)
    expected_codes = Counter(code for code, _ in bad)
    ok = (
        exit_code == 0
        and lag == 0
        and stored == n_valid
        and duplicates == 0
        and dead_by_code == expected_codes
        and signals_stored == len(signals)
        and all(privacy_alerts.get(kind, 0) >= n for kind, n in expected_alerts.items())
    )
    return {
        "ok": ok,
        "run_id": run_id,
        "messages_produced": produced,
        "events_produced": n_valid,
        "malformed_produced": len(bad),
        "events_stored": stored,
        "duplicate_rows": duplicates,
        "events_per_project": per_project,
        "dead_lettered": len(dead),
        "dead_lettered_by_code": dict(sorted(dead_by_code.items())),
        "dead_letter_examples": [
            {"code": d.code, "reason": d.reason, "offset": d.source_offset} for d in dead[:3]
        ],
        "consumer_lag": lag,
        "worker_exit_code": exit_code,
        "consensus_accuracy": _accuracy(consensus, truth),
        "majority_vote_accuracy": _accuracy(majority, truth),
        "items_with_consensus": len(consensus),
        "annotators": [
            {**r, "simulated_as": kinds.get(str(r["annotator"]), "?")} for r in reliability
        ],
        "privacy_signals_produced": len(signals),
        "privacy_signals_stored": signals_stored,
        "privacy_alerts": privacy_alerts,
        "privacy_alerts_expected_at_least": expected_alerts,
        "worker_log": str(log_path),
        "store": settings.redacted_dsn(),
    }


def print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    """Print a human-readable summary; with ``as_json`` also one JSON object as the last line."""
    print(f"labelwatch demo {summary['run_id']} -> {summary['store']}")
    print(f"  events produced      {summary['events_produced']}")
    stored, duplicates = summary["events_stored"], summary["duplicate_rows"]
    print(f"  events in ClickHouse {stored}  (duplicates: {duplicates})")
    for project, n in summary["events_per_project"].items():
        print(f"    {project:<18} {n}")
    print(f"  malformed produced   {summary['malformed_produced']}")
    print(f"  dead-lettered        {summary['dead_lettered']}")
    for code, n in summary["dead_lettered_by_code"].items():
        print(f"    {code:<26} {n}")
    for example in summary["dead_letter_examples"]:
        print(f"    e.g. offset {example['offset']}: {example['code']}: {example['reason'][:90]}")
    print(
        f"  consensus accuracy   {summary['consensus_accuracy']:.3f} on "
        f"{summary['items_with_consensus']} items (majority vote "
        f"{summary['majority_vote_accuracy']:.3f}; truth known to the simulator)"
    )
    print("  annotators, least reliable first (accuracy, 90% interval, labels, simulated as):")
    for r in summary["annotators"][:6]:
        print(
            f"    {r['annotator']:<10} {r['accuracy']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
            f" {r['labels']:>6}  {r['simulated_as']}"
        )
    print(
        f"  privacy signals      {summary['privacy_signals_produced']} produced, "
        f"{summary['privacy_signals_stored']} in ClickHouse"
    )
    for kind, n in summary["privacy_alerts"].items():
        print(f"    {kind:<26} {n} alert(s)")
    print(f"  consumer lag at end  {summary['consumer_lag']}")
    print(f"  worker exit code     {summary['worker_exit_code']}  (log: {summary['worker_log']})")
    print("  result               " + ("OK" if summary["ok"] else "MISMATCH"))
    if as_json:
        print(json.dumps(summary, sort_keys=True))


def _count_rows(settings: Settings, run_id: str) -> tuple[int, dict[str, int], int]:
    client = connect(settings=settings)
    db = database_name(settings)
    try:
        prefix = f"{run_id}-"
        rows = client.query(
            f"SELECT project, uniqExact(event_id), count() FROM {db}.label_events "  # noqa: S608
            "WHERE startsWith(event_id, {prefix:String}) GROUP BY project ORDER BY project",
            parameters={"prefix": prefix},
        ).result_rows
    finally:
        client.close()
    per_project = {str(p): int(u) for p, u, _ in rows}
    unique = sum(per_project.values())
    total = sum(int(c) for _, _, c in rows)
    return unique, per_project, total - unique


def _quality(settings: Settings, run_id: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """This run's item consensus, and every annotator's reliability pooled over shards."""
    client = connect(settings=settings)
    db = database_name(settings)
    try:
        items = client.query(
            f"SELECT item_id, consensus_label FROM {db}.item_consensus FINAL "  # noqa: S608
            "WHERE position(item_id, {run:String}) > 0",
            parameters={"run": run_id},
        ).result_rows
        # Latest snapshot per shard, then the shards' soft counts added up (pooled evidence).
        annotators = client.query(
            "SELECT annotator_id, sum(correct) / sum(total) AS accuracy, min(low), max(high), "  # noqa: S608
            "sum(labels) FROM ("
            "  SELECT project, annotator_id, shard, argMax(correct, ts) AS correct, "
            "  argMax(total, ts) AS total, argMax(accuracy_low, ts) AS low, "
            "  argMax(accuracy_high, ts) AS high, argMax(n_labels, ts) AS labels "
            f"  FROM {db}.annotator_reliability GROUP BY project, annotator_id, shard"
            ") GROUP BY annotator_id ORDER BY accuracy, annotator_id"
        ).result_rows
    finally:
        client.close()
    consensus = {str(item): str(label) for item, label in items if label is not None}
    reliability = [
        {
            "annotator": a,
            "accuracy": float(acc),
            "low": float(lo),
            "high": float(hi),
            "labels": int(n),
        }
        for a, acc, lo, hi, n in annotators
    ]
    return consensus, reliability


def _accuracy(predicted: dict[str, str], truth: dict[str, str]) -> float:
    keys = [item for item in predicted if item in truth]
    return sum(predicted[i] == truth[i] for i in keys) / len(keys) if keys else 0.0


def _privacy_signals(
    run_id: str, seed: int, now: datetime, votes: dict[str, Counter[str]]
) -> tuple[list[dict[str, object]], dict[str, int]]:
    """Two hours of simulated privacy signals up to ``now``, with a 5x spike in the last half
    hour, one critical exposure, and a revocation of the first item labeled in this run
    (backdated, so its labels are labels on a revoked item). Returns the signals and the
    alerts they must raise at least."""
    start = now - timedelta(hours=2)
    privacy = PrivacySimulator(PrivacySimulationConfig(seed=seed, run_id=f"{run_id}-p"))
    incidents: list[SpikeIncident | ExposureIncident] = [
        SpikeIncident("moderation", "pii_detected", now - timedelta(minutes=30), 1200.0),
        ExposureIncident("sentiment", now - timedelta(minutes=50), "ann-003", "sentiment-x-1"),
    ]
    signals = [s.event for s in privacy.signals(start, now, incidents)]
    expected = {"privacy_spike": 1, "privacy_exposure": 1}
    item = next(iter(votes), None)
    if item is not None:
        signals.append(
            {
                "event_id": f"{run_id}-revoke",
                "ts": start.isoformat(),
                "project": item.split("-", 1)[0],
                "source": "consent-service",
                "kind": "consent_revoked",
                "severity": "high",
                "item_id": item,
            }
        )
        expected["revoked_item_labeled"] = sum(votes[item].values())
    return signals, expected


def _privacy_rows(settings: Settings, run_id: str) -> tuple[int, dict[str, int]]:
    client = connect(settings=settings)
    db = database_name(settings)
    try:
        row = client.query(
            f"SELECT uniqExact(event_id) FROM {db}.privacy_signals "  # noqa: S608
            "WHERE startsWith(event_id, {prefix:String})",
            parameters={"prefix": f"{run_id}-"},
        ).first_row
        stored = int(row[0]) if row else 0
        alerts = client.query(
            f"SELECT kind, uniqExact(alert_id) FROM {db}.alerts "  # noqa: S608
            "WHERE state = 'opened' AND kind IN ('privacy_spike', 'privacy_exposure', "
            "'revoked_item_labeled', 'access_violation') AND ingested_at >= now() - 3600 "
            "AND (position(reason, {run:String}) > 0 OR kind != 'revoked_item_labeled') "
            "GROUP BY kind ORDER BY kind",
            parameters={"run": run_id},
        ).result_rows
    finally:
        client.close()
    return stored, {str(k): int(n) for k, n in alerts}
