"""The chaos suite's shared ledger (produced once to the session broker) and its
uninterrupted control run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.harness import (
    Ledger,
    Run,
    StoreView,
    Verdict,
    base_env,
    build_ledger,
    prepare_topics,
    produce_ledger,
    settings_of,
    verify,
)

PARTITIONS = 3


@dataclass
class Shared:
    ledger: Ledger
    env: dict[str, str]  # input topics of the ledger on the session broker
    tag: str


@dataclass
class Control:
    run: Run
    view: StoreView
    verdict: Verdict
    seconds: float


@pytest.fixture(scope="session")
def chaos_shared(kafka_bootstrap: str, datasets: Path) -> Shared:
    ledger = build_ledger(datasets, dataset="dog", partitions=PARTITIONS)
    tag = secrets.token_hex(3)
    env = base_env(kafka_bootstrap, tag, PARTITIONS)
    prepare_topics(env)
    produce_ledger(settings_of(env), ledger)
    return Shared(ledger, env, tag)


@pytest.fixture(scope="session")
def chaos_control(
    chaos_shared: Shared, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Control]:
    run = Run.new("control", chaos_shared.env, tmp_path_factory.mktemp("chaos-control"))
    run.start()
    try:
        seconds = run.wait_done(300, restart_if_dead=False)
        code, _ = run.stop()
        assert code == 0
    finally:
        if run.worker is not None:
            run.kill()
    verdict, view = verify(chaos_shared.ledger, run, None)
    yield Control(run, view, verdict, seconds)
