"""Live consensus and reliability: the online models applied to the label stream, per shard.

Pure (no I/O): the worker's pipeline feeds it validated events with their Kafka positions and
writes what it returns.

Sharding. Producers key labels by ``item_id``, so every label of an item lands in one
partition of the labels topic. Each input partition is a *shard* with models of its own (one
:class:`~labelwatch.models.consensus.StreamingConsensus` per project): an item's consensus
is exact, because all its votes are in its shard; an annotator's confusion matrix in a shard
is learned from that shard's share of the annotator's labels (about 1/P of them with P
partitions). The shards do not exchange annotator counts: consensus in one shard never waits
for, nor sees, another shard's view of an annotator, so there is no cross-shard lag; the
price is that with many partitions each shard learns each annotator from fewer labels. The
global view of an annotator is the sum of the shards' soft counts, which the
``annotator_reliability`` table keeps per shard (``correct``/``total``), refreshed every
``reliability_snapshot_seconds`` of event time. Use as few partitions as the load allows.

Recovery. A shard's state survives restarts and moves between workers as a checkpoint in
ClickHouse (``model_checkpoints``: JSON state plus the last offset it includes) written
every ``checkpoint_every_labels`` labels. A worker that gets a partition loads the newest
checkpoint, replays the shard's later labels from ``label_events`` (they are stored there
before their offsets are committed), and then skips redelivered offsets it already applied,
so no label trains a model twice and none is missed. An event sent twice (same ``event_id``,
new offset) is recognised within the shard's last ``dedup_window`` labels
(:mod:`labelwatch.models.dedup`) and learned and stored once.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from labelwatch.models.agreement import Coincidence, StreamingAlpha
from labelwatch.models.assist import AssistConfig, AssistMonitor
from labelwatch.models.confusion import ConfusionFinding, ConfusionStructure
from labelwatch.models.consensus import ItemConsensus, StreamingConsensus
from labelwatch.models.dedup import RecentIds
from labelwatch.models.drift import AnswerContext
from labelwatch.models.monitor import AnnotatorMonitor, Finding, MonitorConfig
from labelwatch.models.review import ReviewPick, ReviewPriority, ReviewSampler, confidence_band
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.schemas.alerts import Alert, alert_id

__all__ = [
    "AnnotatorSnapshot",
    "Checkpoint",
    "ItemSnapshot",
    "LabelOutcome",
    "QualityOutput",
    "QualityTracker",
]

ShardKey = tuple[str, int]


def shard_name(key: ShardKey) -> str:
    return f"{key[0]}:{key[1]}"


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    """What the monitor concluded about one label once its batch was learned."""

    consensus_label: str | None
    consensus_confidence: float | None
    agrees: bool | None
    gold_correct: bool | None


@dataclass(frozen=True, slots=True)
class ItemSnapshot:
    """An item's consensus, for ``item_consensus``."""

    project: str
    consensus: ItemConsensus
    closed: bool
    updated_at: datetime
    shard: str
    version: int


@dataclass(frozen=True, slots=True)
class AnnotatorSnapshot:
    """An annotator's reliability in one shard at an event-time tick, for
    ``annotator_reliability``."""

    ts: datetime
    project: str
    annotator_id: str
    shard: str
    n_labels: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    gold_seen: int
    gold_accuracy: float | None
    correct: float
    total: float
    per_class_accuracy: dict[str, float]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A shard's model state including every label up to ``last_offset``."""

    topic: str
    partition: int
    last_offset: int
    n_labels: int
    state: str


@dataclass(frozen=True)
class ReviewConfig:
    """The review queue of one shard (see :class:`~labelwatch.models.review.ReviewSampler`).

    An item is offered for review once, at the label that gives it ``after_votes`` votes,
    with what the models knew right after that label; gold items are not offered."""

    budget_per_hour: int = 25
    random_share: float = 0.2
    window_seconds: int = 3600
    after_votes: int = 3
    seed: int = 0


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """An item picked for expert review, for ``review_queue`` and the review topic."""

    review_id: str
    project: str
    item_id: str
    kind: str  # "priority" or "random"
    priority: float
    rank: int
    stratum: str
    inclusion_probability: float | None
    reason: str
    offered_at: datetime
    window_start: datetime
    shard: str


