"""Chaos harness: a seeded ledger of events on a real broker, workers that crash, and an
independent verifier of what ended up in ClickHouse (after Kafka's own system tests: hard
and clean bounces, a verifier outside the system under test, input set equals output set).

The ledger is produced once to the input topics, with explicit partitions so that it lands
at the same offsets on any broker. Every run consumes the same input topics with a consumer
group, a chDB store and output topics of its own; an uninterrupted *control* run gives the
expected tables, and each chaos run must end with the same rows (the shard names in alert
ids and snapshots include the topic, which all runs share).

Used by ``tests/chaos`` (short parameters, in CI) and ``bench/chaos.py`` (full ones).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from kafka import KafkaProducer

from labelwatch.privacy_simulator import PrivacySimulationConfig, PrivacySimulator, SpikeIncident
from labelwatch.replay import read_labels, read_truth
from labelwatch.settings import Settings
from labelwatch.simulator import encode_event, malformed_messages
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.streams.dead_letter import read_dead_letters
from labelwatch.streams.topics import ensure_topics, group_lag
from labelwatch.streams.worker_process import WorkerProcess

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 5, 4, tzinfo=UTC)
ONE_MB = 1_000_000


# --- the ledger ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One message of the ledger: where it goes and what it is."""

    topic: str  # "labels" or "privacy" (the run's settings name the real topics)
    partition: int
    key: bytes | None
    value: bytes
    kind: str  # "label", "signal", "poison" or "duplicate"
    event_id: str | None = None


@dataclass
class Ledger:
    records: list[Record]
    truth: dict[str, str]  # item -> true label, for the consensus accuracy check
    project: str

    def ids(self, kind: str) -> set[str]:
        return {r.event_id for r in self.records if r.kind == kind and r.event_id}

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.kind for r in self.records))


def _partition(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


def build_ledger(
    datasets: Path,
    *,
    dataset: str = "dog",
    seed: int = 7,
    partitions: int = 3,
    copies: int = 1,
    poison: int = 40,
    big_poison: int = 2,
    duplicate_every: int = 40,
    duplicate_lag: int = 150,
    seconds_per_label: float = 1.0,
) -> Ledger:
    """A shared data set's labels (seeded shuffle, ``copies`` times under new item ids and
    event ids), simulated privacy signals over the same event time with a spike, poison
    messages of every kind (``big_poison`` of them about 1 MB) spread over both topics,
    and every ``duplicate_every``-th event sent again ``duplicate_lag`` records later."""
    rows = read_labels(datasets / dataset / "labels.csv")
    truth = read_truth(datasets / dataset / "truth.csv")
    rng = random.Random(seed)
    project = dataset
    events: list[Record] = []
    for copy in range(copies):
        order = list(rows)
        rng.shuffle(order)
        for row in order:
            n = len(events)
            item = row.item if copy == 0 else f"{row.item}~{copy}"
            event = {
                "event_id": f"{dataset}-{seed}-{n:07d}",
                "ts": (START + timedelta(seconds=n * seconds_per_label)).isoformat(),
                "project": project,
                "item_id": item,
                "annotator_id": row.annotator,
                "label": row.label,
                "duration_ms": rng.randint(800, 20_000),
            }
            key = item.encode()
            events.append(
                Record(
                    "labels",
                    _partition(key, partitions),
                    key,
                    encode_event(event),
                    "label",
                    str(event["event_id"]),
                )
            )
    base_truth = dict(truth)
    for copy in range(1, copies):
        truth.update({f"{item}~{copy}": label for item, label in base_truth.items()})
    end = START + timedelta(seconds=len(events) * seconds_per_label)
    span = end - START
    simulator = PrivacySimulator(
        PrivacySimulationConfig(seed=seed, projects=(project,), run_id=f"chaos{seed}")
    )
    spike = SpikeIncident(project, "pii_detected", START + span * 0.7, 1200.0, 6.0)
    signals = [s.event for s in simulator.signals(START, end, [spike])]
    merged = _merge_by_time(events, signals, partitions)
    merged = _with_poison(merged, rng, poison, big_poison, partitions)
    merged = _with_duplicates(merged, duplicate_every, duplicate_lag)
    return Ledger(merged, truth, project)


def _merge_by_time(
    labels: list[Record], signals: list[dict[str, Any]], partitions: int
) -> list[Record]:
    out: list[Record] = []
    si = 0
    for record in labels:
        ts = json.loads(record.value)["ts"]
        while si < len(signals) and str(signals[si]["ts"]) <= ts:
            out.append(_signal_record(signals[si], partitions))
            si += 1
        out.append(record)
    out += [_signal_record(s, partitions) for s in signals[si:]]
    return out


def _signal_record(event: dict[str, Any], partitions: int) -> Record:
    key = str(event["project"]).encode()
    return Record(
        "privacy",
        _partition(key, partitions),
        key,
        encode_event(event),
        "signal",
        str(event["event_id"]),
    )


def _with_poison(
    records: list[Record], rng: random.Random, n: int, big: int, partitions: int
) -> list[Record]:
    """Malformed JSON, wrong types, unknown schema versions, invalid UTF-8, empty and
    oversized values, and ``big`` values of about 1 MB (valid JSON, unknown field)."""
    values = [v for _, v in malformed_messages(rng.randrange(1 << 30), n, max_message_bytes=ONE_MB)]
    values += [
        json.dumps({"event_id": f"big-{i}", "padding": "x" * ONE_MB}).encode() for i in range(big)
    ]
    out = list(records)
    for i, value in enumerate(values):
        at = rng.randrange(len(out) + 1)
        topic = "labels" if i % 3 else "privacy"
        out.insert(at, Record(topic, rng.randrange(partitions), None, value, "poison"))
    return out


def _with_duplicates(records: list[Record], every: int, lag: int) -> list[Record]:
    """Every ``every``-th event sent again (same key, so same partition) ``lag`` records
    later: a producer retrying after a timeout."""
    out: list[Record] = []
    pending: dict[int, list[Record]] = {}
    seen = 0
    for i, record in enumerate(records):
        out.append(record)
        for again in pending.pop(i, []):
            out.append(
                Record(
                    again.topic,
                    again.partition,
                    again.key,
                    again.value,
                    "duplicate",
                    again.event_id,
                )
            )
        if record.kind in ("label", "signal"):
            seen += 1
            if seen % every == 0:
                pending.setdefault(i + lag, []).append(record)
    return out


def produce_ledger(settings: Settings, ledger: Ledger) -> None:
    """Send the ledger to ``settings``' input topics in order (one producer, one request in
    flight, explicit partitions: the same offsets on any broker); waits for every ack."""
    topics = {"labels": settings.topic_labels, "privacy": settings.topic_privacy}
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers(),
        acks="all",
        linger_ms=5,
        max_in_flight_requests_per_connection=1,
        max_request_size=2 * ONE_MB + 65536,
        retries=5,
    )
    try:
        futures = [
            producer.send(topics[r.topic], key=r.key, value=r.value, partition=r.partition)
            for r in records_iter(ledger)
        ]
        producer.flush()
        for f in futures:
            f.get(timeout=60)
    finally:
        producer.close()


