"""``labelwatch query`` on the embedded store: read-only is enforced, saved queries answer,
and the worker's connection can still write afterwards."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from labelwatch.cli import main
from labelwatch.models.tracker import QualityTracker
from labelwatch.settings import Settings
from labelwatch.simulator import PROJECT_LABELS, LabelingSimulator, SimulationConfig, encode_event
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name
from labelwatch.sinks.metrics import Metrics
from labelwatch.sinks.migrations import migrate
from labelwatch.sinks.query import SAVED_QUERIES, QueryError, run_query
from labelwatch.streams.dead_letter import RawMessage
from labelwatch.streams.pipeline import LabelPipeline
from tests.integration.test_recovery import NoDeadLetters

SPAMMERS = {"ann-010", "ann-011"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "queries.md"


@pytest.fixture(scope="module")
def populated(chdb_dir: Path) -> Iterator[tuple[Settings, Client]]:
    """A store with 3,000 simulated labels (spammers among the annotators), and its alerts."""
    settings = Settings(
        data_dir=chdb_dir,
        clickhouse_database="t_query",
        reliability_snapshot_seconds=30.0,
        _env_file=None,  # type: ignore[call-arg]
    )
    db = database_name(settings)
    client = connect(settings=settings)
    migrate(client, db)
    sim = LabelingSimulator(
        SimulationConfig(
            seed=5,
            run_id="q",
            events_per_second=5.0,
            annotators=10,
            behaviours={"spammer_fast": 1, "spammer_constant": 1},
            projects={"animals": PROJECT_LABELS["animals"]},
        )
    )
    assert {a.annotator_id for a in sim.annotators if a.is_spammer} == SPAMMERS
    events = islice(sim.labels(datetime(2026, 6, 1, tzinfo=UTC)), 3000)
    batch = [RawMessage("labels", 0, i, None, encode_event(e.event)) for i, e in enumerate(events)]
    writer = ClickHouseWriter(connect(settings=settings), db)
    pipeline = LabelPipeline(
        tables=writer,
        tracker=QualityTracker(snapshot_seconds=30.0),
        dead_letters=NoDeadLetters(),
        metrics=Metrics(),
        max_message_bytes=4096,
    )

    async def feed() -> None:
        for start in range(0, len(batch), 200):
            await pipeline.process(batch[start : start + 200])

    asyncio.run(feed())
    writer.close()
    yield settings, client
    client.command(f"DROP DATABASE IF EXISTS {db}")
    client.close()


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("INSERT INTO {db}.label_events (event_id) VALUES ('x')", "only SELECT"),
        ("DROP TABLE {db}.label_events", "only SELECT"),
        ("ALTER TABLE {db}.label_events DELETE WHERE 1", "only SELECT"),
        ("SELECT 1; DROP TABLE {db}.label_events", "one statement"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "reaches outside"),
        ("SELECT file('/etc/hostname')", "reaches outside"),
        ("SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')", "reaches outside"),
        ("SELECT count() FROM {db}.label_events SETTINGS max_execution_time = 0", "SETTINGS"),
        ("SELECT count() FROM {db}.label_events INTO OUTFILE '/tmp/x'", "OUTFILE"),
        ("SELECT nonsense(", "Syntax error"),
    ],
)
def test_writes_and_outside_access_are_refused(
    populated: tuple[Settings, Client], sql: str, why: str
) -> None:
    settings, client = populated
    db = database_name(settings)
    before = client.command(f"SELECT count() FROM {db}.label_events")
    with pytest.raises(QueryError, match=why):
        run_query(client, sql.replace("{db}", db))
    assert client.command(f"SELECT count() FROM {db}.label_events") == before == 3000


def test_reads_with_parameters_and_limits_and_the_connection_still_writes(
    populated: tuple[Settings, Client],
) -> None:
    settings, client = populated
    db = database_name(settings)
    result = run_query(
        client,
        f"SELECT annotator_id, count() AS n FROM {db}.label_events "
        "WHERE annotator_id != {skip:String} GROUP BY annotator_id ORDER BY annotator_id",
        {"skip": "nobody"},
    )
    assert result.columns == ["annotator_id", "n"] and result.types[1] == "UInt64"
    assert sum(row[1] for row in result.rows) == 3000
    cut = run_query(client, "SELECT number FROM numbers(50)", max_rows=7)
    assert len(cut.rows) == 7 and cut.truncated
    with pytest.raises(QueryError, match=r"(?i)timeout|time limit|exceeded"):
        run_query(client, "SELECT count() FROM numbers(10000000000)", timeout_seconds=0.2)
    # The limits were per query: the session can still write (chDB applies settings to it).
    client.command(f"CREATE TABLE {db}.scratch (a UInt8) ENGINE = Memory")
    client.insert(f"{db}.scratch", [(1,)], column_names=["a"])
    assert client.command(f"SELECT count() FROM {db}.scratch") == 1


@pytest.mark.parametrize("saved", SAVED_QUERIES, ids=lambda q: q.name)
def test_every_saved_query_answers_and_is_documented(
    populated: tuple[Settings, Client], saved: object
) -> None:
    settings, client = populated
    from labelwatch.sinks.query import SavedQuery

    assert isinstance(saved, SavedQuery)
    params = dict(saved.parameters)
    if "annotator" in params:
        params["annotator"] = str(
            client.command(f"SELECT any(annotator_id) FROM {database_name(settings)}.alerts")
        )
    result = run_query(client, saved.render(database_name(settings)), params)
    assert result.rows, f"{saved.name} returned nothing on a populated store"
    assert re.search(rf"^### `{re.escape(saved.name)}`", DOCS.read_text(), re.MULTILINE)


def test_open_alerts_name_the_spammers(populated: tuple[Settings, Client]) -> None:
    settings, client = populated
    rows = run_query(
        client,
        f"SELECT annotator_id FROM {database_name(settings)}.open_alerts "
        "WHERE kind = 'spammer_suspected'",
    ).rows
    assert {r[0] for r in rows} == SPAMMERS


def test_cli_prints_a_saved_query(
    populated: tuple[Settings, Client],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, _ = populated
    monkeypatch.setenv("LABELWATCH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LABELWATCH_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    assert main(["query", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(q.name in listed for q in SAVED_QUERIES)
    # The test process already holds the store open, as a worker would; --via direct reuses it.
    assert main(["query", "alerts-per-hour", "--via", "direct", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and set(rows[0]) == {"hour", "kind", "opened"}
    assert main(["query", "DROP TABLE x", "--via", "direct"]) == 2
    assert "only SELECT" in capsys.readouterr().err


def test_every_query_in_the_docs_runs(populated: tuple[Settings, Client]) -> None:
    settings, client = populated
    db = database_name(settings)
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert len(blocks) >= len(SAVED_QUERIES) + 4
    samples = {"annotator": "ann-010", "day": "2026-06-01 00:10:00", "min_labels": "30"}
    for sql in blocks:
        names = set(re.findall(r"\{(\w+):\w+\}", sql))
        run_query(client, sql.replace("labelwatch.", f"{db}."), {n: samples[n] for n in names})
    # The saved queries are shown as they are.
    for saved in SAVED_QUERIES:
        assert saved.render("labelwatch") in DOCS.read_text()
