"""Benchmark: the pure model path (replay, no Kafka) in labels/s, and where a label's time goes.

What one worker does per batch of raw messages (``LabelPipeline.process``), stage by stage,
in one process on a fixed list of simulated labels (``labelwatch.simulator``, 200 events/s,
24 annotators), or on one of the shared crowdsourcing data sets (``--dataset``, seeded
shuffle, 0.2 s apart):

1. validation: ``decode_label_event`` of the raw JSON bytes (pseudonymization is off by
   default; what it adds when ``pseudonym_key`` is set is shown on a line of its own, not in
   the total);
2. the model path: ``QualityTracker.apply`` (built as the worker builds it, default settings)
   on batches of ``--batch`` labels;
3. sink encoding: ``sink_rows``, the rows of every table for the batch;
4. the ClickHouse insert: ``ClickHouseWriter.write_tables`` into a fresh embedded chDB
   store in a temporary directory (on the writer thread, as the worker does).

Each batch runs 1 to 4 in turn, timed with ``time.perf_counter``; the first ``--warmup``
batches (kernel loading, first allocations) are not counted. Then a second pass, on a fresh
tracker and the same labels, splits ``apply`` into its parts: the benchmark wraps the
package's methods at run time (nothing in ``labelwatch/`` is changed), and each wrapper adds
its call's time *exclusive of the wrapped calls inside it* to its stage, so the stages add up
to the wrapped ``apply``. A wrapper costs time of its own (``wrapper_ns``, calibrated on a
trivial method: part lands in its own stage, part in its caller's); that cost times the
calls (``calls/label``) is taken off each stage, and shares of the model path are taken
within the net sum. The annotators' confusion counts are updated inside the same numba
kernel as the consensus posteriors, so "reliability" here is only their read-out (reports
with credible intervals, snapshots).

``--profile`` adds a third pass under cProfile (``bench/results/model_path.prof``) whose
inclusive times of the consensus and monitor entry points cross-check the split.

Usage: ``.venv/bin/python bench/model_path.py [--quick] [--labels N] [--dataset NAME]
[--profile]`` (``make bench-model``, ``MODEL_ARGS=--quick``). Prints a table, writes
``bench/results/model_path.json``; the last line of stdout is one JSON object with
``labels_per_second`` (all four stages), ``model_labels_per_second`` (``apply`` alone, the
ceiling of one worker) and each stage's ``share`` of the total.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import inspect
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from _support import machine
from plots import plot_next_to

from labelwatch.models import _kernels
from labelwatch.models import tracker as tracker_module
from labelwatch.models.behaviour import AgreementBeyondChance, AnomalyFeatures, SpeedRule
from labelwatch.models.consensus import StreamingConsensus, warm_up
from labelwatch.models.drift import LabelMixCusum, RandomAnsweringCusum, SpeedCusum
from labelwatch.models.monitor import AnnotatorMonitor
from labelwatch.models.reliability import AnnotatorReliability
from labelwatch.models.tracker import QualityTracker
from labelwatch.replay import ordered, read_labels
from labelwatch.schemas import LabelEvent, SourcePosition, decode_label_event
from labelwatch.schemas.pseudonym import Pseudonymizer
from labelwatch.settings import Settings
from labelwatch.simulator import LabelingSimulator, SimulationConfig, encode_event
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name, sink_rows
from labelwatch.sinks.migrations import migrate
from labelwatch.streams.app import quality_tracker

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "model_path.json"
DATASETS = REPO.parent / "shared" / "datasets"
TOPIC = "labels"
START = datetime(2026, 4, 1, tzinfo=UTC)

# Stages of QualityTracker.apply: (owner, attribute, stage). Each wrapper's time counts
# exclusive of the wrapped calls inside it, so e.g. "observe" is the monitor's own glue.
CONSENSUS_KERNEL = "consensus: numba kernel (posteriors, confusion counts, sweep)"
CONSENSUS_PYTHON = "consensus: Python around it (slots, reads, answer contexts)"
BOOKKEEPING = "tracker: segments, outcomes, item snapshots"
ROUTING = "tracker: shard routing, dedup window"
RELIABILITY = "reliability read-out (reports, snapshots)"
DRIFT = "monitor: drift detectors (3 CUSUMs)"
SPAM = "monitor: spam rules (kappa, pace)"
RELIABILITY_RULE = "monitor: low-reliability rule"
ANOMALY = "monitor: anomaly rule (features, robust z)"
COPIES = "monitor: copied answers"
MONITOR_GLUE = "monitor: observe loop, episodes, Alert objects"
CHECKPOINTS = "checkpoints (JSON state)"
STAGES: list[tuple[object, str, str]] = [
    (QualityTracker, "apply", ROUTING),
    (QualityTracker, "_learn", BOOKKEEPING),
    (QualityTracker, "_learn_segment", BOOKKEEPING),
    (StreamingConsensus, "learn_and_read", CONSENSUS_PYTHON),
    (_kernels, "learn_batch", CONSENSUS_KERNEL),
    (QualityTracker, "_snapshot", RELIABILITY),
    (AnnotatorReliability, "report", RELIABILITY),
    (AnnotatorReliability, "soft_counts", RELIABILITY),
    (tracker_module, "_watch", MONITOR_GLUE),
    (AnnotatorMonitor, "observe", MONITOR_GLUE),
    (RandomAnsweringCusum, "update", DRIFT),
    (LabelMixCusum, "update", DRIFT),
    (SpeedCusum, "update", DRIFT),
    (AnnotatorMonitor, "_drift", DRIFT),
    (AgreementBeyondChance, "update_context", SPAM),
    (SpeedRule, "update", SPAM),
    (AnnotatorMonitor, "_spam", SPAM),
    (AnnotatorMonitor, "_reliability", RELIABILITY_RULE),
    (AnomalyFeatures, "update", ANOMALY),
    (AnnotatorMonitor, "_anomaly", ANOMALY),
    (AnnotatorMonitor, "_copied", COPIES),
    (QualityTracker, "checkpoint", CHECKPOINTS),
]
STAGE_ORDER = [
    CONSENSUS_KERNEL,
    CONSENSUS_PYTHON,
    RELIABILITY,
    DRIFT,
    SPAM,
    RELIABILITY_RULE,
    ANOMALY,
    COPIES,
    MONITOR_GLUE,
    BOOKKEEPING,
    ROUTING,
    CHECKPOINTS,
]
# The entry points whose inclusive cProfile time cross-checks the split.
PROFILED = {
    ("consensus.py", "learn_and_read"): "consensus (kernel + Python)",
    ("tracker.py", "_watch"): "annotator monitor (all rules, Alert objects)",
    ("reliability.py", "report"): "reliability reports (snapshots + monitor)",
    ("tracker.py", "_snapshot"): "reliability snapshots (reports included)",
    ("tracker.py", "checkpoint"): "checkpoints",
}

Batch = list[tuple[LabelEvent, SourcePosition]]


def log(message: str) -> None:
    print(f"[model_path] {message}", file=sys.stderr, flush=True)


# --- input ---------------------------------------------------------------------------------
def simulated(n: int, seed: int) -> list[bytes]:
    sim = LabelingSimulator(SimulationConfig(seed=seed, events_per_second=200.0))
    return [encode_event(label.event) for label in islice(sim.labels(START), n)]


def from_dataset(name: str, n: int, seed: int) -> list[bytes]:
    """A shared data set's labels as events, in a seeded shuffle, 0.2 s apart."""
    rows = ordered(read_labels(DATASETS / name / "labels.csv"), seed)[:n]
    return [
        json.dumps(
            {
                "event_id": f"{name}-{i:08d}",
                "ts": (START + timedelta(seconds=0.2 * i)).isoformat(),
                "project": name,
                "item_id": row.item,
                "annotator_id": row.annotator,
                "label": row.label,
                "gold_label": row.gold,
                "duration_ms": row.duration_ms,
            },
            separators=(",", ":"),
        ).encode()
        for i, row in enumerate(rows)
    ]


