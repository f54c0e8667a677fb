"""The simulator: seeded, valid events, realistic population, malformed messages as labelled."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from itertools import islice, pairwise

import pytest

from labelwatch.schemas import InvalidEvent, decode_label_event
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
