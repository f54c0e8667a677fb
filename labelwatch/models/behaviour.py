"""Spammer rules and a behaviour-anomaly score per annotator.

Spammer rules. A spammer's answers carry no information about the items: the answer does
not depend on the true class. Two ways to spot it, both explained in the alert:

* *No agreement beyond chance* (constant or uniform-random answering): a chance-corrected
  agreement with the consensus of the item's other votes, in the spirit of Cohen's kappa,
  with soft votes: ``kappa = sum(x - e) / sum(s2 - e)``, where for each label ``x`` is the
  probability that the answer is right judging by the other votes (or gold), ``e`` what an
  annotator answering independently of the item with this annotator's mix of answers would
  get (``sum_c mix[c] * before[c]``, with the annotator's mix of answers so far) and ``s2``
  what a perfect annotator would get (``sum_c before[c]^2``). ``kappa`` is near 0 for a
  spammer, whatever the class balance (a constant answer on a 90% class agrees 90% of the
  time, and so would anyone answering blindly), and near 1 for a perfect annotator.
* *Impossibly fast*: the median time per answer over the last answers is below
  ``fast_answer_ms``.

Copied answers. Two annotators who copy each other (or share a script) agree on the items
they both answer even where each of them is often at odds with everyone else. Independent
annotators who find the same items hard also agree more than their accuracies predict
(measured on the shared data sets: pairs agree on up to 70% of the disagreements their
accuracies leave room for), so the reference is not an accuracy model but the pair's own
behaviour with others: ``rate``, the smaller of the two annotators' disagreement rates with
their *other* co-annotators, each disagreement weighted by how informative that co-annotator
is (by the reliability model: ``((accuracy - chance) / (1 - chance))^2``), so that two careful
annotators in a noisy crowd are compared with the careful part of it. (The reliability model
alone cannot be the reference: a colluding pair's votes carry the consensus of the items
they share, and the model rates them highly.) :class:`CopiedAnswers` flags a pair when, over
``n`` shared items, they disagreed ``m`` times with ``m <= max_ratio * rate * n`` and
``P(Binomial(n, rate) <= m) <= alpha``: far fewer disagreements than each has with anyone
else worth listening to, and too few to be luck.

Anomaly score. Each annotator is described by online features (log median time per answer,
entropy and top share of the answer mix, agreement with consensus, gold accuracy, burstiness
of the arrival times). The population's median and spread of each feature are taken over
a sliding window of the values the population reported lately, and the annotator's score
is the largest robust z-score ``|feature - median| / (IQR / 1.349)`` over the features,
naming the feature. A score above ``anomaly_threshold`` is unusual for this population,
not necessarily wrong.

References
----------
Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and Psychological
Measurement 20(1), 37-46.
Raykar, V. C., Yu, S. (2012). Eliminating spammers and ranking annotators for crowdsourced
labeling tasks. Journal of Machine Learning Research 13, 491-518.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from labelwatch.models.drift import AnswerContext

__all__ = [
    "AgreementBeyondChance",
    "AnomalyFeatures",
    "CopiedAnswers",
    "CopyVerdict",
    "PopulationScaler",
    "SpeedRule",
]


class AgreementBeyondChance:
    """Soft, chance-corrected agreement of one annotator with the other votes (kappa).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> spammer, careful = AgreementBeyondChance(), AgreementBeyondChance()
    >>> for _ in range(100):
    ...     truth = 0 if rng.random() < 0.8 else 1
    ...     before = [0.95, 0.05] if truth == 0 else [0.05, 0.95]
    ...     spammer.update(0, before)  # always answers class 0
    ...     careful.update(truth if rng.random() < 0.9 else 1 - truth, before)
    >>> round(spammer.kappa, 1), careful.kappa > 0.6
    (0.0, True)
    """

    # Derived values cached between updates; not checkpointed (see monitor._encode).
    _transient = ("_blind",)

    def __init__(self) -> None:
        self._blind: float | None = None
        self.n = 0
        self.mix: dict[int, int] = {}
        self.agreement = 0.0  # sum of x
        self.before_sum: dict[int, float] = {}  # sum over labels of before[c]
        self.perfect = 0.0  # sum of s2
        self._xx = self._xs = self._ss = 0.0  # sums of products of (x - e) and (s2 - e)

    def update(self, label: int, before: Sequence[float]) -> None:
        k = len(before)
        total = self.n + k  # the spread uses the mix of earlier answers (one pseudo-count each)
        x = before[label]
        e = sum((self.mix.get(c, 0) + 1) / total * q for c, q in enumerate(before))
        s2 = sum(q * q for q in before)
        self.agreement += x
        self.perfect += s2
        for c, q in enumerate(before):
            self.before_sum[c] = self.before_sum.get(c, 0.0) + q
        self._xx += (x - e) * (x - e)
        self._xs += (x - e) * (s2 - e)
        self._ss += (s2 - e) * (s2 - e)
        self.mix[label] = self.mix.get(label, 0) + 1
        self.n += 1
        self._blind = None

    @property
    def blind(self) -> float:
        """``sum(e)`` with the annotator's mix of answers so far (Cohen's chance agreement)."""
        # kappa, its standard error and the information all read it, several times a label:
        # computed once per update (it was a tenth of the monitor's time).
        blind = self.__dict__.get("_blind")
        if blind is None:
            if not self.n:
                blind = 0.0
            else:
                blind = sum(n * self.before_sum.get(c, 0.0) for c, n in self.mix.items()) / self.n
            self._blind = blind
        return blind

    @property
    def information(self) -> float:
        """How much the other votes could tell so far (``sum(s2 - e)``, in labels)."""
        return self.perfect - self.blind

    @property
    def kappa(self) -> float:
        if self.information <= 0.0:
            return 0.0
        return (self.agreement - self.blind) / self.information

    @property
    def kappa_stderr(self) -> float:
        """Standard error of ``kappa`` (ratio estimator: residuals ``(x - e) - kappa (s2 - e)``)."""
        if self.information <= 0.0 or self.n < 2:
            return math.inf
        k = self.kappa
        residual = self._xx - 2 * k * self._xs + k * k * self._ss
        return math.sqrt(max(residual, 0.0)) / self.information

    @property
    def top_share(self) -> float:
        return max(self.mix.values()) / self.n if self.n else 0.0

    def update_context(self, ctx: AnswerContext) -> None:
        self.update(ctx.label, ctx.before)


class SpeedRule:
    """Median time per answer over the last ``window`` answers."""

    def __init__(self, window: int = 50) -> None:
        self.window = window
        self.recent: deque[float] = deque(maxlen=window)

    def update(self, duration_ms: float) -> None:
        self.recent.append(duration_ms)

    @property
    def n(self) -> int:
        return len(self.recent)

    @property
    def median(self) -> float:
        values = sorted(self.recent)
        n = len(values)
        if n == 0:
            return math.nan
        mid = n // 2
        return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2.0


FEATURES: tuple[str, ...] = (
    "log_median_ms",
    "answer_entropy",
    "top_answer_share",
    "agreement",
    "gold_accuracy",
    "burstiness",
)


@dataclass
class AnomalyFeatures:
    """Online behaviour features of one annotator (see :data:`FEATURES`)."""

    n: int = 0
    agreement_sum: float = 0.0
    gold_seen: int = 0
    gold_right: int = 0
    last_ts: float | None = None
    gap_n: int = 0
    gap_mean: float = 0.0
    gap_m2: float = 0.0

    def update(self, ctx: AnswerContext | None, gold_correct: bool | None, ts: float) -> None:
        self.n += 1
        if ctx is not None:
            self.agreement_sum += ctx.agreement
        if gold_correct is not None:
            self.gold_seen += 1
            self.gold_right += gold_correct
        if self.last_ts is not None:
            gap = max(ts - self.last_ts, 0.0)
            self.gap_n += 1
            delta = gap - self.gap_mean
            self.gap_mean += delta / self.gap_n
            self.gap_m2 += delta * (gap - self.gap_mean)
        self.last_ts = ts

    def vector(self, kappa: AgreementBeyondChance, speed: SpeedRule) -> dict[str, float]:
        out: dict[str, float] = {}
        if speed.n:
            out["log_median_ms"] = math.log(max(speed.median, 1.0))
        if kappa.n:
            shares = [c / kappa.n for c in kappa.mix.values()]
            out["answer_entropy"] = max(0.0, -sum(p * math.log(p) for p in shares if p > 0))
            out["top_answer_share"] = max(shares)
        if self.n:
            out["agreement"] = self.agreement_sum / self.n
        if self.gold_seen >= 20:  # a handful of gold answers says little
            out["gold_accuracy"] = self.gold_right / self.gold_seen
        if self.gap_n >= 2 and self.gap_mean > 0:
            sd = math.sqrt(self.gap_m2 / (self.gap_n - 1))
            out["burstiness"] = (sd - self.gap_mean) / (sd + self.gap_mean)  # Goh-Barabasi
        return out


class PopulationScaler:
    """Robust z-scores of annotator features against the population's recent values.

    Each feature keeps the last ``window`` values the population reported (a sliding window,
    so the reference follows a population that changes); median and interquartile range are
    computed from it when a score is asked for.

    Examples
    --------
    >>> scaler = PopulationScaler()
    >>> for i in range(200):
    ...     scaler.learn({"agreement": 0.8 + 0.001 * (i % 50)})
    >>> feature, z = scaler.score({"agreement": 0.2})
    >>> feature, z > 10
    ('agreement', True)
    """

    # The windows kept in order, rebuilt from ``_values`` after a restore; not checkpointed.
    _transient = ("_sorted",)

    def __init__(self, window: int = 1000, min_spread: float = 0.05) -> None:
        self.window = window
        self.min_spread = min_spread
        self._values: dict[str, deque[float]] = {}
        self._sorted: dict[str, list[float]] = {}

    def _ordered(self) -> dict[str, list[float]]:
        ordered: dict[str, list[float]] | None = self.__dict__.get("_sorted")
        if ordered is None:
            ordered = self._sorted = {k: sorted(v) for k, v in self._values.items()}
        return ordered

    def learn(self, features: dict[str, float]) -> None:
        ordered = self._ordered()
        for name, value in features.items():
            if math.isnan(value):  # has no place in an order (and no meaning as a feature)
                continue
            values = self._values.get(name)
            if values is None:
                values = self._values[name] = deque(maxlen=self.window)
                ordered[name] = []
            in_order = ordered[name]
            if len(values) == values.maxlen:
                del in_order[bisect.bisect_left(in_order, values[0])]
            values.append(value)
            bisect.insort(in_order, value)

    def _quartiles(self, name: str) -> tuple[float, float, float]:
        # Sorting the window for every score was a tenth of the monitor's time; on data in
        # order quantiles' own sort is linear, and its result is the same.
        q1, q2, q3 = statistics.quantiles(self._ordered()[name], n=4)
        return q1, q2, q3

    def score(self, features: dict[str, float], min_population: int = 50) -> tuple[str, float]:
        """(the most unusual feature, its robust z-score); ("", 0) before enough data."""
        best, best_z = "", 0.0
        for name, value in features.items():
            if len(self._values.get(name, ())) < min_population:
                continue
            q25, q50, q75 = self._quartiles(name)
            spread = max((q75 - q25) / 1.349, self.min_spread)
            z = abs(value - q50) / spread
            if z > best_z:
                best, best_z = name, z
        return best, best_z

    def median(self, name: str) -> float | None:
        values = self._values.get(name)
        return statistics.median(values) if values else None


@dataclass(frozen=True)
class CopyVerdict:
    """Evidence that two annotators answer alike far more than either does with others."""

    pair: tuple[str, str]
    shared: int  # items both answered
    disagreements: int
    expected: float  # disagreements expected at ``rate``
    rate: float  # the smaller of their disagreement rates with other co-annotators
    log_p: float  # ln P(Binomial(shared, rate) <= disagreements)


def binomial_log_cdf(m: int, n: int, p: float) -> float:
    """``ln P(Binomial(n, p) <= m)``, summed term by term (``m`` is small where it is used).

    >>> round(math.exp(binomial_log_cdf(0, 10, 0.5)), 6)
    0.000977
    """
    if m >= n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return -math.inf
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(j + 1)
        - math.lgamma(n - j + 1)
        + j * log_p
        + (n - j) * log_q
        for j in range(m + 1)
    ]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


class CopiedAnswers:
    """Pairs of annotators who agree far more with each other than with everyone else.

    Fed each label with the earlier answers on its item (:attr:`AnswerContext.peers`) and
    ``weight_of``, how much a disagreement with a given annotator says (0 for one answering
    blindly, 1 for a perfect one; 1 for everyone by default). :meth:`check` tests a pair (see
    the module docstring). Keeps two sums per annotator and six per pair that shared an item,
    the least recently updated pairs dropped beyond ``max_pairs`` (checked with 10% slack).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> watch = CopiedAnswers()
    >>> for item in range(300):  # "a" copies "b"; both right 60% of the time; "c" 90%
    ...     truth = rng.randrange(3)
    ...     guess = lambda acc: truth if rng.random() < acc else (truth + rng.randrange(1, 3)) % 3
    ...     b, c = guess(0.6), guess(0.9)
    ...     _ = watch.update("b", b, [("c", c)])
    ...     _ = watch.update("a", b, [("c", c), ("b", b)])
    >>> verdict = watch.check(("a", "b"))
    >>> verdict.disagreements, verdict.rate > 0.3
    (0, True)
    >>> watch.check(("a", "c")) is None
    True
    """

    def __init__(
        self,
        min_shared: int = 30,
        alpha: float = 1e-8,
        max_ratio: float = 0.25,
        max_pairs: int = 50_000,
    ) -> None:
        self.min_shared = min_shared
        self.alpha = alpha
        self.max_ratio = max_ratio
        self.max_pairs = max_pairs
        # (a, b) with a < b -> [shared, disagreements, then for a and for b in turn: the
        # summed weight of the other member and of the disagreements with it]
        self.pairs: dict[tuple[str, str], list[float]] = {}
        self.totals: dict[str, list[float]] = {}  # annotator -> [weight, weighted disagreements]

    @staticmethod
    def key(a: str, b: str) -> tuple[str, str]:
        return (a, b) if a < b else (b, a)

    def update(
        self,
        annotator: str,
        answer: int,
        peers: Sequence[tuple[str, int]],
        weight_of: Callable[[str], float] | None = None,
    ) -> list[tuple[str, str]]:
        """Count one answer against the item's earlier ones; returns the pairs it touched."""
        touched = []
        mine = self.totals.setdefault(annotator, [0.0, 0.0])
        mine_weight = 1.0 if weight_of is None else weight_of(annotator)
        for other, theirs in peers:
            if other == annotator:
                continue
            differ = float(answer != theirs)
            their_weight = 1.0 if weight_of is None else weight_of(other)
            key = self.key(annotator, other)
            pair = self.pairs.pop(key, None) or [0.0] * 6
            pair[0] += 1
            pair[1] += differ
            # what each member saw of the other: its weight, and the weighted disagreement
            first_sees, second_sees = (
                (their_weight, mine_weight) if key[0] == annotator else (mine_weight, their_weight)
            )
            pair[2] += first_sees
            pair[3] += first_sees * differ
            pair[4] += second_sees
            pair[5] += second_sees * differ
            self.pairs[key] = pair  # re-inserted: the dict's order is recency
            theirs_totals = self.totals.setdefault(other, [0.0, 0.0])
            mine[0] += their_weight
            mine[1] += their_weight * differ
            theirs_totals[0] += mine_weight
            theirs_totals[1] += mine_weight * differ
            touched.append(key)
        if len(self.pairs) > self.max_pairs + self.max_pairs // 10:
            self._evict()
        return touched

    def _evict(self) -> None:
        """Drop the least recently updated pairs down to ``max_pairs``, all at once and in a
        rebuilt dict (once per ``max_pairs / 10`` new pairs, so about 2 µs per new pair):
        deleting the first key one at a time left the deleted slots at the front of the
        dict, which every later ``next(iter(...))`` walked again (an update took 214 µs
        instead of 25 µs at the cap)."""
        excess = len(self.pairs) - self.max_pairs
        self.pairs = dict(itertools.islice(self.pairs.items(), excess, None))

    def counts(self, pair: tuple[str, str]) -> tuple[int, int]:
        """(items shared, disagreements) of ``pair``."""
        counts = self.pairs[pair]
        return int(counts[0]), int(counts[1])

    def rate(self, pair: tuple[str, str]) -> float | None:
        """The smaller of the pair's weighted disagreement rates with other co-annotators
        (``None`` until each has ``min_shared / 2`` weighted comparisons with others)."""
        counts = self.pairs[pair]
        rates = []
        for i, annotator in enumerate(pair):
            weight, disagreements = self.totals[annotator]
            rest = weight - counts[2 + 2 * i]
            if rest < self.min_shared / 2:
                return None
            rates.append((disagreements - counts[3 + 2 * i]) / rest)
        return min(rates)

    def check(self, pair: tuple[str, str]) -> CopyVerdict | None:
        """The evidence that ``pair`` copies, or ``None`` when it does not stand out."""
        if pair not in self.pairs:
            return None
        shared, differ = self.counts(pair)
        if shared < self.min_shared:
            return None
        rate = self.rate(pair)
        if rate is None or differ > self.max_ratio * rate * shared:
            return None
        log_p = binomial_log_cdf(differ, shared, rate)
        if log_p > math.log(self.alpha):
            return None
        return CopyVerdict(pair, shared, differ, rate * shared, rate, log_p)
