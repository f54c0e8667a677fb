"""Population confusion structure: which classes are read as which, and when that changes.

Each label comes with a *reference*: the item's gold answer when known, else its consensus
from the other votes. The reference must not include the label itself, or a first vote would
always confirm itself (``AnswerContext.before`` of the consensus model is such a reference; a
label without one is skipped). Labels are counted per *segment*, a (project, guideline
version) pair where either may be ``None``: ``counts[(i, j)]`` is the number of labels ``j``
given to items of reference ``i``, and ``P(given = j | reference = i)`` is that count over
the labels of reference ``i``.

Change detection. Each confusion cell ``(i, j)`` (reference ``i`` read as ``j != i``) of a
segment is watched by Page's CUSUM against a *baseline* rate ``p0``, in two comparisons:

* ``guideline``: against the project's previous guideline version (the version first seen
  before this one), from the first label of the new version on;
* ``window``: against the segment's own labels before its last ``guard`` labels (a change
  within one guideline version, e.g. half the annotators starting to swap two classes; the
  guard keeps the changed labels out of the baseline while they are being judged).

Every label of reference ``i`` adds, for each ``j`` and each tuned ratio ``r`` in ``ratios``
(one CUSUM each), the log-likelihood ratio of "the rate rose to ``p1 = r * p0``" against "it
is ``p0``": ``ln(p1 / p0)`` if the label is ``j``, ``ln((1 - p1) / (1 - p0))`` otherwise;
``S = max(0, S + llr)``. ``p0`` is the baseline's ``(count + 1) / (support + 2)`` (a confusion
never seen is not taken as impossible; ``p1`` is capped at ``(1 + p0) / 2``), and a baseline
row needs ``min_baseline`` labels before its cells are watched. A cell is a finding when one
of its CUSUMs passes ``h = ln(m * target_arl)`` for the ``m = K (K - 1) * len(ratios)``
CUSUMs of ``K`` classes (Lorden's bound: a stationary cell then raises a false alarm less
than once per ``target_arl`` labels of its reference, the rule of
:mod:`labelwatch.models.drift`), the run since that ``S`` last left zero (the estimated change
point) holds at least ``min_count`` such confusions, and, when annotators are given, those
come from at least ``min_annotators`` distinct annotators, none carrying more than
``max_annotator_share`` of the run's excess confusions (its confusions minus its labels of
``i`` times ``p0``): a rise carried by one annotator is that annotator's drift, the drift
detectors' business, not the population's. The smallest tuned ratio sets the smallest
sustained rise caught, about ``(r - 1) / ln(r)`` times the baseline (1.44x for 2); the
largest makes big changes quick. Only rises are findings (a confusion that became rarer shows
in the rates).

Episodes: one finding per cell and comparison until a reverse CUSUM (the rate is back at the
baseline *of the finding* rather than the smallest ratio times it) crosses the same
threshold; then the cell is watched afresh. So a change that persists is one finding,
although a ``window`` baseline keeps learning and soon holds the changed labels.

Measured with the defaults (synthetic streams as in ``tests/unit/models/test_confusion.py``:
4 classes, 20 annotators, 3 labels per item, the reference from gold or the earlier votes):
half the annotators swapping two classes is found, with the right pair, 140 to 360 labels
after the change, with or without a new guideline version (20 seeds each); no finding on 40
unchanged streams of 20,000 labels and 10 of 100,000, nor on the shared data sets in seeded
shuffles with gold or earlier-vote references. In file order those data sets do give findings:
their rows are grouped by annotator, so who labels (and with it the confusion) changes.

When it fails: the bound assumes independent labels and a known baseline. Labels of one item
share its reference, so a wrong consensus makes several confusions at once, and the baseline
is estimated; ``min_baseline`` and ``min_count`` keep both effects small. A change that also
moves the consensus (most annotators swapping) shows up on whichever side of the pair the
consensus ends on. A change in who labels (a noisy group joining) is a real change of the
population's confusion, and is reported as one.

Memory: per segment ``K^2`` counts, a ring of ``guard`` labels and the CUSUMs of the cells
that are off zero; at most ``max_segments`` segments (the least recently labeled is dropped
beyond that, and with it any comparison against it).

References
----------
Page, E. S. (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
Lorden, G. (1971). Procedures for reacting to a change in distribution. Annals of
Mathematical Statistics 42(6), 1897-1908.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from river import base

__all__ = ["ConfusedPair", "ConfusionCounts", "ConfusionFinding", "ConfusionStructure"]

_STATE_VERSION = 1
Pair = tuple[str, str]
Segment = tuple[str | None, str | None]


def _percent(rate: float) -> str:
    return f"{rate:.1%}" if 0.0 < rate < 0.01 else f"{rate:.0%}"


@dataclass(frozen=True)
class ConfusedPair:
    """Reference ``reference`` read as ``given``: ``count`` of the ``support`` labels of
    items of that reference (``rate``), and the reverse direction's count and rate."""

    reference: str
    given: str
    count: int
    support: int
    rate: float
    reverse_count: int
    reverse_rate: float | None

    @property
    def sentence(self) -> str:
        reverse = (
            f", the reverse in {_percent(self.reverse_rate)}"
            if self.reverse_rate is not None
            else ""
        )
        return (
            f"'{self.reference}' is read as '{self.given}' in {_percent(self.rate)} of cases "
            f"({self.count:,} of {self.support:,}){reverse}"
        )


