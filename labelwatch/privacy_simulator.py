"""A seeded generator of privacy signals with a daily rhythm and injected incidents.

Pure: no Kafka, no clock (the caller passes the time range). The same seed gives the same
stream. Every emitted event is a valid :class:`~labelwatch.schemas.events.PrivacySignal`.

Background traffic. Every (project, kind) series is an inhomogeneous Poisson process whose
rate follows the day: ``base * scale[project] * (1 + amplitude * cos(2 pi (h - peak) / 24))``
signals per window, ``h`` the UTC hour. With the default amplitude 0.55 the peak is 3.4 times
the trough. ``base`` is the rate at the daily mean. Background severities are realistic but
never trip the monitor's immediate rules except through ``access_violation`` itself, which is
rare and always alerts (correctly): PII exposures are low or medium, bulk exports at most high.

Injected incidents, with ground truth on every signal they produce (:attr:`SimulatedSignal.
incident`):

* :class:`SpikeIncident`: a series' rate is multiplied by ``factor`` for ``duration_seconds``
  (the extra ``factor - 1`` times the rate is generated as the incident's own signals);
* :class:`ExposureIncident`: one ``pii_exposed_to_annotator`` signal (critical by default).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from labelwatch.simulator import PROJECT_LABELS

__all__ = [
    "DEFAULT_BASE_RATES",
    "ExposureIncident",
    "PrivacySimulationConfig",
    "PrivacySimulator",
    "SimulatedSignal",
    "SpikeIncident",
]

DEFAULT_BASE_RATES: dict[str, float] = {
    "pii_detected": 15.0,
    "redaction_failed": 3.0,
    "pii_exposed_to_annotator": 1.5,
    "consent_revoked": 1.0,
    "deletion_requested": 0.5,
    "access_violation": 0.2,
    "bulk_export": 0.3,
}
"""Signals per 5-minute window at the daily mean, per kind (before the project's scale)."""

_SOURCES = {
    "pii_detected": "pii-scanner",
    "pii_exposed_to_annotator": "pii-scanner",
    "redaction_failed": "redaction-service",
    "consent_revoked": "consent-service",
    "deletion_requested": "consent-service",
    "access_violation": "access-audit",
    "bulk_export": "access-audit",
}
# Background severity mix per kind: (severity, weight).
_SEVERITIES: dict[str, tuple[tuple[str, float], ...]] = {
    "pii_detected": (("low", 0.5), ("medium", 0.35), ("high", 0.12), ("critical", 0.03)),
    "pii_exposed_to_annotator": (("low", 0.7), ("medium", 0.3)),
    "redaction_failed": (("medium", 0.6), ("high", 0.4)),
    "consent_revoked": (("medium", 1.0),),
    "deletion_requested": (("medium", 0.7), ("high", 0.3)),
    "access_violation": (("medium", 0.5), ("high", 0.5)),
    "bulk_export": (("low", 0.6), ("medium", 0.3), ("high", 0.1)),
}
_PII_TYPES = ("email", "phone", "name", "address", "iban", "face")
_WITH_ANNOTATOR = frozenset(
    {"pii_exposed_to_annotator", "access_violation", "bulk_export", "redaction_failed"}
)


@dataclass(frozen=True)
class SpikeIncident:
    """The rate of one series multiplied by ``factor`` from ``start`` for a while."""

    project: str
    kind: str
    start: datetime
    duration_seconds: float
    factor: float = 5.0

    @property
    def name(self) -> str:
        return f"spike:{self.project}:{self.kind}:{self.start.isoformat()}"

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_seconds)


@dataclass(frozen=True)
class ExposureIncident:
    """One ``pii_exposed_to_annotator`` signal at ``ts``."""

    project: str
    ts: datetime
    annotator_id: str
    item_id: str
    severity: str = "critical"

    @property
    def name(self) -> str:
        return f"exposure:{self.project}:{self.annotator_id}:{self.ts.isoformat()}"


Incident = SpikeIncident | ExposureIncident


def _rng(key: str) -> random.Random:
    """A generator seeded by ``key``: one per purpose and series, so adding incidents leaves
    the background's arrival times unchanged. The randomness models traffic, not secrets."""
    return random.Random(key)  # noqa: S311


@dataclass(frozen=True)
class SimulatedSignal:
    """One generated signal and the incident that produced it (None: background)."""

    event: dict[str, object]
    incident: str | None = None


