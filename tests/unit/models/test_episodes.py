"""Alert episodes: cooldown after a resolution, and updates of an open episode."""

from __future__ import annotations

import random

from labelwatch.models.monitor import AnnotatorMonitor, Finding, MonitorConfig
from tests.unit.models.test_drift import answer, decisive

BAD = (100, 0.5, 0.40, 0.55)  # accuracy interval below the floor (0.625 with two classes)
GOOD = (100, 0.8, 0.70, 0.90)  # above it


def run(
    monitor: AnnotatorMonitor, plan: list[tuple[int, tuple[int, float, float, float]]]
) -> list[tuple[int, Finding]]:
    """Labels of one annotator every 10 s of event time; ``plan`` gives, per stretch of
    labels, what the reliability model says about the annotator."""
    found: list[tuple[int, Finding]] = []
    n = 0
    for count, estimate in plan:
        for _ in range(count):
            n += 1
            for f in monitor.observe(
                "a", None, 0, 2, None, 10.0 * n, None, lambda _a, e=estimate: e, position=n
            ):
                if f.kind == "low_reliability":
                    found.append((n, f))
    return found


def test_an_episode_reopening_within_the_cooldown_is_held_until_it_ends() -> None:
    monitor = AnnotatorMonitor(MonitorConfig(cooldown_seconds=600.0))
    found = run(monitor, [(50, BAD), (30, GOOD), (60, BAD)])
    states = [(n, f.state, f.opened_at) for n, f in found]
    # Opened at label 30, resolved at 60 (t = 600 s); bad again from label 81, seen at label
    # 90 (t = 900 s < 600 + 600): held, and announced at label 120 (t = 1200 s), naming the
    # label it began at.
    assert states == [(30, "opened", 30), (60, "resolved", 30), (120, "opened", 90)]


def test_a_condition_that_clears_within_the_cooldown_is_never_announced() -> None:
    monitor = AnnotatorMonitor(MonitorConfig(cooldown_seconds=600.0))
    found = run(monitor, [(50, BAD), (30, GOOD), (15, BAD), (100, GOOD)])
    assert [f.state for _, f in found] == ["opened", "resolved"]


def test_cooldowns_are_per_rule() -> None:
    monitor = AnnotatorMonitor(
        MonitorConfig(cooldown_seconds=600.0, cooldowns=(("low_reliability", 0.0),))
    )
    found = run(monitor, [(50, BAD), (30, GOOD), (60, BAD)])
    assert [(n, f.state) for n, f in found] == [(30, "opened"), (60, "resolved"), (90, "opened")]


def test_a_second_drift_signal_updates_the_open_episode() -> None:
    rng = random.Random(4)
    monitor = AnnotatorMonitor()
    found = []
    for n in range(900):
        truth = rng.randrange(3)
        drifted = n >= 300  # from here: random answers, in a fifth of the time
        label = answer(rng, 1 / 3 if drifted else 0.9, truth)
        duration = rng.randrange(400, 1_200) if drifted else rng.randrange(2_000, 6_000)
        for f in monitor.observe(
            "a", decisive(label, truth), label, 3, duration, n, None, position=n
        ):
            if f.kind == "annotator_drift":
                found.append(f)
    opened, updated = found[0], found[1]
    assert opened.state == "opened" and opened.severity == "warning"
    assert updated.state == "updated" and updated.severity == "critical"
    assert updated.opened_at == opened.opened_at  # the same episode, so the same alert id
    assert updated.detector == opened.detector
    assert set(str(updated.evidence["detectors"]).split(",")) == {"correctness", "speed"}
    assert [f.state for f in found[2:]] in ([], ["resolved"])
    assert monitor.open_episodes("a")["annotator_drift"].severity == "critical"
