"""The privacy-signal simulator: seeded, valid, ordered, and incidents do what they say."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from labelwatch.privacy_simulator import (
    ExposureIncident,
    PrivacySimulationConfig,
    PrivacySimulator,
    SpikeIncident,
)
from labelwatch.schemas.events import PrivacySignal
from labelwatch.simulator import PROJECT_LABELS

START = datetime(2026, 2, 2, tzinfo=UTC)


def events(seed: int, hours: float, incidents: tuple[object, ...] = ()) -> list[dict[str, object]]:
    sim = PrivacySimulator(PrivacySimulationConfig(seed=seed))
    end = START + timedelta(hours=hours)
    return [s.event for s in sim.signals(START, end, incidents)]  # type: ignore[arg-type]


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    assert events(4, 3) == events(4, 3)
    assert events(4, 3) != events(5, 3)


def test_defaults_follow_the_label_simulator() -> None:
    config = PrivacySimulationConfig()
    assert config.projects == tuple(PROJECT_LABELS)
    annotators = {e["annotator_id"] for e in events(1, 6) if e["annotator_id"] is not None}
    assert annotators <= {f"ann-{i:03d}" for i in range(24)}
    assert len(annotators) > 12


def test_every_event_is_a_valid_privacy_signal_in_ts_order() -> None:
    spike = SpikeIncident("animals", "redaction_failed", START + timedelta(hours=1), 1800.0)
    exposure = ExposureIncident("sentiment", START + timedelta(hours=2), "ann-003", "it-1")
    raw = events(2, 4, (spike, exposure))
    signals = [PrivacySignal.model_validate_json(json.dumps(e)) for e in raw]
    assert [s.ts for s in signals] == sorted(s.ts for s in signals)
    assert all(START <= s.ts < START + timedelta(hours=4) for s in signals)
    assert len({s.event_id for s in signals}) == len(signals)
    assert {s.kind for s in signals} >= {"pii_detected", "redaction_failed", "consent_revoked"}


def test_background_never_trips_the_exposure_or_export_rules() -> None:
    for e in events(3, 24):
        if e["kind"] == "pii_exposed_to_annotator":
            assert e["severity"] in ("low", "medium")
        if e["kind"] == "bulk_export":
            assert e["severity"] != "critical"


def test_spike_multiplies_the_rate_of_its_series_only() -> None:
    spike = SpikeIncident("moderation", "pii_detected", START + timedelta(hours=3), 7200.0, 5.0)
    sim = PrivacySimulator(PrivacySimulationConfig(seed=6))
    end = START + timedelta(hours=6)
    plain = list(sim.signals(START, end))
    spiked = list(sim.signals(START, end, [spike]))

    def in_spike(signals: list, project: str, kind: str) -> int:  # type: ignore[type-arg]
        return sum(
            1
            for s in signals
            if s.event["project"] == project
            and s.event["kind"] == kind
            and spike.start.isoformat() <= str(s.event["ts"]) < spike.end.isoformat()
        )

    ratio = in_spike(spiked, "moderation", "pii_detected") / in_spike(
        plain, "moderation", "pii_detected"
    )
    assert 4.0 < ratio < 6.0  # about 700 background signals: 5x within sampling noise
    tagged = Counter(s.incident for s in spiked)
    assert tagged[spike.name] == in_spike(spiked, "moderation", "pii_detected") - in_spike(
        plain, "moderation", "pii_detected"
    )
    # Other series are untouched (same arrival times).
    others = [
        (s.event["project"], s.event["kind"], s.event["ts"])
        for s in plain
        if (s.event["project"], s.event["kind"]) != ("moderation", "pii_detected")
    ]
    assert others == [
        (s.event["project"], s.event["kind"], s.event["ts"])
        for s in spiked
        if (s.event["project"], s.event["kind"]) != ("moderation", "pii_detected")
    ]


def test_exposure_incident_is_one_critical_signal_with_its_ids() -> None:
    exposure = ExposureIncident("animals", START + timedelta(minutes=30), "ann-011", "animals-9")
    sim = PrivacySimulator(PrivacySimulationConfig(seed=1))
    out = [s for s in sim.signals(START, START + timedelta(hours=1), [exposure]) if s.incident]
    assert len(out) == 1
    e = out[0].event
    assert out[0].incident == exposure.name
    assert (e["kind"], e["severity"], e["annotator_id"], e["item_id"]) == (
        "pii_exposed_to_annotator",
        "critical",
        "ann-011",
        "animals-9",
    )
    assert PrivacySignal.model_validate_json(json.dumps(e)).ts == exposure.ts


def test_daily_rhythm_peak_to_trough() -> None:
    config = PrivacySimulationConfig(seed=2)
    by_hour = Counter(
        datetime.fromisoformat(str(e["ts"])).hour
        for e in (
            s.event for s in PrivacySimulator(config).signals(START, START + timedelta(days=3))
        )
    )
    peak = by_hour[int(config.peak_hour)]
    trough = by_hour[(int(config.peak_hour) + 12) % 24]
    assert 2.8 < peak / trough < 4.0  # (1 + 0.55) / (1 - 0.55) = 3.4 at the extremes


def test_random_incidents_only_on_detectable_series_spread_over_the_days() -> None:
    sim = PrivacySimulator(PrivacySimulationConfig(seed=9))
    end = START + timedelta(days=7)
    incidents = sim.random_incidents(START, end, n_spikes=24, n_exposures=6)
    assert incidents == sim.random_incidents(START, end, n_spikes=24, n_exposures=6)
    spikes = [i for i in incidents if isinstance(i, SpikeIncident)]
    exposures = [i for i in incidents if isinstance(i, ExposureIncident)]
    assert len(spikes) == 24 and len(exposures) == 6
    for s in spikes:
        assert sim.config.base_rate(s.project, s.kind) >= 1.0
        assert START + timedelta(hours=2) <= s.start and s.end <= end
        assert 3 * 300 <= s.duration_seconds <= 6 * 300 and s.factor == 5.0
    assert len({s.start.hour for s in spikes}) >= 12
    assert len({(s.project, s.kind) for s in spikes}) >= 8
    # A series' spikes do not overlap.
    by_series: dict[tuple[str, str], list[SpikeIncident]] = {}
    for s in spikes:
        by_series.setdefault((s.project, s.kind), []).append(s)
    for group in by_series.values():
        group.sort(key=lambda s: s.start)
        assert all(a.end < b.start for a, b in itertools.pairwise(group))
    assert all(e.severity == "critical" for e in exposures)


def test_empty_range_gives_nothing() -> None:
    assert events(1, 0.0) == []
