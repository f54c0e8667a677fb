"""A seeded generator of realistic labeling traffic, and of malformed messages for testing.

Pure: no Kafka, no clock (the caller passes the start time). The same seed gives the same
stream. ``labelwatch simulate`` and ``labelwatch demo`` send what this module generates.

The population: several projects, each with its own label set and class prior; annotators
who are *reliable* (accuracy 0.85-0.97) or *noisy* (0.55-0.75: weak but informative; an
annotator at chance would be a spammer), with errors spread over the other
classes; each item is labeled by several distinct annotators, interleaved with other open
items the way a labeling queue hands them out; a share of items are gold (control) tasks that
carry their known answer; durations are log-normal around each annotator's own pace.

Injected behaviours, with ground truth on every generated label (:class:`SimulatedAnnotator`):

* ``drifter``: reliable, then from its ``drift_onset``-th own label (1-based) on answers
  uniformly at random over the project's classes;
* ``spammer_constant``: gives one fixed answer (its own choice of class) on everything;
* ``spammer_random``: answers uniformly at random;
* ``spammer_fast``: answers uniformly at random in about 300 ms (a script);
* ``colluder``: noisy annotators in pairs; the pair is handed the same items and the second
  to answer copies the first's answer;
* ``automation_biased``: reliable, but accepts the model's pre-label ``automation_bias`` of
  the time (95%) whatever it is, when the item has one.

ML-assisted labeling (schema version 2 fields, off unless configured): with
``prelabel_share`` > 0 that share of items carry a model pre-label (``model_label``, right with
probability ``model_accuracy``, which may drop to ``model_accuracy_after[1]`` from the
``model_accuracy_after[0]``-th item on) and its ``model_confidence``; other annotators answer on
their own. With ``guideline_change`` set, events carry ``guideline_version`` ("v1", then "v2"
from the change's label on), and from then on half the annotators (every other one, in id
order, among the stationary ones) read the new guideline with two classes swapped. These
draw from a random generator of their own, so a configuration without them generates exactly
the stream it generated before they existed.

Every other annotator is ``reliable`` or ``noisy`` and stays stationary.
"""

from __future__ import annotations

import csv
import json
import math
import random
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from labelwatch.progress import Stages, counted, no_progress

PROJECT_LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": ("positive", "neutral", "negative"),
    "animals": ("cat", "dog", "bird", "other"),
    "moderation": ("ok", "spam", "abuse"),
}


@dataclass(frozen=True)
class SimulatedAnnotator:
    """Ground truth about one simulated annotator."""

    annotator_id: str
    kind: str  # "reliable", "noisy", or one of BEHAVIOURS
    accuracy: float
    median_duration_ms: float
    drift_onset: int | None = None  # own label (1-based) from which a drifter answers at random
    constant_choice: int = 0  # class rank a constant spammer always answers
    partner: str | None = None  # the other member of a colluding pair
    automation_bias: float = 0.0  # chance of accepting a shown pre-label whatever it is

    @property
    def is_spammer(self) -> bool:
        return self.kind.startswith("spammer_")


@dataclass(frozen=True)
class SimulatedLabel:
    """One generated event with the ground truth behind it."""

    event: dict[str, object]
    true_label: str
    annotator: SimulatedAnnotator
    own_index: int = 1  # 1-based number of this label among its annotator's labels
    drifted: bool = False  # the answer came after the annotator's drift onset
    prelabel: str | None = None  # the model's pre-label shown, if any
    accepted_prelabel: bool = False  # the answer is the pre-label taken without judging it
    swapped: bool = False  # the answer was read with the changed guideline's classes swapped


