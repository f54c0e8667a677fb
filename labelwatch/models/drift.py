"""Per-annotator change detectors, calibrated by a false-alarm budget.

Three detectors watch each annotator of a project, each answering one question:

* :class:`RandomAnsweringCusum`: did the answers stop following the items (toward answering
  at random)? On the correctness evidence of every label, weighted by how decisive the item's
  other votes were.
* :class:`LabelMixCusum`: did the mix of answers move toward one class?
* :class:`SpeedCusum`: did the time per answer move (faster or slower)?

All three are Page's CUSUM on a per-label log-likelihood ratio ``llr`` of "changed" against
"as before": ``S = max(0, S + llr)``, alarm when ``S > h``. CUSUM has the smallest worst-case
detection delay among detectors with the same false-alarm rate (Lorden 1971), and its
threshold follows from that rate: when ``llr`` is the true log-likelihood ratio, the average
number of labels between false alarms of a stationary annotator is at least ``e^h``
(Lorden's bound). So ``h = ln(target_arl)``; a detector running ``m`` CUSUMs side by side uses
``ln(m * target_arl)``. The bound is conservative when the "as before" model is right, and
the benchmark (``bench/drift_detection.py``) measures the real rate, since the model is
estimated.

The correctness signal. For each label the consensus model reports ``before``, the item's
posterior over true classes from its gold answer or other votes just before the label (the
class prior for a first vote; the annotator's own answer plays no part), and the annotator's
confusion-matrix column for the answer given. The chance of the answer "as before" is
``p0 = sum_k before[k] * pi[k][answer]``; for an annotator answering at random it is ``1/K``.
``llr = ln((1/K) / p0)`` is large when a decisive consensus contradicts the answer, small when
it confirms it, and near zero when nothing is known about the item yet (but an answer that is
rare for this annotator still counts: the class prior carries the label mix).

Guarding the reference. The confusion matrix keeps learning from every label, including the
changed ones, and would soon explain them. The detector therefore subtracts the credit of the
annotator's last ``guard`` labels from the matrix it tests against, so a change is judged
against the behaviour before it. The other detectors learn their baselines the same way, from
labels older than their guard window.

Robustness. Consensus posteriors are overconfident when votes are correlated, so ``p0`` is
mixed with ``epsilon`` of uniform chance: one answer against a confident but wrong consensus
can add at most ``ln(1 / epsilon)`` to the statistic.

Episodes. After an alarm the detector is in an episode until the annotator recovers: a CUSUM
for the reverse change (back from the alternative to the baseline) crosses the same
threshold. Then the detector starts afresh. One alert per episode.

References
----------
Page, E. S. (1954). Continuous inspection schemes. Biometrika 41(1/2), 100-115.
Lorden, G. (1971). Procedures for reacting to a change in distribution. Annals of
Mathematical Statistics 42(6), 1897-1908.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from river import base

__all__ = [
    "AnswerContext",
    "DriftReport",
    "LabelMixCusum",
    "RandomAnsweringCusum",
    "SpeedCusum",
]


@dataclass(frozen=True, slots=True)
class AnswerContext:
    """What the consensus model knew about one label when it arrived (see
    :class:`~labelwatch.models.consensus.BatchReads`).

    ``before[k]``: the item's posterior for true class ``k`` from its gold or other votes (the
    class prior for a first vote). ``population[k]``: the population's smoothed chance of this
    answer for true class ``k``. ``counts[k]``/``rows[k]``: the annotator's soft count of this
    answer for true class ``k`` and of all answers for it. ``after[k]``: the item's posterior
    right after the label, which is the credit the label gave the annotator's counts.
    ``prior_strength``: labels' worth of ``population`` in the annotator's matrix.
    ``peers``: (annotator, answer) of the item's earlier votes by other annotators, oldest
    first (what :class:`~labelwatch.models.behaviour.CopiedAnswers` compares against).
    """

    label: int
    before: Sequence[float]
    population: Sequence[float]
    counts: Sequence[float]
    rows: Sequence[float]
    after: Sequence[float]
    prior_strength: float
    peers: tuple[tuple[str, int], ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.before)

    @property
    def agreement(self) -> float:
        """Chance the answer is right judging by the item's other votes (or gold)."""
        return self.before[self.label]

    @property
    def sharpness(self) -> float:
        """Sum of squares of ``before``: ``1/K`` when nothing is known, 1 when certain."""
        return sum(p * p for p in self.before)


