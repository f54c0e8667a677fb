"""Progress of ``replay`` and ``simulate``: on stderr only, off with ``--no-progress`` or
without a terminal, and counting exactly the events processed."""

from __future__ import annotations

import ast
import fcntl
import io
import json
import os
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import count, islice
from pathlib import Path
from typing import Any

import pytest

from labelwatch import progress
from labelwatch.cli import main
from labelwatch.progress import Advance, counted

PACKAGE = Path(__file__).resolve().parents[2] / "labelwatch"
START = datetime(2026, 1, 1, tzinfo=UTC)


class Recorder:
    """Stages that record each stage's name, total, unit and the sum of its advances."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []

    @contextmanager
    def __call__(self, name: str, total: int | None, unit: str) -> Iterator[Advance]:
        stage: dict[str, Any] = {"name": name, "total": total, "unit": unit.strip(), "count": 0}
        self.stages.append(stage)

        def advance(n: int) -> None:
            stage["count"] += n

        yield advance
        stage["closed"] = True

    def counts(self) -> dict[str, tuple[int | None, int]]:
        assert all(s.get("closed") for s in self.stages)
        return {s["name"]: (s["total"], s["count"]) for s in self.stages}


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """What the command line's bars would have shown, instead of bars."""
    rec = Recorder()
    monkeypatch.setattr(progress, "stderr_bars", lambda *, enabled=True: rec)
    return rec


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, so tqdm draws its bars into it."""

    def isatty(self) -> bool:
        return True


def final_bar(stderr: str, name: str) -> tuple[int, int]:
    """Count and total of the last state of the bar ``name`` (tqdm redraws after ``\\r``)."""
    states = [s for s in re.split(r"[\r\n]+", stderr) if s.startswith(f"{name}:")]
    assert states, f"no {name!r} bar in {stderr!r}"
    found = re.search(r"\| *(\d+)/(\d+) \[", states[-1])
    assert found, states[-1]
    return int(found[1]), int(found[2])


@pytest.fixture(scope="module")
def labels_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("progress")
    assert main(["simulate", "--to-dir", str(directory), "--events", "600", "--seed", "3"]) == 0
    return directory / "labels.csv"


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "mixed.jsonl"
    args = ["simulate", "--to-file", str(path), "--events", "700", "--hours", "2", "--seed", "4"]
    assert main(args) == 0
    return path


def without_rate(text: str) -> str:
    """Replay's text output without its one timing figure (labels/s differs run to run)."""
    return re.sub(r"[\d,]+ labels/s", "N labels/s", text)


