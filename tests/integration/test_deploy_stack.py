"""docker-compose.yml's labelwatch services, run here with the compose file's own settings and
commands against the local broker, chDB and Debian's Alertmanager with the stack's
configuration (the development machines have no Docker engine).

From the compose file: the worker's environment (merged with the image's ENV), the init
service's entrypoint, the worker's command and health check, the simulator's command. Only
what must differ on this machine is replaced: the broker address (kafka:9092), the store (a
chdb:// path instead of the ClickHouse server), the data directory, the web address (a free
loopback port instead of 0.0.0.0:6066), the Alertmanager address, and the topic names and
consumer group (tagged, so the session broker's other tests are not disturbed). Then the
Grafana annotator table is read from the running worker's store.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from labelwatch.cli import build_parser
from labelwatch.query import query_worker
from labelwatch.settings import Settings
from labelwatch.sinks.migrations import current_version
from labelwatch.streams.topics import end_offsets, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration import test_deploy_dashboards as dashboards
from tests.integration.conftest import free_port, running_alertmanager
from tests.unit import test_deploy as deploy

pytestmark = pytest.mark.broker

EVENTS = 10_000  # instead of the compose simulator's hour of events


@pytest.fixture
def stack_alertmanager(debian_tools: ModuleType, tmp_path: Path) -> Iterator[str]:
    """Debian's Alertmanager with deploy/alertmanager/alertmanager.yml; yields its URL."""
    config = deploy.DEPLOY / "alertmanager" / "alertmanager.yml"
    with running_alertmanager(debian_tools, config, tmp_path) as url:
        yield url


@pytest.fixture
def compose_env(kafka_bootstrap: str, stack_alertmanager: str, tmp_path: Path) -> dict[str, str]:
    image = deploy.image_env((deploy.DEPLOY / "Dockerfile").read_text())
    worker = deploy.environment("worker")
    tag = secrets.token_hex(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWATCH_")}
    env.update({k: v for k, v in image.items() if k.startswith("LABELWATCH_")})
    env.update(worker)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "LABELWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "LABELWATCH_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'store' / 'labelwatch.chdb'}",
            "LABELWATCH_DATA_DIR": str(tmp_path / "data"),
            "LABELWATCH_WEB_HOST": "127.0.0.1",
            "LABELWATCH_WEB_PORT": str(free_port()),
            "LABELWATCH_ALERTMANAGER_URL": stack_alertmanager,
            "LABELWATCH_APP_ID": f"deploy-{tag}",
            "LABELWATCH_TOPIC_LABELS": f"deploy-{tag}.labels",
            "LABELWATCH_TOPIC_DEAD_LETTER": f"deploy-{tag}.dead-letter",
            "LABELWATCH_TOPIC_ALERTS": f"deploy-{tag}.alerts",
            "LABELWATCH_TOPIC_REVIEW": f"deploy-{tag}.review",
            "LABELWATCH_TOPIC_PRIVACY": f"deploy-{tag}.privacy",
        }
    )
    # Everything else is the compose file's (partitions, JSON logs, ...) or the image's.
    # The image creates its data directory (the labelwatch user's home).
    (tmp_path / "data").mkdir()
    return env


def run(command: list[str], env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def simulator_command(events: int) -> list[str]:
    """The compose simulator's command, for ``events`` events as fast as possible."""
    command = deploy.service("simulator")["command"]
    kept = [a for a in command if not a.startswith(("--events=", "--rate="))]
    assert len(kept) == len(command) - 2
    return ["labelwatch", *kept, f"--events={events}"]


def counter(metrics: str, name: str) -> float:
    """The sum of a metric's series; ``name`` may end in its labels (``...{topic="x"}``)."""
    prefixes = (f"{name} ",) if name.endswith("}") else (f"{name}{{", f"{name} ")
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefixes)
    )


