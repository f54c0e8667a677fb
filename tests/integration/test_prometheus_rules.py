"""The shipped Prometheus rules: valid, unit-tested with promtool, and about metrics the
worker really exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import ModuleType

from labelwatch.sinks.metrics import Metrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(tools: ModuleType, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools.binary("promtool")), *args],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_rules_are_valid(debian_tools: ModuleType) -> None:
    result = promtool(debian_tools, "check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_pass(debian_tools: ModuleType) -> None:
    tests = sorted(p.name for p in RULES.glob("*test*.yml"))
    assert tests
    result = promtool(debian_tools, "test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "FAILED" not in result.stdout


def test_rules_use_only_metrics_the_worker_exports() -> None:
    exported = {
        line.split()[2]
        for line in Metrics().exposition().decode().splitlines()
        if line.startswith("# TYPE ")
    }
    used = set(re.findall(r"\blabelwatch_[a-z_]+", (RULES / "alerts.yml").read_text()))
    assert used, "no labelwatch metric in the rules?"
    assert used <= exported, sorted(used - exported)
