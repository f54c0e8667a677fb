"""Dependency direction: schemas <- models <- streams/sinks. Pure layers import no I/O library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "labelwatch"
FORBIDDEN = {
    "faust",
    "mode",
    "aiokafka",
    "kafka",
    "clickhouse_connect",
    "chdb",
    "prometheus_client",
}
PURE_LAYERS = {
    "schemas": FORBIDDEN | {"labelwatch.models", "labelwatch.streams", "labelwatch.sinks"},
    "models": FORBIDDEN | {"labelwatch.streams", "labelwatch.sinks"},
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(layer: str) -> list[str]:
    banned = PURE_LAYERS[layer]
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module in imported_modules(path):
            if any(module == b or module.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(PACKAGE)} imports {module}")
    return found


@pytest.mark.parametrize("layer", sorted(PURE_LAYERS))
def test_pure_layer_imports_no_io_library(layer: str) -> None:
    assert (PACKAGE / layer).is_dir()
    assert violations(layer) == []


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import faust\nfrom clickhouse_connect.driver import client\n")
    assert imported_modules(bad) == {"faust", "clickhouse_connect.driver"}
