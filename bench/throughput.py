"""End-to-end throughput of one worker through the real broker, beside the bare-Faust ceiling.

One run: a broker of its own (``scripts/local_kafka.py`` in a temporary directory), a topic
with one partition, ``--events`` simulated labels produced before anything consumes them.
Then, on that topic, each with a consumer group of its own:

1. the ceiling: ``bench/bare_faust.py``, a Faust agent that only ``json.loads`` each value;
   messages per second from its first message to its last;
2. the worker (``labelwatch worker``, embedded chDB store, default batching): rows per second
   into ``label_events``, from the first batch written to the last, read from the worker's
   ``labelwatch_sink_rows_written_total{table="label_events"}`` every 0.2 s;
3. latency: ``bench/alert_latency.py --quick`` at 2,000 events/s on the same broker, p99 from
   production to the row in ClickHouse.

4. batched envelopes: the same events produced to another topic in envelopes of
   ``--envelope`` events (1,000 by default), the worker's rows per second as in 2
   (``batched_events_per_second``);
5. in the full run, latency at 1,000, 2,000 and 5,000 events/s (p50 and p99 to the row and
   to the alert in ClickHouse).

Usage: ``.venv/bin/python bench/throughput.py [--quick] [--events N]``; prints a table,
writes ``bench/results/throughput.json``; the last line of stdout is one JSON object with
``events_per_second``, ``bare_faust_events_per_second``, ``ratio``,
``batched_events_per_second`` and ``p99_latency_ms_at_2000``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from _support import free_port, script
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from plots import plot_next_to

from labelwatch.settings import Settings
from labelwatch.simulator import LabelingSimulator, SimulationConfig, encode_event, kafka_batches
from labelwatch.streams.worker_process import WorkerProcess

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "throughput.json"


def log(message: str) -> None:
    print(f"[throughput] {message}", file=sys.stderr, flush=True)


def produce(bootstrap: str, topic: str, n: int, envelope: int = 1) -> float:
    """``n`` simulated labels to a new one-partition ``topic``: one per message, or in
    batched envelopes of ``envelope`` events."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    sim = LabelingSimulator(SimulationConfig(seed=5, events_per_second=500.0))
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=1 << 20,
        max_request_size=8 << 20,
    )
    started = time.monotonic()
    records: Iterable[tuple[bytes | None, bytes]] = (
        (str(label.event["item_id"]).encode(), encode_event(label.event))
        for label in islice(sim.labels(datetime(2026, 6, 1, tzinfo=UTC)), n)
    )
    if envelope > 1:
        records = kafka_batches(records, envelope, 1)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return time.monotonic() - started


