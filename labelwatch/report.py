"""``labelwatch report``: a root-cause report of one project over a time window.

What the report says, section by section, all read from the store with read-only SQL:

* **agreement**: Krippendorff's alpha of the window (the ``agreement`` table's hourly rows
  that overlap it, each shard's newest, summed), per class, and per hour;
* **confusion**: the most frequent (reference, given) pairs per guideline version, and the
  changes the worker found (``confusion_findings``);
* **disagreement attribution**: which annotators (and, against the store's other projects,
  which project) the disagreement comes from
  (:class:`~labelwatch.models.attribution.DisagreementAttribution`);
* **ML-assisted labeling**: pre-labels shown and accepted per annotator, wrong pre-labels
  accepted against the peers' rate, and the ``automation_bias`` and ``model_drift`` alerts;
* **open alerts** and the **review queue** (picks by kind, top priorities, random picks).

One reference throughout: a label's *reference* is its item's gold answer when known, else
the item's newest consensus (``item_consensus_latest``); labels without either are left out.
The sections read ``label_events`` in the exact window (to the millisecond) rather than the
per-day views ``class_confusion`` and ``prelabel_use``, whose day buckets would blur a
window of hours and whose reference (the consensus right after the label) includes the label
itself: a wrong pre-label accepted as an item's first vote would look right there.

Live and replay share this code: :func:`gather` takes a query function (SQL with ``{db}``
for the database and bound ``{name:Type}`` parameters, returning a
:class:`~labelwatch.sinks.query.QueryResult`). Live, that is :func:`labelwatch.query.query`
(the running worker's ``/query`` endpoint, or the store directly); for a replay,
:func:`replay_into_store` first runs the worker's model path over a file into a temporary
chDB store, then the same SQL runs there.

Output: :func:`render_markdown` (printed, and written as ``report.md`` with the plots as
``.svg`` files beside it) and :func:`render_html` (``report.html``, self-contained: the plots
inline, no scripts, styles or fonts fetched). The plots are small SVG drawn here, so the
report needs no plotting library.
"""

from __future__ import annotations

import contextlib
import html
import math
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from labelwatch.models.agreement import Coincidence
from labelwatch.models.attribution import OTHERS, DisagreementAttribution
from labelwatch.models.confusion import ConfusedPair, ConfusionCounts
from labelwatch.query import Via, WorkerUnreachable, query_worker, worker_url
from labelwatch.replay import (
    DEFAULT_PROJECT,
    ReplayInputError,
    is_event_file,
    ordered,
    read_events,
    read_labels,
)
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import (
    ClickHouseWriter,
    coincidence_of,
    connect,
    database_name,
    sink_rows,
)
from labelwatch.sinks.migrations import migrate
from labelwatch.sinks.query import QueryError, QueryResult, run_query

__all__ = [
    "FORMATS",
    "QueryFn",
    "Report",
    "Window",
    "gather",
    "live_query",
    "live_report",
    "load_label_events",
    "parse_when",
    "render_html",
    "render_markdown",
    "replay_into_store",
    "replay_report",
    "replay_settings",
    "resolve_window",
    "store_query",
    "write_report",
]

QueryFn = Callable[[str, Mapping[str, Any]], QueryResult]
FORMATS = ("md", "html", "both")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Labels of a CSV without times are placed this far apart from this start, in file order.
REPLAY_START = datetime(2026, 1, 1, tzinfo=UTC)
REPLAY_SPACING = timedelta(seconds=1)
REPLAY_TOPIC = "replay"
REPLAY_BATCH = 2_000
TOP = 10

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# --- the window ---------------------------------------------------------------------------
def parse_when(text: str, anchor: datetime) -> datetime:
    """A time from ``7d``, ``24h``, ``90m``, ``2w`` (that long before ``anchor``) or an ISO
    date or time (UTC unless it has an offset).

    >>> anchor = datetime(2026, 3, 8, 12, tzinfo=UTC)
    >>> parse_when("36h", anchor).isoformat(), parse_when("2026-03-01", anchor).isoformat()
    ('2026-03-07T00:00:00+00:00', '2026-03-01T00:00:00+00:00')
    """
    match = _DURATION.match(text)
    if match:
        return anchor - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (7d, 24h, 90m, 2w) nor an ISO date or time"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """The labels a report covers: ``project``, event times from ``since`` to ``until``
    (both included); ``newest`` is the project's newest label in the store (None: none)."""

    project: str
    since: datetime
    until: datetime
    newest: datetime | None
    description: str

    def params(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "since": _sql_time(self.since),
            "until": _sql_time(self.until),
        }


def resolve_window(
    run: QueryFn, project: str, since: str | None = "7d", until: str | None = None
) -> Window:
    """The window of ``--since``/``--until``. Durations count back from the project's newest
    label, not the wall clock, so a report of a replay or of a stream that stopped covers its
    data (as the saved queries of ``labelwatch query`` do)."""
    result = run(
        "SELECT count(), max(ts) FROM {db}.label_events WHERE project = {project:String}",
        {"project": project},
    )
    count, newest_value = result.rows[0] if result.rows else (0, None)
    newest = _utc(newest_value) if count else None
    anchor = newest or datetime.now(UTC)
    end = parse_when(until, anchor) if until else anchor
    start = parse_when(since, end) if since else EPOCH
    if start > end:
        raise ValueError(f"the window starts ({start:%Y-%m-%d %H:%M}) after it ends")
    end_text = "its end" if until else "the project's newest label" if newest else "now"
    if since and _DURATION.match(since):
        how = f"the {since.strip()} up to {end_text}"
    else:
        how = "" if until else f"up to {end_text}"
    return Window(project, start, end, newest, how)


# --- what the report holds ----------------------------------------------------------------
@dataclass
class Header:
    project: str
    window: Window
    source: str
    generated_at: datetime
    labels: int = 0
    items: int = 0
    annotators: int = 0
    first_label: datetime | None = None
    last_label: datetime | None = None
    gold_labels: int = 0
    prelabeled: int = 0
    other_projects: list[str] = field(default_factory=list)


