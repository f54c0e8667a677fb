"""Scale-out: one worker vs two workers in one consumer group, same events, same results.

What. The speed-up of two ``labelwatch worker`` processes sharing one consumer group over
one worker, on a labels topic with ``--partitions`` (4) partitions, and a check that the
two workers together store exactly what the one worker stored.

How. Each run (1 worker, then 2) gets a broker of its own (``scripts/local_kafka.py`` in a
temporary directory), so both runs use the same topic names: shard names and alert ids
(which include the topic) can then be compared as they are. The run creates the topics,
starts its workers at once (one consumer group, one ``LABELWATCH_APP_ID``) and waits until
the group is settled: ``describe_groups`` shows it ``Stable`` with one member per worker,
each member holding labels partitions, together all of them, none twice; and every
worker's log names the same, latest generation ("Successfully synced group ... with
generation N"), checked twice one second apart. Only then are the ``--events`` labels
produced: the same deterministic sequence every run (``LabelingSimulator`` seed 5, built
before the run starts), keyed by ``item_id`` with an explicit partition
``crc32(key) % partitions``, sent in order, so every label lands at the same partition and
offset in both runs. Throughput is events per second from the first row
stored to the last: the sum over the workers of
``labelwatch_sink_rows_written_total{table="label_events"}`` read from each worker's
``/metrics`` every 0.2 s. Production runs concurrently with consumption (its rate is
reported; it is far faster than the workers).

Identity. After every label is stored, the run reads the group and the logs again (a
rebalance during the run, i.e. a new generation or a changed assignment, is reported and
fails the identity check), stops its workers with SIGTERM at the same moment, and the
verifier of the chaos tests (``tests.chaos.harness.read_store``) reads each worker's store:
``label_events`` (the consensus of every label), ``item_consensus``,
``annotator_reliability`` snapshots, ``alerts``, ``privacy_signals`` and
``revoked_items``, every result column and none that records when a row was written. The
2-worker union of those rows must equal the 1-worker rows as multisets. The per-minute
aggregates are partial in each 2-worker store (an annotator labels in every partition),
so for them the additive columns of ``annotator_minute_agg`` (labels, with consensus,
agreed, gold seen, gold right) are summed over the stores and the opened alerts counted
as distinct ids, as a ClickHouse server shared by both workers would merge them; the
median duration (a t-digest, not mergeable from two finalised stores) is not compared,
its inputs (the label rows) are. The JSON lists the differences per table with sample
rows: the two runs cut the stream into batches differently (one worker takes batches from
four partitions, each of two from two), so any result that depends on the batch cuts,
and not only on the events, shows up there.

Limits. Production workers share one ClickHouse server; none can run here, and the
embedded chDB store admits one process per directory, so each worker has a store of its
own. That is valid only while partitions stay where they were first assigned (a worker
restores a partition's model state from its own store), hence the wait for a settled
group before producing and the rebalance check. The broker, the producer and the two
workers share the machine's cores (2 on the reference machine): the speed-up is bounded
by that, and by whatever else runs on the machine (the load average before each run is
recorded). The target is 1.7x.

Usage: ``.venv/bin/python bench/scale_out.py [--quick] [--events N] [--partitions P]``;
prints a table, writes ``bench/results/scale_out.json``; the last line of stdout is one
JSON object with ``one_worker_events_per_second``, ``two_workers_events_per_second``,
``speedup``, ``identical`` and ``differences``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _support import free_port, script  # noqa: E402
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402
from plots import plot_next_to  # noqa: E402

from labelwatch.settings import Settings  # noqa: E402
from labelwatch.simulator import LabelingSimulator, SimulationConfig, encode_event  # noqa: E402
from labelwatch.sinks.clickhouse import connect, database_name  # noqa: E402
from labelwatch.streams.topics import ensure_topics  # noqa: E402
from labelwatch.streams.worker_process import WorkerProcess  # noqa: E402
from tests.chaos.harness import read_store  # noqa: E402

RESULTS = REPO / "bench" / "results" / "scale_out.json"
TOPIC = "scale-out"  # every run has a broker of its own, so the names can repeat
TARGET_SPEEDUP = 1.7
_SYNCED = re.compile(r"Successfully synced group (\S+) with generation (\d+)")
# Per-minute aggregates of one store, in a form two stores can be merged from.
_MINUTE_SUMS = (
    "SELECT project, annotator_id, minute, sum(labels), sum(with_consensus), sum(agreed), "
    "sum(gold_seen), sum(gold_right) FROM {db}.annotator_minute_agg "
    "GROUP BY project, annotator_id, minute"
)
_MINUTE_ALERTS = (
    "SELECT DISTINCT project, annotator_id, toStartOfMinute(ts), alert_id "
    "FROM {db}.alerts WHERE state = 'opened'"
)

Row = tuple[Any, ...]


def log(message: str) -> None:
    print(f"[scale-out] {message}", file=sys.stderr, flush=True)


# --- the events ----------------------------------------------------------------------------
def build_events(n: int, partitions: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of ``n`` simulated labels: the same list every call."""
    sim = LabelingSimulator(SimulationConfig(seed=5, events_per_second=500.0))
    out = []
    for label in islice(sim.labels(datetime(2026, 6, 1, tzinfo=UTC)), n):
        key = str(label.event["item_id"]).encode()
        out.append((zlib.crc32(key) % partitions, key, encode_event(label.event)))
    return out