@dataclass(frozen=True)
class ConfusionCounts:
    """``counts[(reference, given)]``: labels ``given`` for items of ``reference``.
    Values add and subtract with ``+`` and ``-``.

    Examples
    --------
    >>> c = ConfusionCounts({("pos", "pos"): 80, ("pos", "neg"): 20, ("neg", "neg"): 95,
    ...                      ("neg", "pos"): 5})
    >>> c.rate("pos", "neg"), c.n_labels
    (0.2, 200)
    >>> c.confused_pairs(1)[0].sentence
    "'pos' is read as 'neg' in 20% of cases (20 of 100), the reverse in 5%"
    """

    counts: Mapping[Pair, int] = field(default_factory=dict)

    @property
    def n_labels(self) -> int:
        return sum(self.counts.values())

    @property
    def classes(self) -> list[str]:
        """Classes seen as reference or as label, sorted."""
        return sorted({c for pair in self.counts for c in pair})

    def support(self) -> dict[str, int]:
        """Labels per reference class."""
        rows: dict[str, int] = {}
        for (reference, _), n in self.counts.items():
            rows[reference] = rows.get(reference, 0) + n
        return rows

    def rate(self, reference: str, given: str) -> float | None:
        """``P(given | reference)``; ``None`` without labels of that reference."""
        support = self.support().get(reference, 0)
        return self.counts.get((reference, given), 0) / support if support else None

    def rates(self) -> dict[str, dict[str, float]]:
        """``P(given | reference)`` for every reference with labels, over all classes."""
        classes, support = self.classes, self.support()
        return {
            r: {g: self.counts.get((r, g), 0) / n for g in classes}
            for r, n in sorted(support.items())
            if n
        }

    def confused_pairs(self, n: int = 5) -> list[ConfusedPair]:
        """The ``n`` most frequent confusions (off-diagonal cells), most labels first."""
        support = self.support()
        pairs = []
        for (r, g), count in self.counts.items():
            if r == g or count <= 0:
                continue
            reverse = self.counts.get((g, r), 0)
            pairs.append(
                ConfusedPair(
                    r,
                    g,
                    count,
                    support[r],
                    count / support[r],
                    reverse,
                    reverse / support[g] if support.get(g) else None,
                )
            )
        pairs.sort(key=lambda p: (-p.count, -p.rate, p.reference, p.given))
        return pairs[:n]

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        counts = dict(self.counts)
        for pair, n in other.counts.items():
            counts[pair] = counts.get(pair, 0) + n
        return ConfusionCounts(counts)

    def __sub__(self, other: ConfusionCounts) -> ConfusionCounts:
        counts = dict(self.counts)
        for pair, n in other.counts.items():
            counts[pair] = counts.get(pair, 0) - n
        return ConfusionCounts({pair: n for pair, n in counts.items() if n})