@dataclass
class AgreementSection:
    """Alpha of the units whose latest label fell in the window's hours, per class and per
    hour; ``all_time``: the project's totals."""

    window: Coincidence = field(default_factory=Coincidence)
    all_time: Coincidence = field(default_factory=Coincidence)
    trend: list[tuple[datetime, Coincidence]] = field(default_factory=list)
    shards: int = 0


@dataclass
class ConfusionSection:
    """Counts of (reference, given) per guideline version ("" when not given) and the
    findings' sentences."""

    by_version: dict[str, ConfusionCounts] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    truncated: bool = False

    def top_pairs(self, n: int = 5) -> list[tuple[str, ConfusedPair]]:
        return [(v, p) for v, c in sorted(self.by_version.items()) for p in c.confused_pairs(n)]


@dataclass
class AttributionSection:
    """Who the disagreement comes from: the project's labels by annotator, and (when the
    store has other projects) every project's labels by project."""

    annotators: DisagreementAttribution = field(default_factory=DisagreementAttribution)
    projects: DisagreementAttribution | None = None
    without_reference: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class PrelabelUse:
    """One annotator's use of pre-labels: shown, accepted, wrong ones shown and accepted;
    ``peers_wrong_accepted``: the other annotators' wrong-accept rate, pooled."""

    annotator: str
    shown: int
    accepted: int
    wrong_shown: int
    wrong_accepted: int
    model_agrees: int
    peers_wrong_accepted: float | None

    @property
    def acceptance(self) -> float:
        return self.accepted / self.shown if self.shown else 0.0

    @property
    def wrong_acceptance(self) -> float | None:
        return self.wrong_accepted / self.wrong_shown if self.wrong_shown else None


@dataclass(frozen=True)
class AlertRow:
    kind: str
    severity: str
    subject: str
    opened_at: datetime | None
    updated_at: datetime | None
    state: str
    reason: str


@dataclass
class AssistSection:
    annotators: list[PrelabelUse] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)

    @property
    def shown(self) -> int:
        return sum(a.shown for a in self.annotators)


@dataclass
class AlertsSection:
    """Alerts open now (the store's state, whatever the window), by kind and the newest."""

    by_kind: list[tuple[str, str, int]] = field(default_factory=list)  # kind, severity, n
    newest: list[AlertRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for _, _, n in self.by_kind)


@dataclass(frozen=True)
class ReviewPickRow:
    item_id: str
    priority: float
    reason: str
    offered_at: datetime


@dataclass
class ReviewSection:
    """Picks offered in the window: counts by kind, the top priority picks, and what the
    random picks stand for (the sum of their 1 / inclusion probability)."""

    by_kind: dict[str, int] = field(default_factory=dict)
    top: list[ReviewPickRow] = field(default_factory=list)
    random_represents: float = 0.0
    newest_window: datetime | None = None


@dataclass
class Report:
    header: Header
    agreement: AgreementSection
    confusion: ConfusionSection
    attribution: AttributionSection
    assist: AssistSection
    alerts: AlertsSection
    review: ReviewSection


# --- gathering ----------------------------------------------------------------------------
# Each label with its reference: gold, else the item's newest consensus.
_WITH_REFERENCE = """
    SELECT l.annotator_id AS annotator_id, l.label AS label, l.model_label AS model_label,
           ifNull(l.guideline_version, '') AS guideline_version,
           ifNull(l.gold_label, c.consensus_label) AS reference
    FROM {db}.label_events AS l FINAL
    LEFT JOIN (
        SELECT item_id, consensus_label FROM {db}.item_consensus_latest
        WHERE project = {project:String}
    ) AS c ON c.item_id = l.item_id
    WHERE l.project = {project:String} AND l.ts >= {since:DateTime64(3, 'UTC')}
      AND l.ts <= {until:DateTime64(3, 'UTC')}
"""


def gather(run: QueryFn, window: Window, source: str) -> Report:
    """Every section of the report of ``window``, from ``run`` (see the module docstring)."""
    params = window.params()
    return Report(
        header=_header(run, window, source, params),
        agreement=_agreement(run, params),
        confusion=_confusion(run, params),
        attribution=_attribution(run, params),
        assist=_assist(run, params),
        alerts=_alerts(run, params),
        review=_review(run, params),
    )


def _header(run: QueryFn, window: Window, source: str, params: dict[str, Any]) -> Header:
    header = Header(window.project, window, source, datetime.now(UTC))
    row = run(
        "SELECT count(), uniqExact(item_id), uniqExact(annotator_id), min(ts), max(ts), "
        "countIf(gold_label IS NOT NULL), countIf(model_label IS NOT NULL) "
        "FROM {db}.label_events FINAL WHERE project = {project:String} "
        "AND ts >= {since:DateTime64(3, 'UTC')} AND ts <= {until:DateTime64(3, 'UTC')}",
        params,
    ).rows[0]
    header.labels, header.items, header.annotators = int(row[0]), int(row[1]), int(row[2])
    if header.labels:
        header.first_label, header.last_label = _utc(row[3]), _utc(row[4])
    header.gold_labels, header.prelabeled = int(row[5]), int(row[6])
    others = run(
        "SELECT DISTINCT project FROM {db}.label_events WHERE project != {project:String} "
        "ORDER BY project LIMIT 50",
        params,
    )
    header.other_projects = [str(r[0]) for r in others.rows]
    return header


