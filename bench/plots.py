"""Plots of benchmark results: one PNG next to each JSON, with the same stem.

One function per benchmark takes the result dict (as written to JSON) and the PNG's path.
Each benchmark calls :func:`plot_next_to` right after writing its JSON; to plot results
again (after changing a plot, or for results from another machine)::

    .venv/bin/python bench/plots.py bench/results/*.json

Every figure draws the benchmark's headline figures, its targets as dashed red lines, and a
caption with the date and machine from the JSON. Matplotlib's Agg backend only: no window
is ever opened.
"""

from __future__ import annotations

import json
import statistics
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # after choosing the backend
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

Result = dict[str, Any]

TARGET: dict[str, Any] = {"color": "#c0392b", "linestyle": "--", "linewidth": 1.6}
OURS, REFERENCE, OTHER = "#2e86c1", "#f39c12", "#95a5a6"

# Targets stated in README.md / the benchmarks' docstrings (not all are in the JSON).
THROUGHPUT_RATIO_TARGET = 0.8  # worker, single events, >= 0.8 x the bare Faust agent
ENVELOPE_TARGET_EVENTS_PER_S = 100_000.0  # worker, batched envelopes
THROUGHPUT_P99_TARGET_S = 1.0  # p99 event -> ClickHouse at 2,000 events/s
CONSENSUS_TOLERANCE = 0.005  # online accuracy >= Crowd-Kit DawidSkene - 0.5 points
CONSENSUS_LABELS_PER_S_TARGET = 100_000.0
DRIFT_FALSE_ALARMS_PER_10K = 1.0  # LABELWATCH_DRIFT_TARGET_ARL = 10,000 labels
PRIVACY_FALSE_ALARMS_PER_DAY = 1.0
PRIVACY_DELAY_WINDOWS = 2.0
PER_EVENT_BUDGET_US = 10.0  # 100,000 events/s on one core, everything included


# --- shared pieces ----------------------------------------------------------------------------


def caption(result: Result) -> str:
    """Date and machine of a result, from its JSON (``date`` or ``measured``; ``machine`` as a
    string or a dict), and whether it was a quick run."""
    when = result.get("date") or result.get("measured")
    if isinstance(when, str):
        try:
            parsed = datetime.fromisoformat(when)
            if "T" in when:  # a time as well as a date
                zone = "" if parsed.tzinfo is None else " UTC" if not parsed.utcoffset() else " %z"
                when = parsed.strftime(f"%Y-%m-%d %H:%M{zone}")
        except ValueError:
            pass
    machine = result.get("machine")
    if isinstance(machine, dict):
        parts = [str(machine[k]) for k in ("platform",) if machine.get(k)]
        if machine.get("python"):
            parts.append(f"Python {machine['python']}")
        cpus = machine.get("cpus") or machine.get("cpu_count")
        if cpus:
            parts.append(f"{cpus} CPUs")
        if machine.get("shared"):
            parts.append(str(machine["shared"]))
        machine = ", ".join(parts)
    quick = result.get("quick") or (result.get("parameters") or {}).get("quick")
    return f"measured {when or '(date not recorded)'} on {machine or '(machine not recorded)'}" + (
        "; QUICK RUN (smaller than the reference run)" if quick else ""
    )


def _figure(
    ncols: int, width: float = 13.0, height: float = 5.6, **grid: Any
) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), dpi=110)
    axes = fig.subplots(1, ncols, gridspec_kw=grid or None, squeeze=False)[0]
    return fig, list(axes)


