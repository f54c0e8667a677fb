"""labelwatch replay: CSV validation with line numbers, JSON summary, accuracy vs truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelwatch.cli import main
from labelwatch.replay import ReplayInputError, ordered, read_labels, replay, summary


def write(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("item,label\n1,a\n", "line 1: missing column(s) annotator"),
        ("item,annotator,label,colour\n1,a,x,red\n", "line 1: unknown column(s) colour"),
        ("item,annotator,label\n1,a,x\n2,,x\n", "line 3: column 'annotator': empty or missing"),
        (
            "item,annotator,label,duration_ms\n1,a,x,fast\n",
            "line 2: column 'duration_ms': not an integer",
        ),
        ("item,annotator,label,duration_ms\n1,a,x,-5\n", "line 2: column 'duration_ms': negative"),
        ("item,annotator,label,ts\n1,a,x,2026-01-01T00:00:00\n", "line 2: column 'ts'"),
        ("item,annotator,label\n1,a,x,extra\n", "line 2: more fields than columns"),
    ],
)
def test_bad_rows_name_the_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(
        ReplayInputError, match="labels.csv: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        read_labels(write(tmp_path, text))


def test_cli_reports_a_bad_row_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "item,annotator,label\n1,a,x\n2,b,\n")
    assert main(["replay", str(path)]) == 2
    assert "line 3: column 'label': empty or missing" in capsys.readouterr().err


def test_optional_columns_are_parsed(tmp_path: Path) -> None:
    rows = read_labels(
        write(
            tmp_path,
            "item,annotator,label,gold,duration_ms,ts,project\n"
            "1,a,x,x,1200,2026-01-01T00:00:10+00:00,p1\n"
            "2,b,y,,,1767225610,\n",
        )
    )
    assert rows[0].gold == "x" and rows[0].duration_ms == 1200 and rows[0].project == "p1"
    assert rows[0].ts == rows[1].ts == 1767225610.0
    assert rows[1].gold is None and rows[1].project == "default"


def test_projects_get_separate_models(tmp_path: Path) -> None:
    rows = read_labels(
        write(tmp_path, "item,annotator,label,project\n1,a,x,p1\n1,b,x,p1\n9,a,cat,p2\n")
    )
    result = replay(rows)
    assert sorted(result.models) == ["p1", "p2"]
    assert result.models["p1"].reliability.classes_ == ["x"]


def test_shuffle_is_seeded(tmp_path: Path) -> None:
    rows = read_labels(
        write(tmp_path, "item,annotator,label\n" + "".join(f"{i},a,x\n" for i in range(50)))
    )
    assert ordered(rows, 1) == ordered(rows, 1) != ordered(rows, 2)
    assert ordered(rows, None) == rows


def test_json_summary_on_a_shared_dataset(
    datasets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels, truth = datasets / "duck" / "labels.csv", datasets / "duck" / "truth.csv"
    assert main(["replay", str(labels), "--truth", str(truth), "--shuffle", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["labels"], out["items"], out["annotators"]) == (4212, 108, 39)
    assert out["accuracy"] > out["majority_vote_accuracy"] + 0.05  # duck: DS >> MV
    assert out["labels_per_second"] > 0
    # Alerts name the annotator as given and the 1-based row at which they fired, and say why.
    assert out["alerts"], "duck has annotators near chance: some alerts are expected"
    for alert in out["alerts"]:
        assert {"kind", "annotator", "at_label", "score", "reason"} <= set(alert)
        assert 1 <= alert["at_label"] <= 4212 and alert["reason"]
    drift = [a for a in out["alerts"] if a["kind"] == "annotator_drift"]
    assert len(drift) <= 5 * 4212 / 10_000  # no storm on unmodified data


def test_summary_without_truth_has_no_accuracy(tmp_path: Path) -> None:
    rows = read_labels(write(tmp_path, "item,annotator,label\n1,a,x\n1,b,y\n"))
    out = summary(replay(rows), None)
    assert out["accuracy"] is None and out["labels"] == 2 and out["items"] == 1