@dataclass
class PrivacySimulationConfig:
    """Shape of the simulated signal traffic.

    Parameters
    ----------
    seed
        Seed of the random generator; equal seeds give equal streams.
    projects
        Project names (default: those of :mod:`labelwatch.simulator`).
    base_rates
        Signals per window at the daily mean, per kind (:data:`DEFAULT_BASE_RATES`).
    project_scale
        Multiplier of every base rate per project (missing projects: 1.0), so the population
        has busy and quiet projects.
    daily_amplitude
        Relative amplitude of the daily rhythm; peak/trough = (1 + a) / (1 - a).
    peak_hour
        UTC hour of the daily peak.
    window_seconds
        Length of the window the base rates refer to.
    annotators
        Annotator ids are ``ann-000`` .. ``ann-{annotators - 1:03d}``.
    items
        Item ids are ``{project}-item-000000`` and up, drawn among this many per project.
    run_id
        Prefix of event ids, so separate runs never collide.
    """

    seed: int = 0
    projects: tuple[str, ...] = tuple(PROJECT_LABELS)
    base_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BASE_RATES))
    project_scale: dict[str, float] = field(
        default_factory=lambda: {"sentiment": 1.0, "animals": 0.5, "moderation": 2.0}
    )
    daily_amplitude: float = 0.55
    peak_hour: float = 14.0
    window_seconds: float = 300.0
    annotators: int = 24
    items: int = 50_000
    run_id: str = "psim"

    def base_rate(self, project: str, kind: str) -> float:
        """Signals per window of a series at the daily mean."""
        return self.base_rates.get(kind, 0.0) * self.project_scale.get(project, 1.0)