@dataclass
class SimulationConfig:
    """Shape of the simulated population.

    Parameters
    ----------
    seed
        Seed of the random generator; equal seeds give equal streams.
    annotators
        Number of annotators shared by all projects.
    noisy_share
        Fraction of annotators who are noisy.
    labels_per_item
        Distinct annotators who label each item.
    gold_share
        Fraction of items that are gold (control) tasks.
    open_items
        Items in progress at once; their labels interleave.
    events_per_second
        Event-time rate of the stream (spacing of ``ts``), not a wall-clock rate.
    run_id
        Prefix of event ids, so separate runs never collide.
    behaviours
        How many annotators of each injected behaviour (:data:`BEHAVIOURS`; ``colluder``
        counts pairs) to add to the ``annotators`` stationary ones.
    drift_onset
        Range (inclusive) of the own-label number at which each drifter starts answering at
        random.
    prelabel_share
        Fraction of items that carry a model pre-label (0: none, and no version 2 fields).
    model_accuracy
        Chance the pre-label is the true class.
    model_accuracy_after
        ``(item number, accuracy)``: the model's accuracy from that item on (a model drift).
    automation_bias
        Chance an ``automation_biased`` annotator accepts a shown pre-label, right or wrong.
    guideline_change
        ``(label number, project, class a, class b)``: from that label (0-based, over the
        whole stream) on, events carry guideline_version "v2", and half the stationary
        annotators answer ``b`` where they meant ``a`` and ``a`` where they meant ``b`` in
        that project.
    """

    seed: int = 0
    annotators: int = 24
    noisy_share: float = 0.25
    labels_per_item: int = 3
    gold_share: float = 0.1
    open_items: int = 40
    events_per_second: float = 200.0
    run_id: str = "sim"
    projects: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(PROJECT_LABELS))
    behaviours: dict[str, int] = field(default_factory=dict)
    drift_onset: tuple[int, int] = (30, 150)
    prelabel_share: float = 0.0
    model_accuracy: float = 0.8
    model_accuracy_after: tuple[int, float] | None = None
    automation_bias: float = 0.95
    guideline_change: tuple[int, str, str, str] | None = None

    @property
    def version_2(self) -> bool:
        """Whether events carry the schema version 2 fields."""
        return self.prelabel_share > 0 or self.guideline_change is not None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.behaviours) - set(BEHAVIOURS))
        if unknown:
            raise ValueError(f"unknown behaviour(s) {unknown}; known: {list(BEHAVIOURS)}")


BEHAVIOURS: tuple[str, ...] = (
    "drifter",
    "spammer_constant",
    "spammer_random",
    "spammer_fast",
    "colluder",
    "automation_biased",
)


@dataclass
class _OpenItem:
    project: str
    item_id: str
    true_label: str
    gold: bool
    annotators: list[SimulatedAnnotator]
    answers: dict[str, str] = field(default_factory=dict)
    prelabel: tuple[str, float] | None = None  # (model_label, model_confidence)


