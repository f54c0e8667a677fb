"""A seeded generator of realistic labeling traffic, and of malformed messages for testing.

Pure: no Kafka, no clock (the caller passes the start time). The same seed gives the same
stream. ``labelwatch simulate`` and ``labelwatch demo`` send what this module generates.

The population: several projects, each with its own label set and class prior; annotators
who are *reliable* (accuracy ~0.9) or *noisy* (~0.55), with errors spread over the other
classes; each item is labeled by several distinct annotators, interleaved with other open
items the way a labeling queue hands them out; a share of items are gold (control) tasks that
carry their known answer; durations are log-normal around each annotator's own pace.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

PROJECT_LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": ("positive", "neutral", "negative"),
    "animals": ("cat", "dog", "bird", "other"),
    "moderation": ("ok", "spam", "abuse"),
}


@dataclass(frozen=True)
class SimulatedAnnotator:
    """Ground truth about one simulated annotator."""

    annotator_id: str
    kind: str  # "reliable" or "noisy"
    accuracy: float
    median_duration_ms: float


@dataclass(frozen=True)
class SimulatedLabel:
    """One generated event with the ground truth behind it."""

    event: dict[str, object]
    true_label: str
    annotator: SimulatedAnnotator


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


@dataclass
class _OpenItem:
    project: str
    item_id: str
    true_label: str
    gold: bool
    annotators: list[SimulatedAnnotator]


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
        self._items_opened = 0

    def _make_annotator(self, index: int) -> SimulatedAnnotator:
        noisy = self._rng.random() < self.config.noisy_share
        accuracy = self._rng.uniform(0.45, 0.65) if noisy else self._rng.uniform(0.85, 0.97)
        pace = math.exp(self._rng.gauss(math.log(4000), 0.4))
        return SimulatedAnnotator(
            annotator_id=f"ann-{index:03d}",
            kind="noisy" if noisy else "reliable",
            accuracy=accuracy,
            median_duration_ms=pace,
        )

    def _open_item(self) -> _OpenItem:
        rng = self._rng
        project = rng.choice(sorted(self.config.projects))
        classes = self.config.projects[project]
        # A skewed class prior, as in real queues: the first class is the most common.
        weights = [1.0 / (rank + 1) for rank in range(len(classes))]
        true_label = rng.choices(classes, weights=weights)[0]
        k = min(self.config.labels_per_item, len(self.annotators))
        self._items_opened += 1
        return _OpenItem(
            project=project,
            item_id=f"{project}-{self.config.run_id}-{self._items_opened:07d}",
            true_label=true_label,
            gold=rng.random() < self.config.gold_share,
            annotators=rng.sample(self.annotators, k),
        )

    def _answer(self, annotator: SimulatedAnnotator, item: _OpenItem) -> str:
        if self._rng.random() < annotator.accuracy:
            return item.true_label
        others = [c for c in self.config.projects[item.project] if c != item.true_label]
        return self._rng.choice(others)

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
            duration = rng.lognormvariate(math.log(annotator.median_duration_ms), 0.5)
            event: dict[str, object] = {
                "event_id": f"{self.config.run_id}-{seq:08d}",
                "ts": ts.isoformat(),
                "project": item.project,
                "item_id": item.item_id,
                "annotator_id": annotator.annotator_id,
                "label": self._answer(annotator, item),
                "gold_label": item.true_label if item.gold else None,
                "duration_ms": int(duration),
            }
            seq += 1
            yield SimulatedLabel(event=event, true_label=item.true_label, annotator=annotator)


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
