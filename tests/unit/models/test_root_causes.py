"""The tracker's agreement counts and confusion findings: a guideline change found with the
right class pair, shards' counts that add up to the whole stream's, and the same output
however the stream is cut or restarted."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

from labelwatch.models.agreement import Coincidence, StreamingAlpha
from labelwatch.models.tracker import QualityOutput, QualityTracker
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.simulator import LabelingSimulator, SimulationConfig

START = datetime(2026, 7, 1, tzinfo=UTC)
CHANGE = 4_000


def stream(
    n: int, partitions: int = 1, seed: int = 51, **config: object
) -> list[tuple[LabelEvent, SourcePosition]]:
    sim = LabelingSimulator(SimulationConfig(seed=seed, **config))  # type: ignore[arg-type]
    offsets = [0] * partitions
    out = []
    for label in islice(sim.labels(START), n):
        event = LabelEvent.model_validate(label.event, strict=False)
        p = sum(event.item_id.encode()) % partitions
        out.append((event, SourcePosition("labels", p, offsets[p])))
        offsets[p] += 1
    return out


def run(data: list, batch: int, tracker: QualityTracker | None = None) -> QualityOutput:
    tracker = tracker or QualityTracker(snapshot_seconds=10.0)
    total = QualityOutput()
    for start in range(0, len(data), batch):
        chunk = data[start : start + batch]
        for _, s in chunk:
            if not tracker.has_shard(s.topic, s.partition):
                tracker.restore(s.topic, s.partition, None)
        total.extend(tracker.apply(chunk))
    return total


def test_a_guideline_change_that_swaps_two_classes_is_found_with_that_pair() -> None:
    data = stream(9_000, guideline_change=(CHANGE, "sentiment", "neutral", "negative"))
    findings = run(data, 500).findings
    assert findings
    first = findings[0]
    assert first.finding.pair in {("neutral", "negative"), ("negative", "neutral")}
    assert first.finding.kind == "guideline"
    assert (first.finding.project, first.finding.guideline, first.finding.baseline) == (
        "sentiment",
        "v2",
        "v1",
    )
    # One partition: offset = label number. Within 500 of the project's labels.
    assert first.offset >= CHANGE
    in_project = [e for e, s in data[CHANGE : first.offset + 1] if e.project == "sentiment"]
    assert len(in_project) <= 500
    assert all({f.finding.reference, f.finding.given} == {"neutral", "negative"} for f in findings)


def test_no_finding_without_a_change() -> None:
    assert run(stream(9_000, seed=52), 500).findings == []


def test_the_shards_newest_totals_add_up_to_the_whole_streams_alpha() -> None:
    # 5 labels a second: a snapshot every 10 s of event time is every 50 labels.
    data = stream(3_000, partitions=3, events_per_second=5.0)
    out = run(data, 250)
    latest: dict[tuple[str, str], Coincidence] = {}
    for a in out.agreement:  # in order: the newest row of each (project, shard) wins
        if a.window_start.timestamp() == 0:
            latest[(a.project, a.shard)] = a.coincidence
    assert {shard for _, shard in latest} == {"labels:0", "labels:1", "labels:2"}
    whole = StreamingAlpha()
    for event, _ in data:
        if event.project == "animals" and event.ts.timestamp() < max(
            a.ts.timestamp() for a in out.agreement
        ):
            whole.update(
                {"item": event.item_id, "annotator": event.annotator_id, "label": event.label}
            )
    pooled = sum((c for (p, _), c in latest.items() if p == "animals"), Coincidence())
    assert pooled.alpha() is not None
    assert abs(pooled.alpha() - whole.get()) < 1e-9  # type: ignore[operator]


def test_findings_and_agreement_do_not_depend_on_batches_or_a_restart() -> None:
    data = stream(
        6_000,
        events_per_second=20.0,
        guideline_change=(CHANGE, "sentiment", "neutral", "negative"),
    )

    def view(out: QualityOutput) -> tuple[list, list]:
        return (
            [(f.finding_id, f.offset, f.finding.sentence) for f in out.findings],
            [(a.ts, a.project, a.window_start, a.coincidence) for a in out.agreement],
        )

    expected = view(run(data, 1))
    assert expected[0] and expected[1]
    for batch in (13, 400):
        assert view(run(data, batch)) == expected, batch

    first = QualityTracker(snapshot_seconds=10.0, checkpoint_every_labels=700)
    out = run(data[:3_500], 500, first)
    checkpoint = out.checkpoints[-1]
    second = QualityTracker(snapshot_seconds=10.0, checkpoint_every_labels=700)
    later = [(e, s) for e, s in data[:3_500] if s.offset > checkpoint.last_offset]
    second.restore("labels", 0, checkpoint, later)
    after = view(run(data[3_500:], 500, second))
    # Findings after the restart are the uninterrupted run's.
    assert after[0] == [f for f in expected[0] if f[1] >= 3_500]