class LabelingSimulator:
    """Generates :class:`SimulatedLabel` records forever (take as many as needed).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> sim = LabelingSimulator(SimulationConfig(seed=7))
    >>> first = next(sim.labels(datetime(2026, 1, 1, tzinfo=UTC)))
    >>> sorted(first.event)
    ['annotator_id', 'duration_ms', 'event_id', 'gold_label', 'item_id', 'label', 'project', 'ts']
    >>> first.event["event_id"]
    'sim-00000000'
    """

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.annotators = [self._make_annotator(i) for i in range(config.annotators)]
        for kind in BEHAVIOURS:
            for _ in range(config.behaviours.get(kind, 0)):
                self.annotators += self._make_behaviour(kind, len(self.annotators))
        self._by_id = {a.annotator_id: a for a in self.annotators}
        self._own_labels: dict[str, int] = {}
        self._items_opened = 0
        # ML-assisted labeling draws from its own generator: without it the stream is unchanged.
        self._assist_rng = random.Random(f"assist-{config.seed}")
        stationary = sorted(
            a.annotator_id for a in self.annotators if a.kind in ("reliable", "noisy")
        )
        self.guideline_swappers = frozenset(stationary[::2])
        """Annotators who read a changed guideline with its two classes swapped."""

    def _make_annotator(self, index: int) -> SimulatedAnnotator:
        noisy = self._rng.random() < self.config.noisy_share
        accuracy = self._rng.uniform(0.55, 0.75) if noisy else self._rng.uniform(0.85, 0.97)
        pace = math.exp(self._rng.gauss(math.log(4000), 0.4))
        return SimulatedAnnotator(
            annotator_id=f"ann-{index:03d}",
            kind="noisy" if noisy else "reliable",
            accuracy=accuracy,
            median_duration_ms=pace,
        )

    def _make_behaviour(self, kind: str, index: int) -> list[SimulatedAnnotator]:
        rng = self._rng
        if kind == "colluder":
            first, second = f"ann-{index:03d}", f"ann-{index + 1:03d}"
            return [
                SimulatedAnnotator(
                    annotator_id=me,
                    kind="colluder",
                    accuracy=rng.uniform(0.55, 0.75),
                    median_duration_ms=math.exp(rng.gauss(math.log(4000), 0.4)),
                    partner=other,
                )
                for me, other in ((first, second), (second, first))
            ]
        base = self._make_annotator(index)
        if kind == "automation_biased":
            return [
                SimulatedAnnotator(
                    annotator_id=base.annotator_id,
                    kind=kind,
                    accuracy=rng.uniform(0.85, 0.97),
                    median_duration_ms=base.median_duration_ms,
                    automation_bias=self.config.automation_bias,
                )
            ]
        if kind == "drifter":
            low, high = self.config.drift_onset
            return [
                SimulatedAnnotator(
                    annotator_id=base.annotator_id,
                    kind=kind,
                    accuracy=rng.uniform(0.85, 0.97),
                    median_duration_ms=base.median_duration_ms,
                    drift_onset=rng.randint(low, high),
                )
            ]
        return [
            SimulatedAnnotator(
                annotator_id=base.annotator_id,
                kind=kind,
                accuracy=0.0,  # answers carry no information about the truth
                median_duration_ms=300.0 if kind == "spammer_fast" else base.median_duration_ms,
                constant_choice=rng.randrange(8),
            )
        ]

    def _open_item(self) -> _OpenItem:
        rng = self._rng
        project = rng.choice(sorted(self.config.projects))
        classes = self.config.projects[project]
        # A skewed class prior, as in real queues: the first class is the most common.
        weights = [1.0 / (rank + 1) for rank in range(len(classes))]
        true_label = rng.choices(classes, weights=weights)[0]
        k = min(self.config.labels_per_item, len(self.annotators))
        self._items_opened += 1
        chosen = rng.sample(self.annotators, k)
        # A colluding pair works the same items: bring the partner in.
        for a in list(chosen):
            if (
                a.partner is not None
                and k >= 2
                and all(c.partner != a.annotator_id for c in chosen)
            ):
                outsider = next((c for c in chosen if c is not a and c.partner is None), None)
                if outsider is not None:
                    chosen[chosen.index(outsider)] = self._by_id[a.partner]
        return _OpenItem(
            project=project,
            item_id=f"{project}-{self.config.run_id}-{self._items_opened:07d}",
            true_label=true_label,
            gold=rng.random() < self.config.gold_share,
            annotators=chosen,
            prelabel=self._prelabel(classes, true_label),
        )

    def _prelabel(self, classes: tuple[str, ...], true_label: str) -> tuple[str, float] | None:
        config, rng = self.config, self._assist_rng
        if config.prelabel_share <= 0 or rng.random() >= config.prelabel_share:
            return None
        accuracy = config.model_accuracy
        after = config.model_accuracy_after
        if after is not None and self._items_opened >= after[0]:
            accuracy = after[1]
        if rng.random() < accuracy:
            return true_label, round(rng.uniform(0.6, 0.99), 3)
        return rng.choice([c for c in classes if c != true_label]), round(rng.uniform(0.4, 0.9), 3)

    def _answer(self, annotator: SimulatedAnnotator, item: _OpenItem, drifted: bool) -> str:
        rng = self._rng
        classes = self.config.projects[item.project]
        kind = annotator.kind
        if kind == "spammer_constant":
            return classes[annotator.constant_choice % len(classes)]
        if kind in ("spammer_random", "spammer_fast") or drifted:
            return rng.choice(classes)
        if annotator.partner is not None and annotator.partner in item.answers:
            return item.answers[annotator.partner]
        if rng.random() < annotator.accuracy:
            return item.true_label
        others = [c for c in classes if c != item.true_label]
        return rng.choice(others)

    def labels(self, start: datetime) -> Iterator[SimulatedLabel]:
        """Yield labels with event times from ``start`` on (timezone-aware)."""
        rng = self._rng
        open_items = [self._open_item() for _ in range(self.config.open_items)]
        ts = start
        seq = 0
        while True:
            slot = rng.randrange(len(open_items))
            item = open_items[slot]
            annotator = item.annotators.pop()
            if not item.annotators:
                open_items[slot] = self._open_item()
            ts += timedelta(seconds=rng.expovariate(self.config.events_per_second))
            spread = 0.3 if annotator.kind == "spammer_fast" else 0.5
            duration = rng.lognormvariate(math.log(annotator.median_duration_ms), spread)
            own = self._own_labels[annotator.annotator_id] = (
                self._own_labels.get(annotator.annotator_id, 0) + 1
            )
            drifted = annotator.drift_onset is not None and own >= annotator.drift_onset
            answer = self._answer(annotator, item, drifted)
            accepted = False
            if (
                item.prelabel is not None
                and annotator.automation_bias > 0
                and self._assist_rng.random() < annotator.automation_bias
            ):
                answer, accepted = item.prelabel[0], True
            change = self.config.guideline_change
            changed = change is not None and seq >= change[0]
            swapped = False
            if (
                change is not None
                and changed
                and item.project == change[1]
                and annotator.annotator_id in self.guideline_swappers
                and answer in change[2:]
            ):
                answer = change[3] if answer == change[2] else change[2]
                swapped = True
            item.answers[annotator.annotator_id] = answer
            event: dict[str, object] = {
                "event_id": f"{self.config.run_id}-{seq:08d}",
                "ts": ts.isoformat(),
                "project": item.project,
                "item_id": item.item_id,
                "annotator_id": annotator.annotator_id,
                "label": answer,
                "gold_label": item.true_label if item.gold else None,
                "duration_ms": int(duration),
            }
            if self.config.version_2:
                event["schema_version"] = 2
                event["task_type"] = "classification"
                if change is not None:
                    event["guideline_version"] = "v2" if changed else "v1"
                if item.prelabel is not None:
                    event["model_label"], event["model_confidence"] = item.prelabel
            seq += 1
            yield SimulatedLabel(
                event=event,
                true_label=item.true_label,
                annotator=annotator,
                own_index=own,
                drifted=drifted,
                prelabel=None if item.prelabel is None else item.prelabel[0],
                accepted_prelabel=accepted,
                swapped=swapped,
            )


