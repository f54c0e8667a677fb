"""The compose file and Dockerfile stay consistent with the settings object."""

from __future__ import annotations

import re
from pathlib import Path

from labelwatch.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_every_compose_variable_is_a_setting() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    names = set(re.findall(r"\b(LABELWATCH_[A-Z_]+):", text))
    assert "LABELWATCH_KAFKA_BOOTSTRAP" in names and "LABELWATCH_CLICKHOUSE_DSN" in names
    fields = {f"LABELWATCH_{name.upper()}" for name in Settings.model_fields}
    assert names <= fields, names - fields


def test_compose_worker_port_matches_its_web_port_setting() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    port = re.search(r"LABELWATCH_WEB_PORT: \"(\d+)\"", text)
    assert port is not None
    assert f'"{port.group(1)}:{port.group(1)}"' in text
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert f"EXPOSE {port.group(1)}" in dockerfile


def test_compose_kafka_image_matches_the_local_broker_version() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    script = (REPO / "scripts" / "local_kafka.py").read_text()
    version = re.search(r'KAFKA_VERSION = "([\d.]+)"', script)
    assert version is not None
    assert f"image: apache/kafka:{version.group(1)}" in text
