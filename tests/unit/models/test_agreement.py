"""StreamingAlpha against an independent batch alpha, and its streaming properties."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from labelwatch.models.agreement import Coincidence, StreamingAlpha


def batch_alpha(units: Iterable[Iterable[str]]) -> float | None:
    """Nominal Krippendorff's alpha from its pairwise definition (Krippendorff 2011, sec. C):
    observed disagreement over ordered pairs of values within units, weighted 1/(m_u - 1),
    against the disagreement of all ordered pairs of pairable values."""
    pairable = [list(u) for u in units if len(list(u)) >= 2]
    values = [v for u in pairable for v in u]
    n = len(values)
    if n < 2:
        return None
    if len(set(values)) == 1:
        return 1.0
    observed = 0.0
    for u in pairable:
        m = len(u)
        observed += sum(u[i] != u[j] for i in range(m) for j in range(m) if i != j) / (m - 1)
    totals: dict[str, int] = defaultdict(int)
    for v in values:
        totals[v] += 1
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    return 1.0 - (n - 1) * observed / expected


def final_units(stream: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """Each item's values at the end: the latest label of each annotator."""
    latest: dict[str, dict[str, str]] = defaultdict(dict)
    for x in stream:
        latest[x["item"]][x["annotator"]] = x["label"]
    return [list(votes.values()) for votes in latest.values()]


