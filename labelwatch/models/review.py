"""Review sampling: which items an expert should check, and an unbiased audit on the side.

Two pieces, both pure (the caller passes event time; nothing here reads a clock):

:class:`ReviewPriority` scores one item: the expected value of an expert review, taken as the
probability that the item's consensus label is wrong times what fixing it is worth. Three
opinions on "the consensus is wrong" are combined, each kept in the result so a queue row can
say why the item is there:

* the consensus model's own: ``uncertainty = 1 - posterior[consensus]``;
* the trusted annotators' alone: the votes of annotators whose reliability is well above
  chance (``trusted_skill``) form a one-coin posterior (each vote right with its annotator's
  reliability, wrong uniformly over the other classes, uniform prior); ``trusted`` is the
  mass it puts on labels other than the consensus. It weighs evidence, not shares: three
  trusted votes against the consensus say more than one, and many noisy votes for the
  consensus do not drown them;
* a model pre-label's: an item may carry ``model_label`` with ``model_confidence``. The
  model's own probability that the consensus is wrong is ``model = model_confidence`` when
  its label differs (at least that much is on other labels) and ``1 - model_confidence``
  when it agrees.

The pre-label is independent of the votes, so it updates the consensus posterior by Bayes'
rule as one more vote, from an annotator whose reliability is the model's stated confidence
(its likelihood raised to ``model_weight``: 1 takes the confidence at its word, less tempers
an overconfident model); ``uncertainty_with_model`` is ``1 - posterior[consensus]`` after
that update. The trusted annotators' votes are already in the posterior, so they are not
added again; their opinion is a hedge against a posterior that is too sure of itself,
combined as a noisy-OR::

    p_wrong  = 1 - (1 - uncertainty_with_model) * (1 - trusted_weight * trusted)
    priority = value * p_wrong

The priority rises with the consensus uncertainty, with each trusted vote against the
consensus, and with the confidence of a conflicting pre-label (an agreeing one lowers it); a
source that has nothing to say (no trusted voter, no pre-label) leaves the rest as is. The
defaults (``trusted_skill`` 0.6, ``trusted_weight`` 0.5: trusted annotators alone can make an
item at most a coin flip; ``model_weight`` 1) are the same for every data set: round values
compared on the shared crowdsourcing data sets pooled and on simulated pre-labels
(``bench/review_sampling.py``), not fitted per data set.

When it works and when it fails: the priority ranks well when the consensus model and the
annotators' reliabilities are roughly right, i.e. when errors are where the votes are split.
A crowd that is *systematically* wrong (most annotators making the same mistake on the same
items) produces confident wrong consensus that no vote-based score can find; only gold tasks,
a model pre-label or the random share's audit reveal it (on the shared face-sentiment set,
where the crowd gives one class to many items of two others, the top 10% by priority holds
1.4x the wrong labels of a random 10%; 2.3x to 4.6x on the other shared sets). The random
share keeps the audit honest in that case: its estimate does not depend on the priorities.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from river import base

__all__ = [
    "AuditEstimate",
    "ReviewPick",
    "ReviewPriority",
    "ReviewSampler",
    "ReviewScore",
    "audit_estimate",
    "confidence_band",
]

_STATE_VERSION = 1
_MAX_RELIABILITY = 0.99  # one trusted vote never makes a label certain
SECONDS_PER_HOUR = 3600


# --- priority -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewScore:
    """One item's review priority and the components it was computed from.

    ``uncertainty``, ``trusted`` and ``model`` are the three opinions that the consensus is
    wrong (see :mod:`labelwatch.models.review`; ``model`` is ``None`` without a pre-label),
    ``uncertainty_with_model`` the first updated with the pre-label; ``p_wrong`` combines
    them and ``priority = value * p_wrong``. ``trusted_votes`` counts the votes of trusted
    annotators, ``trusted_dissent`` those among them whose label differs from the consensus.
    """

    priority: float
    p_wrong: float
    consensus_label: str | None
    consensus_confidence: float
    uncertainty: float
    uncertainty_with_model: float
    trusted: float
    trusted_votes: int
    trusted_dissent: int
    model: float | None
    model_label: str | None
    model_confidence: float | None
    gold: str | None = None

    def components(self) -> dict[str, float | None]:
        """The three components by name, for a queue row."""
        return {"uncertainty": self.uncertainty, "trusted": self.trusted, "model": self.model}

    @property
    def reason(self) -> str:
        """Why the item scores what it does, in one line of plain words."""
        if self.gold is not None:
            return f"gold item: answer {self.gold!r} known"
        parts = [f"consensus {self.consensus_label!r} at {self.consensus_confidence:.2f}"]
        if self.trusted_votes == 0:
            parts.append("no trusted annotator voted")
        elif self.trusted_dissent == 0:
            parts.append(f"{self.trusted_votes} of {self.trusted_votes} trusted annotators agree")
        else:
            parts.append(
                f"{self.trusted_dissent} of {self.trusted_votes} trusted annotators disagree "
                f"({self.trusted:.2f} against the consensus)"
            )
        if self.model_label is not None and self.model_confidence is not None:
            if self.model_label != self.consensus_label:
                parts.append(f"model says {self.model_label!r} at {self.model_confidence:.2f}")
            else:
                parts.append(f"model agrees at {self.model_confidence:.2f}")
        return "; ".join(parts)


class ReviewPriority(base.Base):
    """The expected value of an expert review of one item (a pure function of its inputs).

    ``x`` (a dict, River style) holds:

    ``posterior``
        The consensus posterior, ``{label: probability}`` (e.g.
        :meth:`~labelwatch.models.consensus.StreamingConsensus.predict_proba_one`).
    ``votes`` (optional)
        The item's votes as ``(label, reliability)`` pairs, ``reliability`` being the
        probability that the vote's annotator answers correctly (the reliability model's
        accuracy, or the annotator's gold accuracy where the caller trusts that more).
    ``model_label``, ``model_confidence`` (optional)
        A model's pre-label of the item and the probability it gives that label.
    ``gold`` (optional)
        The item's known answer: nothing to review, the priority is 0.
    ``value`` (optional, default 1)
        What fixing a wrong label of this item is worth; with 1 the priority is the
        probability that the consensus is wrong.

    Parameters
    ----------
    trusted_skill
        A vote is trusted when its annotator's skill, ``(reliability - 1/K) / (1 - 1/K)`` for
        ``K`` classes, is at least this (0.6: reliability 0.8 with two classes, 0.7 with four).
    trusted_weight
        Weight of the trusted annotators' opinion in the noisy-OR.
    model_weight
        Exponent on the pre-label's likelihood in the Bayes update (1: its confidence taken
        at its word; 0: pre-labels ignored).

    Examples
    --------
    >>> scorer = ReviewPriority()
    >>> score = scorer.explain_one({
    ...     "posterior": {"cat": 0.52, "dog": 0.48},
    ...     "votes": [("cat", 0.6), ("cat", 0.65), ("dog", 0.9), ("dog", 0.92), ("cat", 0.95)],
    ...     "model_label": "dog", "model_confidence": 0.93,
    ... })
    >>> for part in score.reason.split("; "):
    ...     print(part)
    consensus 'cat' at 0.52
    2 of 3 trusted annotators disagree (0.84 against the consensus)
    model says 'dog' at 0.93
    >>> round(score.priority, 2), {k: round(v, 2) for k, v in score.components().items()}
    (0.96, {'uncertainty': 0.48, 'trusted': 0.84, 'model': 0.93})
    >>> round(scorer.score_one({"posterior": {"cat": 0.97, "dog": 0.03}}), 2)
    0.03

    References
    ----------
    Goh, H. W., Tkachenko, U., Mueller, J. (2023). CROWDLAB: Supervised learning to infer
    consensus labels and quality scores for data with multiple annotators. arXiv:2210.06812.

    Goh, H. W., Mueller, J. (2023). ActiveLab: Active learning with re-labeling by multiple
    annotators. arXiv:2301.11856.
    """

    def __init__(
        self,
        trusted_skill: float = 0.6,
        trusted_weight: float = 0.5,
        model_weight: float = 1.0,
    ) -> None:
        for name, v in (
            ("trusted_skill", trusted_skill),
            ("trusted_weight", trusted_weight),
            ("model_weight", model_weight),
        ):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        self.trusted_skill = trusted_skill
        self.trusted_weight = trusted_weight
        self.model_weight = model_weight

    def score_one(self, x: Mapping[str, Any]) -> float:
        """The review priority of the item described by ``x`` (higher: review sooner)."""
        return self.explain_one(x).priority

    def explain_one(self, x: Mapping[str, Any]) -> ReviewScore:
        """The priority of ``x`` with its components (see :class:`ReviewScore`)."""
        posterior: Mapping[str, float] = x["posterior"]
        votes: Sequence[tuple[str, float]] = list(x.get("votes") or ())
        model_label: str | None = x.get("model_label")
        model_confidence: float | None = x.get("model_confidence")
        gold: str | None = x.get("gold")
        value = float(x.get("value", 1.0))
        label: str | None = None
        confidence = 0.0
        if posterior:
            best = max(posterior, key=posterior.__getitem__)
            label, confidence = best, float(posterior[best]) / (sum(posterior.values()) or 1.0)
        uncertainty = min(max(1.0 - confidence, 0.0), 1.0)
        classes = sorted(set(posterior) | {vote_label for vote_label, _ in votes})
        trusted, n_trusted, n_dissent = self._trusted(label, classes, votes)
        model: float | None = None
        with_model = uncertainty
        if label is not None and model_label is not None and model_confidence is not None:
            c = min(max(float(model_confidence), 0.0), 1.0)
            model = c if model_label != label else 1.0 - c
            with_model = self._with_model(posterior, label, model_label, c)
        if gold is not None:
            p_wrong = 0.0
        else:
            p_wrong = 1.0 - (1.0 - with_model) * (1.0 - self.trusted_weight * trusted)
        return ReviewScore(
            priority=value * p_wrong,
            p_wrong=p_wrong,
            consensus_label=label,
            consensus_confidence=confidence,
            uncertainty=uncertainty,
            uncertainty_with_model=with_model,
            trusted=trusted,
            trusted_votes=n_trusted,
            trusted_dissent=n_dissent,
            model=model,
            model_label=model_label,
            model_confidence=model_confidence,
            gold=gold,
        )

    def _with_model(
        self, posterior: Mapping[str, float], label: str, model_label: str, confidence: float
    ) -> float:
        """``1 - P(label)`` once the pre-label is added to ``posterior`` as one more vote."""
        k = len(set(posterior) | {model_label})
        if k < 2:
            return 0.0
        c = min(max(confidence, 1e-9), _MAX_RELIABILITY)
        # Likelihood of the pre-label per true class, relative to a class it does not name.
        boost = (c * (k - 1) / (1.0 - c)) ** self.model_weight
        named = posterior.get(model_label, 0.0)
        total = sum(posterior.values()) + named * (boost - 1.0)
        mine = posterior[label] * (boost if label == model_label else 1.0)
        return min(max(1.0 - mine / total, 0.0), 1.0) if total > 0 else 0.0

    def _trusted(
        self, label: str | None, classes: Sequence[str], votes: Sequence[tuple[str, float]]
    ) -> tuple[float, int, int]:
        """(mass the trusted votes alone put on labels other than ``label``, trusted votes,
        trusted votes against ``label``)."""
        k = len(classes)
        if label is None or k < 2:
            return 0.0, 0, 0
        chance = 1.0 / k
        log_odds = dict.fromkeys(classes, 0.0)
        n_trusted = n_dissent = 0
        for vote_label, reliability in votes:
            if (reliability - chance) / (1.0 - chance) < self.trusted_skill:
                continue
            r = min(reliability, _MAX_RELIABILITY)
            # One-coin: the truth is r(K-1)/(1-r) times likelier to be this label than another.
            log_odds[vote_label] += math.log(r * (k - 1) / (1.0 - r))
            n_trusted += 1
            n_dissent += vote_label != label
        if n_trusted == 0:
            return 0.0, 0, 0
        top = max(log_odds.values())
        total = sum(math.exp(v - top) for v in log_odds.values())
        return 1.0 - math.exp(log_odds[label] - top) / total, n_trusted, n_dissent


def confidence_band(confidence: float, edges: Sequence[float] = (0.6, 0.8, 0.95)) -> str:
    """The band of a consensus confidence, for strata such as ``f"{project}|{band}"``.

    >>> [confidence_band(c) for c in (0.5, 0.6, 0.9, 0.99)]
    ['<0.6', '0.6-0.8', '0.8-0.95', '>=0.95']
    """
    if not edges or confidence < edges[0]:
        return f"<{edges[0]:g}" if edges else "all"
    for low, high in itertools.pairwise(edges):
        if confidence < high:
            return f"{low:g}-{high:g}"
    return f">={edges[-1]:g}"


# --- sampling -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewPick:
    """An item chosen for expert review.

    ``kind`` is ``"priority"`` (among the window's highest priorities) or ``"random"`` (the
    stratified random share); a random pick's ``inclusion_probability`` is the probability
    that this item, as offered, was drawn, which :func:`audit_estimate` needs (``None`` for
    priority picks, which an audit must leave out). ``ts`` is the offer's event time,
    ``window_start`` the start of the window it was decided in, ``rank`` its 1-based place
    among the window's picks of its kind (by priority for priority picks).
    """

    item: str
    kind: Literal["priority", "random"]
    priority: float
    stratum: str
    ts: float
    window_start: float
    inclusion_probability: float | None
    rank: int
    reason: str = ""


@dataclass
class _Offer:
    priority: float
    stratum: str
    ts: float
    seq: int
    reason: str


class ReviewSampler(base.Base):
    """Streaming review picks under a budget per hour of event time, with a random share.

    Call :meth:`offer` when an item is ready to be judged (closed, or reached enough votes: the
    caller decides). Offers are collected per window of ``window_seconds`` of event time; when
    a window closes (an offer or :meth:`advance` with a time past its end, or :meth:`flush`),
    its picks are returned: a window gets ``budget_per_hour`` spread over the hour's windows
    (its allotment ``A``; a budget not used in a window is not carried over). Of ``A``:

    * a random share: ``x = min(A * random_share, N)`` slots in expectation for the ``N`` items
      offered in the window (``x`` rounded at random to a neighbouring integer), drawn as a
      systematic sample over the items grouped by stratum and shuffled within each stratum:
      every stratum gets its proportional share (up to rounding) and every item is drawn with
      probability exactly ``x / N``;
    * the highest priorities among the items not drawn at random fill the rest of ``A``.

    So the windows of an hour of event time never pick more than ``budget_per_hour`` items,
    and each random pick carries its inclusion probability for :func:`audit_estimate`. A pick
    is known when its window closes: up to ``window_seconds`` of event time after its offer.
    ``offered_`` counts the items offered per stratum in closed windows (an audit's
    population), ``picked_`` the picks per kind.

    At most once per item: an item offered again within the open window replaces its earlier
    offer (its newest priority counts); an item already picked is ignored as long as it is
    among the last ``max_remembered`` picks (a bounded memory: a pick older than that can be
    picked again if offered again). An item offered in a window that did not pick it may be
    offered again later and is then part of that later window's population; offer each item
    once (when it is ready) for an audit whose population is items.

    An offer whose window has already closed (late event time) joins the open window.

    Memory: the offers of the open window (one small record each) and ``max_remembered`` ids;
    a window that sees more items needs more, so shorter windows bound it for busy streams, at
    the cost of choosing the top priorities among fewer items.

    Parameters
    ----------
    budget_per_hour
        Items picked per hour of event time at most; at least the number of windows per hour
        (every window may pick something, so every offer has a chance to be drawn).
    random_share
        Share of each window's allotment drawn at random (0: no audit possible).
    window_seconds
        Length of a decision window; must divide an hour (3600 seconds).
    seed
        Seed of the random draws; equal seeds and offers give equal picks.
    max_remembered
        Picked item ids remembered to keep them from being picked again.

    Examples
    --------
    >>> sampler = ReviewSampler(budget_per_hour=4, random_share=0.25, seed=1)
    >>> picks = []
    >>> for n in range(40):  # forty items in the first hour, priorities 0.00 ... 0.39
    ...     picks += sampler.offer(f"item{n}", n / 100, ts=60.0 * n + 1, stratum="p")
    >>> picks
    []
    >>> picks = sampler.advance(3600.0)  # the hour is over
    >>> [(p.item, p.kind) for p in picks]
    [('item22', 'random'), ('item39', 'priority'), ('item38', 'priority'), ('item37', 'priority')]
    >>> picks[0].inclusion_probability
    0.025
    >>> sampler.offer("item39", 0.99, ts=3700.0)  # already picked: ignored
    []
    """

    def __init__(
        self,
        budget_per_hour: int = 100,
        random_share: float = 0.2,
        window_seconds: int = SECONDS_PER_HOUR,
        seed: int = 0,
        max_remembered: int = 100_000,
    ) -> None:
        if window_seconds <= 0 or SECONDS_PER_HOUR % window_seconds:
            raise ValueError(f"window_seconds must divide 3600, got {window_seconds}")
        windows = SECONDS_PER_HOUR // window_seconds
        if budget_per_hour < windows:
            raise ValueError(
                f"budget_per_hour must be at least the {windows} windows per hour, "
                f"got {budget_per_hour}"
            )
        if not 0.0 <= random_share <= 1.0:
            raise ValueError(f"random_share must be in [0, 1], got {random_share}")
        if max_remembered < 0:
            raise ValueError(f"max_remembered must be >= 0, got {max_remembered}")
        self.budget_per_hour = budget_per_hour
        self.random_share = random_share
        self.window_seconds = window_seconds
        self.seed = seed
        self.max_remembered = max_remembered
        self._rng = random.Random(seed)  # noqa: S311 - reproducible sampling, not secrecy
        self._window: int | None = None  # index of the open window
        self._closed_through: int | None = None  # index of the last window closed
        self._offers: dict[str, _Offer] = {}
        self._seq = 0
        self._picked: deque[str] = deque()
        self._picked_set: set[str] = set()
        self.offered_: dict[str, int] = {}  # stratum -> items offered in closed windows
        self.picked_: dict[str, int] = {"priority": 0, "random": 0}

    # --- budget ---------------------------------------------------------------------------
    def allotment(self, window: int) -> int:
        """Picks allowed in window number ``window`` (``floor(ts / window_seconds)``): the
        hour's budget spread over its windows, adding up to exactly ``budget_per_hour``."""
        per_hour = SECONDS_PER_HOUR // self.window_seconds
        j = window % per_hour
        b = self.budget_per_hour
        return (j + 1) * b // per_hour - j * b // per_hour

    @property
    def n_offered(self) -> int:
        """Items offered in the windows closed so far: the population of an audit."""
        return sum(self.offered_.values())

    # --- streaming ------------------------------------------------------------------------
    def offer(
        self, item: str, priority: float, ts: float, stratum: str = "", reason: str = ""
    ) -> list[ReviewPick]:
        """Offer ``item`` with its review ``priority`` at event time ``ts`` (seconds), in
        ``stratum``; ``reason`` is carried to its pick. Returns the picks of the windows this
        offer's time closed (usually none)."""
        picks = self.advance(ts)
        if item in self._picked_set:
            return picks
        window = math.floor(ts / self.window_seconds)
        if self._closed_through is not None:
            window = max(window, self._closed_through + 1)
        if self._window is None:
            self._window = window
        self._offers.pop(item, None)  # a re-offer goes to the end, with its newest priority
        self._offers[item] = _Offer(float(priority), stratum, float(ts), self._seq, reason)
        self._seq += 1
        return picks

    def advance(self, ts: float) -> list[ReviewPick]:
        """Close the open window if event time ``ts`` is past its end; its picks."""
        if self._window is not None and ts >= (self._window + 1) * self.window_seconds:
            return self._close()
        return []

    def flush(self) -> list[ReviewPick]:
        """Close the open window now (end of a stream, shutdown); its picks. Later offers
        with times in it join the next window, so the hour's budget still holds."""
        return self._close() if self._window is not None else []

    def _close(self) -> list[ReviewPick]:
        window, offers = self._window, self._offers
        assert window is not None
        self._window, self._offers = None, {}
        self._closed_through = window
        if not offers:
            return []
        start = float(window * self.window_seconds)
        budget = self.allotment(window)
        n = len(offers)
        by_stratum: dict[str, list[str]] = {}
        for item, o in offers.items():
            by_stratum.setdefault(o.stratum, []).append(item)
            self.offered_[o.stratum] = self.offered_.get(o.stratum, 0) + 1
        rng = self._rng
        x = min(budget * self.random_share, float(n))
        n_random = math.floor(x) + (rng.random() < x - math.floor(x))
        picks: list[ReviewPick] = []
        drawn: set[str] = set()
        if n_random:
            ordered: list[str] = []
            for stratum in sorted(by_stratum):
                members = by_stratum[stratum]
                rng.shuffle(members)
                ordered += members
            step = n / n_random
            u = rng.random() * step
            for j in range(n_random):
                item = ordered[min(math.floor(u + j * step), n - 1)]
                drawn.add(item)
                picks.append(self._pick(item, offers[item], "random", start, x / n, j + 1))
        rest = sorted(
            (item for item in offers if item not in drawn),
            key=lambda i: (-offers[i].priority, offers[i].seq),
        )
        for rank, item in enumerate(rest[: budget - n_random], start=1):
            picks.append(self._pick(item, offers[item], "priority", start, None, rank))
        return picks

    def _pick(
        self,
        item: str,
        offer: _Offer,
        kind: Literal["priority", "random"],
        start: float,
        probability: float | None,
        rank: int,
    ) -> ReviewPick:
        self._remember(item)
        self.picked_[kind] += 1
        return ReviewPick(
            item=item,
            kind=kind,
            priority=offer.priority,
            stratum=offer.stratum,
            ts=offer.ts,
            window_start=start,
            inclusion_probability=probability,
            rank=rank,
            reason=offer.reason,
        )

    def _remember(self, item: str) -> None:
        if self.max_remembered == 0:
            return
        self._picked.append(item)
        self._picked_set.add(item)
        while len(self._picked) > self.max_remembered:
            self._picked_set.discard(self._picked.popleft())

    # --- state ----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Parameters and state as JSON-compatible data (no pickling), for checkpoints."""
        version, internal, gauss = self._rng.getstate()
        return {
            "v": _STATE_VERSION,
            "params": self._get_params(),
            "rng": [version, list(internal), gauss],
            "window": self._window,
            "closed_through": self._closed_through,
            "seq": self._seq,
            "offers": [
                [item, o.priority, o.stratum, o.ts, o.seq, o.reason]
                for item, o in self._offers.items()
            ],
            "picked": list(self._picked),
            "offered": dict(self.offered_),
            "picked_by_kind": dict(self.picked_),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ReviewSampler:
        """A sampler that continues exactly where the one that wrote ``state`` stopped."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unknown review sampler state version {state.get('v')!r}")
        sampler = cls(**state["params"])
        version, internal, gauss = state["rng"]
        sampler._rng.setstate((version, tuple(internal), gauss))
        sampler._window = state["window"]
        sampler._closed_through = state["closed_through"]
        sampler._seq = int(state["seq"])
        sampler._offers = {
            item: _Offer(float(p), stratum, float(ts), int(seq), reason)
            for item, p, stratum, ts, seq, reason in state["offers"]
        }
        sampler._picked = deque(state["picked"])
        sampler._picked_set = set(sampler._picked)
        sampler.offered_ = {k: int(v) for k, v in state["offered"].items()}
        sampler.picked_ = {k: int(v) for k, v in state["picked_by_kind"].items()}
        return sampler


# --- audit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEstimate:
    """An estimated consensus error rate from reviewed random picks.

    ``estimator`` is ``"horvitz-thompson"`` when the population size was given (unbiased), else
    ``"hajek"`` (the population size estimated by the same weights: a ratio estimator, nearly
    unbiased and usually less variable). ``standard_error`` treats the draws as independent
    (Poisson sampling), which slightly overstates it for the sampler's fixed-size draws.
    """

    error_rate: float
    standard_error: float
    reviewed: int
    errors: int
    population: float
    estimator: Literal["horvitz-thompson", "hajek"]


def audit_estimate(
    reviews: Iterable[tuple[bool, float]], population: int | None = None
) -> AuditEstimate:
    """The consensus error rate of a population from expert reviews of its random picks.

    ``reviews``: ``(wrong, inclusion_probability)`` per reviewed random pick, ``wrong`` being
    whether the expert found the consensus label wrong. ``population``: how many items were
    offered (e.g. :attr:`ReviewSampler.n_offered`, or the sum of ``offered_`` over the strata
    audited); without it the Hajek estimator is used.

    Examples
    --------
    >>> est = audit_estimate([(True, 0.1), (False, 0.1), (False, 0.1), (False, 0.05)], 50)
    >>> est.error_rate, est.estimator
    (0.2, 'horvitz-thompson')
    >>> round(audit_estimate([(True, 0.1), (False, 0.1), (False, 0.1)]).error_rate, 3)
    0.333

    References
    ----------
    Horvitz, D. G., Thompson, D. J. (1952). A generalization of sampling without replacement
    from a finite universe. Journal of the American Statistical Association 47(260), 663-685.
    """
    pairs = [(bool(wrong), float(p)) for wrong, p in reviews]
    if not pairs:
        raise ValueError("no reviewed random picks to estimate from")
    for _, p in pairs:
        if not 0.0 < p <= 1.0:
            raise ValueError(f"inclusion probabilities must be in (0, 1], got {p}")
    errors = sum(wrong for wrong, _ in pairs)
    weighted = sum(1.0 / p for wrong, p in pairs if wrong)
    if population is not None:
        if population <= 0:
            raise ValueError(f"population must be positive, got {population}")
        size = float(population)
        rate = weighted / size
        variance = sum((1.0 - p) / (p * p) for wrong, p in pairs if wrong) / (size * size)
        estimator: Literal["horvitz-thompson", "hajek"] = "horvitz-thompson"
    else:
        size = sum(1.0 / p for _, p in pairs)
        rate = weighted / size
        variance = sum((1.0 - p) / (p * p) * (wrong - rate) ** 2 for wrong, p in pairs) / (
            size * size
        )
        estimator = "hajek"
    return AuditEstimate(
        error_rate=rate,
        standard_error=math.sqrt(variance),
        reviewed=len(pairs),
        errors=errors,
        population=size,
        estimator=estimator,
    )