@dataclass(frozen=True)
class DriftReport:
    """What changed when a detector fired."""

    what: str  # "correctness", "label_mix" or "speed"
    before: float  # the baseline (accuracy, share of a label, median ms)
    after: float  # the same quantity over the labels that built up the statistic
    labels_in_change: int  # labels since the statistic last left zero
    statistic: float
    threshold: float
    detail: str = ""


class _Cusum(base.Base):
    """Shared episode bookkeeping of the detectors below."""

    def __init__(self, target_arl: float, warmup: int, guard: int) -> None:
        self.target_arl = target_arl
        self.warmup = warmup
        self.guard = guard
        self.n_seen = 0
        self.in_episode = False
        self.drift_detected = False
        self.recovered = False
        self.last_report: DriftReport | None = None

    @property
    def threshold(self) -> float:
        return math.log(self.target_arl)

    def _begin(self) -> None:
        self.n_seen += 1
        self.drift_detected = False
        self.recovered = False

    def _fire(self, report: DriftReport) -> None:
        self.drift_detected = True
        self.in_episode = True
        self.last_report = report

    def _recover(self) -> None:
        self.in_episode = False
        self.recovered = True


class RandomAnsweringCusum(_Cusum):
    """CUSUM for answers that stopped following the items, toward uniform random answering.

    Parameters
    ----------
    target_arl
        Target average number of labels between false alarms of a stationary annotator.
    warmup
        Labels of the annotator before any verdict.
    guard
        The annotator's most recent labels left out of the reference matrix.
    epsilon
        Share of uniform chance mixed into the "as before" answer probability.
    shift
        Share of answers the alternative takes to be random (1: all of them).

    Examples
    --------
    A two-class annotator who agrees with a confident consensus 90% of the time, then answers
    at random from label 200 on:

    >>> import random
    >>> rng = random.Random(1)
    >>> detector = RandomAnsweringCusum()
    >>> fired_at = None
    >>> for n in range(400):
    ...     truth = rng.randrange(2)
    ...     right = rng.random() < (0.9 if n < 200 else 0.5)
    ...     label = truth if right else 1 - truth
    ...     before = [0.95, 0.05] if truth == 0 else [0.05, 0.95]
    ...     population = [0.9, 0.1] if label == 0 else [0.1, 0.9]
    ...     # A matrix learned from nothing but the population prior, for brevity.
    ...     ctx = AnswerContext(label, before, population, [0.0, 0.0], [0.0, 0.0], before, 2.0)
    ...     detector.update(ctx)
    ...     if detector.drift_detected and fired_at is None:
    ...         fired_at = n
    >>> 200 <= fired_at < 240, detector.in_episode
    (True, True)
    """

    def __init__(
        self,
        target_arl: float = 30_000.0,
        warmup: int = 20,
        guard: int = 30,
        epsilon: float = 0.05,
        shift: float = 1.0,
    ) -> None:
        super().__init__(target_arl, warmup, guard)
        self.epsilon = epsilon
        self.shift = shift
        self._recent: deque[tuple[int, Sequence[float]]] = deque()
        self._recent_counts: dict[tuple[int, int], float] = {}
        self._recent_rows: dict[int, float] = {}
        self._reset_statistics()
        self._base_num = 0.0  # baseline accuracy: sum of (x - c) over sum of (s2 - c)
        self._base_den = 0.0
        self._episode_baseline = 0.0

    def _reset_statistics(self) -> None:
        self._statistic = 0.0
        self._run_n = 0
        self._run_num = 0.0
        self._run_den = 0.0
        self._run_p0 = 0.0
        self._recovery = 0.0

    @property
    def statistic(self) -> float:
        return self._statistic

    @property
    def baseline_accuracy(self) -> float:
        """The annotator's accuracy estimated from the correctness signal before any episode."""
        return min(max((self._base_num + 1.0) / (self._base_den + 2.0), 0.0), 0.999)

    def expected(self, ctx: AnswerContext) -> float:
        """Chance of this answer under the annotator's behaviour before its last ``guard``
        labels, mixed with ``epsilon`` of uniform chance."""
        label, s = ctx.label, ctx.prior_strength
        p0 = 0.0
        for k, q in enumerate(ctx.before):
            if q <= 0.0:
                continue
            num = max(ctx.counts[k] - self._recent_counts.get((k, label), 0.0), 0.0)
            den = max(ctx.rows[k] - self._recent_rows.get(k, 0.0), 0.0)
            p0 += q * (num + s * ctx.population[k]) / (den + s)
        chance = 1.0 / ctx.n_classes
        return (1.0 - self.epsilon) * p0 + self.epsilon * chance

    def update(self, ctx: AnswerContext) -> None:
        self._begin()
        k = ctx.n_classes
        if k < 2:
            return
        chance = 1.0 / k
        p0 = self.expected(ctx)
        self._remember(ctx)
        x, s2 = ctx.agreement, ctx.sharpness
        c = (1.0 - s2) / (k - 1)  # expected agreement of an always-wrong answerer
        info = s2 - c
        if self.in_episode:
            # Recovery: agreement back at the episode's baseline rather than at chance.
            a0 = self._episode_baseline
            self._recovery = max(
                0.0, self._recovery + _bernoulli_llr(x, _mean(a0, s2, c), _mean(chance, s2, c))
            )
            if self._recovery > self.threshold:
                self._recover()
                self._reset_statistics()
            return
        if self.n_seen <= self.warmup:
            self._base_num += x - c
            self._base_den += info
            return
        p1 = self.shift * chance + (1.0 - self.shift) * p0
        self._statistic = max(0.0, self._statistic + math.log(p1 / p0))
        if self._statistic == 0.0:
            self._run_n, self._run_num, self._run_den, self._run_p0 = 0, 0.0, 0.0, 0.0
            self._base_num += x - c
            self._base_den += info
            return
        self._run_n += 1
        self._run_num += x - c
        self._run_den += info
        self._run_p0 += p0
        if self._statistic > self.threshold:
            recent = self._run_num / self._run_den if self._run_den > 0 else chance
            self._episode_baseline = self.baseline_accuracy
            self._fire(
                DriftReport(
                    what="correctness",
                    before=self._episode_baseline,
                    after=min(max(recent, 0.0), 1.0),
                    labels_in_change=self._run_n,
                    statistic=self._statistic,
                    threshold=self.threshold,
                    detail=(
                        f"answers expected with mean probability {self._run_p0 / self._run_n:.2f}"
                        f" got, chance is {chance:.2f}"
                    ),
                )
            )
            self._recovery = 0.0
        elif self._run_n > self.guard:
            # A slow climb: those labels are the annotator's normal now; learn from them.
            self._base_num += x - c
            self._base_den += info

    def _remember(self, ctx: AnswerContext) -> None:
        """Track the credit of the last ``guard`` labels, to leave it out of the reference."""
        label = ctx.label
        self._recent.append((label, ctx.after))
        for k, credit in enumerate(ctx.after):
            self._recent_counts[(k, label)] = self._recent_counts.get((k, label), 0.0) + credit
            self._recent_rows[k] = self._recent_rows.get(k, 0.0) + credit
        if len(self._recent) > self.guard:
            old_label, old = self._recent.popleft()
            for k, credit in enumerate(old):
                self._recent_counts[(k, old_label)] -= credit
                self._recent_rows[k] -= credit


