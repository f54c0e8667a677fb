"""Chaos scenarios against a real broker and real worker processes (short parameters; the
full ones are in ``bench/chaos.py``).

Every scenario consumes the same ledger (a shared data set's labels, privacy signals with a
spike, poison messages of every kind including 1 MB ones, and re-sent duplicates) with a
consumer group and store of its own, and must end exactly where the uninterrupted control
run ends: every event id once in ClickHouse, no row written twice, every poison message
dead-lettered, and every result table equal to the control's.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from labelwatch.streams.app import EXIT_PROCESSING_FAILED
from tests.chaos.conftest import Control, Shared
from tests.chaos.harness import (
    Run,
    prepare_topics,
    produce_ledger,
    rss_summary,
    settings_of,
    verify,
)
from tests.conftest import _script

pytestmark = [pytest.mark.broker, pytest.mark.chaos]


def assert_same_as_control(shared: Shared, control: Control, run: Run) -> None:
    verdict, _ = verify(shared.ledger, run, control.view)
    detail = f"{verdict.as_dict()}; harness: {run.events}; logs in {run.directory}"
    assert verdict.lost == 0 and verdict.duplicated == 0 and verdict.unexpected == 0, detail
    assert verdict.raw_extra_rows == 0, detail
    assert verdict.dead_letters_missing == 0, detail
    assert verdict.tables_differing == [], detail
    assert verdict.accuracy == control.verdict.accuracy, detail


def test_the_uninterrupted_run_stores_every_event_once(
    chaos_shared: Shared, chaos_control: Control
) -> None:
    v = chaos_control.verdict
    counts = chaos_shared.ledger.counts()
    assert counts["poison"] >= 40 and counts["duplicate"] >= 150
    assert (v.lost, v.duplicated, v.unexpected, v.raw_extra_rows) == (0, 0, 0, 0), v
    assert v.dead_letters_missing == 0 and v.dead_letters_repeated == 0, v
    view = chaos_control.view
    assert len(view.per_id["label_events"]) == counts["label"]
    assert len(view.per_id["privacy_signals"]) == counts["signal"]
    # The models did their job on the data set (DawidSkene in batch: 0.84).
    assert v.accuracy is not None and v.accuracy > 0.78, v.accuracy
    assert any(row[2] == "privacy_spike" for row in view.tables["alerts"])


def test_sigkill_at_random_points_and_between_insert_and_commit(
    chaos_shared: Shared, chaos_control: Control, tmp_path: Path
) -> None:
    rng = random.Random(11)
    with Run.new("kill", chaos_shared.env, tmp_path) as run:
        total = len(chaos_shared.ledger.records)
        # Killed right after its second ClickHouse insert: stored, not committed.
        run.start(CHAOS_KILL_AFTER_INSERTS="2")
        run.worker.process.wait(120)  # type: ignore[union-attr]
        run.events.append("killed itself after insert 2")
        run.worker = None
        # Killed between a batch's labels and their per-minute counts (the window CI once
        # hit at random): its successor must count the stored labels when it restores.
        run.start(CHAOS_KILL_BEFORE_COUNTS="2")
        run.worker.process.wait(120)  # type: ignore[union-attr]
        run.events.append("killed itself before counts insert 2")
        run.worker = None
        successor = run.start()
        _wait_for_log(successor.log_path, "were not counted per minute")
        run.kill()
        for fraction in sorted(rng.uniform(0.1, 0.8) for _ in range(3)):
            run.start()
            run.wait_progress(int(fraction * total) // 3)
            time.sleep(rng.uniform(0.0, 1.5))
            run.kill()
        run.wait_done(300)
        code, _ = run.stop()
        assert code == 0
    assert run.starts == 7
    assert_same_as_control(chaos_shared, chaos_control, run)


def test_sigterm_flushes_commits_and_exits_0_in_bounded_time(
    chaos_shared: Shared, chaos_control: Control, tmp_path: Path
) -> None:
    """Twice: once in normal operation, once while ClickHouse is down (the retry loop must
    not hold the shutdown)."""
    fail_file = tmp_path / "clickhouse-down"
    total = len(chaos_shared.ledger.records)
    with Run.new("term", chaos_shared.env, tmp_path) as run:
        run.start(CHAOS_SINK_FAIL_FILE=str(fail_file))
        run.wait_progress(total // 4)
        code, seconds = run.stop()
        assert code == 0 and seconds < 30, run.events
        assert run.lag() > 0  # stopped mid-run, so there is work left
        worker = run.start(CHAOS_SINK_FAIL_FILE=str(fail_file))
        # Progress counts from the restart: a quarter of the ledger is done, so an eighth
        # more leaves work for the outage.
        run.wait_progress(total // 8)
        fail_file.touch()
        _wait_for_log(worker.log_path, "clickhouse write failed")  # the agent is retrying
        assert run.lag() > 0
        code, seconds = run.stop()
        assert code == 0 and seconds < 30, run.events
        assert "is not committed, and the next worker gets it again" in worker.log_path.read_text(
            errors="replace"
        )
        fail_file.unlink()
        run.start()
        run.wait_done(300)
        code, _ = run.stop()
        assert code == 0
    assert_same_as_control(chaos_shared, chaos_control, run)


def _wait_for_log(path: Path, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in {path} after {timeout_s:.0f} s"
        time.sleep(0.2)


def test_a_failure_inside_the_agent_stops_the_worker_instead_of_stalling(
    chaos_shared: Shared, chaos_control: Control, tmp_path: Path
) -> None:
    """faust-streaming restarts a failed agent and goes on, the failed batch never acked:
    commits stall there. The worker exits with code 70 instead; its successor
    restores the models (which were half-way through the batch) and gets the batch again."""
    marker = tmp_path / "failed-once"
    with Run.new("bug", chaos_shared.env, tmp_path) as run:
        worker = run.start(CHAOS_MODEL_FAILURE_MARKER=str(marker))
        code = worker.process.wait(120)
        assert marker.exists()
        assert code == EXIT_PROCESSING_FAILED, "the worker went on after its agent failed"
        assert "injected model failure" in worker.log_path.read_text(errors="replace")
        run.worker = None
        run.events.append(f"exited {code} after the injected failure")
        run.wait_done(300)
        code, _ = run.stop()
        assert code == 0
    assert_same_as_control(chaos_shared, chaos_control, run)


def test_a_clickhouse_outage_pauses_consumption_in_bounded_memory(
    chaos_shared: Shared, chaos_control: Control, tmp_path: Path
) -> None:
    outage_s = 20.0
    fail_file = tmp_path / "clickhouse-down"
    stop_sampling = threading.Event()
    with Run.new("outage", chaos_shared.env, tmp_path) as run:
        run.start(CHAOS_SINK_FAIL_FILE=str(fail_file))
        sampler = run.sample_rss(stop_sampling)
        try:
            run.wait_progress(len(chaos_shared.ledger.records) // 5)
            fail_file.touch()
            time.sleep(3)  # batches in flight finish or start failing
            lag_at_start = run.lag()
            before = len(run.rss_samples)
            time.sleep(outage_s)
            lag_at_end = run.lag()
            during = [rss for _, rss in run.rss_samples[before:]]
            assert run.worker is not None and run.worker.process.poll() is None, "worker died"
            fail_file.unlink()
            recovery_s = run.wait_done(300, restart_if_dead=False)
            code, _ = run.stop()
            assert code == 0
        finally:
            stop_sampling.set()
            sampler.join()
    # Nothing is committed while nothing can be stored...
    assert lag_at_start > 0 and lag_at_end == lag_at_start, (lag_at_start, lag_at_end)
    # ... and the worker does not buffer the backlog (it would grow by the whole ledger).
    assert during and max(during) - min(during) < 64 * 2**20, rss_summary(run.rss_samples)
    assert recovery_s < 120
    assert_same_as_control(chaos_shared, chaos_control, run)


def test_a_broker_hard_restart_mid_run(
    chaos_shared: Shared, chaos_control: Control, tmp_path: Path
) -> None:
    """A broker of its own (the session's serves the other tests), with the same topic names
    and, with explicit partitions, the ledger at the same offsets: SIGKILLed mid-run and
    started again on its data; a worker that gives up meanwhile is restarted."""
    local_kafka = _script("local_kafka")
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    state = local_kafka.start(run_dir=broker_dir, port=0, timeout=120.0)
    try:
        env = dict(chaos_shared.env, LABELWATCH_KAFKA_BOOTSTRAP=str(state["bootstrap"]))
        prepare_topics(env)
        produce_ledger(settings_of(env), chaos_shared.ledger)
        with Run.new("broker", env, tmp_path / "run") as run:
            run.start()
            run.wait_progress(len(chaos_shared.ledger.records) // 4)
            local_kafka.kill(run_dir=broker_dir)
            run.events.append("broker kill -9")
            time.sleep(8)
            restarted = local_kafka.restart(run_dir=broker_dir, timeout=120.0)
            assert restarted["bootstrap"] == state["bootstrap"]
            run.events.append("broker restarted")
            run.wait_done(300)
            code, _ = run.stop()
            assert code == 0
        assert_same_as_control(chaos_shared, chaos_control, run)
    finally:
        local_kafka.stop(run_dir=broker_dir)