def random_stream(
    seed: int, n: int = 3000, *, relabels: bool = True, classes: str = "abcd"
) -> list[dict[str, Any]]:
    """Labels of items by annotators with uneven accuracy; with ``relabels``, some
    annotators label an item again (the same answer or a correction)."""
    rng = random.Random(seed)
    truth = {f"i{i}": rng.choice(classes) for i in range(n // 4)}
    accuracy = {f"a{j}": rng.uniform(0.4, 0.95) for j in range(15)}
    stream: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    while len(stream) < n:
        item, annotator = rng.choice(list(truth)), rng.choice(list(accuracy))
        if (item, annotator) in seen and not relabels:
            continue
        seen.add((item, annotator))
        right = rng.random() < accuracy[annotator]
        label = truth[item] if right else rng.choice(classes)
        stream.append({"item": item, "annotator": annotator, "label": label, "ts": len(stream)})
    return stream


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_streaming_alpha_equals_batch_alpha(seed: int) -> None:
    stream = random_stream(seed)
    model = StreamingAlpha()
    model.update_many(stream)
    expected = batch_alpha(final_units(stream))
    assert expected is not None
    assert model.get() == pytest.approx(expected, abs=1e-9)
    assert model.coincidence().n_values == sum(len(u) for u in final_units(stream) if len(u) > 1)


@pytest.mark.parametrize("seed", [5, 6])
def test_class_alpha_is_alpha_of_the_class_against_the_rest(seed: int) -> None:
    stream = random_stream(seed)
    model = StreamingAlpha()
    model.update_many(stream)
    units = final_units(stream)
    for c in "abcd":
        collapsed = [[v if v == c else "rest" for v in u] for u in units]
        assert model.class_alpha(c) == pytest.approx(batch_alpha(collapsed), abs=1e-9)
    assert model.class_alpha("never seen") is None


def test_alpha_does_not_depend_on_the_order_of_the_stream() -> None:
    stream = random_stream(7, relabels=False)
    alphas: list[float] = []
    for seed in range(4):
        shuffled = list(stream)
        random.Random(seed).shuffle(shuffled)
        model = StreamingAlpha()
        model.update_many(shuffled)
        alpha = model.get()
        assert alpha is not None
        alphas.append(alpha)
    assert max(alphas) - min(alphas) < 1e-12


def test_a_repeated_label_changes_nothing_and_a_correction_replaces() -> None:
    stream = random_stream(8, relabels=False)
    plain = StreamingAlpha()
    plain.update_many(stream)
    repeated = StreamingAlpha()
    for x in stream:
        repeated.update(x)
        repeated.update(x)  # the producer re-sent it
    assert repeated.coincidence() == plain.coincidence()
    corrected = StreamingAlpha()
    wrong = {"a": "b", "b": "c", "c": "d", "d": "a"}
    for x in stream:
        corrected.update({**x, "label": wrong[x["label"]]})
        corrected.update(x)
    assert corrected.coincidence().n_values == plain.coincidence().n_values
    assert corrected.get() == pytest.approx(plain.get(), abs=1e-9)


def test_degenerate_populations() -> None:
    model = StreamingAlpha()
    assert model.get() is None
    model.update({"item": "i", "annotator": "a", "label": "x"})
    assert model.get() is None  # one value is not pairable
    model.update({"item": "i", "annotator": "b", "label": "x"})
    assert model.get() == 1.0  # one class: Crowd-Kit's convention
    assert model.coincidence().matrix() == {"x": {"x": 2.0}}


def test_eviction_keeps_at_most_max_items_and_their_contribution() -> None:
    # Items labeled one after the other: closing them never splits a unit.
    stream = sorted(random_stream(9, relabels=False), key=lambda x: x["item"])
    model = StreamingAlpha(max_items=5)
    for x in stream:
        model.update(x)
        assert len(model) <= 5
    assert model.n_closed_ > 0
    assert model.get() == pytest.approx(batch_alpha(final_units(stream)), abs=1e-9)


def test_a_closed_item_labeled_again_starts_a_new_unit() -> None:
    model = StreamingAlpha(max_items=1)
    model.update({"item": "A", "annotator": "a", "label": "x"})
    model.update({"item": "A", "annotator": "b", "label": "x"})
    model.update({"item": "B", "annotator": "a", "label": "y"})  # closes A
    assert "A" not in model and model.n_closed_ == 1
    model.update({"item": "A", "annotator": "c", "label": "y"})  # a new unit of one value
    assert model.coincidence().counts == {("x", "x"): 2.0}
    assert model.close("A") and not model.close("A")
    assert model.coincidence().n_units == 1


def test_forget_removes_the_item_as_if_never_labeled() -> None:
    stream = random_stream(10, relabels=False)
    model = StreamingAlpha()
    model.update_many(stream)
    assert model.forget("i3")
    assert not model.forget("i3")
    without = [x for x in stream if x["item"] != "i3"]
    assert model.get() == pytest.approx(batch_alpha(final_units(without)), abs=1e-9)


def test_trend_windows_hold_the_units_whose_latest_label_fell_in_them() -> None:
    stream = random_stream(11, n=2000)
    model = StreamingAlpha(window_seconds=500.0, n_windows=10)
    model.update_many(stream)
    latest_window: dict[str, int] = {}
    current: dict[tuple[str, str], str] = {}
    for x in stream:
        if current.get((x["item"], x["annotator"])) != x["label"]:  # a repeat changes nothing
            current[(x["item"], x["annotator"])] = x["label"]
            latest_window[x["item"]] = int(x["ts"] // 500)
    trend = model.trend()
    assert [start for start, _ in trend] == [0.0, 500.0, 1000.0, 1500.0]
    total = Coincidence()
    for start, coincidence in trend:
        in_window = [x for x in stream if latest_window[x["item"]] == start // 500]
        expected = batch_alpha(final_units(in_window))
        assert coincidence.alpha() == pytest.approx(expected, abs=1e-9)
        total = total + coincidence
    assert total.alpha() == pytest.approx(model.get(), abs=1e-9)
    assert total.n_units == model.coincidence().n_units


def test_only_the_newest_windows_are_kept() -> None:
    model = StreamingAlpha(window_seconds=10.0, n_windows=3)
    for t in range(100):
        model.update({"item": f"i{t // 2}", "annotator": f"a{t % 2}", "label": "x", "ts": t})
        assert len(model.trend()) <= 3
    assert [start for start, _ in model.trend()] == [70.0, 80.0, 90.0]
    model.update({"item": "late", "annotator": "a", "label": "x", "ts": 5.0})  # too old
    model.update({"item": "late", "annotator": "b", "label": "x", "ts": 5.0})
    assert [start for start, _ in model.trend()] == [70.0, 80.0, 90.0]
    assert model.coincidence().n_units == 51


def test_coincidences_of_disjoint_parts_add_up_to_the_whole() -> None:
    stream = random_stream(12)
    whole, even, odd = StreamingAlpha(), StreamingAlpha(), StreamingAlpha()
    whole.update_many(stream)
    for x in stream:
        (even if int(x["item"][1:]) % 2 == 0 else odd).update(x)
    pooled = even.coincidence() + odd.coincidence()
    assert pooled.alpha() == pytest.approx(whole.get(), abs=1e-9)
    assert pooled.n_units == whole.coincidence().n_units


def test_state_round_trips_through_json_and_learning_continues() -> None:
    stream = random_stream(13)
    model = StreamingAlpha(max_items=200, window_seconds=300.0)
    model.update_many(stream[:2000])
    state = json.loads(json.dumps(model.to_state()))
    restored = StreamingAlpha.from_state(state)
    assert restored._get_params() == model._get_params()
    assert restored.to_state() == model.to_state()
    model.update_many(stream[2000:])
    restored.update_many(stream[2000:])
    assert restored.to_state() == model.to_state()
    assert restored.get() == model.get()
    assert restored.items == model.items


def test_clone_has_the_parameters_and_no_state() -> None:
    model = StreamingAlpha(max_items=7, window_seconds=60.0, n_windows=24)
    model.update_many(random_stream(14, n=200))
    twin = model.clone()
    assert twin._get_params() == model._get_params()
    assert twin.get() is None and len(twin) == 0 and twin.trend() == []
