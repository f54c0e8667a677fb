"""Benchmark: ML-assisted labeling health in simulation (issue 10).

Runs the worker's model path (``QualityTracker.apply``, one shard, default settings, batches
of 500) over ``labelwatch.simulator`` streams with model pre-labels:

1. **Automation bias.** 40 stationary annotators plus 4 ``automation_biased`` ones (accept the
   pre-label 95% of the time whatever it is), one project of 4 classes, 60% of items
   pre-labeled by a model that is right 80% of the time. The stream runs until every
   annotator has seen 100 pre-labeled items; flagged = an ``automation_bias`` episode was
   opened for the annotator by then. Precision and recall over 5 seeds, pooled.
   Target: both at least 0.95.
2. **Model drift.** The same population over the simulator's three projects; the model's
   accuracy drops from 0.8 to 0.5 at item 8,000 (about label 24,000). Delay = labels from the
   first label of a post-drop item to the ``model_drift`` opening, per project; plus false
   alarms in runs of 100,000 labels with no drop (3 seeds). No target in the issue; reported.

3. **Guideline change.** The simulator's default population and projects; at label 6,000 the
   sentiment project's guideline becomes v2 and half the stationary annotators read it with
   'neutral' and 'negative' swapped. Delay = the project's labels from the change to the
   first confusion finding; right = it names that pair. Target: the right pair within 500
   labels, on each of 10 seeds. Also counted: findings on 5 streams without a change.

Usage: ``.venv/bin/python bench/assist.py [--quick]`` (``make bench-assist``). Prints a table,
writes ``bench/results/assist.json``; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import machine

from labelwatch.models.tracker import QualityTracker
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.simulator import LabelingSimulator, SimulatedLabel, SimulationConfig

RESULTS = Path(__file__).resolve().parent / "results" / "assist.json"
START = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 500
PRELABELED_EACH = 100


def opened_alerts(
    labels: list[SimulatedLabel],
) -> list[tuple[int, str, str, str]]:
    """(offset, kind, project, subject) of every episode opened over ``labels``."""
    tracker = QualityTracker()
    tracker.restore("labels", 0, None)
    out = []
    for start in range(0, len(labels), BATCH):
        batch = [
            (LabelEvent.model_validate(s.event, strict=False), SourcePosition("labels", 0, o))
            for o, s in enumerate(labels[start : start + BATCH], start)
        ]
        for alert in tracker.apply(batch).alerts:
            if alert.state == "opened":
                out.append((alert.offset, alert.kind, alert.project, alert.subject))
    return out


def automation_bias_run(seed: int) -> dict[str, Any]:
    config = SimulationConfig(
        seed=seed,
        annotators=40,
        behaviours={"automation_biased": 4},
        prelabel_share=0.6,
        model_accuracy=0.8,
        projects={"animals": ("cat", "dog", "bird", "other")},
        run_id=f"bias{seed}",
    )
    sim = LabelingSimulator(config)
    labels: list[SimulatedLabel] = []
    shown: dict[str, int] = defaultdict(int)
    everyone = {a.annotator_id for a in sim.annotators}
    for label in sim.labels(START):
        labels.append(label)
        if label.prelabel is not None:
            shown[str(label.event["annotator_id"])] += 1
        if len(shown) == len(everyone) and min(shown.values()) >= PRELABELED_EACH:
            break
    started = time.perf_counter()
    alerts = opened_alerts(labels)
    took = time.perf_counter() - started
    biased = {a.annotator_id for a in sim.annotators if a.kind == "automation_biased"}
    flagged = {subject for _, kind, _, subject in alerts if kind == "automation_bias"}
    return {
        "seed": seed,
        "labels": len(labels),
        "biased": sorted(biased),
        "flagged": sorted(flagged),
        "true_positives": len(flagged & biased),
        "false_positives": len(flagged - biased),
        "false_negatives": len(biased - flagged),
        "labels_per_second": len(labels) / took,
    }


def model_drift_run(seed: int, n_labels: int, drop_at_item: int | None) -> dict[str, Any]:
    config = SimulationConfig(
        seed=seed,
        annotators=40,
        behaviours={"automation_biased": 4},
        prelabel_share=0.6,
        model_accuracy=0.8,
        model_accuracy_after=None if drop_at_item is None else (drop_at_item, 0.5),
        run_id=f"drift{seed}",
    )
    sim = LabelingSimulator(config)
    labels = []
    for label in sim.labels(START):
        labels.append(label)
        if len(labels) == n_labels:
            break
    # The first label of a pre-labeled item opened at or after the drop, per project.
    onset: dict[str, int] = {}
    if drop_at_item is not None:
        for offset, s in enumerate(labels):
            number = int(str(s.event["item_id"]).rsplit("-", 1)[1])
            project = str(s.event["project"])
            if number >= drop_at_item and s.prelabel is not None and project not in onset:
                onset[project] = offset
    alerts = [a for a in opened_alerts(labels) if a[1] == "model_drift"]
    delays = {}
    false_alarms = 0
    for offset, _, project, _ in alerts:
        if project in onset and offset >= onset[project]:
            delays.setdefault(project, offset - onset[project])
        else:
            false_alarms += 1
    return {
        "seed": seed,
        "labels": len(labels),
        "drop_at_label": onset,
        "delays": delays,
        "missed": sorted(set(onset) - set(delays)),
        "false_alarms": false_alarms,
    }


GUIDELINE_CHANGE = 6_000
SWAPPED = ("neutral", "negative")


def guideline_run(seed: int, change: bool) -> dict[str, Any]:
    config = SimulationConfig(
        seed=seed,
        guideline_change=(GUIDELINE_CHANGE, "sentiment", *SWAPPED) if change else None,
        run_id=f"guide{seed}",
    )
    labels = []
    for label in LabelingSimulator(config).labels(START):
        labels.append(label)
        if len(labels) == 15_000:
            break
    tracker = QualityTracker()
    tracker.restore("labels", 0, None)
    findings = []
    for start in range(0, len(labels), BATCH):
        batch = [
            (LabelEvent.model_validate(s.event, strict=False), SourcePosition("labels", 0, o))
            for o, s in enumerate(labels[start : start + BATCH], start)
        ]
        findings += tracker.apply(batch).findings
    first = findings[0] if findings else None
    delay = None
    if first is not None and change:
        delay = sum(
            1
            for s in labels[GUIDELINE_CHANGE : first.offset + 1]
            if s.event["project"] == "sentiment"
        )
    return {
        "seed": seed,
        "change": change,
        "findings": [f.finding.sentence for f in findings],
        "first_pair": None if first is None else list(first.finding.pair),
        "right_pair": first is not None and set(first.finding.pair) == set(SWAPPED),
        "delay_project_labels": delay,
        "delay_stream_labels": None if first is None else first.offset - GUIDELINE_CHANGE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and labels")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    seeds = (1, 2) if args.quick else (1, 2, 3, 4, 5)
    null_labels = 30_000 if args.quick else 100_000
    null_seeds = (11,) if args.quick else (11, 12, 13)

    bias = [automation_bias_run(seed) for seed in seeds]
    tp = sum(r["true_positives"] for r in bias)
    fp = sum(r["false_positives"] for r in bias)
    fn = sum(r["false_negatives"] for r in bias)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0

    drift = [model_drift_run(seed, 40_000, 8_000) for seed in seeds[:3]]
    null = [model_drift_run(seed, null_labels, None) for seed in null_seeds]
    delays = sorted(d for r in drift for d in r["delays"].values())
    missed = sum(len(r["missed"]) for r in drift)
    null_alarms = sum(r["false_alarms"] for r in null) + sum(r["false_alarms"] for r in drift)
    null_total = sum(r["labels"] for r in null)

    guide_seeds = range(1, 4) if args.quick else range(1, 11)
    guide = [guideline_run(seed, True) for seed in guide_seeds]
    unchanged = [guideline_run(seed, False) for seed in range(21, 23 if args.quick else 26)]
    guide_met = all(
        r["right_pair"]
        and r["delay_project_labels"] is not None
        and r["delay_project_labels"] <= 500
        for r in guide
    )
    guide_false = sum(len(r["findings"]) for r in unchanged)

    print("\nAutomation bias: flagged after 100 pre-labeled items each (4 biased of 44)")
    print(f"{'seed':>5} {'labels':>7} {'TP':>3} {'FP':>3} {'FN':>3}")
    for r in bias:
        print(
            f"{r['seed']:>5} {r['labels']:>7} {r['true_positives']:>3} "
            f"{r['false_positives']:>3} {r['false_negatives']:>3}"
        )
    met = precision >= 0.95 and recall >= 0.95
    print(
        f"pooled: precision {precision:.3f}, recall {recall:.3f} "
        f"(target >= 0.95 each: {'met' if met else 'missed'})"
    )
    print("\nModel drift: model accuracy 0.8 -> 0.5 at item 8,000, three projects")
    for r in drift:
        print(f"  seed {r['seed']}: delays {r['delays']} missed {r['missed']}")
    print(
        f"  delay (labels after the first post-drop label): "
        f"{delays if delays else 'none'}; missed {missed}"
    )
    print(
        f"  false alarms: {null_alarms} in {null_total:,} labels without a drop "
        f"(plus the drift runs' pre-drop parts)"
    )

    print("\nGuideline change: 'neutral' <-> 'negative' for half the annotators at label 6,000")
    print(f"{'seed':>5} {'pair found':>22} {'project labels':>15} {'stream labels':>14}")
    for r in guide:
        pair = " -> ".join(r["first_pair"]) if r["first_pair"] else "none"
        print(
            f"{r['seed']:>5} {pair:>22} {r['delay_project_labels']!s:>15} "
            f"{r['delay_stream_labels']!s:>14}"
        )
    print(
        f"right pair within 500 of the project's labels on every seed: "
        f"{'met' if guide_met else 'missed'}; findings on {len(unchanged)} unchanged streams "
        f"of 15,000 labels: {guide_false}"
    )

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "automation_bias": {
            "runs": bias,
            "precision": precision,
            "recall": recall,
            "target": 0.95,
            "met": met,
        },
        "model_drift": {
            "runs": drift,
            "null_runs": null,
            "delays": delays,
            "missed": missed,
            "false_alarms": null_alarms,
            "null_labels": null_total,
        },
        "guideline_change": {
            "runs": guide,
            "unchanged_runs": unchanged,
            "target_labels": 500,
            "met": guide_met,
            "false_findings": guide_false,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        json.dumps(
            {
                "automation_bias_precision": round(precision, 4),
                "automation_bias_recall": round(recall, 4),
                "model_drift_delays": delays,
                "model_drift_false_alarms": null_alarms,
                "guideline_delays": [r["delay_project_labels"] for r in guide],
                "guideline_right_pair": sum(r["right_pair"] for r in guide),
                "guideline_false_findings": guide_false,
            }
        )
    )


if __name__ == "__main__":
    main()