def test_compose_services_run_with_the_compose_settings(
    compose_env: dict[str, str],
    stack_alertmanager: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = deploy.settings_of(compose_env, monkeypatch)
    assert settings.topic_partitions == int(
        deploy.environment("worker")["LABELWATCH_TOPIC_PARTITIONS"]
    )
    assert settings.embedded_store

    # init: the compose entrypoint itself (sh -c "labelwatch topics create && ...").
    output = run(deploy.service("init")["entrypoint"], compose_env, timeout=180)
    assert "created: " in output and settings.topic_labels in output
    assert f"is at schema version {current_version()}" in output
    assert len(end_offsets(settings, settings.topic_labels)) == settings.topic_partitions

    worker = WorkerProcess.start(settings, tmp_path / "worker.log", env=compose_env)
    try:
        ready = worker.wait_ready(90)
        assert ready["problems"] == []
        assert ready["partitions_assigned"] == 2 * settings.topic_partitions
        # The compose health check, pointed at this worker's port.
        check = deploy.service("worker")["healthcheck"]["test"][1:]
        port = deploy.environment("worker")["LABELWATCH_WEB_PORT"]
        run([c.replace(f":{port}/", f":{settings.web_port}/") for c in check], compose_env, 30)

        output = run(simulator_command(EVENTS), compose_env, timeout=300)
        args = build_parser().parse_args(simulator_command(EVENTS)[1:])
        assert f"sent {EVENTS + args.bad} messages" in output
        # The simulator also sends the last hour of privacy signals (--privacy).
        signals = int(output.split(" privacy signals over ")[0].rsplit("sent ", 1)[1])
        assert args.privacy and signals > 0
        assert wait_for_lag_zero(settings, timeout_s=240) == 0
        metrics = worker.get("/metrics").decode()
        labels_valid = f'labelwatch_events_valid_total{{topic="{settings.topic_labels}"}}'
        assert counter(metrics, labels_valid) == EVENTS
        assert counter(metrics, "labelwatch_events_valid_total") == EVENTS + signals
        assert counter(metrics, "labelwatch_events_dead_lettered_total") == args.bad

        # Grafana's annotator table, on the worker's store (its read-only /query).
        now = datetime.now(UTC)
        window = (now - timedelta(hours=1), now + timedelta(hours=1))
        board = dashboards.dashboards()["annotators.json"]
        [variable] = [v for v in board["templating"]["list"] if v["name"] == "project"]
        projects = _rows(settings, variable["query"]["rawSql"], {}, window)
        assert projects
        table = dashboards.panel_query("annotators.json", "Annotators").target["rawSql"]
        rows = _rows(settings, table, {"project": [p["project"] for p in projects]}, window)
        assert sum(row["labels"] for row in rows) == EVENTS
        assert len({row["annotator"] for row in rows}) >= 24
        flagged = {row["annotator"] for row in rows if row["open_alerts"]}
        assert flagged, "the injected spammers and drifters raise alerts"

        # The worker pushed its open alerts to Alertmanager, which routed them as configured.
        alerts = _alertmanager_alerts(stack_alertmanager, flagged, timeout_s=60)
        receivers = {(a["labels"]["alertname"], r["name"]) for a in alerts for r in a["receivers"]}
        assert ("LabelwatchAnnotatorAlert", "quality") in receivers
        assert flagged <= {a["labels"].get("annotator_id") for a in alerts}
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, (tmp_path / "worker.log").read_text()[-3000:]


def _rows(
    settings: Settings, sql: str, variables: dict[str, list[str]], window: tuple[datetime, datetime]
) -> list[dict[str, Any]]:
    rendered = dashboards.render(sql, variables, "labelwatch", window)
    result = query_worker(settings, rendered, {})
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def _alertmanager_alerts(url: str, annotators: set[str], timeout_s: float) -> list[dict[str, Any]]:
    """Alertmanager's active alerts, once they name every one of ``annotators`` (the worker
    posts from a queue in the background) or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
            alerts: list[dict[str, Any]] = json.load(response)
        named = {a["labels"].get("annotator_id") for a in alerts}
        if annotators <= named or time.monotonic() > deadline:
            return alerts
        time.sleep(0.5)