def _agreement(run: QueryFn, params: dict[str, Any]) -> AgreementSection:
    result = run(
        """
        SELECT window_start, shard, argMax(n_units, ts), argMax(coincidence, ts)
        FROM {db}.agreement  -- the tracker's trend windows are one hour wide
        WHERE project = {project:String}
          AND (window_start = toDateTime64(0, 3, 'UTC')
               OR (window_start > {since:DateTime64(3, 'UTC')} - INTERVAL 1 HOUR
                   AND window_start <= {until:DateTime64(3, 'UTC')}))
        GROUP BY window_start, shard
        ORDER BY window_start, shard
        """,
        params,
    )
    section = AgreementSection()
    hours: dict[datetime, Coincidence] = {}
    shards = set()
    for start_value, shard, n_units, cells in result.rows:
        counts = coincidence_of(int(n_units), str(cells))
        start = _utc(start_value)
        shards.add(shard)
        if start == EPOCH:
            section.all_time = section.all_time + counts
        else:
            hours[start] = hours.get(start, Coincidence()) + counts
    section.trend = sorted(hours.items())
    section.window = sum((c for _, c in section.trend), Coincidence())
    section.shards = len(shards)
    return section


def _confusion(run: QueryFn, params: dict[str, Any]) -> ConfusionSection:
    result = run(
        f"""
        SELECT guideline_version, reference, label, count() AS n
        FROM ({_WITH_REFERENCE})
        WHERE reference IS NOT NULL
        GROUP BY guideline_version, reference, label
        ORDER BY n DESC
        """,  # noqa: S608 - constant SQL; values are bound parameters
        params,
    )
    counts: dict[str, dict[tuple[str, str], int]] = {}
    for version, reference, given, n in result.rows:
        counts.setdefault(str(version), {})[(str(reference), str(given))] = int(n)
    findings = run(
        "SELECT sentence FROM {db}.confusion_findings FINAL "
        "WHERE project = {project:String} AND ts >= {since:DateTime64(3, 'UTC')} "
        "AND ts <= {until:DateTime64(3, 'UTC')} ORDER BY ts, finding_id",
        params,
    )
    return ConfusionSection(
        by_version={v: ConfusionCounts(c) for v, c in counts.items()},
        findings=[str(r[0]) for r in findings.rows],
        truncated=result.truncated,
    )


def _attribution(run: QueryFn, params: dict[str, Any]) -> AttributionSection:
    result = run(
        f"""
        SELECT annotator_id, reference, label, count() AS n
        FROM ({_WITH_REFERENCE})
        GROUP BY annotator_id, reference, label
        ORDER BY n DESC
        """,  # noqa: S608 - constant SQL; values are bound parameters
        params,
    )
    section = AttributionSection(truncated=result.truncated)
    project = params["project"]
    for annotator, reference, label, n in result.rows:
        if reference is None:
            section.without_reference += int(n)
            continue
        x = {"annotator": annotator, "label": label, "reference": reference, "project": project}
        section.annotators.update_many(x for _ in range(int(n)))
    # Against the store's other projects in the same window: which project carries it.
    per_project = run(
        """
        SELECT l.project, ifNull(l.gold_label, c.consensus_label) AS reference, l.label,
               count()
        FROM {db}.label_events AS l FINAL
        LEFT JOIN (SELECT project, item_id, consensus_label FROM {db}.item_consensus_latest)
            AS c ON c.project = l.project AND c.item_id = l.item_id
        WHERE l.ts >= {since:DateTime64(3, 'UTC')} AND l.ts <= {until:DateTime64(3, 'UTC')}
          AND reference IS NOT NULL
        GROUP BY l.project, reference, l.label
        """,
        params,
    )
    if len({r[0] for r in per_project.rows}) > 1:
        projects = DisagreementAttribution()
        for name, reference, label, n in per_project.rows:
            x = {"annotator": name, "label": label, "reference": reference, "project": name}
            projects.update_many(x for _ in range(int(n)))
        section.projects = projects
    return section


def _assist(run: QueryFn, params: dict[str, Any]) -> AssistSection:
    result = run(
        f"""
        SELECT annotator_id,
               count() AS shown,
               countIf(label = model_label) AS accepted,
               countIf(reference IS NOT NULL AND model_label != reference) AS wrong_shown,
               countIf(reference IS NOT NULL AND model_label != reference
                       AND label = model_label) AS wrong_accepted,
               countIf(model_label = reference) AS model_agrees
        FROM ({_WITH_REFERENCE})
        WHERE model_label IS NOT NULL
        GROUP BY annotator_id
        ORDER BY annotator_id
        """,  # noqa: S608 - constant SQL; values are bound parameters
        params,
    )
    counts = {str(r[0]): [int(v) for v in r[1:6]] for r in result.rows}
    all_wrong = sum(c[2] for c in counts.values())
    all_accepted = sum(c[3] for c in counts.values())
    section = AssistSection()
    for annotator, (shown, accepted, wrong_shown, wrong_accepted, agrees) in counts.items():
        peers_shown = all_wrong - wrong_shown
        peers = (all_accepted - wrong_accepted) / peers_shown if peers_shown else None
        section.annotators.append(
            PrelabelUse(annotator, shown, accepted, wrong_shown, wrong_accepted, agrees, peers)
        )
    section.annotators.sort(
        key=lambda a: (-(a.wrong_acceptance or 0.0), -a.acceptance, a.annotator)
    )
    alerts = run(
        """
        SELECT kind, argMax(severity, (ts, offset)), subject, minIf(ts, state = 'opened') AS
               opened_at, max(ts) AS updated_at, argMax(state, (ts, offset)),
               argMax(reason, (ts, offset))
        FROM {db}.alerts FINAL
        WHERE project = {project:String} AND kind IN ('automation_bias', 'model_drift')
        GROUP BY alert_id, kind, subject
        HAVING opened_at <= {until:DateTime64(3, 'UTC')}
           AND updated_at >= {since:DateTime64(3, 'UTC')}
        ORDER BY opened_at, subject
        """,
        params,
    )
    section.alerts = [_alert_row(r) for r in alerts.rows]
    return section


