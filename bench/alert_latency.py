"""End-to-end latency through the real components: Kafka -> worker -> ClickHouse / Alertmanager.

What it measures, from the moment an event is produced to Kafka (wall clock ``time.time()``
right before ``KafkaProducer.send``):

1. event -> ClickHouse: its row is visible in ``label_events``;
2. event -> alert in ClickHouse: the alert state (opened or resolved) reached at that label is
   visible in ``alerts``;
3. event -> Alertmanager: the alert opened at that label is listed by Alertmanager's
   ``GET /api/v2/alerts``.

How: a real single-node Kafka broker (``scripts/local_kafka.py``, reused if it already runs),
Debian's Alertmanager on a free loopback port (null receiver, no clustering), and a real
``labelwatch worker`` process (``WorkerProcess``) with fresh topics (one partition, so every
label of an annotator reaches the same monitor), its own chDB store, the default sink batch
size and flush interval, and ``LABELWATCH_ALERTMANAGER_URL`` set. Events come from
``labelwatch.simulator`` in *cohorts*: each cohort is a simulator instance of its own (own
seed and run_id, annotator ids prefixed with the cohort) with stationary annotators, fast and
constant spammers and a colluding pair. A few cohorts are active at a time; when one has sent
its share it retires and a new one joins, so new spammers appear and new alert episodes open
steadily during the whole run. A kafka-python producer (``make_producer``: acks=all,
linger 5 ms) sends them keyed by item at a fixed rate, in 10 ms ticks; each send's
``RecordMetadata`` (partition, offset) is taken in a future callback, so the pacing loop never
blocks on the broker.

Visibility is observed by polling, every ``--poll-ms`` (default 100 ms), in three threads:
the worker's read-only ``POST /query`` endpoint with
``SELECT source_partition, max(source_offset) FROM label_events GROUP BY source_partition``
(rows are written in offset order within a partition, so an event is visible at the first
poll whose maximum reaches its offset), the same endpoint with
``SELECT alert_id, state, shard, offset FROM alerts`` (``offset`` is the label at which the
state was reached), and Alertmanager's ``GET /api/v2/alerts`` (matched by the ``alert_id``
label to the opening label known from ClickHouse; only opened states count there).

Latency = the time the poll's *response arrived* minus the produce time. Measurement error:
a poll sees a row up to one poll interval plus one query round trip after it became visible,
so every figure is an over-estimate by 0 to ``poll interval + round trip`` (mean about half the
interval plus the round trip; the mean round trips are reported, and they grow when the
worker's event loop is busy, since /query is answered on it). A strict lower bound is
reported beside it: the start of the poll before, which did not show the row yet. The polls
are extra load on the worker: /query runs on the ClickHouse writer's thread, and each call
costs three chDB calls there (EXPLAIN AST, system.table_functions, the query).

Before the clock starts, ``--prime`` events of a cohort of their own are sent and awaited in
ClickHouse (partition assigned, kernels loaded, store warm); they are not measured. Events
produced in the first ``--warmup`` seconds (and alerts reached at them) are reported
separately and left out of the statistics.

Usage: ``.venv/bin/python bench/alert_latency.py [--rate 2000] [--seconds 60] [--quick]``;
prints a table and writes ``bench/results/alert_latency.json``; the last line of stdout is a
one-line JSON summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _support import free_port, script  # noqa: E402
from plots import plot_next_to  # noqa: E402

from labelwatch.settings import Settings  # noqa: E402
from labelwatch.simulator import (  # noqa: E402
    PROJECT_LABELS,
    LabelingSimulator,
    SimulationConfig,
    encode_event,
)
from labelwatch.sinks.clickhouse import database_name  # noqa: E402
from labelwatch.sinks.notify import ALERTNAME  # noqa: E402
from labelwatch.streams.produce import make_producer  # noqa: E402
from labelwatch.streams.topics import ensure_topics, wait_for_lag_zero  # noqa: E402
from labelwatch.streams.worker_process import WorkerProcess  # noqa: E402

TARGET_P99_MS = 2000.0
PATHS = ("event_to_clickhouse", "event_to_alert_clickhouse", "event_to_alertmanager")
TITLES = {
    "event_to_clickhouse": "event -> ClickHouse (label_events)",
    "event_to_alert_clickhouse": "event -> alert in ClickHouse (alerts)",
    "event_to_alertmanager": "event -> Alertmanager (opened)",
}


def log(msg: str) -> None:
    print(f"[alert_latency] {msg}", file=sys.stderr, flush=True)


# --- traffic --------------------------------------------------------------------------------
COHORT_BEHAVIOURS = {"spammer_fast": 2, "spammer_constant": 1, "colluder": 1}
COHORT_STATIONARY = 10


def cohort_events(
    seed: int, cohort_labels: int, active: int, rate: float, name: str = "c"
) -> Iterator[dict[str, object]]:
    """Simulated events from ``active`` cohorts taking turns; each sends ``cohort_labels``
    labels and is then replaced by a new one. The first ones retire early, staggered, so a
    new cohort joins every ``cohort_labels`` events of the stream and lives for
    ``active * cohort_labels`` of them."""
    n_cohorts = 0

    def new_cohort() -> Iterator[dict[str, object]]:
        nonlocal n_cohorts
        tag = f"{name}{n_cohorts:04d}"
        n_cohorts += 1
        config = SimulationConfig(
            seed=seed * 100_003 + n_cohorts,
            run_id=f"lat-{tag}",
            annotators=COHORT_STATIONARY,
            behaviours=dict(COHORT_BEHAVIOURS),
            projects={"animals": PROJECT_LABELS["animals"]},
            events_per_second=rate / active,
        )
        # Event times are overwritten at send time; the start only seeds the sequence.
        labels = LabelingSimulator(config).labels(datetime(2026, 1, 1, tzinfo=UTC))
        for simulated in labels:
            event = dict(simulated.event)
            event["annotator_id"] = f"{tag}-{event['annotator_id']}"
            yield event

    streams = [new_cohort() for _ in range(active)]
    left = [cohort_labels * (k + 1) // active for k in range(active)]
    while True:
        for k in range(active):
            if left[k] <= 0:
                streams[k], left[k] = new_cohort(), cohort_labels
            left[k] -= 1
            yield next(streams[k])


# --- observations -----------------------------------------------------------------------------
@dataclass
class Produced:
    """Per event: produce time and, once acknowledged, its partition and offset."""

    n: int
    sent_at: array[float] = field(init=False)
    partition: array[int] = field(init=False)
    offset: array[int] = field(init=False)
    failed: int = 0

    def __post_init__(self) -> None:
        self.sent_at = array("d", bytes(8 * self.n))
        self.partition = array("i", [-1]) * self.n
        self.offset = array("q", [-1]) * self.n

    def acked(self, index: int, metadata: Any) -> None:  # runs on the producer's I/O thread
        self.partition[index] = int(metadata.partition)
        self.offset[index] = int(metadata.offset)

    def failure(self, index: int, exc: BaseException) -> None:
        self.failed += 1


@dataclass
class Poller:
    """Runs ``fetch`` every ``interval`` seconds on a thread, recording (start, arrival, result)."""

    name: str
    fetch: Callable[[], Any]
    interval: float
    results: list[tuple[float, float, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"poll-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            started = time.time()
            try:
                result = self.fetch()
            except Exception as exc:  # recorded; the poll goes on
                if len(self.errors) < 1000:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                self.results.append((started, time.time(), result))
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (slow answer): poll again at once, reset the cadence
                next_at = time.monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def round_trip_ms(self) -> dict[str, float | None]:
        rtts = sorted((arrived - started) * 1e3 for started, arrived, _ in self.results)
        return {
            "polls": len(self.results),
            "errors": len(self.errors),
            "mean_ms": sum(rtts) / len(rtts) if rtts else None,
            "p99_ms": percentile(rtts, 0.99),
            "max_ms": rtts[-1] if rtts else None,
        }


class QueryClient:
    """The worker's read-only ``POST /query`` endpoint."""

    def __init__(self, base_url: str, token: str) -> None:
        self.url = base_url.rstrip("/") + "/query"
        self.token = token

    def __call__(self, sql: str) -> list[list[Any]]:
        body = json.dumps({"sql": sql, "params": {}}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise RuntimeError(f"/query HTTP {exc.code}: {detail}") from None
        if answer.get("truncated"):  # rows cut at LABELWATCH_QUERY_MAX_ROWS: not a full view
            raise RuntimeError(f"/query answer truncated at {len(answer['rows'])} rows")
        rows: list[list[Any]] = answer["rows"]
        return rows


def alertmanager_alerts(url: str) -> dict[str, str]:
    """alert_id -> state of labelwatch's alerts Alertmanager lists now."""
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as response:
        listed = json.load(response)
    return {
        a["labels"]["alert_id"]: a["status"]["state"]
        for a in listed
        if a["labels"].get("alertname") == ALERTNAME and "alert_id" in a["labels"]
    }


# --- statistics -------------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(latencies_ms: list[float], missing: int) -> dict[str, Any]:
    d = sorted(latencies_ms)
    return {
        "count": len(d),
        "not_seen": missing,
        "p50_ms": percentile(d, 0.50),
        "p90_ms": percentile(d, 0.90),
        "p99_ms": percentile(d, 0.99),
        "max_ms": d[-1] if d else None,
        "mean_ms": sum(d) / len(d) if d else None,
        "p99_under_target": None if not d else percentile(d, 0.99) < TARGET_P99_MS,  # type: ignore[operator]
    }


def visible_at(
    polls: list[tuple[float, float, Any]],
) -> dict[int, tuple[list[int], list[int]]]:
    """Per partition: the running maximum offset after each poll that listed the partition,
    and that poll's index in ``polls`` (offsets ascending: bisect for the first poll that
    showed an offset)."""
    out: dict[int, tuple[list[int], list[int]]] = {}
    for k, (_started, _arrived, rows) in enumerate(polls):
        for partition, max_offset in rows:
            offsets, at = out.setdefault(int(partition), ([], []))
            offsets.append(max(int(max_offset), offsets[-1] if offsets else -1))
            at.append(k)
    return out


def first_seen(polls: list[tuple[float, float, Any]], key: Callable[[Any], Any]) -> dict[Any, int]:
    """For each item of the polled collections: the index of the first poll listing it."""
    seen: dict[Any, int] = {}
    for k, (_started, _arrived, items) in enumerate(polls):
        for item in items:
            seen.setdefault(key(item), k)
    return seen


@dataclass
class PathLatency:
    """Latencies of one path: upper (poll arrival) and lower (start of the poll before, which
    did not show it yet) bounds, split into warm-up and measured."""

    warm_until: float
    upper: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    not_seen: int = 0

    def add(self, sent_at: float, polls: list[tuple[float, float, Any]], k: int | None) -> None:
        if k is None:
            self.not_seen += sent_at >= self.warm_until
            return
        upper = (polls[k][1] - sent_at) * 1e3
        if sent_at < self.warm_until:
            self.warm.append(upper)
            return
        self.upper.append(upper)
        self.lower.append(max(0.0, (polls[k - 1][0] - sent_at) * 1e3) if k > 0 else 0.0)
        self.sent.append(sent_at)

    def summary(self) -> dict[str, Any]:
        out = summary(self.upper, self.not_seen)
        low = sorted(self.lower)
        out["lower_bound"] = {
            "p50_ms": percentile(low, 0.5),
            "p99_ms": percentile(low, 0.99),
            "max_ms": low[-1] if low else None,
        }
        return out

    def timeline(self, started: float, step: float) -> list[dict[str, Any]]:
        """p50/p99/max of the upper bound per ``step`` seconds of produce time."""
        buckets: dict[int, list[float]] = {}
        for sent_at, value in zip(self.sent, self.upper, strict=True):
            buckets.setdefault(int((sent_at - started) // step), []).append(value)
        rows = []
        for b in sorted(buckets):
            d = sorted(buckets[b])
            rows.append(
                {
                    "from_s": b * step,
                    "n": len(d),
                    "p50_ms": percentile(d, 0.5),
                    "p99_ms": percentile(d, 0.99),
                    "max_ms": d[-1],
                }
            )
        return rows


# --- components -----------------------------------------------------------------------------
def start_alertmanager(tools: ModuleType, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Alertmanager on a free loopback port, as the tests' ``alertmanager`` fixture runs it."""
    config = tmp / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    with (tmp / "alertmanager.log").open("wb") as out:
        process = subprocess.Popen(
            [
                str(tools.binary("alertmanager")),
                f"--config.file={config}",
                f"--storage.path={tmp / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"alertmanager did not start: {(tmp / 'alertmanager.log').read_text()[-2000:]}"
            )
        time.sleep(0.2)


def worker_env(bootstrap: str, tmp: Path, am_url: str, token: str) -> dict[str, str]:
    """Environment of a worker of its own (as the tests' ``e2e_env``), with one partition."""
    tag = secrets.token_hex(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWATCH_")}
    env.update(
        {
            "LABELWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "LABELWATCH_APP_ID": f"bench-{tag}",
            "LABELWATCH_TOPIC_LABELS": f"bench-{tag}.labels",
            "LABELWATCH_TOPIC_DEAD_LETTER": f"bench-{tag}.dead-letter",
            "LABELWATCH_TOPIC_ALERTS": f"bench-{tag}.alerts",
            "LABELWATCH_TOPIC_REVIEW": f"bench-{tag}.review",
            "LABELWATCH_TOPIC_PARTITIONS": "1",
            "LABELWATCH_DATA_DIR": str(tmp / "data"),
            "LABELWATCH_WEB_PORT": str(free_port()),
            "LABELWATCH_ALERTMANAGER_URL": am_url,
        }
    )
    env["LABELWATCH_QUERY_TOKEN"] = token
    return env


def settings_for(env: dict[str, str]) -> Settings:
    """The worker's settings as this process sees them (fields Settings knows about)."""
    known = set(Settings.model_fields)
    values: dict[str, Any] = {
        k.removeprefix("LABELWATCH_").lower(): v
        for k, v in env.items()
        if k.startswith("LABELWATCH_") and k.removeprefix("LABELWATCH_").lower() in known
    }
    return Settings(_env_file=None, **values)


# --- the run ----------------------------------------------------------------------------------
@dataclass
class Run:
    produced: Produced
    started: float  # wall clock at the first send
    send_seconds: float
    events_polls: Poller
    alerts_polls: Poller
    am_polls: Poller
    final_alerts: list[list[Any]]
    drained_lag: int
    topic: str
    cpu: dict[str, Any]


def produce_paced(
    settings: Settings,
    events: Iterator[dict[str, object]],
    produced: Produced,
    rate: float,
    tick: float,
) -> tuple[float, float]:
    """Send ``produced.n`` events at ``rate``/s in ``tick``-second steps; returns the wall
    clock at the first send and the seconds until the last send (when it returns, every
    send has been acknowledged or has failed)."""
    producer = make_producer(settings)
    topic = settings.topic_labels
    sent = 0
    try:
        t0 = time.monotonic()
        wall0 = time.time()
        while sent < produced.n:
            due = min(produced.n, int((time.monotonic() - t0) * rate) + 1)
            while sent < due:
                event = next(events)
                event["ts"] = datetime.now(UTC).isoformat()
                value = encode_event(event)
                produced.sent_at[sent] = time.time()  # right before send
                future = producer.send(topic, key=str(event["item_id"]).encode(), value=value)
                future.add_callback(produced.acked, sent)
                future.add_errback(produced.failure, sent)
                sent += 1
            pause = t0 + (sent / rate) - time.monotonic()
            if pause > 0:
                time.sleep(min(tick, pause))
        took = time.monotonic() - t0
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=30)
    return wall0, took


def prime(settings: Settings, query: QueryClient, db: str, n: int, timeout_s: float) -> float:
    """Send ``n`` events of a cohort of their own and wait until ClickHouse has them: the
    worker has its partition, its kernels loaded and its store warm before the clock starts.
    Returns the seconds that took."""
    started = time.monotonic()
    producer = make_producer(settings)
    try:
        events = cohort_events(0, n, 1, 100.0, name="prime")
        futures = []
        for _ in range(n):
            event = next(events)
            event["ts"] = datetime.now(UTC).isoformat()
            key = str(event["item_id"]).encode()
            futures.append(producer.send(settings.topic_labels, key=key, value=encode_event(event)))
        last = max(f.get(timeout=60).offset for f in futures)
    finally:
        producer.close(timeout=30)
    while time.monotonic() - started < timeout_s:
        rows = query(f"SELECT max(source_offset) FROM {db}.label_events")
        if rows and rows[0][0] is not None and int(rows[0][0]) >= last:
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not store {n} priming events within {timeout_s:.0f} s")


def run(args: argparse.Namespace, tmp: Path, bootstrap: str, tools: ModuleType) -> dict[str, Any]:
    am_process, am_url = start_alertmanager(tools, tmp)
    worker: WorkerProcess | None = None
    try:
        token = secrets.token_urlsafe(24)
        env = worker_env(bootstrap, tmp, am_url, token)
        if args.sink_batch_size is not None:
            env["LABELWATCH_SINK_BATCH_SIZE"] = str(args.sink_batch_size)
        if args.sink_flush_seconds is not None:
            env["LABELWATCH_SINK_FLUSH_SECONDS"] = str(args.sink_flush_seconds)
        settings = settings_for(env)
        ensure_topics(settings)
        log(f"starting worker (log {tmp / 'worker.log'})")
        worker = WorkerProcess.start(settings, tmp / "worker.log", env=env)
        db = database_name(settings)
        query = QueryClient(f"http://{settings.web_host}:{settings.web_port}", token)
        ready_by = time.monotonic() + 60
        while True:  # 503 until the agent has opened the store
            try:
                query(f"SELECT count() FROM {db}.label_events")
                break
            except Exception as exc:
                if time.monotonic() > ready_by:
                    raise SystemExit(
                        f"the worker's /query endpoint does not answer ({exc}); it is needed "
                        "to read ClickHouse while the worker holds the chDB store"
                    ) from None
                time.sleep(0.5)

        took = prime(settings, query, db, args.prime, timeout_s=120)
        log(f"worker primed with {args.prime} events in {took:.1f} s")
        n = int(args.rate * args.seconds)
        produced = Produced(n)
        events = cohort_events(args.seed, args.cohort_labels, args.cohorts_active, args.rate)
        interval = args.poll_ms / 1e3
        events_polls = Poller(
            "label_events",
            lambda: query(
                f"SELECT source_partition, max(source_offset) FROM {db}.label_events "
                "GROUP BY source_partition"
            ),
            interval,
        )
        alerts_polls = Poller(
            "alerts",
            lambda: query(f"SELECT alert_id, state, shard, offset FROM {db}.alerts"),
            interval,
        )
        am_polls = Poller("alertmanager", lambda: alertmanager_alerts(am_url), interval)
        pollers = (events_polls, alerts_polls, am_polls)
        for p in pollers:
            p.start()
        log(f"producing {n} events at {args.rate:g}/s for {args.seconds:g} s")
        cpu0 = cpu_seconds(worker.process.pid), time.monotonic(), os.getloadavg()[0]
        wall0, took = produce_paced(settings, events, produced, args.rate, args.tick_ms / 1e3)
        log(f"sent in {took:.1f} s; waiting for the worker to catch up")
        lag = wait_for_lag_zero(settings, timeout_s=args.drain_seconds)
        cpu = {
            "worker_cores_busy": (cpu_seconds(worker.process.pid) - cpu0[0])
            / (time.monotonic() - cpu0[1]),  # CPU seconds per second, produce start to lag 0
            "load_average_1m_at_start": cpu0[2],
            "load_average_1m_at_end": os.getloadavg()[0],
            "cpus": os.cpu_count(),
        }
        # The last polls: until the newest row and every opened alert have been seen.
        last: dict[int, int] = {}
        for part, off in zip(produced.partition, produced.offset, strict=True):
            last[part] = max(last.get(part, -1), off)
        last.pop(-1, None)  # not acknowledged
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline:
            time.sleep(interval)
            seen = visible_at(list(events_polls.results))
            if all(part in seen and seen[part][0][-1] >= off for part, off in last.items()):
                break
        final_alerts = query(f"SELECT alert_id, state, shard, offset FROM {db}.alerts")
        still_open = {r[0] for r in final_alerts if r[1] == "opened"} - {
            r[0] for r in final_alerts if r[1] == "resolved"
        }
        while time.monotonic() < deadline:
            in_am = set().union(*(r for _, _, r in am_polls.results)) if am_polls.results else set()
            if still_open <= in_am:
                break
            time.sleep(interval)
        time.sleep(3 * interval)
        for p in pollers:
            p.stop()
        metrics = worker.get("/metrics").decode()
        return analyse(
            args,
            settings,
            Run(
                produced=produced,
                started=wall0,
                send_seconds=took,
                events_polls=events_polls,
                alerts_polls=alerts_polls,
                am_polls=am_polls,
                final_alerts=final_alerts,
                drained_lag=lag,
                cpu=cpu,
                topic=settings.topic_labels,
            ),
            metrics,
        )
    finally:
        if worker is not None:
            code = worker.stop()
            if code != 0:
                log(f"worker exited with {code}: {worker.log_path.read_text()[-3000:]}")
        am_process.terminate()
        try:
            am_process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            am_process.kill()
            am_process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_sum(metrics: str, prefix: str) -> dict[str, float]:
    """Sum and count of a histogram (e.g. ``labelwatch_sink_batch_seconds``) from /metrics."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        for suffix in ("_sum", "_count"):
            if line.startswith(prefix + suffix):
                out[suffix[1:]] = out.get(suffix[1:], 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def analyse(args: argparse.Namespace, settings: Settings, r: Run, metrics: str) -> dict[str, Any]:
    p = r.produced
    warm_until = r.started + args.warmup
    index = {
        (p.partition[i], p.offset[i]): i for i in range(p.n) if p.offset[i] >= 0
    }  # (partition, offset) -> event

    paths = {k: PathLatency(warm_until) for k in PATHS}

    # 1. event -> ClickHouse: the first poll whose maximum offset reaches the event's
    polls = r.events_polls.results
    seen = visible_at(polls)
    for i in range(p.n):
        if p.offset[i] < 0:
            continue
        offsets, at = seen.get(p.partition[i], ([], []))
        j = bisect_left(offsets, p.offset[i])
        paths["event_to_clickhouse"].add(p.sent_at[i], polls, at[j] if j < len(at) else None)
    last_visible = max((polls[at[-1]][1] for _, at in seen.values() if at), default=None)

    # 2. event -> alert in ClickHouse (every state), 3. -> Alertmanager (opened only)
    def label_of(shard: str, offset: int) -> int | None:
        topic, _, partition = str(shard).rpartition(":")
        if topic != r.topic:
            return None
        return index.get((int(partition), int(offset)))

    rows_seen = first_seen(r.alerts_polls.results, key=lambda row: (row[0], row[1]))
    am_seen = first_seen(r.am_polls.results, key=lambda alert_id: alert_id)
    states: dict[str, int] = {}
    unmatched = 0
    am_unseen: list[str] = []
    for alert_id, state, shard, offset in {tuple(row[:4]) for row in r.final_alerts}:
        label = label_of(shard, offset)
        if label is None:
            unmatched += 1
            continue
        states[state] = states.get(state, 0) + 1
        paths["event_to_alert_clickhouse"].add(
            p.sent_at[label], r.alerts_polls.results, rows_seen.get((alert_id, state))
        )
        if state == "opened":
            k = am_seen.get(alert_id)
            paths["event_to_alertmanager"].add(p.sent_at[label], r.am_polls.results, k)
            if k is None and p.sent_at[label] >= warm_until:
                am_unseen.append(alert_id)

    acked = sum(1 for i in range(p.n) if p.offset[i] >= 0)
    batches = metric_sum(metrics, "labelwatch_sink_batch_seconds")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_implementation()} {platform.python_version()}",
        "rate": args.rate,
        "seconds": args.seconds,
        "achieved_rate": p.n / max(r.send_seconds, 1e-9),
        "events": p.n,
        "events_acked": acked,
        "events_failed": p.failed,
        "warmup_seconds": args.warmup,
        "events_after_warmup": sum(1 for i in range(p.n) if p.sent_at[i] >= warm_until),
        "alerts": states.get("opened", 0),
        "alert_states": states,
        "alert_rows_not_from_measured_events": unmatched,  # raised by priming events
        "alert_ids_in_alertmanager": len(am_seen),
        # Alertmanager lists no alert whose endsAt passed: one resolved between two polls
        # is never seen there.
        "alertmanager_not_seen_already_resolved": len(
            set(am_unseen) & {row[0] for row in r.final_alerts if row[1] == "resolved"}
        ),
        "through_clickhouse_rate": (
            None if last_visible is None else p.n / (last_visible - r.started)
        ),
        "lag_after_drain": r.drained_lag,
        "cpu": r.cpu,
        "poll_interval_ms": args.poll_ms,
        "latency_measured_at": "arrival of the first poll response showing the row",
        "polls": {
            "label_events": r.events_polls.round_trip_ms(),
            "alerts": r.alerts_polls.round_trip_ms(),
            "alertmanager": r.am_polls.round_trip_ms(),
        },
        "poll_errors_sample": (
            r.events_polls.errors[:3] + r.alerts_polls.errors[:3] + r.am_polls.errors[:3]
        ),
        "target_p99_ms": TARGET_P99_MS,
        "latency": {k: paths[k].summary() for k in PATHS},
        "warmup_latency": {k: summary(paths[k].warm, 0) for k in PATHS},
        "event_to_clickhouse_by_5s": paths["event_to_clickhouse"].timeline(r.started, 5.0),
        "worker": {
            "sink_batch_size": settings.sink_batch_size,
            "sink_flush_seconds": settings.sink_flush_seconds,
            "topic_partitions": settings.topic_partitions,
            "alertmanager_resend_seconds": settings.alertmanager_resend_seconds,
            "sink_batches": batches.get("count"),
            "sink_batch_seconds_mean": (
                batches["sum"] / batches["count"] if batches.get("count") else None
            ),
        },
        "traffic": {
            "cohort_labels": args.cohort_labels,
            "cohorts_active": args.cohorts_active,
            "cohort": {"stationary": COHORT_STATIONARY, **COHORT_BEHAVIOURS},
            "project": "animals",
            "seed": args.seed,
            "tick_ms": args.tick_ms,
            "producer": "kafka-python, acks=all, linger_ms=5, keyed by item_id",
        },
    }


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def report(result: dict[str, Any]) -> None:
    through = result["through_clickhouse_rate"]
    print(
        f"## Alert latency, {result['date']} ({result['machine']})\n"
        f"rate {result['rate']:g}/s asked, {result['achieved_rate']:.0f}/s produced, "
        f"{fmt(through)}/s through to ClickHouse (all events / first send to last row "
        f"visible); {result['events']} events ({result['events_after_warmup']} after the "
        f"{result['warmup_seconds']:g} s warm-up), {result['alerts']} alerts opened "
        f"({json.dumps(result['alert_states'])}); worker: sink batch "
        f"{result['worker']['sink_batch_size']} rows / {result['worker']['sink_flush_seconds']:g}"
        f" s, {result['worker']['topic_partitions']} partition, "
        f"{result['cpu']['worker_cores_busy']:.2f} cores busy; load average "
        f"{result['cpu']['load_average_1m_at_start']:.1f} -> "
        f"{result['cpu']['load_average_1m_at_end']:.1f} on {result['cpu']['cpus']} cpus\n"
        f"latency = arrival of the first poll response showing it - produce time; polls every "
        f"{result['poll_interval_ms']:g} ms, so an over-estimate by up to one interval + one "
        f"round trip (mean round trips "
        + ", ".join(f"{k} {fmt(v['mean_ms'])} ms" for k, v in result["polls"].items())
        + "); 'low p99' is the p99 of a strict lower bound (start of the poll before)\n"
    )
    print("| path | n | not seen | p50 ms | p90 ms | p99 ms | max ms | low p99 ms | p99 < 2 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in PATHS:
        s = result["latency"][key]
        verdict = (
            "-" if s["p99_under_target"] is None else ("yes" if s["p99_under_target"] else "MISSED")
        )
        print(
            f"| {TITLES[key]} | {s['count']} | {s['not_seen']} | {fmt(s['p50_ms'])} | "
            f"{fmt(s['p90_ms'])} | {fmt(s['p99_ms'])} | {fmt(s['max_ms'])} | "
            f"{fmt(s['lower_bound']['p99_ms'])} | {verdict} |"
        )
    w = result["warmup_latency"]
    print(
        f"\nWarm-up (excluded): event -> ClickHouse n={w['event_to_clickhouse']['count']} "
        f"p99 {fmt(w['event_to_clickhouse']['p99_ms'])} ms; alert states "
        f"n={w['event_to_alert_clickhouse']['count']}"
    )
    print(
        "event -> ClickHouse p50/max ms by 5 s of produce time: "
        + ", ".join(
            f"{b['from_s']:.0f}s {fmt(b['p50_ms'])}/{fmt(b['max_ms'])}"
            for b in result["event_to_clickhouse_by_5s"]
        )
    )
    if through is not None and through < 0.95 * result["achieved_rate"]:
        print(
            f"The worker fell behind: {through:.0f}/s through against {result['achieved_rate']:.0f}"
            "/s produced, so a backlog grew during the run and the latencies are mostly its "
            "queueing delay (they grow with --seconds)."
        )
    missed = [TITLES[k] for k in PATHS if result["latency"][k]["p99_under_target"] is False]
    if missed:
        print(f"TARGET MISSED (p99 >= {TARGET_P99_MS:.0f} ms): {'; '.join(missed)}")
    elif all(result["latency"][k]["p99_under_target"] for k in PATHS):
        print(f"Target met: p99 < {TARGET_P99_MS:.0f} ms on all three paths.")
    else:
        print("Target not assessed: a path has no measurements.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of producing")
    parser.add_argument("--quick", action="store_true", help="a 20 s smoke run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out at the start")
    parser.add_argument("--poll-ms", type=float, default=100.0, help="visibility poll interval")
    parser.add_argument("--tick-ms", type=float, default=10.0, help="producer pacing step")
    parser.add_argument("--cohort-labels", type=int, default=2000, help="labels per cohort")
    parser.add_argument("--cohorts-active", type=int, default=4, help="cohorts at a time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--sink-batch-size", type=int, help="LABELWATCH_SINK_BATCH_SIZE (default: the worker's)"
    )
    parser.add_argument(
        "--sink-flush-seconds",
        type=float,
        help="LABELWATCH_SINK_FLUSH_SECONDS (default: the worker's)",
    )
    parser.add_argument(
        "--prime", type=int, default=500, help="events sent and stored before the clock starts"
    )
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    parser.add_argument(
        "--bootstrap", help="use this running broker instead of scripts/local_kafka.py's"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "alert_latency.json"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds = 20.0

    tools = script("debian_tools")
    tools.fetch()
    local_kafka = script("local_kafka")
    started_broker = False
    bootstrap = args.bootstrap
    if bootstrap is None:
        running = local_kafka.status()
        state = local_kafka.start(timeout=120.0)
        started_broker = running is None
        bootstrap = str(state["bootstrap"])
        log(f"broker {bootstrap} ({'started' if started_broker else 'reused'})")
    tmp = Path(tempfile.mkdtemp(prefix="labelwatch-alert-latency-"))
    try:
        result = run(args, tmp, bootstrap, tools)
    finally:
        if started_broker:
            local_kafka.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["broker"] = "started" if started_broker else "reused"
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot_next_to(args.out, result, "alert_latency")
    lat = result["latency"]
    last = {
        "rate": result["rate"],
        "achieved_rate": round(result["achieved_rate"], 1),
        "events": result["events"],
        "alerts": result["alerts"],
        "p50_event_to_clickhouse_ms": lat["event_to_clickhouse"]["p50_ms"],
        "p99_event_to_clickhouse_ms": lat["event_to_clickhouse"]["p99_ms"],
        "p50_event_to_alert_clickhouse_ms": lat["event_to_alert_clickhouse"]["p50_ms"],
        "p99_event_to_alert_clickhouse_ms": lat["event_to_alert_clickhouse"]["p99_ms"],
        "p99_event_to_alertmanager_ms": lat["event_to_alertmanager"]["p99_ms"],
        "poll_interval_ms": result["poll_interval_ms"],
        "target_met": all(lat[k]["p99_under_target"] for k in PATHS),
    }
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in last.items()}))


if __name__ == "__main__":
    main()