def _finish(fig: Figure, title: str, result: Result, out: Path) -> None:
    fig.suptitle(title, fontsize=13, fontweight="bold")
    fig.text(0.005, 0.005, caption(result), fontsize=8, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")


def _target(ax: Axes, y: float, label: str, x: tuple[float, float] | None = None) -> None:
    """A target as a dashed red line: across the axes, or over ``x`` = (left, right)."""
    if x is None:
        ax.axhline(y, label=label, **TARGET)
    else:
        ax.hlines(y, *x, label=label, **TARGET)


def _bar_values(ax: Axes, bars: Any, fmt: Callable[[float], str], **text: Any) -> None:
    for bar in bars:
        value = bar.get_height()
        if value is None or value != value:  # NaN: no value
            continue
        ax.annotate(
            fmt(value),
            (bar.get_x() + bar.get_width() / 2, value),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            **text,
        )


def _log_room(ax: Axes, values: Iterable[float | None], top: float = 6.0) -> None:
    """Log-scale limits that show every value (targets included) with room above for
    legends and value labels."""
    shown = [v for v in values if v is not None and v == v and v > 0]
    if shown:
        ax.set_ylim(min(shown) / 2, max(shown) * top)


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _seconds(ms: float | None) -> float:
    return float("nan") if ms is None else ms / 1000.0


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this result", ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _box(
    ax: Axes, groups: Sequence[Sequence[float]], positions: Sequence[float], colors: Sequence[str]
) -> None:
    """Box plots with every value drawn on top (the groups are small)."""
    filled = [(list(g), p, c) for g, p, c in zip(groups, positions, colors, strict=True) if g]
    if filled:
        boxes = ax.boxplot(
            [g for g, _, _ in filled],
            positions=[p for _, p, _ in filled],
            widths=0.55,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for patch, (_, _, color) in zip(boxes["boxes"], filled, strict=True):
            patch.set_facecolor(color)
            patch.set_alpha(0.35)
    for values, position, color in zip(groups, positions, colors, strict=True):
        n = len(values)
        offsets = [(i - (n - 1) / 2) * min(0.4 / max(n, 1), 0.05) for i in range(n)]
        ax.scatter([position + o for o in offsets], values, s=14, color=color, zorder=3)


# --- one function per benchmark ---------------------------------------------------------------


def throughput(result: Result, out: Path) -> None:
    """bench/throughput.py: events/s of the bare Faust agent and the worker (single events,
    batched envelopes) with their targets; latency percentiles per produced rate."""
    fig, (ax, lat) = _figure(2, width_ratios=(1, 1.25))
    bare = result["bare_faust"]["events_per_second"]
    single = result["worker"]["events_per_second"]
    batched = result["worker_batched"]["events_per_second"]
    envelope = result["worker_batched"].get("events_per_envelope")
    names = [
        "bare Faust agent\n(json.loads only)",
        "worker,\nsingle events",
        f"worker, envelopes\nof {envelope:,}" if envelope else "worker,\nbatched envelopes",
    ]
    bars = ax.bar(range(3), [bare, single, batched], color=[OTHER, OURS, OURS], width=0.6)
    _bar_values(ax, bars, lambda v: f"{v:,.0f}/s")
    _target(
        ax,
        THROUGHPUT_RATIO_TARGET * bare,
        f"target: single events ≥ {THROUGHPUT_RATIO_TARGET:g} x bare Faust"
        f" = {THROUGHPUT_RATIO_TARGET * bare:,.0f}/s",
        (0.6, 1.4),
    )
    ax.hlines(
        ENVELOPE_TARGET_EVENTS_PER_S,
        1.6,
        2.4,
        label=f"target: envelopes ≥ {ENVELOPE_TARGET_EVENTS_PER_S:,.0f}/s",
        color=TARGET["color"],
        linestyle=":",
        linewidth=1.8,
    )
    ax.set_xticks(range(3), names)
    ax.set_yscale("log")
    ax.set_ylim(min(bare, single, batched) / 3, ENVELOPE_TARGET_EVENTS_PER_S * 3)
    ax.set_ylabel("events per second (log scale)")
    ax.set_title(f"Throughput, {result['summary']['events']:,} events, one partition")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)

    latency = result.get("latency") or {}
    if latency:
        rates = sorted(latency, key=float)
        x = list(range(len(rates)))
        series = (
            ("p50_event_to_clickhouse_ms", "p50 event → label_events", "o", "-"),
            ("p99_event_to_clickhouse_ms", "p99 event → label_events", "o", "-"),
            ("p99_event_to_alert_clickhouse_ms", "p99 event → alert in ClickHouse", "s", "--"),
            ("p99_event_to_alertmanager_ms", "p99 event → Alertmanager", "^", ":"),
        )
        for key, label, marker, style in series:
            lat.plot(
                x,
                [_seconds(latency[r].get(key)) for r in rates],
                marker=marker,
                linestyle=style,
                label=label,
            )
        _target(
            lat,
            THROUGHPUT_P99_TARGET_S,
            f"target: p99 < {THROUGHPUT_P99_TARGET_S:g} s at 2,000 events/s",
        )
        ticks = []
        for r in rates:
            achieved = latency[r].get("achieved_rate")
            ticks.append(
                f"{float(r):,.0f}/s asked" + (f"\n{achieved:,.0f}/s produced" if achieved else "")
            )
        lat.set_xticks(x, ticks)
        lat.set_yscale("log")
        lat.set_ylabel("latency, seconds (log scale)")
        lat.set_xlabel("produce rate (events per second)")
        lat.set_title("Latency from produce to visible, per rate")
        lat.legend(fontsize=8, loc="upper left")
        lat.grid(axis="y", which="both", alpha=0.3)
    else:
        _no_data(lat, "latency runs")
    _finish(fig, "labelwatch: one worker, end to end through Kafka", result, out)


ALERT_PATHS = {
    "event_to_clickhouse": "event → row in label_events",
    "event_to_alert_clickhouse": "event → alert in alerts",
    "event_to_alertmanager": "event → Alertmanager",
}


def alert_latency(result: Result, out: Path) -> None:
    """bench/alert_latency.py: latency percentiles per path with the p99 target, and how the
    latency to ClickHouse moved during the run."""
    fig, (ax, over) = _figure(2)
    target_s = result.get("target_p99_ms", 2000.0) / 1000.0
    stats = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
    width = 0.2
    paths = [p for p in ALERT_PATHS if p in result["latency"]]
    shown = [target_s]
    for i, stat in enumerate(stats):
        values = [_seconds(result["latency"][p].get(stat)) for p in paths]
        shown += values
        bars = ax.bar(
            [j + (i - 1.5) * width for j in range(len(paths))],
            values,
            width,
            label=stat.removesuffix("_ms"),
        )
        _bar_values(ax, bars, lambda v: f"{v:.3g}", rotation=90)
    _target(ax, target_s, f"target: p99 < {target_s:g} s")
    ax.set_xticks(
        range(len(paths)),
        [f"{ALERT_PATHS[p]}\n(n={result['latency'][p]['count']:,})" for p in paths],
        fontsize=8,
    )
    ax.set_yscale("log")
    _log_room(ax, shown, top=10)
    ax.set_ylabel("latency, seconds (log scale)")
    ax.set_title(
        f"{result['rate']:,.0f} events/s asked, {result['achieved_rate']:,.0f}/s produced, {result['seconds']:g} s"
    )
    ax.legend(fontsize=8, loc="upper left", ncols=5)
    ax.grid(axis="y", which="both", alpha=0.3)

    buckets = result.get("event_to_clickhouse_by_5s") or []
    if buckets:
        x = [b["from_s"] for b in buckets]
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")):
            over.plot(
                x,
                [_seconds(b.get(key)) for b in buckets],
                marker="o",
                markersize=3,
                label=f"{label} event → label_events",
            )
        _target(over, target_s, f"target: p99 < {target_s:g} s")
        over.set_yscale("log")
        over.set_xlabel("produce time of the event, seconds since the clock started (5 s buckets)")
        over.set_ylabel("latency, seconds (log scale)")
        through = result.get("through_clickhouse_rate")
        behind = f"; {through:,.0f}/s reached ClickHouse" if through else ""
        over.set_title(f"Latency to ClickHouse during the run{behind}")
        over.legend(fontsize=8)
        over.grid(which="both", alpha=0.3)
    else:
        _no_data(over, "latency buckets")
    _finish(fig, "labelwatch: produced event to ClickHouse and Alertmanager", result, out)


