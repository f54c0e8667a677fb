"""ML-assisted labeling: how annotators use the model's pre-labels, and how the model agrees
with the crowd.

Labeling tools often show a model's suggestion (a *pre-label*) that the annotator accepts or
changes. Two things go wrong: an annotator stops judging and accepts whatever the model says
(*automation bias*), and the model itself gets worse, e.g. after the data changed (*model
drift*). Both are judged against the crowd, label by label, with what the consensus model knew
*just before* the answer: the item's posterior from its gold or its other votes
(:attr:`~labelwatch.models.drift.AnswerContext.before`), in which the annotator's own answer
plays no part. ``p_model_right`` below is that posterior's probability of the pre-label; labels
whose item had nothing to judge by yet (first vote, no gold) do not count.

Automation bias (one annotator in one project): a pre-label counts as wrong when the crowd is
sure of the item (its posterior's largest value is at least ``sure``, 0.9) and puts less than half
on the pre-label; labels on items the crowd is not sure of yet are not judged (with one weak
vote to go by, an honest annotator who agrees with a right pre-label would look like one who
took a wrong one). The annotator's acceptance rate of wrong pre-labels is the share of those
they answered with. An honest annotator takes a wrong pre-label about as often as they make
that same error on their own; one who rubber-stamps takes nearly all. ``automation_bias``
opens when at least ``min_wrong`` wrong pre-labels were judged and the rate's Wilson lower
bound is at least ``max(ratio * peers, peers + margin)``,
where ``peers`` is the pooled rate of every other annotator of the project; it resolves when
the rate itself falls below that bar. The counts decay with a half-life of ``half_life``
judged pre-labels of the annotator, so a habit that stopped fades and an annotator can recover.

When it fails: the comparison is with peers, so if most annotators of a project rubber-stamp,
none stands out (the report still shows every annotator's rate); and when the crowd itself
follows the model, wrong pre-labels look right. Gold tasks are the remedy for both.

Model drift (one project): ``y = p_model_right`` per judged pre-label. The baseline is the mean
of the first ``warmup`` values; then a one-sided CUSUM for a drop of ``drop``,
``S = max(0, S + (baseline - drop / 2) - y)``, opens ``model_drift`` when ``S > threshold``, and
it resolves when an exponential average of ``y`` (over about ``warmup`` values) is back within
``drop / 4`` of the baseline. ``y`` is nearly 0 or 1 once the crowd is sure (standard deviation
about 0.4) and the labels of one item are judged against overlapping evidence, so the default
``threshold = 25`` is set high: ``bench/assist.py`` measured no false alarm in 300,000 labels,
and a drop of the model's accuracy from 0.8 to 0.5 found 650 to 2,640 labels of the stream
later (three projects, 60% of items pre-labeled).

Cost: O(1) per label; memory: five numbers per annotator and project.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from labelwatch.models.monitor import Finding

__all__ = ["AssistConfig", "AssistMonitor"]


@dataclass(frozen=True)
class AssistConfig:
    """Parameters of :class:`AssistMonitor` (see the module docstring)."""

    min_wrong: float = 5.0
    sure: float = 0.9
    ratio: float = 2.0
    margin: float = 0.25
    z: float = 1.96
    half_life: float = 300.0
    warmup: int = 500
    drop: float = 0.15
    threshold: float = 25.0


@dataclass
class _Annotator:
    shown: float = 0.0  # pre-labels shown (decayed like the rest)
    accepted: float = 0.0  # pre-labels taken as they were
    wrong: float = 0.0  # wrong pre-labels judged
    accepted_wrong: float = 0.0  # wrong pre-labels taken
    open: int = -1  # offset that opened the automation_bias episode, -1 if none


@dataclass
class _Model:
    n: int = 0  # judged pre-labels
    baseline: float = 0.0  # mean agreement over the warm-up
    average: float = 0.0  # exponential average of the agreement since the warm-up
    cusum: float = 0.0
    open: int = -1


def wilson_low(successes: float, n: float, z: float) -> float:
    """Lower bound of the Wilson score interval for a (possibly soft) proportion."""
    if n <= 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


class AssistMonitor:
    """Pre-label use per annotator and the model's agreement with the crowd, in one project.

    Examples
    --------
    An annotator who takes every pre-label, right or wrong, among peers who take wrong ones
    one time in ten:

    >>> m = AssistMonitor(AssistConfig(warmup=10_000))
    >>> found = []
    >>> for i in range(200):
    ...     wrong = i % 4 == 0  # the crowd is sure the pre-label is wrong
    ...     p_right = 0.05 if wrong else 0.95
    ...     for peer in ("a", "b", "c"):
    ...         _ = m.observe(peer, "x", "x" if not wrong or i % 40 == 0 else "y", p_right, i)
    ...     found += m.observe("d", "x", "x", p_right, i)
    >>> [(f.kind, f.state, f.annotator, f.opened_at) for f in found]
    [('automation_bias', 'opened', 'd', 20)]
    >>> round(m.wrong_acceptance("d"), 2), round(m.wrong_acceptance("a"), 2)
    (1.0, 0.1)
    """

    def __init__(self, config: AssistConfig | None = None) -> None:
        self.config = config or AssistConfig()
        self._annotators: dict[str, _Annotator] = {}
        self._model = _Model()
        # Sums over annotators of wrong / accepted_wrong: the pooled rate, minus one's own.
        self._wrong = 0.0
        self._accepted_wrong = 0.0

    # --- reading -------------------------------------------------------------------------
    def acceptance(self, annotator: str) -> float | None:
        """Share of the shown pre-labels the annotator took as they were (decayed)."""
        a = self._annotators.get(annotator)
        return None if a is None or a.shown == 0 else a.accepted / a.shown

    def wrong_acceptance(self, annotator: str) -> float | None:
        """Share of the wrong pre-labels (judged by the crowd) the annotator took."""
        a = self._annotators.get(annotator)
        return None if a is None or a.wrong == 0 else a.accepted_wrong / a.wrong

    def peers_wrong_acceptance(self, annotator: str) -> float | None:
        """The same share pooled over every other annotator of the project."""
        a = self._annotators.get(annotator, _Annotator())
        wrong = self._wrong - a.wrong
        return None if wrong <= 0 else (self._accepted_wrong - a.accepted_wrong) / wrong

    @property
    def model_agreement(self) -> tuple[int, float]:
        """(judged pre-labels, the model's recent agreement with the crowd)."""
        m = self._model
        return m.n, (m.average if m.n > self.config.warmup else m.baseline)

    # --- learning ------------------------------------------------------------------------
    def observe(
        self,
        annotator: str,
        label: str,
        model_label: str,
        p_model_right: float | None,
        offset: int,
        crowd_confidence: float = 1.0,
    ) -> list[Finding]:
        """One label given with a pre-label shown; the episodes it opens or resolves.

        ``p_model_right``: the chance the pre-label is right judging by the item's gold or
        other votes just before this answer, ``None`` when there was nothing to judge by;
        ``crowd_confidence``: the largest value of that posterior."""
        a = self._annotators.get(annotator)
        if a is None:
            a = self._annotators[annotator] = _Annotator()
        accepted = label == model_label
        found: list[Finding] = []
        if p_model_right is None:
            a.shown += 1
            a.accepted += accepted
            return found
        decay = 0.5 ** (1 / self.config.half_life)
        a.shown = a.shown * decay + 1
        a.accepted = a.accepted * decay + accepted
        if crowd_confidence >= self.config.sure and p_model_right < 0.5:
            self._wrong -= a.wrong
            self._accepted_wrong -= a.accepted_wrong
            a.wrong = a.wrong * decay + 1
            a.accepted_wrong = a.accepted_wrong * decay + accepted
            self._wrong += a.wrong
            self._accepted_wrong += a.accepted_wrong
            self._judge_annotator(annotator, a, offset, found)
        self._judge_model(p_model_right, offset, found)
        return found

    def _bar(self, annotator: str) -> float | None:
        peers = self.peers_wrong_acceptance(annotator)
        if peers is None:
            return None
        return max(self.config.ratio * peers, peers + self.config.margin)

    def _judge_annotator(
        self, annotator: str, a: _Annotator, offset: int, found: list[Finding]
    ) -> None:
        config = self.config
        bar = self._bar(annotator)
        if bar is None or a.wrong < config.min_wrong:
            return
        rate = a.accepted_wrong / a.wrong
        low = wilson_low(a.accepted_wrong, a.wrong, config.z)
        peers = self.peers_wrong_acceptance(annotator) or 0.0
        evidence: dict[str, float | int | str | None] = {
            "wrong_prelabels_accepted": round(rate, 4),
            "peers_rate": round(peers, 4),
            "wrong_prelabels_judged": round(a.wrong, 1),  # decayed count
            "prelabels_accepted": round(a.accepted / a.shown, 4) if a.shown else None,
        }
        if a.open < 0 and low >= bar:
            a.open = offset
            found.append(
                Finding(
                    kind="automation_bias",
                    state="opened",
                    severity="warning",
                    annotator=annotator,
                    score=low,
                    threshold=bar,
                    reason=(
                        f"accepts {rate:.0%} of the model's wrong pre-labels, peers "
                        f"{peers:.0%} ({a.wrong:.0f} wrong pre-labels, judged by the crowd)"
                    ),
                    detector="wrong_prelabel_acceptance",
                    evidence=evidence,
                    opened_at=offset,
                )
            )
        elif a.open >= 0 and rate < bar:
            found.append(
                Finding(
                    kind="automation_bias",
                    state="resolved",
                    severity="info",
                    annotator=annotator,
                    score=rate,
                    threshold=bar,
                    reason=f"accepts {rate:.0%} of wrong pre-labels again, peers {peers:.0%}",
                    detector="wrong_prelabel_acceptance",
                    evidence=evidence,
                    opened_at=a.open,
                )
            )
            a.open = -1

    def _judge_model(self, y: float, offset: int, found: list[Finding]) -> None:
        config, m = self.config, self._model
        m.n += 1
        if m.n <= config.warmup:
            m.baseline += (y - m.baseline) / m.n
            m.average = m.baseline
            return
        m.average += (y - m.average) / config.warmup
        m.cusum = max(0.0, m.cusum + (m.baseline - config.drop / 2) - y)
        evidence: dict[str, float | int | str | None] = {
            "baseline_agreement": round(m.baseline, 4),
            "recent_agreement": round(m.average, 4),
            "judged_prelabels": m.n,
        }
        if m.open < 0 and m.cusum > config.threshold:
            m.open = offset
            found.append(
                Finding(
                    kind="model_drift",
                    state="opened",
                    severity="warning",
                    annotator="",
                    score=m.cusum,
                    threshold=config.threshold,
                    reason=(
                        f"the model's pre-labels agree with the crowd {m.average:.0%} of the "
                        f"time lately, {m.baseline:.0%} before"
                    ),
                    detector="prelabel_agreement_cusum",
                    evidence=evidence,
                    opened_at=offset,
                )
            )
        elif m.open >= 0 and m.average >= m.baseline - config.drop / 4:
            found.append(
                Finding(
                    kind="model_drift",
                    state="resolved",
                    severity="info",
                    annotator="",
                    score=m.cusum,
                    threshold=config.threshold,
                    reason=f"the model's pre-labels agree with the crowd {m.average:.0%} again",
                    detector="prelabel_agreement_cusum",
                    evidence=evidence,
                    opened_at=m.open,
                )
            )
            m.open = -1
            m.cusum = 0.0

    # --- state ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        m = self._model
        return {
            "annotators": {
                name: [a.shown, a.accepted, a.wrong, a.accepted_wrong, a.open]
                for name, a in self._annotators.items()
            },
            "model": [m.n, m.baseline, m.average, m.cusum, m.open],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._annotators = {
            name: _Annotator(float(s), float(acc), float(w), float(aw), int(o))
            for name, (s, acc, w, aw, o) in state.get("annotators", {}).items()
        }
        n, baseline, average, cusum, open_ = state.get("model", [0, 0.0, 0.0, 0.0, -1])
        self._model = _Model(int(n), float(baseline), float(average), float(cusum), int(open_))
        self._wrong = sum(a.wrong for a in self._annotators.values())
        self._accepted_wrong = sum(a.accepted_wrong for a in self._annotators.values())