def _alert_row(r: Sequence[Any]) -> AlertRow:
    kind, severity, subject, opened, updated, state, reason = r
    return AlertRow(
        str(kind),
        str(severity),
        str(subject) or "(project)",
        None if opened is None or _utc(opened) == EPOCH else _utc(opened),
        None if updated is None else _utc(updated),
        str(state),
        str(reason),
    )


def _alerts(run: QueryFn, params: dict[str, Any]) -> AlertsSection:
    by_kind = run(
        "SELECT kind, severity, count() FROM {db}.open_alerts WHERE project = {project:String} "
        "GROUP BY kind, severity "
        "ORDER BY multiIf(severity = 'critical', 0, severity = 'warning', 1, 2), "
        "count() DESC, kind",
        params,
    )
    # The open_alerts view names the annotator; project-wide alerts (the model's, privacy
    # rates) have none, so their subject comes from the alerts table.
    newest = run(
        """
        SELECT o.kind, o.severity, if(o.annotator_id = '', s.subject, o.annotator_id),
               o.opened_at, o.updated_at, 'opened', o.reason
        FROM {db}.open_alerts AS o
        LEFT JOIN (
            SELECT alert_id, any(subject) AS subject FROM {db}.alerts
            WHERE project = {project:String} GROUP BY alert_id
        ) AS s ON s.alert_id = o.alert_id
        WHERE o.project = {project:String}
        ORDER BY multiIf(o.severity = 'critical', 0, o.severity = 'warning', 1, 2),
                 o.opened_at DESC
        LIMIT 20
        """,
        params,
    )
    return AlertsSection(
        by_kind=[(str(k), str(s), int(n)) for k, s, n in by_kind.rows],
        newest=[_alert_row(r) for r in newest.rows],
    )


def _review(run: QueryFn, params: dict[str, Any]) -> ReviewSection:
    kinds = run(
        "SELECT kind, count(), sumIf(1 / inclusion_probability, inclusion_probability > 0), "
        "max(window_start) FROM {db}.review_queue FINAL WHERE project = {project:String} "
        "AND offered_at >= {since:DateTime64(3, 'UTC')} "
        "AND offered_at <= {until:DateTime64(3, 'UTC')} GROUP BY kind",
        params,
    )
    section = ReviewSection()
    for kind, n, represents, newest in kinds.rows:
        section.by_kind[str(kind)] = int(n)
        if kind == "random":
            section.random_represents = float(represents or 0.0)
        start = _utc(newest)
        if section.newest_window is None or start > section.newest_window:
            section.newest_window = start
    top = run(
        "SELECT item_id, priority, reason, offered_at FROM {db}.review_queue FINAL "
        "WHERE project = {project:String} AND offered_at >= {since:DateTime64(3, 'UTC')} "
        "AND offered_at <= {until:DateTime64(3, 'UTC')} AND kind = 'priority' "
        "ORDER BY priority DESC, item_id LIMIT {top:UInt32}",
        {**params, "top": TOP},
    )
    section.top = [ReviewPickRow(str(i), float(p), str(r), _utc(t)) for i, p, r, t in top.rows]
    return section


# --- rendering: one list of blocks, two formats ------------------------------------------
@dataclass(frozen=True)
class _Plot:
    name: str
    title: str
    svg: Callable[[bool], str]  # standalone -> SVG text


Block = tuple[str, Any]  # ("h1" | "h2" | "p" | "ul" | "table" | "plot", content)


def _blocks(report: Report) -> list[Block]:
    h = report.header
    blocks: list[Block] = [("h1", f"Labeling quality report: project {h.project}")]
    blocks += _header_blocks(h)
    blocks += _agreement_blocks(report.agreement)
    blocks += _confusion_blocks(report.confusion)
    blocks += _attribution_blocks(report.attribution, h.project)
    blocks += _assist_blocks(report.assist, h.labels)
    blocks += _alerts_blocks(report.alerts, h.project)
    blocks += _review_blocks(report.review)
    return blocks


def _header_blocks(h: Header) -> list[Block]:
    w = h.window
    span = f"{_time(w.since)} to {_time(w.until)} UTC"
    items = [
        f"**Window**: {span}" + (f" ({w.description})" if w.description else ""),
        f"**Data source**: {h.source}",
        f"**Generated at**: {_time(h.generated_at)} UTC",
    ]
    if h.labels:
        items.append(
            f"**Labels in the window**: {h.labels:,} on {h.items:,} items by {h.annotators:,} "
            f"annotators ({h.gold_labels:,} on gold items, {h.prelabeled:,} with a pre-label), "
            f"from {_time(h.first_label)} to {_time(h.last_label)}"
        )
    elif w.newest is None:
        known = ", ".join(h.other_projects) or "none"
        items.append(f"**No labels for project {h.project} in the store** (projects: {known})")
    else:
        items.append(f"**No labels in this window**; the newest is from {_time(w.newest)} UTC")
    return [("ul", items)]


def _agreement_blocks(a: AgreementSection) -> list[Block]:
    blocks: list[Block] = [("h2", "Agreement")]
    alpha = a.window.alpha()
    if alpha is None:
        blocks.append(
            ("p", "No items with two or more labels in this window: no agreement to measure.")
        )
        return blocks
    overall = a.all_time.alpha()
    text = (
        f"Krippendorff's alpha (nominal) is **{alpha:.3f}** over the {a.window.n_units:,} items "
        f"with two or more labels whose latest label falls in the window's hours "
        f"({a.window.n_values:,} labels)"
    )
    if overall is not None:
        text += f"; {overall:.3f} over all the project's items ({a.all_time.n_units:,})"
    blocks.append(("p", text + f". {_alpha_reading(alpha)}"))
    per_class = a.window.class_alphas()
    marginals = a.window.marginals()
    rows = [
        [c, _num(v), f"{marginals.get(c, 0):,}"]
        for c, v in sorted(per_class.items(), key=lambda kv: (_key_low(kv[1]), kv[0]))
    ]
    blocks.append(("p", "Per class (the class against all others), lowest first:"))
    blocks.append(("table", (["class", "alpha", "paired labels"], rows)))
    points = [(start, c.alpha(), c.n_units) for start, c in a.trend]
    hours = [(start, v, n) for start, v, n in points if v is not None]
    if len(hours) > 1:
        blocks.append(("plot", _Plot("alpha_trend", "Alpha per hour", _trend_svg(points))))
        start, lowest, n = min(hours, key=lambda p: p[1])
        blocks.append(("p", f"Lowest hour: {_time(start)} UTC, alpha {lowest:.3f} ({n:,} items)."))
    elif len(points) > 1:
        blocks.append(("p", "Only one hour of the window has items with two or more labels."))
    return blocks


