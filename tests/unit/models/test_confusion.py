"""ConfusionStructure: counts, and findings on swaps with and without a guideline change."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from labelwatch.models.confusion import ConfusionCounts, ConfusionFinding, ConfusionStructure

CLASSES = ("a", "b", "c", "d")
CHANGE_AT = 3000


def labeling(
    seed: int,
    n: int,
    *,
    change_at: int | None = None,
    new_version: bool = False,
    swappers: int = 10,
    accuracy: float = 0.85,
) -> list[dict[str, Any]]:
    """Items labeled 3 times by 20 annotators; the reference is gold for 10% of the items,
    else the majority of the item's earlier votes (none for a first vote or a tie). From
    label ``change_at`` on, the first ``swappers`` annotators read 'a' as 'b' and 'b' as
    'a' (under guideline v2 when ``new_version``)."""
    rng = random.Random(seed)
    annotators = [f"ann{i}" for i in range(20)]
    open_items: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    next_item = 0
    while len(out) < n:
        if len(open_items) < 30:
            open_items.append(
                {"id": f"i{next_item}", "truth": rng.choice(CLASSES), "votes": [], "done": set()}
            )
            open_items[-1]["gold"] = rng.random() < 0.1
            next_item += 1
        item = rng.choice(open_items)
        annotator = rng.choice([a for a in annotators if a not in item["done"]])
        changed = change_at is not None and len(out) >= change_at
        seen = item["truth"]
        if changed and annotator in annotators[:swappers] and seen in ("a", "b"):
            seen = "b" if seen == "a" else "a"
        label = seen if rng.random() < accuracy else rng.choice([c for c in CLASSES if c != seen])
        top = Counter(item["votes"]).most_common(2)
        if item["gold"]:
            reference = item["truth"]
        elif top and (len(top) == 1 or top[0][1] > top[1][1]):
            reference = top[0][0]
        else:
            reference = None
        out.append(
            {
                "label": label,
                "reference": reference,
                "annotator": annotator,
                "project": "p",
                "guideline_version": "v2" if changed and new_version else "v1",
            }
        )
        item["votes"].append(label)
        item["done"].add(annotator)
        if len(item["votes"]) == 3:
            open_items.remove(item)
    return out


def first_finding(
    model: ConfusionStructure, stream: list[dict[str, Any]]
) -> tuple[int, ConfusionFinding] | None:
    for t, x in enumerate(stream):
        found = model.update(x)
        if found:
            return t, found[0]
    return None


def test_counts_and_rates() -> None:
    model = ConfusionStructure()
    for reference, given, n in (("a", "a", 8), ("a", "b", 2), ("b", "b", 5)):
        for _ in range(n):
            model.update({"label": given, "reference": reference, "project": "p"})
    model.update({"label": "a", "reference": None, "project": "p"})
    counts = model.counts("p")
    assert counts.rate("a", "b") == 0.2 and counts.rate("c", "a") is None
    assert counts.rates() == {"a": {"a": 0.8, "b": 0.2}, "b": {"a": 0.0, "b": 1.0}}
    pair = counts.confused_pairs()[0]
    assert (pair.reference, pair.given, pair.count, pair.support) == ("a", "b", 2, 10)
    assert pair.reverse_rate == 0.0
    assert model.n_labels_ == 15 and model.n_skipped_ == 1
    assert model.counts("elsewhere") == ConfusionCounts()


@pytest.mark.parametrize("seed", range(6))
def test_a_guideline_change_that_swaps_two_classes_is_found_within_500_labels(seed: int) -> None:
    stream = labeling(seed, CHANGE_AT + 1000, change_at=CHANGE_AT, new_version=True)
    found = first_finding(ConfusionStructure(), stream)
    assert found is not None
    at, finding = found
    assert CHANGE_AT <= at < CHANGE_AT + 500
    assert finding.kind == "guideline"
    assert (finding.guideline, finding.baseline) == ("v2", "v1")
    assert set(finding.pair) == {"a", "b"}
    assert finding.ratio > 2 and finding.annotators >= 3
    assert finding.sentence.startswith(f"in project p, since guideline v2, '{finding.reference}'")


@pytest.mark.parametrize("seed", range(6))
def test_a_swap_within_one_guideline_version_is_found_with_the_right_pair(seed: int) -> None:
    stream = labeling(seed, CHANGE_AT + 1500, change_at=CHANGE_AT)
    found = first_finding(ConfusionStructure(), stream)
    assert found is not None
    at, finding = found
    assert CHANGE_AT <= at < CHANGE_AT + 1000
    assert finding.kind == "window" and finding.baseline is None
    assert set(finding.pair) == {"a", "b"}
    assert "than before" in finding.sentence


@pytest.mark.parametrize("seed", range(3))
def test_no_finding_on_an_unchanged_stream(seed: int) -> None:
    stream = labeling(100 + seed, 20_000)
    stream += [{**x, "guideline_version": "v2"} for x in labeling(200 + seed, 5_000)]
    assert ConfusionStructure().update_many(stream) == []


def test_one_swapping_annotator_is_not_a_population_change() -> None:
    stream = labeling(7, CHANGE_AT + 3000, change_at=CHANGE_AT, swappers=1, accuracy=0.95)
    model = ConfusionStructure()
    assert model.update_many(stream) == []
    lenient = ConfusionStructure(min_annotators=1, max_annotator_share=1.0)
    assert [f.pair for f in lenient.update_many(stream)] == [("a", "b")]


def test_a_sustained_doubling_is_found() -> None:
    rng = random.Random(3)
    model = ConfusionStructure()
    found = []
    for t in range(30_000):
        rate = 0.05 if t < 10_000 else 0.10
        given = "y" if rng.random() < rate else "x"
        found += model.update({"label": given, "reference": "x", "annotator": f"a{t % 9}"})
    assert [f.pair for f in found] == [("x", "y")]
    assert 1.6 < found[0].ratio < 3.0 and found[0].at_label > 10_000


def test_segments_are_bounded_and_versions_follow_them() -> None:
    model = ConfusionStructure(max_segments=3)
    for version in ("v1", "v2", "v3", "v4"):
        model.update({"label": "a", "reference": "a", "project": "p", "guideline_version": version})
    assert model.segments == [("p", "v2"), ("p", "v3"), ("p", "v4")]
    assert model.previous_version("p", "v2") is None
    assert model.previous_version("p", "v4") == "v3"
    assert model.project_counts("p").n_labels == 3
    assert model.population().n_labels == 3


def test_state_round_trips_through_json_and_findings_continue() -> None:
    stream = labeling(4, CHANGE_AT + 1000, change_at=CHANGE_AT, new_version=True)
    model = ConfusionStructure(guard=300)
    assert model.update_many(stream[: CHANGE_AT + 50]) == []
    state = json.loads(json.dumps(model.to_state()))
    restored = ConfusionStructure.from_state(state)
    assert restored._get_params() == model._get_params()
    assert restored.to_state() == model.to_state()
    assert restored.update_many(stream[CHANGE_AT + 50 :]) == model.update_many(
        stream[CHANGE_AT + 50 :]
    )
    assert restored.to_state() == model.to_state()


def test_clone_has_the_parameters_and_no_state() -> None:
    model = ConfusionStructure(guard=50, ratios=(3.0,), min_count=5)
    model.update_many(labeling(5, 300))
    twin = model.clone()
    assert twin._get_params() == model._get_params()
    assert twin.segments == [] and twin.n_labels_ == 0