def records_iter(ledger: Ledger) -> Iterator[Record]:
    yield from ledger.records


# --- runs ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(bootstrap: str, tag: str, partitions: int) -> dict[str, str]:
    """Input topics shared by every run of a ledger (tagged ``tag``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELWATCH_", "CHAOS_"))}
    env.update(
        {
            "LABELWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "LABELWATCH_TOPIC_LABELS": f"chaos-{tag}.labels",
            "LABELWATCH_TOPIC_PRIVACY": f"chaos-{tag}.privacy",
            "LABELWATCH_TOPIC_PARTITIONS": str(partitions),
            "LABELWATCH_MAX_MESSAGE_BYTES": str(ONE_MB),
            "LABELWATCH_SINK_BATCH_SIZE": "500",
            "LABELWATCH_SINK_FLUSH_SECONDS": "0.5",
            "LABELWATCH_SINK_RETRY_MAX_SECONDS": "2",
            "LABELWATCH_RELIABILITY_SNAPSHOT_SECONDS": "60",
            "LABELWATCH_CHECKPOINT_EVERY_LABELS": "1000",
            # A killed worker's partitions move after this; the default (60 s) makes every
            # kill cost a minute of waiting.
            "LABELWATCH_KAFKA_SESSION_TIMEOUT_SECONDS": "10",
            "PYTHONPATH": str(REPO),
        }
    )
    return env


def settings_of(env: dict[str, str]) -> Settings:
    prefix = "LABELWATCH_"
    values = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Run:
    """One consumer group with its own store and output topics, over the shared inputs."""

    name: str
    env: dict[str, str]
    directory: Path
    worker: WorkerProcess | None = None
    starts: int = 0
    events: list[str] = field(default_factory=list)  # what the harness did, for reports
    rss_samples: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    def new(cls, name: str, base: dict[str, str], directory: Path) -> Run:
        tag = f"{name}-{secrets.token_hex(3)}"
        env = dict(base)
        env.update(
            {
                "LABELWATCH_APP_ID": f"chaos-{tag}",
                "LABELWATCH_TOPIC_DEAD_LETTER": f"chaos-{tag}.dead-letter",
                "LABELWATCH_TOPIC_ALERTS": f"chaos-{tag}.alerts",
                "LABELWATCH_TOPIC_REVIEW": f"chaos-{tag}.review",
                "LABELWATCH_DATA_DIR": str(directory / "data"),
                "LABELWATCH_WEB_PORT": str(free_port()),
            }
        )
        directory.mkdir(parents=True, exist_ok=True)
        return cls(name, env, directory)

    @property
    def settings(self) -> Settings:
        return settings_of(self.env)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Leave no worker behind, whatever happened."""
        if self.worker is not None and self.worker.process.poll() is None:
            self.kill()

    def start(self, **faults: str) -> WorkerProcess:
        """Start ``tests.chaos.faulty_worker`` with ``faults`` (CHAOS_* variables)."""
        self.starts += 1
        env = dict(self.env)
        env.update(faults)
        log_path = self.directory / f"worker-{self.starts}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos.faulty_worker"],
                env=env,
                cwd=REPO,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(process, self.settings, log_path)
        worker.wait_healthy(120)
        self.worker = worker
        self.events.append(f"start {self.starts}" + (f" {faults}" if faults else ""))
        return worker

    def kill(self) -> None:
        """SIGKILL: no flush, no commit."""
        assert self.worker is not None
        self.worker.process.send_signal(signal.SIGKILL)
        self.worker.process.wait()
        self.events.append("kill -9")
        self.worker = None

    def stop(self, timeout_s: float = 60.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit)."""
        assert self.worker is not None
        started = time.monotonic()
        code = self.worker.stop(timeout_s)
        took = time.monotonic() - started
        self.events.append(f"sigterm -> exit {code} in {took:.1f} s")
        self.worker = None
        return code, took

    def lag(self) -> int:
        try:
            return group_lag(self.settings)
        except Exception:  # no coordinator yet, broker restarting: unknown
            return -1

    def wait_done(self, timeout_s: float, *, restart_if_dead: bool = True) -> float:
        """Until the group's lag is 0; restarts a worker that died on its own (as a
        supervisor would). Returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self.worker is not None and self.worker.process.poll() is not None:
                self.events.append(f"worker exited by itself ({self.worker.process.returncode})")
                self.worker = None
                if not restart_if_dead:
                    raise RuntimeError(f"{self.name}: worker died; see {self.directory}")
            if self.worker is None:
                self.start()
            if self.lag() == 0:
                return time.monotonic() - started
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}: lag not 0 after {timeout_s:.0f} s; see {self.directory}")

    def wait_progress(self, minimum: int, timeout_s: float = 120.0) -> None:
        """Until at least ``minimum`` input messages are committed (or the lag is 0)."""
        total = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lag = self.lag()
            if total is None and lag > 0:
                total = lag
            if lag == 0 or (total is not None and lag >= 0 and total - lag >= minimum):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: no progress to {minimum} in {timeout_s:.0f} s")

    def sample_rss(self, stop: threading.Event, every_s: float = 0.5) -> threading.Thread:
        """Record the worker's resident memory until ``stop`` is set."""

        def loop() -> None:
            t0 = time.monotonic()
            while not stop.is_set():
                worker = self.worker
                if worker is not None and worker.process.poll() is None:
                    try:
                        rss = psutil.Process(worker.process.pid).memory_info().rss
                        self.rss_samples.append((time.monotonic() - t0, rss))
                    except psutil.Error:
                        pass
                stop.wait(every_s)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread


