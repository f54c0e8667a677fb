"""DisagreementAttribution: shares that add up, noisy annotators that stand out, merging."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from labelwatch.models.attribution import OTHERS, DisagreementAttribution

CLASSES = ("cat", "dog", "bird", "fish")
NOISY = ("ann3", "ann11", "ann17")


def labels(seed: int, n: int = 6000) -> list[dict[str, Any]]:
    """30 annotators over two projects; three of them (``NOISY``) are right 30% of the
    time, the others 95%; 'bird' items are harder for everyone."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        annotator = f"ann{rng.randrange(30)}"
        reference = rng.choice(CLASSES)
        accuracy = 0.3 if annotator in NOISY else 0.95
        if reference == "bird":
            accuracy -= 0.1
        wrong = [c for c in CLASSES if c != reference]
        label = reference if rng.random() < accuracy else rng.choice(wrong)
        project = "p1" if rng.random() < 0.7 else "p2"
        out.append(
            {"annotator": annotator, "label": label, "reference": reference, "project": project}
        )
    return out


@pytest.fixture
def model() -> DisagreementAttribution:
    m = DisagreementAttribution()
    m.update_many(labels(1))
    return m


def test_shares_sum_to_one_and_excesses_to_zero(model: DisagreementAttribution) -> None:
    for shares in (model.by_annotator(), model.by_project(), model.by_class()):
        assert sum(s.share for s in shares) == pytest.approx(1.0)
        assert sum(s.label_share for s in shares) == pytest.approx(1.0)
        assert sum(s.disagreements for s in shares) == model.n_disagreements
        assert sum(s.excess or 0.0 for s in shares) == pytest.approx(0.0, abs=1e-9)
    pairs = model.by_pair()
    assert sum(s.share for s in pairs) == pytest.approx(1.0)
    assert all(isinstance(s.key, tuple) and s.key[0] != s.key[1] for s in pairs)


def test_a_few_noisy_annotators_carry_most_of_the_disagreement(
    model: DisagreementAttribution,
) -> None:
    top = model.concentration(3)
    assert set(top.annotators) == set(NOISY)
    assert top.disagreement_share > 0.4 and top.label_share < 0.15
    assert {s.key for s in model.by_annotator()[:3]} == set(NOISY)
    explained = model.explained()
    assert explained["annotators"] > 0.3
    assert 0.0 < explained["classes"] < explained["annotators"]
    assert explained["projects"] < 0.05  # the projects do not differ
    hardest = model.by_class()[0]
    assert hardest.key == "bird" and (hardest.excess or 0.0) > 0
    report = model.report(scope="in project X this week")
    assert report[0].startswith(f"{top.disagreement_share:.0%} of the disagreement in project X")
    assert all(name in report[0] for name in NOISY)
    assert any(
        sentence.startswith(f"{model.by_annotator()[0].key} disagrees") for sentence in report
    )


def test_merged_windows_equal_one_model_over_the_whole_stream() -> None:
    stream = labels(2)
    whole = DisagreementAttribution()
    whole.update_many(stream)
    merged = DisagreementAttribution()
    for start in range(0, len(stream), 1000):
        window = DisagreementAttribution()
        window.update_many(stream[start : start + 1000])
        merged.merge(window)
    assert merged.to_state() == whole.to_state()
    first, second = DisagreementAttribution(), DisagreementAttribution()
    first.update_many(stream[:2500])
    second.update_many(stream[2500:])
    assert (first + second).to_state() == whole.to_state()
    assert first.n_labels == 2500  # + made a new model


def test_the_annotator_cap_folds_the_quiet_ones_and_keeps_totals_exact() -> None:
    stream = labels(3)
    capped, full = DisagreementAttribution(max_annotators=10), DisagreementAttribution()
    capped.update_many(stream)
    full.update_many(stream)
    named = [s for s in capped.by_annotator() if s.key != OTHERS]
    assert len(named) <= 11
    assert set(capped.concentration(3).annotators) == set(NOISY)
    assert capped.n_disagreements == full.n_disagreements
    assert sum(s.disagreements for s in capped.by_annotator()) == full.n_disagreements
    assert sum(s.labels for s in capped.by_annotator()) == full.n_labels
    tiny = DisagreementAttribution(max_annotators=1)
    tiny.update_many(stream)
    assert len(tiny.by_annotator()) <= 2 and tiny.n_disagreements == full.n_disagreements
    assert tiny.report()  # still says something with almost everyone folded


def test_labels_without_reference_are_skipped_and_no_disagreement_is_said() -> None:
    model = DisagreementAttribution()
    model.update({"annotator": "a", "label": "x", "reference": None})
    model.update({"annotator": "a", "label": "x", "reference": "x"})
    assert (model.n_skipped_, model.n_labels, model.n_disagreements) == (1, 1, 0)
    assert model.report(scope="today") == ["no disagreement today (1 labels)"]
    assert model.explained() == {"annotators": 0.0, "classes": 0.0, "projects": 0.0}


def test_state_round_trips_through_json(model: DisagreementAttribution) -> None:
    state = json.loads(json.dumps(model.to_state()))
    restored = DisagreementAttribution.from_state(state)
    assert restored.to_state() == model.to_state()
    assert restored.report() == model.report()
    more = labels(4, 500)
    model.update_many(more)
    restored.update_many(more)
    assert restored.to_state() == model.to_state()


def test_clone_has_the_parameters_and_no_state(model: DisagreementAttribution) -> None:
    twin = model.clone()
    assert twin._get_params() == model._get_params()
    assert twin.n_labels == 0 and twin.by_annotator() == []