def test_replay_bars_go_to_stderr_and_leave_stdout_as_it_was(
    labels_csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(labels_csv), "--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["replay", str(labels_csv)]) == 0
    shown = capsys.readouterr()
    assert without_rate(shown.out) == without_rate(quiet.out)
    assert "%|" not in shown.out and "labels/s]" not in shown.out
    assert final_bar(terminal.getvalue(), "reading") == (600, 600)
    assert final_bar(terminal.getvalue(), "models") == (600, 600)
    assert "100%|" in terminal.getvalue()


def test_no_progress_silences_the_bars_on_a_terminal(
    labels_csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["replay", str(labels_csv), "--json", "--no-progress"]) == 0
    assert terminal.getvalue() == ""
    assert json.loads(capsys.readouterr().out)["labels"] == 600


def test_no_bars_when_stderr_is_not_a_terminal(
    labels_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(labels_csv), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out)["labels"] == 600


def test_replay_of_a_csv_counts_every_label(
    labels_csv: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(labels_csv), "--json", "--shuffle", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == 600
    assert recorder.counts() == {"reading": (600, 600), "models": (600, 600)}


def test_replay_of_a_mixed_file_counts_every_event(
    mixed_file: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = len(mixed_file.read_text().splitlines())
    assert main(["replay", str(mixed_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == 700 and report["labels"] + report["privacy_signals"] == lines
    assert recorder.counts() == {
        "reading": (lines, lines),
        "models": (700, 700),
        "privacy": (lines, lines),
    }


def test_simulate_to_dir_counts_the_labels_written(
    tmp_path: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--to-dir", str(tmp_path), "--events", "321"]) == 0
    assert capsys.readouterr().out.startswith("wrote 321 labels to ")
    assert len((tmp_path / "labels.csv").read_text().splitlines()) == 1 + 321
    assert recorder.counts() == {"simulating": (321, 321)}


def test_simulate_to_file_counts_labels_signals_and_lines(
    tmp_path: Path, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mixed.jsonl"
    assert main(["simulate", "--to-file", str(path), "--events", "400", "--hours", "2"]) == 0
    capsys.readouterr()
    truth = json.loads(Path(f"{path}.truth.json").read_text())
    lines = len(path.read_text().splitlines())
    assert recorder.counts() == {
        "simulating": (400, 400),
        "privacy signals": (None, truth["signals"] - len(truth["revoked_items"])),
        "writing": (lines, lines),
    }
    assert lines == 400 + truth["signals"]


@pytest.mark.parametrize("batch", [1, 50])
def test_simulate_to_kafka_counts_the_labels_handed_to_the_producer(
    batch: int,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Progress wiring only: what reaches a real broker is tested in tests/integration.
    from labelwatch.streams import produce, topics

    drained: list[tuple[bytes | None, bytes]] = []

    def fake_produce(
        settings: object, topic: str, records: Iterable[tuple[bytes | None, bytes]], **_: object
    ) -> int:
        drained.extend(records)
        assert recorder.stages[-1]["count"] == 250  # every label taken while the bar is open
        return len(drained)

    monkeypatch.setattr(produce, "produce", fake_produce)
    monkeypatch.setattr(topics, "ensure_topics", lambda settings: [])
    args = ["simulate", "--events", "250", "--bad", "3", "--batch", str(batch)]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"sent {len(drained)} messages (3 malformed)")
    assert recorder.counts() == {"producing": (250, 250)}


@pytest.mark.parametrize("rows_columns", [(24, 100), (0, 0)], ids=["sized", "no-size"])
def test_a_real_terminal_gets_the_bar_and_a_pipe_gets_stdout_unchanged(
    tmp_path: Path, rows_columns: tuple[int, int]
) -> None:
    """End to end: the command with stderr on a pseudo-terminal and stdout on a pipe. Some
    pseudo-terminals (containers', CI's) report a size of 0 x 0: the bar still shows."""
    command = [sys.executable, "-m", "labelwatch", "simulate", "--events", "432", "--to-dir"]

    def run(*extra: str) -> tuple[str, str]:
        leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *rows_columns, 0, 0))
        with subprocess.Popen(
            [*command, str(tmp_path), *extra], stdout=subprocess.PIPE, stderr=follower
        ) as proc:
            os.close(follower)
            err = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the command exited and closed the terminal
                    break
                if not chunk:
                    break
                err += chunk
            out = proc.communicate(timeout=60)[0]
        os.close(leader)
        assert proc.returncode == 0, err
        return out.decode(), err.decode()

    out, err = run()
    expected = f"wrote 432 labels to {tmp_path}/labels.csv (+ truth.csv, annotators.json)\n"
    assert out == expected
    assert final_bar(err, "simulating") == (432, 432)
    assert "labels/s]" in err
    out, err = run("--no-progress")
    assert out == expected
    assert err == ""


def test_counted_is_exact_on_an_endless_iterator_and_flushes_its_steps() -> None:
    seen: list[int] = []
    endless = counted(count(), seen.append)
    assert list(islice(endless, 5)) == [0, 1, 2, 3, 4]
    assert sum(seen) == 5
    stepped: list[int] = []
    assert list(counted(range(10), stepped.append, step=4)) == list(range(10))
    assert stepped == [4, 4, 2]


def test_models_and_schemas_do_not_import_tqdm() -> None:
    for layer in ("models", "schemas"):
        for path in (PACKAGE / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                progress_imports = [
                    n for n in names if n.split(".")[0] == "tqdm" or n == "labelwatch.progress"
                ]
                assert not progress_imports, f"{path} imports {progress_imports}"
