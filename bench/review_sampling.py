"""Benchmark: does the review queue find wrong consensus labels faster than random review?

For each shared data set, in file order and in seeded shuffles (1, 2, 3):

* ``ranked``: ``labelwatch.replay`` runs the streaming consensus over the labels; at the end
  of the stream every item with a truth is scored by :class:`ReviewPriority` (its posterior,
  its votes with their annotators' reliability at the end); the top 10% by priority are
  "reviewed". Found: how many of them have a wrong consensus label (against truth.csv).
  Expected at random: 10% of all wrong items. An empirical random 10% is drawn too.
  ``cons only`` is the same ranking by the consensus uncertainty alone (no second opinion).
* ``queue``: the streaming consensus learns the labels in batches of 256 (as a worker would);
  an item is ready when its last label has been learned (in a live system: when it closes)
  and is scored then and offered to a :class:`ReviewSampler` with a budget of 10% of the
  items per hour, 10-minute windows, 20% random share, strata = consensus confidence band.
  Event time runs with readiness: the items become ready at a steady rate over one hour (in
  a shuffled file an item's last label comes near the end, which no live queue sees). Its
  ratio is the share of wrong labels among the picks over the share among all items offered
  (the labels as they were when scored; ``prio``: the priority picks alone); the random picks
  give a Horvitz-Thompson estimate of that error rate (one draw: with 1-3 random picks on
  duck it means little).

Target (issue 10): ``ranked`` finds at least 2x the wrong labels a random 10% finds, on every
data set, in every order.

The shared data sets carry no model pre-labels, so the model-conflict component is not
exercised on them. A simulated case (``labelwatch.simulator``'s default population, 3 labels
per item, 30,000 labels, gold items left out) with a simulated calibrated model (confidence
uniform between chance and 1, its pre-label right with the probability it states) shows what
that component adds to the ranking.

Needs no Crowd-Kit: ``.venv/bin/python bench/review_sampling.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from _support import machine

from labelwatch.models.consensus import StreamingConsensus
from labelwatch.models.review import (
    SECONDS_PER_HOUR,
    ReviewPriority,
    ReviewSampler,
    audit_estimate,
    confidence_band,
)
from labelwatch.replay import LabelRow, ordered, read_labels, read_truth, replay
from labelwatch.simulator import LabelingSimulator, SimulationConfig

DATASETS = ("duck", "dog", "face", "product")
ORDERS: tuple[int | None, ...] = (None, 1, 2, 3)
SHARE = 0.10
TARGET = 2.0
BATCH = 256
WINDOW_SECONDS = 600
RANDOM_SHARE = 0.2
SCORER = ReviewPriority()
CONSENSUS_ONLY = ReviewPriority(trusted_weight=0.0, model_weight=0.0)


def order_name(seed: int | None) -> str:
    return "file" if seed is None else f"seed {seed}"


def item_votes(rows: Sequence[LabelRow]) -> dict[tuple[str, str], dict[str, str]]:
    """(project, item) -> {annotator: label}; a later answer replaces an earlier one, as in
    the consensus model."""
    votes: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        votes.setdefault((row.project, row.item), {})[row.annotator] = row.label
    return votes


class Reliabilities:
    """Each annotator's current accuracy, read from the model once per batch (a report
    computes a credible interval: too slow to ask for every vote)."""

    def __init__(self, model: StreamingConsensus) -> None:
        self.model = model
        self.cache: dict[str, float] = {}

    def __getitem__(self, annotator: str) -> float:
        accuracy = self.cache.get(annotator)
        if accuracy is None:
            accuracy = self.cache[annotator] = self.model.reliability.report(annotator).accuracy
        return accuracy


def score_input(
    model: StreamingConsensus, item: str, votes: Mapping[str, str], reliability: Reliabilities
) -> dict[str, Any]:
    return {
        "posterior": model.predict_proba_one({"item": item}),
        "votes": [(label, reliability[a]) for a, label in votes.items()],
    }


def top_share(
    scored: Sequence[tuple[float, bool]], share: float, rng: random.Random
) -> dict[str, Any]:
    """Wrong labels among the top ``share`` by score, vs expected and drawn at random."""
    n = len(scored)
    top = max(1, round(share * n))
    wrong = sum(w for _, w in scored)
    # Ties (equal scores) are broken at random, not by the file's order.
    keyed = sorted(((-s, rng.random(), w) for s, w in scored))
    found = sum(w for _, _, w in keyed[:top])
    expected = top * wrong / n
    drawn = sum(w for _, w in rng.sample(list(scored), top))
    return {
        "items": n,
        "wrong": wrong,
        "reviewed": top,
        "found": found,
        "expected_random": expected,
        "random_draw": drawn,
        "ratio": found / expected if expected else None,
    }


def ranked(rows: Sequence[LabelRow], truth: Mapping[str, str], seed: int | None) -> dict[str, Any]:
    result = replay(rows)
    votes = item_votes(rows)
    full: list[tuple[float, bool]] = []
    consensus_only: list[tuple[float, bool]] = []
    for project, model in result.models.items():
        reliability = Reliabilities(model)
        for item in model.items:
            if item not in truth:
                continue
            x = score_input(model, item, votes[(project, item)], reliability)
            wrong = model.predict_one({"item": item}) != truth[item]
            full.append((SCORER.score_one(x), wrong))
            consensus_only.append((CONSENSUS_ONLY.score_one(x), wrong))
    out = top_share(full, SHARE, random.Random(seed or 0))
    out["consensus_only"] = top_share(consensus_only, SHARE, random.Random(seed or 0))
    return out


def queue(rows: Sequence[LabelRow], truth: Mapping[str, str], seed: int | None) -> dict[str, Any]:
    """The streaming review queue over one project's labels (the shared sets have one)."""
    last = {(row.project, row.item): position for position, row in enumerate(rows)}
    items_with_truth = sum(1 for _, item in last if item in truth)
    ready = 0
    budget = max(SECONDS_PER_HOUR // WINDOW_SECONDS, round(SHARE * items_with_truth))
    sampler = ReviewSampler(
        budget_per_hour=budget,
        random_share=RANDOM_SHARE,
        window_seconds=WINDOW_SECONDS,
        seed=seed or 0,
    )
    model = StreamingConsensus()
    votes: dict[tuple[str, str], dict[str, str]] = {}
    label_when_scored: dict[str, str | None] = {}
    picks = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        model.learn_many(row.model_input() for row in batch)
        reliability = Reliabilities(model)
        for offset, row in enumerate(batch):
            key = (row.project, row.item)
            votes.setdefault(key, {})[row.annotator] = row.label
            if last[key] != start + offset or row.item not in truth:
                continue
            score = SCORER.explain_one(score_input(model, row.item, votes[key], reliability))
            label_when_scored[row.item] = score.consensus_label
            ts = SECONDS_PER_HOUR * ready / items_with_truth
            ready += 1
            stratum = confidence_band(score.consensus_confidence)
            picks += sampler.offer(row.item, score.priority, ts, stratum, score.reason)
    picks += sampler.flush()
    wrong = {item: label != truth[item] for item, label in label_when_scored.items()}
    base_rate = sum(wrong.values()) / len(wrong)
    by_kind = {kind: [p for p in picks if p.kind == kind] for kind in ("priority", "random")}

    def ratio(chosen: Sequence[Any]) -> float | None:
        if not chosen or not base_rate:
            return None
        return sum(wrong[p.item] for p in chosen) / len(chosen) / base_rate

    reviews = [(wrong[p.item], p.inclusion_probability) for p in by_kind["random"]]
    audit = audit_estimate(reviews, sampler.n_offered) if reviews else None
    return {
        "budget_per_hour": budget,
        "offered": sampler.n_offered,
        "picks": len(picks),
        "random_picks": len(by_kind["random"]),
        "found": sum(wrong[p.item] for p in picks),
        "error_rate": base_rate,
        "ratio": ratio(picks),
        "priority_ratio": ratio(by_kind["priority"]),
        "audit_error_rate": audit.error_rate if audit else None,
        "audit_standard_error": audit.standard_error if audit else None,
    }


def simulated(seed: int, n_labels: int = 30_000) -> dict[str, Any]:
    """A simulated stream with a simulated model pre-label on every item."""
    sim = LabelingSimulator(SimulationConfig(seed=seed))
    rows: list[LabelRow] = []
    truth: dict[str, str] = {}
    for line, label in enumerate(islice(sim.labels(datetime(2026, 1, 1, tzinfo=UTC)), n_labels)):
        e = label.event
        rows.append(
            LabelRow(
                line=line + 2,
                item=str(e["item_id"]),
                annotator=str(e["annotator_id"]),
                label=str(e["label"]),
                gold=None if e["gold_label"] is None else str(e["gold_label"]),
                ts=datetime.fromisoformat(str(e["ts"])).timestamp(),
                project=str(e["project"]),
            )
        )
        truth[str(e["item_id"])] = label.true_label
    result = replay(rows)
    votes = item_votes(rows)
    gold_items = {row.item for row in rows if row.gold is not None}
    rng = random.Random(1000 + seed)
    variants: dict[str, list[tuple[float, bool]]] = {"consensus": [], "+trusted": [], "+model": []}
    consensus_only = ReviewPriority(trusted_weight=0.0, model_weight=0.0)
    no_model = ReviewPriority(model_weight=0.0)
    for project, model in result.models.items():
        reliability = Reliabilities(model)
        classes = list(model.reliability.classes_)
        for item in model.items:
            if item in gold_items:  # answer known: nothing to review
                continue
            # A calibrated model: states a confidence c and is right with probability c.
            c = rng.uniform(1.0 / len(classes), 1.0)
            right = rng.random() < c
            others = [k for k in classes if k != truth[item]]
            model_label = truth[item] if right or not others else rng.choice(others)
            x = score_input(model, item, votes[(project, item)], reliability)
            x.update(model_label=model_label, model_confidence=c)
            wrong = model.predict_one({"item": item}) != truth[item]
            variants["consensus"].append((consensus_only.score_one(x), wrong))
            variants["+trusted"].append((no_model.score_one(x), wrong))
            variants["+model"].append((SCORER.score_one(x), wrong))
    return {
        name: top_share(scored, SHARE, random.Random(seed)) for name, scored in variants.items()
    }


def run(root: Path) -> dict[str, Any]:
    datasets: dict[str, Any] = {}
    for name in DATASETS:
        rows, truth = read_labels(root / name / "labels.csv"), read_truth(root / name / "truth.csv")
        runs = []
        for seed in ORDERS:
            stream = ordered(rows, seed)
            runs.append(
                {
                    "order": order_name(seed),
                    "ranked": ranked(stream, truth, seed),
                    "queue": queue(stream, truth, seed),
                }
            )
        ratios = [r["ranked"]["ratio"] for r in runs]
        queue_ratios = [r["queue"]["ratio"] for r in runs]
        datasets[name] = {
            "labels": len(rows),
            "runs": runs,
            "median_ratio": statistics.median(ratios),
            "min_ratio": min(ratios),
            "best_possible_ratio": runs[0]["ranked"]["items"] / max(1, runs[0]["ranked"]["wrong"]),
            "queue_median_ratio": statistics.median(queue_ratios),
            "meets_target": min(ratios) >= TARGET,
        }
    sim = {f"seed {seed}": simulated(seed) for seed in (1, 2, 3)}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "share_reviewed": SHARE,
        "target_ratio": TARGET,
        "priority_params": {
            "trusted_skill": SCORER.trusted_skill,
            "trusted_weight": SCORER.trusted_weight,
            "model_weight": SCORER.model_weight,
        },
        "queue": {"window_seconds": WINDOW_SECONDS, "random_share": RANDOM_SHARE},
        "model_conflict_exercised_on_shared_data": False,
        "datasets": datasets,
        "simulated_with_model_prelabels": sim,
    }


