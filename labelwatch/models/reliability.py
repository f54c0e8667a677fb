"""Online annotator reliability: a Dirichlet-smoothed confusion matrix per annotator.

For every annotator the model keeps soft counts ``n_a[k][l]``: how much evidence there is that
annotator ``a`` answered ``l`` when the true class was ``k``. The annotator's confusion
probabilities shrink toward the *population* confusion matrix (all annotators pooled), itself
shrunk toward a weak diagonal prior::

    P[k][l]    = (N[k][l] + b * base[k][l]) / (N[k] + b)       # population
    pi_a[k][l] = (n_a[k][l] + s * P[k][l]) / (n_a[k] + s)       # annotator a

so an annotator with few labels is trusted like the average annotator, not like a perfect or
a useless one, and their own evidence takes over as it accumulates (``s`` labels' worth of
prior per true class).

The counts are *soft*: a label is credited with a probability vector over its true class (a
consensus posterior, or a one-hot vector for a gold task), and re-credited when its item's
consensus changes. :class:`labelwatch.models.consensus.StreamingConsensus` does that; this
class holds the annotators' state and reads it out.

When it works and when it fails: the Dawid-Skene assumption is that an annotator's errors
depend only on the true class, not on the item. Item difficulty, fatigue within a session and
copying between annotators violate it; the drift detectors watch for the last two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import base
from scipy.special import betaincinv

from labelwatch.models import _kernels

__all__ = ["AnnotatorReliability", "AnnotatorReport"]


@dataclass(frozen=True)
class AnnotatorReport:
    """What the monitor says about one annotator (a read-only snapshot)."""

    annotator: str
    n_labels: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    per_class_accuracy: dict[str, float]
    confusion: dict[str, dict[str, float]]
    gold_seen: int
    gold_accuracy: float | None


class AnnotatorReliability(base.Base):
    """Per-annotator confusion matrices, shrunk toward the population.

    Parameters
    ----------
    prior_strength
        ``s``: labels' worth of population prior per true class in each annotator's matrix.
    population_accuracy
        Diagonal of the weak prior under the population matrix (before any data).
    population_strength
        ``b``: labels' worth of that weak prior per true class in the population matrix.
    credible_level
        Mass of the equal-tailed credible interval reported for each annotator's accuracy.

    Examples
    --------
    >>> rel = AnnotatorReliability()
    >>> cat, dog = rel.class_index("cat"), rel.class_index("dog")
    >>> for _ in range(8):  # eight gold cats labeled "cat", one gold dog labeled "cat"
    ...     rel.credit("a", cat, [1.0, 0.0])
    >>> rel.credit("a", cat, [0.0, 1.0])
    >>> report = rel.report("a")
    >>> round(report.per_class_accuracy["cat"], 2), round(report.per_class_accuracy["dog"], 2)
    (0.99, 0.31)
    >>> round(report.accuracy, 2), report.accuracy_low < report.accuracy < report.accuracy_high
    (0.89, True)

    References
    ----------
    Dawid, A. P., Skene, A. M. (1979). Maximum likelihood estimation of observer error-rates
    using the EM algorithm. Applied Statistics 28(1), 20-28.
    """

    def __init__(
        self,
        prior_strength: float = 2.0,
        population_accuracy: float = 0.7,
        population_strength: float = 2.0,
        credible_level: float = 0.9,
    ) -> None:
        self.prior_strength = prior_strength
        self.population_accuracy = population_accuracy
        self.population_strength = population_strength
        self.credible_level = credible_level
        self.classes_: list[str] = []
        self._class_ids: dict[str, int] = {}
        self._slots: dict[str, int] = {}
        self._ids: list[str] = []
        self._allocate(annotators=16, classes=4)

    def _allocate(self, *, annotators: int, classes: int) -> None:
        self.counts_: NDArray[np.float64] = np.zeros((annotators, classes, classes))
        self.rows_: NDArray[np.float64] = np.zeros((annotators, classes))
        self.population_: NDArray[np.float64] = np.zeros((classes, classes))
        self.population_rows_: NDArray[np.float64] = np.zeros(classes)
        self.stats_: NDArray[np.int64] = np.zeros((annotators, 3), dtype=np.int64)

    def arrays(self) -> tuple[NDArray[Any], ...]:
        """The annotator arrays in the kernels' order (see ``_kernels``)."""
        return (self.counts_, self.rows_, self.population_, self.population_rows_, self.stats_)

    @property
    def params_(self) -> NDArray[np.float64]:
        """Parameters in the kernels' order (the TTL slot is the consensus model's)."""
        return np.array(
            [self.prior_strength, self.population_strength, self.population_accuracy, 0.0, np.nan]
        )

    # --- classes and annotators ---------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.classes_)

    @property
    def class_capacity(self) -> int:
        return int(self.population_rows_.shape[0])

    def find_class(self, label: str) -> int | None:
        """Index of ``label``, or None if no label so far was ``label``."""
        return self._class_ids.get(label)

    def class_index(self, label: str) -> int:
        """Index of ``label``, adding it as a new class if unseen."""
        index = self._class_ids.get(label)
        if index is None:
            index = len(self.classes_)
            if index == self.class_capacity:
                self._grow(annotators=self.counts_.shape[0], classes=2 * index)
            self.classes_.append(label)
            self._class_ids[label] = index
        return index

    def slot(self, annotator_id: str) -> int:
        """Array slot of ``annotator_id``, created on first sight."""
        slot = self._slots.get(annotator_id)
        if slot is None:
            slot = len(self._ids)
            if slot == self.counts_.shape[0]:
                self._grow(annotators=2 * slot, classes=self.class_capacity)
            self._slots[annotator_id] = slot
            self._ids.append(annotator_id)
        return slot

    def _grow(self, *, annotators: int, classes: int) -> None:
        old = (self.counts_, self.rows_, self.population_, self.population_rows_, self.stats_)
        n, k = self.counts_.shape[0], self.class_capacity
        self._allocate(annotators=annotators, classes=classes)
        self.counts_[:n, :k, :k] = old[0]
        self.rows_[:n, :k] = old[1]
        self.population_[:k, :k] = old[2]
        self.population_rows_[:k] = old[3]
        self.stats_[:n] = old[4]

    @property
    def annotators(self) -> list[str]:
        """Ids of every annotator seen, in order of first appearance."""
        return list(self._ids)

    def annotator_id(self, slot: int) -> str:
        """The id of the annotator in ``slot`` (the inverse of :meth:`slot`)."""
        return self._ids[slot]

    def __contains__(self, annotator_id: object) -> bool:
        return annotator_id in self._slots

    # --- direct learning (the consensus model drives this through the kernels) ----------
    def credit(self, annotator_id: str, label: int, delta: list[float]) -> None:
        """Add a probability vector over true classes (or a difference of two) to a label."""
        k = self.n_classes
        a = self.slot(annotator_id)
        _kernels.credit(self.arrays(), a, label, np.asarray(delta, dtype=np.float64), k)
        self.stats_[a, 0] += 1

    # --- reading -------------------------------------------------------------------------
    def population_matrix(self) -> NDArray[np.float64]:
        """The smoothed population confusion matrix ``P[true][answer]``."""
        k = self.n_classes
        acc = self.population_accuracy
        base_prior = np.full((k, k), (1.0 - acc) / (k - 1) if k > 1 else 0.0)
        np.fill_diagonal(base_prior, acc)
        b = self.population_strength
        return (self.population_[:k, :k] + b * base_prior) / (self.population_rows_[:k, None] + b)

    def confusion(self, annotator_id: str) -> NDArray[np.float64]:
        """The annotator's smoothed confusion matrix ``pi[true][answer]``."""
        k = self.n_classes
        a = self._slots[annotator_id]
        s = self.prior_strength
        return (self.counts_[a, :k, :k] + s * self.population_matrix()) / (
            self.rows_[a, :k, None] + s
        )

    def report(self, annotator_id: str) -> AnnotatorReport:
        """Accuracy with a credible interval, per-class accuracy, confusion, gold accuracy.

        ``accuracy`` is the posterior mean of the share of this annotator's answers that are
        correct: the soft counts on the diagonal, plus ``s`` labels' worth of the population's
        accuracy as a Beta prior; the interval is that Beta's equal-tailed interval.
        """
        a = self._slots[annotator_id]
        k = self.n_classes
        names = self.classes_
        matrix = self.confusion(annotator_id)
        population = self.population_matrix()
        mix = self.population_rows_[:k]
        weights = mix / mix.sum() if mix.sum() > 0 else np.full(k, 1.0 / k)
        population_accuracy = float(np.dot(weights, np.diag(population)))
        correct = float(np.trace(self.counts_[a, :k, :k]))
        total = float(self.rows_[a, :k].sum())
        s = self.prior_strength
        alpha = correct + s * population_accuracy
        beta = max(total - correct, 0.0) + s * (1.0 - population_accuracy)
        tail = (1.0 - self.credible_level) / 2
        n_labels, gold_seen, gold_correct = (int(v) for v in self.stats_[a])
        return AnnotatorReport(
            annotator=annotator_id,
            n_labels=n_labels,
            accuracy=alpha / (alpha + beta),
            accuracy_low=float(betaincinv(alpha, beta, tail)),
            accuracy_high=float(betaincinv(alpha, beta, 1.0 - tail)),
            per_class_accuracy={names[i]: float(matrix[i, i]) for i in range(k)},
            confusion={
                names[i]: {names[j]: float(matrix[i, j]) for j in range(k)} for i in range(k)
            },
            gold_seen=gold_seen,
            gold_accuracy=gold_correct / gold_seen if gold_seen else None,
        )

    def soft_counts(self, annotator_id: str) -> tuple[float, float]:
        """(correct, total): the diagonal and the whole of the annotator's soft counts.

        They add up across shards: the sum over shards is the pooled evidence."""
        a = self._slots[annotator_id]
        k = self.n_classes
        return float(np.trace(self.counts_[a, :k, :k])), float(self.rows_[a, :k].sum())

    # --- state ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Learned state as plain JSON-compatible data (no pickling)."""
        k = self.n_classes
        return {
            "classes": list(self.classes_),
            "population": self.population_[:k, :k].tolist(),
            "population_rows": self.population_rows_[:k].tolist(),
            "annotators": {
                annotator_id: [
                    self.counts_[a, :k, :k].tolist(),
                    self.rows_[a, :k].tolist(),
                    *(int(v) for v in self.stats_[a]),
                ]
                for annotator_id, a in self._slots.items()
            },
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the learned state with one produced by :meth:`to_state`."""
        classes = list(state["classes"])
        annotators = state["annotators"]
        k = len(classes)
        self._allocate(annotators=max(16, len(annotators)), classes=max(4, k))
        self.classes_ = classes
        self._class_ids = {c: i for i, c in enumerate(classes)}
        self.population_[:k, :k] = state["population"]
        self.population_rows_[:k] = state["population_rows"]
        self._slots, self._ids = {}, []
        for annotator_id, (counts, rows, n, gold_seen, gold_correct) in annotators.items():
            a = self.slot(annotator_id)
            self.counts_[a, :k, :k] = counts
            self.rows_[a, :k] = rows
            self.stats_[a] = (n, gold_seen, gold_correct)
