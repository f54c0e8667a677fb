"""Benchmark: streaming Krippendorff's alpha vs Crowd-Kit's batch alpha on the shared data sets.

For each data set, ``StreamingAlpha`` (default configuration, the same for every data set)
learns the labels in file order and in seeded shuffles (seeds 1, 2, 3), and its alpha at the
end of the stream is compared with ``crowdkit.metrics.data.alpha_krippendorff`` on the same
rows (a batch value, independent of row order).

Target (issue 10): ``|streaming - Crowd-Kit| <= 0.01`` on every data set, in every order.

Also shown, not a target: the alpha of a model that keeps only a tenth of the data set's
items open (``max_items = items // 10``), so items are closed before their last label and
their later labels start new units: what an undersized ``max_items`` costs.

Crowd-Kit conflicts with the worker's dependencies, so this runs in ``.venv-bench``:
``make bench-agreement``. Prints a table, writes ``bench/results/agreement.json``; the last
line of stdout is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _support import machine
from plots import plot_next_to

from labelwatch.models.agreement import StreamingAlpha
from labelwatch.replay import LabelRow, ordered, read_labels

DATASETS = ("duck", "dog", "face", "product")
ORDERS: tuple[int | None, ...] = (None, 1, 2, 3)  # file order, then seeded shuffles
TOLERANCE = 0.01


def crowdkit_alpha(labels_csv: Path) -> tuple[float, float]:
    """Crowd-Kit's alpha of the file, and the seconds it took."""
    import pandas as pd
    from crowdkit.metrics.data import alpha_krippendorff

    frame = pd.read_csv(labels_csv, dtype=str).rename(
        columns={"annotator": "worker", "item": "task"}
    )
    started = time.perf_counter()
    alpha = float(alpha_krippendorff(frame[["task", "worker", "label"]]))
    return alpha, time.perf_counter() - started


def streaming_alpha(rows: list[LabelRow], max_items: int | None = None) -> dict[str, Any]:
    model = StreamingAlpha() if max_items is None else StreamingAlpha(max_items=max_items)
    started = time.perf_counter()
    for row in rows:
        model.update({"item": row.item, "annotator": row.annotator, "label": row.label})
    seconds = time.perf_counter() - started
    coincidence = model.coincidence()
    return {
        "alpha": model.get(),  # None when no item kept two values (a tiny max_items)
        "class_alpha": {c: a for c, a in coincidence.class_alphas().items()},
        "pairable_values": coincidence.n_values,
        "units": coincidence.n_units,
        "closed_items": model.n_closed_,
        "labels_per_second": len(rows) / seconds,
    }


def run(root: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in DATASETS:
        labels_csv = root / name / "labels.csv"
        rows = read_labels(labels_csv)
        reference, crowdkit_seconds = crowdkit_alpha(labels_csv)
        items = len({row.item for row in rows})
        runs, capped = [], []
        for seed in ORDERS:
            stream = ordered(rows, seed)
            run_ = streaming_alpha(stream)
            runs.append({"order": "file" if seed is None else f"seed {seed}", **run_})
            small = streaming_alpha(stream, max_items=max(1, items // 10))
            capped.append({"order": "file" if seed is None else f"seed {seed}", **small})
        worst = max(abs(r["alpha"] - reference) for r in runs)
        results[name] = {
            "labels": len(rows),
            "items": items,
            "crowdkit_alpha": reference,
            "crowdkit_seconds": crowdkit_seconds,
            "runs": runs,
            "max_abs_diff": worst,
            "target": f"|diff| <= {TOLERANCE}",
            "target_met": worst <= TOLERANCE,
            "capped_max_items": max(1, items // 10),
            "capped_runs": capped,
            "capped_max_abs_diff": max(
                (abs(r["alpha"] - reference) if r["alpha"] is not None else None) for r in capped
            )
            if all(r["alpha"] is not None for r in capped)
            else None,
        }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "tolerance": TOLERANCE,
        "datasets": results,
        "all_targets_met": all(r["target_met"] for r in results.values()),
    }


def _or_na(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def print_table(report: dict[str, Any]) -> None:
    header = (
        f"{'data set':<9}{'labels':>8}{'Crowd-Kit':>11}{'file':>9}{'seed 1':>9}{'seed 2':>9}"
        f"{'seed 3':>9}{'max |diff|':>12}{'target':>8}{'capped |diff|':>15}{'labels/s':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, r in report["datasets"].items():
        alphas = "".join(f"{run['alpha']:>9.4f}" for run in r["runs"])
        speed = min(run["labels_per_second"] for run in r["runs"])
        print(
            f"{name:<9}{r['labels']:>8,}{r['crowdkit_alpha']:>11.4f}{alphas}"
            f"{r['max_abs_diff']:>12.1e}{'met' if r['target_met'] else 'MISSED':>8}"
            f"{_or_na(r['capped_max_abs_diff']):>15}{speed:>10,.0f}"
        )
    print(
        f"\ntarget: |streaming - Crowd-Kit| <= {report['tolerance']} in every order; "
        "capped: max_items = items // 10 (not a target)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    parser.add_argument("--out", default="bench/results/agreement.json")
    args = parser.parse_args()
    report = run(Path(args.datasets))
    print_table(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    plot_next_to(out, report, "agreement")
    summary = {
        "all_targets_met": report["all_targets_met"],
        "max_abs_diff": {n: r["max_abs_diff"] for n, r in report["datasets"].items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
