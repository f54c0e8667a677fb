"""Drift, spammer and alert-rate benchmark of the annotator monitor, with ADWIN as reference.

Three parts, all through ``labelwatch.replay.replay`` (the models the worker runs):

1. Simulated streams (``labelwatch.simulator``) with injected behaviours and ground truth:
   drifters (reliable, then uniformly random from a known own label on), spammers
   (constant, uniformly random, too fast), a colluding pair, and stationary reliable and
   noisy annotators. Reports drift detection rate and delay, false alarms per 10,000 labels
   of stationary annotators, and spammer precision/recall at 50 labels.
2. The shared data sets with injected drift: in a seeded shuffle, up to ``--per-set``
   annotators with at least 90 labels get uniformly random answers from an own label drawn
   in [30, n - 60]. Reported for every eligible annotator, and separately for those whose
   answers carried information to lose (accuracy against truth at least halfway between
   chance and 1).
3. The unmodified shared data sets: alerts of every kind per 1,000 labels and
   ``annotator_drift`` per 10,000.

Beside the monitor, in the same run, River's ``ADWIN()`` with default parameters watches the
same per-annotator correctness signal (agreement with the item's other votes) as reference.

Delay is counted in the annotator's own labels: 1 means the first random answer raised it.

Usage: ``python bench/drift_detection.py [--seeds 1 2 3] [--quick]``; prints a table and
writes ``bench/results/drift_detection.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from river import drift

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plots import plot_next_to  # noqa: E402

from labelwatch.models.drift import AnswerContext  # noqa: E402
from labelwatch.replay import LabelRow, ordered, read_labels, read_truth, replay  # noqa: E402
from labelwatch.simulator import PROJECT_LABELS, LabelingSimulator, SimulationConfig  # noqa: E402

DATASETS = Path(ROOT.parent / "shared" / "datasets")
SPAM_KINDS = ("spammer_constant", "spammer_random", "spammer_fast")
STATIONARY = ("reliable", "noisy")


class AdwinReference:
    """River's ADWIN (defaults) per annotator on the agreement signal; first alarm only."""

    def __init__(self, rows: list[LabelRow]) -> None:
        self.rows = rows
        self.detectors: dict[str, drift.ADWIN] = {}
        self.first: dict[str, int] = {}  # annotator -> position of its first alarm

    def __call__(self, position: int, ctx: AnswerContext | None) -> None:
        if ctx is None:
            return
        annotator = self.rows[position].annotator
        detector = self.detectors.setdefault(annotator, drift.ADWIN())
        detector.update(ctx.agreement)
        if detector.drift_detected and annotator not in self.first:
            self.first[annotator] = position


def own_indices(rows: list[LabelRow]) -> list[int]:
    """1-based number of each row among its annotator's rows."""
    seen: Counter[str] = Counter()
    out = []
    for row in rows:
        seen[row.annotator] += 1
        out.append(seen[row.annotator])
    return out


