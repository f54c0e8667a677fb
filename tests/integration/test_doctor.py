"""``labelwatch doctor`` against the real broker, chDB and a running worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labelwatch.doctor import Finding, diagnose, render
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.sinks.migrations import migrate
from labelwatch.streams.topics import ensure_topics
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration.conftest import free_port, settings_from

pytestmark = pytest.mark.broker


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def doctor_cli(env: dict[str, str]) -> tuple[int, list[dict[str, str]]]:
    result = subprocess.run(
        [sys.executable, "-m", "labelwatch", "doctor", "--json", "--timeout", "3"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return result.returncode, json.loads(result.stdout)


def test_a_prepared_deployment_passes_and_a_running_worker_is_seen(
    e2e_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(e2e_env, monkeypatch)

    # Nothing prepared yet: topics and schema missing are warnings (the worker makes them).
    findings = by_check(diagnose(settings, timeout_s=2))
    assert findings["kafka broker"].status == "ok"
    assert findings[f"topic {settings.topic_labels}"].status == "warn"
    assert "missing" in findings[f"topic {settings.topic_labels}"].detail
    assert findings["clickhouse"].status == "warn"
    assert "does not exist yet" in findings["clickhouse"].detail
    assert not (settings.data_dir / "labelwatch.chdb").exists()  # the doctor writes nothing

    ensure_topics(settings)
    client = connect(settings=settings)
    try:
        migrate(client, database_name(settings))
    finally:
        client.close()
    findings = by_check(diagnose(settings, timeout_s=2))
    for topic in (settings.topic_labels, settings.topic_privacy, settings.topic_alerts):
        assert findings[f"topic {topic}"].status == "ok"
        assert findings[f"topic {topic}"].detail == f"{settings.topic_partitions} partitions"
    assert findings["clickhouse"].status == "ok"
    assert findings["schema"].status == "ok"
    assert findings["worker"].status == "warn"  # none runs

    worker = WorkerProcess.start(settings, tmp_path / "worker.log", env=e2e_env)
    try:
        worker.wait_ready(60)
        code, report = doctor_cli(e2e_env)
    finally:
        assert worker.stop() == 0
    assert code == 0, report
    seen = {f["check"]: f for f in report}
    assert seen["worker"]["status"] == "ok"
    assert f"{2 * settings.topic_partitions} partitions assigned" in seen["worker"]["detail"]
    # The worker holds the embedded store: the doctor does not try to open it.
    assert "belongs to the running worker" in seen["clickhouse"]["detail"]


def test_wrong_partitions_and_an_unreachable_broker_are_said_plainly(
    e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(e2e_env, monkeypatch)
    ensure_topics(settings)
    monkeypatch.setenv("LABELWATCH_TOPIC_PARTITIONS", "6")
    findings = by_check(diagnose(settings_from({}, monkeypatch), timeout_s=2))
    wrong = findings[f"topic {settings.topic_labels}"]
    assert wrong.status == "warn"
    assert wrong.detail == (
        f"has {settings.topic_partitions} partitions, LABELWATCH_TOPIC_PARTITIONS says 6; "
        f"at most {settings.topic_partitions} workers share it"
    )

    nowhere = f"127.0.0.1:{free_port()}"
    code, report = doctor_cli({**e2e_env, "LABELWATCH_KAFKA_BOOTSTRAP": nowhere})
    assert code == 1
    seen = {f["check"]: f for f in report}
    assert seen["kafka broker"]["status"] == "fail"
    assert seen["kafka broker"]["detail"].startswith(f"cannot reach the broker at {nowhere}")
    assert seen["topics"]["detail"] == "skipped: the broker is unreachable"


def test_an_invalid_configuration_fails_without_echoing_the_value(
    e2e_env: dict[str, str],
) -> None:
    env = {**e2e_env, "LABELWATCH_WEB_PORT": "not-a-port-s3cret"}
    code, report = doctor_cli(env)
    assert code == 1
    assert report[0]["check"] == "configuration"
    assert report[0]["status"] == "fail"
    assert "LABELWATCH_WEB_PORT" in report[0]["detail"]
    assert "s3cret" not in json.dumps(report)


def test_render_aligns_findings_and_counts_problems() -> None:
    text = render(
        [
            Finding("kafka broker", "ok", "answers"),
            Finding("schema", "warn", "behind"),
            Finding("worker", "fail", "not ready"),
        ]
    )
    assert text.splitlines() == [
        "ok    kafka broker  answers",
        "warn  schema        behind",
        "FAIL  worker        not ready",
        "1 problem(s), 1 warning(s)",
    ]