def _alpha_reading(alpha: float) -> str:
    if alpha >= 0.8:
        return "Krippendorff counts 0.8 or more as reliable."
    if alpha >= 0.667:
        return "Between 0.667 and 0.8: Krippendorff's threshold for tentative conclusions only."
    return "Below 0.667, the level under which Krippendorff advises not to rely on the labels."


def _confusion_blocks(c: ConfusionSection) -> list[Block]:
    blocks: list[Block] = [("h2", "Confusion")]
    pairs = c.top_pairs()
    if not pairs:
        blocks.append(("p", "No labels with a reference (gold or consensus) in this window."))
    else:
        blocks.append(
            (
                "p",
                "Most frequent confusions per guideline version: the reference (gold, else the "
                "item's consensus) read as another class.",
            )
        )
        rows = [
            [
                v or "(none)",
                f"{p.reference} → {p.given}",
                f"{p.count:,} of {p.support:,}",
                _pct(p.rate),
                _pct(p.reverse_rate),
            ]
            for v, p in pairs
        ]
        headers = ["guideline", "reference → given", "labels", "rate", "reverse rate"]
        blocks.append(("table", (headers, rows)))
        top = sorted(sorted(pairs, key=lambda vp: -vp[1].count)[:TOP], key=lambda vp: -vp[1].rate)
        versions = {v for v, _ in pairs}
        bars = [
            ((f"{v}: " if len(versions) > 1 else "") + f"{p.reference} → {p.given}", p.rate)
            for v, p in top
        ]
        blocks.append(
            ("plot", _Plot("confused_pairs", "Top confused pairs (rate)", _bars_svg(bars)))
        )
    if c.truncated:
        blocks.append(("p", "(The counts were cut at the query row limit.)"))
    if c.findings:
        blocks.append(("p", "Changes in the confusion structure found in this window:"))
        blocks.append(("ul", c.findings))
    else:
        blocks.append(("p", "No change in the confusion structure was found in this window."))
    return blocks


def _attribution_blocks(a: AttributionSection, project: str) -> list[Block]:
    blocks: list[Block] = [("h2", "Disagreement attribution")]
    model = a.annotators
    if not model.n_labels:
        blocks.append(("p", "No labels with a reference (gold or consensus) in this window."))
        return blocks
    blocks.append(
        (
            "p",
            f"A label disagrees when it differs from its reference (gold, else the item's "
            f"consensus): {model.n_disagreements:,} of {model.n_labels:,} labels"
            + (
                f"; {a.without_reference:,} labels without a reference are left out."
                if a.without_reference
                else "."
            ),
        )
    )
    blocks.append(("ul", model.report(top=3, scope=f"in project {project} in this window")))
    if a.projects is not None:
        mine = next((s for s in a.projects.by_project() if s.key == project), None)
        if mine is not None:
            n = len([s for s in a.projects.by_project() if s.key != OTHERS])
            blocks.append(
                (
                    "p",
                    f"Across the store's {n} projects in the same window, project {project} "
                    f"carries {mine.share:.0%} of the disagreement with {mine.label_share:.0%} "
                    f"of the labels ({mine.rate:.0%} of its labels disagree).",
                )
            )
    shares = [s for s in model.by_annotator() if s.labels and s.disagreements][:TOP]
    if shares:
        rows = [
            [
                str(s.key),
                f"{s.labels:,}",
                f"{s.disagreements:,}",
                _pct(s.rate),
                _pct(s.share),
                _pct(s.label_share),
                f"{s.excess:+.1f}" if s.excess is not None else "",
            ]
            for s in shares
        ]
        headers = ["annotator", "labels", "disagree", "rate", "share", "label share", "excess"]
        blocks.append(("table", (headers, rows)))
        bars = [(str(s.key), s.share, s.label_share) for s in shares]
        blocks.append(
            (
                "plot",
                _Plot(
                    "disagreement_by_annotator",
                    "Share of the disagreement (and of the labels) by annotator",
                    _bars_svg(bars, ("disagreement", "labels")),
                ),
            )
        )
    if a.truncated:
        blocks.append(("p", "(The counts were cut at the query row limit.)"))
    return blocks