@dataclass(frozen=True, slots=True)
class AgreementSnapshot:
    """A shard's agreement counts of one project at a reliability tick, for ``agreement``:
    the totals (``window_start`` at the epoch) or one event-time window's units."""

    ts: datetime
    project: str
    shard: str
    window_start: datetime
    coincidence: Coincidence


@dataclass(frozen=True, slots=True)
class FindingSnapshot:
    """A change in the confusion structure, where it was found, for ``confusion_findings``."""

    finding_id: str
    ts: datetime
    finding: ConfusionFinding
    shard: str
    offset: int


@dataclass
class QualityOutput:
    """Everything one batch produced, for the sinks."""

    outcomes: list[LabelOutcome] = field(default_factory=list)
    items: list[ItemSnapshot] = field(default_factory=list)
    annotators: list[AnnotatorSnapshot] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    reviews: list[ReviewItem] = field(default_factory=list)
    agreement: list[AgreementSnapshot] = field(default_factory=list)
    findings: list[FindingSnapshot] = field(default_factory=list)
    # Aligned with the batch's events: sent before under the same event_id (not learned).
    duplicates: list[bool] = field(default_factory=list)

    def extend(self, other: QualityOutput) -> None:
        """Append ``other``'s snapshots and checkpoints (outcomes belong to one batch only)."""
        self.items += other.items
        self.annotators += other.annotators
        self.checkpoints += other.checkpoints
        self.alerts += other.alerts
        self.reviews += other.reviews
        self.agreement += other.agreement
        self.findings += other.findings


Reliability = tuple[int, float, float, float]


@dataclass
class _Shard:
    key: ShardKey
    recent: RecentIds
    models: dict[str, StreamingConsensus] = field(default_factory=dict)
    monitors: dict[str, AnnotatorMonitor] = field(default_factory=dict)
    assist: dict[str, AssistMonitor] = field(default_factory=dict)
    review: ReviewSampler | None = None
    agreement: dict[str, StreamingAlpha] = field(default_factory=dict)
    confusion: ConfusionStructure = field(default_factory=ConfusionStructure)
    # project -> window start (0: totals) -> counts last written to ``agreement``
    agreement_written: dict[str, dict[float, Coincidence]] = field(default_factory=dict)
    last_offset: int = -1
    stored_offset: int = -1  # every label up to here is in label_events
    n_labels: int = 0
    since_checkpoint: int = 0
    touched: dict[str, set[str]] = field(default_factory=dict)  # project -> annotators
    next_snapshot: float | None = None  # event time (s) of the next reliability snapshot
    # project -> annotator -> (labels, accuracy, low, high) at its latest snapshot: what the
    # annotator monitor judges by (see _watch).
    published: dict[str, dict[str, Reliability]] = field(default_factory=dict)


