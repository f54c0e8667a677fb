"""CorrectnessCusum on synthetic signals with known change points."""

from __future__ import annotations

import random

from labelwatch.models.drift import CorrectnessCusum


def signal(rng: random.Random, accuracy: float) -> float:
    """A label's evidence when other votes are decisive: 1 if right, else 0."""
    return 1.0 if rng.random() < accuracy else 0.0


def test_no_alarm_on_stationary_annotators() -> None:
    rng = random.Random(7)
    alarms = 0
    for _ in range(20):
        detector = CorrectnessCusum()
        accuracy = rng.uniform(0.7, 0.95)
        for _ in range(2_000):
            detector.update(signal(rng, accuracy), sharpness=1.0, n_classes=3)
            alarms += detector.drift_detected
    assert alarms == 0  # 40,000 labels against a budget of one per 20,000


def test_drift_to_random_answering_is_detected_soon_with_a_report() -> None:
    rng = random.Random(3)
    delays = []
    for _ in range(20):
        detector = CorrectnessCusum()
        onset = rng.randint(30, 200)
        for n in range(onset + 200):
            accuracy = 0.9 if n < onset else 1 / 3
            detector.update(signal(rng, accuracy), sharpness=1.0, n_classes=3)
            if detector.drift_detected:
                assert n >= onset
                delays.append(n - onset)
                report = detector.last_report
                assert report is not None and report.recent < report.baseline - 0.3
                break
    assert len(delays) == 20
    assert sorted(delays)[10] <= 30


def test_no_verdict_during_warmup_and_one_alert_per_episode_until_recovery() -> None:
    rng = random.Random(5)
    detector = CorrectnessCusum(warmup=20)
    fired = []
    for _ in range(20):
        detector.update(0.0, sharpness=1.0, n_classes=2)  # awful from the start: warm-up only
        fired.append(detector.drift_detected)
    assert not any(fired)
    detector = CorrectnessCusum()
    events = []
    for n in range(900):
        accuracy = 0.95 if n < 300 or n >= 600 else 0.5
        detector.update(signal(rng, accuracy), sharpness=1.0, n_classes=2)
        if detector.drift_detected:
            events.append(("drift", n))
        if detector.recovered:
            events.append(("recovered", n))
    assert [kind for kind, _ in events] == ["drift", "recovered"]
    assert 300 <= events[0][1] < 360 and 600 <= events[1][1] < 700


def test_a_uniform_posterior_carries_no_evidence() -> None:
    detector = CorrectnessCusum(warmup=0)
    for _ in range(5_000):
        detector.update(0.25, sharpness=0.25, n_classes=4)  # other votes say nothing
    assert not detector.in_episode and detector.baseline == detector.prior_mean