def _assist_blocks(s: AssistSection, labels: int) -> list[Block]:
    blocks: list[Block] = [("h2", "ML-assisted labeling")]
    if not s.annotators:
        blocks.append(("p", "No pre-labels in this window."))
    else:
        shown = s.shown
        accepted = sum(a.accepted for a in s.annotators)
        wrong = sum(a.wrong_shown for a in s.annotators)
        wrong_accepted = sum(a.wrong_accepted for a in s.annotators)
        agrees = sum(a.model_agrees for a in s.annotators)
        judged = agrees + wrong
        text = (
            f"Pre-labels were shown on {shown:,} labels"
            + (f" ({shown / labels:.0%} of the window's)" if labels else "")
            + f"; annotators accepted {accepted / shown:.0%} of them."
        )
        if judged:
            text += (
                f" The pre-label matched the reference on {agrees / judged:.0%} of those with "
                f"one; of the {wrong:,} wrong pre-labels, {_pct(_ratio(wrong_accepted, wrong))} "
                "were accepted."
            )
        blocks.append(("p", text))
        rows = [
            [
                a.annotator,
                f"{a.shown:,}",
                _pct(a.acceptance),
                f"{a.wrong_shown:,}",
                _pct(a.wrong_acceptance),
                _pct(a.peers_wrong_accepted),
            ]
            for a in s.annotators[: 2 * TOP]
        ]
        headers = ["annotator", "shown", "accepted", "wrong shown", "wrong accepted", "peers"]
        blocks.append(
            (
                "p",
                "Per annotator, most wrong pre-labels accepted first (peers: the other "
                "annotators' rate of accepting wrong pre-labels):",
            )
        )
        blocks.append(("table", (headers, rows)))
        bars = [(a.annotator, a.acceptance, a.wrong_acceptance or 0.0) for a in s.annotators[:15]]
        blocks.append(
            (
                "plot",
                _Plot(
                    "prelabel_acceptance",
                    "Pre-label acceptance per annotator",
                    _bars_svg(bars, ("accepted", "wrong accepted")),
                ),
            )
        )
    bias = [a for a in s.alerts if a.kind == "automation_bias"]
    drift = [a for a in s.alerts if a.kind == "model_drift"]
    if bias:
        blocks.append(("p", f"Automation bias alerts ({len(bias)}):"))
        blocks.append(("ul", [_alert_item(a) for a in bias]))
    else:
        blocks.append(("p", "No automation bias alert in this window."))
    if drift:
        blocks.append(("p", f"Model drift alerts ({len(drift)}):"))
        blocks.append(("ul", [_alert_item(a) for a in drift]))
    else:
        blocks.append(("p", "No model drift alert in this window."))
    return blocks


def _alert_item(a: AlertRow) -> str:
    state = "still open" if a.state != "resolved" else f"resolved {_time(a.updated_at)}"
    opened = f"opened {_time(a.opened_at)}" if a.opened_at else "opened before the window"
    return f"**{a.subject}**: {a.reason} ({opened}, {state})"


def _alerts_blocks(s: AlertsSection, project: str) -> list[Block]:
    blocks: list[Block] = [("h2", "Open alerts")]
    if not s.total:
        blocks.append(("p", f"No open alerts for project {project}."))
        return blocks
    counts = ", ".join(f"{n} {kind} ({severity})" for kind, severity, n in s.by_kind)
    blocks.append(("p", f"{s.total:,} alerts are open now (whatever the window): {counts}."))
    rows = [[_time(a.opened_at), a.kind, a.severity, a.subject, a.reason] for a in s.newest]
    title = "Most severe, newest first:" if s.total > len(s.newest) else "All of them:"
    blocks.append(("p", title))
    blocks.append(("table", (["opened", "kind", "severity", "subject", "reason"], rows)))
    return blocks


def _review_blocks(s: ReviewSection) -> list[Block]:
    blocks: list[Block] = [("h2", "Review queue")]
    total = sum(s.by_kind.values())
    if not total:
        blocks.append(("p", "No review picks in this window."))
        return blocks
    priority, random = s.by_kind.get("priority", 0), s.by_kind.get("random", 0)
    text = f"{total:,} items were picked for expert review: {priority:,} by priority"
    text += f", {random:,} at random for audits"
    if random:
        text += (
            f" (they stand for about {s.random_represents:,.0f} offered items: weigh each by "
            "1 / its inclusion probability for unbiased error rates)"
        )
    if s.newest_window is not None:
        text += f". Newest review window: {_time(s.newest_window)} UTC (a window's picks are "
        text += "made when it closes)"
    blocks.append(("p", text + "."))
    if s.top:
        rows = [[r.item_id, f"{r.priority:.3f}", r.reason, _time(r.offered_at)] for r in s.top]
        blocks.append(("p", "Highest priorities:"))
        blocks.append(("table", (["item", "priority", "reason", "offered"], rows)))
    return blocks


def render_markdown(report: Report) -> str:
    """The report as Markdown; plots are ``![title](name.svg)`` (see :func:`write_report`)."""
    out: list[str] = []
    for kind, content in _blocks(report):
        if kind == "h1":
            out.append(f"# {content}")
        elif kind == "h2":
            out.append(f"## {content}")
        elif kind == "p":
            out.append(str(content))
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in content))
        elif kind == "table":
            headers, rows = content
            lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "plot":
            out.append(f"![{content.title}]({content.name}.svg)")
    return "\n\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d2330; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
       border-bottom: 1px solid #d5d9e0; }