def consensus_accuracy(result: Result, out: Path) -> None:
    """bench/consensus_accuracy.py: accuracy of the online consensus against Crowd-Kit's batch
    methods per data set (target: DawidSkene - 0.5 points), and labels/s."""
    fig, (ax, speed) = _figure(2, width_ratios=(1.6, 1))
    sets = list(result["datasets"])
    methods = ("MajorityVote", "DawidSkene", "GLAD")
    colors = (OTHER, REFERENCE, "#8e44ad")
    width = 0.2
    for j, name in enumerate(sets):
        r = result["datasets"][name]
        seeds = [run["accuracy"] for run in r["runs"]]
        median = r["median_accuracy"]
        bar = ax.bar(
            j - 1.5 * width,
            median,
            width,
            color=OURS,
            label="labelwatch online (median of shuffles)" if j == 0 else None,
        )
        ax.errorbar(
            j - 1.5 * width,
            median,
            yerr=[[median - min(seeds)], [max(seeds) - median]],
            color="black",
            capsize=3,
            linewidth=1,
        )
        _bar_values(ax, bar, lambda v: f"{v:.3f}", rotation=90)
        for i, (method, color) in enumerate(zip(methods, colors, strict=True)):
            b = ax.bar(
                j + (i - 0.5) * width,
                r["crowdkit"][method]["accuracy"],
                width,
                color=color,
                label=f"Crowd-Kit {method} (batch)" if j == 0 else None,
            )
            _bar_values(ax, b, lambda v: f"{v:.3f}", rotation=90)
        ds = r["crowdkit"]["DawidSkene"]["accuracy"]
        _target(
            ax,
            ds - CONSENSUS_TOLERANCE,
            "target: online ≥ DawidSkene - 0.005" if j == 0 else "",
            (j - 2 * width - 0.05, j - width + 0.05),
        )
    low = min(
        [run["accuracy"] for r in result["datasets"].values() for run in r["runs"]]
        + [r["crowdkit"][m]["accuracy"] for r in result["datasets"].values() for m in methods]
    )
    ax.set_ylim(max(0.0, low - 0.1), 1.04)
    ax.set_xticks(
        range(len(sets)), [f"{s}\n({result['datasets'][s]['labels']:,} labels)" for s in sets]
    )
    ax.set_ylabel("accuracy of the final labels against truth")
    ax.set_title("Accuracy per data set")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=3)
    ax.grid(axis="y", alpha=0.3)

    for j, name in enumerate(sets):
        r = result["datasets"][name]
        values = [
            r["median_labels_per_second"],
            r["crowdkit"]["DawidSkene"]["labels_per_second"],
            r["crowdkit"]["GLAD"]["labels_per_second"],
        ]
        bars = speed.bar([j - 0.25, j, j + 0.25], values, 0.25, color=[OURS, REFERENCE, "#8e44ad"])
        if j == 0:
            for bar, label in zip(bars, ("labelwatch online", "DawidSkene", "GLAD"), strict=True):
                bar.set_label(label)
        _bar_values(speed, bars, _num, rotation=90)
    _target(
        speed,
        CONSENSUS_LABELS_PER_S_TARGET,
        f"target: online ≥ {CONSENSUS_LABELS_PER_S_TARGET:,.0f} labels/s",
    )
    speed.set_yscale("log")
    speed.set_ylim(top=speed.get_ylim()[1] * 8)
    speed.set_xticks(range(len(sets)), sets)
    speed.set_ylabel("labels per second (log scale)")
    speedup = result.get("product_speedup_vs_dawid_skene")
    speed.set_title(
        "Speed: online vs DawidSkene, GLAD"
        + (f"\nproduct: {speedup:.1f}x DawidSkene (target ≥ 10x)" if speedup else ""),
        fontsize=10,
    )
    speed.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=2)
    speed.grid(axis="y", which="both", alpha=0.3)
    _finish(fig, "labelwatch: online consensus vs Crowd-Kit (batch)", result, out)


