"""/ready's report, and the output-failure state that the retry loop keeps for it."""

from __future__ import annotations

import asyncio

import pytest

from labelwatch.sinks.metrics import Metrics
from labelwatch.streams.app import LabelwatchApp, readiness
from labelwatch.streams.pipeline import ShuttingDown, retrying

HEALTHY = {
    "store_open": True,
    "agents_running": 2,
    "agents_expected": 2,
    "joined": True,
    "rebalancing": False,
    "assigned": 4,
    "failing": {},
    "now": 100.0,
}


def test_a_healthy_worker_is_ready() -> None:
    assert readiness(**HEALTHY) == {"ready": True, "problems": [], "partitions_assigned": 4}


def test_a_standby_worker_without_partitions_is_ready() -> None:
    assert readiness(**{**HEALTHY, "assigned": 0})["ready"] is True


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"store_open": False}, "the ClickHouse store is not open yet"),
        ({"agents_running": 1}, "1 of 2 agents are running"),
        ({"joined": False}, "the consumer has not joined its group yet"),
        ({"rebalancing": True}, "the consumer group is rebalancing"),
        (
            {"failing": {"clickhouse": (88.0, "OperationalError")}},
            "clickhouse writes have been failing for 12 s (OperationalError; retrying, "
            "consumption waits; the worker's log has the details)",
        ),
    ],
)
def test_each_problem_makes_the_worker_unready_and_is_said(
    change: dict[str, object], problem: str
) -> None:
    report = readiness(**{**HEALTHY, **change})
    assert report["ready"] is False
    assert report["problems"] == [problem]


def test_retrying_marks_an_output_failing_until_a_write_succeeds() -> None:
    metrics = Metrics()
    seen_while_failing: list[dict[str, tuple[float, str]]] = []
    attempts = iter([ConnectionError("refused"), ConnectionError("refused"), None])

    async def attempt() -> str:
        error = next(attempts)
        if error is not None:
            raise error
        return "written"

    async def sleep(_: float) -> None:
        seen_while_failing.append(dict(metrics.failing))

    assert asyncio.run(retrying("clickhouse", attempt, metrics, sleep, 1.0)) == "written"
    assert [set(f) for f in seen_while_failing] == [{"clickhouse"}, {"clickhouse"}]
    assert seen_while_failing[0]["clickhouse"][1] == "ConnectionError"
    # The failure's start is kept across attempts, so /ready tells how long it has lasted.
    assert seen_while_failing[0]["clickhouse"][0] == seen_while_failing[1]["clickhouse"][0]
    assert metrics.failing == {}
    exposed = metrics.exposition().decode()
    assert 'labelwatch_output_failing{component="clickhouse"} 0.0' in exposed


def test_a_stopping_worker_gives_up_retrying_at_once_instead_of_sleeping_on() -> None:
    """A worker stopping while ClickHouse is down must not sit in the retry loop: Faust's
    stop would wait for the never-acked batch until the worker is killed."""
    attempts = 0
    app = LabelwatchApp("test-shutdown", autodiscover=False)

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            app.stopping.set()  # the stop begins during the second attempt
        raise ConnectionError("refused")

    async def scenario() -> float:
        await app.retry_pause(0.01)  # not stopping: a plain sleep
        with pytest.raises(ShuttingDown):
            await retrying("clickhouse", attempt, Metrics(), app.retry_pause, 60.0)
        # A pause already under way ends when the stop begins, not when it was due.
        app.stopping.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        loop.call_later(0.05, app.stopping.set)
        with pytest.raises(ShuttingDown):
            await app.retry_pause(30.0)
        return loop.time() - started

    took = asyncio.run(scenario())
    assert attempts == 2  # none after the stop began
    assert took < 10.0