def kafka_records(
    labels: Iterator[SimulatedLabel], n_valid: int, malformed: list[tuple[str, bytes]]
) -> Iterator[tuple[bytes | None, bytes]]:
    """``(key, value)`` records: ``n_valid`` events keyed by item, malformed ones spread evenly.

    Malformed messages carry no key; any left over after the last event are sent at the end.
    """
    every = max(1, n_valid // (len(malformed) + 1))
    pending = list(malformed)
    for i in range(n_valid):
        event = next(labels).event
        yield str(event["item_id"]).encode(), encode_event(event)
        if pending and (i + 1) % every == 0:
            yield None, pending.pop(0)[1]
    for _, value in pending:
        yield None, value


def encode_event(event: dict[str, object]) -> bytes:
    """The JSON bytes a producer would send for ``event``."""
    return json.dumps(event, separators=(",", ":")).encode()


def encode_batch(events: Iterable[dict[str, object]]) -> bytes:
    """The JSON bytes of a batched envelope holding ``events`` (``{"events": [...]}``)."""
    return _envelope([encode_event(e) for e in events])


def kafka_batches(
    records: Iterable[tuple[bytes | None, bytes]], size: int, groups: int
) -> Iterator[tuple[bytes | None, bytes]]:
    """``records`` (keyed events, as :func:`kafka_records` makes) as batched envelopes of up
    to ``size`` events; unkeyed (malformed) records pass through alone.

    An envelope is one message, so all its events reach the same partition. Events are
    grouped by a stable hash of their key into ``groups`` groups (use the topic's partition
    count), an envelope holds events of one group only and is keyed by the group, so every
    label of an item still reaches the same partition, as when sent one by one."""
    pending: dict[int, list[bytes]] = {}
    for key, value in records:
        if key is None:
            yield key, value
            continue
        group = zlib.crc32(key) % groups
        events = pending.setdefault(group, [])
        events.append(value)
        if len(events) == size:
            yield b"group-%d" % group, _envelope(events)
            events.clear()
    for group, events in pending.items():
        if events:
            yield b"group-%d" % group, _envelope(events)


def _envelope(encoded: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(encoded) + b"]}"


def malformed_messages(seed: int, count: int, *, max_message_bytes: int) -> list[tuple[str, bytes]]:
    """``count`` malformed message values, each with the rejection code it must get.

    Cycles through every kind of bad input the worker must dead-letter: an empty value,
    invalid UTF-8, invalid JSON, a JSON array, wrong types, a missing field, an unknown field,
    a naive timestamp, an unknown schema version, and a message over ``max_message_bytes``.
    """
    rng = random.Random(seed)
    good: dict[str, object] = {
        "event_id": "bad",
        "ts": "2026-01-01T00:00:00+00:00",
        "project": "sentiment",
        "item_id": "bad-item",
        "annotator_id": "ann-bad",
        "label": "neutral",
    }

    def variant(**changes: object) -> bytes:
        body = dict(good, event_id=f"bad-{rng.getrandbits(48):012x}")
        for key, value in changes.items():
            if value is _DROP:
                body.pop(key)
            else:
                body[key] = value
        return json.dumps(body).encode()

    makers: list[tuple[str, Callable[[], bytes]]] = [
        ("empty", lambda: b""),
        ("invalid_utf8", lambda: b'{"event_id": "\xff\xfe"}'),
        ("invalid_json", lambda: b'{"event_id": "x", "ts": '),
        ("not_an_object", lambda: b"[1, 2, 3]"),
        ("invalid_fields", lambda: variant(duration_ms="fast")),
        ("invalid_fields", lambda: variant(label=_DROP)),
        ("invalid_fields", lambda: variant(colour="blue")),
        ("invalid_fields", lambda: variant(ts="2026-01-01T00:00:00")),
        ("unsupported_schema_version", lambda: variant(schema_version=99)),
        ("oversized", lambda: variant(label="x" * 8, padding=" " * max_message_bytes)),
    ]
    return [(makers[i % len(makers)][0], makers[i % len(makers)][1]()) for i in range(count)]


MALFORMED_KINDS = 10
"""How many distinct kinds :func:`malformed_messages` cycles through."""


_DROP = object()


def write_replay_files(
    labels: Iterator[SimulatedLabel],
    n: int,
    directory: Path,
    *,
    stages: Stages = no_progress,
) -> dict[str, dict[str, object]]:
    """Write ``n`` labels as replay input: ``labels.csv`` (with project, gold, duration and
    time), ``truth.csv`` and ``annotators.json`` (each annotator's behaviour, the ground truth
    for evaluating alerts). Returns the annotators' ground truth. ``stages`` gets one:
    ``simulating`` (the labels made and written)."""
    with stages("simulating", n, " labels") as advance:
        return _write_replay_files(counted(labels, advance), n, directory)


def _write_replay_files(
    labels: Iterator[SimulatedLabel], n: int, directory: Path
) -> dict[str, dict[str, object]]:
    directory.mkdir(parents=True, exist_ok=True)
    truth: dict[str, str] = {}
    annotators: dict[str, dict[str, object]] = {}
    columns = ["project", "item", "annotator", "label", "gold", "duration_ms", "ts"]
    with (directory / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for _ in range(n):
            lab = next(labels)
            e = lab.event
            gold = e["gold_label"]
            writer.writerow(
                [
                    e["project"],
                    e["item_id"],
                    e["annotator_id"],
                    e["label"],
                    "" if gold is None else gold,
                    e["duration_ms"],
                    e["ts"],
                ]
            )
            truth[str(e["item_id"])] = lab.true_label
            a = lab.annotator
            annotators[a.annotator_id] = {
                "kind": a.kind,
                "accuracy": a.accuracy,
                "median_duration_ms": a.median_duration_ms,
                "drift_onset": a.drift_onset,
                "partner": a.partner,
            }
    with (directory / "truth.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "label"])
        writer.writerows(sorted(truth.items()))
    (directory / "annotators.json").write_text(json.dumps(annotators, indent=1, sort_keys=True))
    return annotators


def write_mixed_file(
    labels: Iterator[SimulatedLabel],
    n_labels: int,
    path: Path,
    *,
    signals: Callable[
        [datetime, datetime],
        tuple[list[tuple[dict[str, object], str | None]], list[dict[str, object]]],
    ],
    revocations: int,
    seed: int,
    stages: Stages = no_progress,
) -> dict[str, object]:
    """Write ``n_labels`` labels and the privacy signals of the same time span as one JSONL
    file of mixed events (``{"type": "label" | "privacy_signal", ...}``, in event-time
    order), and the ground truth of every injected incident beside it
    (``PATH.truth.json``). Returns the ground truth.

    ``signals(start, end)`` gives the signals of the span with the name of the incident
    that produced each (None: background), and the incidents' descriptions. Beside them,
    ``revocations`` items that are being labeled get a ``consent_revoked`` (or
    ``deletion_requested``) signal between their first and second label: every later label of
    such an item is a label on a revoked item, listed in the truth with its line.

    ``stages`` gets two: ``simulating`` (the labels made) and ``writing`` (every event);
    ``signals`` runs between them."""
    with stages("simulating", n_labels, " labels") as advance:
        counting = counted(labels, advance)
        made = [next(counting) for _ in range(n_labels)]
    if not made:
        raise ValueError("no labels to write")
    start = datetime.fromisoformat(str(made[0].event["ts"]))
    end = datetime.fromisoformat(str(made[-1].event["ts"]))
    background, incidents = signals(start, end)
    rng = random.Random(f"{seed}:revocations")
    by_item: dict[str, list[int]] = {}
    for i, lab in enumerate(made):
        by_item.setdefault(str(lab.event["item_id"]), []).append(i)
    candidates = sorted(item for item, idx in by_item.items() if len(idx) >= 2)
    chosen = rng.sample(candidates, min(revocations, len(candidates)))
    revoked: list[tuple[dict[str, object], str]] = []
    for n, item in enumerate(sorted(chosen)):
        first, second = (made[i].event for i in by_item[item][:2])
        t1 = datetime.fromisoformat(str(first["ts"]))
        t2 = datetime.fromisoformat(str(second["ts"]))
        event: dict[str, object] = {
            "event_id": f"revoke-{seed}-{n:04d}",
            "ts": (t1 + (t2 - t1) / 2).isoformat(),
            "project": first["project"],
            "source": "consent-service",
            "kind": "consent_revoked" if n % 2 == 0 else "deletion_requested",
            "severity": "high",
            "item_id": item,
        }
        revoked.append((event, f"revocation:{item}"))
    rows: list[tuple[datetime, int, dict[str, object], str | None]] = []
    for lab in made:
        ts = datetime.fromisoformat(str(lab.event["ts"]))
        rows.append((ts, 0, {"type": "label", **lab.event}, None))
    for event, incident in [*background, *revoked]:
        ts = datetime.fromisoformat(str(event["ts"]))
        rows.append((ts, 1, {"type": "privacy_signal", **event}, incident))
    rows.sort(key=lambda r: (r[0], r[1]))
    lines: dict[str, int] = {}  # event_id -> line
    incident_lines: dict[str, list[int]] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        stages("writing", len(rows), " events") as advance,
        path.open("w", encoding="utf-8") as handle,
    ):
        for line, (_, _, body, incident) in enumerate(counted(rows, advance, step=4096), start=1):
            handle.write(json.dumps(body, separators=(",", ":")) + "\n")
            lines[str(body["event_id"])] = line
            if incident is not None:
                incident_lines.setdefault(incident, []).append(line)
    revoked_truth = []
    for event, _ in revoked:
        item = str(event["item_id"])
        at = datetime.fromisoformat(str(event["ts"]))
        later = [
            made[i].event
            for i in by_item[item]
            if datetime.fromisoformat(str(made[i].event["ts"])) >= at
        ]
        revoked_truth.append(
            {
                "project": event["project"],
                "item_id": item,
                "kind": event["kind"],
                "revoked_at": event["ts"],
                "revocation_line": lines[str(event["event_id"])],
                "labels_after": [
                    {"line": lines[str(e["event_id"])], "event_id": e["event_id"]} for e in later
                ],
            }
        )
    truth: dict[str, object] = {
        "labels": len(made),
        "signals": len(background) + len(revoked),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "incidents": [dict(d, lines=incident_lines.get(str(d["name"]), [])) for d in incidents],
        "revoked_items": revoked_truth,
        "annotators": {
            a.annotator_id: {"kind": a.kind, "drift_onset": a.drift_onset, "partner": a.partner}
            for a in {lab.annotator.annotator_id: lab.annotator for lab in made}.values()
        },
    }
    Path(f"{path}.truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    return truth
