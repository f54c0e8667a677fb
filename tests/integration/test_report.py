"""``labelwatch report``: the replay path names what a simulation injected (automation-biased
annotators, a guideline change's confused pair) with the alpha of the same labels; a shared
data set's replay has its file's alpha; the live path reads rows the sink code wrote, and the
CLI writes Markdown, SVG plots and a self-contained HTML page."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from labelwatch.cli import main
from labelwatch.models.agreement import Coincidence, StreamingAlpha
from labelwatch.models.confusion import ConfusionFinding
from labelwatch.models.consensus import ItemConsensus
from labelwatch.models.tracker import (
    AgreementSnapshot,
    FindingSnapshot,
    ItemSnapshot,
    LabelOutcome,
    QualityOutput,
    ReviewItem,
)
from labelwatch.replay import read_labels
from labelwatch.report import (
    Report,
    gather,
    live_report,
    render_html,
    render_markdown,
    replay_report,
    resolve_window,
    store_query,
)
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.schemas.alerts import Alert
from labelwatch.settings import Settings
from labelwatch.simulator import PROJECT_LABELS, LabelingSimulator, SimulationConfig
from labelwatch.sinks.clickhouse import (
    ClickHouseWriter,
    connect,
    database_name,
    label_event_row,
    sink_rows,
)
from labelwatch.sinks.migrations import migrate
from labelwatch.sinks.query import QueryResult
from tests.integration.conftest import free_port

START = datetime(2026, 6, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the agreement table's totals rows
N_LABELS = 5_000


def store(chdb_dir: Path) -> Settings:
    return Settings(
        data_dir=chdb_dir,
        clickhouse_database=f"t_report_{secrets.token_hex(4)}",
        _env_file=None,  # type: ignore[call-arg]
    )


def drop(settings: Settings) -> None:
    client = connect(settings=settings)
    client.command(f"DROP DATABASE IF EXISTS {database_name(settings)}")
    client.close()


def alpha_of(events: list[LabelEvent]) -> float | None:
    model = StreamingAlpha()
    for e in events:
        model.update({"item": e.item_id, "annotator": e.annotator_id, "label": e.label})
    return model.get()


# --- (a) replay of a simulated file -------------------------------------------------------
@dataclass
class Simulated:
    path: Path
    events: list[LabelEvent]
    biased: set[str]
    report: Report


@pytest.fixture(scope="module")
def simulated(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulated]:
    """5,000 labels at one a second: pre-labels on 70% of the items, two automation-biased
    annotators, and from label 1,666 on guideline v2, under which half the annotators read
    sentiment's 'neutral' as 'negative' and back."""
    sim = LabelingSimulator(
        SimulationConfig(
            seed=1,
            run_id="rep",
            annotators=12,
            behaviours={"automation_biased": 2},
            prelabel_share=0.7,
            model_accuracy=0.7,
            events_per_second=1.0,
            projects={p: PROJECT_LABELS[p] for p in ("sentiment", "animals")},
            guideline_change=(N_LABELS // 3, "sentiment", "neutral", "negative"),
        )
    )
    made = [s.event for s in islice(sim.labels(START), N_LABELS)]
    path = tmp_path_factory.mktemp("report") / "simulated.jsonl"
    path.write_text("".join(json.dumps({"type": "label", **e}) + "\n" for e in made))
    events = [LabelEvent.model_validate(e, strict=False) for e in made]
    biased = {a.annotator_id for a in sim.annotators if a.kind == "automation_biased"}
    target = store(chdb_dir)
    try:
        report = replay_report(target, path, "sentiment", store=target)
        yield Simulated(path, events, biased, report)
    finally:
        drop(target)


def test_replay_alpha_is_the_alpha_of_the_same_labels(simulated: Simulated) -> None:
    sentiment = [e for e in simulated.events if e.project == "sentiment"]
    expected = alpha_of(sentiment)
    agreement = simulated.report.agreement
    assert expected is not None
    assert agreement.window.alpha() == pytest.approx(expected, abs=1e-9)
    assert agreement.all_time.alpha() == pytest.approx(expected, abs=1e-9)
    assert len(agreement.trend) == 2  # 5,000 s: two event-time hours
    assert f"**{expected:.3f}**" in render_markdown(simulated.report)


def test_replay_names_the_automation_biased_annotators(simulated: Simulated) -> None:
    assist = simulated.report.assist
    top_two = {a.annotator for a in assist.annotators[:2]}
    assert top_two == simulated.biased
    for a in assist.annotators[:2]:
        assert a.wrong_acceptance is not None and a.peers_wrong_accepted is not None
        assert a.wrong_acceptance > 0.8 > 0.3 > a.peers_wrong_accepted
    alerted = {a.subject for a in assist.alerts if a.kind == "automation_bias"}
    assert alerted == simulated.biased
    text = render_markdown(simulated.report)
    section = text.split("## ML-assisted labeling")[1].split("## Open alerts")[0]
    for annotator in simulated.biased:
        assert f"**{annotator}**: accepts" in section


def test_replay_finds_the_guideline_changes_pair(simulated: Simulated) -> None:
    confusion = simulated.report.confusion
    top_v2 = confusion.by_version["v2"].confused_pairs(1)[0]
    assert {top_v2.reference, top_v2.given} == {"neutral", "negative"}
    top_v1 = confusion.by_version["v1"].confused_pairs(1)[0]
    assert top_v1.rate < top_v2.rate / 2
    assert confusion.findings
    assert all("since guideline v2" in f for f in confusion.findings)
    assert all("'neutral'" in f and "'negative'" in f for f in confusion.findings)
    attribution = simulated.report.attribution.annotators.by_pair()[0]
    assert set(attribution.key or ()) == {"neutral", "negative"}


def test_replay_summarises_review_picks_and_attribution(simulated: Simulated) -> None:
    report = simulated.report
    assert report.review.by_kind.get("priority", 0) > 0
    assert report.review.top and report.review.top[0].reason.startswith("consensus ")
    assert report.attribution.projects is not None  # animals is in the store too
    text = render_markdown(report)
    assert re.search(r"\d+ items were picked for expert review: \d+ by priority", text)
    assert "of the disagreement in project sentiment in this window comes from" in text
    assert "Across the store's 2 projects in the same window, project sentiment" in text
    assert "replay of" in text and "5,000 label events in file order" in text


# --- (b) replay of a shared data set ------------------------------------------------------
def test_replay_of_a_shared_data_set_has_the_files_alpha(datasets: Path, chdb_dir: Path) -> None:
    path = datasets / "duck" / "labels.csv"
    rows = read_labels(path)
    model = StreamingAlpha()
    for r in rows:
        model.update({"item": r.item, "annotator": r.annotator, "label": r.label})
    target = store(chdb_dir)
    try:
        report = replay_report(target, path, "duck", since=None, shuffle=3, store=target)
    finally:
        drop(target)
    assert report.header.labels == len(rows)
    assert report.agreement.window.alpha() == pytest.approx(model.get(), abs=1e-9)
    assert report.agreement.window.n_units == len({r.item for r in rows})
    text = render_markdown(report)
    assert "no times in the file" in text and "shuffle seed 3" in text
    assert "No pre-labels in this window." in text
    assert "No automation bias alert in this window." in text


# --- (c) the live path on rows written by the sink code -----------------------------------
T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
# item -> votes (annotator, label), final consensus, gold, pre-label, hour
ITEMS = {
    "i1": ([("x", "a"), ("y", "a"), ("z", "b")], "a", None, "b", 0),
    "i2": ([("x", "b"), ("y", "b"), ("z", "a")], "b", None, "b", 0),
    "i3": ([("x", "a"), ("y", "a"), ("z", "a")], "a", "a", None, 0),
    "i4": ([("x", "b"), ("y", "b"), ("z", "b")], "b", None, None, 1),
    "i5": ([("x", "a"), ("y", "b"), ("z", "b")], "b", None, None, 1),
    "i6": ([("z", "b"), ("x", "a"), ("y", "a")], "a", None, "b", 1),
}


def live_events() -> list[tuple[LabelEvent, SourcePosition, LabelOutcome]]:
    out = []
    for n, (item, (votes, final, gold, model, hour)) in enumerate(ITEMS.items()):
        shard = 0 if hour == 0 else 1
        for k, (annotator, label) in enumerate(votes):
            event = LabelEvent(
                event_id=f"{item}-{annotator}",
                ts=T0 + timedelta(hours=hour, minutes=5 * n + k),
                project="p",
                item_id=item,
                annotator_id=annotator,
                label=label,
                gold_label=gold,
                model_label=model,
                model_confidence=None if model is None else 0.9,
                guideline_version="v1",
            )
            # The consensus right after i6's first vote was that vote: the report must judge
            # by the item's final consensus instead.
            after = label if k == 0 else final
            outcome = LabelOutcome(after, 0.8, label == after, None if gold is None else True)
            out.append((event, SourcePosition("labels", shard, n * 3 + k), outcome))
    return out


def coincidence(items: list[str]) -> Coincidence:
    model = StreamingAlpha()
    for item in items:
        for annotator, label in ITEMS[item][0]:
            model.update({"item": item, "annotator": annotator, "label": label})
    return model.coincidence()


def alert(kind: str, subject: str, state: str, minutes: int, reason: str) -> Alert:
    return Alert(
        alert_id=f"{kind}-{subject}",
        kind=kind,
        state=state,
        severity="warning",
        ts=T0 + timedelta(minutes=minutes),
        project="p",
        annotator_id="" if subject == "model" else subject,
        subject=subject,
        score=1.0,
        threshold=0.5,
        reason=reason,
        evidence={},
        detector="test",
        shard="labels:0",
        offset=minutes,
        opened_offset=0,
    )


def review(item: str, kind: str, priority: float, probability: float | None) -> ReviewItem:
    return ReviewItem(
        review_id=f"r-{item}",
        project="p",
        item_id=item,
        kind=kind,
        priority=priority,
        rank=1,
        stratum="p|low",
        inclusion_probability=probability,
        reason=f"consensus of {item} is weak",
        offered_at=T0 + timedelta(minutes=30),
        window_start=T0,
        shard="labels:0",
    )


FINDING = ConfusionFinding(
    kind="guideline",
    project="p",
    guideline="v1",
    baseline="v0",
    reference="a",
    given="b",
    old_rate=0.1,
    new_rate=0.3,
    ratio=3.0,
    old_count=2,
    old_support=20,
    new_count=6,
    new_support=20,
    new_labels=40,
    annotators=3,
    top_annotator_share=0.4,
    statistic=9.0,
    threshold=8.0,
    at_label=17,
)


@pytest.fixture(scope="module")
def live_store(chdb_dir: Path) -> Iterator[Settings]:
    settings = store(chdb_dir)
    db = database_name(settings)
    writer = ClickHouseWriter(connect(settings=settings), db)
    now = T0 + timedelta(days=1)
    try:
        migrate(writer.client, db)
        labelled = live_events()
        pairs = [(e, s) for e, s, _ in labelled]
        tables = sink_rows(pairs, QualityOutput(outcomes=[o for _, _, o in labelled]), now)
        # A redelivered copy of one label at another offset: FINAL must collapse it.
        event, _, outcome = labelled[0]
        tables["label_events"].append(
            label_event_row(event, SourcePosition("labels", 0, 99), now, outcome)
        )
        # A first vote on an item with neither gold nor a stored consensus: no reference.
        lone = LabelEvent(
            event_id="i7-x", ts=T0, project="p", item_id="i7", annotator_id="x", label="a"
        )
        tables["label_events"].append(label_event_row(lone, SourcePosition("labels", 0, 98), now))
        # Another project with no disagreement at all.
        other = [
            LabelEvent(
                event_id=f"q-{a}",
                ts=T0,
                project="q",
                item_id="j1",
                annotator_id=a,
                label="c",
            )
            for a in "xyz"
        ]
        tables["label_events"] += [
            label_event_row(e, SourcePosition("labels", 2, i), now) for i, e in enumerate(other)
        ]
        quality = QualityOutput(
            items=[
                ItemSnapshot(
                    "p", ItemConsensus(item, final, 0.8, 3, gold), False, T0, "labels:0", 10
                )
                for item, (_, final, gold, _, _) in ITEMS.items()
            ]
            + [
                # An older consensus of i1 that must lose to the newer version.
                ItemSnapshot("p", ItemConsensus("i1", "b", 0.5, 1, None), False, T0, "s", 1),
                ItemSnapshot("q", ItemConsensus("j1", "c", 0.9, 3, None), False, T0, "s", 1),
            ],
            alerts=[
                alert("automation_bias", "z", "opened", 30, "accepts 100% of wrong pre-labels"),
                alert("model_drift", "model", "opened", 40, "the model agrees less"),
                alert("model_drift", "model", "resolved", 70, "the model agrees again"),
                alert("annotator_drift", "y", "opened", 80, "y drifts"),
            ],
            reviews=[
                review("i1", "priority", 0.9, None),
                review("i5", "priority", 0.7, None),
                review("i3", "random", 0.2, 0.25),
            ],
            agreement=[
                # Shard 0 (hour 10): a stale total, then its newest; shard 1 (hour 11).
                AgreementSnapshot(T0, "p", "labels:0", EPOCH, Coincidence()),
                AgreementSnapshot(
                    T0 + timedelta(hours=2),
                    "p",
                    "labels:0",
                    EPOCH,
                    coincidence(["i1", "i2", "i3"]),
                ),
                AgreementSnapshot(
                    T0 + timedelta(hours=2), "p", "labels:0", T0, coincidence(["i1", "i2", "i3"])
                ),
                AgreementSnapshot(
                    T0 + timedelta(hours=2),
                    "p",
                    "labels:1",
                    EPOCH,
                    coincidence(["i4", "i5", "i6"]),
                ),
                AgreementSnapshot(
                    T0 + timedelta(hours=2),
                    "p",
                    "labels:1",
                    T0 + timedelta(hours=1),
                    coincidence(["i4", "i5", "i6"]),
                ),
            ],
            findings=[FindingSnapshot("f1", T0 + timedelta(minutes=50), FINDING, "labels:0", 5)],
        )
        for table, rows in sink_rows([], quality, now).items():
            tables[table] = tables.get(table, []) + rows
        writer.insert_tables(tables)
    finally:
        writer.close()
    yield settings
    drop(settings)


def test_live_report_reads_the_sinks_rows(live_store: Settings) -> None:
    report = live_report(live_store, "p", since="30d", via="direct")
    assert report.header.labels == 19  # the redelivered copy collapsed
    assert (report.header.items, report.header.annotators) == (7, 3)

    agreement = report.agreement
    whole = coincidence(list(ITEMS))
    assert agreement.window.alpha() == pytest.approx(whole.alpha(), abs=1e-12)
    assert agreement.all_time.alpha() == pytest.approx(whole.alpha(), abs=1e-12)
    assert [start for start, _ in agreement.trend] == [T0, T0 + timedelta(hours=1)]
    assert agreement.shards == 2

    # Disagreement against the final consensus: z on i1, i2 and i6, x on i5.
    model = report.attribution.annotators
    assert (model.n_disagreements, model.n_labels) == (4, 18)
    assert report.attribution.without_reference == 1
    by = {s.key: s.disagreements for s in model.by_annotator() if s.labels}
    assert by == {"z": 3, "x": 1, "y": 0}
    projects = report.attribution.projects
    assert projects is not None
    assert {s.key: s.share for s in projects.by_project() if s.labels} == {"p": 1.0, "q": 0.0}

    counts = report.confusion.by_version["v1"].counts
    assert (counts[("a", "b")], counts[("b", "a")]) == (2, 2)
    assert report.confusion.findings == [FINDING.sentence]

    use = {a.annotator: a for a in report.assist.annotators}
    assert (use["z"].shown, use["z"].accepted, use["z"].wrong_shown) == (3, 2, 2)
    assert (use["z"].wrong_accepted, use["z"].peers_wrong_accepted) == (2, 0.0)
    assert use["x"].peers_wrong_accepted == pytest.approx(0.5)
    assert report.assist.annotators[0].annotator == "z"
    kinds = {(a.kind, a.subject, a.state) for a in report.assist.alerts}
    assert kinds == {("automation_bias", "z", "opened"), ("model_drift", "model", "resolved")}

    assert report.alerts.total == 2  # the model drift resolved
    assert {a.subject for a in report.alerts.newest} == {"z", "y"}

    assert report.review.by_kind == {"priority": 2, "random": 1}
    assert report.review.random_represents == pytest.approx(4.0)
    assert [r.item_id for r in report.review.top] == ["i1", "i5"]


def test_a_window_without_the_data_says_so_in_every_section(live_store: Settings) -> None:
    text = render_markdown(
        live_report(live_store, "p", since="2026-01-01", until="2026-02-01", via="direct")
    )
    assert "No labels in this window**; the newest is from 2026-05-01 11:27 UTC" in text
    for sentence in (
        "No items with two or more labels in this window",
        "No labels with a reference (gold or consensus) in this window.",
        "No change in the confusion structure was found in this window.",
        "No pre-labels in this window.",
        "No automation bias alert in this window.",
        "No model drift alert in this window.",
        "No review picks in this window.",
    ):
        assert sentence in text
    text = render_markdown(live_report(live_store, "nope", via="direct"))
    assert "No labels for project nope in the store** (projects: p, q)" in text
    assert "No open alerts for project nope." in text


def test_cli_writes_markdown_svg_plots_and_self_contained_html(
    live_store: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LABELWATCH_DATA_DIR", str(live_store.data_dir))
    monkeypatch.setenv("LABELWATCH_CLICKHOUSE_DATABASE", live_store.clickhouse_database)
    monkeypatch.setenv("LABELWATCH_WEB_PORT", str(free_port()))  # no worker: direct
    out = tmp_path / "out"
    assert main(["report", "--project", "p", "--since", "2d", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    markdown = (out / "report.md").read_text()
    assert printed == markdown
    assert markdown.startswith("# Labeling quality report: project p")
    plots = re.findall(r"!\[[^\]]*\]\(([^)]+\.svg)\)", markdown)
    assert set(plots) == {
        "alpha_trend.svg",
        "confused_pairs.svg",
        "disagreement_by_annotator.svg",
        "prelabel_acceptance.svg",
    }
    for name in plots:
        svg = (out / name).read_text()
        assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')  # files stand alone
        assert "<rect" in svg or "<polyline" in svg
    page = (out / "report.html").read_text()
    assert page.count("<svg") == len(plots)
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert "<strong>z</strong>: accepts 100% of wrong pre-labels" in page

    assert main(["report", "--project", "p", "--out", str(out), "--shuffle", "1"]) == 2
    assert main(["report", "--project", "p", "--out", str(out), "--since", "soon"]) == 2
    assert "neither a duration" in capsys.readouterr().err


def test_the_worker_endpoints_json_gives_the_same_report(live_store: Settings) -> None:
    # The worker's /query answers JSON (times as text): the report must read it the same.
    run, close = store_query(live_store)

    def through_json(sql: str, params: Mapping[str, Any]) -> QueryResult:
        return QueryResult.from_json(json.loads(json.dumps(run(sql, params).to_json())))

    try:
        reports = [gather(fn, resolve_window(fn, "p", "30d"), "test") for fn in (run, through_json)]
    finally:
        close()
    direct, via_json = (
        re.sub(r"\*\*Generated at\*\*: [^\n]*", "", render_markdown(r)) for r in reports
    )
    assert via_json == direct
    assert "Lowest hour: 2026-05-01 10:00 UTC" in direct


def test_cli_replay_of_a_csv_uses_a_temporary_store_and_removes_it(
    datasets: Path, tmp_path: Path
) -> None:
    # In a process of its own: the temporary store is a second chDB path, and one process
    # can only have one open at a time.
    lines = (datasets / "duck" / "labels.csv").read_text().splitlines()[:601]
    csv = tmp_path / "duck600.csv"
    csv.write_text("\n".join(lines) + "\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWATCH_")}
    env |= {"TMPDIR": str(scratch), "LABELWATCH_DATA_DIR": str(tmp_path / "never")}
    out = tmp_path / "out"
    args = ["report", "--project", "duck", "--replay", str(csv), "--shuffle", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "labelwatch", *args, "--format", "md", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "600 labels in shuffle seed 2" in done.stdout
    assert (out / "report.md").read_text() == done.stdout
    assert not (out / "report.html").exists()
    assert list(scratch.iterdir()) == []  # the temporary store is gone
    assert not (tmp_path / "never").exists()  # and the configured one was never touched


def test_html_escapes_what_the_store_holds(live_store: Settings) -> None:
    report = live_report(live_store, "p", via="direct")
    report.confusion.findings.append("<script>alert(1)</script> & more")
    page = render_html(report)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