def print_table(report: dict[str, Any]) -> None:
    header = (
        f"{'data set':<9}{'order':<8}{'items':>7}{'wrong':>7}{'top10%':>7}{'found':>7}"
        f"{'exp rnd':>8}{'rnd draw':>9}{'ratio':>7}{'cons only':>10}"
        f"{'| queue picks':>13}{'found':>6}{'ratio':>7}{'prio':>6}{'err':>7}{'HT est':>14}"
    )
    print(header)
    print("-" * len(header))
    for name, d in report["datasets"].items():
        for r in d["runs"]:
            k, q = r["ranked"], r["queue"]
            ht = (
                f"{q['audit_error_rate']:.3f}±{q['audit_standard_error']:.3f}"
                if q["audit_error_rate"] is not None
                else "-"
            )
            prio = f"{q['priority_ratio']:.2f}" if q["priority_ratio"] is not None else "-"
            print(
                f"{name:<9}{r['order']:<8}{k['items']:>7}{k['wrong']:>7}{k['reviewed']:>7}"
                f"{k['found']:>7}{k['expected_random']:>8.1f}{k['random_draw']:>9}"
                f"{k['ratio']:>7.2f}{k['consensus_only']['ratio']:>10.2f}"
                f"{q['picks']:>8} ({q['random_picks']:>2}){q['found']:>6}{q['ratio']:>7.2f}"
                f"{prio:>6}{q['error_rate']:>7.3f}{ht:>14}"
            )
    print()
    print(
        f"{'data set':<9}{'median':>8}{'min':>7}{'best possible':>15}{'queue median':>14}  target >= 2x"
    )
    for name, d in report["datasets"].items():
        verdict = "met" if d["meets_target"] else "MISSED"
        print(
            f"{name:<9}{d['median_ratio']:>8.2f}{d['min_ratio']:>7.2f}"
            f"{d['best_possible_ratio']:>15.2f}{d['queue_median_ratio']:>14.2f}  {verdict}"
        )
    print(
        "\nratio: wrong consensus labels found in the reviewed items / expected in as many random"
        " items.\nThe shared data sets have no model pre-labels: the model-conflict component is"
        " not exercised on them."
    )
    print("\nSimulated stream with a simulated calibrated model pre-label (top 10% ratio):")
    for seed, variants in report["simulated_with_model_prelabels"].items():
        cells = "  ".join(f"{v}: {r['ratio']:.2f}" for v, r in variants.items())
        first = next(iter(variants.values()))
        print(f"  {seed}: {first['items']} items, {first['wrong']} wrong;  {cells}")


def summary(report: dict[str, Any]) -> dict[str, Any]:
    sim = report["simulated_with_model_prelabels"]
    return {
        "benchmark": "review_sampling",
        "target_ratio": TARGET,
        "datasets": {
            name: {
                "median_ratio": round(d["median_ratio"], 3),
                "min_ratio": round(d["min_ratio"], 3),
                "queue_median_ratio": round(d["queue_median_ratio"], 3),
                "meets_target": d["meets_target"],
            }
            for name, d in report["datasets"].items()
        },
        "all_met": all(d["meets_target"] for d in report["datasets"].values()),
        "model_conflict_exercised_on_shared_data": False,
        "simulated_median_ratio": {
            v: round(statistics.median(s[v]["ratio"] for s in sim.values()), 3)
            for v in next(iter(sim.values()))
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--datasets", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    parser.add_argument("--out", default="bench/results/review_sampling.json")
    args = parser.parse_args()
    report = run(Path(args.datasets))
    print_table(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    print(json.dumps(summary(report)))


if __name__ == "__main__":
    main()
