"""Change detectors, spammer rules and episodes on synthetic streams with known change points."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labelwatch.models.behaviour import CopiedAnswers
from labelwatch.models.drift import AnswerContext, LabelMixCusum, RandomAnsweringCusum, SpeedCusum
from labelwatch.models.monitor import AnnotatorMonitor
from labelwatch.replay import LabelRow, read_labels, replay
from labelwatch.simulator import (
    PROJECT_LABELS,
    LabelingSimulator,
    SimulationConfig,
    write_replay_files,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def decisive(
    label: int, truth: int, k: int = 3, peers: tuple[tuple[str, int], ...] = ()
) -> AnswerContext:
    """A label on an item whose other votes are decisive, scored by a prior-only matrix."""
    before = [0.96 if c == truth else 0.04 / (k - 1) for c in range(k)]
    population = [0.85 if c == label else 0.15 / (k - 1) for c in range(k)]
    return AnswerContext(label, before, population, [0.0] * k, [0.0] * k, before, 2.0, peers)


def answer(rng: random.Random, accuracy: float, truth: int, k: int = 3) -> int:
    if rng.random() < accuracy:
        return truth
    return rng.choice([c for c in range(k) if c != truth])


def test_random_answering_cusum_quiet_when_stationary() -> None:
    rng = random.Random(7)
    alarms = 0
    for _ in range(20):
        detector = RandomAnsweringCusum()
        accuracy = rng.uniform(0.75, 0.95)
        for _ in range(2_000):
            truth = rng.randrange(3)
            detector.update(decisive(answer(rng, accuracy, truth), truth))
            alarms += detector.drift_detected
    assert alarms == 0  # 40,000 labels against a budget of about one per 30,000


def test_random_answering_cusum_detects_onset_reports_and_recovers() -> None:
    rng = random.Random(3)
    detector = RandomAnsweringCusum()
    fired, recovered = [], []
    for n in range(700):
        accuracy = 1 / 3 if 200 <= n < 400 else 0.9
        truth = rng.randrange(3)
        detector.update(decisive(answer(rng, accuracy, truth), truth))
        if detector.drift_detected:
            fired.append(n)
        if detector.recovered:
            recovered.append(n)
    assert len(fired) == 1 and 200 <= fired[0] < 230  # one episode, found within 30 labels
    report = detector.last_report
    assert report is not None and report.what == "correctness"
    assert report.before > 0.8 and report.after < 0.5
    assert len(recovered) == 1 and 400 <= recovered[0] < 460
    assert not detector.in_episode


def test_no_verdict_during_warmup() -> None:
    rng = random.Random(5)
    detector = RandomAnsweringCusum(warmup=20)
    for n in range(20):
        truth = rng.randrange(3)
        detector.update(decisive((truth + 1) % 3, truth))  # always wrong
        assert not detector.drift_detected, n
    detector.update(decisive(1, 0))
    detector.update(decisive(1, 0))
    detector.update(decisive(1, 0))
    assert detector.n_seen == 23


def test_label_mix_cusum_finds_a_move_to_one_class_only() -> None:
    rng = random.Random(11)
    quiet = LabelMixCusum()
    for _ in range(20_000):
        quiet.update(rng.choices(range(4), weights=[5, 2, 2, 1])[0], 4)
        assert not quiet.drift_detected
    moving = LabelMixCusum()
    fired = []
    for n in range(400):
        label = rng.choices(range(4), weights=[5, 2, 2, 1])[0] if n < 200 else 3
        moving.update(label, 4)
        if moving.drift_detected:
            fired.append(n)
    assert len(fired) == 1 and 200 <= fired[0] < 215
    report = moving.last_report
    assert report is not None and report.before < 0.2 and report.after > 0.5


def test_speed_cusum_both_directions() -> None:
    rng = random.Random(4)
    for factor, word in ((0.3, "faster"), (3.0, "slower")):
        detector = SpeedCusum()
        fired = []
        for n in range(600):
            median = 4000.0 * (factor if n >= 300 else 1.0)
            detector.update(rng.lognormvariate(math.log(median), 0.5))
            if detector.drift_detected:
                fired.append(n)
        assert len(fired) == 1 and 300 <= fired[0] < 320, (word, fired)
        assert detector.last_report is not None and detector.last_report.detail == word


def simulate(
    tmp_path: Path, seed: int, labels: int, **behaviours: int
) -> tuple[list[LabelRow], dict]:
    config = SimulationConfig(
        seed=seed,
        behaviours=behaviours,
        projects={"animals": PROJECT_LABELS["animals"]},
    )
    truth = write_replay_files(LabelingSimulator(config).labels(START), labels, tmp_path)
    return read_labels(tmp_path / "labels.csv"), truth


def own_index(rows: list[LabelRow], position: int) -> int:
    who = rows[position].annotator
    return sum(1 for r in rows[: position + 1] if r.annotator == who)


def test_drifters_alerted_after_onset_and_stationary_annotators_left_alone(tmp_path: Path) -> None:
    rows, truth = simulate(tmp_path, 21, 15_000, drifter=5)
    result = replay(rows)
    drift = [a for a in result.alerts if a["kind"] == "annotator_drift" and a["state"] == "opened"]
    by_annotator = Counter(a["annotator"] for a in drift)
    drifters = {a for a, t in truth.items() if t["kind"] == "drifter"}
    assert drifters <= set(by_annotator)  # every drifter
    assert all(by_annotator[a] == 1 for a in drifters)  # one alert per episode
    # False alarms on stationary annotators: the budget is one per 10,000 labels.
    false_alarms = sum(n for a, n in by_annotator.items() if a not in drifters)
    assert false_alarms <= 2
    for alert in (a for a in drift if a["annotator"] in drifters):
        onset = truth[alert["annotator"]]["drift_onset"]
        delay = own_index(rows, alert["at_label"] - 1) - onset + 1
        assert 1 <= delay <= 60, alert
        assert rows[alert["at_label"] - 1].annotator == alert["annotator"]
        assert alert["score"] > alert["threshold"]
        assert "stopped following the items" in alert["reason"]


@pytest.mark.parametrize(
    ("kind", "detector"),
    [
        ("spammer_constant", "constant_answers"),
        ("spammer_random", "random_answers"),
        ("spammer_fast", "fast_answers"),
    ],
)
def test_spammers_flagged_by_their_fiftieth_label(tmp_path: Path, kind: str, detector: str) -> None:
    rows, truth = simulate(tmp_path, 8, 6_000, **{kind: 2})
    result = replay(rows)
    spam = [a for a in result.alerts if a["kind"] == "spammer_suspected"]
    spammers = {a for a, t in truth.items() if t["kind"] == kind}
    flagged = {a["annotator"] for a in spam}
    assert spammers <= flagged
    assert len(flagged - spammers) <= 1  # the benchmark measures precision properly
    for alert in (a for a in spam if a["annotator"] in spammers):
        assert alert["detector"] == detector
        assert 30 <= own_index(rows, alert["at_label"] - 1) <= 60


def test_copied_answers_flag_colluding_pairs_by_name(tmp_path: Path) -> None:
    rows, truth = simulate(tmp_path, 5, 12_000, colluder=2)
    result = replay(rows)
    copies = [a for a in result.alerts if a["detector"] == "copied_answers"]
    pairs = {frozenset((a, t["partner"])) for a, t in truth.items() if t["partner"]}
    assert len(pairs) == 2
    named = {frozenset((a["annotator"], a["evidence"]["partner"])) for a in copies}
    assert named == pairs  # both pairs, and nobody else
    assert all(a["kind"] == "annotator_anomaly" and a["state"] == "opened" for a in copies)
    assert len(copies) == 4  # one episode per member
    assert all(a["evidence"]["shared"] <= 60 for a in copies)


def test_copied_answers_not_fooled_by_items_everyone_finds_hard() -> None:
    """Honest annotators who share a common mistake on hard items agree more than their
    accuracies predict, but still disagree with each other about as often as with anyone."""
    rng = random.Random(2)
    watch = CopiedAnswers()
    honest = [f"h{i}" for i in range(6)]
    for _ in range(4_000):
        truth = rng.randrange(3)
        hard = rng.random() < 0.3
        lure = (truth + 1) % 3  # the wrong answer hard items invite
        votes: list[tuple[str, int]] = []
        for who in [*rng.sample(honest, 4), "source", "copier"]:
            if who == "copier" and any(v[0] == "source" for v in votes):
                label = dict(votes)["source"]
            elif hard:
                label = truth if rng.random() < 0.45 else lure
            else:
                label = answer(rng, 0.9 if who != "source" else 0.6, truth)
            watch.update(who, label, votes)
            votes.append((who, label))
    flagged = {pair for pair in watch.pairs if watch.check(pair) is not None}
    assert flagged == {("copier", "source")}


def test_monitor_state_survives_a_checkpoint() -> None:
    rng = random.Random(0)
    data = []
    previous: list[tuple[str, int]] = []
    for n in range(3_000):
        truth = rng.randrange(3)
        who = f"a{rng.randrange(6)}"
        accuracy = 0.33 if who == "a0" and n > 1500 else 0.9
        label = answer(rng, accuracy, truth)
        peers = tuple(p for p in previous if p[0] != who)
        ctx = decisive(label, truth, peers=peers)
        previous = [*previous[-3:], (who, label)]  # items of four votes, overlapping
        data.append((who, ctx, ctx.label, 3, rng.randrange(2_000, 6_000), float(n), None))
    full, first = AnnotatorMonitor(), AnnotatorMonitor()
    for d in data[:1_000]:
        full.observe(*d, position=data.index(d))
        first.observe(*d, position=data.index(d))
    resumed = AnnotatorMonitor()
    resumed.load_state(json.loads(json.dumps(first.to_state())))
    tail = [(d, 1_000 + i) for i, d in enumerate(data[1_000:])]
    expected = [f for d, p in tail for f in full.observe(*d, position=p)]
    got = [f for d, p in tail for f in resumed.observe(*d, position=p)]
    assert expected and got == expected
    assert any(f.kind == "annotator_drift" and f.annotator == "a0" for f in got)


def test_copied_answers_keep_the_most_recently_updated_pairs_at_the_cap() -> None:
    watch = CopiedAnswers(max_pairs=1000)
    for n in range(5000):  # each update pairs a new annotator with "hub": one new pair each
        watch.update(f"a{n}", 0, [("hub", 0)])
        assert len(watch.pairs) <= 1100
    kept = {a if b == "hub" else b for a, b in watch.pairs}
    # Only pairs evicted least recently first: the newest 1000 are all there.
    assert {f"a{n}" for n in range(4000, 5000)} <= kept
    assert "a0" not in kept and len(kept) >= 1000
    # A pair touched again is recent again and survives the next evictions.
    watch.update("a4000", 1, [("hub", 0)])
    for n in range(5000, 5999):
        watch.update(f"a{n}", 0, [("hub", 0)])
    assert CopiedAnswers.key("a4000", "hub") in watch.pairs
    assert CopiedAnswers.key("a4001", "hub") not in watch.pairs
