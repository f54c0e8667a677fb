"""Benchmark: online consensus vs batch Crowd-Kit on the shared crowdsourcing data sets.

For each data set, labelwatch's replay runs in seeded shuffles (seeds 1, 2, 3) with the one
default configuration; Crowd-Kit's MajorityVote, DawidSkene and GLAD run in the same process
on the same data (batch methods do not depend on row order). Prints a table, writes JSON.

Targets (issue 3): median accuracy over the seeds >= DawidSkene - 0.005 and >= MajorityVote
on every data set; replay >= 100,000 labels/s and >= 10x DawidSkene's labels/s on product.

Crowd-Kit conflicts with the worker's dependencies, so this runs in its own virtualenv:
``make bench-consensus`` (creates ``.venv-bench``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plots import plot_next_to

from labelwatch.replay import accuracy, ordered, read_labels, read_truth, replay

DATASETS = ("duck", "dog", "face", "product")
SEEDS = (1, 2, 3)
TOLERANCE = 0.005


def crowdkit_results(labels_csv: Path, truth: dict[str, str]) -> dict[str, dict[str, float]]:
    import pandas as pd
    from crowdkit.aggregation import GLAD, DawidSkene, MajorityVote

    frame = pd.read_csv(labels_csv, dtype=str).rename(
        columns={"annotator": "worker", "item": "task"}
    )
    frame = frame[["task", "worker", "label"]]
    out: dict[str, dict[str, float]] = {}
    for name, method in (
        ("MajorityVote", MajorityVote()),
        ("DawidSkene", DawidSkene(n_iter=100)),
        ("GLAD", GLAD()),
    ):
        started = time.perf_counter()
        predicted = method.fit_predict(frame)
        seconds = time.perf_counter() - started
        by_item = {str(task): str(label) for task, label in predicted.items()}
        keys = [item for item in truth if item in by_item]
        out[name] = {
            "accuracy": sum(by_item[i] == truth[i] for i in keys) / len(keys),
            "seconds": seconds,
            "labels_per_second": len(frame) / seconds,
        }
    return out


def run(root: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in DATASETS:
        labels_csv, truth_csv = root / name / "labels.csv", root / name / "truth.csv"
        rows, truth = read_labels(labels_csv), read_truth(truth_csv)
        runs = []
        for seed in SEEDS:
            result = replay(ordered(rows, seed))
            runs.append(
                {
                    "seed": seed,
                    "accuracy": accuracy(result.consensus(), truth),
                    "majority_vote_accuracy": accuracy(result.majority, truth),
                    "labels_per_second": result.labels_per_second,
                }
            )
        file_order = replay(ordered(rows, None))
        baselines = crowdkit_results(labels_csv, truth)
        median = statistics.median(r["accuracy"] for r in runs)
        ds, mv = baselines["DawidSkene"]["accuracy"], baselines["MajorityVote"]["accuracy"]
        results[name] = {
            "labels": len(rows),
            "runs": runs,
            "median_accuracy": median,
            "file_order_accuracy": accuracy(file_order.consensus(), truth),
            "median_labels_per_second": statistics.median(r["labels_per_second"] for r in runs),
            "crowdkit": baselines,
            "meets_ds_target": median >= ds - TOLERANCE,
            "meets_mv_target": median >= mv
            and all(r["accuracy"] >= r["majority_vote_accuracy"] for r in runs),
        }
    product = results["product"]
    speedup = (
        product["median_labels_per_second"] / product["crowdkit"]["DawidSkene"]["labels_per_second"]
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "datasets": results,
        "product_speedup_vs_dawid_skene": speedup,
        "min_labels_per_second": min(r["median_labels_per_second"] for r in results.values()),
    }


def print_table(report: dict[str, Any]) -> None:
    header = (
        f"{'data set':<9}{'online med':>11}{'seeds':>22}{'file ord':>9}{'CK MV':>8}{'CK DS':>8}"
        f"{'CK GLAD':>8}{'DS-0.5':>8}{'ok':>4}{'labels/s':>11}"
    )
    print(header)
    print("-" * len(header))
    for name, r in report["datasets"].items():
        ck = r["crowdkit"]
        seeds = " ".join(f"{run['accuracy']:.4f}" for run in r["runs"])
        ok = "yes" if r["meets_ds_target"] and r["meets_mv_target"] else "NO"
        print(
            f"{name:<9}{r['median_accuracy']:>11.4f}{seeds:>22}{r['file_order_accuracy']:>9.4f}"
            f"{ck['MajorityVote']['accuracy']:>8.4f}{ck['DawidSkene']['accuracy']:>8.4f}"
            f"{ck['GLAD']['accuracy']:>8.4f}{ck['DawidSkene']['accuracy'] - TOLERANCE:>8.4f}"
            f"{ok:>4}{r['median_labels_per_second']:>11,.0f}"
        )
    product = report["datasets"]["product"]
    print(
        f"\nproduct: online {product['median_labels_per_second']:,.0f} labels/s vs Crowd-Kit "
        f"DawidSkene {product['crowdkit']['DawidSkene']['labels_per_second']:,.0f} labels/s "
        f"({report['product_speedup_vs_dawid_skene']:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    parser.add_argument("--out", default="bench/results/consensus_accuracy.json")
    args = parser.parse_args()
    report = run(Path(args.datasets))
    print_table(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot_next_to(out, report, "consensus_accuracy")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
