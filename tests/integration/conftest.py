"""Fixtures for tests that run a real worker process against the real broker."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from labelwatch.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def e2e_env(kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a worker of its own: fresh topics, group, store and port."""
    tag = secrets.token_hex(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWATCH_")}
    env.update(
        {
            "LABELWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "LABELWATCH_APP_ID": f"e2e-{tag}",
            "LABELWATCH_TOPIC_LABELS": f"e2e-{tag}.labels",
            "LABELWATCH_TOPIC_DEAD_LETTER": f"e2e-{tag}.dead-letter",
            "LABELWATCH_TOPIC_ALERTS": f"e2e-{tag}.alerts",
            "LABELWATCH_TOPIC_REVIEW": f"e2e-{tag}.review",
            "LABELWATCH_TOPIC_PRIVACY": f"e2e-{tag}.privacy",
            "LABELWATCH_TOPIC_PARTITIONS": "3",
            "LABELWATCH_DATA_DIR": str(tmp_path / "data"),
            "LABELWATCH_WEB_PORT": str(free_port()),
            "LABELWATCH_SINK_BATCH_SIZE": "200",
            "LABELWATCH_SINK_FLUSH_SECONDS": "0.5",
            "LABELWATCH_MAX_MESSAGE_BYTES": "65536",
            "LABELWATCH_RELIABILITY_SNAPSHOT_SECONDS": "0.5",
            "LABELWATCH_CHECKPOINT_EVERY_LABELS": "100",
        }
    )
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        if key.startswith("LABELWATCH_"):
            monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture
def alertmanager(debian_tools: ModuleType, tmp_path: Path) -> Iterator[str]:
    """Debian's Alertmanager on a free loopback port (no clustering); yields its base URL."""
    config = tmp_path / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            str(debian_tools.binary("alertmanager")),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"alertmanager did not start: {(tmp_path / 'alertmanager.log').read_text()}"
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
