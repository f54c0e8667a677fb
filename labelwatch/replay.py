"""``labelwatch replay``: run the online models over a file of events, without Kafka.

The same models as the live worker, fed in file order or a seeded shuffle. Two inputs:

* a labels CSV: columns ``item,annotator,label`` and optionally ``gold``, ``duration_ms``,
  ``ts`` (ISO-8601 with an offset, or epoch seconds) and ``project`` (one model per project);
* a JSONL file of mixed events (``.jsonl``/``.ndjson``): one JSON object per line, a
  LabelEvent or a PrivacySignal as producers send them, told apart by a ``type`` field
  (``label`` or ``privacy_signal``). Labels feed the quality models; privacy signals feed the
  privacy detectors (one monitor, as one partition would) and the revoked-item check.

Every alert names ``at_event``: the 1-based line of the file at which it fired. A truth file
(``item,label``) gives the accuracy of the final consensus and of majority vote.

Majority vote (reported beside the consensus) breaks ties in favour of the label that was
given first for the item.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from labelwatch.models.consensus import StreamingConsensus, warm_up
from labelwatch.models.drift import AnswerContext
from labelwatch.models.monitor import AnnotatorMonitor, Finding, MonitorConfig, reliability_lookup
from labelwatch.models.privacy import PrivacyConfig, PrivacyMonitor
from labelwatch.models.privacy_tracker import finding_alert
from labelwatch.models.revocations import Revocation, RevocationRegistry, revoked_label_alert
from labelwatch.progress import Advance, Stages, counted, no_progress
from labelwatch.schemas import (
    InvalidEvent,
    LabelEvent,
    PrivacySignal,
    SourcePosition,
    decode_label_event,
    decode_privacy_signal,
)
from labelwatch.schemas.alerts import Alert

REQUIRED_COLUMNS = ("item", "annotator", "label")
OPTIONAL_COLUMNS = ("gold", "duration_ms", "ts", "project")
DEFAULT_PROJECT = "default"
_CHUNK = 4096  # labels per kernel call; results do not depend on it


class ReplayInputError(ValueError):
    """A replay input file that cannot be read, naming the file, line and column."""


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One input row, validated."""

    line: int
    item: str
    annotator: str
    label: str
    gold: str | None = None
    duration_ms: int | None = None
    ts: float | None = None
    project: str = DEFAULT_PROJECT

    def model_input(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "annotator": self.annotator,
            "label": self.label,
            "gold": self.gold,
            "ts": self.ts,
        }


@dataclass
class ReplayResult:
    """What a replay learned, and how fast."""

    labels: int
    models: dict[str, StreamingConsensus]
    model_seconds: float
    majority: dict[tuple[str, str], str] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    monitor_seconds: float = 0.0
    signals: int = 0

    @property
    def labels_per_second(self) -> float:
        return self.labels / self.model_seconds if self.model_seconds > 0 else float("inf")

    def consensus(self) -> dict[tuple[str, str], str]:
        """Final consensus label per (project, item)."""
        out: dict[tuple[str, str], str] = {}
        for project, model in self.models.items():
            for item in model.items:
                label = model.predict_one({"item": item})
                if label is not None:
                    out[(project, item)] = label
        return out


def read_labels(path: Path, progress: Advance | None = None) -> list[LabelRow]:
    """Read and validate a labels CSV; raises :class:`ReplayInputError` naming the line.
    ``progress`` is told of the rows read (in steps)."""
    rows: list[LabelRow] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ReplayInputError(
                f"{path}: line 1: missing column(s) {', '.join(missing)}; "
                f"required: {', '.join(REQUIRED_COLUMNS)}"
            )
        unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if unknown:
            raise ReplayInputError(f"{path}: line 1: unknown column(s) {', '.join(unknown)}")
        raws: Iterable[dict[str | Any, str | Any]] = reader
        if progress is not None:
            raws = counted(reader, progress, step=_CHUNK)
        try:
            for raw in raws:
                rows.append(_row(path, reader.line_num, raw))
        except UnicodeDecodeError as exc:
            raise ReplayInputError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return rows