class LabelMixCusum(_Cusum):
    """CUSUM for a move of the answers toward one class (e.g. clicking one answer on all).

    One CUSUM per class ``c`` tests the baseline mix ``m0`` against ``(1 - shift) * m0 +
    shift * e_c``; the threshold is ``ln(K * target_arl)``. The baseline is the annotator's
    own mix of answers older than its guard window (half the history while it is short),
    with one pseudo-answer per class.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> detector = LabelMixCusum()
    >>> fired_at = None
    >>> for n in range(300):
    ...     label = rng.randrange(3) if n < 150 else 2
    ...     detector.update(label, 3)
    ...     if detector.drift_detected and fired_at is None:
    ...         fired_at = n
    >>> 150 <= fired_at < 175, detector.last_report.detail
    (True, 'answers moved toward class 2')
    """

    def __init__(
        self, target_arl: float = 30_000.0, warmup: int = 30, guard: int = 30, shift: float = 0.8
    ) -> None:
        super().__init__(target_arl, warmup, guard)
        self.shift = shift
        self._recent: deque[int] = deque()
        self._base: dict[int, float] = {}
        self._base_n = 0
        self._stats: dict[int, float] = {}
        self._runs: dict[int, int] = {}
        self._episode_class = -1
        self._episode_mix: dict[int, float] = {}
        self._recovery = 0.0

    def _baseline(self, label: int, n_classes: int) -> float:
        return (self._base.get(label, 0.0) + 1.0) / (self._base_n + n_classes)

    def update(self, label: int, n_classes: int) -> None:
        self._begin()
        if n_classes < 2:
            return
        m0 = self._baseline(label, n_classes)
        self._recent.append(label)
        while len(self._recent) > min(self.guard, max(1, self.n_seen // 2)):
            old = self._recent.popleft()
            if not self.in_episode:
                self._base[old] = self._base.get(old, 0.0) + 1.0
                self._base_n += 1
        if self.in_episode:
            # Recovery: answers back at the episode's baseline mix rather than the alternative.
            m0_then = self._episode_mix.get(label, 1.0 / n_classes)
            m1 = (1.0 - self.shift) * m0_then + (
                self.shift if label == self._episode_class else 0.0
            )
            self._recovery = max(0.0, self._recovery + math.log(m0_then / m1))
            if self._recovery > self.threshold:
                self._recover()
                self._stats, self._runs, self._recovery = {}, {}, 0.0
            return
        if self.n_seen <= self.warmup:
            return
        threshold = math.log(n_classes * self.target_arl)
        for c in range(n_classes):
            m1 = (1.0 - self.shift) * m0 + (self.shift if label == c else 0.0)
            s = max(0.0, self._stats.get(c, 0.0) + math.log(m1 / m0))
            self._stats[c] = s
            self._runs[c] = self._runs.get(c, 0) + 1 if s > 0.0 else 0
            if s > threshold:
                self._episode_class = c
                self._episode_mix = {k: self._baseline(k, n_classes) for k in range(n_classes)}
                run = self._runs[c]
                recent = [*self._recent][-run:] if run else []
                after = sum(1 for r in recent if r == c) / len(recent) if recent else 0.0
                self._fire(
                    DriftReport(
                        what="label_mix",
                        before=self._episode_mix[c],
                        after=after,
                        labels_in_change=run,
                        statistic=s,
                        threshold=threshold,
                        detail=f"answers moved toward class {c}",
                    )
                )
                self._recovery = 0.0
                return


class SpeedCusum(base.DriftDetector):
    """Two-sided CUSUM on the log of the time per answer, in units of its baseline spread.

    The baseline mean and standard deviation of ``log(duration)`` are learned from answers
    older than the guard window (Welford); each new value is standardised and clipped to
    ``[-clip, clip]`` (times are heavy-tailed), and two Gaussian CUSUMs test a shift of
    ``shift`` standard deviations down (faster) and up (slower), with threshold
    ``ln(2 * target_arl)``.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(2)
    >>> detector = SpeedCusum()
    >>> fired_at = None
    >>> for n in range(300):
    ...     ms = rng.lognormvariate(8.3, 0.5) if n < 150 else rng.lognormvariate(5.7, 0.3)
    ...     detector.update(ms)
    ...     if detector.drift_detected and fired_at is None:
    ...         fired_at = n
    >>> 150 <= fired_at < 165, detector.last_report.detail
    (True, 'faster')
    """

    def __init__(
        self,
        target_arl: float = 30_000.0,
        warmup: int = 60,
        guard: int = 30,
        shift: float = 1.0,
        clip: float = 3.0,
    ) -> None:
        self.target_arl = target_arl
        self.warmup = warmup
        self.guard = guard
        self.shift = shift
        self.clip = clip
        super().__init__()
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self.n_seen = 0
        self.in_episode = False
        self.recovered = False
        self.last_report: DriftReport | None = None
        self._recent: deque[float] = deque()
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._down = 0.0
        self._up = 0.0
        self._run = 0
        self._run_sum = 0.0
        self._direction = 0
        self._recovery = 0.0

    @property
    def threshold(self) -> float:
        return math.log(2.0 * self.target_arl)

    def update(self, x: float) -> None:
        """One answer's duration in milliseconds."""
        self._drift_detected = False
        self.recovered = False
        self.n_seen += 1
        value = math.log(max(x, 1.0))
        self._recent.append(value)
        while len(self._recent) > min(self.guard, max(1, self.n_seen // 2)):
            old = self._recent.popleft()
            if not self.in_episode:
                self._n += 1
                delta = old - self._mean
                self._mean += delta / self._n
                self._m2 += delta * (old - self._mean)
        if self._n < 2 or self.n_seen <= self.warmup:
            return
        sd = max(math.sqrt(self._m2 / (self._n - 1)), 0.05)
        z = min(max((value - self._mean) / sd, -self.clip), self.clip)
        k = self.shift / 2.0
        if self.in_episode:
            # Back to the baseline: the reverse CUSUM for the direction of the episode.
            self._recovery = max(0.0, self._recovery + self.shift * (k - z * self._direction))
            if self._recovery > self.threshold:
                self.in_episode = False
                self.recovered = True
                self._down = self._up = 0.0
                self._recovery = 0.0
            return
        self._down = max(0.0, self._down + self.shift * (-z - k))
        self._up = max(0.0, self._up + self.shift * (z - k))
        self._run = self._run + 1 if (self._down > 0 or self._up > 0) else 0
        self._run_sum = self._run_sum + value if self._run else 0.0
        statistic = max(self._down, self._up)
        if statistic > self.threshold:
            self._direction = 1 if self._up > self._down else -1
            after = math.exp(self._run_sum / max(self._run, 1))
            self._drift_detected = True
            self.in_episode = True
            self.last_report = DriftReport(
                what="speed",
                before=math.exp(self._mean),
                after=after,
                labels_in_change=self._run,
                statistic=statistic,
                threshold=self.threshold,
                detail="slower" if self._direction > 0 else "faster",
            )
            self._recovery = 0.0


def _mean(accuracy: float, sharpness: float, c: float) -> float:
    """Expected agreement signal of an annotator of this accuracy (kept inside (0, 1))."""
    return min(max(accuracy * sharpness + (1.0 - accuracy) * c, 1e-3), 1.0 - 1e-3)


def _bernoulli_llr(x: float, p_alt: float, p_null: float) -> float:
    """Log-likelihood ratio of ``p_alt`` against ``p_null`` for a (soft) Bernoulli ``x``."""
    return x * math.log(p_alt / p_null) + (1.0 - x) * math.log((1.0 - p_alt) / (1.0 - p_null))
