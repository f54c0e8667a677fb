"""Fixtures for tests that run a real worker process against the real broker."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def running_alertmanager(debian_tools: ModuleType, config: Path, workdir: Path) -> Iterator[str]:
    """Debian's Alertmanager with ``config`` on a free loopback port (no clustering), data
    and log in ``workdir``; yields its base URL once it is ready, stops it afterwards."""
    port = free_port()
    log_path = workdir / "alertmanager.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(debian_tools.binary("alertmanager")),
                f"--config.file={config}",
                f"--storage.path={workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(f"{url}/-/ready"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"alertmanager did not start: {log_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def alertmanager(debian_tools: ModuleType, tmp_path: Path) -> Iterator[str]:
    """Debian's Alertmanager routing everything to a null receiver; yields its base URL."""
    config = tmp_path / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    with running_alertmanager(debian_tools, config, tmp_path) as url:
        yield url