def _row(path: Path, line: int, raw: dict[str | Any, str | Any]) -> LabelRow:
    def fail(column: str, why: str) -> ReplayInputError:
        return ReplayInputError(f"{path}: line {line}: column {column!r}: {why}")

    if None in raw:
        raise ReplayInputError(f"{path}: line {line}: more fields than columns")
    values = {k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items()}
    for column in REQUIRED_COLUMNS:
        if not values.get(column):
            raise fail(column, "empty or missing")
    duration = values.get("duration_ms") or None
    duration_ms = None
    if duration is not None:
        try:
            duration_ms = int(duration)
        except ValueError:
            raise fail("duration_ms", f"not an integer: {duration!r}") from None
        if duration_ms < 0:
            raise fail("duration_ms", f"negative: {duration_ms}")
    ts_text = values.get("ts") or None
    ts = None
    if ts_text is not None:
        ts = _timestamp(ts_text)
        if ts is None:
            raise fail("ts", f"not ISO-8601 with an offset nor epoch seconds: {ts_text!r}")
    return LabelRow(
        line=line,
        item=values["item"],
        annotator=values["annotator"],
        label=values["label"],
        gold=values.get("gold") or None,
        duration_ms=duration_ms,
        ts=ts,
        project=values.get("project") or DEFAULT_PROJECT,
    )