@dataclass
class Production:
    seconds: float = 0.0
    cpu_s: float = 0.0
    error: BaseException | None = None


def produce(bootstrap: str, topic: str, events: list[tuple[int, bytes, bytes]]) -> Production:
    """Send ``events`` in order and wait for every ack.

    aiokafka (Faust's client), not kafka-python: on this machine kafka-python's producer
    spends about 100 us of CPU per record (7 s for 50k), five times aiokafka's, and the
    producer shares the cores with the workers it feeds. aiokafka keeps at most one batch
    per partition in flight, so records keep their order (and offsets) within a partition.
    """
    result = Production()
    started, cpu0 = time.monotonic(), time.thread_time()

    async def send_all() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks=1, linger_ms=5, max_batch_size=256 * 1024
        )
        await producer.start()
        try:
            pending = [
                await producer.send(topic, value, key=key, partition=partition)
                for partition, key, value in events
            ]
            await producer.flush()
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    asyncio.run(send_all())
    result.seconds = time.monotonic() - started
    result.cpu_s = time.thread_time() - cpu0
    return result


# --- workers and the group -----------------------------------------------------------------
def worker_env(bootstrap: str, app_id: str, data_dir: Path, partitions: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWATCH_")}
    env.update(
        {
            "LABELWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "LABELWATCH_APP_ID": app_id,
            "LABELWATCH_TOPIC_LABELS": f"{TOPIC}.labels",
            "LABELWATCH_TOPIC_PRIVACY": f"{TOPIC}.privacy",
            "LABELWATCH_TOPIC_DEAD_LETTER": f"{TOPIC}.dead-letter",
            "LABELWATCH_TOPIC_ALERTS": f"{TOPIC}.alerts",
            "LABELWATCH_TOPIC_REVIEW": f"{TOPIC}.review",
            "LABELWATCH_TOPIC_PARTITIONS": str(partitions),
            "LABELWATCH_DATA_DIR": str(data_dir),
            "LABELWATCH_WEB_PORT": str(free_port()),
        }
    )
    return env


def settings_of(env: dict[str, str]) -> Settings:
    prefix = "LABELWATCH_"
    values: dict[str, Any] = {
        k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)
    }
    return Settings(_env_file=None, **values)


