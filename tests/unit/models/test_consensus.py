"""StreamingConsensus and AnnotatorReliability on streams with known truth."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from labelwatch.models.consensus import StreamingConsensus
from labelwatch.models.reliability import AnnotatorReliability

CLASSES = ("a", "b", "c")


def population(seed: int) -> dict[str, np.ndarray]:
    """Annotators with known confusion matrices: experts, a class-swapper, and noisy ones."""
    rng = np.random.default_rng(seed)
    truth: dict[str, np.ndarray] = {}
    for i in range(6):
        m = np.full((3, 3), 0.05)
        np.fill_diagonal(m, 0.9)
        truth[f"expert{i}"] = m
    swapper = np.array([[0.1, 0.85, 0.05], [0.85, 0.1, 0.05], [0.05, 0.05, 0.9]])
    truth["swapper"] = swapper
    for i in range(3):
        m = rng.dirichlet(np.ones(3) * 4, size=3) * 0.5
        np.fill_diagonal(m, m.diagonal() + 0.5)
        truth[f"noisy{i}"] = m / m.sum(axis=1, keepdims=True)
    return truth


def labels(seed: int, n_items: int, per_item: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    rng = random.Random(seed)
    matrices = population(seed)
    names = sorted(matrices)
    stream: list[dict[str, Any]] = []
    truth: dict[str, str] = {}
    for i in range(n_items):
        true_k = rng.choices(range(3), weights=[0.5, 0.3, 0.2])[0]
        truth[f"i{i}"] = CLASSES[true_k]
        for annotator in rng.sample(names, per_item):
            answer = rng.choices(range(3), weights=list(matrices[annotator][true_k]))[0]
            stream.append({"item": f"i{i}", "annotator": annotator, "label": CLASSES[answer]})
    rng.shuffle(stream)
    return stream, truth


def test_learned_confusion_matrices_converge_to_the_true_ones() -> None:
    stream, _ = labels(seed=1, n_items=3000, per_item=5)
    model = StreamingConsensus()
    model.learn_many(stream)
    truth = population(1)
    order = [model.reliability.classes_.index(c) for c in CLASSES]
    for annotator, expected in truth.items():
        learned = model.reliability.confusion(annotator)[np.ix_(order, order)]
        # Tolerance: each annotator has ~1,500 labels, ~150-750 per true class.
        assert np.abs(learned - expected).max() < 0.08, annotator


def test_consensus_beats_majority_vote_when_an_annotator_swaps_classes() -> None:
    stream, truth = labels(seed=2, n_items=2000, per_item=3)
    model = StreamingConsensus()
    model.learn_many(stream)
    votes: dict[str, list[str]] = {}
    for x in stream:
        votes.setdefault(x["item"], []).append(x["label"])
    mv = {i: max(set(v), key=v.count) for i, v in votes.items()}
    consensus = {i: model.predict_one({"item": i}) for i in truth}
    acc = np.mean([consensus[i] == truth[i] for i in truth])
    mv_acc = np.mean([mv[i] == truth[i] for i in truth])
    assert acc > mv_acc + 0.02
    assert model.reliability.report("swapper").per_class_accuracy["a"] < 0.3


def test_gold_labels_update_with_certainty_and_count_gold_accuracy() -> None:
    model = StreamingConsensus()
    for i in range(10):
        model.learn_one({"item": f"g{i}", "annotator": "ann", "label": "a", "gold": "a"})
        model.learn_one({"item": f"g{i}", "annotator": "bob", "label": "b", "gold": "a"})
    assert model.consensus("g0").label == "a" and model.consensus("g0").confidence == 1.0
    assert model.reliability.report("ann").gold_accuracy == 1.0
    assert model.reliability.report("bob").gold_accuracy == 0.0
    assert model.reliability.report("ann").accuracy > 0.85
    assert model.reliability.report("bob").accuracy < 0.25


def test_new_annotator_is_trusted_like_the_population() -> None:
    stream, _ = labels(seed=3, n_items=1000, per_item=3)
    rel = AnnotatorReliability()
    model = StreamingConsensus(rel)
    model.learn_many(stream)
    model.learn_one({"item": "new-item", "annotator": "newcomer", "label": "a"})
    newcomer = rel.report("newcomer")
    population_diag = np.diag(rel.population_matrix())
    assert abs(newcomer.accuracy - float(np.mean(population_diag))) < 0.15
    assert newcomer.accuracy_high - newcomer.accuracy_low > 0.3  # wide: one label only


def test_credible_interval_narrows_with_more_labels() -> None:
    stream, _ = labels(seed=4, n_items=3000, per_item=4)
    model = StreamingConsensus()
    model.learn_many(stream[:500])
    early = model.reliability.report("expert0")
    model.learn_many(stream[500:])
    late = model.reliability.report("expert0")
    assert late.accuracy_high - late.accuracy_low < early.accuracy_high - early.accuracy_low
    assert late.accuracy_low < 0.9 < late.accuracy_high + 0.03


def test_items_close_after_ttl_of_event_time_and_under_the_cap() -> None:
    model = StreamingConsensus(item_ttl_seconds=60.0, refresh_per_label=1)
    model.learn_one({"item": "old", "annotator": "a", "label": "x", "ts": 0.0})
    for t in range(1, 6):
        model.learn_one({"item": f"new{t}", "annotator": "b", "label": "x", "ts": 100.0 + t})
    closed = model.pop_closed()
    assert [c.item for c in closed] == ["old"] and closed[0].label == "x"
    assert "old" not in model.items and model.pop_closed() == []

    capped = StreamingConsensus(max_items=3)
    capped.learn_many([{"item": f"i{n}", "annotator": "a", "label": "x"} for n in range(5)])
    assert len(capped) == 3
    assert [c.item for c in capped.pop_closed()] == ["i0", "i1"]


def test_votes_beyond_the_cap_train_the_annotator_but_are_not_stored() -> None:
    model = StreamingConsensus(max_votes_per_item=2)
    for annotator in ("a", "b", "c", "d"):
        model.learn_one({"item": "i", "annotator": annotator, "label": "x"})
    assert model.consensus("i").n_votes == 2
    assert model.reliability.report("d").n_labels == 1
    assert model.reliability.rows_[model.reliability.slot("d")].sum() > 0.99


def test_classes_can_appear_late() -> None:
    model = StreamingConsensus()
    model.learn_many([{"item": f"i{n}", "annotator": "a", "label": "x"} for n in range(20)])
    model.learn_one({"item": "late", "annotator": "a", "label": "y"})
    model.learn_one({"item": "late", "annotator": "b", "label": "y"})
    assert set(model.predict_proba_one({"item": "late"})) == {"x", "y"}
    assert model.predict_one({"item": "late"}) == "y"


def test_a_repeated_label_is_not_a_second_vote_and_a_correction_replaces_the_first() -> None:
    once, repeated = StreamingConsensus(), StreamingConsensus()
    stream = [
        {"item": "i", "annotator": "a", "label": "x"},
        {"item": "i", "annotator": "b", "label": "y"},
        {"item": "j", "annotator": "a", "label": "y"},
    ]
    once.learn_many(stream)
    repeated.learn_many([*stream, stream[0], stream[1]])  # a producer re-sent two events
    for item in ("i", "j"):
        assert repeated.predict_proba_one({"item": item}) == once.predict_proba_one({"item": item})
    assert repeated.consensus("i").n_votes == 2
    assert repeated.reliability.report("a").n_labels == 2

    corrected = StreamingConsensus()
    corrected.learn_many([*stream, {"item": "i", "annotator": "a", "label": "y"}])
    assert corrected.consensus("i").label == "y" and corrected.consensus("i").n_votes == 2
    counts = corrected.reliability.counts_[corrected.reliability.slot("a")]
    assert counts.sum() == pytest.approx(2.0)  # two votes' worth of evidence, not three


def test_a_corrected_gold_answer_updates_gold_accuracy() -> None:
    model = StreamingConsensus()
    model.learn_one({"item": "g", "annotator": "a", "label": "x", "gold": "y"})
    assert model.reliability.report("a").gold_accuracy == 0.0
    model.learn_one({"item": "g", "annotator": "a", "label": "y", "gold": "y"})
    report = model.reliability.report("a")
    assert (report.gold_seen, report.gold_accuracy, report.n_labels) == (1, 1.0, 1)


def _learned(seed: int = 3, n: int = 600) -> StreamingConsensus:
    rng = random.Random(seed)
    model = StreamingConsensus()
    for i in range(n):
        item = f"i{rng.randrange(150)}"
        label = rng.choice(["cat", "dog", "cow"])
        gold = "cat" if item.endswith("7") else None
        model.learn_one(
            {
                "item": item,
                "annotator": f"a{rng.randrange(12)}",
                "label": label,
                "gold": gold,
                "ts": float(i),
            }
        )
    return model


def _view(model: StreamingConsensus) -> dict[str, Any]:
    return {
        item: (c.label, round(c.confidence, 12), c.n_votes, c.gold)
        for item in model.items
        for c in [model.consensus(item)]
    }


def test_state_round_trips_and_learning_continues_identically() -> None:
    original = _learned()
    restored = StreamingConsensus()
    restored.load_state(original.to_state())
    assert _view(restored) == _view(original) and len(_view(original)) > 100
    more = [
        {"item": f"i{n % 170}", "annotator": f"a{n % 13}", "label": "dog", "ts": 1000.0 + n}
        for n in range(300)
    ]
    for model in (original, restored):
        model.learn_many(more)
    assert _view(restored) == _view(original)


def test_checkpoints_of_earlier_releases_still_load() -> None:
    """Before the column layout, a checkpoint listed each item with its votes."""
    original = _learned(seed=4)
    state = original.to_state()
    columns = state.pop("columns")
    ids, n_votes = columns["ids"], columns["n_votes"]
    k = len(columns["posterior"]) // max(1, len(ids))
    items, at = [], 0
    for i, (item, n) in enumerate(zip(ids, n_votes, strict=True)):
        annotators = [columns["annotator_ids"][a] for a in columns["vote_annotators"][at : at + n]]
        labels = columns["vote_labels"][at : at + n]
        posterior = columns["posterior"][i * k : (i + 1) * k]
        items.append(
            [item, annotators, labels, posterior, columns["gold"][i], columns["last_seen"][i]]
        )
        at += n
    state["items"] = items
    restored = StreamingConsensus()
    restored.load_state(state)
    assert _view(restored) == _view(original)