def _timestamp(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def count_events(path: Path) -> int:
    """The number of events in a replay input file, for a progress bar's total: its lines,
    less the header of a CSV (a quoted field spanning lines makes it an over-count)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"  # a last line without its newline
    return lines if is_event_file(path) else max(lines - 1, 0)


def read_truth(path: Path) -> dict[str, str]:
    """Read ``item,label`` ground truth; raises :class:`ReplayInputError` naming the line."""
    truth: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"item", "label"} <= set(reader.fieldnames or []):
            raise ReplayInputError(f"{path}: line 1: truth needs columns item,label")
        for raw in reader:
            item, label = (raw.get("item") or "").strip(), (raw.get("label") or "").strip()
            if not item or not label:
                raise ReplayInputError(f"{path}: line {reader.line_num}: empty item or label")
            truth[item] = label
    return truth


def ordered(rows: Sequence[LabelRow], shuffle_seed: int | None) -> list[LabelRow]:
    """File order, or a seeded shuffle of it."""
    out = list(rows)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(out)  # noqa: S311 - reproducible order, not secrecy
    return out


def replay(
    rows: Iterable[LabelRow],
    make_model: type[StreamingConsensus] = StreamingConsensus,
    monitor_config: MonitorConfig | None = None,
    on_label: Callable[[int, AnswerContext | None], None] | None = None,
    progress: Advance | None = None,
) -> ReplayResult:
    """Feed ``rows`` in order to one model and one annotator monitor per project.

    Alerts are listed in firing order, each with ``at_label``: the 1-based position in
    ``rows`` of the label at which it fired (``line`` is the row's line in its file).
    ``on_label(position, context)`` sees what the model knew about each label (benchmarks
    run reference detectors on it); ``progress`` is told of the labels learned (in steps
    of at most 4,096)."""
    rows = list(rows)
    warm_up()  # JIT compilation is start-up cost, not per-label cost
    models: dict[str, StreamingConsensus] = {}
    monitors: dict[str, AnnotatorMonitor] = {}
    votes: dict[tuple[str, str], Counter[str]] = {}
    alerts: list[dict[str, Any]] = []
    model_seconds = monitor_seconds = 0.0
    for start in range(0, len(rows), _CHUNK):
        by_project: dict[str, list[int]] = {}
        for position in range(start, min(start + _CHUNK, len(rows))):
            by_project.setdefault(rows[position].project, []).append(position)
        for project, positions in by_project.items():
            model = models.get(project)
            if model is None:
                model = models[project] = make_model()
                monitors[project] = AnnotatorMonitor(monitor_config)
            began = time.perf_counter()
            reads = model.learn_and_read(rows[p].model_input() for p in positions)
            learned = time.perf_counter()
            model_seconds += learned - began
            found = _monitor(monitors[project], model, rows, positions, reads.contexts)
            monitor_seconds += time.perf_counter() - learned
            if on_label is not None:
                for position, ctx in zip(positions, reads.contexts, strict=True):
                    on_label(position, ctx)
            for position, finding in found:
                alerts.append(_alert_row(project, position, rows[position], finding))
            if progress is not None:
                progress(len(positions))
    alerts.sort(key=lambda a: a["at_label"])  # projects are learned a chunk at a time
    for row in rows:
        votes.setdefault((row.project, row.item), Counter())[row.label] += 1
    majority = {key: counter.most_common(1)[0][0] for key, counter in votes.items()}
    return ReplayResult(
        labels=len(rows),
        models=models,
        model_seconds=model_seconds,
        majority=majority,
        alerts=alerts,
        monitor_seconds=monitor_seconds,
    )


def _monitor(
    monitor: AnnotatorMonitor,
    model: StreamingConsensus,
    rows: Sequence[LabelRow],
    positions: Sequence[int],
    contexts: Sequence[AnswerContext | None],
) -> list[tuple[int, Finding]]:
    reliability = model.reliability
    lookup = reliability_lookup(reliability)

    found: list[tuple[int, Finding]] = []
    n_classes = reliability.n_classes
    for position, ctx in zip(positions, contexts, strict=True):
        row = rows[position]
        gold_correct = None if row.gold is None else row.gold == row.label
        for finding in monitor.observe(
            row.annotator,
            ctx,
            reliability.class_index(row.label),
            n_classes if ctx is None else ctx.n_classes,
            row.duration_ms,
            float(position) if row.ts is None else row.ts,
            gold_correct,
            lookup,
            position,
        ):
            found.append((position, finding))
    return found


def _alert_row(project: str, position: int, row: LabelRow, finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "state": finding.state,
        "annotator": finding.annotator,
        "at_label": position + 1,
        "line": row.line,
        "at_event": row.line,
        "project": project,
        "subject": finding.annotator,
        "score": finding.score,
        "threshold": finding.threshold,
        "severity": finding.severity,
        "detector": finding.detector,
        "reason": finding.reason,
        "evidence": finding.evidence,
    }


def accuracy(predicted: dict[tuple[str, str], str], truth: dict[str, str]) -> float | None:
    """Share of items with truth whose prediction is right (items matched by id)."""
    by_item: dict[str, str] = {item: label for (_, item), label in predicted.items()}
    keys = [item for item in truth if item in by_item]
    if not keys:
        return None
    return sum(by_item[item] == truth[item] for item in keys) / len(keys)


def summary(result: ReplayResult, truth: dict[str, str] | None) -> dict[str, Any]:
    """The replay's JSON summary."""
    annotators = {a for m in result.models.values() for a in m.reliability.annotators}
    items = sum(len(m) for m in result.models.values())
    return {
        "labels": result.labels,
        "privacy_signals": result.signals,
        "items": items,
        "annotators": len(annotators),
        "projects": sorted(result.models),
        "accuracy": accuracy(result.consensus(), truth) if truth else None,
        "majority_vote_accuracy": accuracy(result.majority, truth) if truth else None,
        "labels_per_second": result.labels_per_second,
        "alerts": result.alerts,
    }


def annotator_table(result: ReplayResult, limit: int = 10) -> list[dict[str, Any]]:
    """Annotators with their reliability, least accurate first."""
    reports: list[dict[str, Any]] = []
    for project, model in result.models.items():
        for annotator in model.reliability.annotators:
            r = model.reliability.report(annotator)
            reports.append(
                {
                    "project": project,
                    "annotator": annotator,
                    "labels": r.n_labels,
                    "accuracy": r.accuracy,
                    "low": r.accuracy_low,
                    "high": r.accuracy_high,
                    "gold_accuracy": r.gold_accuracy,
                }
            )
    reports.sort(key=lambda r: r["accuracy"])
    return reports[:limit]


# --- mixed event files (JSONL) ----------------------------------------------------------------

EVENT_TYPES = ("label", "privacy_signal")


@dataclass
class MixedEvents:
    """A mixed JSONL file, validated: labels as rows, privacy signals with their lines."""

    labels: list[LabelRow]
    signals: list[tuple[int, PrivacySignal]]
    label_events: list[tuple[int, LabelEvent]]


def is_event_file(path: Path) -> bool:
    """True for a JSONL file of mixed events (by its suffix)."""
    return path.suffix.lower() in (".jsonl", ".ndjson")


def read_events(
    path: Path, *, max_line_bytes: int = 1_048_576, progress: Advance | None = None
) -> MixedEvents:
    """Read and validate a mixed JSONL file; raises :class:`ReplayInputError` naming the line,
    and the field, of the first invalid event (validation is the worker's own).
    ``progress`` is told of the lines read (in steps)."""
    labels: list[LabelRow] = []
    label_events: list[tuple[int, LabelEvent]] = []
    signals: list[tuple[int, PrivacySignal]] = []
    with path.open("rb") as handle:
        raws: Iterable[bytes] = handle
        if progress is not None:
            raws = counted(handle, progress, step=_CHUNK)
        for line, raw in enumerate(raws, start=1):
            if not raw.strip():
                raise ReplayInputError(f"{path}: line {line}: empty line")
            try:
                obj = json.loads(raw)
            except (UnicodeDecodeError, ValueError) as exc:
                raise ReplayInputError(f"{path}: line {line}: not JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise ReplayInputError(f"{path}: line {line}: not a JSON object")
            kind = obj.pop("type", None)
            if kind not in EVENT_TYPES:
                raise ReplayInputError(
                    f"{path}: line {line}: field 'type' must be one of "
                    f"{', '.join(EVENT_TYPES)}, not {kind!r}"
                )
            body = json.dumps(obj).encode()
            try:
                if kind == "label":
                    event = decode_label_event(body, max_bytes=max_line_bytes)
                    label_events.append((line, event))
                    labels.append(_label_row(line, event))
                else:
                    signals.append((line, decode_privacy_signal(body, max_bytes=max_line_bytes)))
            except InvalidEvent as exc:
                raise ReplayInputError(f"{path}: line {line}: {exc.code}: {exc.reason}") from None
    return MixedEvents(labels, signals, label_events)


def _label_row(line: int, event: LabelEvent) -> LabelRow:
    return LabelRow(
        line=line,
        item=event.item_id,
        annotator=event.annotator_id,
        label=event.label,
        gold=event.gold_label,
        duration_ms=event.duration_ms,
        ts=event.ts.timestamp(),
        project=event.project,
    )


def privacy_alerts(
    events: MixedEvents, config: PrivacyConfig | None = None, progress: Advance | None = None
) -> list[dict[str, Any]]:
    """Privacy alerts of a mixed file in file order: the rate detectors and rules over its
    signals, and a ``revoked_item_labeled`` alert for every label given to an item at or after
    its revocation, whichever of the two comes first in the file. ``progress`` is told of the
    events gone through (labels and signals, in steps)."""
    monitor = PrivacyMonitor(config)
    registry = RevocationRegistry()
    shard = "file:0"
    alerts: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], list[tuple[int, LabelEvent]]] = {}
    alerted: set[int] = set()
    merged: list[tuple[int, LabelEvent | PrivacySignal]] = sorted(
        [*events.label_events, *events.signals], key=lambda e: e[0]
    )
    for line, event in merged if progress is None else counted(merged, progress, step=_CHUNK):
        if isinstance(event, LabelEvent):
            seen.setdefault((event.project, event.item_id), []).append((line, event))
            for alert in registry.check([(event, SourcePosition("file", 0, line))]):
                alerted.add(line)
                alerts.append(_privacy_row(alert, line))
            continue
        for finding in monitor.observe(event, line):
            alerts.append(_privacy_row(finding_alert(finding, shard, line), line))
        revocation = Revocation.from_signal(event)
        if revocation is not None and registry.add(revocation):
            for label_line, label in seen.get((revocation.project, revocation.item_id), []):
                if label_line not in alerted and label.ts >= revocation.revoked_at:
                    alerted.add(label_line)
                    source = SourcePosition("file", 0, label_line)
                    alert = revoked_label_alert(label, source, revocation)
                    alerts.append(_privacy_row(alert, line))
    return alerts


def _privacy_row(alert: Alert, at_event: int) -> dict[str, Any]:
    return {
        "kind": alert.kind,
        "state": alert.state,
        "project": alert.project,
        "subject": alert.subject,
        "annotator": alert.annotator_id,
        "item": alert.item_id,
        "at_event": at_event,
        "line": at_event,
        "score": alert.score,
        "threshold": alert.threshold,
        "severity": alert.severity,
        "detector": alert.detector,
        "reason": alert.reason,
        "evidence": alert.evidence,
    }


def replay_events(
    events: MixedEvents,
    monitor_config: MonitorConfig | None = None,
    privacy_config: PrivacyConfig | None = None,
    *,
    stages: Stages = no_progress,
) -> ReplayResult:
    """:func:`replay` of the file's labels, with its privacy alerts merged in file order.
    ``stages`` gets two: ``models`` (the labels) and ``privacy`` (every event)."""
    with stages("models", len(events.labels), " labels") as advance:
        result = replay(events.labels, monitor_config=monitor_config, progress=advance)
    n_events = len(events.labels) + len(events.signals)
    with stages("privacy", n_events, " events") as advance:
        found = privacy_alerts(events, privacy_config, progress=advance)
    result.alerts = sorted(result.alerts + found, key=lambda a: a["at_event"])
    result.signals = len(events.signals)
    return result
