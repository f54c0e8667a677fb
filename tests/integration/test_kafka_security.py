"""Kafka SASL through the real broker's SASL_PLAINTEXT listener (PLAIN, the test account of
scripts/local_kafka.py): kafka-python's admin, producer and consumer and the Faust worker all
authenticate with the settings, a wrong password fails in bounded time, and the password is in
no log or output.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError
from pydantic import SecretStr

from labelwatch.cli import main
from labelwatch.settings import Settings
from labelwatch.simulator import LabelingSimulator, SimulationConfig, encode_event
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.streams.app import create_app
from labelwatch.streams.produce import produce
from labelwatch.streams.topics import end_offsets, ensure_topics, read_range, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration.conftest import settings_from

pytestmark = pytest.mark.broker

N_EVENTS = 120


def sasl_settings(bootstrap: str, user: str, password: str, tmp_path: Path) -> Settings:
    tag = secrets.token_hex(4)
    return Settings(
        kafka_bootstrap=bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username=user,
        kafka_sasl_password=SecretStr(password),
        app_id=f"sasl-{tag}",
        topic_labels=f"sasl-{tag}.labels",
        topic_dead_letter=f"sasl-{tag}.dead-letter",
        topic_alerts=f"sasl-{tag}.alerts",
        topic_review=f"sasl-{tag}.review",
        topic_partitions=2,
        data_dir=tmp_path / "data",
        _env_file=None,  # type: ignore[call-arg]
    )


def test_kafka_python_clients_create_produce_and_read_through_sasl(
    kafka_sasl_bootstrap: str,
    kafka_sasl: tuple[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user, password = kafka_sasl
    settings = sasl_settings(kafka_sasl_bootstrap, user, password, tmp_path)
    caplog.set_level(logging.INFO)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # as `labelwatch` sets it

    created = ensure_topics(settings)
    assert {settings.topic_labels, settings.topic_alerts, settings.topic_dead_letter} <= set(
        created
    )
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    assert produce(settings, settings.topic_labels, records) == 50
    assert sum(end_offsets(settings, settings.topic_labels).values()) == 50
    got = read_range(settings, settings.topic_labels, dict.fromkeys(range(2), 0))
    assert sorted((r.key, r.value) for r in got) == sorted(records)

    output = caplog.text + "".join(capsys.readouterr())
    assert password not in output


def test_faust_worker_consumes_and_stores_labels_through_sasl(
    e2e_env: dict[str, str],
    kafka_sasl_bootstrap: str,
    kafka_sasl: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user, password = kafka_sasl
    env = {
        **e2e_env,
        "LABELWATCH_KAFKA_BOOTSTRAP": kafka_sasl_bootstrap,
        "LABELWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "LABELWATCH_KAFKA_SASL_MECHANISM": "PLAIN",
        "LABELWATCH_KAFKA_SASL_USERNAME": user,
        "LABELWATCH_KAFKA_SASL_PASSWORD": password,
        # The chattiest level: the password must not be in the worker's log even so.
        "LABELWATCH_LOG_LEVEL": "debug",
    }
    settings = settings_from(env, monkeypatch)
    assert password not in repr(settings)
    assert main(["config"]) == 0
    config_out = capsys.readouterr().out
    assert password not in config_out
    assert "kafka_sasl_password = **********" in config_out

    sim = LabelingSimulator(SimulationConfig(seed=5, run_id="sasl"))
    labels = sim.labels(datetime(2026, 6, 1, tzinfo=UTC))
    events = [next(labels).event for _ in range(N_EVENTS)]
    log = tmp_path / "worker.log"
    # The worker creates its topics itself (admin client through SASL) at start-up.
    worker = WorkerProcess.start(settings, log, env=env)
    try:
        produce(
            settings,
            settings.topic_labels,
            [(str(e["item_id"]).encode(), encode_event(e)) for e in events],
        )
        assert wait_for_lag_zero(settings, timeout_s=120) == 0
        consumed = worker.get("/metrics").decode()
    finally:
        exit_code = worker.stop()
    text = log.read_text()
    assert exit_code == 0, text[-3000:]
    valid = sum(
        float(line.rsplit(" ", 1)[1])
        for line in consumed.splitlines()
        if line.startswith("labelwatch_events_valid_total{")
    )
    assert valid == N_EVENTS

    client = connect(settings=settings)
    try:
        stored = client.query(
            f"SELECT uniqExact(event_id) FROM {database_name(settings)}.label_events"
        ).first_row
    finally:
        client.close()
    assert stored == (N_EVENTS,)
    # Faust authenticated through SASL, and at DEBUG aiokafka logged its SASL request: masked.
    assert f"Authenticated as {user} via PLAIN" in text
    assert "SaslAuthenticateRequest" in text and "**********" in text
    assert password not in text


def test_wrong_password_fails_in_bounded_time_and_is_never_shown(
    kafka_sasl_bootstrap: str,
    kafka_sasl: tuple[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user, password = kafka_sasl
    wrong = f"not-{password}-{secrets.token_hex(4)}"
    good = sasl_settings(kafka_sasl_bootstrap, user, password, tmp_path)
    bad = sasl_settings(kafka_sasl_bootstrap, user, wrong, tmp_path)
    caplog.set_level(logging.INFO)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # as `labelwatch` sets it

    # kafka-python: the broker rejects the login and closes the connection; kafka-python
    # 3.0.12 drops the error response that came with the close (kafka/net/transport.py
    # _sock_recv) and retries, so the failure surfaces as a bootstrap timeout, bounded by
    # the caller's timeout.
    started = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        ensure_topics(bad, timeout_s=5.0)
    assert time.monotonic() - started < 30

    # Faust (aiokafka) gets the broker's authentication error and gives up at once; with the
    # right password the same producer delivers. This is the credentials object create_app
    # passes as broker_credentials, taken to aiokafka by Faust's transport.
    ensure_topics(good)

    async def send(settings: Settings) -> None:
        producer = create_app(settings).producer
        try:
            await asyncio.wait_for(producer.start(), 30)
            await asyncio.wait_for(
                producer.send_and_wait(
                    settings.topic_labels, b"k", b"{}", partition=None, timestamp=None, headers=None
                ),
                30,
            )
        finally:
            await producer.stop()

    asyncio.run(send(good))
    started = time.monotonic()
    with pytest.raises(Exception, match="bootstrap") as failure:
        asyncio.run(send(bad))
    assert time.monotonic() - started < 30
    assert "SaslAuthenticationFailed" in caplog.text
    assert "Invalid username or password" in caplog.text
    for secret in (password, wrong):
        assert secret not in caplog.text
        assert secret not in str(failure.value)
