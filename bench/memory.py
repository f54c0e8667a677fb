"""Benchmark: a worker's resident memory per 100k tracked items and per 10k annotators.

Each scenario runs in a fresh Python process (this script with ``--child``), so that every
measurement starts from the same clean baseline: RSS after the imports, a tracker built as
the worker builds it (``quality_tracker``, default settings) with its dedup window already
full (100,000 UUID ids passed to ``restore``, as after a restart of a busy partition) and
the kernels loaded; then labels are fed to ``QualityTracker.apply`` in batches of 500, as the worker does, and RSS is
read again after ``gc.collect()``. The process's RSS grows with what the tracker holds but
also keeps memory the allocator has not given back (after checkpoints, every 20,000 labels
by default, and snapshots); both are in a worker's RSS, so both are counted, and the RSS
after glibc's ``malloc_trim(0)`` is reported beside it. Each figure is the least-squares
slope of the RSS growth over two or more sizes, so what does not grow with them (imports,
the full dedup window, per-annotator state in (a), copy-detection pairs at their cap in (b))
drops out. The peak RSS (``VmHWM``) growth is fitted too: checkpoints serialise the whole
state, so the peak grows faster than what is held between batches. So is what the tracker
holds (the bytes of every object reachable from it, numpy capacity included), which tells
the state itself from what the allocator keeps.

Scenarios, all one partition and one project, four classes with a skewed prior, annotators
of accuracy 0.65-0.95 (one in ten at 0.4), 5% gold items, increasing event times 0.1 s apart,
realistic ids (UUID event ids):

a. items: ``--items`` sizes (default 50k and 150k; quick 10k and 30k) distinct items, 3
   labels each from a pool of 200 annotators, items opened in blocks of 1,000 whose labels
   come in three rounds;
b. annotators: ``--annotators`` sizes (default 1k and 3k; quick 400 and 800) distinct
   annotators with 50 labels each (every per-annotator window of the monitor full: 30
   labels for the drift detectors, 50 for the pace rule) on a fixed pool of items (3 labels
   per item in the smallest run: 16,666 items; quick 6,666), each opened by one label and
   then labeled at random: the item arrays and the dedup window are the same size for every
   annotator count;
c. dedup window: a ``RecentIds`` of 100k and 200k UUID event ids, alone.

Bounds, all left at their defaults: ``max_items_per_shard`` (1,000,000 open items per
partition and project) and ``item_ttl_seconds`` (7 days of event time; the longest run spans
under a day) would close items and are not reached; ``tracker.tracked()`` confirms the
counts held. ``dedup_window`` (100,000 ids per partition) is full from the start, and
``CopiedAnswers.max_pairs`` (50,000 annotator pairs per project and shard) is reached in
both default runs of (b), so neither changes with the sizes; (c) measures the dedup window
alone. (In ``--quick`` the pairs stay under their cap and grow with the annotators, about
400 bytes each: the quick per-annotator figure includes them.)

Linux only (RSS from ``/proc/self/status``). Usage: ``.venv/bin/python bench/memory.py
[--quick]`` (``make bench-memory``, ``MEMORY_ARGS=--quick``). Prints a table, writes ``bench/results/memory.json``; the last line
of stdout is one JSON object with ``mb_per_100k_items``, ``mb_per_10k_annotators`` and
``mb_per_100k_dedup_ids``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import random
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _support import machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "memory.json"
MB = 1024 * 1024
TOPIC = "labels"
PROJECT = "bench"
CLASSES = ("cat", "dog", "bird", "fish")
PRIOR = (0.4, 0.3, 0.2, 0.1)
BATCH = 500
START = datetime(2026, 4, 1, tzinfo=UTC)
STEP = timedelta(seconds=0.1)
ITEM_POOL_ANNOTATORS = 200
LABELS_PER_ITEM = 3
LABELS_PER_ANNOTATOR = 50


def log(message: str) -> None:
    print(f"[memory] {message}", file=sys.stderr, flush=True)


def status_kb(field: str) -> int:
    """A field of ``/proc/self/status`` in kB (``VmRSS``: resident now; ``VmHWM``: peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def held_bytes(root: object) -> int:
    """Bytes of the objects reachable from ``root`` (``sys.getsizeof`` of each once; numpy
    arrays with their data, allocated capacity included): what the tracker holds, without
    the allocator's overhead and retained free memory that RSS also counts."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend(obj)
        else:
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    stack.append(getattr(obj, name))
    return total


def reset_peak() -> None:
    """Start ``VmHWM`` again from the current RSS (Linux 4.0+; kept as is where refused)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        log("cannot reset the peak RSS: peak growth includes the set-up")


def rss() -> int:
    return status_kb("VmRSS") * 1024


def trimmed_rss() -> int | None:
    """RSS once glibc has returned its free memory to the system (None off glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    libc.malloc_trim(0)
    return rss()


def uuid_of(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --- the labels ------------------------------------------------------------------------------
class Crowd:
    """Annotators with an accuracy each, answering items with a true class each."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.accuracy: dict[str, float] = {}
        self.truth: dict[str, int] = {}

    def answer(self, item: str, annotator: str) -> tuple[str, bool]:
        rng = self.rng
        true = self.truth.get(item)
        if true is None:
            true = self.truth[item] = rng.choices(range(len(CLASSES)), PRIOR)[0]
        accuracy = self.accuracy.get(annotator)
        if accuracy is None:
            accuracy = 0.4 if rng.random() < 0.1 else rng.uniform(0.65, 0.95)
            self.accuracy[annotator] = accuracy
        gold_item = int(item.rsplit("-", 1)[1]) % 20 == 0
        if rng.random() < accuracy:
            return CLASSES[true], gold_item
        wrong = rng.choice([c for c in range(len(CLASSES)) if c != true])
        return CLASSES[wrong], gold_item


def item_labels(n_items: int, rng: random.Random) -> Iterator[tuple[str, str]]:
    """(item, annotator): items in blocks of 1,000, three rounds of labels per block."""
    pool = [f"annotator-{a:06d}" for a in range(ITEM_POOL_ANNOTATORS)]
    for block in range(0, n_items, 1000):
        items = [f"item-{i:09d}" for i in range(block, min(block + 1000, n_items))]
        voters = {item: rng.sample(pool, LABELS_PER_ITEM) for item in items}
        for round_ in range(LABELS_PER_ITEM):
            for item in items:
                yield item, voters[item][round_]


def annotator_labels(
    n_annotators: int, n_items: int, rng: random.Random
) -> Iterator[tuple[str, str]]:
    """(item, annotator): every annotator in turn, ``LABELS_PER_ANNOTATOR`` times, each on
    a random item of the pool (after a first pass that opens every item)."""
    names = [f"annotator-{a:06d}" for a in range(n_annotators)]
    total = n_annotators * LABELS_PER_ANNOTATOR
    for j in range(total):
        item = j if j < n_items else rng.randrange(n_items)
        yield f"item-{item:09d}", names[j % n_annotators]


# --- one scenario, in its own process --------------------------------------------------------------
def child(scenario: str, size: int, pool: int, seed: int) -> dict[str, Any]:
    if scenario == "dedup":
        return dedup_child(size, seed)
    from labelwatch.models.consensus import warm_up
    from labelwatch.schemas import LabelEvent, SourcePosition
    from labelwatch.settings import Settings
    from labelwatch.streams.app import quality_tracker

    with tempfile.TemporaryDirectory(prefix="lw-memory-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp))
        tracker = quality_tracker(settings)
        rng = random.Random(seed)
        recent = [uuid_of(rng) for _ in range(tracker.dedup_window)]
        tracker.restore(TOPIC, 0, None, recent_ids=recent)
        del recent
        warm_up()
        gc.collect()
        before = rss()
        reset_peak()
        crowd = Crowd(rng)
        pairs = item_labels(size, rng) if scenario == "items" else annotator_labels(size, pool, rng)
        started = time.perf_counter()
        offset = 0
        batch: list[tuple[LabelEvent, SourcePosition]] = []
        for item, annotator in pairs:
            label, gold_item = crowd.answer(item, annotator)
            event = LabelEvent(
                event_id=uuid_of(rng),
                ts=START + offset * STEP,
                project=PROJECT,
                item_id=item,
                annotator_id=annotator,
                label=label,
                gold_label=CLASSES[crowd.truth[item]] if gold_item else None,
                duration_ms=int(rng.lognormvariate(math.log(3000), 0.6)),
            )
            batch.append((event, SourcePosition(TOPIC, 0, offset)))
            offset += 1
            if len(batch) == BATCH:
                tracker.apply(batch)
                tracker.mark_stored(batch)
                batch = []
        if batch:
            tracker.apply(batch)
            tracker.mark_stored(batch)
        seconds = time.perf_counter() - started
        del batch, crowd, pairs
        gc.collect()
        after = rss()
        trimmed = trimmed_rss()
        items, annotators = tracker.tracked()
        held = held_bytes(tracker)  # after the RSS readings: the walk allocates
    return {
        "scenario": scenario,
        "size": size,
        "labels": offset,
        "tracked_items": items,
        "tracked_annotators": annotators,
        "rss_before_mb": before / MB,
        "rss_after_mb": after / MB,
        "growth_mb": (after - before) / MB,
        "trimmed_growth_mb": None if trimmed is None else (trimmed - before) / MB,
        "held_mb": held / MB,
        "peak_rss_mb": status_kb("VmHWM") / 1024,
        "peak_growth_mb": (status_kb("VmHWM") * 1024 - before) / MB,
        "labels_per_second": offset / seconds,
    }


def dedup_child(size: int, seed: int) -> dict[str, Any]:
    from labelwatch.models.dedup import RecentIds

    rng = random.Random(seed)
    gc.collect()
    before = rss()
    recent = RecentIds(size)
    for _ in range(size):
        recent.add(uuid_of(rng))
    gc.collect()
    after = rss()
    return {
        "scenario": "dedup",
        "size": len(recent),
        "rss_before_mb": before / MB,
        "rss_after_mb": after / MB,
        "growth_mb": (after - before) / MB,
        "trimmed_growth_mb": None,
    }


def run_child(scenario: str, size: int, pool: int, seed: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", scenario, str(size), str(pool), str(seed)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- the slopes -------------------------------------------------------------------------------------
def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def fit(runs: list[dict[str, Any]], per: float, key: str = "growth_mb") -> float | None:
    points = [(r["size"] / per, r[key]) for r in runs if r.get(key) is not None]
    return slope(points) if len(points) >= 2 else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _cell(value: Any, spec: str = "") -> str:
    return "" if value is None else format(value, spec)


def print_tables(runs: dict[str, list[dict[str, Any]]], figures: dict[str, float | None]) -> None:
    print(
        "| scenario | size | labels | tracked items | tracked annotators | RSS growth MB "
        "| after malloc_trim MB | peak growth MB | held by the tracker MB | labels/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for scenario, results in runs.items():
        for r in results:
            cells = [
                scenario,
                _cell(r["size"], ","),
                _cell(r.get("labels"), ","),
                _cell(r.get("tracked_items"), ","),
                _cell(r.get("tracked_annotators"), ","),
                _cell(r["growth_mb"], ".1f"),
                _cell(r.get("trimmed_growth_mb"), ".1f"),
                _cell(r.get("peak_growth_mb"), ".1f"),
                _cell(r.get("held_mb"), ".1f"),
                _cell(r.get("labels_per_second"), ",.0f"),
            ]
            print("| " + " | ".join(cells) + " |")
    print()
    print("| figure | MB of RSS | MB after malloc_trim | MB of peak RSS | MB held by the tracker |")
    print("|---|---|---|---|---|")
    for name, key in (
        ("per 100k tracked items", "items"),
        ("per 10k annotators", "annotators"),
        ("per 100k ids in the dedup window", "dedup_ids"),
    ):
        unit = "10k" if key == "annotators" else "100k"
        values = [
            figures.get(f"{kind}mb_per_{unit}_{key}") for kind in ("", "trimmed_", "peak_", "held_")
        ]
        print(f"| {name} | " + " | ".join(_cell(v, ".1f") for v in values) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    parser.add_argument("--items", type=int, nargs="+", default=None, help="item counts of (a)")
    parser.add_argument(
        "--annotators", type=int, nargs="+", default=None, help="annotator counts of (b)"
    )
    parser.add_argument("--item-pool", type=int, default=None, help="fixed items of (b)")
    parser.add_argument("--dedup", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", nargs=4, metavar=("SCENARIO", "SIZE", "POOL", "SEED"))
    args = parser.parse_args()
    if args.child:
        scenario, size, pool, seed = args.child
        print(json.dumps(child(scenario, int(size), int(pool), int(seed))))
        return
    items = args.items or ([10_000, 30_000] if args.quick else [50_000, 150_000])
    annotators = args.annotators or ([400, 800] if args.quick else [1_000, 3_000])
    pool = args.item_pool or min(annotators) * LABELS_PER_ANNOTATOR // LABELS_PER_ITEM
    if pool > min(annotators) * LABELS_PER_ANNOTATOR:
        raise SystemExit("the item pool of (b) must fit in its smallest run's labels")
    if min(len(items), len(annotators), len(args.dedup)) < 2:
        raise SystemExit("each scenario needs at least two sizes to fit a slope")
    runs: dict[str, list[dict[str, Any]]] = {"items": [], "annotators": [], "dedup": []}
    plan = (
        [("items", n) for n in items]
        + [("annotators", n) for n in annotators]
        + [("dedup", n) for n in args.dedup]
    )
    started = time.monotonic()
    for scenario, size in plan:
        log(f"{scenario} {size:,} ...")
        result = run_child(scenario, size, pool, args.seed)
        runs[scenario].append(result)
        log(f"  +{result['growth_mb']:.1f} MB ({time.monotonic() - started:.0f} s so far)")

    figures = {
        "mb_per_100k_items": fit(runs["items"], 100_000),
        "mb_per_10k_annotators": fit(runs["annotators"], 10_000),
        "mb_per_100k_dedup_ids": fit(runs["dedup"], 100_000),
        "trimmed_mb_per_100k_items": fit(runs["items"], 100_000, "trimmed_growth_mb"),
        "trimmed_mb_per_10k_annotators": fit(runs["annotators"], 10_000, "trimmed_growth_mb"),
        "held_mb_per_100k_items": fit(runs["items"], 100_000, "held_mb"),
        "held_mb_per_10k_annotators": fit(runs["annotators"], 10_000, "held_mb"),
        "peak_mb_per_100k_items": fit(runs["items"], 100_000, "peak_growth_mb"),
        "peak_mb_per_10k_annotators": fit(runs["annotators"], 10_000, "peak_growth_mb"),
    }
    print_tables(runs, figures)
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "parameters": {
            "items": items,
            "annotators": annotators,
            "item_pool_of_annotator_scenario": pool,
            "annotators_of_item_scenario": ITEM_POOL_ANNOTATORS,
            "labels_per_item": LABELS_PER_ITEM,
            "labels_per_annotator": LABELS_PER_ANNOTATOR,
            "dedup_window_sizes": args.dedup,
            "batch": BATCH,
            "classes": len(CLASSES),
            "settings": "defaults (Settings(_env_file=None)); one partition, one project",
            "seed": args.seed,
        },
        "runs": runs,
        **figures,
        "seconds": time.monotonic() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    # Imported here, not at the top: the --child processes measure RSS after their imports.
    from plots import plot_next_to

    plot_next_to(args.out, result, "memory")
    log(f"wrote {args.out}")
    print(json.dumps({k: _round(v) for k, v in figures.items() if k.startswith("mb_")}))


if __name__ == "__main__":
    main()
