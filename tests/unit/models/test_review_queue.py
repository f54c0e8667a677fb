"""The tracker's review queue: items offered once at their k-th vote, budget per hour, same
picks however the stream is cut and across a checkpoint restart."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from itertools import islice

from labelwatch.models.tracker import QualityTracker, ReviewConfig
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.simulator import LabelingSimulator, SimulationConfig

START = datetime(2026, 5, 1, tzinfo=UTC)
CONFIG = ReviewConfig(budget_per_hour=12, random_share=0.25, window_seconds=600)


def stream(n: int) -> list[tuple[LabelEvent, SourcePosition]]:
    # 2 labels per second: 3 hours of event time in about 21,600 labels.
    sim = LabelingSimulator(
        SimulationConfig(seed=31, events_per_second=2.0, prelabel_share=0.5, model_accuracy=0.7)
    )
    return [
        (LabelEvent.model_validate(s.event, strict=False), SourcePosition("labels", 0, offset))
        for offset, s in enumerate(islice(sim.labels(START), n))
    ]


def picks(data: list, batch: int, tracker: QualityTracker | None = None) -> list[tuple]:
    tracker = tracker or QualityTracker(review_config=CONFIG)
    if not tracker.has_shard("labels", 0):
        tracker.restore("labels", 0, None)
    out = []
    for start in range(0, len(data), batch):
        out += tracker.apply(data[start : start + batch]).reviews
    return [
        (r.review_id, r.project, r.item_id, r.kind, round(r.priority, 12), r.rank, r.window_start)
        for r in out
    ]


def test_picks_respect_the_budget_and_come_from_items_with_enough_votes() -> None:
    data = stream(9_000)  # 75 minutes of event time: 7 closed windows of 10 minutes
    chosen = picks(data, 500)
    per_window = Counter(p[6] for p in chosen)
    assert len(per_window) == 7
    assert all(n <= 2 for n in per_window.values())  # 12 an hour over six windows
    kinds = Counter(p[3] for p in chosen)
    assert kinds["priority"] >= 7 and kinds["random"] >= 1
    assert len({(p[1], p[2]) for p in chosen}) == len(chosen)  # an item at most once
    votes = Counter((e.project, e.item_id) for e, _ in data)
    assert all(votes[(p[1], p[2])] >= CONFIG.after_votes for p in chosen)
    gold = {(e.project, e.item_id) for e, _ in data if e.gold_label is not None}
    assert not gold & {(p[1], p[2]) for p in chosen}
    # Priority picks are the window's most doubtful items: rank 1 first.
    first = [p for p in chosen if p[3] == "priority" and p[5] == 1]
    assert first and all(p[4] > 0 for p in first)


def test_picks_do_not_depend_on_batches_or_a_restart() -> None:
    data = stream(9_000)
    expected = picks(data, 1)
    assert expected
    for batch in (7, 100, 1000):
        assert picks(data, batch) == expected, batch

    first = QualityTracker(review_config=CONFIG, checkpoint_every_labels=1_000)
    first.restore("labels", 0, None)
    checkpoint = None
    for start in range(0, 5_000, 250):
        out = first.apply(data[start : start + 250])
        checkpoint = out.checkpoints[-1] if out.checkpoints else checkpoint
    assert checkpoint is not None
    second = QualityTracker(review_config=CONFIG, checkpoint_every_labels=1_000)
    later = [(e, s) for e, s in data[:5_000] if s.offset > checkpoint.last_offset]
    restored = second.restore("labels", 0, checkpoint, later).reviews
    after = picks(data[5_000:], 250, tracker=second)
    replayed = [
        (r.review_id, r.project, r.item_id, r.kind, round(r.priority, 12), r.rank, r.window_start)
        for r in restored
    ]
    # What the restore re-emits plus what follows = what an uninterrupted run emits after
    # the checkpoint.
    tail = [p for p in expected if p not in picks(data[: checkpoint.last_offset + 1], 1)]
    assert replayed + after == tail
