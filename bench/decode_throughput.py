"""Benchmark: cost of validation and row building per event, without Kafka or ClickHouse.

This is the worker's per-event CPU work before the sink; later benchmarks (end to end through
the broker) compare against Faust's own ceiling. Prints a table and writes JSON.

    .venv/bin/python bench/decode_throughput.py [--events N] [--out bench/results/decode.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from plots import plot_next_to

from labelwatch.schemas import SourcePosition, decode_label_event
from labelwatch.simulator import LabelingSimulator, SimulationConfig, encode_event
from labelwatch.sinks.clickhouse import label_event_row


def measure(payloads: list[bytes], repeat: int) -> dict[str, float]:
    best_decode = best_row = float("inf")
    now = datetime.now(UTC)
    source = SourcePosition("labels", 0, 0)
    for _ in range(repeat):
        started = time.perf_counter()
        events = [decode_label_event(p, max_bytes=1 << 20) for p in payloads]
        best_decode = min(best_decode, time.perf_counter() - started)
        started = time.perf_counter()
        for event in events:
            label_event_row(event, source, now)
        best_row = min(best_row, time.perf_counter() - started)
    n = len(payloads)
    return {
        "events": n,
        "decode_events_per_second": n / best_decode,
        "decode_us_per_event": best_decode / n * 1e6,
        "row_us_per_event": best_row / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="bench/results/decode.json")
    args = parser.parse_args()
    sim = LabelingSimulator(SimulationConfig(seed=1))
    payloads = [
        encode_event(s.event)
        for s in islice(sim.labels(datetime(2026, 1, 1, tzinfo=UTC)), args.events)
    ]
    result = measure(payloads, args.repeat)
    result["machine"] = (
        f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}"
    )
    result["date"] = datetime.now(UTC).date().isoformat()
    print(f"{'stage':<28}{'us/event':>10}{'events/s':>14}")
    print(
        f"{'validate (pydantic)':<28}{result['decode_us_per_event']:>10.2f}"
        f"{result['decode_events_per_second']:>14,.0f}"
    )
    print(
        f"{'build ClickHouse row':<28}{result['row_us_per_event']:>10.2f}"
        f"{1e6 / result['row_us_per_event']:>14,.0f}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot_next_to(out, result, "decode")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
