"""Streaming inter-annotator agreement: Krippendorff's alpha from running coincidence counts.

Krippendorff's alpha (nominal distance) compares the disagreement observed within items with
the disagreement expected by chance from the pooled label mix. Everything it needs is in the
*coincidence matrix* ``o``: each item (a *unit*) with ``m >= 2`` values, ``n_c`` of them of
class ``c``, adds ``n_c * n_k / (m - 1)`` to ``o[c][k]`` for ``c != k`` and
``n_c * (n_c - 1) / (m - 1)`` to ``o[c][c]``. With ``n_c`` the row sums of ``o`` and ``n``
their total (the pairable values),

``alpha = 1 - (n - 1) * sum_{c != k} o[c][k] / sum_{c != k} n_c * n_k``

and the agreement on one class, class ``c`` against all the others (the same formula on the
two-class collapse of ``o``), is ``1 - (n - 1) * (n_c - o[c][c]) / (n_c * (n - n_c))``.

Streaming. Each open item keeps its current values, one per annotator: the same label again
(an event the producer re-sent) changes nothing, a different label from the same annotator (a
correction) replaces the earlier one, as in
:class:`~labelwatch.models.consensus.StreamingConsensus`. A label replaces its item's old
contribution to ``o`` with the new one, which costs ``O(d^2)`` for the ``d <= K`` distinct
classes on the item (usually 1 to 3), whatever the length of the stream. Items with one value
contribute nothing (they are not pairable), as in Krippendorff's definition.

Bounded memory. At most ``max_items`` items are open: beyond that the least recently labeled
one is closed, and :meth:`StreamingAlpha.close` closes one on request (e.g. when the consensus
model closes it). A closed item's contribution stays in the totals and only its values are
dropped, so a later label for it starts a *new unit*: the pairs between its old and new values
are lost, which moves alpha (on the shared data sets shuffled, keeping a tenth of the items
open moved it by 0.03 to 0.06: ``bench/agreement.py``).
:meth:`StreamingAlpha.forget` removes an open item's contribution altogether (an item withdrawn
from the data). Memory: the values of the open items (about 0.5 KB per item with three
values, measured with tracemalloc), plus ``K^2`` counts for the totals and for each kept
window. Closing items when the consensus model closes them keeps both on the same items.

Trend. With event times (``ts``), each item's whole contribution also sits in the window
(of ``window_seconds``) of its latest label, and moves to a later window when the item is
labeled again: a window's counts are always those of the items whose latest label fell in it,
so each window's alpha is a proper alpha of those items (e.g. per hour). The newest
``n_windows`` windows are kept.

Agreement with Crowd-Kit. ``crowdkit.metrics.data.alpha_krippendorff`` (which calls NLTK's
``AnnotationTask.alpha`` with ``binary_distance``, i.e. nominal alpha) computes the same
quantity in batch: it drops items with fewer than two labels and returns 1.0 when the pairable
values are all one class, as :meth:`Coincidence.alpha` does (Krippendorff leaves that case
undefined). It counts an annotator who labels an item twice as two values, where this model
keeps the latest; so on data with one label per annotator and item and no item closed before
its last label, the two agree to floating-point rounding (below 1e-9, independent of the
order of the stream). ``bench/agreement.py`` checks the default against the target
``|diff| <= 0.01`` on the shared data sets: the largest difference measured was 1e-15.
Closing items early (a small ``max_items``) splits units, and the two then differ.

One model holds one population (e.g. one project, as the tracker keeps one consensus model per
project). :class:`Coincidence` values add up, so pooled or per-shard alphas are the alpha of
the sum of the parts' coincidences (units must not be split across the parts).

References
----------
Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for
Communication Departmental Papers 43, University of Pennsylvania.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from river import base

__all__ = ["Coincidence", "StreamingAlpha"]

_STATE_VERSION = 1
Pair = tuple[str, str]


@dataclass(frozen=True)
class Coincidence:
    """The coincidence counts of a set of units, and the alphas they give.

    ``counts[(c, k)]`` is ``o[c][k]`` (symmetric, both orders present, zeros may be absent);
    ``n_units`` is the number of units with at least two values. Values add with ``+``.

    Examples
    --------
    >>> o = Coincidence({("yes", "yes"): 2.0, ("no", "no"): 2.0, ("yes", "no"): 1.0,
    ...                  ("no", "yes"): 1.0}, n_units=3)
    >>> o.n_values, round(o.alpha(), 4), round(o.class_alpha("yes"), 4)
    (6, 0.4444, 0.4444)
    """

    counts: Mapping[Pair, float] = field(default_factory=dict)
    n_units: int = 0

    def marginals(self) -> dict[str, int]:
        """``n_c``: pairable values of each class (row sums of ``o``, whole numbers)."""
        rows: dict[str, float] = {}
        for (c, _), value in self.counts.items():
            rows[c] = rows.get(c, 0.0) + value
        return {c: round(v) for c, v in sorted(rows.items()) if round(v) > 0}

    @property
    def classes(self) -> list[str]:
        """Classes with pairable values, sorted."""
        return list(self.marginals())

    @property
    def n_values(self) -> int:
        """``n``: the pairable values (values of units with at least two)."""
        return round(sum(self.counts.values()))

    def _diagonal(self, c: str) -> float:
        return self.counts.get((c, c), 0.0)

    def alpha(self) -> float | None:
        """Nominal Krippendorff's alpha; ``None`` without pairable values, 1.0 when they
        are all one class (Crowd-Kit's convention)."""
        marginals = self.marginals()
        n = sum(marginals.values())
        if n < 2:
            return None
        expected = n * n - sum(v * v for v in marginals.values())
        if expected <= 0:
            return 1.0
        observed = n - sum(self._diagonal(c) for c in marginals)
        return 1.0 - (n - 1) * observed / expected

    def class_alpha(self, label: str) -> float | None:
        """Alpha of ``label`` against all other classes taken as one; ``None`` when the
        class has no pairable value, 1.0 when it has them all."""
        marginals = self.marginals()
        n, n_c = sum(marginals.values()), marginals.get(label, 0)
        if n < 2 or n_c == 0:
            return None
        if n_c == n:
            return 1.0
        return 1.0 - (n - 1) * (n_c - self._diagonal(label)) / (n_c * (n - n_c))

    def class_alphas(self) -> dict[str, float | None]:
        """:meth:`class_alpha` of every class with pairable values."""
        return {c: self.class_alpha(c) for c in self.classes}

    def matrix(self) -> dict[str, dict[str, float]]:
        """``o`` as nested dicts over :attr:`classes` (rows and columns), zeros included."""
        classes = self.classes
        return {c: {k: self.counts.get((c, k), 0.0) for k in classes} for c in classes}

    def __add__(self, other: Coincidence) -> Coincidence:
        counts = dict(self.counts)
        for pair, value in other.counts.items():
            counts[pair] = counts.get(pair, 0.0) + value
        return Coincidence(counts, self.n_units + other.n_units)


def _contribution(counts: Mapping[str, int]) -> dict[Pair, float]:
    """One unit's entries of ``o`` from its class counts (empty below two values)."""
    m = sum(counts.values())
    if m < 2:
        return {}
    scale = 1.0 / (m - 1)
    return {
        (c, k): n_c * (n_k - (c == k)) * scale
        for c, n_c in counts.items()
        for k, n_k in counts.items()
        if c != k or n_c > 1
    }


class _Tally:
    """Mutable coincidence counts of a set of units."""

    __slots__ = ("counts", "units")

    def __init__(self) -> None:
        self.counts: dict[Pair, float] = {}
        self.units = 0

    def add(self, entries: Mapping[Pair, float], sign: float) -> None:
        if not entries:
            return
        counts = self.counts
        for pair, value in entries.items():
            counts[pair] = counts.get(pair, 0.0) + sign * value
        self.units += 1 if sign > 0 else -1

    def frozen(self) -> Coincidence:
        return Coincidence(dict(self.counts), self.units)

    def dump(self) -> list[Any]:
        return [self.units, [[c, k, v] for (c, k), v in sorted(self.counts.items())]]

    @classmethod
    def restore(cls, data: list[Any]) -> _Tally:
        tally = cls()
        tally.units = int(data[0])
        tally.counts = {(str(c), str(k)): float(v) for c, k, v in data[1]}
        return tally


class _Unit:
    """An open item: its value per annotator, the class counts, its window."""

    __slots__ = ("counts", "votes", "window")

    def __init__(self) -> None:
        self.votes: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.window: int | None = None


class StreamingAlpha(base.Base):
    """Krippendorff's alpha (nominal) of one population of labels, updated label by label.

    Use it for "how much do annotators agree beyond chance", overall and per class, and its
    trend per window. It needs items labeled by at least two annotators; items with one label
    do not count. Alpha is a population figure: it says nothing about which annotator
    disagrees (see :class:`~labelwatch.models.attribution.DisagreementAttribution`), and its
    chance term makes it low for a rare class even when annotators seldom disagree.

    Parameters
    ----------
    max_items
        Open items at most; beyond it the least recently labeled is closed (its
        contribution kept, its values dropped).
    window_seconds
        Width of the trend windows in event-time seconds (``None``: no trend).
    n_windows
        Trend windows kept (the newest); 168 one-hour windows are one week.

    Examples
    --------
    Crowd-Kit's own example of partly inconsistent answers (its value: 0.4444):

    >>> model = StreamingAlpha()
    >>> for item, annotator, label in [
    ...     ("X", "A", "Yes"), ("X", "B", "Yes"), ("Y", "A", "No"), ("Y", "B", "No"),
    ...     ("Z", "A", "Yes"), ("Z", "B", "No"),
    ... ]:
    ...     model.update({"item": item, "annotator": annotator, "label": label, "ts": 0.0})
    >>> round(model.get(), 4)
    0.4444
    >>> model.update({"item": "Z", "annotator": "B", "label": "Yes"})  # a correction
    >>> model.get(), model.coincidence().n_values
    (1.0, 6)
    >>> [(start, round(o.alpha(), 2)) for start, o in model.trend()]
    [(0.0, 1.0)]

    References
    ----------
    Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for
    Communication Departmental Papers 43.
    """

    def __init__(
        self,
        max_items: int = 1_000_000,
        window_seconds: float | None = 3600.0,
        n_windows: int = 168,
    ) -> None:
        self.max_items = max_items
        self.window_seconds = window_seconds
        self.n_windows = n_windows
        self._items: OrderedDict[str, _Unit] = OrderedDict()
        self._totals = _Tally()
        self._windows: dict[int, _Tally] = {}
        self.last_window_: int | None = None
        self.n_labels_ = 0
        self.n_closed_ = 0

    # --- learning ---------------------------------------------------------------------
    def update(self, x: Mapping[str, Any]) -> None:
        """Learn one label: ``x`` has ``item``, ``annotator``, ``label`` and optionally
        ``ts`` (event time in seconds, for the trend)."""
        self.n_labels_ += 1
        item, annotator, label = str(x["item"]), str(x["annotator"]), str(x["label"])
        unit = self._items.get(item)
        if unit is None:
            unit = self._items[item] = _Unit()
            if len(self._items) > self.max_items:
                self._items.popitem(last=False)
                self.n_closed_ += 1
        else:
            self._items.move_to_end(item)
        previous = unit.votes.get(annotator)
        if previous == label:
            return  # the same answer again is not a second value
        window = self._window_of(x.get("ts"))
        old = _contribution(unit.counts)
        if previous is not None:
            unit.counts[previous] -= 1
            if not unit.counts[previous]:
                del unit.counts[previous]
        unit.counts[label] = unit.counts.get(label, 0) + 1
        unit.votes[annotator] = label
        new = _contribution(unit.counts)
        self._totals.add(old, -1.0)
        self._totals.add(new, 1.0)
        old_window = unit.window
        if window is not None and (old_window is None or window > old_window):
            unit.window = window
        tally = self._windows.get(old_window) if old_window is not None else None
        if tally is not None:
            tally.add(old, -1.0)
        tally = self._windows.get(unit.window) if unit.window is not None else None
        if tally is not None:
            tally.add(new, 1.0)

    def update_many(self, xs: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`update` on each label in order."""
        for x in xs:
            self.update(x)

    def _window_of(self, ts: Any) -> int | None:
        """The label's window index, creating (and pruning) windows; ``None`` when there is
        no trend, no time, or the window is older than the ones kept."""
        if ts is None or self.window_seconds is None:
            return None
        window = math.floor(float(ts) / self.window_seconds)
        last = self.last_window_
        if last is None or window > last:
            self.last_window_ = last = window
            for old in [w for w in self._windows if w <= last - self.n_windows]:
                del self._windows[old]
        if window <= last - self.n_windows:
            return None
        if window not in self._windows:
            self._windows[window] = _Tally()
        return window

    def close(self, item: str) -> bool:
        """Close an open item: its contribution stays, its values are dropped (a later label
        starts a new unit). False if it was not open."""
        if self._items.pop(item, None) is None:
            return False
        self.n_closed_ += 1
        return True

    def forget(self, item: str) -> bool:
        """Remove an open item and its contribution (totals and window), as if it had never
        been labeled. False if it was not open (a closed item can no longer be removed)."""
        unit = self._items.pop(item, None)
        if unit is None:
            return False
        contribution = _contribution(unit.counts)
        self._totals.add(contribution, -1.0)
        tally = self._windows.get(unit.window) if unit.window is not None else None
        if tally is not None:
            tally.add(contribution, -1.0)
        return True

    # --- reading ----------------------------------------------------------------------
    def get(self) -> float | None:
        """Alpha over every unit so far (see :meth:`Coincidence.alpha`)."""
        return self.coincidence().alpha()

    def class_alpha(self, label: str) -> float | None:
        """Alpha of one class against the rest (see :meth:`Coincidence.class_alpha`)."""
        return self.coincidence().class_alpha(label)

    def coincidence(self) -> Coincidence:
        """The coincidence counts of every unit so far, open and closed."""
        return self._totals.frozen()

    def trend(self) -> list[tuple[float, Coincidence]]:
        """(window start in seconds, coincidence of the units whose latest label fell in
        that window), oldest first, for the kept windows."""
        assert self.window_seconds is not None or not self._windows
        return [
            (w * (self.window_seconds or 0.0), self._windows[w].frozen())
            for w in sorted(self._windows)
        ]

    @property
    def items(self) -> list[str]:
        """Open items, least recently labeled first."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    # --- state ------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Learned state and parameters as JSON-compatible data (floats round-trip exactly)."""
        return {
            "v": _STATE_VERSION,
            "params": self._get_params(),
            "n_labels": self.n_labels_,
            "n_closed": self.n_closed_,
            "last_window": self.last_window_,
            "totals": self._totals.dump(),
            "windows": [[w, *self._windows[w].dump()] for w in sorted(self._windows)],
            "items": [
                [item, unit.window, [[a, label] for a, label in unit.votes.items()]]
                for item, unit in self._items.items()
            ],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the learned state with one from :meth:`to_state` (parameters kept)."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unknown agreement state version {state.get('v')!r}")
        self.n_labels_ = int(state["n_labels"])
        self.n_closed_ = int(state["n_closed"])
        last = state["last_window"]
        self.last_window_ = None if last is None else int(last)
        self._totals = _Tally.restore(state["totals"])
        self._windows = {int(w): _Tally.restore(rest) for w, *rest in state["windows"]}
        self._items = OrderedDict()
        for item, window, votes in state["items"]:
            unit = self._items[str(item)] = _Unit()
            unit.window = None if window is None else int(window)
            for annotator, label in votes:
                unit.votes[str(annotator)] = str(label)
                unit.counts[str(label)] = unit.counts.get(str(label), 0) + 1

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StreamingAlpha:
        """A model with the parameters and learned state of :meth:`to_state`."""
        model = cls(**state["params"])
        model.load_state(state)
        return model
