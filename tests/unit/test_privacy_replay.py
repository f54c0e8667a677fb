"""Mixed JSONL replay: labels and privacy signals from one file, alerts by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelwatch.cli import main
from labelwatch.replay import ReplayInputError, read_events, replay_events


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    path = tmp_path_factory.mktemp("mixed") / "events.jsonl"
    code = main(
        [
            "simulate",
            "--to-file",
            str(path),
            "--events",
            "12000",
            "--hours",
            "8",
            "--seed",
            "5",
            "--spikes",
            "4",
            "--exposures",
            "4",
            "--revocations",
            "6",
        ]
    )
    assert code == 0
    return path, json.loads(Path(f"{path}.truth.json").read_text())


def test_simulated_file_holds_both_types_in_event_time_order(
    mixed: tuple[Path, dict[str, object]],
) -> None:
    path, truth = mixed
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {line["type"] for line in lines} == {"label", "privacy_signal"}
    assert sum(line["type"] == "label" for line in lines) == truth["labels"] == 12000
    stamps = [line["ts"] for line in lines]
    assert stamps == sorted(stamps)
    events = read_events(path)
    assert len(events.labels) == 12000 and len(events.signals) == truth["signals"]


def test_every_exposure_and_every_revoked_label_is_alerted_at_its_line(
    mixed: tuple[Path, dict[str, object]],
) -> None:
    path, truth = mixed
    result = replay_events(read_events(path))
    alerts = result.alerts
    assert [a["at_event"] for a in alerts] == sorted(a["at_event"] for a in alerts)
    for a in alerts:
        assert {"kind", "project", "subject", "at_event", "reason"} <= set(a)

    exposures = [i for i in truth["incidents"] if i["type"] == "exposure"]  # type: ignore[union-attr]
    assert len(exposures) == 4
    exposure_lines = {a["at_event"] for a in alerts if a["kind"] == "privacy_exposure"}
    for incident in exposures:
        assert incident["lines"][0] in exposure_lines

    revoked = truth["revoked_items"]
    expected = {label["line"] for item in revoked for label in item["labels_after"]}  # type: ignore[union-attr]
    assert len(revoked) == 6 and expected  # type: ignore[arg-type]
    flagged = [a for a in alerts if a["kind"] == "revoked_item_labeled"]
    assert {int(a["evidence"]["label_event_id"].split("-")[-1]) for a in flagged} == {
        int(label["event_id"].split("-")[-1])
        for item in revoked  # type: ignore[union-attr]
        for label in item["labels_after"]
    }
    assert len(flagged) == len(expected)  # one alert per label, none twice


def test_injected_spikes_are_found(mixed: tuple[Path, dict[str, object]]) -> None:
    path, truth = mixed
    alerts = replay_events(read_events(path)).alerts
    spikes = [i for i in truth["incidents"] if i["type"] == "spike"]  # type: ignore[union-attr]
    opened = [a for a in alerts if a["kind"] == "privacy_spike" and a["state"] == "opened"]
    found = 0
    for spike in spikes:
        first, last = spike["lines"][0], spike["lines"][-1]
        found += any(
            a["project"] == spike["project"]
            and a["subject"] == spike["kind"]
            and first <= a["at_event"] <= last
            for a in opened
        )
    assert found >= len(spikes) - 1, (spikes, opened)


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


LABEL = (
    '{"type": "label", "event_id": "e1", "ts": "2026-01-01T00:00:00Z", "project": "p", '
    '"item_id": "i", "annotator_id": "a", "label": "x"}'
)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"event_id": "e2"}', "line 2: field 'type' must be one of label, privacy_signal"),
        ('{"type": "label", "event_id": "e2"', "line 2: not JSON"),
        (
            '{"type": "privacy_signal", "event_id": "s", "ts": "2026-01-01T00:00:00Z", '
            '"project": "p", "source": "s", "kind": "consent_revoked", "severity": "low"}',
            "line 2: invalid_fields: item_id: required for kind consent_revoked",
        ),
        (LABEL.replace('"label": "x"', '"label": "x", "colour": 1'), "line 2: invalid_fields"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ReplayInputError, match=message):
        read_events(write(tmp_path, [LABEL, line]))


def test_cli_replay_of_a_mixed_file_lists_privacy_alerts(
    mixed: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = mixed
    assert main(["replay", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    kinds = {a["kind"] for a in report["alerts"]}
    assert {"privacy_exposure", "revoked_item_labeled", "privacy_spike"} <= kinds
    assert report["privacy_signals"] > 0 and report["labels"] == 12000
