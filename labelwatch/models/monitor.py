"""Per-annotator monitoring of one project: the detectors, the rules and their episodes.

Pure: :class:`AnnotatorMonitor` turns each label (with what the consensus model knew about it)
into :class:`Finding` s, each the opening, update or resolution of an *episode* of one kind
for one annotator. An episode opens once, when its detector fires, and stays open until the
annotator recovers, so a persistent problem gives one alert, not one per label. An open
episode that gets worse is ``updated`` (same episode). After an episode resolves, its rule is
in cooldown for that annotator (``cooldown_seconds`` of event time, per rule in
``cooldowns``): a new episode of the rule opening within it is held back, and announced when
the cooldown ends if its condition still holds then.

Kinds and what opens / resolves them:

``annotator_drift``
    Any of the annotator's change detectors (:mod:`labelwatch.models.drift`) fires:
    answers toward random, the answer mix toward one class, or the time per answer.
    ``updated`` (severity critical) when a second detector fires during the episode.
    Resolved when every detector that fired has recovered.
``spammer_suspected``
    After ``spam_min_labels`` answers: chance-corrected agreement ``kappa`` below
    ``spam_kappa`` (constant or random answering) while the reliability model does not rate
    the annotator clearly better (upper end of its accuracy interval below halfway from chance
    to perfect: the other votes kappa is measured against may be spammers' too), or the
    median time per answer below ``fast_answer_ms``. Resolved when kappa rises above twice
    ``spam_kappa`` and the pace is plausible again.
``low_reliability``
    After ``low_reliability_min_labels`` answers: the upper end of the credible interval of
    the annotator's accuracy is below ``chance + low_reliability_margin * (1 - chance)``.
    Resolved when the lower end is above it.
``annotator_anomaly``
    Two episodes of this kind, each with its own detector:

    * ``robust_z:<feature>``: the behaviour-anomaly score (largest robust z-score of the
      annotator's features against the population) above ``anomaly_threshold``; resolved
      below half of it.
    * ``copied_answers``: the annotator and a partner agree far more than either does with
      anyone else (:class:`~labelwatch.models.behaviour.CopiedAnswers`, after
      ``copy_min_shared`` shared items, at significance ``copy_alpha``); both get an alert
      naming the other. Resolved when, over at least ``copy_min_shared`` items shared since,
      they disagree at least half as often as each does with others.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labelwatch.models.behaviour import (
    AgreementBeyondChance,
    AnomalyFeatures,
    CopiedAnswers,
    CopyVerdict,
    PopulationScaler,
    SpeedRule,
)
from labelwatch.models.drift import (
    AnswerContext,
    DriftReport,
    LabelMixCusum,
    RandomAnsweringCusum,
    SpeedCusum,
)
from labelwatch.models.reliability import AnnotatorReliability

__all__ = ["AnnotatorMonitor", "Finding", "MonitorConfig", "reliability_lookup"]


@dataclass(frozen=True)
class MonitorConfig:
    """Detector settings (the worker's come from :class:`labelwatch.settings.Settings`).

    ``drift_target_arl`` is the false-alarm budget of ``annotator_drift``: the average number
    of labels between false alarms of a stationary annotator, shared equally by the three
    change detectors (each gets three times as many).
    """

    drift_target_arl: float = 10_000.0
    drift_warmup: int = 20
    drift_guard: int = 30
    drift_epsilon: float = 0.05
    spam_min_labels: int = 30
    spam_kappa: float = 0.3
    spam_confidence: float = 1.64
    fast_answer_ms: float = 500.0
    low_reliability_min_labels: int = 30
    low_reliability_margin: float = 0.25
    anomaly_threshold: float = 6.0
    anomaly_min_labels: int = 30
    copy_min_shared: int = 30
    copy_alpha: float = 1e-8
    copy_max_ratio: float = 0.25
    cooldown_seconds: float = 600.0
    cooldowns: tuple[tuple[str, float], ...] = ()  # (episode, seconds): per-rule overrides

    def cooldown(self, episode: str) -> float:
        """Event-time seconds after an episode resolves during which a new one is held."""
        return dict(self.cooldowns).get(episode, self.cooldown_seconds)


@dataclass(frozen=True)
class Finding:
    """An episode opened, updated or resolved at one label."""

    kind: str
    state: str  # "opened", "updated" or "resolved"
    severity: str
    annotator: str
    score: float
    threshold: float
    reason: str
    detector: str
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)
    opened_at: int = -1  # position (offset) of the label that opened the episode
    episode: str = ""  # the episode's name, when one kind has several (default: ``kind``)

    @property
    def episode_key(self) -> str:
        return self.episode or self.kind


class _Annotator:
    def __init__(self, config: MonitorConfig) -> None:
        arl = 3.0 * config.drift_target_arl
        self.n = 0
        self.correctness = RandomAnsweringCusum(
            target_arl=arl,
            warmup=config.drift_warmup,
            guard=config.drift_guard,
            epsilon=config.drift_epsilon,
        )
        self.label_mix = LabelMixCusum(
            target_arl=arl, warmup=max(config.drift_warmup, 30), guard=config.drift_guard
        )
        # Times per answer are heavy-tailed: the speed baseline needs more answers.
        self.speed = SpeedCusum(
            target_arl=arl, warmup=max(3 * config.drift_warmup, 60), guard=config.drift_guard
        )
        self.kappa = AgreementBeyondChance()
        self.pace = SpeedRule()
        self.features = AnomalyFeatures()
        self.open: dict[str, Finding] = {}  # episode -> the finding that opened it
        self.muted: dict[str, float] = {}  # open episodes held back by the cooldown -> until
        self.resolved_at: dict[str, float] = {}  # episode -> event time it last resolved
        self.informativeness = 0.5  # ((accuracy - chance) / (1 - chance))^2, every 10 labels
        self.drifting: set[str] = set()  # drift detectors in an episode


ReliabilityLookup = Callable[[str], tuple[int, float, float, float] | None]
"""annotator -> (labels, accuracy, accuracy_low, accuracy_high) of its reliability estimate,
or None while there is none to go by (the rules that need it then wait)."""


def reliability_lookup(reliability: AnnotatorReliability) -> ReliabilityLookup:
    """The :data:`ReliabilityLookup` of a consensus model's reliability estimates."""

    def lookup(annotator: str) -> tuple[int, float, float, float]:
        report = reliability.report(annotator)
        return report.n_labels, report.accuracy, report.accuracy_low, report.accuracy_high

    return lookup


class AnnotatorMonitor:
    """Runs the detectors and rules for every annotator of one project.

    Examples
    --------
    >>> monitor = AnnotatorMonitor()
    >>> found = []
    >>> for n in range(80):  # a script: the same answer, in 200 ms, on an item nobody else saw
    ...     ctx = AnswerContext(0, [0.5, 0.5], [0.7, 0.3], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0], 2.0)
    ...     found += monitor.observe("bot", ctx, 0, 2, 200, float(n), None)
    >>> [(f.kind, f.detector) for f in found]
    [('spammer_suspected', 'fast_answers')]
    """

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self._annotators: dict[str, _Annotator] = {}
        self._population = PopulationScaler()
        self._copies = CopiedAnswers(
            min_shared=self.config.copy_min_shared,
            alpha=self.config.copy_alpha,
            max_ratio=self.config.copy_max_ratio,
        )
        self._position = -1
        self._ts = 0.0

    # --- state -------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-ready state (for shard checkpoints)."""
        parts = {"a": self._annotators, "p": self._population, "c": self._copies}
        return {"v": 1, "state": _encode(parts)}

    def load_state(self, state: dict[str, Any]) -> None:
        decoded = _decode(state["state"])
        self._annotators, self._population = decoded["a"], decoded["p"]
        for annotator in self._annotators.values():  # checkpoints before the cooldown
            annotator.__dict__.setdefault("muted", {})
            annotator.__dict__.setdefault("resolved_at", {})
        self._copies = decoded.get("c", self._copies)  # checkpoints before copy detection

    def open_episodes(self, annotator: str) -> dict[str, Finding]:
        state = self._annotators.get(annotator)
        return dict(state.open) if state else {}

    def observe(
        self,
        annotator: str,
        ctx: AnswerContext | None,
        label: int,
        n_classes: int,
        duration_ms: int | None,
        ts: float,
        gold_correct: bool | None,
        reliability: ReliabilityLookup | None = None,
        position: int = -1,
    ) -> list[Finding]:
        """One label of ``annotator``; returns the episodes it opened, updated or resolved.

        ``position`` (the label's offset or row) is kept with an opened episode, so that its
        resolution names the same episode. ``ts`` is the label's event time in seconds: the
        cooldowns count in it."""
        state = self._annotators.get(annotator)
        if state is None:
            state = self._annotators[annotator] = _Annotator(self.config)
        state.n += 1
        self._position = position
        self._ts = ts
        found: list[Finding] = []
        if ctx is not None:
            state.correctness.update(ctx)
            state.kappa.update_context(ctx)
            if ctx.peers:
                self._copied(annotator, state, label, ctx.peers, found)
        state.label_mix.update(label, n_classes)
        if duration_ms is not None:
            state.speed.update(float(duration_ms))
            state.pace.update(float(duration_ms))
        state.features.update(ctx, gold_correct, ts)
        self._drift(annotator, state, found)
        self._spam(annotator, state, found, n_classes, reliability)
        if reliability is not None and state.n % 10 == 0:
            self._reliability(annotator, state, found, reliability, n_classes)
        if state.n % 10 == 0:
            self._anomaly(annotator, state, found)
        if state.muted:
            self._release(state, found)
        return found

    # --- episodes ----------------------------------------------------------------------------
    # An episode is open from the label its detector fires at until the condition clears, so
    # a persistent problem is one alert (deduplication). Within the rule's cooldown after an
    # episode resolved, a new one of the same rule is opened but held back (muted): it is
    # announced once the cooldown has passed and only if its condition still holds, so a
    # condition that flaps around its threshold does not page on every crossing.
    def _open(self, state: _Annotator, finding: Finding, found: list[Finding]) -> None:
        key = finding.episode_key
        if key in state.open:
            return
        finding = dataclasses.replace(finding, opened_at=self._position)
        state.open[key] = finding
        last = state.resolved_at.get(key)
        until = -math.inf if last is None else last + self.config.cooldown(key)
        if self._ts < until:
            state.muted[key] = until
        else:
            found.append(finding)

    def _release(self, state: _Annotator, found: list[Finding]) -> None:
        """Announce held episodes whose cooldown has passed (their condition still holds)."""
        for key, until in list(state.muted.items()):
            if self._ts >= until:
                del state.muted[key]
                found.append(state.open[key])

    def _update(
        self, state: _Annotator, finding: Finding, severity: str, found: list[Finding]
    ) -> None:
        """The open episode got worse (``finding`` says how): same episode, new state."""
        key = finding.episode_key
        opened = state.open[key]
        state.open[key] = dataclasses.replace(opened, severity=severity)
        if key in state.muted:
            return
        found.append(
            dataclasses.replace(
                finding,
                state="updated",
                severity=severity,
                detector=opened.detector,  # the rule that opened it names the episode
                opened_at=opened.opened_at,
            )
        )

    def _resolve(
        self, state: _Annotator, episode: str, score: float, reason: str, found: list[Finding]
    ) -> None:
        opened = state.open.pop(episode, None)
        if opened is None:
            return
        state.resolved_at[episode] = self._ts
        if state.muted.pop(episode, None) is not None:
            return  # never announced, so nothing to resolve
        found.append(
            Finding(
                kind=opened.kind,
                episode=opened.episode,
                state="resolved",
                severity=opened.severity,
                annotator=opened.annotator,
                score=score,
                threshold=opened.threshold,
                reason=reason,
                detector=opened.detector,
                opened_at=opened.opened_at,
            )
        )

    def _drift(self, annotator: str, state: _Annotator, found: list[Finding]) -> None:
        detectors: list[tuple[str, Any]] = [
            ("correctness", state.correctness),
            ("label_mix", state.label_mix),
            ("speed", state.speed),
        ]
        for name, detector in detectors:
            if detector.drift_detected and detector.last_report is not None:
                joined = name not in state.drifting
                state.drifting.add(name)
                finding = _drift_finding(annotator, name, detector.last_report)
                if "annotator_drift" not in state.open:
                    self._open(state, finding, found)
                elif joined:
                    # Two signals at once (say random answers, and faster) are worse than one.
                    severity = "critical" if len(state.drifting) >= 2 else "warning"
                    finding.evidence["detectors"] = ",".join(sorted(state.drifting))
                    self._update(state, finding, severity, found)
            elif detector.recovered:
                state.drifting.discard(name)
                if not state.drifting and "annotator_drift" in state.open:
                    self._resolve(
                        state,
                        "annotator_drift",
                        0.0,
                        f"recovered: {name} back to its baseline",
                        found,
                    )

    def _spam(
        self,
        annotator: str,
        state: _Annotator,
        found: list[Finding],
        n_classes: int,
        reliability: ReliabilityLookup | None,
    ) -> None:
        cfg = self.config
        if state.n < cfg.spam_min_labels:
            return
        kappa = state.kappa
        # A verdict needs agreement measured precisely enough: kappa is below the spam line
        # by at least ``spam_confidence`` standard errors ... or clearly above it.
        upper = kappa.kappa + cfg.spam_confidence * kappa.kappa_stderr
        decided = kappa.information >= 3.0
        median = state.pace.median if state.pace.n >= 10 else math.nan
        fast = not math.isnan(median) and median < cfg.fast_answer_ms
        blind = decided and upper < cfg.spam_kappa
        if blind and reliability is not None and n_classes >= 2:
            # Kappa is measured against the other votes, which early on may be spammers
            # themselves; the reliability model, which weighs every vote by its annotator,
            # must not see the annotator as clearly better than halfway from chance.
            chance = 1.0 / n_classes
            estimate = reliability(annotator)
            blind = estimate is not None and estimate[3] < chance + 0.5 * (1.0 - chance)
        if "spammer_suspected" not in state.open:
            if fast:
                reason = (
                    f"answers in {median:.0f} ms (median of the last {state.pace.n}), "
                    f"under the {cfg.fast_answer_ms:.0f} ms a person needs"
                )
                detector = "fast_answers"
            elif blind:
                constant = kappa.top_share >= 0.9
                how = (
                    f"gives the same answer {kappa.top_share:.0%} of the time"
                    if constant
                    else "answers look random"
                )
                reason = (
                    f"{how}: agreement with the other votes is no better than chance "
                    f"(kappa {kappa.kappa:.2f}, at most {upper:.2f} < {cfg.spam_kappa:.2f}, "
                    f"over {kappa.n} labels)"
                )
                detector = "constant_answers" if constant else "random_answers"
            else:
                return
            self._open(
                state,
                Finding(
                    kind="spammer_suspected",
                    state="opened",
                    severity="critical",
                    annotator=annotator,
                    score=kappa.kappa if detector != "fast_answers" else median,
                    threshold=cfg.spam_kappa if detector != "fast_answers" else cfg.fast_answer_ms,
                    reason=reason,
                    detector=detector,
                    evidence={
                        "labels": kappa.n,
                        "kappa": round(kappa.kappa, 4),
                        "top_answer_share": round(kappa.top_share, 4),
                        "median_ms": None if math.isnan(median) else round(median, 1),
                        "classes": n_classes,
                    },
                ),
                found,
            )
        else:
            opened = state.open["spammer_suspected"]
            if opened.detector == "fast_answers":
                if not math.isnan(median) and median > 1.5 * cfg.fast_answer_ms:
                    self._resolve(
                        state,
                        "spammer_suspected",
                        median,
                        f"answers in {median:.0f} ms again",
                        found,
                    )
            elif (
                decided and kappa.kappa - cfg.spam_confidence * kappa.kappa_stderr > cfg.spam_kappa
            ):
                self._resolve(
                    state,
                    "spammer_suspected",
                    kappa.kappa,
                    f"agreement beyond chance again (kappa {kappa.kappa:.2f})",
                    found,
                )

    def _reliability(
        self,
        annotator: str,
        state: _Annotator,
        found: list[Finding],
        reliability: ReliabilityLookup,
        n_classes: int,
    ) -> None:
        cfg = self.config
        if n_classes < 2:
            return
        estimate = reliability(annotator)
        if estimate is None:
            return
        n, accuracy, low, high = estimate
        chance = 1.0 / n_classes
        state.informativeness = min(max((accuracy - chance) / (1.0 - chance), 0.0), 1.0) ** 2
        if state.n < cfg.low_reliability_min_labels:
            return
        floor = chance + cfg.low_reliability_margin * (1.0 - chance)
        if "low_reliability" not in state.open and high < floor:
            self._open(
                state,
                Finding(
                    kind="low_reliability",
                    state="opened",
                    severity="warning",
                    annotator=annotator,
                    score=high,
                    threshold=floor,
                    reason=(
                        f"accuracy at most {high:.2f} (upper end of its credible interval over "
                        f"{n} labels), below {floor:.2f}; chance is {chance:.2f}"
                    ),
                    detector="reliability_interval",
                    evidence={
                        "labels": n,
                        "accuracy_low": round(low, 4),
                        "accuracy_high": round(high, 4),
                    },
                ),
                found,
            )
        elif "low_reliability" in state.open and low > floor:
            self._resolve(
                state, "low_reliability", low, f"accuracy at least {low:.2f} again", found
            )

    def _anomaly(self, annotator: str, state: _Annotator, found: list[Finding]) -> None:
        cfg = self.config
        features = state.features.vector(state.kappa, state.pace)
        self._population.learn(features)
        if state.n < cfg.anomaly_min_labels:
            return
        feature, z = self._population.score(features)
        if "annotator_anomaly" not in state.open and z > cfg.anomaly_threshold:
            median = self._population.median(feature)
            self._open(
                state,
                Finding(
                    kind="annotator_anomaly",
                    state="opened",
                    severity="info",
                    annotator=annotator,
                    score=z,
                    threshold=cfg.anomaly_threshold,
                    reason=(
                        f"{feature} = {features[feature]:.3g} is {z:.1f} robust standard "
                        f"deviations from the population's median {median:.3g}"
                    ),
                    detector=f"robust_z:{feature}",
                    evidence={k: round(v, 4) for k, v in features.items()},
                ),
                found,
            )
        elif "annotator_anomaly" in state.open and z < cfg.anomaly_threshold / 2:
            self._resolve(
                state, "annotator_anomaly", z, "behaviour back within the population's", found
            )

    def _copied(
        self,
        annotator: str,
        state: _Annotator,
        label: int,
        peers: tuple[tuple[str, int], ...],
        found: list[Finding],
    ) -> None:
        copies = self._copies
        for pair in copies.update(annotator, label, peers, self._informativeness):
            shared = copies.counts(pair)[0]
            for member in pair:
                member_state = self._annotators.get(member)
                if member_state is not None and "copied_answers" in member_state.open:
                    self._copy_recovered(member, member_state, pair, found)
            if shared % 5:
                continue  # test every 5th shared item: the verdict moves slowly
            verdict = copies.check(pair)
            if verdict is None:
                continue
            for member, partner in (pair, pair[::-1]):
                member_state = self._annotators.get(member)
                if member_state is None:
                    continue
                finding = _copy_finding(member, partner, verdict, self.config.copy_max_ratio)
                self._open(member_state, finding, found)

    def _informativeness(self, annotator: str) -> float:
        state = self._annotators.get(annotator)
        return 0.5 if state is None else state.informativeness

    def _copy_recovered(
        self, member: str, state: _Annotator, pair: tuple[str, str], found: list[Finding]
    ) -> None:
        evidence = state.open["copied_answers"].evidence  # the pair's counts when it opened
        partner = str(evidence["partner"])
        if self._copies.key(member, partner) != pair:
            return
        shared_then, differ_then = int(evidence["shared"] or 0), int(evidence["disagreements"] or 0)
        shared, differ = self._copies.counts(pair)
        since, differ_since = shared - shared_then, differ - differ_then
        rate = self._copies.rate(pair)
        if since < self.config.copy_min_shared or rate is None:
            return
        if differ_since >= 2 * self.config.copy_max_ratio * rate * since:
            self._resolve(
                state,
                "copied_answers",
                differ_since / max(rate * since, 1e-9),
                f"disagrees with {partner} on {differ_since} of the {since} "
                "items shared since, like with others",
                found,
            )


def _copy_finding(annotator: str, partner: str, verdict: CopyVerdict, max_ratio: float) -> Finding:
    agree = verdict.shared - verdict.disagreements
    return Finding(
        kind="annotator_anomaly",
        episode="copied_answers",
        state="opened",
        severity="warning",
        annotator=annotator,
        score=verdict.disagreements / max(verdict.expected, 1e-9),
        threshold=max_ratio,
        reason=(
            f"answers like {partner} on {agree} of the {verdict.shared} items both answered; "
            f"each disagrees with the others (weighted by their reliability) on "
            f"{verdict.rate:.0%} of items, so about "
            f"{verdict.expected:.0f} disagreements were expected "
            f"(p = {math.exp(verdict.log_p):.1e})"
        ),
        detector="copied_answers",
        evidence={
            "partner": partner,
            "shared": verdict.shared,
            "disagreements": verdict.disagreements,
            "expected_disagreements": round(verdict.expected, 2),
            "disagreement_with_others": round(verdict.rate, 4),
        },
    )


def _drift_finding(annotator: str, name: str, report: DriftReport) -> Finding:
    if name == "correctness":
        reason = (
            f"answers stopped following the items: accuracy {report.before:.2f} before, "
            f"{report.after:.2f} over the last {report.labels_in_change} labels"
        )
    elif name == "label_mix":
        reason = (
            f"{report.detail}: its share {report.before:.2f} before, {report.after:.2f} over "
            f"the last {report.labels_in_change} labels"
        )
    else:
        reason = (
            f"answers got {report.detail}: median {report.before:.0f} ms before, "
            f"{report.after:.0f} ms over the last {report.labels_in_change} labels"
        )
    return Finding(
        kind="annotator_drift",
        state="opened",
        severity="warning",
        annotator=annotator,
        score=report.statistic,
        threshold=report.threshold,
        reason=reason,
        detector=name,
        evidence={
            "what": report.what,
            "before": round(report.before, 4),
            "after": round(report.after, 4),
            "window_labels": report.labels_in_change,
        },
    )


# --- state encoding: plain JSON for the detectors' attributes ---------------------------------
_STATE_MODULES = ("labelwatch.models.", "river.stats.")


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, deque):
        return {"__deque__": [_encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, set):
        return {"__set__": [_encode(v) for v in sorted(value)]}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    cls = type(value)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if not name.startswith(_STATE_MODULES):
        raise TypeError(f"cannot checkpoint a {name}")
    if dataclasses.is_dataclass(value):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__object__": name, "fields": fields}
    # ``_transient``: attributes derived from the others (caches), left out.
    transient = getattr(cls, "_transient", ())
    kept = {k: v for k, v in vars(value).items() if k not in transient}
    return {"__object__": name, "vars": _encode(kept)}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__deque__" in value:
        return deque((_decode(v) for v in value["__deque__"]), maxlen=value["maxlen"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__set__" in value:
        return {_decode(v) for v in value["__set__"]}
    if "__dict__" in value:
        return {_decode(k): _decode(v) for k, v in value["__dict__"]}
    name = value["__object__"]
    if not name.startswith(_STATE_MODULES):
        raise ValueError(f"refusing to restore a {name}")
    module, _, qualname = name.rpartition(".")
    cls = getattr(importlib.import_module(module), qualname)
    if "fields" in value:
        return cls(**{k: _decode(v) for k, v in value["fields"].items()})
    obj = cls.__new__(cls)
    obj.__dict__.update(_decode(value["vars"]))
    return obj
