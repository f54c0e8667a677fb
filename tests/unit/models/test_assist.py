"""ML-assisted labeling: automation bias and model drift, alone and inside the tracker."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import islice

import pytest

from labelwatch.models.assist import AssistConfig, AssistMonitor, wilson_low
from labelwatch.models.tracker import QualityTracker
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.simulator import LabelingSimulator, SimulationConfig

START = datetime(2026, 4, 1, tzinfo=UTC)


def stream(n: int, **config: object) -> tuple[LabelingSimulator, list]:
    sim = LabelingSimulator(SimulationConfig(**config))  # type: ignore[arg-type]
    data = [
        (LabelEvent.model_validate(s.event, strict=False), SourcePosition("labels", 0, offset))
        for offset, s in enumerate(islice(sim.labels(START), n))
    ]
    return sim, data


def opened(data: list, batch: int = 500, tracker: QualityTracker | None = None) -> list[tuple]:
    tracker = tracker or QualityTracker()
    if not tracker.has_shard("labels", 0):
        tracker.restore("labels", 0, None)
    out = []
    for start in range(0, len(data), batch):
        for a in tracker.apply(data[start : start + batch]).alerts:
            if a.kind in ("automation_bias", "model_drift"):
                out.append((a.offset, a.kind, a.state, a.project, a.subject, a.alert_id))
    return out


def test_wilson_lower_bound() -> None:
    assert wilson_low(0, 0, 1.96) == 0.0
    assert wilson_low(19, 20, 1.96) == pytest.approx(0.7639, abs=1e-4)
    assert wilson_low(2, 20, 1.96) == pytest.approx(0.0279, abs=1e-4)


def test_rubber_stampers_are_flagged_and_honest_annotators_are_not() -> None:
    sim, data = stream(
        12_000,
        seed=21,
        annotators=30,
        behaviours={"automation_biased": 3},
        prelabel_share=0.6,
        model_accuracy=0.75,
        projects={"animals": ("cat", "dog", "bird", "other")},
    )
    alerts = opened(data)
    biased = {a.annotator_id for a in sim.annotators if a.kind == "automation_biased"}
    flagged = {subject for _, kind, state, _, subject, _ in alerts if kind == "automation_bias"}
    assert flagged == biased
    assert not [a for a in alerts if a[1] == "model_drift"]


def test_a_worse_model_opens_model_drift_after_the_drop_only() -> None:
    _, data = stream(
        30_000,
        seed=22,
        annotators=30,
        prelabel_share=0.7,
        model_accuracy=0.85,
        model_accuracy_after=(5_000, 0.45),  # item 5,000 opens about label 15,000
        projects={"animals": ("cat", "dog", "bird", "other")},
    )
    drift = [a for a in opened(data) if a[1] == "model_drift"]
    assert [(kind, state, subject) for _, kind, state, _, subject, _ in drift] == [
        ("model_drift", "opened", "model")
    ]
    first_after = next(
        o for o, (e, _) in enumerate(data) if int(e.item_id.rsplit("-", 1)[1]) >= 5_000
    )
    assert first_after < drift[0][0] < first_after + 2_000


def test_alerts_survive_a_restart_from_a_checkpoint_and_do_not_depend_on_batches() -> None:
    _, data = stream(
        9_000,
        seed=23,
        annotators=20,
        behaviours={"automation_biased": 2},
        prelabel_share=0.6,
        model_accuracy=0.75,
        projects={"animals": ("cat", "dog", "bird", "other")},
    )
    expected = opened(data)
    assert expected
    assert opened(data, batch=37) == expected

    # Crash after 5,000 labels: restore from the newest checkpoint plus the labels after it.
    first = QualityTracker(checkpoint_every_labels=1_000)
    first.restore("labels", 0, None)
    checkpoint = None
    for start in range(0, 5_000, 500):
        out = first.apply(data[start : start + 500])
        checkpoint = out.checkpoints[-1] if out.checkpoints else checkpoint
    assert checkpoint is not None and "assist" in json.loads(checkpoint.state)
    second = QualityTracker(checkpoint_every_labels=1_000)
    later = [(e, s) for e, s in data[:5_000] if s.offset > checkpoint.last_offset]
    second.restore("labels", 0, checkpoint, later)
    after = opened(data[5_000:], tracker=second)
    assert after == [a for a in expected if a[0] >= 5_000]


def test_state_round_trip_keeps_judging_the_same() -> None:
    config = AssistConfig(min_wrong=3, warmup=5)
    a, b = AssistMonitor(config), AssistMonitor(config)
    for i in range(40):
        a.observe(f"ann-{i % 3}", "x", "x" if i % 3 else "y", 0.2 if i % 5 == 0 else 0.9, i)
    b.load_state(json.loads(json.dumps(a.to_state())))
    for i in range(40, 120):
        args = ("ann-2", "y", "y", 0.1, i)
        assert a.observe(*args) == b.observe(*args)
    assert a.to_state() == b.to_state()
    assert a.wrong_acceptance("ann-2") == b.wrong_acceptance("ann-2")


def test_a_label_with_nothing_to_judge_by_counts_only_as_shown() -> None:
    m = AssistMonitor()
    assert m.observe("a", "x", "x", None, 0) == []
    assert m.acceptance("a") == 1.0
    assert m.wrong_acceptance("a") is None
    assert m.model_agreement == (0, 0.0)
