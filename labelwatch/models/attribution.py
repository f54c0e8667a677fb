"""Disagreement attribution: which annotators, classes and projects the disagreement comes from.

Definition. A label *disagrees* when it differs from its item's reference: the gold answer
when known, else the consensus (the caller passes it; labels without one are skipped). The
disagreement of a set of labels is the number of labels that disagree, ``D`` of ``L``. This
is additive over labels, so every disagreement belongs to exactly one annotator, one project,
one reference class and one (reference, given) pair, and the shares along each of these
dimensions sum to 1. (Pairwise disagreement, the count of differing label pairs per item,
would need each pair split between its two annotators, and says the same for a population
with one reference; Krippendorff's alpha in :mod:`labelwatch.models.agreement` covers it.)

Decomposition, for each group ``g`` (an annotator, a project, a class):

* ``share = D_g / D``, next to ``label_share = L_g / L``: a group carrying much more of the
  disagreement than of the labels stands out;
* ``expected``: the disagreements the group would have at typical rates. For annotators and
  projects it is ``sum_c L_gc * r_c`` with ``r_c = D_c / L_c`` the disagreement rate of
  reference class ``c``, so an annotator is not blamed for labeling hard classes; for
  reference classes it is ``L_c * D / L``. ``excess = D_g - expected`` sums to 0 over a
  dimension.
* :meth:`DisagreementAttribution.explained`: ``sum_g max(excess_g, 0) / D`` per dimension, the
  share of the disagreement that would go away if every group above its expected count came
  down to it ("annotators explain 45%, classes 20%"). The dimensions overlap (a bad
  annotator on a hard class counts in both), so these do not add up to 100%.
* :meth:`DisagreementAttribution.concentration`: the ``k`` annotators with the most
  disagreements, their share of it and of the labels ("the top 3 annotators carry 60% of the
  disagreement while giving 12% of the labels").

Streaming and merging. The model is a set of counters: per annotator the labels per reference
class and the disagreements, the same per project, per class and per pair. Counters add, so
per-window or per-shard models combine with :meth:`DisagreementAttribution.merge` (a week is
the sum of its hours). Memory is bounded: beyond ``max_annotators`` annotators (or
``max_projects`` projects) the ones with the fewest disagreements are folded into one
``OTHERS`` group, which keeps every total and share exact but no longer names them (their
excesses net out inside the group, so ``explained`` can only go down). A folded annotator who
labels again is counted afresh under its name, its earlier counts staying in ``OTHERS``: keep
the cap above the number of annotators active in one model's span.

When it fails: it is only as good as the reference. Against a consensus, an annotator who is
right where the majority is wrong carries disagreement; gold labels avoid that. Shares of a
small window are noisy: read them with the counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from river import base

__all__ = ["OTHERS", "Concentration", "DisagreementAttribution", "Share"]

_STATE_VERSION = 1
OTHERS = "(others)"
Pair = tuple[str, str]


@dataclass(frozen=True)
class Share:
    """One group's part of the disagreement: ``disagreements`` of its ``labels``, ``share`` of
    all disagreements and ``label_share`` of all labels; ``expected`` and ``excess`` as in the
    module docstring (``None`` for class pairs, which are disagreements by definition)."""

    key: str | Pair | None
    disagreements: int
    labels: int
    share: float
    label_share: float
    expected: float | None
    excess: float | None

    @property
    def rate(self) -> float:
        """The group's disagreement rate (its disagreements over its labels)."""
        return self.disagreements / self.labels if self.labels else 0.0


@dataclass(frozen=True)
class Concentration:
    """The ``annotators`` with the most disagreements: their share of the disagreement and
    of the labels."""

    annotators: tuple[str, ...]
    disagreement_share: float
    label_share: float


class _Tally:
    """Labels per reference class and disagreements of one group."""

    __slots__ = ("disagreements", "labels")

    def __init__(self) -> None:
        self.labels: dict[str, int] = {}
        self.disagreements = 0

    @property
    def n_labels(self) -> int:
        return sum(self.labels.values())

    def add(self, reference: str, disagrees: bool, n: int = 1) -> None:
        self.labels[reference] = self.labels.get(reference, 0) + n
        self.disagreements += disagrees * n

    def merge(self, other: _Tally) -> None:
        for reference, n in other.labels.items():
            self.labels[reference] = self.labels.get(reference, 0) + n
        self.disagreements += other.disagreements

    def dump(self) -> list[Any]:
        return [self.disagreements, sorted([c, n] for c, n in self.labels.items())]

    @classmethod
    def restore(cls, data: list[Any]) -> _Tally:
        tally = cls()
        tally.disagreements = int(data[0])
        tally.labels = {str(c): int(n) for c, n in data[1]}
        return tally


