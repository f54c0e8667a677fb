"""Shared fixtures: an embedded chDB store (fresh database per test) and the real Kafka broker."""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from labelwatch.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The shared crowdsourcing data sets: ``$LABELWATCH_DATASETS``, else ``shared/datasets``
    beside the repository (where CI puts it). Missing data fails the test, never skips it."""
    given = os.environ.get("LABELWATCH_DATASETS")
    path = Path(given) if given else REPO.parent / "shared" / "datasets"
    if not (path / "duck" / "labels.csv").is_file():
        pytest.fail(f"shared data sets not found at {path} (set LABELWATCH_DATASETS)")
    return path


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One chDB directory for the whole session: chDB opens one path per process at a time."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def ch_settings(chdb_dir: Path) -> Settings:
    """Settings pointing at the session's chDB store, with a database of this test's own."""
    return Settings(
        data_dir=chdb_dir,
        clickhouse_database=f"t_{secrets.token_hex(6)}",
        _env_file=None,  # type: ignore[call-arg]
    )


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _local_kafka() -> ModuleType:
    return _script("local_kafka")


@pytest.fixture(scope="session")
def debian_tools() -> ModuleType:
    """Debian's promtool and alertmanager, fetched into the cache once (never skipped: if
    they cannot be fetched, the tests that need them fail)."""
    tools = _script("debian_tools")
    tools.fetch()
    return tools


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real single-node Kafka broker for the session: ``{"bootstrap", "sasl_bootstrap"}``,
    its PLAINTEXT and SASL_PLAINTEXT (PLAIN, the test account of scripts/local_kafka.py)
    listeners.

    ``LABELWATCH_TEST_BOOTSTRAP`` (and ``LABELWATCH_TEST_SASL_BOOTSTRAP``, e.g. from
    ``scripts/local_kafka.py status --sasl``) point the tests at a broker that is already
    running; otherwise one is fetched (once) and started here, and stopped at the end. Never
    skipped: if the broker cannot start, the tests that need it fail.
    """
    given = os.environ.get("LABELWATCH_TEST_BOOTSTRAP")
    if given:
        yield {
            "bootstrap": given,
            "sasl_bootstrap": os.environ.get("LABELWATCH_TEST_SASL_BOOTSTRAP", ""),
        }
        return
    local_kafka = _local_kafka()
    run_dir = tmp_path_factory.mktemp("kafka")
    state = local_kafka.start(run_dir=run_dir, port=0, timeout=120.0)
    try:
        yield {"bootstrap": str(state["bootstrap"]), "sasl_bootstrap": str(state["sasl_bootstrap"])}
    finally:
        local_kafka.stop(run_dir=run_dir)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: dict[str, str]) -> str:
    """The session broker's PLAINTEXT bootstrap address."""
    return kafka_broker["bootstrap"]


@pytest.fixture(scope="session")
def kafka_sasl() -> tuple[str, str]:
    """User name and password of the local broker's SASL_PLAINTEXT test account."""
    local_kafka = _local_kafka()
    return str(local_kafka.SASL_USERNAME), str(local_kafka.SASL_PASSWORD)


@pytest.fixture(scope="session")
def kafka_sasl_bootstrap(kafka_broker: dict[str, str]) -> str:
    """The session broker's SASL_PLAINTEXT bootstrap address."""
    if not kafka_broker["sasl_bootstrap"]:
        pytest.fail(
            "LABELWATCH_TEST_BOOTSTRAP is set but LABELWATCH_TEST_SASL_BOOTSTRAP is not: "
            "give the SASL_PLAINTEXT listener too (scripts/local_kafka.py status --sasl)"
        )
    return kafka_broker["sasl_bootstrap"]