def batches(payloads: Sequence[bytes], size: int) -> Iterator[tuple[int, Sequence[bytes]]]:
    for start in range(0, len(payloads), size):
        yield start, payloads[start : start + size]


def decode(chunk: Sequence[bytes], first_offset: int, max_bytes: int) -> Batch:
    """What ``decode_batch`` keeps of a batch of valid messages."""
    return [
        (decode_label_event(raw, max_bytes=max_bytes), SourcePosition(TOPIC, 0, first_offset + i))
        for i, raw in enumerate(chunk)
    ]


def fresh_tracker(settings: Settings) -> QualityTracker:
    tracker = quality_tracker(settings)
    tracker.restore(TOPIC, 0, None)  # a partition with nothing stored (the worker's first batch)
    return tracker


# --- pass 1: the four stages, unwrapped --------------------------------------------------------
async def stage_pass(
    payloads: Sequence[bytes], settings: Settings, batch_size: int, warmup: int
) -> dict[str, Any]:
    client = connect(settings=settings)
    migrate(client, database_name(settings))
    client.close()
    writer = ClickHouseWriter(connect(settings=settings), database_name(settings))
    tracker = fresh_tracker(settings)
    max_bytes = settings.max_message_bytes
    seconds = {"validation": 0.0, "model": 0.0, "sink_rows": 0.0, "insert": 0.0}
    counted = 0
    outputs = {"item_snapshots": 0, "annotator_snapshots": 0, "alerts": 0, "checkpoints": 0}
    try:
        for number, (start, chunk) in enumerate(batches(payloads, batch_size)):
            t0 = time.perf_counter()
            valid = decode(chunk, start, max_bytes)
            t1 = time.perf_counter()
            quality = tracker.apply(valid)
            t2 = time.perf_counter()
            tables = sink_rows(valid, quality, datetime.now(UTC), {TOPIC: "bench"})
            t3 = time.perf_counter()
            await writer.write_tables(tables)
            t4 = time.perf_counter()
            tracker.mark_stored(valid)
            if number < warmup:
                continue
            counted += len(valid)
            for key, delta in zip(seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                seconds[key] += delta
            outputs["item_snapshots"] += len(quality.items)
            outputs["annotator_snapshots"] += len(quality.annotators)
            outputs["alerts"] += len(quality.alerts)
            outputs["checkpoints"] += len(quality.checkpoints)
    finally:
        writer.close()
    items, annotators = tracker.tracked()
    return {
        "labels": counted,
        "us_per_label": {k: v / counted * 1e6 for k, v in seconds.items()},
        "outputs_per_1000_labels": {k: v / counted * 1000 for k, v in outputs.items()},
        "tracked_items": items,
        "tracked_annotators": annotators,
    }


def pseudonymize_cost(payloads: Sequence[bytes], max_bytes: int) -> float:
    """µs per label that ``decode_batch`` adds when a pseudonym key is set."""
    events = [decode_label_event(raw, max_bytes=max_bytes) for raw in payloads[:20_000]]
    pseudonymize = Pseudonymizer(b"a benchmark key, not a secret")
    started = time.perf_counter()
    for event in events:
        event.model_copy(update={"annotator_id": pseudonymize(event.annotator_id)})
    return (time.perf_counter() - started) / len(events) * 1e6


# --- pass 2: apply, split by wrapping the package's methods ------------------------------------
class StageClock:
    """Exclusive time and calls per stage, from wrappers installed on methods at run time.

    A wrapped call's time goes to its stage minus the time of the wrapped calls inside it.
    ``nested_calls[stage]`` counts the wrapped calls made from inside ``stage``: each leaves
    part of its wrapper's own cost in ``stage``'s time (see :func:`calibrate`)."""

    def __init__(self) -> None:
        self.exclusive_ns: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.nested_calls: dict[str, int] = {}
        # Per open wrapped call, innermost last: its stage, and the ns of wrapped calls in it.
        self._open_stages: list[str] = []
        self._open_inner_ns: list[int] = []
        self._undo: list[tuple[object, str, Any]] = []

    def wrap(self, owner: object, name: str, stage: str) -> None:
        original = vars(owner).get(name)
        if original is None or not callable(original) or isinstance(original, staticmethod):
            where = getattr(owner, "__qualname__", getattr(owner, "__name__", owner))
            raise SystemExit(f"labelwatch changed: {where}.{name} not found; update STAGES")
        for counter in (self.exclusive_ns, self.calls, self.nested_calls):
            counter.setdefault(stage, 0)
        exclusive, calls, nested = self.exclusive_ns, self.calls, self.nested_calls
        stages, inner = self._open_stages, self._open_inner_ns
        clock = time.perf_counter_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            if stages:
                nested[stages[-1]] += 1
            stages.append(stage)
            inner.append(0)
            started = clock()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = clock() - started
                stages.pop()
                exclusive[stage] += elapsed - inner.pop()
                calls[stage] += 1
                if inner:
                    inner[-1] += elapsed

        if inspect.isfunction(original):
            timed = functools.wraps(original)(timed)
        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def reset(self) -> None:
        for counter in (self.exclusive_ns, self.calls, self.nested_calls):
            for stage in counter:
                counter[stage] = 0

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def calibrate(rounds: int = 7, calls: int = 100_000) -> dict[str, float]:
    """What one wrapped call costs, in ns: ``inside``, counted in its own stage's time, and
    ``outside``, counted in the time of the stage that made the call. Medians over
    ``rounds`` of ``calls`` calls of a trivial method, nested one level deep."""

    class Probe:
        def leaf(self) -> None:
            return None

        def outer(self) -> None:
            self.leaf()

    probe = Probe()

    def per_call(fn: Any) -> float:
        started = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        return (time.perf_counter_ns() - started) / calls

    bare_leaf, bare_outer, inside, outside = [], [], [], []
    for _ in range(rounds):
        bare_leaf.append(per_call(probe.leaf))
        bare_outer.append(per_call(probe.outer))
        clock = StageClock()
        clock.wrap(Probe, "leaf", "leaf")
        clock.wrap(Probe, "outer", "outer")
        wrapped = per_call(probe.outer)
        clock.restore()
        # leaf's own record holds its body plus the inside part of its wrapper; the outer
        # record holds outer's body minus the leaf call, plus the leaf wrapper's outside part.
        leaf_inside = clock.exclusive_ns["leaf"] / calls - bare_leaf[-1]
        total = wrapped - bare_outer[-1]  # two wrappers
        inside.append(leaf_inside)
        outside.append(total / 2 - leaf_inside)
    return {
        "inside": statistics.median(inside),
        "outside": statistics.median(outside),
        "per_call": statistics.median(inside) + statistics.median(outside),
    }


def split_pass(
    payloads: Sequence[bytes], settings: Settings, batch_size: int, warmup: int
) -> dict[str, Any]:
    tracker = fresh_tracker(settings)
    clock = StageClock()
    for owner, name, stage in STAGES:
        clock.wrap(owner, name, stage)
    applied_ns = 0
    counted = 0
    try:
        for number, (start, chunk) in enumerate(batches(payloads, batch_size)):
            valid = decode(chunk, start, settings.max_message_bytes)
            if number == warmup:
                clock.reset()
            started = time.perf_counter_ns()
            tracker.apply(valid)
            elapsed = time.perf_counter_ns() - started
            tracker.mark_stored(valid)
            if number >= warmup:
                applied_ns += elapsed
                counted += len(valid)
    finally:
        clock.restore()
    cost = calibrate()
    stages = {}
    for stage in STAGE_ORDER:
        raw = clock.exclusive_ns[stage] / counted
        overhead = (
            clock.calls[stage] * cost["inside"] + clock.nested_calls[stage] * cost["outside"]
        ) / counted
        stages[stage] = {
            "us_per_label": max(raw - overhead, 0.0) / 1e3,
            "raw_us_per_label": raw / 1e3,
            "calls_per_label": clock.calls[stage] / counted,
        }
    top_calls = clock.calls[ROUTING] / counted  # apply's own wrapper: outside every stage
    return {
        "labels": counted,
        "apply_us_per_label": applied_ns / counted / 1e3,
        "wrapper_ns": cost,
        "wrapped_calls_per_label": sum(s["calls_per_label"] for s in stages.values()),
        "apply_outside_us_per_label": top_calls * cost["outside"] / 1e3,
        "stages": stages,
    }


# --- pass 3 (optional): cProfile ----------------------------------------------------------------
def profile_pass(
    payloads: Sequence[bytes], settings: Settings, batch_size: int, warmup: int, out: Path
) -> dict[str, Any]:
    tracker = fresh_tracker(settings)
    profiler = cProfile.Profile()
    work = [
        decode(chunk, start, settings.max_message_bytes)
        for start, chunk in batches(payloads, batch_size)
    ]
    for valid in work[:warmup]:
        tracker.apply(valid)
    profiler.enable()
    for valid in work[warmup:]:
        tracker.apply(valid)
    profiler.disable()
    profiler.dump_stats(str(out))
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    inclusive = {
        (Path(file).name, fn): cumulative
        for (file, _, fn), (_, _, _, cumulative, _) in stats.items()
        if Path(file).parent.name == "models"
    }
    total = inclusive[("tracker.py", "apply")]
    shares = {name: inclusive.get(key, 0.0) / total for key, name in PROFILED.items()}
    where = out.resolve()
    name = where.relative_to(REPO) if where.is_relative_to(REPO) else where
    return {"prof": str(name), "inclusive_share_of_apply": shares}


# --- report ---------------------------------------------------------------------------------------
def row(name: str, us: float, share: float | None, calls: float | None = None) -> str:
    rate = f"{1e6 / us:,.0f}" if us > 0 else ""
    pct = "" if share is None else f"{share:.1%}"
    per = "" if calls is None else f"{calls:.2f}"
    return f"| {name} | {us:.1f} | {rate} | {pct} | {per} |"


def report(stages: dict[str, Any], split: dict[str, Any], pseudonym_us: float) -> dict[str, Any]:
    us = stages["us_per_label"]
    total = sum(us.values())
    share = {k: v / total for k, v in us.items()}
    parts = split["stages"]
    split_sum = sum(part["us_per_label"] for part in parts.values())
    print("| stage | µs/label | labels/s | share of total | calls/label |")
    print("|---|---|---|---|---|")
    print(row("validation (`decode_label_event`)", us["validation"], share["validation"]))
    print(row("**model path** (`QualityTracker.apply`)", us["model"], share["model"]))
    for stage in STAGE_ORDER:
        part = parts[stage]
        within = part["us_per_label"] / split_sum
        print(
            row(
                f"  {stage}", part["us_per_label"], within * share["model"], part["calls_per_label"]
            )
        )
    print(row("sink encoding (`sink_rows`)", us["sink_rows"], share["sink_rows"]))
    print(row("ClickHouse insert (`write_tables`, chDB)", us["insert"], share["insert"]))
    print(row("**total**", total, 1.0))
    print(row("(pseudonymization, off by default)", pseudonym_us, None))
    print()
    cost = split["wrapper_ns"]
    print(
        f"Model-path stages from the wrapped pass: apply took {split['apply_us_per_label']:.1f} "
        f"µs/label there ({us['model']:.1f} unwrapped) with {split['wrapped_calls_per_label']:.1f} "
        f"wrapped calls/label at {cost['per_call']:.0f} ns each; net of that cost the stages sum "
        f"to {split_sum:.1f} µs/label. A stage's share of total is its share of that sum times "
        "the model path's share."
    )
    return {
        "us_per_label": {**us, "total": total},
        "share": share,
        "labels_per_second": 1e6 / total,
        "model_labels_per_second": 1e6 / us["model"],
        "without_clickhouse_labels_per_second": 1e6 / (total - us["insert"]),
        "model_stages": {
            stage: {**parts[stage], "share_of_model_path": parts[stage]["us_per_label"] / split_sum}
            for stage in STAGE_ORDER
        },
        "wrapped_pass": {
            "apply_us_per_label": split["apply_us_per_label"],
            "stages_sum_us_per_label": split_sum,
            "wrapped_calls_per_label": split["wrapped_calls_per_label"],
            "wrapper_ns": cost,
        },
        "pseudonymize_us_per_label": pseudonym_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30k labels instead of 200k")
    parser.add_argument("--labels", type=int, default=None)
    parser.add_argument("--batch", type=int, default=500, help="labels per batch, as the worker")
    parser.add_argument("--warmup", type=int, default=4, help="first batches not counted")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--dataset", default=None, help="a folder of ../shared/datasets")
    parser.add_argument("--profile", action="store_true", help="also a cProfile pass (.prof)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    n = args.labels or (30_000 if args.quick else 200_000)
    if args.dataset:
        payloads = from_dataset(args.dataset, n, args.seed)
        source = f"dataset {args.dataset} (seeded shuffle {args.seed})"
    else:
        payloads = simulated(n, args.seed)
        source = f"simulator (seed {args.seed}, 200 events/s, 24 annotators)"
    if len(payloads) <= args.warmup * args.batch:
        raise SystemExit(f"{len(payloads)} labels: fewer than the warm-up batches")
    log(f"{len(payloads):,} labels from the {source}")
    warm_up()
    with tempfile.TemporaryDirectory(prefix="lw-model-path-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp))
        log("pass 1: validation, apply, sink rows, ClickHouse insert")
        stages = asyncio.run(stage_pass(payloads, settings, args.batch, args.warmup))
        log("pass 2: apply with stage wrappers")
        split = split_pass(payloads, settings, args.batch, args.warmup)
        profile = None
        if args.profile:
            log("pass 3: apply under cProfile")
            prof = args.out.with_suffix(".prof")
            profile = profile_pass(payloads, settings, args.batch, args.warmup, prof)
    results = report(stages, split, pseudonymize_cost(payloads, settings.max_message_bytes))
    if profile is not None:
        print("cProfile, inclusive share of apply:")
        for name, value in profile["inclusive_share_of_apply"].items():
            print(f"  {name}: {value:.1%}")
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "parameters": {
            "labels": len(payloads),
            "counted_labels": stages["labels"],
            "batch": args.batch,
            "warmup_batches": args.warmup,
            "source": source,
            "settings": "defaults (Settings(_env_file=None)), embedded chDB in a temp dir",
        },
        "tracked_after": {
            "items": stages["tracked_items"],
            "annotators": stages["tracked_annotators"],
        },
        "outputs_per_1000_labels": stages["outputs_per_1000_labels"],
        **results,
        "profile": profile,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot_next_to(args.out, result, "model_path")
    log(f"wrote {args.out}")
    summary: dict[str, Any] = {
        "labels_per_second": round(results["labels_per_second"]),
        "model_labels_per_second": round(results["model_labels_per_second"]),
        "share": {k: round(v, 3) for k, v in results["share"].items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