def first_opened(alerts: list[dict[str, Any]], kind: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for a in alerts:
        if a["kind"] == kind and a["state"] == "opened":
            out[a["annotator"]].append(a["at_label"] - 1)
    return out


def delays_summary(delays: list[int], detected: int, total: int) -> dict[str, Any]:
    d = sorted(delays)

    def pct(q: float) -> float | None:
        if not d:
            return None
        return float(d[min(len(d) - 1, round(q * (len(d) - 1)))])

    return {
        "injected": total,
        "detected": detected,
        "detection_rate": detected / total if total else None,
        "median_delay": statistics.median(d) if d else None,
        "p90_delay": pct(0.9),
    }


def drift_outcomes(
    onsets: dict[str, int], fires: dict[str, list[int]], own: list[int]
) -> tuple[list[int], int, int]:
    """(delays, detected, alarms before onset) for annotators with known onsets."""
    delays, detected, early = [], 0, 0
    for annotator, onset in onsets.items():
        positions = fires.get(annotator, [])
        before = [p for p in positions if own[p] < onset]
        after = [p for p in positions if own[p] >= onset]
        early += len(before)
        if after:
            detected += 1
            delays.append(own[after[0]] - onset + 1)
    return delays, detected, early


# --- 1. simulation ------------------------------------------------------------------------
def simulated(seed: int, labels: int) -> dict[str, Any]:
    config = SimulationConfig(
        seed=seed,
        annotators=24,
        behaviours={
            "drifter": 8,
            "spammer_constant": 3,
            "spammer_random": 3,
            "spammer_fast": 3,
            "colluder": 3,
        },
        run_id=f"bench{seed}",
        # One project: the detectors run per annotator *and project*, and delays count the
        # annotator's labels in it (an annotator spread over three projects would show a
        # third of their labels to each project's detectors).
        projects={"animals": PROJECT_LABELS["animals"]},
    )
    sim = LabelingSimulator(config)
    stream = sim.labels(datetime(2026, 1, 1, tzinfo=UTC))
    rows, truth_of = [], {}
    kinds = {a.annotator_id: a for a in sim.annotators}
    for n in range(labels):
        lab = next(stream)
        e = lab.event
        rows.append(
            LabelRow(
                line=n + 2,
                item=str(e["item_id"]),
                annotator=str(e["annotator_id"]),
                label=str(e["label"]),
                gold=None if e["gold_label"] is None else str(e["gold_label"]),
                duration_ms=int(str(e["duration_ms"])),
                ts=datetime.fromisoformat(str(e["ts"])).timestamp(),
                project=str(e["project"]),
            )
        )
        truth_of[str(e["item_id"])] = lab.true_label
    own = own_indices(rows)
    adwin = AdwinReference(rows)
    result = replay(rows, on_label=adwin)
    fires = first_opened(result.alerts, "annotator_drift")
    onsets = {a: s.drift_onset for a, s in kinds.items() if s.drift_onset is not None}
    delays, detected, early = drift_outcomes(onsets, fires, own)
    adwin_fires = {a: [p] for a, p in adwin.first.items()}
    a_delays, a_detected, a_early = drift_outcomes(onsets, adwin_fires, own)
    # False alarms: drift alerts on stationary annotators, per 10,000 of their labels.
    stationary = {a for a, s in kinds.items() if s.kind in STATIONARY}
    stationary_labels = sum(1 for r in rows if r.annotator in stationary)
    false_alarms = sum(len(fires.get(a, [])) for a in stationary)
    adwin_false = sum(1 for a in stationary if a in adwin.first)
    # Spammers: flagged by their 50th label (recall); flags on annotators who are not
    # spammers (precision; drifters flagged after their onset do answer at random and are
    # left out of both counts).
    spam = first_opened(result.alerts, "spammer_suspected")
    spammers = {a for a, s in kinds.items() if s.kind in SPAM_KINDS}
    caught = {a for a in spammers if any(own[p] <= 50 for p in spam.get(a, []))}
    flagged_ok = {a for a in spammers if a in spam}
    wrong = {
        a
        for a, positions in spam.items()
        if a not in spammers
        and not (onsets.get(a) is not None and all(own[p] >= onsets[a] for p in positions))
    }
    # Colluding pairs: both members flagged as copying, naming each other; copy flags on
    # anyone else (or naming someone other than the true partner) are false.
    copies = [
        a for a in result.alerts if a["detector"] == "copied_answers" and a["state"] == "opened"
    ]
    pairs = {frozenset((a, s.partner)) for a, s in kinds.items() if s.partner is not None}
    named = {frozenset((a["annotator"], a["evidence"]["partner"])) for a in copies}
    copy_shared = [
        a["evidence"]["shared"]
        for a in copies
        if frozenset((a["annotator"], a["evidence"]["partner"])) in pairs
    ]
    return {
        "seed": seed,
        "labels": len(rows),
        "colluding_pairs": len(pairs),
        "colluding_pairs_flagged": len(pairs & named),
        # two constant spammers on the same class give identical answers: flagged, rightly
        "copy_flags_constant_spammers": sorted(
            "+".join(sorted(p))
            for p in named - pairs
            if all(kinds[a].kind == "spammer_constant" for a in p)
        ),
        "copy_flags_false": sorted(
            "+".join(sorted(p))
            for p in named - pairs
            if not all(kinds[a].kind == "spammer_constant" for a in p)
        ),
        "copy_shared_items_at_flag": copy_shared,
        "drift": delays_summary(delays, detected, len(onsets)) | {"alarms_before_onset": early},
        "drift_delays": delays,
        "adwin": delays_summary(a_delays, a_detected, len(onsets))
        | {"alarms_before_onset": a_early},
        "adwin_delays": a_delays,
        "stationary_labels": stationary_labels,
        "false_alarms": false_alarms,
        "adwin_false_alarms": adwin_false,
        "spammers": len(spammers),
        "spam_recall_at_50": len(caught) / len(spammers),
        "spam_flagged_true": len(flagged_ok),
        "spam_flagged_false": sorted(wrong),
        "spam_precision": len(flagged_ok) / (len(flagged_ok) + len(wrong))
        if flagged_ok or wrong
        else None,
        "alerts_per_1000": per_thousand(result.alerts, len(rows)),
        "labels_per_second": len(rows) / (result.model_seconds + result.monitor_seconds),
    }


def per_thousand(alerts: list[dict[str, Any]], labels: int) -> dict[str, float]:
    """Opened alerts per 1,000 labels by kind and detector (``kind/detector``)."""
    opened = Counter(
        f"{a['kind']}/{a['detector'].split(':')[0]}" for a in alerts if a["state"] == "opened"
    )
    return {k: 1000.0 * v / labels for k, v in sorted(opened.items())}


# --- 2 and 3. shared data sets ----------------------------------------------------------------
def accuracy_by_annotator(rows: list[LabelRow], truth: dict[str, str]) -> dict[str, float]:
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for r in rows:
        if r.item in truth:
            seen[r.annotator] += 1
            right[r.annotator] += truth[r.item] == r.label
    return {a: right[a] / seen[a] for a in seen}


def shared(name: str, seed: int, per_set: int) -> dict[str, Any]:
    base = read_labels(DATASETS / name / "labels.csv")
    truth = read_truth(DATASETS / name / "truth.csv")
    rows = ordered(base, seed)
    classes = sorted({r.label for r in rows})
    chance = 1.0 / len(classes)
    accuracy = accuracy_by_annotator(rows, truth)
    counts = Counter(r.annotator for r in rows)
    eligible = sorted(a for a, n in counts.items() if n >= 90)
    rng = random.Random(seed * 7919 + len(name))
    chosen = rng.sample(eligible, min(per_set, len(eligible)))
    onsets = {a: rng.randint(30, counts[a] - 60) for a in chosen}
    own = own_indices(rows)
    injected = []
    for r, n in zip(rows, own, strict=True):
        if r.annotator in onsets and n >= onsets[r.annotator]:
            r = LabelRow(
                r.line,
                r.item,
                r.annotator,
                rng.choice(classes),
                r.gold,
                r.duration_ms,
                r.ts,
                r.project,
            )
        injected.append(r)
    adwin = AdwinReference(injected)
    result = replay(injected, on_label=adwin)
    fires = first_opened(result.alerts, "annotator_drift")
    informative = {a: o for a, o in onsets.items() if accuracy[a] >= chance + 0.5 * (1 - chance)}
    out: dict[str, Any] = {"data_set": name, "seed": seed}
    for group, group_onsets in (("all", onsets), ("informative", informative)):
        delays, detected, early = drift_outcomes(group_onsets, fires, own)
        a_delays, a_detected, _ = drift_outcomes(
            group_onsets, {a: [p] for a, p in adwin.first.items()}, own
        )
        out[group] = delays_summary(delays, detected, len(group_onsets)) | {
            "alarms_before_onset": early,
            "delays": delays,
        }
        out[f"adwin_{group}"] = delays_summary(a_delays, a_detected, len(group_onsets)) | {
            "delays": a_delays
        }
    # Unmodified stream: alert rates.
    plain = replay(rows)
    drift_alerts = sum(
        1 for a in plain.alerts if a["kind"] == "annotator_drift" and a["state"] == "opened"
    )
    out["unmodified"] = {
        "labels": len(rows),
        "alerts_per_1000": per_thousand(plain.alerts, len(rows)),
        "drift_alerts": drift_alerts,
        "drift_alerts_per_10000": 1e4 * drift_alerts / len(rows),
        "labels_per_second": len(rows) / (plain.model_seconds + plain.monitor_seconds),
    }
    return out


def pooled(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    delays = [d for r in runs for d in r[key]["delays"]]
    detected = sum(r[key]["detected"] for r in runs)
    total = sum(r[key]["injected"] for r in runs)
    return delays_summary(delays, detected, total)


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:.0f}"
    return str(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sim-labels", type=int, default=60_000)
    parser.add_argument("--per-set", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="one seed, shorter simulation")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "drift_detection.json"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.sim_labels = args.seeds[:1], 20_000
    started = time.perf_counter()
    sims = [simulated(seed, args.sim_labels) for seed in args.seeds]
    sets = [
        shared(name, seed, args.per_set)
        for name in ("duck", "dog", "face", "product")
        for seed in args.seeds
    ]

    print("## Simulated streams (pooled over seeds)")
    sim_drift = delays_summary(
        [d for s in sims for d in s["drift_delays"]],
        sum(s["drift"]["detected"] for s in sims),
        sum(s["drift"]["injected"] for s in sims),
    )
    sim_adwin = delays_summary(
        [d for s in sims for d in s["adwin_delays"]],
        sum(s["adwin"]["detected"] for s in sims),
        sum(s["adwin"]["injected"] for s in sims),
    )
    stationary_labels = sum(s["stationary_labels"] for s in sims)
    fa = 1e4 * sum(s["false_alarms"] for s in sims) / stationary_labels
    adwin_fa = 1e4 * sum(s["adwin_false_alarms"] for s in sims) / stationary_labels
    print(
        "| detector | detected | median delay | p90 delay | false alarms / 10k stationary labels |"
    )
    print("|---|---|---|---|---|")
    for name, d, f in (("labelwatch", sim_drift, fa), ("ADWIN()", sim_adwin, adwin_fa)):
        print(
            f"| {name} | {d['detected']}/{d['injected']} ({fmt(d['detection_rate'])}) | "
            f"{fmt(d['median_delay'])} | {fmt(d['p90_delay'])} | {f:.2f} |"
        )
    flagged_true = sum(s["spam_flagged_true"] for s in sims)
    flagged_false = sum(len(s["spam_flagged_false"]) for s in sims)
    recall = statistics.mean(s["spam_recall_at_50"] for s in sims)
    precision = (
        flagged_true / (flagged_true + flagged_false) if flagged_true + flagged_false else None
    )
    print(f"\nSpammers: recall by the 50th label {recall:.3f}, precision {fmt(precision)}")
    pairs = sum(s["colluding_pairs"] for s in sims)
    pairs_flagged = sum(s["colluding_pairs_flagged"] for s in sims)
    copy_false = sum(len(s["copy_flags_false"]) for s in sims)
    shared_at_flag = [n for s in sims for n in s["copy_shared_items_at_flag"]]
    constant_pairs = sum(len(s["copy_flags_constant_spammers"]) for s in sims)
    print(
        f"Colluding pairs: {pairs_flagged}/{pairs} flagged, false pairs {copy_false} "
        f"(and {constant_pairs} pairs of constant spammers answering the same class), "
        f"shared items at the flag: median {fmt(statistics.median(shared_at_flag) if shared_at_flag else None)}, "
        f"max {max(shared_at_flag, default=None)}"
    )
    print("Alerts per 1,000 labels:", json.dumps(sims[0]["alerts_per_1000"]))

    print("\n## Shared data sets with injected drift (pooled over seeds)")
    print(
        "| data set | group | detected | median | p90 | ADWIN detected | ADWIN median | ADWIN p90 | drift alerts / 10k unmodified |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    summary_sets: dict[str, Any] = {}
    for name in ("duck", "dog", "face", "product"):
        runs = [r for r in sets if r["data_set"] == name]
        unmodified = (
            sum(r["unmodified"]["drift_alerts"] for r in runs)
            * 1e4
            / sum(r["unmodified"]["labels"] for r in runs)
        )
        summary_sets[name] = {"drift_alerts_per_10000_unmodified": unmodified}
        for group in ("all", "informative"):
            ours, ref = pooled(runs, group), pooled(runs, f"adwin_{group}")
            summary_sets[name][group] = ours
            summary_sets[name][f"adwin_{group}"] = ref
            print(
                f"| {name} | {group} | {ours['detected']}/{ours['injected']} | "
                f"{fmt(ours['median_delay'])} | {fmt(ours['p90_delay'])} | "
                f"{ref['detected']}/{ref['injected']} | {fmt(ref['median_delay'])} | "
                f"{fmt(ref['p90_delay'])} | {unmodified:.2f} |"
            )
    print("\n## Unmodified shared data sets: alerts per 1,000 labels (first seed)")
    for r in sets:
        if r["seed"] == args.seeds[0]:
            print(
                f"{r['data_set']}: {json.dumps({k: round(v, 2) for k, v in r['unmodified']['alerts_per_1000'].items()})}"
            )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
        "seeds": args.seeds,
        "simulated": {
            "drift": sim_drift,
            "adwin": sim_adwin,
            "false_alarms_per_10000": fa,
            "adwin_false_alarms_per_10000": adwin_fa,
            "spam_recall_at_50": recall,
            "spam_precision": precision,
            "colluding_pairs": pairs,
            "colluding_pairs_flagged": pairs_flagged,
            "copy_false_pairs": copy_false,
            "runs": sims,
        },
        "shared": summary_sets,
        "shared_runs": sets,
        "seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    plot_next_to(args.out, report, "drift_detection")
    print(f"\nwrote {args.out} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
