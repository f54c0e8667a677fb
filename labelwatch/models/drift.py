"""Per-annotator change detection on correctness signals, calibrated by a false-alarm budget.

The signal. For each label, ``evidence`` is the probability that the answer is right judging
by the *other* votes of the item (or its gold answer) just before it was given
(:class:`~labelwatch.models.consensus.BatchReads`). For an annotator answering uniformly at
random among ``K`` classes its expected value is exactly ``1/K``, whatever the item; for a
reliable annotator it is near their accuracy.

The detector. :class:`CorrectnessCusum` is Page's CUSUM for a drop of the mean signal from the
annotator's own baseline ``p0`` to ``p1``, halfway between ``p0`` and chance ``1/K``, using the
Bernoulli log-likelihood ratio (applied to soft values, it is the expected ratio). CUSUM has
the smallest worst-case detection delay among detectors with the same false-alarm rate
(Lorden 1971), which is why it is used rather than a window test such as ADWIN. The alarm
threshold is ``h = ln(target_arl)``: by Lorden's bound the average run length between false
alarms on a stationary stream is at least ``e^h`` labels. The baseline is learned during a
warm-up (``warmup`` signals, shrunk toward the population's mean) and then only from labels
that leave the statistic at zero, so a decline does not drag the baseline down with it.

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
from typing import Any

from river import base

__all__ = ["CorrectnessCusum", "DriftReport"]

_EPS = 1e-3


@dataclass(frozen=True)
class DriftReport:
    """What changed when a detector fired."""

    baseline: float  # mean signal before the change (p0)
    recent: float  # mean signal over the labels that built up the statistic
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
    ...     p = 0.9 if n < 200 else 0.5   # the annotator starts answering at random (K=2)
    ...     detector.update(1.0 if rng.random() < p else 0.0, chance=0.5)
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
        self._base_sum = 0.0
        self._base_n = 0
        self._statistic = 0.0
        self._run_sum = 0.0
        self._run_n = 0
        self._recovery = 0.0
        self.in_episode = False
        self.drift_detected = False
        self.recovered = False
        self.last_report: DriftReport | None = None
        self._episode_p0 = 0.0
        self._episode_p1 = 0.0

    @property
    def threshold(self) -> float:
        return math.log(self.target_arl)

    @property
    def baseline(self) -> float:
        s = self.prior_strength
        return (self._base_sum + s * self.prior_mean) / (self._base_n + s)

    def update(self, x: float, chance: float) -> None:
        """One correctness signal in [0, 1]; ``chance`` is the mean of a random answerer."""
        self.drift_detected = False
        self.recovered = False
        self.n_seen += 1
        if self.in_episode:
            self._update_recovery(x)
            return
        if self.n_seen <= self.warmup:
            self._base_sum += x
            self._base_n += 1
            return
        p0 = min(max(self.baseline, _EPS), 1 - _EPS)
        if p0 <= chance + 0.05:
            # Nothing to fall from: an annotator already at chance is the spam rules' business.
            self._base_sum += x
            self._base_n += 1
            return
        p1 = p0 - self.shift * (p0 - chance)
        step = _llr(x, p1, p0)
        self._statistic = max(0.0, self._statistic + step)
        if self._statistic == 0.0:
            self._run_sum, self._run_n = 0.0, 0
            self._base_sum += x
            self._base_n += 1
            return
        self._run_sum += x
        self._run_n += 1
        if self._statistic > self.threshold:
            self.drift_detected = True
            self.in_episode = True
            self.last_report = DriftReport(
                baseline=p0,
                recent=self._run_sum / self._run_n,
                labels_in_change=self._run_n,
                statistic=self._statistic,
                threshold=self.threshold,
            )
            self._episode_p0, self._episode_p1 = p0, p1
            self._recovery = 0.0

    def _update_recovery(self, x: float) -> None:
        self._recovery = max(0.0, self._recovery + _llr(x, self._episode_p0, self._episode_p1))
        if self._recovery > self.threshold:
            self.recovered = True
            kept_n = self.n_seen
            self._reset()
            self.n_seen = kept_n
            self.recovered = True

    def state(self) -> dict[str, Any]:
        """Learned state as plain data."""
        return {k: v for k, v in vars(self).items() if k not in self._get_params()} | {
            "last_report": None if self.last_report is None else vars(self.last_report)
        }


def _llr(x: float, p_alt: float, p_null: float) -> float:
    """Log-likelihood ratio of ``p_alt`` against ``p_null`` for a (soft) Bernoulli ``x``."""
    return x * math.log(p_alt / p_null) + (1.0 - x) * math.log((1.0 - p_alt) / (1.0 - p_null))