def prepare_topics(env: dict[str, str]) -> None:
    ensure_topics(settings_of(env))


# --- the verifier --------------------------------------------------------------------------
# Every column that is a result, none that records when or from which topic id it was
# written. Floats are rounded so that equal computations compare equal.
_QUERIES = {
    "label_events": (
        "SELECT event_id, project, item_id, annotator_id, label, consensus_label, "
        "round(consensus_confidence, 6), agrees, source_partition, source_offset "
        "FROM {db}.label_events FINAL ORDER BY event_id"
    ),
    "item_consensus": (
        "SELECT project, item_id, consensus_label, round(confidence, 6), n_votes, closed, shard, "
        "version FROM {db}.item_consensus FINAL ORDER BY project, item_id"
    ),
    "annotator_reliability": (
        "SELECT ts, project, annotator_id, shard, n_labels, round(accuracy, 6), "
        "round(correct, 6), round(total, 6) FROM {db}.annotator_reliability FINAL "
        "ORDER BY ts, project, annotator_id, shard"
    ),
    "annotator_minute": "SELECT * FROM {db}.annotator_minute ORDER BY ALL",
    "alerts": (
        "SELECT alert_id, state, kind, severity, project, subject, offset, opened_offset "
        "FROM {db}.alerts FINAL ORDER BY alert_id, state"
    ),
    "privacy_signals": (
        "SELECT event_id, kind, severity, late, source_partition, source_offset "
        "FROM {db}.privacy_signals FINAL ORDER BY event_id"
    ),
    "revoked_items": "SELECT project, item_id, event_id FROM {db}.revoked_items FINAL ORDER BY ALL",
}


