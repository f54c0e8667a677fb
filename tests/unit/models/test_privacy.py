"""PrivacyMonitor: rate spikes per (project, kind), immediate rules, lateness, state."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from labelwatch.models.privacy import (
    PrivacyConfig,
    PrivacyFinding,
    PrivacyMonitor,
    rate_threshold,
    upper_tail,
)
from labelwatch.schemas.events import PrivacySignal

W = 300.0
START = datetime(2026, 3, 2, tzinfo=UTC)  # a multiple of the window since the epoch
_ids = itertools.count()


def signal(
    seconds: float,
    kind: str = "pii_detected",
    *,
    project: str = "p",
    severity: str = "low",
    annotator_id: str | None = None,
    item_id: str | None = "i1",
    count: int = 1,
) -> PrivacySignal:
    return PrivacySignal(
        event_id=f"s{next(_ids)}",
        ts=START + timedelta(seconds=seconds),
        project=project,
        source="scanner",
        kind=kind,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        annotator_id=annotator_id,
        item_id=item_id,
        count=count,
    )


def poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method in chunks, so large means do not underflow exp(-mean).
    n = 0
    while mean > 0:
        chunk = min(mean, 30.0)
        mean -= chunk
        limit, p = math.exp(-chunk), rng.random()
        while p > limit:
            n += 1
            p *= rng.random()
    return n


def series_times(
    rng: random.Random,
    rate_per_window: float,
    start_s: float,
    end_s: float,
    *,
    rhythm: float = 0.0,
) -> list[float]:
    """Poisson arrival times on [start_s, end_s), optionally with a daily rhythm."""
    out: list[float] = []
    w = math.floor(start_s / W)
    while w * W < end_s:
        hour = (w * W / 3600.0) % 24
        rate = rate_per_window * (1 + rhythm * math.cos(2 * math.pi * (hour - 14) / 24))
        lo, hi = max(start_s, w * W), min(end_s, (w + 1) * W)
        rate *= (hi - lo) / W
        out += [rng.uniform(lo, hi) for _ in range(poisson(rng, rate))]
        w += 1
    return sorted(out)


def feed(
    monitor: PrivacyMonitor, signals: Iterable[PrivacySignal], first_position: int = 0
) -> list[PrivacyFinding]:
    found: list[PrivacyFinding] = []
    for n, s in enumerate(signals, start=first_position):
        found += monitor.observe(s, n)
    return found


def merged(*streams: Iterable[tuple[float, str]]) -> Iterator[PrivacySignal]:
    """(seconds, kind) pairs of several series, in time order, as signals."""
    for t, kind in sorted(itertools.chain(*streams)):
        yield signal(t, kind)


def spikes(found: list[PrivacyFinding], state: str = "opened") -> list[PrivacyFinding]:
    return [f for f in found if f.kind == "privacy_spike" and f.state == state]


# --- rate spikes ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("rate", [6.0, 15.0, 50.0])
def test_5x_spike_in_stationary_poisson_series_opens_within_two_windows(
    seed: int, rate: float
) -> None:
    rng = random.Random(seed)
    spike_start = 4 * 3600 + 0.4 * W  # mid-window
    background = series_times(rng, rate, 0, 6 * 3600)
    extra = series_times(rng, 4 * rate, spike_start, spike_start + 5 * W)
    found = feed(PrivacyMonitor(), merged([(t, "pii_detected") for t in background + extra]))
    opened = spikes(found)
    assert opened, "the spike was not detected"
    first = opened[0]
    delay = (first.ts - (START + timedelta(seconds=spike_start))).total_seconds() / W
    assert 0 <= delay <= 2.0
    assert first.subject == "pii_detected" and first.project == "p"
    assert first.detector == "rate_poisson" and first.score >= first.threshold
    assert first.evidence["ratio"] is not None and float(first.evidence["ratio"]) >= 2.5


def test_alert_fires_as_the_count_crosses_inside_the_window() -> None:
    rng = random.Random(5)
    background = series_times(rng, 10.0, 0, 2 * 3600)
    burst_start = 2 * 3600 + 10.0  # the window [2h, 2h + 5 min) fills within a minute
    burst = [burst_start + k for k in range(60)]
    monitor = PrivacyMonitor()
    found = feed(monitor, merged([(t, "pii_detected") for t in background + burst]))
    (opened,) = spikes(found)
    window_end = START + timedelta(seconds=2 * 3600 + W)
    assert opened.ts < window_end  # before the window closed
    assert opened.score == opened.threshold  # exactly when the running count reached it
    assert opened.evidence["span_windows"] == 1
    assert opened.evidence["window_start"] == (START + timedelta(hours=2)).isoformat()


def test_count_field_is_evidence_not_the_rate() -> None:
    """Signals are counted, not their ``count`` field: one signal of 10,000 rows is one."""
    rng = random.Random(8)
    times = series_times(rng, 10.0, 0, 3 * 3600)
    monitor = PrivacyMonitor()
    feed(monitor, (signal(t) for t in times))
    assert spikes(monitor.observe(signal(3 * 3600 + 1, count=10_000), 10**6)) == []
    burst = [signal(3 * 3600 + 2 + k, count=3) for k in range(60)]
    (opened,) = spikes(feed(monitor, burst, 10**6 + 1))
    assert opened.evidence["count_sum"] == 10_000 + 3 * (int(opened.score) - 1)


def test_no_spike_alerts_beyond_the_budget_on_stationary_series_with_daily_rhythm() -> None:
    """15 series-days per seed, peak/trough 3.4x. The budget is one false alarm a day over
    ~21 series; at most one in these 45 series-days is well within it."""
    rates = {"pii_detected": 20.0, "redaction_failed": 3.0, "consent_revoked": 1.0}
    rates |= {"bulk_export": 0.3, "pii_exposed_to_annotator": 6.0}
    false_alarms = []
    for seed in (11, 12, 13):
        rng = random.Random(seed)
        streams = [
            [(t, kind) for t in series_times(rng, rate, 0, 3 * 86400, rhythm=0.55)]
            for kind, rate in rates.items()
        ]
        false_alarms += spikes(feed(PrivacyMonitor(), merged(*streams)))
    assert len(false_alarms) <= 1


def test_episode_opened_once_then_resolved_when_a_window_is_back_to_normal() -> None:
    rng = random.Random(21)
    spike_start, spike_end = 3 * 3600.0, 3 * 3600.0 + 8 * W
    times = series_times(rng, 10.0, 0, 5 * 3600)
    times += series_times(rng, 40.0, spike_start, spike_end)
    found = feed(PrivacyMonitor(), merged([(t, "pii_detected") for t in times]))
    episode = [f for f in found if f.kind == "privacy_spike"]
    assert [f.state for f in episode] == ["opened", "resolved"]
    opened, resolved = episode
    assert resolved.opened_at == opened.opened_at
    assert resolved.severity == opened.severity == "warning"
    assert resolved.ts > START + timedelta(seconds=spike_end)
    assert resolved.ts <= START + timedelta(seconds=spike_end + 3 * W)


def test_severity_is_critical_at_a_high_ratio() -> None:
    rng = random.Random(4)
    times = series_times(rng, 5.0, 0, 2 * 3600)
    times += [2 * 3600 + 1 + k for k in range(200)]  # 40x within one window
    found = feed(PrivacyMonitor(), merged([(t, "pii_detected") for t in times]))
    (opened,) = spikes(found)
    # It opens at the first crossing (the ratio then is what the count reached).
    ratio = float(opened.evidence["ratio"])  # type: ignore[arg-type]
    assert opened.severity == ("critical" if ratio >= 10 else "warning")


def test_warm_up_gives_no_rate_verdict() -> None:
    burst = [signal(k) for k in range(500)]  # a brand-new series, enormous count
    assert spikes(feed(PrivacyMonitor(), burst)) == []


def test_zero_count_windows_advance_the_baseline_of_a_quiet_series() -> None:
    rng = random.Random(3)
    busy = [(t, "pii_detected") for t in series_times(rng, 20.0, 0, 2 * 3600)]
    # Then pii_detected stops while another kind keeps event time moving for two hours.
    other = [(t, "consent_revoked") for t in series_times(rng, 5.0, 0, 4 * 3600 + W)]
    comeback = [(4 * 3600 + 10.0 + k, "pii_detected") for k in range(12)]
    found = feed(PrivacyMonitor(), merged(busy, other, comeback))
    opened = [f for f in spikes(found) if f.subject == "pii_detected"]
    # 12 signals are little against the old rate of 20, but much against the empty windows.
    assert len(opened) == 1
    assert float(opened[0].evidence["baseline"]) < 1.0  # type: ignore[arg-type]


def test_long_silence_is_handled_and_idle_series_are_dropped() -> None:
    config = PrivacyConfig(idle_seconds=86400.0)
    monitor = PrivacyMonitor(config)
    kinds = ("pii_detected", "redaction_failed", "consent_revoked")
    feed(monitor, (signal(60.0 * k, kinds[k % 3], project=f"p{k % 40}") for k in range(400)))
    assert len(monitor.series) == 120  # (k % 40, k % 3) pairs
    # One series keeps going, sparsely, for three days; the others go quiet.
    feed(monitor, (signal(400 * 60.0 + 3600.0 * h, project="alive") for h in range(72)), 400)
    assert monitor.series == [("alive", "pii_detected")]
    # A gap of a year is bounded work and leaves the monitor usable.
    far = 400 * 60.0 + 365 * 86400.0
    assert feed(monitor, [signal(far, project="alive")], 500) == []
    state = monitor.to_state()
    assert len(state["series"]) == 1
    assert len(state["series"][0]["level"]) <= config.baseline_windows
    assert len(state["series"][0]["spread"]) <= config.dispersion_windows


def test_late_signals_are_counted_and_change_no_window() -> None:
    rng = random.Random(9)
    times = series_times(rng, 10.0, 0, 2 * 3600)
    monitor = PrivacyMonitor()
    feed(monitor, (signal(t) for t in times))
    before = monitor.to_state()
    # 20 minutes behind the newest signal: its window closed long ago.
    late = [signal(times[-1] - 1200 - k) for k in range(50)]
    assert feed(monitor, late, 10_000) == []
    after = monitor.to_state()
    assert monitor.late_signals == 50 == after["late"]
    assert after["series"] == before["series"]


def test_a_late_access_violation_still_alerts() -> None:
    monitor = PrivacyMonitor()
    feed(monitor, [signal(0.0), signal(3600.0)])
    found = monitor.observe(signal(10.0, "access_violation", annotator_id="ann-001"), 2)
    assert monitor.late_signals == 1
    assert [(f.kind, f.severity) for f in found] == [("access_violation", "critical")]


# --- immediate rules --------------------------------------------------------------------------
RULES = [
    ("pii_exposed_to_annotator", "low", None),
    ("pii_exposed_to_annotator", "medium", None),
    ("pii_exposed_to_annotator", "high", ("privacy_exposure", "warning")),
    ("pii_exposed_to_annotator", "critical", ("privacy_exposure", "critical")),
    ("access_violation", "low", ("access_violation", "critical")),
    ("access_violation", "medium", ("access_violation", "critical")),
    ("access_violation", "high", ("access_violation", "critical")),
    ("access_violation", "critical", ("access_violation", "critical")),
    ("bulk_export", "low", None),
    ("bulk_export", "medium", None),
    ("bulk_export", "high", None),
    ("bulk_export", "critical", ("access_violation", "critical")),
    ("pii_detected", "critical", None),
    ("redaction_failed", "critical", None),
    ("consent_revoked", "critical", None),
    ("deletion_requested", "critical", None),
]


@pytest.mark.parametrize(("kind", "severity", "expected"), RULES)
def test_immediate_rules(kind: str, severity: str, expected: tuple[str, str] | None) -> None:
    s = signal(5.0, kind, severity=severity, annotator_id="ann-007", item_id="it-3")
    found = PrivacyMonitor().observe(s, 17)
    if expected is None:
        assert found == []
        return
    (f,) = found
    assert (f.kind, f.severity, f.state) == (*expected, "opened")
    assert (f.subject, f.annotator_id, f.item_id) == ("ann-007", "ann-007", "it-3")
    assert f.opened_at == 17 and f.ts == s.ts and f.detector == f"rule:{kind}"
    assert f.evidence["event_id"] == s.event_id
    assert len(f.evidence) <= 16


def test_rule_subject_falls_back_to_item_then_event() -> None:
    monitor = PrivacyMonitor()
    by_item = signal(1.0, "access_violation", item_id="it-9")
    by_event = signal(2.0, "bulk_export", severity="critical", item_id=None)
    (a,) = monitor.observe(by_item, 0)
    (b,) = monitor.observe(by_event, 1)
    assert (a.subject, a.annotator_id, a.item_id) == ("it-9", "", "it-9")
    assert (b.subject, b.annotator_id, b.item_id) == (by_event.event_id, "", "")


def test_every_rule_signal_is_its_own_episode() -> None:
    monitor = PrivacyMonitor()
    same = [signal(1.0 + k, "access_violation", annotator_id="ann-001") for k in range(3)]
    found = feed(monitor, same)
    assert [f.opened_at for f in found] == [0, 1, 2]


# --- state ------------------------------------------------------------------------------------
def test_state_round_trip_gives_identical_subsequent_findings() -> None:
    rng = random.Random(17)
    streams = [
        [(t, "pii_detected") for t in series_times(rng, 12.0, 0, 5 * 3600, rhythm=0.5)],
        [(t, "consent_revoked") for t in series_times(rng, 2.0, 0, 5 * 3600)],
        [(t, "pii_detected") for t in series_times(rng, 48.0, 3 * 3600, 3 * 3600 + 6 * W)],
        [(3 * 3600 + 4 * W + 7.0, "access_violation")],
    ]
    stream = list(merged(*streams))
    # Checkpoint in the middle of the spike, with an episode open and windows still open.
    cut = next(n for n, s in enumerate(stream) if s.ts >= START + timedelta(seconds=10_900))
    original = PrivacyMonitor()
    head = feed(original, stream[:cut])
    state = json.loads(json.dumps(original.to_state()))
    assert any(s["episode"] for s in state["series"]) and any(s["open"] for s in state["series"])
    restored = PrivacyMonitor.from_state(state)
    tail_original = feed(original, stream[cut:], cut)
    tail_restored = feed(restored, stream[cut:], cut)
    assert tail_restored == tail_original
    assert [f.state for f in head + tail_original if f.kind == "privacy_spike"] == [
        "opened",
        "resolved",
    ]
    assert restored.to_state() == original.to_state()


def test_unknown_state_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="version"):
        PrivacyMonitor.from_state({"v": 99})


# --- the count law ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mean", "variance"), [(0.04, 0.05), (0.5, 0.5), (2.2, 2.5), (15, 15), (15, 40), (900, 1200)]
)
@pytest.mark.parametrize("alpha", [1e-5, 1e-2])
def test_rate_threshold_is_the_smallest_count_with_tail_below_alpha(
    mean: float, variance: float, alpha: float
) -> None:
    k = rate_threshold(mean, variance, alpha)
    assert upper_tail(k, mean, variance) < alpha <= upper_tail(k - 1, mean, variance)


def test_upper_tail_matches_poisson_sum() -> None:
    mean = 3.0
    exact = 1 - sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(7))
    assert upper_tail(7, mean, mean) == pytest.approx(exact, rel=1e-9)