def bare_faust(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bare_faust.py"),
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--events",
            str(n),
            "--group",
            f"bare-{secrets.token_hex(3)}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # Faust's worker redirects stdout to its log (stderr), so look in both.
    found = [
        line[line.index('{"events"') :]
        for line in (out.stdout + out.stderr).splitlines()
        if '{"events"' in line
    ]
    if not found:
        raise RuntimeError(f"bare Faust run failed: {out.stderr[-2000:]}")
    return dict(json.loads(found[-1]))


def rows_written(worker: WorkerProcess) -> int:
    for line in worker.get("/metrics").decode().splitlines():
        if line.startswith('labelwatch_sink_rows_written_total{table="label_events"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def worker_run(bootstrap: str, topic: str, n: int, tmp: Path) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWATCH_")}
    env.update(
        {
            "LABELWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "LABELWATCH_APP_ID": f"throughput-{tag}",
            "LABELWATCH_TOPIC_LABELS": topic,
            "LABELWATCH_TOPIC_PRIVACY": f"throughput-{tag}.privacy",
            "LABELWATCH_TOPIC_DEAD_LETTER": f"throughput-{tag}.dead-letter",
            "LABELWATCH_TOPIC_ALERTS": f"throughput-{tag}.alerts",
            "LABELWATCH_TOPIC_REVIEW": f"throughput-{tag}.review",
            "LABELWATCH_TOPIC_PARTITIONS": "1",
            "LABELWATCH_DATA_DIR": str(tmp / "worker"),
            "LABELWATCH_WEB_PORT": str(free_port()),
        }
    )
    prefix = "LABELWATCH_"
    settings = Settings(
        _env_file=None,
        **{k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)},
    )  # type: ignore[arg-type]
    worker = WorkerProcess.start(settings, tmp / "worker.log", env=env)
    try:
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            now, rows = time.monotonic(), rows_written(worker)
            if first is None and rows > 0:
                first = (now, rows)
            if rows >= n:
                break
            time.sleep(0.2)
        else:
            raise TimeoutError("the worker did not store every event in time")
        cpu = _cpu_seconds(worker.process.pid)
    finally:
        worker.stop()
    assert first is not None
    took = now - first[0]
    return {
        "events": n,
        "seconds": took,
        "events_per_second": (n - first[1]) / took,
        "worker_cpu_s": cpu,
    }


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def latency(bootstrap: str, quick: bool, rate: int = 2000) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(REPO / "bench" / "alert_latency.py"),
        "--bootstrap",
        bootstrap,
        "--rate",
        str(rate),
    ]
    if quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"latency run failed: {out.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument(
        "--quick", action="store_true", help="100k events, one 20 s latency run at 2,000/s"
    )
    parser.add_argument("--envelope", type=int, default=1000, help="events per batched envelope")
    args = parser.parse_args()
    if args.quick:
        args.events = min(args.events, 100_000)
    kafka = script("local_kafka")
    with tempfile.TemporaryDirectory(prefix="labelwatch-throughput-") as name:
        tmp = Path(name)
        broker_dir = tmp / "broker"
        broker_dir.mkdir()
        state = kafka.start(run_dir=broker_dir, port=0, timeout=180.0)
        bootstrap = str(state["bootstrap"])
        try:
            topic = f"throughput-{secrets.token_hex(3)}.labels"
            produced_s = produce(bootstrap, topic, args.events)
            log(f"produced {args.events} labels in {produced_s:.1f} s")
            ceiling = bare_faust(bootstrap, topic, args.events)
            log(f"bare Faust: {ceiling['events_per_second']:.0f} events/s")
            pipeline = worker_run(bootstrap, topic, args.events, tmp / "single")
            log(f"worker: {pipeline['events_per_second']:.0f} events/s")
            batched_topic = f"throughput-{secrets.token_hex(3)}.batched"
            produced_s = produce(bootstrap, batched_topic, args.events, args.envelope)
            log(
                f"produced {args.events} labels in envelopes of {args.envelope} in {produced_s:.1f} s"
            )
            batched = worker_run(bootstrap, batched_topic, args.events, tmp / "batched")
            log(f"worker, batched envelopes: {batched['events_per_second']:.0f} events/s")
            rates = [2000] if args.quick else [1000, 2000, 5000]
            latencies = {}
            for rate in rates:
                latencies[rate] = latency(bootstrap, args.quick, rate)
                p99 = latencies[rate].get("p99_event_to_clickhouse_ms")
                log(f"latency at {rate}/s: p99 {p99} ms")
            lat = latencies[2000]
        finally:
            kafka.stop(run_dir=broker_dir)
    summary = {
        "events": args.events,
        "events_per_second": round(pipeline["events_per_second"], 1),
        "bare_faust_events_per_second": round(ceiling["events_per_second"], 1),
        "ratio": round(pipeline["events_per_second"] / ceiling["events_per_second"], 4),
        "batched_events_per_second": round(batched["events_per_second"], 1),
        "p99_latency_ms_at_2000": lat.get("p99_event_to_clickhouse_ms"),
    }
    result = {
        "summary": summary,
        "bare_faust": ceiling,
        "worker": pipeline,
        "worker_batched": dict(batched, events_per_envelope=args.envelope),
        "latency": {str(rate): value for rate, value in latencies.items()},
        "quick": args.quick,
        "measured": datetime.now(UTC).isoformat(),
    }
    print("| path | events | events/s | ratio to bare Faust |")
    print("|---|---|---|---|")
    print(
        f"| bare Faust agent (json.loads only) | {args.events} | {ceiling['events_per_second']:.0f} | 1 |"
    )
    print(
        f"| labelwatch worker, single events | {args.events} | {pipeline['events_per_second']:.0f} | {summary['ratio']:.3f} |"
    )
    print(
        f"| labelwatch worker, envelopes of {args.envelope} | {args.events} | "
        f"{batched['events_per_second']:.0f} | "
        f"{batched['events_per_second'] / ceiling['events_per_second']:.3f} |"
    )
    print()
    print(
        "| rate (events/s) | achieved | p50 to ClickHouse (ms) | p99 to ClickHouse (ms) | p50 to alert (ms) | p99 to alert (ms) |"
    )
    print("|---|---|---|---|---|---|")
    for rate, value in latencies.items():
        print(
            f"| {rate} | {value.get('achieved_rate')} | {value.get('p50_event_to_clickhouse_ms')} | "
            f"{value.get('p99_event_to_clickhouse_ms')} | {value.get('p50_event_to_alert_clickhouse_ms')} | "
            f"{value.get('p99_event_to_alert_clickhouse_ms')} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    plot_next_to(RESULTS, result, "throughput")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
