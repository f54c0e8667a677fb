"""Privacy-signal monitoring: rate anomalies per (project, kind) and immediate rules.

:class:`PrivacyMonitor` watches the privacy signals of one input partition. Two kinds of
findings come out of it:

* ``privacy_spike``: the number of signals of one kind in one project, counted per event-time
  window (tumbling, ``window_seconds``, aligned to the epoch), is far above what the recent
  past of the same series predicts. One episode per spike: opened when the series becomes
  anomalous, resolved when a window closes back within normal.
* ``privacy_exposure`` / ``access_violation``: immediate rules on single signals (PII shown to
  an annotator at severity high or critical; any access violation; a critical bulk export).
  Each such signal is its own episode and is only ever ``opened``.

The rate model. Each closed window of a series enters a baseline made with River statistics:
the rolling sum of the last ``baseline_windows`` admitted window counts (``utils.Rolling``
over ``stats.Sum``) gives the level ``mu = (sum + 0.5) / n`` (a Poisson-gamma posterior mean,
so a quiet series has a small positive level instead of zero). Over-dispersion is modelled as
uncertainty of the rate itself (a gamma-mixed Poisson, "NB2"): its squared coefficient of
variation ``cv2`` is the pooled moment estimate ``sum((x - mu)^2 - v0) / sum(mu^2)`` over the
last ``dispersion_windows`` (``v0`` the Poisson-gamma variance below; it also absorbs the
lag of the level behind a daily rhythm). A span of ``m`` windows is then predicted as negative
binomial with mean ``m mu`` and variance ``m mu + m^2 mu / n + cv2 m^2 mu^2``: the
Poisson-gamma predictive, which widens while the baseline is short, plus the rate's own
uncertainty, which matters on busy series and vanishes on quiet ones. A span is anomalous
when its count is improbable under that prediction (upper tail below ``alpha``, a
per-series-per-window level chosen with many series in mind) *and* at least ``min_ratio``
times the predicted mean *and* at least ``min_count`` signals.
Two spans are tested: the window that is filling (as each signal arrives, so an alert does
not wait for the window to close; the count only grows, so testing it early adds no false
alarms over testing it at close) and the sum of that window and the one before (catches
low-rate series and spikes that straddle a window boundary).

Robustness. Windows closing during an episode are kept out of the baseline, so a spike does
not raise it; the others enter clipped at ``mean + huber_k`` predictive standard deviations
(Huber's idea), both in the level and in the rate uncertainty. Without the clip, the first
windows of a spike that are not yet anomalous enough raise the level *and* the estimated
uncertainty, which raises the threshold further: the benchmark saw 30-minute 5x spikes on
series of ~2 signals per window go entirely unreported that way. An episode longer than
``adapt_after_windows`` stops
gating: a lasting change of level becomes the new normal and the episode resolves. Verdicts
start after ``min_windows`` closed windows of the series.

When it fails. Spikes smaller than ``min_ratio`` times the baseline are never reported; on
very quiet series (below about one signal per window) a 5x spike is not reliably detected
within two windows; a slow ramp is absorbed into the baseline before it crosses.

Time. The watermark is the largest event time seen minus ``allowed_lateness_seconds``; a
window closes (for every known series, with a zero count where nothing came) once the
watermark passes its end. A signal for a window that already closed is *late*: counted in
:attr:`PrivacyMonitor.late_signals` and nowhere else (its immediate rules still apply). After
a long gap only the windows that can still change the state are replayed (the state after
that many empty windows is a fixed point), so work per gap is bounded. Series without a
signal for ``idle_seconds`` are dropped; per-series state is O(``dispersion_windows``).

Examples
--------
>>> from datetime import UTC, datetime, timedelta
>>> from labelwatch.schemas.events import PrivacySignal
>>> monitor = PrivacyMonitor()
>>> start = datetime(2026, 1, 1, tzinfo=UTC)
>>> def signal(n, seconds):
...     return PrivacySignal(event_id=f"s{n}", ts=start + timedelta(seconds=seconds),
...                          project="p", source="scanner", kind="pii_detected",
...                          severity="low", item_id=f"i{n}")
>>> found, n = [], 0
>>> for minute in range(120):  # two hours at two signals a minute
...     for half in range(2):
...         found += monitor.observe(signal(n, 60 * minute + 30 * half), n); n += 1
>>> for k in range(60):  # then 60 signals within one minute
...     found += monitor.observe(signal(n, 7200 + k), n); n += 1
>>> [(f.kind, f.state, f.subject, f.detector) for f in found]
[('privacy_spike', 'opened', 'pii_detected', 'rate_poisson')]

References
----------
Lawless, J. F. (1987). Negative binomial and mixed Poisson regression. Canadian Journal of
Statistics 15(3), 209-225.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from river import stats, utils

from labelwatch.schemas.events import PrivacySignal

__all__ = ["PrivacyConfig", "PrivacyFinding", "PrivacyMonitor", "rate_threshold"]

_SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
_STATE_VERSION = 1


@dataclass(frozen=True)
class PrivacyConfig:
    """Parameters of :class:`PrivacyMonitor` (defaults hold for any population; no tuning)."""

    window_seconds: float = 300.0  # event-time tumbling windows, aligned to the epoch
    allowed_lateness_seconds: float = 60.0  # a window closes when max ts - this passes its end
    baseline_windows: int = 12  # admitted windows in the level (12 x 5 min = the last hour)
    dispersion_windows: int = 96  # windows in the rate-uncertainty estimate (8 hours)
    min_windows: int = 6  # closed windows of a series before any rate verdict (warm-up)
    alpha: float = 1e-4  # tail level per series, window and span (~12k tests/day for 21 series)
    resolve_alpha: float = 1e-2  # a window is back to normal when its tail is above this
    min_ratio: float = 2.5  # ... and a spike needs at least this ratio over the baseline
    min_count: int = 5  # ... and at least this many signals in the tested span
    critical_ratio: float = 10.0  # a spike at this ratio or above is critical, else warning
    max_rate_cv: float = 1.0  # cap on the rate's coefficient of variation (sqrt of cv2)
    huber_k: float = 2.0  # windows enter the baseline clipped at mean + huber_k predictive sd
    adapt_after_windows: int = 24  # after this long an episode stops gating the baseline
    idle_seconds: float = 7 * 86400.0  # series without a signal for this long are dropped


@dataclass(frozen=True)
class PrivacyFinding:
    """An episode opened or resolved by one signal (see :class:`PrivacyMonitor`)."""

    kind: str  # "privacy_spike" | "privacy_exposure" | "access_violation"
    state: str  # "opened" | "resolved"
    severity: str  # "info" | "warning" | "critical"
    project: str
    subject: str  # the signal kind (spike), else the annotator, item or event id
    annotator_id: str  # "" if none
    item_id: str  # "" if none
    ts: datetime  # event time at which the state was reached (aware UTC)
    score: float  # the statistic (signals in the span; severity rank for rules)
    threshold: float  # the value it had to reach
    reason: str
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)
    detector: str = ""
    opened_at: int = -1  # position of the signal that opened the episode


@functools.lru_cache(maxsize=4096)
def rate_threshold(mean: float, variance: float, alpha: float) -> int:
    """Smallest ``k`` with ``P(N >= k) < alpha`` for a count ``N`` of this mean and variance.

    ``N`` is negative binomial when ``variance > mean``, else Poisson.

    >>> rate_threshold(1.0, 1.0, 1e-5), rate_threshold(1.0, 3.0, 1e-5)
    (9, 25)
    """
    log_pmf, ratio = _count_law(mean, variance)
    # Far enough out that the geometric bound on the rest of the tail is negligible.
    far = max(1, math.ceil(mean + 10.0 * math.sqrt(variance)))
    while True:
        step = ratio(far)
        if step < 1.0 and math.exp(log_pmf(far)) / (1.0 - step) < alpha * 1e-6:
            break
        far = 2 * far
    # Sweep down from there, adding pmf(k) until the tail reaches alpha.
    term = math.exp(log_pmf(far))
    tail = 0.0
    k = far
    while k > 0:
        tail += term
        if tail >= alpha:
            return k + 1
        k -= 1
        term /= ratio(k)
    return 1  # P(N >= 0) = 1 >= alpha, and the sweep found P(N >= 1) < alpha


def upper_tail(k: int, mean: float, variance: float) -> float:
    """``P(N >= k)`` for ``N`` Poisson (``variance <= mean``) or negative binomial."""
    if k <= 0:
        return 1.0
    log_pmf, ratio = _count_law(mean, variance)
    first = log_pmf(k)
    if first < -745.0:  # below the smallest double: the tail is negligible
        return 0.0
    term = math.exp(first)
    total = term
    i = k
    # Past the mode each term shrinks; stop when the rest cannot matter.
    while i - k < 1_000_000:
        step = ratio(i)
        term *= step
        i += 1
        total += term
        if step < 1.0 and term < total * 1e-13:
            break
    return min(1.0, total)


def _count_law(
    mean: float, variance: float
) -> tuple[Callable[[int], float], Callable[[int], float]]:
    """(log pmf(k), pmf(k + 1) / pmf(k)) of a Poisson or negative binomial count."""
    if variance <= mean * (1.0 + 1e-9):
        log_mean = math.log(mean)

        def poisson_log_pmf(k: int) -> float:
            return k * log_mean - mean - math.lgamma(k + 1)

        def poisson_ratio(k: int) -> float:
            return mean / (k + 1)

        return poisson_log_pmf, poisson_ratio
    p = mean / variance
    r = mean * mean / (variance - mean)
    log_p, log_q, lgamma_r = math.log(p), math.log1p(-p), math.lgamma(r)

    def nb_log_pmf(k: int) -> float:
        return math.lgamma(k + r) - lgamma_r - math.lgamma(k + 1) + r * log_p + k * log_q

    def nb_ratio(k: int) -> float:
        return (k + r) / (k + 1) * (1.0 - p)

    return nb_log_pmf, nb_ratio


@dataclass
class _Thresholds:
    mean: float  # predicted signals per window
    cv2: float  # squared coefficient of variation of the rate
    n: int  # admitted windows behind the level
    alarm: tuple[int, int]  # counts that open an episode: one window, two windows
    normal: tuple[int, int]  # counts below which a closed span is back to normal


class _Series:
    """Windows and baseline of one (project, kind)."""

    def __init__(self, project: str, kind: str, first_window: int, config: PrivacyConfig):
        self.project = project
        self.kind = kind
        self.open: dict[int, list[int]] = {}  # window index -> [signals, summed count]
        self.level: utils.Rolling[stats.Sum] = utils.Rolling(
            stats.Sum, window_size=config.baseline_windows
        )
        # (excess variance, mu^2) per admitted window; summed afresh (fsum), so a restored
        # series computes exactly the same as the one that wrote it.
        self.spread: deque[tuple[float, float]] = deque(maxlen=config.dispersion_windows)
        self.last_window = first_window - 1  # last closed window
        self.last_signals = 0  # its signals
        self.last_count = 0  # its summed count field
        self.closed = 0  # windows closed so far (warm-up)
        self.last_seen = first_window  # window of the latest signal
        self.episode: dict[str, Any] | None = None
        self.episode_windows = 0
        self.thresholds = _thresholds(self, config)

    def values(self, rolling: utils.Rolling[stats.Sum]) -> list[int]:
        return [int(args[0]) for args, _ in rolling.window]


def _thresholds(series: _Series, config: PrivacyConfig) -> _Thresholds:
    n = len(series.level.window)
    mean = (series.level.obj.get() + 0.5) / max(n, 1)
    weight = math.fsum(d for _, d in series.spread)
    cv2 = 0.0
    if weight > 0:
        cv2 = math.fsum(e for e, _ in series.spread) / weight
        cv2 = min(config.max_rate_cv**2, max(0.0, cv2))
    alarm, normal = [], []
    for span in (1, 2):
        m = span * mean
        var = _variance(mean, cv2, n, span)
        alarm.append(
            max(
                rate_threshold(m, var, config.alpha),
                math.ceil(config.min_ratio * m),
                config.min_count,
            )
        )
        normal.append(max(rate_threshold(m, var, config.resolve_alpha), 1))
    return _Thresholds(mean, cv2, n, (alarm[0], alarm[1]), (normal[0], normal[1]))


def _variance(mean: float, cv2: float, n: int, span: int) -> float:
    """Predictive variance of a span of ``span`` windows (see the module docstring)."""
    m = span * mean
    return m + span * m / max(n, 1) + cv2 * m * m


class PrivacyMonitor:
    """Rate anomalies and immediate rules over the privacy signals of one partition.

    ``observe`` takes signals in arrival order with their position (Kafka offset or line
    number) and returns the findings they cause. See the module docstring for the method.
    """

    def __init__(self, config: PrivacyConfig | None = None) -> None:
        self.config = config or PrivacyConfig()
        self._series: dict[tuple[str, str], _Series] = {}
        self._max_ts: float | None = None
        self._closed_until: int | None = None  # windows with a smaller index are closed
        self._late = 0
        # After this many empty windows in a row a series' state no longer changes.
        self._fixed_point = max(self.config.baseline_windows, self.config.dispersion_windows) + 2
        self._idle_windows = math.ceil(self.config.idle_seconds / self.config.window_seconds)

    @property
    def late_signals(self) -> int:
        """Signals whose window had already closed (counted in no window)."""
        return self._late

    @property
    def series(self) -> list[tuple[str, str]]:
        """The (project, kind) series currently tracked."""
        return list(self._series)

    # --- the stream ---------------------------------------------------------------------------
    def observe(self, signal: PrivacySignal, position: int) -> list[PrivacyFinding]:
        """Count one signal; returns the episodes it opened or resolved."""
        found: list[PrivacyFinding] = []
        cfg = self.config
        t = signal.ts.timestamp()
        index = math.floor(t / cfg.window_seconds)
        if self._max_ts is None or t > self._max_ts:
            self._max_ts = t
        closable = math.floor((self._max_ts - cfg.allowed_lateness_seconds) / cfg.window_seconds)
        if self._closed_until is None:
            self._closed_until = min(closable, index)
        if closable > self._closed_until:
            self._close_until(closable, position, found)
        if index < self._closed_until:
            self._late += 1
        else:
            self._count(signal, index, position, found)
        rule = _immediate_rule(signal, position)
        if rule is not None:
            found.append(rule)
        return found

    def _count(
        self, signal: PrivacySignal, index: int, position: int, found: list[PrivacyFinding]
    ) -> None:
        key = (signal.project, signal.kind)
        series = self._series.get(key)
        if series is None:
            assert self._closed_until is not None
            series = _Series(signal.project, signal.kind, self._closed_until, self.config)
            self._series[key] = series
        cell = series.open.setdefault(index, [0, 0])
        cell[0] += 1
        cell[1] += signal.count
        series.last_seen = max(series.last_seen, index)
        if series.episode is None and series.closed >= self.config.min_windows:
            previous = self._window(series, index - 1)
            self._judge(series, index, cell, previous, signal.ts, position, found)

    def _window(self, series: _Series, index: int) -> tuple[int, int]:
        """(signals, summed count) of one window of a series (zero if it saw nothing)."""
        if index in series.open:
            return series.open[index][0], series.open[index][1]
        if index == series.last_window:
            return series.last_signals, series.last_count
        return 0, 0

    def _judge(
        self,
        series: _Series,
        index: int,
        cell: list[int],
        previous: tuple[int, int],
        ts: datetime,
        position: int,
        found: list[PrivacyFinding],
    ) -> None:
        """Open an episode if the window ending at ``index`` (alone or with the one before)
        reaches its alarm count."""
        th = series.thresholds
        spans = ((1, cell[0], cell[1]), (2, cell[0] + previous[0], cell[1] + previous[1]))
        for span, signals, count in spans:
            if signals < th.alarm[span - 1]:
                continue
            expected = span * th.mean
            ratio = signals / expected
            severity = "critical" if ratio >= self.config.critical_ratio else "warning"
            first = index - span + 1
            start = _window_start(first, self.config.window_seconds)
            var = _variance(th.mean, th.cv2, th.n, span)
            series.episode = {
                "opened_at": position,
                "severity": severity,
                "ts": ts.timestamp(),
                "window": first,
            }
            series.episode_windows = 0
            span_words = "the window" if span == 1 else "the two windows"
            found.append(
                PrivacyFinding(
                    kind="privacy_spike",
                    state="opened",
                    severity=severity,
                    project=series.project,
                    subject=series.kind,
                    annotator_id="",
                    item_id="",
                    ts=ts,
                    score=float(signals),
                    threshold=float(th.alarm[span - 1]),
                    reason=(
                        f"{series.kind}: {signals} signals in {span_words} from "
                        f"{start:%H:%M}, baseline {expected:.1f} ({ratio:.1f}x)"
                    ),
                    evidence={
                        "window_start": start.isoformat(),
                        "span_windows": span,
                        "signals": signals,
                        "count_sum": count,
                        "baseline": round(expected, 4),
                        "ratio": round(ratio, 4),
                        "rate_cv": round(math.sqrt(th.cv2), 4),
                        "tail_probability": upper_tail(signals, expected, var),
                        "baseline_windows": th.n,
                        "window_seconds": self.config.window_seconds,
                    },
                    detector="rate_poisson",
                    opened_at=position,
                )
            )
            return

    def _close_until(self, stop: int, position: int, found: list[PrivacyFinding]) -> None:
        """Close every series' windows up to (not including) ``stop``."""
        assert self._closed_until is not None
        for key in list(self._series):
            series = self._series[key]
            self._close_series(series, stop, position, found)
            if stop - 1 - series.last_seen > self._idle_windows and not series.open:
                del self._series[key]
        self._closed_until = stop

    def _close_series(
        self, series: _Series, stop: int, position: int, found: list[PrivacyFinding]
    ) -> None:
        while series.last_window + 1 < stop:
            pending = [i for i in series.open if i < stop]
            target = min(pending) if pending else stop
            empty = target - series.last_window - 1  # empty windows before the next one
            if empty > self._fixed_point:
                # The state is a fixed point after that many empty windows: skip the rest.
                for _ in range(self._fixed_point):
                    self._close_window(series, series.last_window + 1, position, found)
                skipped = target - series.last_window - 1
                series.closed += skipped
                if series.episode is not None:
                    series.episode_windows += skipped
                series.last_window = target - 1
                series.last_signals = series.last_count = 0
            while series.last_window + 1 < target:
                self._close_window(series, series.last_window + 1, position, found)
            if target < stop:
                self._close_window(series, target, position, found)

    def _close_window(
        self, series: _Series, index: int, position: int, found: list[PrivacyFinding]
    ) -> None:
        cfg = self.config
        signals, count = series.open.pop(index, [0, 0])
        previous = self._window(series, index - 1)
        th = series.thresholds
        end = _window_start(index + 1, cfg.window_seconds)
        warm = series.closed >= cfg.min_windows
        if warm and series.episode is None:
            # The baseline may have dropped since the last signal of this window.
            self._judge(series, index, [signals, count], previous, end, position, found)
        gated = False
        # Windows before the one the episode was opened on are not part of it.
        if series.episode is not None and index >= int(series.episode["window"]):
            back = signals < th.normal[0] and signals + previous[0] < th.normal[1]
            adapted = series.episode_windows >= cfg.adapt_after_windows
            if back:
                self._resolve(series, signals, th, end, found)
            else:
                series.episode_windows += 1
                gated = not adapted
        if not gated:
            admitted = signals
            if warm:  # before that the level is too short to judge the spread by
                sd = math.sqrt(_variance(th.mean, th.cv2, th.n, 1))
                # Rounded up: rounded down, a quiet series could never climb back from zero.
                admitted = min(signals, math.ceil(th.mean + cfg.huber_k * sd))
                v0 = _variance(th.mean, 0.0, th.n, 1)
                series.spread.append(((admitted - th.mean) ** 2 - v0, th.mean * th.mean))
            series.level.update(admitted)
        series.last_window = index
        series.last_signals, series.last_count = signals, count
        series.closed += 1
        series.thresholds = _thresholds(series, cfg)

    def _resolve(
        self,
        series: _Series,
        signals: int,
        th: _Thresholds,
        end: datetime,
        found: list[PrivacyFinding],
    ) -> None:
        episode = series.episode
        assert episode is not None
        found.append(
            PrivacyFinding(
                kind="privacy_spike",
                state="resolved",
                severity=str(episode["severity"]),
                project=series.project,
                subject=series.kind,
                annotator_id="",
                item_id="",
                ts=end,
                score=float(signals),
                threshold=float(th.normal[0]),
                reason=(
                    f"{series.kind}: back to {signals} signals in the window to {end:%H:%M}, "
                    f"baseline {th.mean:.1f}"
                ),
                evidence={
                    "signals": signals,
                    "baseline": round(th.mean, 4),
                    "episode_windows": series.episode_windows + 1,
                    "opened_window_start": _window_start(
                        int(episode["window"]), self.config.window_seconds
                    ).isoformat(),
                },
                detector="rate_poisson",
                opened_at=int(episode["opened_at"]),
            )
        )
        series.episode = None
        series.episode_windows = 0

    # --- state --------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-ready state (for checkpoints); the config is not part of it."""
        return {
            "v": _STATE_VERSION,
            "max_ts": self._max_ts,
            "closed_until": self._closed_until,
            "late": self._late,
            "series": [
                {
                    "project": s.project,
                    "kind": s.kind,
                    "open": [[i, c[0], c[1]] for i, c in sorted(s.open.items())],
                    "level": s.values(s.level),
                    "spread": [list(pair) for pair in s.spread],
                    "last_window": s.last_window,
                    "last_signals": s.last_signals,
                    "last_count": s.last_count,
                    "closed": s.closed,
                    "last_seen": s.last_seen,
                    "episode": s.episode,
                    "episode_windows": s.episode_windows,
                }
                for s in self._series.values()
            ],
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: PrivacyConfig | None = None
    ) -> PrivacyMonitor:
        """A monitor that continues exactly where the one that wrote ``state`` stopped."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unknown privacy monitor state version {state.get('v')!r}")
        monitor = cls(config)
        monitor._max_ts = state["max_ts"]
        monitor._closed_until = state["closed_until"]
        monitor._late = int(state["late"])
        for raw in state["series"]:
            series = _Series(raw["project"], raw["kind"], 0, monitor.config)
            series.open = {int(i): [int(n), int(c)] for i, n, c in raw["open"]}
            for value in raw["level"]:  # integers: the rolling sums come back exactly
                series.level.update(value)
            series.spread.extend((float(e), float(d)) for e, d in raw["spread"])
            series.last_window = int(raw["last_window"])
            series.last_signals = int(raw["last_signals"])
            series.last_count = int(raw["last_count"])
            series.closed = int(raw["closed"])
            series.last_seen = int(raw["last_seen"])
            series.episode = raw["episode"]
            series.episode_windows = int(raw["episode_windows"])
            series.thresholds = _thresholds(series, monitor.config)
            monitor._series[(series.project, series.kind)] = series
        return monitor


def _window_start(index: int, window_seconds: float) -> datetime:
    return datetime.fromtimestamp(index * window_seconds, tz=UTC)


def _immediate_rule(signal: PrivacySignal, position: int) -> PrivacyFinding | None:
    """The finding a single signal raises regardless of rates, if any."""
    rank = _SEVERITY_RANK[signal.severity]
    if signal.kind == "pii_exposed_to_annotator" and rank >= _SEVERITY_RANK["high"]:
        kind, needed = "privacy_exposure", _SEVERITY_RANK["high"]
        severity = "critical" if signal.severity == "critical" else "warning"
        what = "PII shown to an annotator"
    elif signal.kind == "access_violation":
        kind, needed, severity = "access_violation", _SEVERITY_RANK["low"], "critical"
        what = "access violation"
    elif signal.kind == "bulk_export" and signal.severity == "critical":
        kind, needed, severity = "access_violation", _SEVERITY_RANK["critical"], "critical"
        what = "critical bulk export"
    else:
        return None
    subject = signal.annotator_id or signal.item_id or signal.event_id
    who = f" by annotator {signal.annotator_id}" if signal.annotator_id else ""
    on = f" on item {signal.item_id}" if signal.item_id else ""
    # Attributes are left out: they may carry details that are not allowlisted for storage.
    return PrivacyFinding(
        kind=kind,
        state="opened",
        severity=severity,
        project=signal.project,
        subject=subject,
        annotator_id=signal.annotator_id or "",
        item_id=signal.item_id or "",
        ts=signal.ts,
        score=float(rank),
        threshold=float(needed),
        reason=f"{what} ({signal.severity}, from {signal.source}){who}{on}",
        evidence={
            "event_id": signal.event_id,
            "signal_kind": signal.kind,
            "signal_severity": signal.severity,
            "source": signal.source,
            "count": signal.count,
        },
        detector=f"rule:{signal.kind}",
        opened_at=position,
    )
