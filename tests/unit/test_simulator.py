"""The simulator: seeded, valid events, realistic population, malformed messages as labelled."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from itertools import islice, pairwise

import pytest

from labelwatch.schemas import InvalidEvent, LabelEvent, decode_label_event
from labelwatch.simulator import (
    MALFORMED_KINDS,
    LabelingSimulator,
    SimulationConfig,
    encode_event,
    kafka_records,
    malformed_messages,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def take(seed: int, n: int) -> list[dict[str, object]]:
    sim = LabelingSimulator(SimulationConfig(seed=seed))
    return [label.event for label in islice(sim.labels(START), n)]


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    assert take(5, 200) == take(5, 200)
    assert take(5, 200) != take(6, 200)


def test_every_generated_event_validates_and_ids_are_unique() -> None:
    events = take(1, 3000)
    decoded = [decode_label_event(encode_event(e), max_bytes=4096) for e in events]
    assert len({e.event_id for e in decoded}) == len(decoded)
    assert all(b.ts >= a.ts for a, b in pairwise(decoded))


def test_items_get_distinct_annotators_and_gold_tasks_exist() -> None:
    events = take(2, 6000)
    per_item: dict[object, list[object]] = {}
    for e in events:
        per_item.setdefault(e["item_id"], []).append(e["annotator_id"])
    assert all(len(set(a)) == len(a) for a in per_item.values())
    gold_share = sum(e["gold_label"] is not None for e in events) / len(events)
    assert 0.05 < gold_share < 0.15
    assert len({e["project"] for e in events}) == 3


def test_reliable_annotators_agree_with_truth_more_than_noisy_ones() -> None:
    sim = LabelingSimulator(SimulationConfig(seed=3, noisy_share=0.5))
    hits: dict[str, list[bool]] = {"reliable": [], "noisy": []}
    for label in islice(sim.labels(START), 8000):
        hits[label.annotator.kind].append(label.event["label"] == label.true_label)
    reliable = sum(hits["reliable"]) / len(hits["reliable"])
    noisy = sum(hits["noisy"]) / len(hits["noisy"])
    assert reliable > 0.85 and noisy < 0.7


@pytest.mark.parametrize("max_bytes", [4096, 65536])
def test_malformed_messages_get_the_code_they_claim(max_bytes: int) -> None:
    bad = malformed_messages(0, 2 * MALFORMED_KINDS, max_message_bytes=max_bytes)
    assert len({code for code, _ in bad}) == 7
    for code, payload in bad:
        with pytest.raises(InvalidEvent) as info:
            decode_label_event(payload, max_bytes=max_bytes)
        assert info.value.code == code


def test_kafka_records_spread_malformed_messages_and_keep_all() -> None:
    sim = LabelingSimulator(SimulationConfig(seed=4))
    bad = malformed_messages(0, 5, max_message_bytes=4096)
    records = list(kafka_records(sim.labels(START), 100, bad))
    assert len(records) == 105
    positions = [i for i, (key, _) in enumerate(records) if key is None]
    assert len(positions) == 5 and positions[-1] < 104
    assert Counter(v for k, v in records if k is None) == Counter(v for _, v in bad)


def test_pre_labels_automation_bias_and_a_guideline_change_are_simulated() -> None:
    config = SimulationConfig(
        seed=4,
        behaviours={"automation_biased": 3},
        prelabel_share=0.8,
        model_accuracy=0.7,
        guideline_change=(3000, "sentiment", "neutral", "negative"),
    )
    sim = LabelingSimulator(config)
    labels = list(islice(sim.labels(datetime(2026, 1, 1, tzinfo=UTC)), 6000))
    for label in labels:  # every event is a valid version 2 event
        LabelEvent.model_validate_json(json.dumps(label.event))
    shown = [s for s in labels if s.prelabel is not None]
    assert 0.75 < len(shown) / len(labels) < 0.85
    model_right = sum(s.prelabel == s.true_label for s in shown) / len(shown)
    assert 0.65 < model_right < 0.75
    biased = [s for s in shown if s.annotator.kind == "automation_biased"]
    # They take the pre-label 95% of the time, wrong or right.
    wrong = [s for s in biased if s.prelabel != s.true_label]
    assert sum(s.event["label"] == s.prelabel for s in wrong) / len(wrong) > 0.88
    honest = [s for s in shown if s.annotator.kind == "reliable" and s.prelabel != s.true_label]
    assert sum(s.event["label"] == s.prelabel for s in honest) / len(honest) < 0.15
    # The guideline: v1 then v2 at the change; only swappers, only after it, only that pair.
    assert [s.event["guideline_version"] for s in labels[2999:3001]] == ["v1", "v2"]
    swapped = [s for s in labels if s.swapped]
    assert swapped and all(s.event["event_id"] >= labels[3000].event["event_id"] for s in swapped)
    assert {s.annotator.annotator_id for s in swapped} <= sim.guideline_swappers
    assert all(s.event["project"] == "sentiment" for s in swapped)
    assert {s.event["label"] for s in swapped} == {"neutral", "negative"}
