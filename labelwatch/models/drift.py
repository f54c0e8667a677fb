"""Per-annotator change detection on correctness signals, calibrated by a false-alarm budget.

The signal. For each label, ``x`` is the probability that the answer is right judging by the
*other* votes of the item (or its gold answer) just before it was given, and ``s2`` the sum
of squares of that posterior (:class:`~labelwatch.models.consensus.BatchReads`). For an
annotator of accuracy ``a`` (errors spread over the other ``K - 1`` classes) the expected
signal is ``m(a) = a * s2 + (1 - a) * (1 - s2) / (K - 1)``: exactly ``1/K`` for a uniformly
random answerer, whatever the item, and close to ``a`` when the other votes are decisive.
Modelling the sharpness matters: as an item collects votes its posterior sharpens and the raw
signal's mean moves, which a detector on the raw signal mistakes for drift.

The detector. :class:`CorrectnessCusum` is Page's CUSUM for a drop of the annotator's accuracy
from their own baseline ``a0`` to ``a1``, a ``shift`` of the way toward chance ``1/K``, using
per label the Bernoulli log-likelihood ratio of ``m(a1)`` against ``m(a0)`` (applied to soft
values, it is the expected ratio). CUSUM has
the smallest worst-case detection delay among detectors with the same false-alarm rate
(Lorden 1971), which is why it is used rather than a window test such as ADWIN. The alarm
threshold is ``h = ln(target_arl)``: by Lorden's bound the average run length between false
alarms on a stationary stream is at least ``e^h`` labels. The baseline accuracy is learned
from every label outside episodes (shrunk toward the population's), with no verdict during the
first ``warmup`` signals. (Learning it only while the statistic is at zero looks safer but
biases it upward, since it then skips exactly the low signals, and that raises false alarms.)

Episodes. After an alarm the detector is in an episode (one alert, not one per label) until a
CUSUM for the opposite move, back up from ``p1`` to ``p0``, crosses the same threshold: the
annotator recovered. The baseline then restarts.

References
----------
Page, E. S. (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
Lorden, G. (1971). Procedures for reacting to a change in distribution. Annals of
Mathematical Statistics 42(6), 1897-1908.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from river import base

__all__ = ["CorrectnessCusum", "DriftReport"]

_EPS = 1e-3


@dataclass(frozen=True)
class DriftReport:
    """What changed when a detector fired."""

    baseline: float  # estimated accuracy before the change (a0)
    recent: float  # accuracy estimated from the labels that built up the statistic
    labels_in_change: int  # how many labels the statistic accumulated over
    statistic: float
    threshold: float


class CorrectnessCusum(base.Base):
    """CUSUM for a drop of an annotator's correctness signal toward chance.

    Parameters
    ----------
    target_arl
        Target average number of labels between false alarms for a stationary annotator;
        the threshold is its logarithm.
    warmup
        Signals needed before any verdict (and to learn the baseline).
    prior_mean
        Mean signal expected before any data (the population's); the warm-up baseline is
        shrunk toward it with ``prior_strength`` pseudo-labels.
    prior_strength
        Weight of ``prior_mean`` in the baseline, in labels.
    shift
        Where the detector's alternative ``p1`` sits between the baseline (0) and chance (1).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> detector = CorrectnessCusum()
    >>> fired_at = None
    >>> for n in range(400):
    ...     a = 0.9 if n < 200 else 0.5   # the annotator starts answering at random (K=2)
    ...     detector.update(1.0 if rng.random() < a else 0.0, sharpness=1.0, n_classes=2)
    ...     if detector.drift_detected and fired_at is None:
    ...         fired_at = n
    >>> 200 <= fired_at < 260, detector.in_episode
    (True, True)
    """

    def __init__(
        self,
        target_arl: float = 20_000.0,
        warmup: int = 20,
        prior_mean: float = 0.8,
        prior_strength: float = 5.0,
        shift: float = 0.5,
    ) -> None:
        self.target_arl = target_arl
        self.warmup = warmup
        self.prior_mean = prior_mean
        self.prior_strength = prior_strength
        self.shift = shift
        self._reset()

    def _reset(self) -> None:
        self.n_seen = 0
        self._base_num = 0.0  # accuracy estimate: sum of (x - c) over sum of (s2 - c)
        self._base_den = 0.0
        self._statistic = 0.0
        self._run_num = 0.0
        self._run_den = 0.0
        self._run_n = 0
        self._recovery = 0.0
        self._episode = (0.0, 0.0)  # (a0, a1) of the open episode
        self.in_episode = False
        self.drift_detected = False
        self.recovered = False
        self.last_report: DriftReport | None = None

    @property
    def threshold(self) -> float:
        return math.log(self.target_arl)

    @property
    def baseline(self) -> float:
        """Estimated accuracy (shrunk toward ``prior_mean``)."""
        s = self.prior_strength
        return (self._base_num + s * self.prior_mean) / (self._base_den + s)

    def update(self, x: float, sharpness: float, n_classes: int) -> None:
        """One correctness signal ``x`` in [0, 1] with its posterior's sum of squares."""
        self.drift_detected = False
        self.recovered = False
        if n_classes < 2:
            return
        self.n_seen += 1
        chance = 1.0 / n_classes
        c = (1.0 - sharpness) / (n_classes - 1)  # expected x of an always-wrong answerer
        info = sharpness - c  # 0 when the posterior is uniform: nothing to learn
        if self.in_episode:
            a0, a1 = self._episode
            self._recovery = max(
                0.0, self._recovery + _llr(x, _mean(a0, sharpness, c), _mean(a1, sharpness, c))
            )
            if self._recovery > self.threshold:
                kept = self.n_seen
                self._reset()
                self.n_seen = kept
                self.recovered = True
            return
        if self.n_seen <= self.warmup:
            self._learn_baseline(x, c, info)
            return
        a0 = min(max(self.baseline, chance + _EPS), 1.0 - _EPS)
        if a0 <= chance + 0.05:
            # Nothing to fall from: an annotator already near chance is the spam rules' business.
            self._learn_baseline(x, c, info)
            return
        a1 = a0 - self.shift * (a0 - chance)
        self._statistic = max(
            0.0, self._statistic + _llr(x, _mean(a1, sharpness, c), _mean(a0, sharpness, c))
        )
        self._learn_baseline(x, c, info)
        if self._statistic == 0.0:
            self._run_num = self._run_den = 0.0
            self._run_n = 0
            return
        self._run_num += x - c
        self._run_den += info
        self._run_n += 1
        if self._statistic > self.threshold:
            self.drift_detected = True
            self.in_episode = True
            recent = self._run_num / self._run_den if self._run_den > 0 else chance
            self.last_report = DriftReport(
                baseline=a0,
                recent=min(max(recent, 0.0), 1.0),
                labels_in_change=self._run_n,
                statistic=self._statistic,
                threshold=self.threshold,
            )
            self._episode = (a0, a1)
            self._recovery = 0.0

    def _learn_baseline(self, x: float, c: float, info: float) -> None:
        self._base_num += x - c
        self._base_den += info


def _mean(accuracy: float, sharpness: float, c: float) -> float:
    """Expected signal of an annotator of this accuracy (kept inside (0, 1))."""
    return min(max(accuracy * sharpness + (1.0 - accuracy) * c, _EPS), 1.0 - _EPS)


def _llr(x: float, p_alt: float, p_null: float) -> float:
    """Log-likelihood ratio of ``p_alt`` against ``p_null`` for a (soft) Bernoulli ``x``."""
    return x * math.log(p_alt / p_null) + (1.0 - x) * math.log((1.0 - p_alt) / (1.0 - p_null))