table { border-collapse: collapse; margin: .5rem 0; font-size: 13px; }
th, td { border: 1px solid #d5d9e0; padding: .2rem .5rem; text-align: left; }
th { background: #f2f4f7; } td { white-space: nowrap; }
td:last-child { white-space: normal; } figure { margin: .5rem 0; }
figcaption { font-size: 13px; color: #555; }
"""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (plots inline, nothing fetched)."""
    out = []
    for kind, content in _blocks(report):
        if kind in ("h1", "h2", "p"):
            out.append(f"<{kind}>{_inline(str(content))}</{kind}>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in content) + "</ul>")
        elif kind == "table":
            headers, rows = content
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                for row in rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "plot":
            out.append(
                f"<figure>{content.svg(False)}<figcaption>{html.escape(content.title)}"
                "</figcaption></figure>"
            )
    title = html.escape(f"labelwatch report: {report.header.project}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(out)
        + "\n</body></html>\n"
    )


def _inline(text: str) -> str:
    """Escaped text with Markdown's **bold** as <strong>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def plots(report: Report) -> dict[str, str]:
    """The report's plots as standalone SVG documents, by file stem."""
    return {c.name: c.svg(True) for kind, c in _blocks(report) if kind == "plot"}


def write_report(report: Report, out: Path, fmt: str = "both") -> list[Path]:
    """Write ``report.md`` with its ``.svg`` plots and/or ``report.html`` into ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if fmt in ("md", "both"):
        path = out / "report.md"
        path.write_text(render_markdown(report), encoding="utf-8")
        written.append(path)
        for name, svg in plots(report).items():
            (out / f"{name}.svg").write_text(svg, encoding="utf-8")
            written.append(out / f"{name}.svg")
    if fmt in ("html", "both"):
        path = out / "report.html"
        path.write_text(render_html(report), encoding="utf-8")
        written.append(path)
    return written


# --- SVG plots ----------------------------------------------------------------------------
_COLORS = ("#3b6fb6", "#e0a030")
_SVG_NS = ' xmlns="http://www.w3.org/2000/svg"'


def _svg(width: int, height: int, body: list[str], standalone: bool) -> str:
    ns = _SVG_NS if standalone else ""
    return (
        f'<svg{ns} width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="sans-serif" font-size="11" role="img">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{html.escape(text)}</text>'


def _bars_svg(rows: Sequence[tuple[Any, ...]], series: Sequence[str] = ()) -> Callable[[bool], str]:
    """Horizontal bars, one group per row ``(label, value, [value2])``: shares or rates,
    printed as percentages."""

    def draw(standalone: bool) -> str:
        n_series = max(len(r) - 1 for r in rows)
        # Scaled to the largest value (the numbers are printed beside the bars).
        scale = max((float(v) for r in rows for v in r[1:]), default=0.0) or 1.0
        label_w, bar_w, bar_h = 170, 320, 12
        group_h = n_series * bar_h + 8
        legend_h = 18 if series else 0
        height = legend_h + len(rows) * group_h + 6
        body = []
        for i, name in enumerate(series):
            x = label_w + i * 130
            body.append(f'<rect x="{x}" y="3" width="10" height="10" fill="{_COLORS[i]}"/>')
            body.append(_text(x + 14, 12, name))
        for g, (label, *values) in enumerate(rows):
            top = legend_h + g * group_h
            body.append(_text(label_w - 6, top + n_series * bar_h / 2 + 4, str(label)[:28], "end"))
            for k, value in enumerate(values):
                y = top + k * bar_h
                width = max(0.0, float(value) / scale) * bar_w
                body.append(
                    f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{bar_h - 2}" '
                    f'fill="{_COLORS[k % 2]}"/>'
                )
                body.append(_text(label_w + width + 4, y + bar_h - 3, f"{float(value):.0%}"))
        return _svg(label_w + bar_w + 50, height, body, standalone)

    return draw


def _trend_svg(points: Sequence[tuple[datetime, float | None, int]]) -> Callable[[bool], str]:
    """Alpha per hour as a line (gaps where an hour has no alpha), y from min(0, lowest)."""

    def draw(standalone: bool) -> str:
        width, height, left, right, top, bottom = 560, 200, 44, 12, 10, 34
        values = [v for _, v, _ in points if v is not None]
        low = min(0.0, math.floor(min(values) * 10) / 10) if values else 0.0
        plot_w, plot_h = width - left - right, height - top - bottom

        def x(i: int) -> float:
            return left + (i / max(len(points) - 1, 1)) * plot_w

        def y(v: float) -> float:
            return top + (1.0 - (v - low) / (1.0 - low)) * plot_h

        body = [
            f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
            'stroke="#888"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        ]
        for tick in (low, (low + 1.0) / 2, 1.0):
            body.append(
                f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" '
                'stroke="#eee"/>'
            )
            body.append(_text(left - 4, y(tick) + 4, f"{tick:.2f}", "end"))
        segment: list[str] = []
        for i, (_, v, _) in enumerate(points):
            if v is None:
                if len(segment) > 1:
                    body.append(_polyline(segment))
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            body.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{_COLORS[0]}"/>')
        if len(segment) > 1:
            body.append(_polyline(segment))
        last = len(points) - 1
        for i in sorted({0, last // 2, last}):
            anchor = "start" if i == 0 else "end" if i == last else "middle"
            label = f"{points[i][0]:%m-%d %H:%M}"
            body.append(_text(x(i), height - bottom + 16, label, anchor))
        body.append(_text(left + plot_w / 2, height - 4, "hour (UTC)", "middle"))
        return _svg(width, height, body, standalone)

    return draw


def _polyline(points: list[str]) -> str:
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{_COLORS[0]}" '
        'stroke-width="1.5"/>'
    )


# --- replay: the worker's model path into a temporary store -------------------------------
@dataclass(frozen=True)
class ReplayedFile:
    """Label events read from a replay file, and how they were read."""

    events: list[LabelEvent]
    description: str


def load_label_events(
    path: Path, project: str, shuffle: int | None = None, max_line_bytes: int = 1_048_576
) -> ReplayedFile:
    """Label events of a JSONL file of events (privacy signals are skipped) or of a labels
    CSV (``item,annotator,label[,gold,duration_ms,ts,project]``, see
    :mod:`labelwatch.replay`). A CSV without a ``project`` column holds ``project``'s labels;
    a CSV without times gets them in file (or shuffled) order, one second apart from
    2026-01-01. ``shuffle`` (CSV only) is a seeded shuffle of the rows."""
    if is_event_file(path):
        if shuffle is not None:
            raise ReplayInputError("--shuffle applies to a labels CSV only (events carry times)")
        mixed = read_events(path, max_line_bytes=max_line_bytes)
        events = [e for _, e in mixed.label_events]
        skipped = f", {len(mixed.signals):,} privacy signals skipped" if mixed.signals else ""
        return ReplayedFile(events, f"{len(events):,} label events in file order{skipped}")
    rows = ordered(read_labels(path), shuffle)
    events = []
    synthetic = 0
    for i, row in enumerate(rows):
        when = REPLAY_START + i * REPLAY_SPACING
        if row.ts is not None:
            when = datetime.fromtimestamp(row.ts, UTC)
        else:
            synthetic += 1
        events.append(
            LabelEvent(
                event_id=f"{path.stem}-{row.line:08d}",
                ts=when,
                project=project if row.project == DEFAULT_PROJECT else row.project,
                item_id=row.item,
                annotator_id=row.annotator,
                label=row.label,
                gold_label=row.gold,
                duration_ms=row.duration_ms,
            )
        )
    order = "file order" if shuffle is None else f"shuffle seed {shuffle}"
    times = (
        f"; no times in the file: placed {REPLAY_SPACING.total_seconds():g} s apart from "
        f"{_time(REPLAY_START)} UTC"
        if synthetic
        else ""
    )
    return ReplayedFile(events, f"{len(events):,} labels in {order}{times}")


def replay_into_store(settings: Settings, events: Sequence[LabelEvent]) -> None:
    """Run ``events`` through the worker's model path (the tracker as the worker builds it,
    one shard, no Kafka) and write what it produces with the worker's sink code into the
    store of ``settings``, migrated first.

    At the end, the agreement counts are written once more, as the worker would at its next
    reliability tick: otherwise the labels after the last tick would be missing from the
    ``agreement`` table. Review windows still open stay open, as they would live."""
    from labelwatch.streams.app import quality_tracker  # Faust: only for a replay

    database = database_name(settings)
    writer = ClickHouseWriter(connect(settings=settings), database)
    try:
        migrate(writer.client, database)
        tracker = quality_tracker(settings)
        tracker.restore(REPLAY_TOPIC, 0, None)
        pairs = [(e, SourcePosition(REPLAY_TOPIC, 0, i)) for i, e in enumerate(events)]
        for start in range(0, len(pairs), REPLAY_BATCH):
            batch = pairs[start : start + REPLAY_BATCH]
            quality = tracker.apply(batch)
            writer.insert_tables(sink_rows(batch, quality, datetime.now(UTC)))
            tracker.mark_stored(batch)
        final = tracker.flush(REPLAY_TOPIC, 0)
        writer.insert_tables(sink_rows([], final, datetime.now(UTC)))
    finally:
        writer.close()


def store_query(settings: Settings) -> tuple[QueryFn, Callable[[], None]]:
    """A query function on the store of ``settings`` opened in this process (for a replay's
    store, which no worker holds), with the same read-only checks and limits as
    ``labelwatch query``; and the function that closes it."""
    client = connect(settings=settings)
    database = database_name(settings)

    def run(sql: str, params: Mapping[str, Any]) -> QueryResult:
        return run_query(
            client,
            sql.replace("{db}", database),
            params,
            max_rows=settings.query_max_rows,
            timeout_seconds=settings.query_timeout_seconds,
            server=not settings.embedded_store,
        )

    return run, client.close


# --- the two ways in -----------------------------------------------------------------------
def live_report(
    settings: Settings,
    project: str,
    since: str | None = "7d",
    until: str | None = None,
    via: Via = "auto",
) -> Report:
    """The report from the configured store: through the running worker's ``/query``
    endpoint while it holds the embedded store, else directly (``via`` as in
    :func:`labelwatch.query.query`)."""
    database = database_name(settings)
    run, close = live_query(settings, via)
    try:
        window = resolve_window(run, project, since, until)
        return gather(run, window, f"live store {settings.redacted_dsn()}, database {database}")
    finally:
        close()


def live_query(settings: Settings, via: Via = "auto") -> tuple[QueryFn, Callable[[], None]]:
    """The query function of :func:`labelwatch.query.query`, deciding between the worker and
    a direct connection once (a probe), so a report opens the store at most once rather
    than once per query."""
    database = database_name(settings)
    if via == "direct" or (via == "auto" and not settings.embedded_store):
        return store_query(settings)
    try:
        query_worker(settings, "SELECT 1", {})
    except WorkerUnreachable as exc:
        if via == "worker":
            raise QueryError(f"no worker answers at {worker_url(settings)} ({exc})") from exc
        return store_query(settings)

    def run(sql: str, params: Mapping[str, Any]) -> QueryResult:
        return query_worker(settings, sql.replace("{db}", database), params)

    return run, lambda: None


def replay_settings(settings: Settings, directory: Path) -> Settings:
    """``settings`` (the models' configuration kept) with an embedded store in
    ``directory``: a replay never writes into the configured store."""
    return settings.model_copy(
        update={"data_dir": directory, "clickhouse_dsn": None, "clickhouse_database": "replay"}
    )


def replay_report(
    settings: Settings,
    path: Path,
    project: str,
    since: str | None = "7d",
    until: str | None = None,
    shuffle: int | None = None,
    store: Settings | None = None,
) -> Report:
    """The report of a replay of ``path`` (see :func:`load_label_events`): the worker's model
    path writes into a temporary embedded store (or ``store``), the report's SQL reads it."""
    loaded = load_label_events(path, project, shuffle, settings.max_message_bytes)
    with contextlib.ExitStack() as stack:
        if store is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="labelwatch-"))
            store = replay_settings(settings, Path(directory))
        replay_into_store(store, loaded.events)
        run, close = store_query(store)
        try:
            window = resolve_window(run, project, since, until)
            return gather(run, window, f"replay of {path} ({loaded.description})")
        finally:
            close()


# --- small helpers ------------------------------------------------------------------------
def _utc(value: Any) -> datetime:
    """A stored time as aware UTC: a datetime (naive ones are UTC) or ISO text (the worker's
    /query endpoint sends times as text)."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _sql_time(when: datetime) -> str:
    """A query parameter for ``DateTime64(3, 'UTC')`` (ClickHouse does not read offsets)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _time(when: datetime | None) -> str:
    return "-" if when is None else f"{when.astimezone(UTC):%Y-%m-%d %H:%M}"


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if 0.0 < value < 0.01 else f"{value:.0%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _key_low(value: float | None) -> float:
    return math.inf if value is None else value