@dataclass(frozen=True)
class ConfusionFinding:
    """A sustained rise of the rate at which ``reference`` is read as ``given``.

    ``kind``: ``"guideline"`` (segment ``guideline`` of ``project`` against the previous
    version ``baseline``) or ``"window"`` (the segment's labels since the change point the
    CUSUM estimates against its labels before its guard). ``old_rate = old_count /
    old_support`` over the baseline's labels of that reference; ``new_rate = new_count /
    new_support`` over the same labels in the newer part: the whole version so far, or the
    run since the change point; ``new_labels``: the newer part's labels of all classes;
    ``ratio = new_rate / old_rate`` (``inf`` when the old rate is 0). ``annotators``: distinct
    annotators among the confusions of the CUSUM run, and the largest share of the run's
    excess confusions (over the baseline rate) one of them carries (0 when annotators are not
    given). ``statistic`` crossed ``threshold`` at the model's label ``at_label``."""

    kind: str
    project: str | None
    guideline: str | None
    baseline: str | None
    reference: str
    given: str
    old_rate: float
    new_rate: float
    ratio: float
    old_count: int
    old_support: int
    new_count: int
    new_support: int
    new_labels: int
    annotators: int
    top_annotator_share: float
    statistic: float
    threshold: float
    at_label: int

    @property
    def pair(self) -> Pair:
        """(reference, given): the direction of the confusion."""
        return (self.reference, self.given)

    @property
    def sentence(self) -> str:
        """The finding in one sentence, e.g. "since guideline v3, 'neutral' is read as
        'negative' 2.1x more often (41% vs 19% under v2, 230 'neutral' labels)"."""
        r, g = f"'{self.reference}'", f"'{self.given}'"
        rates = f"{_percent(self.new_rate)} vs {_percent(self.old_rate)}"
        if self.kind == "guideline":
            where = f"in project {self.project}, " if self.project is not None else ""
            when, than = f"since guideline {self.guideline}, ", ""
            rates += f" under {self.baseline}"
        else:
            scope = [f"project {self.project}"] if self.project is not None else []
            if self.guideline is not None:
                scope.append(f"guideline {self.guideline}")
            where = f"in {', '.join(scope)}, " if scope else ""
            when, than = f"over the last {self.new_labels:,} labels ", " than before"
        if self.old_rate == 0.0:
            change = f"is now read as {g}"
        else:
            change = f"is read as {g} {self.ratio:.1f}x more often{than}"
        return f"{where}{when}{r} {change} ({rates}, {self.new_support:,} {r} labels)"


class _Cell:
    """The CUSUMs of one confusion cell in one comparison (one per tuned ratio), each with
    its run since the change point it estimates; while in an episode, the recovery CUSUM
    against the baseline rate of the moment of the finding."""

    __slots__ = (
        "annotators",
        "counts",
        "episode_p0",
        "recovery",
        "starts",
        "statistics",
        "supports",
    )

    def __init__(self, n_ratios: int) -> None:
        self.statistics = [0.0] * n_ratios
        self.starts = [0] * n_ratios  # segment label number where each run began
        self.supports = [0] * n_ratios
        self.counts = [0] * n_ratios
        # per run: annotator -> [labels of the reference, confusions]
        self.annotators: list[dict[str, list[int]]] = [{} for _ in range(n_ratios)]
        self.episode_p0: float | None = None  # set while in an episode
        self.recovery = 0.0

    def dump(self) -> list[Any]:
        return [
            self.statistics,
            self.starts,
            self.supports,
            self.counts,
            [sorted([a, *v] for a, v in names.items()) for names in self.annotators],
            self.episode_p0,
            self.recovery,
        ]

    @classmethod
    def restore(cls, data: list[Any]) -> _Cell:
        cell = cls(len(data[0]))
        cell.statistics = [float(v) for v in data[0]]
        cell.starts, cell.supports, cell.counts = (list(map(int, v)) for v in data[1:4])
        cell.annotators = [{str(a): [int(n), int(c)] for a, n, c in names} for names in data[4]]
        cell.episode_p0 = None if data[5] is None else float(data[5])
        cell.recovery = float(data[6])
        return cell