def decode(result: Result, out: Path) -> None:
    """bench/decode_throughput.py: µs per event of validation and of building the row."""
    fig, (ax,) = _figure(1, width=8.5, height=4.6)
    names = ["validate (pydantic)", "build ClickHouse row"]
    values = [result["decode_us_per_event"], result["row_us_per_event"]]
    bars = ax.barh(names, values, color=OURS, height=0.5)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:.2f} µs ({1e6 / value:,.0f} events/s)",
            (value, bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    ax.axvline(
        PER_EVENT_BUDGET_US,
        label=f"{PER_EVENT_BUDGET_US:g} µs: the whole budget per event at 100,000 events/s",
        **TARGET,
    )
    ax.set_xlim(0, max(*values, PER_EVENT_BUDGET_US) * 1.5)
    ax.set_xlabel("µs per event (best of repeats)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{result['events']:,} simulated events, no Kafka, no ClickHouse")
    _finish(fig, "labelwatch: per-event validation cost", result, out)


def drift_detection(result: Result, out: Path) -> None:
    """bench/drift_detection.py: detection delay distributions of labelwatch's drift
    detectors and River's ADWIN, simulated and on the shared data sets, and false alarms."""
    fig, (ax, fa) = _figure(2, width_ratios=(2.3, 1))
    sims = result["simulated"]["runs"]
    groups: list[tuple[str, list[float], list[float], dict[str, Any], dict[str, Any]]] = [
        (
            "simulated",
            [d for s in sims for d in s["drift_delays"]],
            [d for s in sims for d in s["adwin_delays"]],
            result["simulated"]["drift"],
            result["simulated"]["adwin"],
        ),
    ]
    for name, summary in result.get("shared", {}).items():
        runs = [r for r in result.get("shared_runs", []) if r["data_set"] == name]
        groups.append(
            (
                name,
                [d for r in runs for d in r["all"].get("delays", [])],
                [d for r in runs for d in r["adwin_all"].get("delays", [])],
                summary["all"],
                summary["adwin_all"],
            )
        )
    positions, values, colors = [], [], []
    for i, (_, ours, ref, _, _) in enumerate(groups):
        positions += [3 * i, 3 * i + 1]
        values += [ours, ref]
        colors += [OURS, REFERENCE]
    _box(ax, values, positions, colors)
    ticks = []
    for name, _, _, ours_s, ref_s in groups:
        ticks.append(
            f"{name}\nlabelwatch {ours_s['detected']}/{ours_s['injected']}\nADWIN {ref_s['detected']}/{ref_s['injected']}"
        )
    ax.set_xticks([3 * i + 0.5 for i in range(len(groups))], ticks, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("detection delay, the annotator's own labels (log scale)")
    ax.set_title(
        "Delay from the onset of random answering to the alert (detected / injected)", fontsize=10
    )
    ax.scatter([], [], color=OURS, label="labelwatch (CUSUM drift detectors)")
    ax.scatter([], [], color=REFERENCE, label="River ADWIN() on the same signal")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", which="both", alpha=0.3)

    names = ["simulated\n(stationary)", *result.get("shared", {})]
    rates = [
        result["simulated"]["false_alarms_per_10000"],
        *(s["drift_alerts_per_10000_unmodified"] for s in result.get("shared", {}).values()),
    ]
    # ADWIN's false alarms are measured on the simulated streams only.
    bars = fa.bar([-0.2, *range(1, len(names))], rates, 0.4, color=OURS, label="labelwatch")
    _bar_values(fa, bars, lambda v: f"{v:.2f}")
    adwin_bars = fa.bar(
        [0.2],
        [result["simulated"]["adwin_false_alarms_per_10000"]],
        0.4,
        color=REFERENCE,
        label="ADWIN()",
    )
    _bar_values(fa, adwin_bars, lambda v: f"{v:.2f}")
    _target(fa, DRIFT_FALSE_ALARMS_PER_10K, "budget: 1 per 10,000 labels (target ARL)")
    fa.set_xticks(range(len(names)), names, fontsize=8)
    fa.set_ylim(0, max(*rates, DRIFT_FALSE_ALARMS_PER_10K) * 1.4)
    fa.set_ylabel("drift alerts per 10,000 labels")
    fa.set_title("False alarms (data sets: unmodified)", fontsize=10)
    fa.legend(fontsize=8, loc="upper left")
    fa.grid(axis="y", alpha=0.3)
    seeds = ", ".join(str(s) for s in result.get("seeds", []))
    _finish(fig, f"labelwatch: annotator drift detection (seeds {seeds})", result, out)


MEMORY_SERIES = (
    ("growth_mb", "", "RSS growth"),
    ("trimmed_growth_mb", "trimmed_", "after malloc_trim"),
    ("held_mb", "held_", "held by the tracker"),
    ("peak_growth_mb", "peak_", "peak RSS growth"),
)


def memory(result: Result, out: Path) -> None:
    """bench/memory.py: memory against tracked items, annotators and dedup ids, with the
    fitted slopes (MB per 100k items, per 10k annotators, per 100k ids)."""
    fig, axes = _figure(3)
    scenarios = (
        ("items", "open items tracked", 100_000, "100k items", "items"),
        ("annotators", "annotators tracked", 10_000, "10k annotators", "annotators"),
        ("dedup", "event ids in the dedup window", 100_000, "100k ids", "dedup_ids"),
    )
    for ax, (scenario, xlabel, per, per_label, key) in zip(axes, scenarios, strict=True):
        runs = result["runs"].get(scenario) or []
        if not runs:
            _no_data(ax, f"{scenario} runs")
            continue
        sizes = [r["size"] for r in runs]
        for (field, prefix, label), color in zip(
            MEMORY_SERIES, (OURS, "#27ae60", "#8e44ad", REFERENCE), strict=True
        ):
            points = [(r["size"], r[field]) for r in runs if r.get(field) is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            slope = result.get(f"{prefix}mb_per_{per_label.split()[0]}_{key}")
            text = f"{label}: {slope:,.0f} MB / {per_label}" if slope is not None else label
            ax.scatter(xs, ys, color=color, zorder=3)
            if slope is not None and len(points) >= 2:
                mx, my = statistics.mean(xs), statistics.mean(ys)
                line_x = [0, max(sizes) * 1.05]
                ax.plot(
                    line_x, [my + slope * (x - mx) / per for x in line_x], color=color, label=text
                )
            else:
                ax.plot([], [], color=color, label=text)
        ax.set_xlim(0, max(sizes) * 1.08)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("memory growth, MB (over the process after imports)")
        ax.set_title(f"per {per_label}: least-squares slope", fontsize=10)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13))
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1000:g}k" if v else "0")
    _finish(fig, "labelwatch: worker memory per tracked item, annotator and dedup id", result, out)