class QualityTracker:
    """Applies valid label events to the per-shard models and says what changed."""

    def __init__(
        self,
        *,
        model_factory: Callable[[], StreamingConsensus] = StreamingConsensus,
        snapshot_seconds: float = 60.0,
        checkpoint_every_labels: int = 50_000,
        monitor_config: MonitorConfig | None = None,
        assist_config: AssistConfig | None = None,
        review_config: ReviewConfig | None = None,
        agreement_max_items: int = 1_000_000,
        dedup_window: int = 100_000,
    ) -> None:
        self.model_factory = model_factory
        self.dedup_window = dedup_window
        self.monitor_config = monitor_config
        self.assist_config = assist_config
        self.review_config = review_config or ReviewConfig()
        self.agreement_max_items = agreement_max_items
        self._review_priority = ReviewPriority()
        self.snapshot_seconds = snapshot_seconds
        self.checkpoint_every_labels = checkpoint_every_labels
        self._shards: dict[ShardKey, _Shard] = {}

    # --- shards --------------------------------------------------------------------------
    def has_shard(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._shards

    def restore(
        self,
        topic: str,
        partition: int,
        checkpoint: Checkpoint | None,
        later: Sequence[tuple[LabelEvent, SourcePosition]] = (),
        recent_ids: Sequence[str] = (),
    ) -> QualityOutput:
        """Rebuild a shard from its checkpoint and the stored labels after it (in offset order).

        ``recent_ids`` are the event ids of the shard's last ``dedup_window`` stored labels at
        or before the checkpoint's offset, oldest first (see :mod:`labelwatch.models.dedup`).

        Returns what re-learning those labels emits (item and reliability snapshots, maybe a
        checkpoint): writing it again is harmless, the tables collapse duplicates, and it
        fills in whatever a crash kept from being written the first time."""
        shard = _Shard((topic, partition), RecentIds(self.dedup_window, recent_ids))
        shard.review = self._new_sampler(shard.key)
        if checkpoint is not None:
            data = json.loads(checkpoint.state)
            for project, state in data["models"].items():
                model = self.model_factory()
                model.load_state(state)
                shard.models[project] = model
            for project, state in data.get("monitors", {}).items():
                monitor = AnnotatorMonitor(self.monitor_config)
                monitor.load_state(state)
                shard.monitors[project] = monitor
            for project, state in data.get("assist", {}).items():
                assist = AssistMonitor(self.assist_config)
                assist.load_state(state)
                shard.assist[project] = assist
            if data.get("review") is not None:
                shard.review = ReviewSampler.from_state(data["review"])
            for project, state in data.get("agreement", {}).items():
                shard.agreement[project] = StreamingAlpha.from_state(state)
            if "confusion" in data:
                shard.confusion = ConfusionStructure.from_state(data["confusion"])
            shard.last_offset = checkpoint.last_offset
            shard.n_labels = checkpoint.n_labels
            shard.next_snapshot = data["next_snapshot"]
            shard.touched = {p: set(a) for p, a in data["touched"].items()}
            shard.published = {
                p: {a: (int(v[0]), v[1], v[2], v[3]) for a, v in published.items()}
                for p, published in data.get("published", {}).items()
            }
        self._shards[shard.key] = shard
        out = QualityOutput()
        replay = [(e, p) for e, p in later if p.offset > shard.last_offset]
        for event, _ in replay:
            shard.recent.add(event.event_id)
        self._learn(shard, replay, out)
        # The checkpoint's labels and ``later`` are all stored.
        shard.stored_offset = shard.last_offset
        return out

    def _new_sampler(self, key: ShardKey) -> ReviewSampler:
        config = self.review_config
        return ReviewSampler(
            budget_per_hour=config.budget_per_hour,
            random_share=config.random_share,
            window_seconds=config.window_seconds,
            # Each shard draws its own random sample, the same one on every run.
            seed=config.seed + zlib.crc32(shard_name(key).encode()),
        )

    def already_stored(self, source: SourcePosition) -> bool:
        """True for a redelivered label whose row is already in ``label_events``.

        Writing it again would replace the row's consensus columns with today's consensus
        (and push the row through the dependent views a second time)."""
        shard = self._shards.get((source.topic, source.partition))
        return shard is not None and source.offset <= shard.stored_offset

    def mark_stored(self, events: Sequence[tuple[LabelEvent, SourcePosition]]) -> None:
        """Record that ``events`` are durably in ``label_events`` (or, for a duplicate, the
        event it repeats)."""
        for _, source in events:
            shard = self._shards.get((source.topic, source.partition))
            if shard is not None and source.offset > shard.stored_offset:
                shard.stored_offset = min(source.offset, shard.last_offset)

    def drop(self, topic: str, partition: int) -> None:
        """Forget a shard (its partition went to another worker)."""
        self._shards.pop((topic, partition), None)

    @property
    def shards(self) -> list[ShardKey]:
        return list(self._shards)

    def tracked(self) -> tuple[int, int]:
        """(open items, distinct annotators) over all shards of this worker."""
        items = sum(len(m) for s in self._shards.values() for m in s.models.values())
        annotators = {
            a
            for s in self._shards.values()
            for m in s.models.values()
            for a in m.reliability.annotators
        }
        return items, len(annotators)

    def model(self, topic: str, partition: int, project: str) -> StreamingConsensus:
        return self._shards[(topic, partition)].models[project]

    # --- learning ------------------------------------------------------------------------
    def apply(self, events: Sequence[tuple[LabelEvent, SourcePosition]]) -> QualityOutput:
        """Learn a batch (shards must exist: see :meth:`restore`); outcomes and
        ``duplicates`` align with events.

        Events at or below a shard's last applied offset were learned before (a redelivery
        after a restart) and are not learned again, nor are events whose id the shard learned
        recently (``duplicates``); their outcome is the item's consensus now.
        """
        out = QualityOutput()
        outcomes: list[LabelOutcome | None] = [None] * len(events)
        out.duplicates = [False] * len(events)
        by_shard: dict[ShardKey, list[int]] = {}
        for index, (_, source) in enumerate(events):
            by_shard.setdefault((source.topic, source.partition), []).append(index)
        for key, indices in by_shard.items():
            shard = self._shards[key]
            fresh = []
            last = shard.last_offset
            for i in indices:
                event, source = events[i]
                if source.offset <= shard.last_offset:
                    continue
                last = max(last, source.offset)
                if event.event_id in shard.recent:
                    out.duplicates[i] = True
                    continue
                shard.recent.add(event.event_id)
                fresh.append(i)
            learned = self._learn(shard, [events[i] for i in fresh], out)
            for i, outcome in zip(fresh, learned, strict=True):
                outcomes[i] = outcome
            shard.last_offset = last
        for i, (event, source) in enumerate(events):
            if outcomes[i] is None:
                model = self._shards[(source.topic, source.partition)].models.get(event.project)
                consensus = None
                if model is not None and event.item_id in model:
                    c = model.consensus(event.item_id)
                    consensus = (c.label, c.confidence)
                outcomes[i] = _outcome(event, consensus)
        out.outcomes = [o for o in outcomes if o is not None]
        return out

    def _learn(
        self,
        shard: _Shard,
        events: list[tuple[LabelEvent, SourcePosition]],
        out: QualityOutput,
    ) -> list[LabelOutcome]:
        """Learn ``events`` (one shard, offset order); returns their outcomes in order.

        A reliability snapshot is taken just before the first label whose event time reaches
        the next tick, so snapshots do not depend on how the stream was cut into batches."""
        outcomes: list[LabelOutcome] = []
        start = 0
        for index, (event, _) in enumerate(events):
            ts = event.ts.timestamp()
            if shard.next_snapshot is None:
                shard.next_snapshot = _next_tick(ts, self.snapshot_seconds)
            elif ts >= shard.next_snapshot:
                outcomes += self._learn_segment(shard, events[start:index], out)
                self._snapshot(shard, out)
                shard.next_snapshot = _next_tick(ts, self.snapshot_seconds)
                start = index
        outcomes += self._learn_segment(shard, events[start:], out)
        if events:
            shard.last_offset = events[-1][1].offset
            shard.n_labels += len(events)
            shard.since_checkpoint += len(events)
        if shard.since_checkpoint >= self.checkpoint_every_labels:
            out.checkpoints.append(self.checkpoint(shard.key))
        return outcomes

    def _learn_segment(
        self,
        shard: _Shard,
        events: list[tuple[LabelEvent, SourcePosition]],
        out: QualityOutput,
    ) -> list[LabelOutcome]:
        if not events:
            return []
        by_project: dict[str, list[int]] = {}
        for index, (event, _) in enumerate(events):
            by_project.setdefault(event.project, []).append(index)
            shard.touched.setdefault(event.project, set()).add(event.annotator_id)
        outcomes: list[LabelOutcome] = [_NO_OUTCOME] * len(events)
        name = shard_name(shard.key)
        # Review offers by event index: the sampler sees them in stream order after the
        # projects' loops, so its windows close at the same labels however batches are cut.
        offers: dict[int, tuple[str, float, str, str]] = {}
        for project, indices in by_project.items():
            model = shard.models.get(project)
            if model is None:
                model = shard.models[project] = self.model_factory()
            reads = model.learn_and_read(
                {
                    "item": events[i][0].item_id,
                    "annotator": events[i][0].annotator_id,
                    "label": events[i][0].label,
                    "gold": events[i][0].gold_label,
                    "ts": events[i][0].ts.timestamp(),
                }
                for i in indices
            )
            # The newest consensus of every item touched: labeled, or re-scored by the sweep.
            last_read: dict[str, tuple[int, tuple[str | None, float]]] = {}
            touched = [
                (t, events[i][0].item_id, read)
                for t, (i, read) in enumerate(zip(indices, reads.labels, strict=True))
            ]
            touched += [(t, item, (label, conf)) for t, item, label, conf in reads.refreshed]
            for t, item_id, read in sorted(touched, key=lambda r: r[0]):
                last_read[item_id] = (indices[t], read)
            for i, read in zip(indices, reads.labels, strict=True):
                outcomes[i] = _outcome(events[i][0], read)
            monitor = shard.monitors.get(project)
            if monitor is None:
                monitor = shard.monitors[project] = AnnotatorMonitor(self.monitor_config)
            published = shard.published.setdefault(project, {})
            out.alerts += _watch(
                monitor, model, published, project, name, events, indices, reads.contexts
            )
            assist = shard.assist.get(project)
            if assist is None:
                assist = shard.assist[project] = AssistMonitor(self.assist_config)
            out.alerts += _watch_assist(
                assist, model, project, name, events, indices, reads.contexts, reads.evidence
            )
            offers.update(
                self._review_offers(model, published, project, events, indices, reads.contexts)
            )
            alpha = shard.agreement.get(project)
            if alpha is None:
                alpha = shard.agreement[project] = StreamingAlpha(
                    max_items=self.agreement_max_items
                )
            out.findings += _watch_agreement(
                alpha,
                shard.confusion,
                model,
                name,
                events,
                indices,
                reads.contexts,
                reads.evidence,
            )
            for item_id, (i, (label, confidence)) in last_read.items():
                if item_id in model:
                    n_votes, gold = model.votes_and_gold(item_id)
                    event, source = events[i]
                    consensus = ItemConsensus(item_id, label, confidence, n_votes, gold)
                    out.items.append(
                        ItemSnapshot(project, consensus, False, event.ts, name, source.sequence)
                    )
            last_event, last_source = events[indices[-1]]
            for closed in model.pop_closed():
                alpha.close(closed.item)  # its contribution stays in the totals
                out.items.append(
                    ItemSnapshot(project, closed, True, last_event.ts, name, last_source.sequence)
                )
        assert shard.review is not None
        picks: list[ReviewPick] = []
        for index, (event, _) in enumerate(events):
            ts = event.ts.timestamp()
            offer = offers.get(index)
            if offer is None:
                picks += shard.review.advance(ts)
            else:
                key, priority, stratum, reason = offer
                picks += shard.review.offer(key, priority, ts, stratum=stratum, reason=reason)
        out.reviews += [_review_item(p, name) for p in picks]
        return outcomes

    def _snapshot(self, shard: _Shard, out: QualityOutput) -> None:
        """Reliability snapshots of the annotators active since the previous tick, and the
        agreement counts that changed since then."""
        assert shard.next_snapshot is not None
        tick = datetime.fromtimestamp(shard.next_snapshot, UTC)
        name = shard_name(shard.key)
        for project, alpha in shard.agreement.items():
            written = shard.agreement_written.setdefault(project, {})
            for start, counts in [(0.0, alpha.coincidence()), *alpha.trend()]:
                if written.get(start) != counts:
                    written[start] = counts
                    when = datetime.fromtimestamp(start, UTC)
                    out.agreement.append(AgreementSnapshot(tick, project, name, when, counts))
            if len(written) > 2 * (alpha.n_windows + 1):  # forget windows the model dropped
                kept = {0.0, *(start for start, _ in alpha.trend())}
                shard.agreement_written[project] = {w: c for w, c in written.items() if w in kept}
        for project, annotators in shard.touched.items():
            reliability = shard.models[project].reliability
            published = shard.published.setdefault(project, {})
            for annotator in sorted(annotators):
                snapshot = _annotator_snapshot(tick, project, name, reliability, annotator)
                out.annotators.append(snapshot)
                published[annotator] = (
                    snapshot.n_labels,
                    snapshot.accuracy,
                    snapshot.accuracy_low,
                    snapshot.accuracy_high,
                )
        shard.touched = {}

    def _review_offers(
        self,
        model: StreamingConsensus,
        published: Mapping[str, Reliability],
        project: str,
        events: Sequence[tuple[LabelEvent, SourcePosition]],
        indices: Sequence[int],
        contexts: Sequence[AnswerContext | None],
    ) -> dict[int, tuple[str, float, str, str]]:
        """Review offers (sampler key, priority, stratum, reason) by event index: one per item
        whose label ``after_votes`` is among ``indices``.

        Everything is read as of that label (its context's posterior right after it, the
        item's votes until then, the voters' latest published reliability), so the offers do
        not depend on how the stream was cut into batches."""
        classes = model.reliability.classes_
        offers = {}
        for i, ctx in zip(indices, contexts, strict=True):
            event, _ = events[i]
            if (
                ctx is None
                or event.gold_label is not None
                or len(ctx.peers) + 1 != self.review_config.after_votes
            ):
                continue
            votes = [(classes[answer], who) for who, answer in ctx.peers]
            votes.append((event.label, event.annotator_id))
            score = self._review_priority.explain_one(
                {
                    "posterior": dict(zip(classes, ctx.after, strict=False)),
                    "votes": [
                        (label, published[who][1]) for label, who in votes if who in published
                    ],
                    "model_label": event.model_label,
                    "model_confidence": event.model_confidence,
                }
            )
            offers[i] = (
                f"{project}\x1f{event.item_id}",
                score.priority,
                f"{project}|{confidence_band(score.consensus_confidence)}",
                score.reason,
            )
        return offers

    def flush(self, topic: str, partition: int) -> QualityOutput:
        """The end of a finite stream (a replay): the snapshots the next tick would take
        (reliability, agreement) and the picks of the open review window. A live worker never
        calls it: its ticks and windows close as event time passes."""
        shard = self._shards[(topic, partition)]
        out = QualityOutput()
        if shard.next_snapshot is not None:
            self._snapshot(shard, out)
        if shard.review is not None:
            name = shard_name(shard.key)
            out.reviews += [_review_item(p, name) for p in shard.review.flush()]
        return out

    def checkpoint(self, key: ShardKey) -> Checkpoint:
        """The shard's state now, including every label up to its last applied offset."""
        shard = self._shards[key]
        shard.since_checkpoint = 0
        state = {
            "models": {p: m.to_state() for p, m in shard.models.items()},
            "monitors": {p: m.to_state() for p, m in shard.monitors.items()},
            "assist": {p: m.to_state() for p, m in shard.assist.items()},
            "review": None if shard.review is None else shard.review.to_state(),
            "agreement": {p: m.to_state() for p, m in shard.agreement.items()},
            "confusion": shard.confusion.to_state(),
            "next_snapshot": shard.next_snapshot,
            "touched": {p: sorted(a) for p, a in shard.touched.items()},
            "published": shard.published,
        }
        return Checkpoint(
            key[0],
            key[1],
            shard.last_offset,
            shard.n_labels,
            # pydantic-core writes the same JSON as json.dumps (NaN too), 5x faster.
            to_json(state).decode(),
        )


def _watch(
    monitor: AnnotatorMonitor,
    model: StreamingConsensus,
    published: Mapping[str, Reliability],
    project: str,
    shard: str,
    events: Sequence[tuple[LabelEvent, SourcePosition]],
    indices: Sequence[int],
    contexts: Sequence[AnswerContext | None],
) -> list[Alert]:
    """Run the annotator monitor over one project's labels of a segment; the alerts raised.

    The reliability the monitor judges by is each annotator's at its latest snapshot
    (``published``, what ``annotator_reliability`` shows), not the model's now: the monitor
    runs after the whole segment was learned, so "now" would depend on where the batch
    ended, and a restart, a rebalance or another worker, which cut the stream elsewhere,
    would raise different alerts. Snapshots are taken at event-time ticks (see ``_learn``),
    whatever the batches."""
    reliability = model.reliability
    lookup = published.get

    alerts: list[Alert] = []
    for i, ctx in zip(indices, contexts, strict=True):
        event, source = events[i]
        gold = None if event.gold_label is None else event.label == event.gold_label
        findings = monitor.observe(
            event.annotator_id,
            ctx,
            reliability.class_index(event.label),
            reliability.n_classes if ctx is None else ctx.n_classes,
            event.duration_ms,
            event.ts.timestamp(),
            gold,
            lookup,
            source.offset,
        )
        alerts += [_finding_alert(f, project, f.annotator, shard, event, source) for f in findings]
    return alerts


def _watch_agreement(
    alpha: StreamingAlpha,
    confusion: ConfusionStructure,
    model: StreamingConsensus,
    shard: str,
    events: Sequence[tuple[LabelEvent, SourcePosition]],
    indices: Sequence[int],
    contexts: Sequence[AnswerContext | None],
    evidence: Sequence[tuple[float, float] | None],
) -> list[FindingSnapshot]:
    """Feed one project's labels of a segment to the agreement and confusion models; the
    confusion findings.

    A label's reference class is its item's gold answer, else the consensus of the item's
    other votes just before it (the label itself plays no part); a first vote without gold
    has none and only counts for agreement."""
    classes = model.reliability.classes_
    found: list[FindingSnapshot] = []
    for i, ctx, judged in zip(indices, contexts, evidence, strict=True):
        event, source = events[i]
        ts = event.ts.timestamp()
        alpha.update(
            {"item": event.item_id, "annotator": event.annotator_id, "label": event.label, "ts": ts}
        )
        reference = event.gold_label
        if reference is None and ctx is not None and judged is not None:
            best = max(range(len(ctx.before)), key=ctx.before.__getitem__)
            reference = classes[best] if best < len(classes) else None
        for f in confusion.update(
            {
                "label": event.label,
                "reference": reference,
                "project": event.project,
                "guideline_version": event.guideline_version,
                "annotator": event.annotator_id,
            }
        ):
            key = f"{f.kind}:{f.guideline}:{f.reference}>{f.given}"
            found.append(
                FindingSnapshot(
                    finding_id=alert_id("confusion", event.project, key, shard, source.offset),
                    ts=event.ts,
                    finding=f,
                    shard=shard,
                    offset=source.offset,
                )
            )
    return found


def _review_item(pick: ReviewPick, shard: str) -> ReviewItem:
    project, item_id = pick.item.split("\x1f", 1)
    return ReviewItem(
        review_id=alert_id("review", project, item_id, shard, int(pick.window_start)),
        project=project,
        item_id=item_id,
        kind=pick.kind,
        priority=pick.priority,
        rank=pick.rank,
        stratum=pick.stratum,
        inclusion_probability=pick.inclusion_probability,
        reason=pick.reason,
        offered_at=datetime.fromtimestamp(pick.ts, UTC),
        window_start=datetime.fromtimestamp(pick.window_start, UTC),
        shard=shard,
    )


def _finding_alert(
    f: Finding,
    project: str,
    subject: str,
    shard: str,
    event: LabelEvent,
    source: SourcePosition,
) -> Alert:
    """The alert of a monitor's finding at ``event``."""
    return Alert(
        alert_id=alert_id(f.episode_key, project, subject, shard, f.opened_at),
        kind=f.kind,
        state=f.state,
        severity=f.severity,
        ts=event.ts,
        project=project,
        annotator_id=f.annotator,
        subject=subject,
        score=f.score,
        threshold=f.threshold,
        reason=f.reason,
        evidence=f.evidence,
        detector=f.detector,
        shard=shard,
        offset=source.offset,
        opened_offset=f.opened_at,
    )


def _watch_assist(
    assist: AssistMonitor,
    model: StreamingConsensus,
    project: str,
    shard: str,
    events: Sequence[tuple[LabelEvent, SourcePosition]],
    indices: Sequence[int],
    contexts: Sequence[AnswerContext | None],
    evidence: Sequence[tuple[float, float] | None],
) -> list[Alert]:
    """Run the pre-label monitor over one project's labels of a segment; the alerts raised.

    A pre-label is judged with the item's posterior from its gold or other votes just before
    the answer (``contexts[t].before``); with nothing to judge by (``evidence[t]`` None) the
    label only counts as shown. A pre-label no annotator ever gave is right with chance 0."""
    reliability = model.reliability
    alerts: list[Alert] = []
    for i, ctx, judged in zip(indices, contexts, evidence, strict=True):
        event, source = events[i]
        if event.model_label is None:
            continue
        p_right, sure = None, 0.0
        if ctx is not None and judged is not None:
            k = reliability.find_class(event.model_label)
            p_right = ctx.before[k] if k is not None and k < len(ctx.before) else 0.0
            sure = max(ctx.before)
        for f in assist.observe(
            event.annotator_id, event.label, event.model_label, p_right, source.offset, sure
        ):
            subject = f.annotator or "model"  # model_drift is about the project's model
            alerts.append(_finding_alert(f, project, subject, shard, event, source))
    return alerts


def _next_tick(now: float, every: float) -> float:
    return (now // every + 1) * every


def _outcome(event: LabelEvent, consensus: tuple[str | None, float] | None) -> LabelOutcome:
    if consensus is None or consensus[0] is None:
        return _NO_OUTCOME
    label, confidence = consensus
    gold = None if event.gold_label is None else event.label == event.gold_label
    return LabelOutcome(label, confidence, event.label == label, gold)


_NO_OUTCOME = LabelOutcome(None, None, None, None)


def _annotator_snapshot(
    tick: datetime, project: str, shard: str, reliability: Any, annotator: str
) -> AnnotatorSnapshot:
    report = reliability.report(annotator)
    correct, total = reliability.soft_counts(annotator)
    return AnnotatorSnapshot(
        ts=tick,
        project=project,
        annotator_id=annotator,
        shard=shard,
        n_labels=report.n_labels,
        accuracy=report.accuracy,
        accuracy_low=report.accuracy_low,
        accuracy_high=report.accuracy_high,
        gold_seen=report.gold_seen,
        gold_accuracy=report.gold_accuracy,
        correct=correct,
        total=total,
        per_class_accuracy=report.per_class_accuracy,
    )