class _Segment:
    """Counts of one (project, guideline version), its last labels and its CUSUMs."""

    __slots__ = (
        "cells",
        "classes",
        "counts",
        "n",
        "recent",
        "recent_counts",
        "recent_support",
        "support",
    )

    def __init__(self, guard: int) -> None:
        self.counts: dict[Pair, int] = {}
        self.support: dict[str, int] = {}
        self.classes: set[str] = set()
        self.recent: deque[Pair] = deque(maxlen=guard)
        self.recent_counts: dict[Pair, int] = {}
        self.recent_support: dict[str, int] = {}
        self.n = 0
        self.cells: dict[tuple[str, str, str], _Cell] = {}  # (kind, reference, given)

    def add(self, reference: str, given: str) -> None:
        pair = (reference, given)
        self.n += 1
        self.counts[pair] = self.counts.get(pair, 0) + 1
        self.support[reference] = self.support.get(reference, 0) + 1
        self.classes.update(pair)
        if self.recent.maxlen == 0:
            return
        if len(self.recent) == self.recent.maxlen:
            _decrement(self.recent_counts, self.recent[0])
            _decrement(self.recent_support, self.recent[0][0])
        self.recent.append(pair)
        self.recent_counts[pair] = self.recent_counts.get(pair, 0) + 1
        self.recent_support[reference] = self.recent_support.get(reference, 0) + 1


def _top_share(names: Mapping[str, list[int]], p0: float) -> float:
    """The largest share of a run's excess confusions (over the baseline) one annotator
    carries; 0 without annotators."""
    excess = [count - support * p0 for support, count in names.values()]
    return max(excess) / sum(excess) if names and sum(excess) > 0 else 0.0


def _decrement(counts: dict[Any, int], key: Any) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class _Label:
    reference: str
    given: str
    annotator: str | None


@dataclass(frozen=True, slots=True)
class _Comparison:
    """A baseline for one segment: ``counts - excluded`` (the excluded part is the window
    comparison's guard), with ``support`` labels of the label's reference."""

    kind: str
    segment: Segment
    baseline: str | None
    counts: Mapping[Pair, int]
    excluded: Mapping[Pair, int]
    support: int

    def count(self, reference: str, given: str) -> int:
        pair = (reference, given)
        return self.counts.get(pair, 0) - self.excluded.get(pair, 0)


