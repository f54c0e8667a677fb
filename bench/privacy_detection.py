"""Privacy-signal rate anomalies: false alarms, spike detection delay, exposure rule.

Simulated traffic (``labelwatch.privacy_simulator``: 3 projects x 7 signal kinds, a daily
rhythm with peak/trough 3.4x, busy and quiet projects) goes through
``labelwatch.models.privacy.PrivacyMonitor`` exactly as the worker would call it (each event
validated as a ``PrivacySignal`` from its JSON first). Per seed:

a. stationary traffic for ``--days`` days: opened ``privacy_spike`` findings are all false
   alarms; reported per simulated day over all series together (the first day includes the
   warm-up);
b. the same background with ``--spikes`` injected 5x spikes (3-6 windows long, only on series
   with at least 1 signal per window at the daily mean, starts spread over the days) and
   ``--exposures`` critical ``pii_exposed_to_annotator`` signals. A spike is *detected* when
   an opened ``privacy_spike`` of its series has its ts within two windows of the spike's
   start; delay is in windows (event time from spike start to the alert / window length).
   Openings that match no spike (ts outside [start, end + 2 windows]) are false alarms.
   Reported overall and per band of the series' rate at the spike's start;
c. exposures (in run b): alerted when a ``privacy_exposure`` finding names the signal.

Reference: a fixed threshold per series, "count in the window > 3x the series' long-run mean
window count (River ``stats.Mean`` over all its closed windows, zeros included) and at least
5 signals", tested as each signal arrives, same warm-up (6 windows), episodes like the
monitor's (resolved when a window closes at or below the threshold).

Usage: ``python bench/privacy_detection.py [--seeds 1 2 3] [--days 7] [--quick]
[--set alpha=1e-3 ...]``; prints markdown tables and writes
``bench/results/privacy_detection.json``. ``--set`` overrides ``PrivacyConfig`` fields to
explore trade-offs; the shipped numbers are those of the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from river import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plots import plot_next_to  # noqa: E402

from labelwatch.cli import main as cli_main  # noqa: E402
from labelwatch.models.privacy import PrivacyConfig, PrivacyMonitor  # noqa: E402
from labelwatch.privacy_simulator import (  # noqa: E402
    ExposureIncident,
    PrivacySimulationConfig,
    PrivacySimulator,
    SpikeIncident,
)
from labelwatch.replay import read_events, replay_events  # noqa: E402
from labelwatch.schemas.events import PrivacySignal  # noqa: E402

START = datetime(2026, 1, 5, tzinfo=UTC)
BANDS = ((0.0, 1.0), (1.0, 2.0), (2.0, 5.0), (5.0, 15.0), (15.0, math.inf))  # signals per window


@dataclass
class Opening:
    project: str
    kind: str
    ts: float


@dataclass
class FixedThreshold:
    """Reference: count > ``factor`` x long-run mean window count (and >= ``min_count``)."""

    window_seconds: float
    factor: float = 3.0
    min_count: int = 5
    min_windows: int = 6
    means: dict[tuple[str, str], stats.Mean] = field(default_factory=dict)
    closed: dict[tuple[str, str], int] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    in_episode: set[tuple[str, str]] = field(default_factory=set)
    window: int | None = None
    openings: list[Opening] = field(default_factory=list)

    def threshold(self, key: tuple[str, str]) -> float:
        return max(self.factor * self.means[key].get(), self.min_count - 0.5)

    def observe(self, project: str, kind: str, t: float) -> None:
        index = math.floor(t / self.window_seconds)
        if self.window is None:
            self.window = index
        while self.window < index:  # in-order stream: close every series' window
            for key in self.means:
                n = self.counts.get(key, 0)
                if key in self.in_episode and n <= self.threshold(key):
                    self.in_episode.discard(key)
                self.means[key].update(n)
                self.closed[key] += 1
            self.counts.clear()
            self.window += 1
        key = (project, kind)
        if key not in self.means:
            self.means[key], self.closed[key] = stats.Mean(), 0
        self.counts[key] = self.counts.get(key, 0) + 1
        if (
            key not in self.in_episode
            and self.closed[key] >= self.min_windows
            and self.counts[key] > self.threshold(key)
        ):
            self.in_episode.add(key)
            self.openings.append(Opening(project, kind, t))


def run(
    seed: int, days: float, n_spikes: int, n_exposures: int, config: PrivacyConfig
) -> dict[str, Any]:
    sim_config = PrivacySimulationConfig(seed=seed, run_id=f"bench{seed}")
    sim = PrivacySimulator(sim_config)
    end = START + timedelta(days=days)
    incidents = sim.random_incidents(START, end, n_spikes, n_exposures) if n_spikes else []
    monitor = PrivacyMonitor(config)
    reference = FixedThreshold(config.window_seconds)
    openings: list[Opening] = []
    exposure_events: dict[str, str] = {}  # incident name -> event id
    alerted_events: set[str] = set()
    findings = 0
    signals = 0
    started = time.perf_counter()
    model_seconds = 0.0
    for position, simulated in enumerate(sim.signals(START, end, incidents)):
        signal = PrivacySignal.model_validate_json(json.dumps(simulated.event))
        if simulated.incident and simulated.incident.startswith("exposure:"):
            exposure_events[simulated.incident] = signal.event_id
        t0 = time.perf_counter()
        found = monitor.observe(signal, position)
        model_seconds += time.perf_counter() - t0
        reference.observe(signal.project, signal.kind, signal.ts.timestamp())
        signals += 1
        for f in found:
            findings += 1
            if f.kind == "privacy_spike" and f.state == "opened":
                openings.append(Opening(f.project, f.subject, f.ts.timestamp()))
            if f.kind == "privacy_exposure":
                alerted_events.add(str(f.evidence["event_id"]))
    spikes = [i for i in incidents if isinstance(i, SpikeIncident)]
    exposures = [i for i in incidents if isinstance(i, ExposureIncident)]
    out: dict[str, Any] = {
        "seed": seed,
        "days": days,
        "signals": signals,
        "findings": findings,
        "late_signals": monitor.late_signals,
        "series": len(monitor.series),
        "signals_per_second_model": signals / model_seconds if model_seconds else None,
        "seconds": time.perf_counter() - started,
    }
    for name, opened in (("monitor", openings), ("fixed_3x", reference.openings)):
        out[name] = score_spikes(sim, spikes, opened, config.window_seconds)
    out["exposures"] = {
        "injected": len(exposures),
        "alerted": sum(1 for i in exposures if exposure_events.get(i.name) in alerted_events),
    }
    return out


def score_spikes(
    sim: PrivacySimulator, spikes: list[SpikeIncident], opened: list[Opening], window: float
) -> dict[str, Any]:
    by_series: dict[tuple[str, str], list[float]] = defaultdict(list)
    for o in opened:
        by_series[(o.project, o.kind)].append(o.ts)
    matched: set[tuple[str, str, float]] = set()
    per_spike = []
    for s in spikes:
        a, b = s.start.timestamp(), s.end.timestamp() + 2 * window
        hits = [t for t in by_series[(s.project, s.kind)] if a <= t <= b]
        matched.update((s.project, s.kind, t) for t in hits)
        delay = (min(hits) - a) / window if hits else None
        per_spike.append(
            {
                "project": s.project,
                "kind": s.kind,
                "start": s.start.isoformat(),
                "windows": s.duration_seconds / window,
                "rate_at_start": sim.rate(s.project, s.kind, a) * window,
                "delay_windows": delay,
                "within_2": delay is not None and delay <= 2.0,
                "openings": len(hits),
            }
        )
    false = [o for o in opened if (o.project, o.kind, o.ts) not in matched]
    return {"spikes": per_spike, "openings": len(opened), "false_alarms": len(false)}


def summary(per_spike: list[dict[str, Any]]) -> dict[str, Any]:
    delays = sorted(s["delay_windows"] for s in per_spike if s["delay_windows"] is not None)
    within = sum(1 for s in per_spike if s["within_2"])

    def pct(q: float) -> float | None:
        return delays[min(len(delays) - 1, round(q * (len(delays) - 1)))] if delays else None

    return {
        "injected": len(per_spike),
        "detected_within_2": within,
        "share_within_2": within / len(per_spike) if per_spike else None,
        "detected_at_all": len(delays),
        "median_delay": statistics.median(delays) if delays else None,
        "p90_delay": pct(0.9),
    }


def revoked_items(seed: int, config: PrivacyConfig, revocations: int = 20) -> dict[str, Any]:
    """Labels given to revoked items, through the mixed-file path: ``labelwatch simulate
    --to-file`` writes labels, signals and revocations; ``replay`` must alert every label
    given at or after its item's revocation, and no other."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.jsonl"
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli_main(
                [
                    "simulate",
                    "--to-file",
                    str(path),
                    "--events",
                    "20000",
                    "--hours",
                    "6",
                    "--seed",
                    str(seed),
                    "--revocations",
                    str(revocations),
                ]
            )
        if code != 0:
            raise SystemExit(f"simulate --to-file failed with {code}")
        truth = json.loads(Path(f"{path}.truth.json").read_text())
        alerts = replay_events(read_events(path), privacy_config=config).alerts
    expected = {
        label["event_id"] for item in truth["revoked_items"] for label in item["labels_after"]
    }
    flagged = [
        a["evidence"]["label_event_id"] for a in alerts if a["kind"] == "revoked_item_labeled"
    ]
    return {
        "seed": seed,
        "revocations": len(truth["revoked_items"]),
        "labels_after_revocation": len(expected),
        "alerted": len(expected & set(flagged)),
        "alerted_wrongly": len(set(flagged) - expected) + len(flagged) - len(set(flagged)),
    }


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--spikes", type=int, default=24)
    parser.add_argument("--exposures", type=int, default=12)
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="override PrivacyConfig fields (to explore; the defaults are what ships)",
    )
    parser.add_argument("--quick", action="store_true", help="one seed, two days")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "privacy_detection.json"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.days, args.spikes, args.exposures = args.seeds[:1], 2.0, 8, 4
    overrides = {}
    for item in args.set:
        name, value = item.split("=", 1)
        kind = type(getattr(PrivacyConfig(), name))
        overrides[name] = kind(value)
    config = PrivacyConfig(**overrides)
    began = time.perf_counter()
    stationary = [run(seed, args.days, 0, 0, config) for seed in args.seeds]
    injected = [run(seed, args.days, args.spikes, args.exposures, config) for seed in args.seeds]
    total_days = args.days * len(args.seeds)

    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} python {platform.python_version()}",
        "seeds": args.seeds,
        "days_per_seed": args.days,
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
    }
    print(
        f"## Privacy spikes: {len(args.seeds)} seeds x {args.days:g} simulated days, "
        f"{stationary[0]['series']} series"
    )
    print(
        "| detector | false alarms / day (stationary) | false alarms / day (with spikes) | "
        "5x spikes within 2 windows | detected at all | median delay | p90 delay |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in ("monitor", "fixed_3x"):
        fa = sum(r[name]["false_alarms"] for r in stationary) / total_days
        fa_b = sum(r[name]["false_alarms"] for r in injected) / total_days
        spikes = [s for r in injected for s in r[name]["spikes"]]
        summ = summary(spikes)
        label = "PrivacyMonitor" if name == "monitor" else "fixed 3x long-run mean"
        print(
            f"| {label} | {fa:.2f} | {fa_b:.2f} | {summ['detected_within_2']}/{summ['injected']} "
            f"({fmt(summ['share_within_2'])}) | {summ['detected_at_all']} | "
            f"{fmt(summ['median_delay'])} | {fmt(summ['p90_delay'])} |"
        )
        bands = {}
        for lo, hi in BANDS:
            band = [s for s in spikes if lo <= s["rate_at_start"] < hi]
            bands[f"{lo:g}-{hi:g}"] = summary(band)
        report[name] = {
            "false_alarms_per_day_stationary": fa,
            "false_alarms_per_day_with_spikes": fa_b,
            "spikes": summ,
            "bands": bands,
        }
    print("\nBy the series' rate at the spike's start (signals per window):")
    print("| rate band | detector | within 2 windows | median delay | p90 delay |")
    print("|---|---|---|---|---|")
    for band in report["monitor"]["bands"]:
        for name in ("monitor", "fixed_3x"):
            b = report[name]["bands"][band]
            print(
                f"| {band} | {name} | {b['detected_within_2']}/{b['injected']} "
                f"({fmt(b['share_within_2'])}) | {fmt(b['median_delay'])} | {fmt(b['p90_delay'])} |"
            )
    exposed = sum(r["exposures"]["injected"] for r in injected)
    alerted = sum(r["exposures"]["alerted"] for r in injected)
    print(f"\nCritical exposures: {alerted}/{exposed} alerted, {exposed - alerted} missed")
    per_second = statistics.median(r["signals_per_second_model"] for r in stationary)
    print(f"Monitor throughput (model only): {per_second:,.0f} signals/s")
    report["exposures"] = {"injected": exposed, "alerted": alerted, "missed": exposed - alerted}
    revoked = [revoked_items(seed, config) for seed in args.seeds]
    expected = sum(r["labels_after_revocation"] for r in revoked)
    flagged = sum(r["alerted"] for r in revoked)
    wrong = sum(r["alerted_wrongly"] for r in revoked)
    print(
        f"Labels on revoked items (mixed JSONL file, simulate --to-file -> replay; "
        f"{sum(r['revocations'] for r in revoked)} revocations): {flagged}/{expected} alerted, "
        f"{expected - flagged} missed, {wrong} alerted that should not be"
    )
    report["revoked_items"] = revoked
    report["signals_per_second_model"] = per_second
    report["stationary_runs"] = stationary
    report["injected_runs"] = injected
    report["seconds"] = time.perf_counter() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    plot_next_to(args.out, report, "privacy_detection")
    print(f"\nwrote {args.out} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