def model_path(result: Result, out: Path) -> None:
    """bench/model_path.py: µs per label of each stage of the pure model path, and the total
    beside the per-event budget of 100,000 events/s."""
    fig, (ax, total) = _figure(2, width=14.0, height=6.4, width_ratios=(2.6, 1))
    us = result["us_per_label"]
    stages: list[tuple[str, float, str]] = [("validation (pydantic)", us["validation"], OTHER)]
    model_stages = result.get("model_stages") or {}
    if model_stages:
        stages += [(name, s["us_per_label"], OURS) for name, s in model_stages.items()]
    else:
        stages.append(("model path (QualityTracker.apply)", us["model"], OURS))
    stages += [
        ("sink encoding (sink_rows)", us["sink_rows"], "#27ae60"),
        ("ClickHouse insert (chDB)", us["insert"], REFERENCE),
    ]
    names = [s[0] for s in stages]
    values = [s[1] for s in stages]
    bars = ax.barh(range(len(stages)), values, color=[s[2] for s in stages])
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:.1f}",
            (value, bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(range(len(stages)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("µs per label")
    ax.set_xlim(0, max(values) * 1.15)
    ax.set_title("Each stage (model path split into its parts)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)

    parts = [
        ("validation", OTHER),
        ("model", OURS),
        ("sink_rows", "#27ae60"),
        ("insert", REFERENCE),
    ]
    bottom = 0.0
    for key, color in parts:
        total.bar(
            0,
            us[key],
            0.5,
            bottom=bottom,
            color=color,
            label=f"{key}: {us[key]:.1f} µs ({result['share'][key]:.0%})",
        )
        bottom += us[key]
    total.annotate(
        f"{us['total']:.0f} µs = {result['labels_per_second']:,.0f} labels/s",
        (0, bottom),
        xytext=(0, 4),
        textcoords="offset points",
        ha="center",
        fontsize=9,
    )
    _target(total, PER_EVENT_BUDGET_US, f"{PER_EVENT_BUDGET_US:g} µs: 100,000 labels/s")
    total.set_xlim(-0.6, 0.6)
    total.set_ylim(0, bottom * 1.25)
    total.set_xticks([0], ["total per label"])
    total.set_ylabel("µs per label")
    total.set_title("Total", fontsize=10)
    total.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    total.grid(axis="y", alpha=0.3)
    params = result.get("parameters", {})
    source = f"{params.get('counted_labels', 0):,} labels, batches of {params.get('batch', '?')}"
    _finish(fig, f"labelwatch: where a label's time goes ({source})", result, out)


def scale_out(result: Result, out: Path) -> None:
    """bench/scale_out.py: events/s of one worker and of two in one group (target 1.7x), and
    where the CPU time went."""
    fig, (ax, cpu) = _figure(2, width=12.0)
    summary = result["summary"]
    one, two = summary["one_worker_events_per_second"], summary["two_workers_events_per_second"]
    target = summary.get("target_speedup", 1.7)
    bars = ax.bar([0, 1], [one, two], 0.55, color=[OTHER, OURS])
    _bar_values(ax, bars, lambda v: f"{v:,.0f}/s")
    _target(
        ax, target * one, f"target: ≥ {target:g} x one worker = {target * one:,.0f}/s", (0.65, 1.35)
    )
    ax.set_xticks([0, 1], ["1 worker", "2 workers, one group"])
    ax.set_ylim(0, max(two, target * one) * 1.2)
    ax.set_ylabel("events per second (first row stored to last)")
    identical = "identical results" if summary.get("identical") else "RESULTS DIFFER"
    ax.set_title(
        f"speed-up {summary['speedup']:.2f}x; {identical}: {summary.get('rows_compared', 0):,} rows compared, {summary.get('differences', 0)} differences",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)

    runs = result.get("runs") or []
    for i, run in enumerate(runs):
        bottom = 0.0
        for w, seconds in enumerate(run.get("cpu_s_per_worker", [])):
            cpu.bar(
                i,
                seconds,
                0.5,
                bottom=bottom,
                color=OURS if w == 0 else "#85c1e9",
                label=f"worker {w + 1}" if i == len(runs) - 1 else None,
            )
            bottom += seconds
        for key, color, label in (
            ("broker_cpu_s", OTHER, "broker"),
            ("producer", REFERENCE, "producer"),
        ):
            value = run.get(key)
            seconds = value.get("cpu_s") if isinstance(value, dict) else value
            if seconds:
                cpu.bar(
                    i, seconds, 0.5, bottom=bottom, color=color, label=label if i == 0 else None
                )
                bottom += seconds
        cpu.annotate(
            f"{run['seconds']:.0f} s wall",
            (i, bottom),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    cpu.set_xticks(
        range(len(runs)), [f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}" for r in runs]
    )
    cpu.set_ylabel("CPU seconds")
    cores = (result.get("machine") or {}).get("cpu_count")
    cpu.set_title(f"CPU time per process{f' ({cores} cores shared)' if cores else ''}", fontsize=10)
    cpu.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=4)
    cpu.grid(axis="y", alpha=0.3)
    _finish(
        fig,
        f"labelwatch: scale-out, {summary['events']:,} events on {summary['partitions']} partitions",
        result,
        out,
    )


CHAOS_COLUMNS = (
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("raw_extra_rows", "rows\nwritten twice"),
    ("dead_letters_missing", "dead letters\nmissing"),
    ("dead_letters_repeated", "dead letters\nrepeated*"),
    ("tables_differing", "tables\n≠ control"),
    ("accuracy", "accuracy"),
)


def chaos(result: Result, out: Path) -> None:
    """bench/chaos.py: recovery times after kills, SIGTERM, a ClickHouse outage and a broker
    restart, and the verifier's counts per run (all must be 0)."""
    fig, (ax, table) = _figure(2, width=14.0, height=5.8, width_ratios=(1, 1.5))
    runs = result["runs"]
    groups: list[tuple[str, list[float]]] = []
    if "kill" in runs:
        groups.append(
            (
                f"{runs['kill'].get('kills', '?')} SIGKILLs, "
                f"{len(runs['kill'].get('recovery_s') or [])} timed\nto committing again",
                list(runs["kill"].get("recovery_s") or []),
            )
        )
    if "term" in runs:
        groups.append(("SIGTERM\nto exit", [e["seconds"] for e in runs["term"].get("exits", [])]))
    if "outage" in runs:
        o = runs["outage"]
        groups.append(
            (
                f"{o.get('outage_s', 0):.0f} s ClickHouse outage\nend to lag 0",
                [o["recovery_s"]] if o.get("recovery_s") is not None else [],
            )
        )
    if "broker" in runs:
        groups.append(
            (
                "broker SIGKILL\nto lag 0",
                [runs["broker"]["since_broker_kill_s"]]
                if runs["broker"].get("since_broker_kill_s") is not None
                else [],
            )
        )
    _box(ax, [g for _, g in groups], range(len(groups)), [OURS] * len(groups))
    ax.set_xticks(range(len(groups)), [name for name, _ in groups], fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title("Recovery", fontsize=10)
    ax.grid(axis="y", alpha=0.3)

    rows = {"control": result["control"], **runs}
    cells, colours = [], []
    for r in rows.values():
        line, shade = [], []
        for key, _ in CHAOS_COLUMNS:
            value = r.get(key)
            if key == "tables_differing":
                value = len(value or [])
            if key == "accuracy":
                delta = abs((value or 0) - result["control"]["accuracy"]) * 100
                line.append("-" if value is None else f"{value:.4f}")
                shade.append("#d5f5e3" if value is not None and delta <= 0.5 else "#fadbd8")
                continue
            line.append(str(value))
            ok = value == 0 or key == "dead_letters_repeated"
            shade.append("#d5f5e3" if ok else "#fadbd8")
        cells.append(line)
        colours.append(shade)
    table.axis("off")
    drawn = table.table(
        cellText=cells,
        cellColours=colours,
        rowLabels=list(rows),
        colLabels=[c[1] for c in CHAOS_COLUMNS],
        cellLoc="center",
        bbox=Bbox.from_bounds(0.08, 0.3, 0.92, 0.62),
    )
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    outage = runs.get("outage") or {}
    if outage:
        during = outage.get("rss_during") or {}
        before = outage.get("rss_before") or {}
        table.text(
            0.5,
            0.16,
            f"ClickHouse outage of {outage.get('outage_s', 0):.0f} s: committed lag "
            f"{outage.get('lag_at_outage_start', '?'):,} before and {outage.get('lag_at_outage_end', '?'):,} after "
            + (
                "(nothing committed during it)"
                if outage.get("lag_at_outage_start") == outage.get("lag_at_outage_end")
                else ""
            )
            + f";\nworker RSS {during.get('rss_min_mb', 0):.0f}-"
            f"{during.get('rss_max_mb', 0):.0f} MB during it (peak {before.get('rss_max_mb', 0):.0f} MB before)",
            ha="center",
            va="center",
            fontsize=8,
            transform=table.transAxes,
        )
    table.set_title(
        "Verifier per run: target 0 in every column, accuracy within 0.5 points of control\n"
        "(* at-least-once: a poison message may be dead-lettered again after a kill)",
        fontsize=9,
    )
    summary = result.get("summary", {})
    verdict = "all runs OK" if summary.get("all_ok") else "NOT ALL RUNS OK"
    _finish(fig, f"labelwatch: chaos, {result.get('events', 0):,} messages; {verdict}", result, out)


def privacy_detection(result: Result, out: Path) -> None:
    """bench/privacy_detection.py: 5x spikes detected within two windows per rate band,
    false alarms per day, and detection delays, against a fixed 3x threshold."""
    fig, (bands_ax, fa, delay) = _figure(3, width=15.0, width_ratios=(1.5, 1, 1))
    detectors = (
        ("monitor", "labelwatch PrivacyMonitor", OURS),
        ("fixed_3x", "fixed 3x long-run mean", REFERENCE),
    )
    bands = list(result["monitor"]["bands"])
    for i, (key, label, color) in enumerate(detectors):
        values = [result[key]["bands"][b]["share_within_2"] or 0.0 for b in bands]
        bars = bands_ax.bar(
            [j + (i - 0.5) * 0.38 for j in range(len(bands))],
            values,
            0.38,
            color=color,
            label=label,
        )
        for bar, band in zip(bars, bands, strict=True):
            b = result[key]["bands"][band]
            bands_ax.annotate(
                f"{b['detected_within_2']}/{b['injected']}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    _target(bands_ax, 1.0, "target: every 5x spike within 2 windows")
    bands_ax.set_xticks(range(len(bands)), bands)
    bands_ax.set_ylim(0, 1.25)
    bands_ax.set_xlabel("series' rate at the spike's start (signals per window)")
    bands_ax.set_ylabel("share of 5x spikes detected within 2 windows")
    bands_ax.set_title("Detection by the series' rate", fontsize=10)
    bands_ax.legend(fontsize=8, loc="upper left")
    bands_ax.grid(axis="y", alpha=0.3)

    kinds = (
        ("false_alarms_per_day_stationary", "stationary"),
        ("false_alarms_per_day_with_spikes", "with spikes"),
    )
    for i, (key, label, color) in enumerate(detectors):
        values = [result[key][k] for k, _ in kinds]
        bars = fa.bar(
            [j + (i - 0.5) * 0.38 for j in range(len(kinds))],
            values,
            0.38,
            color=color,
            label=label,
        )
        _bar_values(fa, bars, lambda v: f"{v:.2f}")
    _target(fa, PRIVACY_FALSE_ALARMS_PER_DAY, "target: ≤ 1 false spike per day")
    fa.set_yscale("log")
    fa.set_ylim(top=fa.get_ylim()[1] * 5)
    fa.set_xticks(range(len(kinds)), [k[1] for k in kinds])
    fa.set_ylabel("false privacy_spike alerts per simulated day (log scale)")
    fa.set_title("False alarms", fontsize=10)
    fa.legend(fontsize=8, loc="upper left")
    fa.grid(axis="y", which="both", alpha=0.3)

    delays = []
    for key, _, _ in detectors:
        spikes = [s for r in result.get("injected_runs", []) for s in r[key]["spikes"]]
        delays.append([s["delay_windows"] for s in spikes if s.get("delay_windows") is not None])
    _box(delay, delays, [0, 1], [c for _, _, c in detectors])
    _target(delay, PRIVACY_DELAY_WINDOWS, "target: within 2 windows")
    delay.set_xticks(
        [0, 1],
        [
            f"{label}\n{result[key]['spikes']['detected_at_all']}/{result[key]['spikes']['injected']} detected"
            for key, label, _ in detectors
        ],
        fontsize=8,
    )
    minutes = result.get("config", {}).get("window_seconds", 0) / 60
    delay.set_ylabel(f"delay, windows{f' of {minutes:g} min' if minutes else ''}")
    delay.set_title("Delay from spike start to the alert", fontsize=10)
    delay.legend(fontsize=8, loc="upper right")
    delay.grid(axis="y", alpha=0.3)
    exposures = result.get("exposures", {})
    days = result.get("days_per_seed", 0) * len(result.get("seeds", []))
    _finish(
        fig,
        f"labelwatch: privacy signal spikes, {days:g} simulated days; critical exposures alerted "
        f"{exposures.get('alerted', 0)}/{exposures.get('injected', 0)}",
        result,
        out,
    )


def assist(result: Result, out: Path) -> None:
    """bench/assist.py: automation-bias precision and recall after 100 pre-labeled items each
    (target 0.95), and model-drift detection delays with the false alarms."""
    guide = result.get("guideline_change")
    if guide is None:
        fig, (ax, dl) = _figure(2, width_ratios=(1, 1.6))
    else:
        fig, (ax, dl, gl) = _figure(3, width=16.0, width_ratios=(1, 1.4, 1.4))
    bias = result["automation_bias"]
    bars = ax.bar(["precision", "recall"], [bias["precision"], bias["recall"]], 0.5, color=OURS)
    _bar_values(ax, bars, lambda v: f"{v:.3f}")
    _target(ax, bias["target"], f"target {bias['target']}")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("pooled over seeds")
    runs = bias["runs"]
    ax.set_title(
        f"Automation bias flagged after 100 pre-labels each\n({len(runs)} seeds, "
        f"{sum(len(r['biased']) for r in runs)} biased annotators)",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="lower right")
    drift = result["model_drift"]
    delays = drift["delays"]
    if delays:
        _box(dl, [delays], [0], [OURS])
    else:
        _no_data(dl, "no detection")
    dl.set_xticks(
        [0],
        [
            f"model accuracy 0.8 → 0.5\ndetected {len(delays)}, missed {drift['missed']}; "
            f"false alarms {drift['false_alarms']}\nin {drift['null_labels']:,} labels without a drop"
        ],
        fontsize=8,
    )
    dl.set_ylabel("labels of the stream from the drop to model_drift")
    dl.set_title("Model drift: detection delay per project", fontsize=10)
    dl.grid(axis="y", alpha=0.3)
    if guide is not None:
        runs = guide["runs"]
        delays = [r["delay_project_labels"] for r in runs if r["delay_project_labels"] is not None]
        right = sum(r["right_pair"] for r in runs)
        if delays:
            _box(gl, [delays], [0], [OURS])
        else:
            _no_data(gl, "no finding")
        _target(gl, guide["target_labels"], f"target: within {guide['target_labels']} labels")
        gl.set_xticks(
            [0],
            [
                f"two classes swapped by half the annotators\nright pair on {right}/{len(runs)}"
                f" seeds; {guide['false_findings']} findings\non "
                f"{len(guide['unchanged_runs'])} unchanged streams"
            ],
            fontsize=8,
        )
        gl.set_ylabel("the project's labels from the change to the finding")
        gl.set_title("Guideline change: delay of the confusion finding", fontsize=10)
        gl.legend(fontsize=8, loc="upper right")
        gl.grid(axis="y", alpha=0.3)
    _finish(fig, "labelwatch: ML-assisted labeling health (simulation)", result, out)


def review_sampling(result: Result, out: Path) -> None:
    """bench/review_sampling.py: wrong consensus found in the top 10% the queue ranks, as a
    multiple of a random 10%, per data set and order (target 2x)."""
    fig, (ax,) = _figure(1, width=10.0)
    names = list(result["datasets"])
    for offset, key, label, color in (
        (-0.2, "ranked", "ranked at the end of the stream", OURS),
        (0.2, "queue", "streaming queue (10% budget)", REFERENCE),
    ):
        for i, name in enumerate(names):
            ratios = [r[key]["ratio"] for r in result["datasets"][name]["runs"]]
            ax.scatter(
                [i + offset] * len(ratios),
                ratios,
                color=color,
                s=22,
                zorder=3,
                label=label if i == 0 else None,
            )
    _target(ax, result.get("target_ratio", 2.0), f"target {result.get('target_ratio', 2.0)}x")
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("wrong consensus found / expected in a random 10% (log)")
    ax.set_title("Review sampling: file order and seeded shuffles", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", which="both", alpha=0.3)
    _finish(fig, "labelwatch: review queue vs random review", result, out)


def agreement(result: Result, out: Path) -> None:
    """bench/agreement.py: streaming Krippendorff's alpha at the end of the stream against
    Crowd-Kit's batch value per data set (target: within 0.01), every order."""
    fig, (ax,) = _figure(1, width=10.0)
    names = list(result["datasets"])
    for i, name in enumerate(names):
        d = result["datasets"][name]
        ax.bar(
            i - 0.2,
            d["crowdkit_alpha"],
            0.35,
            color=REFERENCE,
            label="Crowd-Kit alpha_krippendorff (batch)" if i == 0 else None,
        )
        alphas = [r["alpha"] for r in d["runs"]]
        ax.bar(
            i + 0.2,
            max(alphas),
            0.35,
            color=OURS,
            label="labelwatch StreamingAlpha (every order)" if i == 0 else None,
        )
        ax.text(
            i,
            max(d["crowdkit_alpha"], *alphas) + 0.02,
            f"max |diff| {d['max_abs_diff']:.1e}",
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("nominal Krippendorff's alpha at the end of the stream")
    ax.set_title(f"Target: within {result.get('tolerance', 0.01)} of the batch value", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    _finish(fig, "labelwatch: streaming agreement vs Crowd-Kit", result, out)


PLOTS: dict[str, Callable[[Result, Path], None]] = {
    "throughput": throughput,
    "alert_latency": alert_latency,
    "consensus_accuracy": consensus_accuracy,
    "decode": decode,
    "drift_detection": drift_detection,
    "memory": memory,
    "model_path": model_path,
    "scale_out": scale_out,
    "chaos": chaos,
    "privacy_detection": privacy_detection,
    "assist": assist,
    "review_sampling": review_sampling,
    "agreement": agreement,
}

# Keys only one benchmark's result has, for JSON files written under another name (--out).
SIGNATURES: dict[str, str] = {
    "bare_faust": "throughput",
    "event_to_clickhouse_by_5s": "alert_latency",
    "product_speedup_vs_dawid_skene": "consensus_accuracy",
    "decode_us_per_event": "decode",
    "shared_runs": "drift_detection",
    "mb_per_100k_items": "memory",
    "us_per_label": "model_path",
    "events_per_partition": "scale_out",
    "ledger": "chaos",
    "fixed_3x": "privacy_detection",
    "automation_bias": "assist",
    "share_reviewed": "review_sampling",
    "all_targets_met": "agreement",
}


def kind_of(path: Path, result: Result) -> str | None:
    """Which benchmark wrote ``result``: by the file's stem, else by its keys."""
    if path.stem in PLOTS:
        return path.stem
    return next((kind for key, kind in SIGNATURES.items() if key in result), None)


def plot_next_to(json_path: Path, result: Result, kind: str | None = None) -> Path | None:
    """Write the plot of ``result`` beside ``json_path`` (same stem, ``.png``) and return its
    path. A failure is reported on stderr and returns None: the benchmark's JSON is written
    already, and ``python bench/plots.py JSON`` plots it again."""
    png = json_path.with_suffix(".png")
    try:
        name = kind or kind_of(json_path, result)
        if name is None:
            raise ValueError(f"{json_path}: not a result of a known benchmark")
        PLOTS[name](result, png)
    except Exception:  # a plot must never cost a long benchmark its summary line
        traceback.print_exc()
        print(
            f"[plots] no plot for {json_path}: python bench/plots.py {json_path} retries",
            file=sys.stderr,
        )
        return None
    print(f"[plots] wrote {png}", file=sys.stderr)
    return png


def main(argv: Iterable[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python bench/plots.py bench/results/*.json", file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        if path.suffix != ".json":
            continue
        result = json.loads(path.read_text())
        kind = kind_of(path, result)
        if kind is None:
            print(f"{path}: not a result of a known benchmark, skipped", file=sys.stderr)
            failed += 1
            continue
        try:
            PLOTS[kind](result, path.with_suffix(".png"))
        except Exception:  # plot the other files, then fail
            traceback.print_exc()
            failed += 1
            continue
        print(f"wrote {path.with_suffix('.png')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