@dataclass
class StoreView:
    tables: dict[str, list[tuple[Any, ...]]]
    raw_rows: dict[str, int]  # rows before merging (a row written twice shows here)
    per_id: dict[str, dict[str, int]]  # table -> event_id -> rows after FINAL


def read_store(settings: Settings) -> StoreView:
    """Read a stopped run's chDB store (only one process may open it)."""
    client = connect(settings=settings)
    db = database_name(settings)
    try:
        tables = {
            name: [tuple(r) for r in client.query(sql.format(db=db)).result_rows]
            for name, sql in _QUERIES.items()
        }
        raw = {
            t: int(client.command(f"SELECT count() FROM {db}.{t}"))
            for t in ("label_events", "privacy_signals")
        }
        per_id = {
            t: {
                str(r[0]): int(r[1])
                for r in client.query(
                    f"SELECT event_id, count() FROM {db}.{t} FINAL GROUP BY event_id"
                ).result_rows
            }
            for t in ("label_events", "privacy_signals")
        }
    finally:
        client.close()
    return StoreView(tables, raw, per_id)


@dataclass
class Verdict:
    lost: int
    duplicated: int
    unexpected: int
    raw_extra_rows: int
    dead_letters_missing: int
    dead_letters_repeated: int
    tables_differing: list[str]
    accuracy: float | None
    # For each differing table, a few rows only the run has and only the control has.
    table_diffs: dict[str, dict[str, list[tuple[Any, ...]]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.raw_extra_rows
            or self.dead_letters_missing
            or self.tables_differing
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def verify(ledger: Ledger, run: Run, control: StoreView | None) -> tuple[Verdict, StoreView]:
    """Check a finished, stopped run against the ledger and (if given) the control run."""
    view = read_store(run.settings)
    lost = duplicated = unexpected = 0
    for table, kind in (("label_events", "label"), ("privacy_signals", "signal")):
        expected = ledger.ids(kind)
        got = view.per_id[table]
        lost += len(expected - set(got))
        unexpected += len(set(got) - expected)
        duplicated += sum(n - 1 for n in got.values() if n > 1)
    raw_extra = sum(view.raw_rows[t] - len(view.per_id[t]) for t in view.raw_rows)
    missing, repeated = _dead_letter_check(ledger, run)
    differing = []
    diffs: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    if control is not None:
        differing = [t for t in _QUERIES if view.tables[t] != control.tables[t]]
        diffs = {t: _row_diff(view.tables[t], control.tables[t]) for t in differing}
    return (
        Verdict(
            lost,
            duplicated,
            unexpected,
            raw_extra,
            missing,
            repeated,
            differing,
            consensus_accuracy(view, ledger),
            diffs,
        ),
        view,
    )


def _row_diff(
    run_rows: list[tuple[Any, ...]], control_rows: list[tuple[Any, ...]], limit: int = 5
) -> dict[str, list[tuple[Any, ...]]]:
    """The first rows only the run has and only the control has (multisets)."""
    run_count, control_count = Counter(run_rows), Counter(control_rows)
    return {
        "only_in_run": list((run_count - control_count).elements())[:limit],
        "only_in_control": list((control_count - run_count).elements())[:limit],
    }


def _dead_letter_check(ledger: Ledger, run: Run) -> tuple[int, int]:
    """(poison messages not in the dead-letter topic, poison messages there more than once).

    The dead-letter topic is at-least-once (a crash after a delivery and before the commit
    sends it again); consumers deduplicate by the source coordinates in its headers."""
    settings = run.settings
    partitions = settings.topic_partitions
    dead = read_dead_letters(settings, dict.fromkeys(range(partitions), 0), timeout_s=30)
    seen = Counter((d.source_topic, d.source_partition, d.source_offset) for d in dead)
    poison = sum(1 for r in ledger.records if r.kind == "poison")
    return max(0, poison - len(seen)), sum(n - 1 for n in seen.values())


def consensus_accuracy(view: StoreView, ledger: Ledger) -> float | None:
    """Share of the ledger's items with a true label whose stored consensus equals it."""
    consensus = {
        str(row[1]): row[2] for row in view.tables["item_consensus"] if row[0] == ledger.project
    }
    scored = [consensus[item] == label for item, label in ledger.truth.items() if item in consensus]
    return sum(scored) / len(scored) if scored else None


def rss_summary(samples: list[tuple[float, int]]) -> dict[str, float]:
    if not samples:
        return {}
    values = [rss for _, rss in samples]
    return {"rss_min_mb": min(values) / 2**20, "rss_max_mb": max(values) / 2**20}
