"""One generic check for every estimator in labelwatch.models (River's habit).

Each estimator must clone to an unfitted twin with the same parameters, learn a small stream
without error, round-trip its learned state through JSON (no pickling) with identical
predictions, and learn the same thing whether labels come one by one or in batches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pytest

from labelwatch.models.consensus import StreamingConsensus
from labelwatch.models.reliability import AnnotatorReliability
from labelwatch.simulator import LabelingSimulator, SimulationConfig

ESTIMATORS: dict[str, Callable[[], StreamingConsensus]] = {
    "consensus-default": StreamingConsensus,
    "consensus-no-sweep": lambda: StreamingConsensus(refresh_per_label=0),
    "consensus-small": lambda: StreamingConsensus(
        AnnotatorReliability(prior_strength=5.0), max_votes_per_item=2, item_ttl_seconds=30.0
    ),
    "consensus-capped": lambda: StreamingConsensus(max_items=50),
}
# The item cap is enforced after each learn_many call, so batching changes when it bites.
BATCH_INVARIANT = sorted(set(ESTIMATORS) - {"consensus-capped"})


def stream(n: int = 600, seed: int = 3) -> list[dict[str, Any]]:
    sim = LabelingSimulator(SimulationConfig(seed=seed, projects={"p": ("a", "b", "c")}))
    out = []
    for label in islice(sim.labels(datetime(2026, 1, 1, tzinfo=UTC)), n):
        e = label.event
        out.append(
            {
                "item": e["item_id"],
                "annotator": e["annotator_id"],
                "label": e["label"],
                "gold": e["gold_label"],
                "ts": datetime.fromisoformat(str(e["ts"])).timestamp(),
            }
        )
    return out


def snapshot(model: StreamingConsensus) -> dict[str, Any]:
    return {
        "items": {i: model.predict_proba_one({"item": i}) for i in model.items},
        "annotators": {a: model.reliability.report(a) for a in model.reliability.annotators},
    }


@pytest.fixture(params=sorted(ESTIMATORS))
def make(request: pytest.FixtureRequest) -> Callable[[], StreamingConsensus]:
    return ESTIMATORS[request.param]


def test_clone_has_same_params_and_no_state(make: Callable[[], StreamingConsensus]) -> None:
    model = make()
    model.learn_many(stream(100))
    twin = model.clone()
    assert twin._get_params() == model._get_params()
    assert twin.items == [] and twin.reliability.annotators == []
    assert twin.reliability is not model.reliability


def test_learns_a_small_stream(make: Callable[[], StreamingConsensus]) -> None:
    model = make()
    model.learn_many(stream())
    assert model.n_labels_ == 600
    assert model.items and model.reliability.annotators
    for item in model.items[:20]:
        proba = model.predict_proba_one({"item": item})
        assert abs(sum(proba.values()) - 1.0) < 1e-9


def test_state_round_trips_through_json(make: Callable[[], StreamingConsensus]) -> None:
    model = make()
    data = stream()
    model.learn_many(data[:400])
    state = json.loads(json.dumps(model.to_state()))
    restored = make()
    restored.load_state(state)
    assert snapshot(restored) == snapshot(model)
    # and both go on learning identically
    model.learn_many(data[400:])
    restored.learn_many(data[400:])
    assert snapshot(restored) == snapshot(model)


@pytest.mark.parametrize("name", BATCH_INVARIANT)
def test_batches_learn_exactly_what_single_labels_learn(name: str) -> None:
    make = ESTIMATORS[name]
    data = stream()
    one_by_one, batched = make(), make()
    for x in data:
        one_by_one.learn_one(x)
    for start in range(0, len(data), 97):
        batched.learn_many(data[start : start + 97])
    assert snapshot(batched) == snapshot(one_by_one)
    assert [c.item for c in batched.pop_closed()] == [c.item for c in one_by_one.pop_closed()]


def test_is_deterministic(make: Callable[[], StreamingConsensus]) -> None:
    a, b = make(), make()
    a.learn_many(stream())
    b.learn_many(stream())
    assert snapshot(a) == snapshot(b)