class PrivacySimulator:
    """Generates :class:`SimulatedSignal` records between two event times.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> sim = PrivacySimulator(PrivacySimulationConfig(seed=3))
    >>> start = datetime(2026, 1, 1, tzinfo=UTC)
    >>> first = next(sim.signals(start, start + timedelta(hours=1)))
    >>> first.event["event_id"], first.event["project"] in PROJECT_LABELS, first.incident
    ('psim-3-00000000', True, None)
    """

    def __init__(self, config: PrivacySimulationConfig | None = None) -> None:
        self.config = config or PrivacySimulationConfig()

    def rate(self, project: str, kind: str, t: float) -> float:
        """Background signals per second of a series at epoch second ``t``."""
        cfg = self.config
        hour = (t / 3600.0) % 24.0
        rhythm = 1.0 + cfg.daily_amplitude * math.cos(2 * math.pi * (hour - cfg.peak_hour) / 24)
        return cfg.base_rate(project, kind) * rhythm / cfg.window_seconds

    def signals(
        self, start: datetime, end: datetime, incidents: Sequence[Incident] = ()
    ) -> Iterator[SimulatedSignal]:
        """Signals with ``start <= ts < end`` in ts order (ties in a fixed order)."""
        cfg = self.config
        t0, t1 = start.timestamp(), end.timestamp()
        streams: list[Iterator[tuple[float, int, str, str, str | None]]] = []
        order = 0
        for project in cfg.projects:
            for kind in cfg.base_rates:
                if cfg.base_rate(project, kind) > 0:
                    streams.append(self._arrivals(project, kind, t0, t1, 1.0, None, order))
                    order += 1
        for incident in incidents:
            if isinstance(incident, SpikeIncident):
                a = max(t0, incident.start.timestamp())
                b = min(t1, incident.end.timestamp())
                extra = incident.factor - 1.0
                if b > a and extra > 0:
                    streams.append(
                        self._arrivals(
                            incident.project, incident.kind, a, b, extra, incident.name, order
                        )
                    )
            elif t0 <= incident.ts.timestamp() < t1:
                streams.append(
                    iter(
                        [
                            (
                                incident.ts.timestamp(),
                                order,
                                incident.project,
                                "pii_exposed_to_annotator",
                                incident.name,
                            )
                        ]
                    )
                )
            order += 1
        exposures = {i.name: i for i in incidents if isinstance(i, ExposureIncident)}
        rng = _rng(f"{cfg.seed}:details")
        for n, (t, _, project, kind, name) in enumerate(heapq.merge(*streams)):
            ts = datetime.fromtimestamp(t, tz=UTC)
            event_id = f"{cfg.run_id}-{cfg.seed}-{n:08d}"
            if name is not None and name in exposures:
                event = self._exposure(exposures[name], event_id)
            else:
                event = self._event(rng, event_id, ts, project, kind)
            yield SimulatedSignal(event=event, incident=name)

    def _arrivals(
        self,
        project: str,
        kind: str,
        t0: float,
        t1: float,
        factor: float,
        name: str | None,
        order: int,
    ) -> Iterator[tuple[float, int, str, str, str | None]]:
        """Arrival times of ``factor`` times a series' rate on [t0, t1), by thinning."""
        cfg = self.config
        rng = _rng(f"{cfg.seed}:{project}:{kind}:{name}")
        peak = factor * cfg.base_rate(project, kind) * (1 + cfg.daily_amplitude)
        peak /= cfg.window_seconds
        t = t0
        while True:
            t += rng.expovariate(peak)
            if t >= t1:
                return
            if rng.random() * peak < factor * self.rate(project, kind, t):
                # Millisecond event times, as producers send them.
                yield math.floor(t * 1000) / 1000, order, project, kind, name

    def _event(
        self, rng: random.Random, event_id: str, ts: datetime, project: str, kind: str
    ) -> dict[str, object]:
        cfg = self.config
        severities = _SEVERITIES[kind]
        severity = rng.choices([s for s, _ in severities], [w for _, w in severities])[0]
        event: dict[str, object] = {
            "event_id": event_id,
            "ts": ts.isoformat(timespec="milliseconds"),
            "project": project,
            "source": _SOURCES[kind],
            "kind": kind,
            "severity": severity,
            "annotator_id": None,
            "item_id": f"{project}-item-{rng.randrange(cfg.items):06d}",
            "count": 1,
            "attributes": {},
            "schema_version": 1,
        }
        if kind in _WITH_ANNOTATOR:
            event["annotator_id"] = f"ann-{rng.randrange(cfg.annotators):03d}"
        if kind in ("pii_detected", "pii_exposed_to_annotator", "redaction_failed"):
            event["attributes"] = {"pii_type": rng.choice(_PII_TYPES)}
            event["count"] = 1 + int(rng.expovariate(0.5))
        elif kind == "bulk_export":
            rows = int(math.exp(rng.gauss(math.log(200), 1.0))) + 1
            event["count"] = rows
            event["attributes"] = {"rows": rows}
            event["item_id"] = None
        return event

    def _exposure(self, incident: ExposureIncident, event_id: str) -> dict[str, object]:
        return {
            "event_id": event_id,
            "ts": incident.ts.astimezone(UTC).isoformat(timespec="milliseconds"),
            "project": incident.project,
            "source": _SOURCES["pii_exposed_to_annotator"],
            "kind": "pii_exposed_to_annotator",
            "severity": incident.severity,
            "annotator_id": incident.annotator_id,
            "item_id": incident.item_id,
            "count": 1,
            "attributes": {"pii_type": "name"},
            "schema_version": 1,
        }

    def random_incidents(
        self,
        start: datetime,
        end: datetime,
        n_spikes: int,
        n_exposures: int,
        *,
        min_base_rate: float = 1.0,
        factor: float = 5.0,
        duration_windows: tuple[int, int] = (3, 6),
        warmup_seconds: float = 7200.0,
    ) -> list[Incident]:
        """Spikes and exposures spread over ``[start + warmup_seconds, end)``.

        Spikes go only to series whose base rate (at the daily mean) is at least
        ``min_base_rate`` signals per window: below about one signal per window a 5x spike
        lasting a few windows is not reliably distinguishable from chance within two windows
        by any detector that keeps false alarms rare. Starts are stratified over the time
        range (one per equal slice, at a random point in it), so they fall at every hour of
        the day and at random offsets within a window; series take turns in a shuffled order,
        so one series' spikes are far apart. Durations are drawn from ``duration_windows``.
        """
        cfg = self.config
        rng = _rng(f"{cfg.seed}:incidents")
        eligible = [
            (p, k)
            for p in cfg.projects
            for k in cfg.base_rates
            if cfg.base_rate(p, k) >= min_base_rate
        ]
        rng.shuffle(eligible)
        t0 = start.timestamp() + warmup_seconds
        t1 = end.timestamp()
        out: list[Incident] = []
        if eligible and n_spikes:
            slice_ = (t1 - t0) / n_spikes
            for i in range(n_spikes):
                project, kind = eligible[i % len(eligible)]
                windows = rng.randint(*duration_windows)
                duration = windows * cfg.window_seconds
                latest = max(0.0, slice_ - duration)
                at = t0 + i * slice_ + rng.uniform(0.0, latest)
                out.append(
                    SpikeIncident(
                        project=project,
                        kind=kind,
                        start=datetime.fromtimestamp(round(at, 3), tz=UTC),
                        duration_seconds=duration,
                        factor=factor,
                    )
                )
        if n_exposures:
            slice_ = (t1 - t0) / n_exposures
            for i in range(n_exposures):
                project = rng.choice(cfg.projects)
                at = t0 + (i + rng.random()) * slice_
                out.append(
                    ExposureIncident(
                        project=project,
                        ts=datetime.fromtimestamp(round(at, 3), tz=UTC),
                        annotator_id=f"ann-{rng.randrange(cfg.annotators):03d}",
                        item_id=f"{project}-item-{rng.randrange(cfg.items):06d}",
                    )
                )
        return out
