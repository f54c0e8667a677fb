"""QualityTracker: per-shard learning, outcomes, snapshots, and exact recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise

from labelwatch.models.tracker import QualityTracker
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.simulator import LabelingSimulator, SimulationConfig
from tests.resend import with_resends

START = datetime(2026, 3, 1, tzinfo=UTC)


def events(n: int, partitions: int = 2, seed: int = 5) -> list[tuple[LabelEvent, SourcePosition]]:
    sim = LabelingSimulator(SimulationConfig(seed=seed, events_per_second=5.0))
    offsets = [0] * partitions
    out = []
    for label in islice(sim.labels(START), n):
        event = LabelEvent.model_validate(label.event, strict=False)
        p = sum(event.item_id.encode()) % partitions  # all labels of an item in one partition
        out.append((event, SourcePosition("labels", p, offsets[p])))
        offsets[p] += 1
    return out


def fresh(**kw: object) -> QualityTracker:
    return QualityTracker(snapshot_seconds=30.0, checkpoint_every_labels=250, **kw)  # type: ignore[arg-type]


def run(tracker: QualityTracker, data: list[tuple[LabelEvent, SourcePosition]], batch: int = 100):
    outputs = []
    for start in range(0, len(data), batch):
        chunk = data[start : start + batch]
        for _, s in chunk:
            if not tracker.has_shard(s.topic, s.partition):
                tracker.restore(s.topic, s.partition, None)
        outputs.append(tracker.apply(chunk))
    return outputs


def consensus_view(tracker: QualityTracker) -> dict[tuple[int, str, str], tuple[str | None, float]]:
    view = {}
    for topic, partition in tracker.shards:
        for project in ("animals", "moderation", "sentiment"):
            model = tracker.model(topic, partition, project)
            for item in model.items:
                c = model.consensus(item)
                view[(partition, project, item)] = (c.label, round(c.confidence, 12))
    return view


def test_outcomes_align_with_events_and_flag_agreement_and_gold() -> None:
    data = events(400)
    tracker = fresh()
    outputs = run(tracker, data)
    outcomes = [o for out in outputs for o in out.outcomes]
    assert len(outcomes) == len(data)
    for (event, _), outcome in zip(data, outcomes, strict=True):
        assert outcome.consensus_label is not None
        assert outcome.agrees == (event.label == outcome.consensus_label)
        assert outcome.gold_correct == (
            None if event.gold_label is None else event.label == event.gold_label
        )
        if event.gold_label is not None:
            assert (
                outcome.consensus_label == event.gold_label and outcome.consensus_confidence == 1.0
            )


def test_items_are_sharded_by_partition() -> None:
    tracker = fresh()
    run(tracker, events(400))
    assert sorted(tracker.shards) == [("labels", 0), ("labels", 1)]
    items0 = set(tracker.model("labels", 0, "animals").items)
    items1 = set(tracker.model("labels", 1, "animals").items)
    assert items0 and items1 and not items0 & items1


def test_reliability_snapshots_follow_event_time_ticks() -> None:
    data = events(600)  # ~120 s of event time at 5 events/s
    outputs = run(fresh(), data)
    snapshots = [a for out in outputs for a in out.annotators]
    ticks = sorted({s.ts for s in snapshots})
    assert len(ticks) >= 3
    assert all(t.second % 30 == 0 and t.microsecond == 0 for t in ticks)
    assert all(b - a == timedelta(seconds=30) for a, b in pairwise(ticks))
    assert all(0.0 < s.accuracy_low <= s.accuracy <= s.accuracy_high < 1.0 for s in snapshots)
    assert all(s.total > 0 and 0 <= s.correct <= s.total + 1e-9 for s in snapshots)


def test_redelivered_offsets_do_not_train_twice() -> None:
    data = events(500)
    once, twice = fresh(), fresh()
    run(once, data)
    run(twice, data[:300])
    run(twice, data[200:])  # 100 labels redelivered after a "restart" without losing state
    assert consensus_view(twice) == consensus_view(once)


def test_checkpoint_plus_stored_labels_recovers_exactly() -> None:
    data = events(1000)
    control = fresh()
    run(control, data)

    crashed = fresh()
    outputs = run(crashed, data[:700])
    checkpoints = {(c.topic, c.partition): c for out in outputs for c in out.checkpoints}
    assert set(checkpoints) == {("labels", 0), ("labels", 1)}

    # A new worker: newest checkpoint per shard + labels stored after it, then the stream
    # resumes at some committed offset before the crash point (redelivery).
    recovered = fresh()
    for key, checkpoint in checkpoints.items():
        later = [
            (e, s)
            for e, s in data[:700]
            if (s.topic, s.partition) == key and s.offset > checkpoint.last_offset
        ]
        recovered.restore(key[0], key[1], checkpoint, later)
    run(recovered, data[650:])
    assert consensus_view(recovered) == consensus_view(control)


def with_duplicates(
    data: list[tuple[LabelEvent, SourcePosition]], every: int, lag: int
) -> list[tuple[LabelEvent, SourcePosition]]:
    """``data`` with every ``every``-th event sent again ``lag`` events later, at new offsets
    of its partition (offsets renumbered per partition)."""
    stream = with_resends([e for e, _ in data], every, lag)
    partitions = 1 + max(s.partition for _, s in data)
    offsets = [0] * partitions
    out = []
    for event in stream:
        p = sum(event.item_id.encode()) % partitions
        out.append((event, SourcePosition("labels", p, offsets[p])))
        offsets[p] += 1
    return out


def test_an_event_sent_again_at_a_new_offset_is_learned_once() -> None:
    data = events(800)
    noisy = with_duplicates(data, every=7, lag=40)
    assert len(noisy) > len(data) + 100
    control, tracker = fresh(), fresh()
    run(control, data)
    outputs = run(tracker, noisy)
    flags = [d for out in outputs for d in out.duplicates]
    assert len(flags) == len(noisy)
    assert sum(flags) == len(noisy) - len(data)
    # Only the second copy is flagged.
    seen: set[str] = set()
    for (event, _), duplicate in zip(noisy, flags, strict=True):
        assert duplicate == (event.event_id in seen)
        seen.add(event.event_id)
    assert consensus_view(tracker) == consensus_view(control)


def test_duplicates_beyond_the_window_are_learned_again() -> None:
    data = events(600)
    noisy = with_duplicates(data, every=10, lag=300)  # ~150 labels later in its partition
    outputs = run(fresh(dedup_window=50), noisy)
    assert not any(d for out in outputs for d in out.duplicates)
    outputs = run(fresh(dedup_window=1000), noisy)
    assert sum(d for out in outputs for d in out.duplicates) == len(noisy) - len(data)


def test_a_restored_shard_recognises_duplicates_of_labels_before_its_checkpoint() -> None:
    data = events(1000)
    noisy = with_duplicates(data, every=5, lag=60)
    control = fresh()
    control_out = run(control, noisy)
    control_flags = [d for out in control_out for d in out.duplicates]

    cut = 700
    crashed = fresh()
    outputs = run(crashed, noisy[:cut])
    checkpoints = {(c.topic, c.partition): c for out in outputs for c in out.checkpoints}
    flags = [d for out in outputs for d in out.duplicates]
    # What label_events holds: every learned (non-duplicate) label before the crash.
    stored = [v for v, d in zip(noisy[:cut], flags, strict=True) if not d]
    recovered = fresh()
    for key, checkpoint in checkpoints.items():
        shard = [(e, s) for e, s in stored if (s.topic, s.partition) == key]
        before = [e.event_id for e, s in shard if s.offset <= checkpoint.last_offset]
        later = [(e, s) for e, s in shard if s.offset > checkpoint.last_offset]
        recovered.restore(key[0], key[1], checkpoint, later, before[-recovered.dedup_window :])
    resumed = run(recovered, noisy[cut:])
    assert [d for out in resumed for d in out.duplicates] == control_flags[cut:]
    assert consensus_view(recovered) == consensus_view(control)


def alerts_with_batches(data: list[tuple[LabelEvent, SourcePosition]], batch: int) -> list[tuple]:
    outputs = run(fresh(), data, batch)
    # Sorted: within a batch, alerts come project by project.
    return sorted(
        (a.offset, a.kind, a.state, a.annotator_id, a.opened_offset, a.detector)
        for out in outputs
        for a in out.alerts
    )


def test_alerts_do_not_depend_on_how_the_stream_is_cut_into_batches() -> None:
    # Spammers and drifters, so that alerts open and resolve; a restart, a rebalance or a
    # second worker cuts the stream differently and must raise the same alerts.
    sim = LabelingSimulator(
        SimulationConfig(
            seed=8,
            events_per_second=5.0,
            behaviours={"spammer_random": 2, "spammer_constant": 1, "drifter": 2},
        )
    )
    data = []
    for offset, label in enumerate(islice(sim.labels(START), 6000)):
        event = LabelEvent.model_validate(label.event, strict=False)
        data.append((event, SourcePosition("labels", 0, offset)))
    expected = alerts_with_batches(data, 1)
    assert len({a[1] for a in expected}) >= 2
    for batch in (7, 100, 1000):
        assert alerts_with_batches(data, batch) == expected, batch