class ConfusionStructure(base.Base):
    """Confusion between classes per (project, guideline version), and findings when a
    confusion becomes more frequent.

    Parameters
    ----------
    max_segments
        (project, guideline version) segments kept; the least recently labeled goes first.
    guard
        A segment's last labels left out of its own baseline (the ``window`` comparison).
    ratios
        The rises of a confusion rate the CUSUMs are tuned to, one CUSUM each: the smallest
        sets the smallest sustained rise caught (about ``(r - 1) / ln(r)`` times the
        baseline: 1.44x for 2), the largest makes big changes quick to find.
    target_arl
        Labels of a reference class between false alarms of one stationary cell.
    min_baseline
        Baseline labels of a reference class before its cells are watched.
    min_count
        Confusions since the change point before a finding is reported.
    min_annotators
        Distinct annotators those confusions must come from (when annotators are given).
    max_annotator_share
        Largest share of the excess confusions (over the baseline) one annotator may carry
        (when annotators are given): a rise carried by one annotator is that annotator's
        drift.

    Examples
    --------
    >>> import textwrap
    >>> model = ConfusionStructure()
    >>> found = []
    >>> for version, swapped in (("v2", 0.1), ("v3", 0.4)):
    ...     for n in range(400):
    ...         reference = ("neutral", "negative")[n % 2]
    ...         wrong = reference == "neutral" and n % 20 < 20 * swapped
    ...         found += model.update({
    ...             "label": "negative" if wrong else reference, "reference": reference,
    ...             "project": "reviews", "guideline_version": version,
    ...             "annotator": f"a{n % 7}"})
    >>> [(f.kind, f.pair, f.baseline, f.new_count, f.new_support) for f in found]
    [('guideline', ('neutral', 'negative'), 'v2', 19, 43)]
    >>> print(textwrap.fill(found[0].sentence, 80))
    in project reviews, since guideline v3, 'neutral' is read as 'negative' 4.4x
    more often (44% vs 10% under v2, 43 'neutral' labels)
    >>> model.counts("reviews", "v3").rate("neutral", "negative")
    0.4
    """

    def __init__(
        self,
        max_segments: int = 256,
        guard: int = 500,
        ratios: tuple[float, ...] = (2.0, 4.0),
        target_arl: float = 1_000_000.0,
        min_baseline: int = 100,
        min_count: int = 10,
        min_annotators: int = 3,
        max_annotator_share: float = 0.5,
    ) -> None:
        self.max_segments = max_segments
        self.guard = guard
        self.ratios = tuple(ratios)
        self.target_arl = target_arl
        self.min_baseline = min_baseline
        self.min_count = min_count
        self.min_annotators = min_annotators
        self.max_annotator_share = max_annotator_share
        self._segments: OrderedDict[Segment, _Segment] = OrderedDict()
        self._versions: dict[str | None, list[str]] = {}  # project -> versions, first seen first
        self.n_labels_ = 0
        self.n_skipped_ = 0

    # --- learning ---------------------------------------------------------------------
    def update(self, x: Mapping[str, Any]) -> list[ConfusionFinding]:
        """Count one label and return the findings it completed (usually none).

        ``x`` has ``label`` and ``reference`` (``None``: no reference yet, the label is
        skipped), and optionally ``project``, ``guideline_version`` and ``annotator``."""
        reference = x.get("reference")
        if reference is None:
            self.n_skipped_ += 1
            return []
        self.n_labels_ += 1
        label = _Label(str(reference), str(x["label"]), _text(x.get("annotator")))
        key: Segment = (_text(x.get("project")), _text(x.get("guideline_version")))
        seg = self._segment(key)
        found: list[ConfusionFinding] = []
        baseline = None if key[1] is None else self.previous_version(key[0], key[1])
        r = label.reference
        if baseline is not None:
            old = self._segments[(key[0], baseline)]
            found += self._watch(
                _Comparison("guideline", key, baseline, old.counts, {}, old.support.get(r, 0)),
                seg,
                label,
                old.classes,
            )
        if seg.n >= self.guard:
            support = seg.support.get(r, 0) - seg.recent_support.get(r, 0)
            window = _Comparison("window", key, None, seg.counts, seg.recent_counts, support)
            found += self._watch(window, seg, label, set())
        seg.add(r, label.given)
        return found

    def update_many(self, xs: Iterable[Mapping[str, Any]]) -> list[ConfusionFinding]:
        """:meth:`update` on each label in order; all the findings."""
        found: list[ConfusionFinding] = []
        for x in xs:
            found += self.update(x)
        return found

    def _segment(self, key: Segment) -> _Segment:
        seg = self._segments.get(key)
        if seg is not None:
            self._segments.move_to_end(key)
            return seg
        seg = self._segments[key] = _Segment(self.guard)
        project, guideline = key
        if guideline is not None:
            self._versions.setdefault(project, []).append(guideline)
        if len(self._segments) > self.max_segments:
            (old_project, old_guideline), _ = self._segments.popitem(last=False)
            if old_guideline is not None:
                versions = self._versions[old_project]
                versions.remove(old_guideline)
                if not versions:
                    del self._versions[old_project]
        return seg

    def previous_version(self, project: str | None, guideline: str) -> str | None:
        """The version of ``project`` first seen just before ``guideline`` (kept segments)."""
        versions = self._versions.get(project, [])
        at = versions.index(guideline) if guideline in versions else 0
        return versions[at - 1] if at > 0 else None

    def threshold(self, n_classes: int) -> float:
        """``h = ln(m * target_arl)`` for the ``m`` CUSUMs of a comparison over ``K``
        classes: ``K (K - 1)`` cells times the tuned ratios."""
        cells = max(n_classes * (n_classes - 1), 1) * len(self.ratios)
        return math.log(cells * self.target_arl)

    def _watch(
        self, comparison: _Comparison, seg: _Segment, label: _Label, old_classes: set[str]
    ) -> list[ConfusionFinding]:
        """Feed one label to the CUSUMs of its reference's row of cells."""
        if comparison.support < self.min_baseline:
            return []
        reference, given = label.reference, label.given
        classes = seg.classes | old_classes | {reference, given}
        h = self.threshold(len(classes))
        found = []
        for other in sorted(classes - {reference}):
            p0 = (comparison.count(reference, other) + 1.0) / (comparison.support + 2.0)
            hit = given == other
            llrs = []
            for ratio in self.ratios:
                p1 = min(ratio * p0, 0.5 * (1.0 + p0))
                llrs.append(math.log(p1 / p0) if hit else math.log((1.0 - p1) / (1.0 - p0)))
            cell_key = (comparison.kind, reference, other)
            cell = seg.cells.get(cell_key)
            if cell is None:
                if max(llrs) <= 0.0:
                    continue  # CUSUMs at zero stay at zero: not stored
                cell = seg.cells[cell_key] = _Cell(len(self.ratios))
            if cell.episode_p0 is not None:
                # Recovery: evidence for the baseline of the finding against its smallest
                # tuned rise, so a change that persists is one episode however the
                # baseline moves after it.
                q0 = cell.episode_p0
                q1 = min(min(self.ratios) * q0, 0.5 * (1.0 + q0))
                llr = math.log(q1 / q0) if hit else math.log((1.0 - q1) / (1.0 - q0))
                cell.recovery = max(0.0, cell.recovery - llr)
                if cell.recovery > h:
                    del seg.cells[cell_key]
                continue
            fired = None
            for i, llr in enumerate(llrs):
                if cell.statistics[i] == 0.0:
                    if llr <= 0.0:
                        continue
                    cell.starts[i], cell.supports[i], cell.counts[i] = seg.n + 1, 0, 0
                    cell.annotators[i] = {}
                cell.statistics[i] = max(0.0, cell.statistics[i] + llr)
                cell.supports[i] += 1
                cell.counts[i] += hit
                if label.annotator is not None:
                    mine = cell.annotators[i].setdefault(label.annotator, [0, 0])
                    mine[0] += 1
                    mine[1] += hit
                if (
                    fired is None
                    and cell.statistics[i] > h
                    and cell.counts[i] >= self.min_count
                    and self._spread(cell.annotators[i], p0)
                ):
                    fired = i
            if fired is not None:
                found.append(self._finding(comparison, seg, cell, fired, label, other, h, p0))
                cell.episode_p0, cell.recovery = p0, 0.0
            elif not any(cell.statistics):
                del seg.cells[cell_key]
        return found

    def _spread(self, names: Mapping[str, list[int]], p0: float) -> bool:
        """Whether a run's confusions come from enough annotators and no annotator carries
        more than ``max_annotator_share`` of its excess over the baseline (true when
        annotators are not given)."""
        if not names:
            return True
        confusing = sum(1 for _, count in names.values() if count)
        excess = [count - support * p0 for support, count in names.values()]
        total = sum(excess)
        return (
            confusing >= self.min_annotators
            and total > 0
            and max(excess) <= self.max_annotator_share * total
        )

    def _finding(
        self,
        comparison: _Comparison,
        seg: _Segment,
        cell: _Cell,
        i: int,
        label: _Label,
        given: str,
        threshold: float,
        p0: float,
    ) -> ConfusionFinding:
        reference = label.reference
        old_count, old_support = comparison.count(reference, given), comparison.support
        if comparison.kind == "guideline":  # the whole version so far, this label included
            new_count = seg.counts.get((reference, given), 0) + (label.given == given)
            new_support, new_labels = seg.support.get(reference, 0) + 1, seg.n + 1
        else:  # the run since the estimated change point
            new_count, new_support = cell.counts[i], cell.supports[i]
            new_labels = seg.n + 2 - cell.starts[i]
        old_rate, new_rate = old_count / old_support, new_count / new_support
        return ConfusionFinding(
            kind=comparison.kind,
            project=comparison.segment[0],
            guideline=comparison.segment[1],
            baseline=comparison.baseline,
            reference=reference,
            given=given,
            old_rate=old_rate,
            new_rate=new_rate,
            ratio=new_rate / old_rate if old_rate else math.inf,
            old_count=old_count,
            old_support=old_support,
            new_count=new_count,
            new_support=new_support,
            new_labels=new_labels,
            annotators=sum(1 for _, count in cell.annotators[i].values() if count),
            top_annotator_share=_top_share(cell.annotators[i], p0),
            statistic=cell.statistics[i],
            threshold=threshold,
            at_label=self.n_labels_,
        )

    # --- reading ----------------------------------------------------------------------
    @property
    def segments(self) -> list[Segment]:
        """(project, guideline version) of the kept segments, least recently labeled first."""
        return list(self._segments)

    def counts(self, project: str | None = None, guideline: str | None = None) -> ConfusionCounts:
        """All the labels of one segment (empty when unknown)."""
        seg = self._segments.get((project, guideline))
        return ConfusionCounts(dict(seg.counts) if seg is not None else {})

    def recent(self, project: str | None = None, guideline: str | None = None) -> ConfusionCounts:
        """The segment's last ``guard`` labels."""
        seg = self._segments.get((project, guideline))
        return ConfusionCounts(dict(seg.recent_counts) if seg is not None else {})

    def project_counts(self, project: str | None) -> ConfusionCounts:
        """The labels of every kept segment of ``project`` (all guideline versions)."""
        total = ConfusionCounts()
        for p, guideline in self._segments:
            if p == project:
                total = total + self.counts(p, guideline)
        return total

    def population(self) -> ConfusionCounts:
        """The labels of every kept segment."""
        total = ConfusionCounts()
        for project, guideline in self._segments:
            total = total + self.counts(project, guideline)
        return total

    # --- state ------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Learned state and parameters as JSON-compatible data."""
        return {
            "v": _STATE_VERSION,
            "params": self._get_params(),
            "n_labels": self.n_labels_,
            "n_skipped": self.n_skipped_,
            "versions": [[p, list(v)] for p, v in self._versions.items()],
            "segments": [
                {
                    "project": project,
                    "guideline": guideline,
                    "n": seg.n,
                    "counts": [[r, g, n] for (r, g), n in sorted(seg.counts.items())],
                    "recent": [list(pair) for pair in seg.recent],
                    "cells": [[*k, *cell.dump()] for k, cell in sorted(seg.cells.items())],
                }
                for (project, guideline), seg in self._segments.items()
            ],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the learned state with one from :meth:`to_state` (parameters kept)."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unknown confusion state version {state.get('v')!r}")
        self.n_labels_ = int(state["n_labels"])
        self.n_skipped_ = int(state["n_skipped"])
        self._versions = {p: list(v) for p, v in state["versions"]}
        self._segments = OrderedDict()
        for raw in state["segments"]:
            seg = _Segment(self.guard)
            seg.n = int(raw["n"])
            seg.counts = {(r, g): int(n) for r, g, n in raw["counts"]}
            seg.support = ConfusionCounts(seg.counts).support()
            seg.classes = {c for pair in seg.counts for c in pair}
            for r, g in raw["recent"]:
                seg.recent.append((r, g))
                seg.recent_counts[(r, g)] = seg.recent_counts.get((r, g), 0) + 1
                seg.recent_support[r] = seg.recent_support.get(r, 0) + 1
            seg.cells = {(k, r, g): _Cell.restore(rest) for k, r, g, *rest in raw["cells"]}
            self._segments[(raw["project"], raw["guideline"])] = seg

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ConfusionStructure:
        """A model with the parameters and learned state of :meth:`to_state`."""
        model = cls(**state["params"])
        model.load_state(state)
        return model