class DisagreementAttribution(base.Base):
    """Who and what the disagreement of a set of labels comes from, as mergeable counters.

    Parameters
    ----------
    max_annotators
        Annotators named at most; beyond it those with the fewest disagreements are folded
        into :data:`OTHERS` (with 10% slack, so folding is rare).
    max_projects
        Projects named at most, folded the same way.

    Examples
    --------
    Ten annotators, two of whom disagree with the reference on half their labels:

    >>> import textwrap
    >>> model = DisagreementAttribution()
    >>> for n in range(1000):
    ...     annotator, reference = f"a{n % 10}", ("cat", "dog")[n % 3 == 0]
    ...     wrong = (annotator in ("a1", "a2") and n % 20 < 10) or n % 97 == 0
    ...     label = {"cat": "dog", "dog": "cat"}[reference] if wrong else reference
    ...     model.update({"annotator": annotator, "label": label, "reference": reference,
    ...                   "project": "pets"})
    >>> c = model.concentration(2)
    >>> c.annotators, round(c.disagreement_share, 2), round(c.label_share, 2)
    (('a1', 'a2'), 0.92, 0.2)
    >>> a1 = model.by_annotator()[0]
    >>> a1.key, a1.disagreements, round(a1.expected, 1), round(a1.excess, 1)
    ('a1', 51, 11.0, 40.0)
    >>> for sentence in model.report(top=2, scope="in project pets"):
    ...     print(textwrap.fill(sentence, 88))
    92% of the disagreement in project pets comes from 2 annotators (a1, a2), who gave 20%
    of the labels
    the most frequent disagreement is 'cat' labeled 'dog': 67% of it (74 labels)
    beyond what the classes they labeled predict, annotators account for 72% of the
    disagreement; harder classes for 1%
    a1 disagrees 51 times, 40 more than the classes they labeled predict (51% vs 11%)
    """

    def __init__(self, max_annotators: int = 10_000, max_projects: int = 1_000) -> None:
        self.max_annotators = max_annotators
        self.max_projects = max_projects
        self._annotators: dict[str, _Tally] = {}
        self._projects: dict[str | None, _Tally] = {}
        self._other_annotators = _Tally()
        self._other_projects = _Tally()
        self._classes = _Tally()  # labels per reference class; disagreements: the total
        self._class_disagreements: dict[str, int] = {}
        self._pairs: dict[Pair, int] = {}
        self.n_skipped_ = 0

    # --- learning ---------------------------------------------------------------------
    def update(self, x: Mapping[str, Any]) -> None:
        """Count one label: ``x`` has ``annotator``, ``label`` and ``reference`` (``None``:
        skipped), and optionally ``project``."""
        reference = x.get("reference")
        if reference is None:
            self.n_skipped_ += 1
            return
        reference, given = str(reference), str(x["label"])
        disagrees = given != reference
        annotator, project = str(x["annotator"]), x.get("project")
        project = None if project is None else str(project)
        self._tally(self._annotators, annotator).add(reference, disagrees)
        self._tally(self._projects, project).add(reference, disagrees)
        self._classes.add(reference, disagrees)
        if disagrees:
            d = self._class_disagreements
            d[reference] = d.get(reference, 0) + 1
            self._pairs[(reference, given)] = self._pairs.get((reference, given), 0) + 1
        self._fold()

    def update_many(self, xs: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`update` on each label."""
        for x in xs:
            self.update(x)

    @staticmethod
    def _tally(table: dict[Any, _Tally], key: Any) -> _Tally:
        tally = table.get(key)
        if tally is None:
            tally = table[key] = _Tally()
        return tally

    def _fold(self) -> None:
        """Fold the groups with the fewest disagreements into :data:`OTHERS` once a table
        is 10% over its cap (so the sort runs once per 10% of the cap)."""
        if (
            len(self._annotators) <= self.max_annotators + self.max_annotators // 10
            and len(self._projects) <= self.max_projects + self.max_projects // 10
        ):
            return
        tables: list[tuple[dict[Any, _Tally], _Tally, int]] = [
            (self._annotators, self._other_annotators, self.max_annotators),
            (self._projects, self._other_projects, self.max_projects),
        ]
        for table, others, cap in tables:
            if len(table) <= cap + cap // 10:
                continue
            order = sorted(table, key=lambda k: (table[k].disagreements, table[k].n_labels))
            for key in order[: len(table) - cap]:
                others.merge(table.pop(key))

    def merge(self, other: DisagreementAttribution) -> None:
        """Add another model's counts to this one (e.g. the hours of a week, or shards)."""
        for key, tally in other._annotators.items():
            self._tally(self._annotators, key).merge(tally)
        for project, tally in other._projects.items():
            self._tally(self._projects, project).merge(tally)
        self._other_annotators.merge(other._other_annotators)
        self._other_projects.merge(other._other_projects)
        self._classes.merge(other._classes)
        for reference, n in other._class_disagreements.items():
            self._class_disagreements[reference] = self._class_disagreements.get(reference, 0) + n
        for pair, n in other._pairs.items():
            self._pairs[pair] = self._pairs.get(pair, 0) + n
        self.n_skipped_ += other.n_skipped_
        self._fold()

    def __add__(self, other: DisagreementAttribution) -> DisagreementAttribution:
        total = self.clone()
        total.merge(self)
        total.merge(other)
        return total

    # --- reading ----------------------------------------------------------------------
    @property
    def n_labels(self) -> int:
        """Labels counted (skipped ones not included)."""
        return self._classes.n_labels

    @property
    def n_disagreements(self) -> int:
        """Labels that differ from their reference."""
        return self._classes.disagreements

    def class_rates(self) -> dict[str, float]:
        """``r_c``: the disagreement rate of each reference class."""
        d = self._class_disagreements
        return {c: d.get(c, 0) / n for c, n in sorted(self._classes.labels.items())}

    def _shares(self, groups: Iterable[tuple[Any, _Tally]]) -> list[Share]:
        rates = self.class_rates()
        total_d, total_l = self.n_disagreements, self.n_labels
        out = []
        for key, tally in groups:
            labels = tally.n_labels
            if not labels:
                continue
            expected = sum(n * rates[c] for c, n in tally.labels.items())
            out.append(
                Share(
                    key,
                    tally.disagreements,
                    labels,
                    tally.disagreements / total_d if total_d else 0.0,
                    labels / total_l,
                    expected,
                    tally.disagreements - expected,
                )
            )
        out.sort(key=lambda s: (-s.disagreements, -s.labels, str(s.key)))
        return out

    def by_annotator(self) -> list[Share]:
        """Each named annotator's share (and :data:`OTHERS`), most disagreements first."""
        return self._shares([*self._annotators.items(), (OTHERS, self._other_annotators)])

    def by_project(self) -> list[Share]:
        """Each named project's share (and :data:`OTHERS`), most disagreements first."""
        return self._shares([*self._projects.items(), (OTHERS, self._other_projects)])

    def by_class(self) -> list[Share]:
        """Each reference class's share; ``expected`` from the overall rate."""
        total_d, total_l = self.n_disagreements, self.n_labels
        out = []
        for c, labels in self._classes.labels.items():
            d = self._class_disagreements.get(c, 0)
            expected = labels * total_d / total_l
            share = d / total_d if total_d else 0.0
            out.append(Share(c, d, labels, share, labels / total_l, expected, d - expected))
        out.sort(key=lambda s: (-s.disagreements, -s.labels, str(s.key)))
        return out

    def by_pair(self) -> list[Share]:
        """Each (reference, given) pair's share of the disagreement; ``labels`` are those of
        the reference class."""
        total_d, total_l = self.n_disagreements, self.n_labels
        labels = self._classes.labels
        out = [
            Share(pair, n, labels[pair[0]], n / total_d, labels[pair[0]] / total_l, None, None)
            for pair, n in self._pairs.items()
        ]
        out.sort(key=lambda s: (-s.disagreements, str(s.key)))
        return out

    def concentration(self, k: int = 3) -> Concentration:
        """The ``k`` named annotators with the most disagreements and what they carry."""
        top = [s for s in self.by_annotator() if s.key != OTHERS and s.disagreements][:k]
        return Concentration(
            tuple(str(s.key) for s in top),
            sum(s.share for s in top),
            sum(s.label_share for s in top),
        )

    def explained(self) -> dict[str, float]:
        """Per dimension, the share of the disagreement above the groups' expected counts
        (see the module docstring); 0 without disagreement."""
        total = self.n_disagreements
        if not total:
            return {"annotators": 0.0, "classes": 0.0, "projects": 0.0}

        def above(shares: list[Share]) -> float:
            return sum(max(s.excess or 0.0, 0.0) for s in shares) / total

        return {
            "annotators": above(self.by_annotator()),
            "classes": above(self.by_class()),
            "projects": above(self.by_project()),
        }

    def report(self, top: int = 3, scope: str = "") -> list[str]:
        """Plain sentences for a report; ``scope`` (e.g. "in project X this week") says
        which labels these are."""
        where = f" {scope}" if scope else ""
        if not self.n_disagreements:
            return [f"no disagreement{where} ({self.n_labels:,} labels)"]
        sentences = []
        c = self.concentration(top)
        if c.annotators:  # none when every annotator with disagreements was folded
            names = ", ".join(c.annotators)
            who = "annotator" if len(c.annotators) == 1 else "annotators"
            sentences.append(
                f"{c.disagreement_share:.0%} of the disagreement{where} comes from "
                f"{len(c.annotators)} {who} ({names}), who gave {c.label_share:.0%} of the "
                "labels"
            )
        pair = self.by_pair()[0]
        assert isinstance(pair.key, tuple)
        sentences.append(
            f"the most frequent disagreement is '{pair.key[0]}' labeled '{pair.key[1]}': "
            f"{pair.share:.0%} of it ({pair.disagreements:,} labels)"
        )
        projects = [s for s in self.by_project() if s.key != OTHERS]
        if len(projects) > 1:
            p = projects[0]
            sentences.append(
                f"project {p.key} carries {p.share:.0%} of the disagreement with "
                f"{p.label_share:.0%} of the labels"
            )
        explained = self.explained()
        sentence = (
            f"beyond what the classes they labeled predict, annotators account for "
            f"{explained['annotators']:.0%} of the disagreement; harder classes for "
            f"{explained['classes']:.0%}"
        )
        if len(projects) > 1:
            sentence += f"; projects for {explained['projects']:.0%}"
        sentences.append(sentence)
        worst = max(
            (s for s in self.by_annotator() if s.key != OTHERS),
            key=lambda s: (s.excess or 0.0, str(s.key)),
            default=None,
        )
        if worst is not None and worst.expected is not None and (worst.excess or 0.0) >= 1.0:
            sentences.append(
                f"{worst.key} disagrees {worst.disagreements:,} times, {worst.excess:.0f} more "
                f"than the classes they labeled predict ({worst.rate:.0%} vs "
                f"{worst.expected / worst.labels:.0%})"
            )
        return sentences

    # --- state ------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Counts and parameters as JSON-compatible data."""
        return {
            "v": _STATE_VERSION,
            "params": self._get_params(),
            "n_skipped": self.n_skipped_,
            "annotators": [[k, *t.dump()] for k, t in sorted(self._annotators.items())],
            "projects": [[k, *t.dump()] for k, t in self._projects.items()],
            "other_annotators": self._other_annotators.dump(),
            "other_projects": self._other_projects.dump(),
            "classes": self._classes.dump(),
            "class_disagreements": sorted([c, n] for c, n in self._class_disagreements.items()),
            "pairs": sorted([r, g, n] for (r, g), n in self._pairs.items()),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the counts with those of :meth:`to_state` (parameters kept)."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unknown attribution state version {state.get('v')!r}")
        self.n_skipped_ = int(state["n_skipped"])
        self._annotators = {str(k): _Tally.restore(rest) for k, *rest in state["annotators"]}
        self._projects = {
            None if k is None else str(k): _Tally.restore(rest) for k, *rest in state["projects"]
        }
        self._other_annotators = _Tally.restore(state["other_annotators"])
        self._other_projects = _Tally.restore(state["other_projects"])
        self._classes = _Tally.restore(state["classes"])
        self._class_disagreements = {str(c): int(n) for c, n in state["class_disagreements"]}
        self._pairs = {(str(r), str(g)): int(n) for r, g, n in state["pairs"]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DisagreementAttribution:
        """A model with the parameters and counts of :meth:`to_state`."""
        model = cls(**state["params"])
        model.load_state(state)
        return model