def start_workers(envs: list[dict[str, str]], tmp: Path) -> list[WorkerProcess]:
    """Start every worker at the same time (so the group forms once) and wait for /health."""
    started: list[WorkerProcess | None] = [None] * len(envs)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            started[i] = WorkerProcess.start(
                settings_of(envs[i]), tmp / f"worker-{i}.log", env=envs[i]
            )
        except BaseException as exc:  # reported below, after the other starts ended
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(envs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    workers = [w for w in started if w is not None]
    if errors:
        stop_workers(workers)
        raise errors[0]
    return workers


def stop_workers(workers: list[WorkerProcess]) -> list[int]:
    """SIGTERM every worker at once (no worker outlives the others to take their partitions
    while it is being measured) and wait for them; returns their exit codes."""
    codes = [0] * len(workers)

    def one(i: int) -> None:
        codes[i] = workers[i].stop()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def generations(worker: WorkerProcess) -> list[int]:
    """Every generation the worker synced with, from its log, oldest first."""
    text = worker.log_path.read_text(errors="replace")
    return [int(m.group(2)) for m in _SYNCED.finditer(text)]


def group_assignment(bootstrap: str, group: str, topic: str) -> tuple[str, list[list[int]]]:
    """(group state, the labels partitions of each member)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    members = []
    for member in described.get("members", []):
        assignment = member.get("member_assignment") or {}
        parts: list[int] = []
        if isinstance(assignment, dict):
            for entry in assignment.get("assigned_partitions", []):
                if entry.get("topic") == topic:
                    parts += [int(p) for p in entry.get("partitions", [])]
        members.append(sorted(parts))
    return str(described.get("group_state")), sorted(members)


def settled(
    bootstrap: str, group: str, topic: str, workers: list[WorkerProcess], partitions: int
) -> dict[str, Any] | None:
    """The group's state if it is settled (see the module doc), else None."""
    try:
        state, members = group_assignment(bootstrap, group, topic)
    except Exception:  # no coordinator yet on a fresh broker: not settled
        return None
    flat = [p for m in members for p in m]
    latest = {(generations(w) or [-1])[-1] for w in workers}
    ok = (
        state == "Stable"
        and len(members) == len(workers)
        and all(members)
        and sorted(flat) == list(range(partitions))
        and len(latest) == 1
        and -1 not in latest
    )
    if not ok:
        return None
    return {
        "state": state,
        "assignment": members,
        "generation": latest.pop(),
        "syncs_per_worker": [len(generations(w)) for w in workers],
    }


def wait_settled(
    bootstrap: str,
    group: str,
    topic: str,
    workers: list[WorkerProcess],
    partitions: int,
    timeout_s: float = 180.0,
) -> dict[str, Any]:
    """Until :func:`settled` gives the same answer twice, one second apart."""
    deadline = time.monotonic() + timeout_s
    previous = None
    while time.monotonic() < deadline:
        for w in workers:
            if w.process.poll() is not None:
                raise RuntimeError(f"worker exited with {w.process.returncode}; see {w.log_path}")
        now = settled(bootstrap, group, topic, workers, partitions)
        if now is not None and now == previous:
            return now
        previous = now
        time.sleep(1.0)
    raise TimeoutError(f"group {group} not settled after {timeout_s:.0f} s")


def rows_written(worker: WorkerProcess) -> int:
    for line in worker.get("/metrics").decode().splitlines():
        if line.startswith('labelwatch_sink_rows_written_total{table="label_events"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- one run -------------------------------------------------------------------------------
@dataclass
class RunResult:
    workers: int
    events: int
    seconds: float
    events_per_second: float
    rows_per_worker: list[int]
    cpu_s_per_worker: list[float]
    broker_cpu_s: float | None
    producer: dict[str, float]
    group: dict[str, Any]
    rebalanced: bool
    exit_codes: list[int]
    loadavg_before: list[float]
    stores: list[Settings] = field(repr=False, default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "stores"}


def run(
    n_workers: int,
    events: list[tuple[int, bytes, bytes]],
    partitions: int,
    tmp: Path,
    kafka: Any,
) -> RunResult:
    """One broker, ``n_workers`` workers in one group, the events, until all are stored."""
    rundir = tmp / f"run-{n_workers}"
    (rundir / "broker").mkdir(parents=True)
    loadavg = [round(x, 2) for x in os.getloadavg()]
    state = kafka.start(run_dir=rundir / "broker", port=0, timeout=180.0)
    bootstrap = str(state["bootstrap"])
    group = f"scale-out-{n_workers}"
    envs = [
        worker_env(bootstrap, group, rundir / f"store-{i}", partitions) for i in range(n_workers)
    ]
    settings = [settings_of(e) for e in envs]
    topic = settings[0].topic_labels
    n = len(events)
    try:
        ensure_topics(settings[0])
        workers = start_workers(envs, rundir)
        try:
            before = wait_settled(bootstrap, group, topic, workers, partitions)
            log(
                f"{n_workers} worker(s): group stable, generation {before['generation']}, "
                f"labels partitions {before['assignment']}; producing {n} events"
            )
            cpu0 = [cpu_seconds(w.process.pid) for w in workers]
            broker_pid = int(state["pid"])
            broker0 = cpu_seconds(broker_pid)
            production = Production()

            def send() -> None:
                try:
                    done = produce(bootstrap, topic, events)
                    production.seconds, production.cpu_s = done.seconds, done.cpu_s
                except BaseException as exc:
                    production.error = exc

            producer = threading.Thread(target=send, daemon=True)
            producer.start()
            first: tuple[float, int] | None = None
            deadline = time.monotonic() + 3600
            while True:
                for w in workers:
                    if w.process.poll() is not None:
                        raise RuntimeError(f"worker exited; see {w.log_path}")
                if production.error is not None:
                    raise RuntimeError("production failed") from production.error
                now = time.monotonic()
                per_worker = [rows_written(w) for w in workers]
                total = sum(per_worker)
                if first is None and total > 0:
                    first = (now, total)
                if total >= n:
                    break
                if now > deadline:
                    raise TimeoutError(f"only {total} of {n} rows stored; see {rundir}")
                time.sleep(0.2)
            assert first is not None
            took = now - first[0]
            cpu = [cpu_seconds(w.process.pid) - c for w, c in zip(workers, cpu0, strict=True)]
            broker_cpu = cpu_seconds(broker_pid) - broker0
            producer.join(timeout=60)
            after = settled(bootstrap, group, topic, workers, partitions)
            rebalanced = after is None or after != before
            if rebalanced:
                log(f"REBALANCE during the run: before {before}, after {after}")
        finally:
            codes = stop_workers(workers)
    finally:
        kafka.stop(run_dir=rundir / "broker")
    rate = (n - first[1]) / took
    log(
        f"{n_workers} worker(s): {rate:.0f} events/s over {took:.1f} s; producer "
        f"{n / production.seconds:.0f} events/s; CPU s {[round(c, 1) for c in cpu]}"
    )
    return RunResult(
        workers=n_workers,
        events=n,
        seconds=round(took, 2),
        events_per_second=round(rate, 1),
        rows_per_worker=per_worker,
        cpu_s_per_worker=[round(c, 2) for c in cpu],
        broker_cpu_s=round(broker_cpu, 2),
        producer={
            "seconds": round(production.seconds, 2),
            "events_per_second": round(n / production.seconds, 1),
            "cpu_s": round(production.cpu_s, 2),
        },
        group={"before": before, "after": after},
        rebalanced=rebalanced,
        exit_codes=codes,
        loadavg_before=loadavg,
        stores=settings,
    )


# --- identity ------------------------------------------------------------------------------
def read_tables(stores: list[Settings]) -> tuple[dict[str, Counter[Row]], dict[str, Any]]:
    """The result tables of stopped stores, merged as one shared server would hold them,
    plus a count of the label rows per store (for loss and duplicate checks)."""
    tables: dict[str, Counter[Row]] = {}
    minute: dict[Row, list[int]] = {}
    minute_alerts: dict[Row, set[str]] = {}
    checks: dict[str, Any] = {"label_rows": [], "label_rows_raw": [], "label_ids_repeated": 0}
    for settings in stores:
        view = read_store(settings)
        for name, rows in view.tables.items():
            if name != "annotator_minute":
                tables.setdefault(name, Counter()).update(rows)
        checks["label_rows"].append(len(view.per_id["label_events"]))
        checks["label_rows_raw"].append(view.raw_rows["label_events"])
        checks["label_ids_repeated"] += sum(n - 1 for n in view.per_id["label_events"].values())
        client = connect(settings=settings)
        db = database_name(settings)
        try:
            for r in client.query(_MINUTE_SUMS.format(db=db)).result_rows:
                sums = minute.setdefault(tuple(r[:3]), [0] * 5)
                for i, v in enumerate(r[3:]):
                    sums[i] += int(v)
            for r in client.query(_MINUTE_ALERTS.format(db=db)).result_rows:
                minute_alerts.setdefault(tuple(r[:3]), set()).add(str(r[3]))
        finally:
            client.close()
    keys = set(minute) | set(minute_alerts)
    tables["annotator_minute"] = Counter(
        (*k, *minute.get(k, [0] * 5), len(minute_alerts.get(k, ()))) for k in keys
    )
    return tables, checks


def compare(one: dict[str, Counter[Row]], two: dict[str, Counter[Row]]) -> dict[str, Any]:
    """Per table: rows in the 1-worker store, rows of it missing from the 2-worker union,
    rows of the union not in it, and up to 5 of each."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(one) | set(two)):
        a, b = one.get(name, Counter()), two.get(name, Counter())
        missing, extra = a - b, b - a
        out[name] = {
            "rows": sum(a.values()),
            "missing": sum(missing.values()),
            "extra": sum(extra.values()),
        }
        if missing or extra:
            out[name]["missing_rows"] = [list(r) for r in sorted(missing, key=repr)[:5]]
            out[name]["extra_rows"] = [list(r) for r in sorted(extra, key=repr)[:5]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="50k events (a few minutes)")
    args = parser.parse_args()
    if args.quick:
        args.events = min(args.events, 50_000)
    if args.partitions < 2:
        parser.error("two workers need at least 2 partitions")
    started = time.monotonic()
    events = build_events(args.events, args.partitions)
    per_partition = Counter(p for p, _, _ in events)
    log(f"{len(events)} events, per partition {dict(sorted(per_partition.items()))}")
    kafka = script("local_kafka")
    with tempfile.TemporaryDirectory(prefix="labelwatch-scale-out-") as name:
        tmp = Path(name)
        one = run(1, events, args.partitions, tmp, kafka)
        two = run(2, events, args.partitions, tmp, kafka)
        tables_one, checks_one = read_tables(one.stores)
        tables_two, checks_two = read_tables(two.stores)
    per_table = compare(tables_one, tables_two)
    rows_compared = sum(int(t["rows"]) for t in per_table.values())
    differences = sum(int(t["missing"]) + int(t["extra"]) for t in per_table.values())
    complete = all(
        sum(c["label_rows"]) == args.events and c["label_ids_repeated"] == 0
        for c in (checks_one, checks_two)
    )
    clean_exit = not any(one.exit_codes + two.exit_codes)
    identical = differences == 0 and complete and not one.rebalanced and not two.rebalanced
    speedup = two.events_per_second / one.events_per_second
    summary = {
        "events": args.events,
        "partitions": args.partitions,
        "one_worker_events_per_second": one.events_per_second,
        "two_workers_events_per_second": two.events_per_second,
        "speedup": round(speedup, 3),
        "target_speedup": TARGET_SPEEDUP,
        "target_met": speedup >= TARGET_SPEEDUP,
        "identical": identical,
        "rows_compared": rows_compared,
        "differences": differences,
        "differing_tables": [k for k, t in per_table.items() if t["missing"] or t["extra"]],
        "rebalanced": one.rebalanced or two.rebalanced,
    }
    result = {
        "summary": summary,
        "runs": [one.as_dict(), two.as_dict()],
        "comparison": per_table,
        "stores": {"one_worker": checks_one, "two_workers": checks_two},
        "clean_exit": clean_exit,
        "events_per_partition": {str(k): v for k, v in sorted(per_partition.items())},
        "machine": {
            "cpu_count": os.cpu_count(),
            "shared": "broker, producer and workers run on the same cores",
        },
        "quick": args.quick,
        "wall_seconds": round(time.monotonic() - started, 1),
        "measured": datetime.now(UTC).isoformat(),
    }
    print(
        "| run | workers | events | seconds | events/s | speed-up | CPU s per worker "
        "| rows compared | differences |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in (("one worker", one), ("two workers, one group", two)):
        is_two = r is two
        print(
            f"| {label} | {r.workers} | {r.events} | {r.seconds:.1f} | "
            f"{r.events_per_second:.0f} | {speedup if is_two else 1.0:.2f} | "
            f"{' + '.join(f'{c:.1f}' for c in r.cpu_s_per_worker)} | "
            f"{rows_compared if is_two else '(reference)'} | "
            f"{differences if is_two else ''} |"
        )
    print(
        f"producer: {one.producer['events_per_second']:.0f} / "
        f"{two.producer['events_per_second']:.0f} events/s; cores: {os.cpu_count()} shared by "
        f"broker, producer and workers; identical: {identical} "
        f"(differing tables: {summary['differing_tables'] or 'none'}); "
        f"rebalance during a run: {summary['rebalanced']}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot_next_to(RESULTS, result, "scale_out")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
