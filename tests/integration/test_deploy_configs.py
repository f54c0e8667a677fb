"""The stack's Prometheus and Alertmanager configuration, checked by Debian's promtool and
amtool (the tools of the versions the rules are tested with), and Alertmanager's routing of
the alerts labelwatch sends."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from labelwatch.sinks.notify import ALERTNAME, PRIVACY_ALERTNAME

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def tool(tools: ModuleType, name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # amtool is unpacked beside promtool (Debian's prometheus-alertmanager package).
    binary = tools.binary("promtool").parent / name
    return subprocess.run(
        [str(binary), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def test_prometheus_config_is_valid_with_its_rules(debian_tools: ModuleType) -> None:
    result = tool(
        debian_tools, "promtool", "check", "config", "prometheus.yml", cwd=DEPLOY / "prometheus"
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: prometheus.yml is valid prometheus config file syntax" in output
    assert "SUCCESS: 1 rule files found" in output  # alerts.yml, found and checked too


def test_alertmanager_config_is_valid(debian_tools: ModuleType) -> None:
    result = tool(debian_tools, "amtool", "check-config", str(ALERTMANAGER_CONFIG), cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


ROUTES = [
    # What the worker pushes (labelwatch.sinks.notify).
    ({"alertname": PRIVACY_ALERTNAME, "kind": "privacy_exposure"}, "privacy"),
    ({"alertname": ALERTNAME, "kind": "annotator_drift"}, "quality"),
    ({"alertname": ALERTNAME, "kind": "spammer_suspected", "severity": "critical"}, "quality"),
    # What the rules of deploy/prometheus/alerts.yml fire.
    ({"alertname": "LabelwatchPrivacyIncident", "kind": "access_violation"}, "privacy"),
    ({"alertname": "LabelwatchWorkerDown"}, "operations"),
    ({"alertname": "LabelwatchConsumerLagHigh", "topic": "labelwatch.labels"}, "operations"),
    ({"alertname": "LabelwatchConsumerStalled"}, "operations"),
    ({"alertname": "LabelwatchDeadLetterRateHigh"}, "operations"),
    ({"alertname": "LabelwatchSinkErrors", "component": "clickhouse"}, "operations"),
    ({"alertname": "LabelwatchAnnotatorAlertBurst", "kind": "low_reliability"}, "quality"),
]


@pytest.mark.parametrize(("labels", "receiver"), ROUTES)
def test_alerts_are_routed_to_their_receiver(
    debian_tools: ModuleType, labels: dict[str, str], receiver: str
) -> None:
    result = tool(
        debian_tools,
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *(f"{key}={value}" for key, value in labels.items()),
        cwd=DEPLOY,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_rule_alert_is_routed_on_purpose() -> None:
    # A new rule in alerts.yml needs a place in the routing tree and a case in ROUTES.
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    names = {line.split(":", 1)[1].strip() for line in rules.splitlines() if "- alert:" in line}
    assert names and names <= {labels["alertname"] for labels, _ in ROUTES}
