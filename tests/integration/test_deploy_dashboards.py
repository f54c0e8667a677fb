"""The Grafana dashboards of deploy/grafana: well-formed, wired to the provisioned data
sources, and every query real.

ClickHouse queries (panels, template variables, annotations) are rendered the way Grafana and
the ClickHouse plugin render them (template variables first, then the plugin's macros with
the expansions of its ``pkg/macros/macros.go``) and run on chDB against the migrated schema,
with rows written by the sink code; the annotator table, the drill-down and the privacy
panels must give the values those rows imply. Prometheus queries may only name metrics (and
labels) the worker exports, and must parse (``promtool check rules``).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from clickhouse_connect.driver.client import Client
from prometheus_client.metrics import MetricWrapperBase

from labelwatch.models.tracker import AnnotatorSnapshot, LabelOutcome, QualityOutput
from labelwatch.schemas import LabelEvent, PrivacySignal, SourcePosition
from labelwatch.schemas.alerts import PRIVACY_ALERT_KINDS, Alert, alert_id
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import (
    ClickHouseWriter,
    connect,
    database_name,
    privacy_signal_row,
    sink_rows,
)
from labelwatch.sinks.metrics import Metrics
from labelwatch.sinks.migrations import migrate

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
CLICKHOUSE = "grafana-clickhouse-datasource"
# The macros of the ClickHouse plugin's backend (pkg/macros/macros.go).
PLUGIN_MACROS = {
    "fromTime",
    "toTime",
    "fromTime_ms",
    "toTime_ms",
    "timeFilter",
    "timeFilter_ms",
    "dateFilter",
    "dateTimeFilter",
    "dt",
    "timeInterval",
    "timeInterval_ms",
    "interval_s",
}

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
FROM, TO = T0 - timedelta(hours=1), T0 + timedelta(hours=2)
INTERVAL_S = 60


# --- the dashboards as data -------------------------------------------------------------


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted(GRAFANA.glob("dashboards/*.json"))
    }


def provisioned_sources() -> dict[str, str]:
    """uid -> type of the provisioned data sources."""
    config = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    return {source["uid"]: source["type"] for source in config["datasources"]}


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # inside collapsed rows


@dataclass(frozen=True)
class Query:
    where: str  # "<dashboard> / <panel, variable or annotation>"
    datasource: dict[str, str]
    target: dict[str, Any]
    kind: str  # "panel", "variable" or "annotation"


def queries(board: Mapping[str, Any], name: str) -> Iterator[Query]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel["datasource"]
            yield Query(f"{name} / {panel['title']} {target['refId']}", source, target, "panel")
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield Query(f"{name} / ${variable['name']}", variable["datasource"], query, "variable")
    for annotation in board["annotations"]["list"]:
        if not annotation.get("builtIn"):
            where = f"{name} / annotation {annotation['name']}"
            yield Query(where, annotation["datasource"], annotation["target"], "annotation")


def all_queries() -> list[Query]:
    return [q for name, board in dashboards().items() for q in queries(board, name)]


def clickhouse_queries() -> list[Query]:
    return [q for q in all_queries() if q.datasource["type"] == CLICKHOUSE]


def prometheus_queries() -> list[Query]:
    return [q for q in all_queries() if q.datasource["type"] == "prometheus" and q.kind == "panel"]


# --- structure ----------------------------------------------------------------------------


def test_dashboards_are_json_with_unique_uids_and_titles() -> None:
    boards = dashboards()
    assert {"annotators.json", "annotator.json", "privacy.json", "worker.json"} <= set(boards)
    uids = [board["uid"] for board in boards.values()]
    titles = [board["title"] for board in boards.values()]
    assert all(uids) and all(titles)
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)
    for name, board in boards.items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        titles = [panel["title"] for panel in panels(board)]
        assert len(set(titles)) == len(titles), f"{name}: duplicate panel titles"
        assert board.get("id") is None, f"{name}: provisioned dashboards carry no database id"


def test_every_query_uses_a_provisioned_data_source() -> None:
    sources = provisioned_sources()
    found = all_queries()
    assert {q.datasource["type"] for q in found} == {CLICKHOUSE, "prometheus"}
    for query in found:
        assert sources.get(query.datasource["uid"]) == query.datasource["type"], query.where
    for board in dashboards().values():
        for panel in panels(board):
            if "datasource" in panel:
                assert sources.get(panel["datasource"]["uid"]) == panel["datasource"]["type"]


def test_clickhouse_targets_are_raw_sql_in_a_known_format() -> None:
    for query in clickhouse_queries():
        target = query.target
        assert target["editorType"] == "sql", query.where
        assert target["rawSql"].strip(), query.where
        if query.kind == "panel":
            assert target["format"] in (0, 1), query.where  # 0: time series, 1: table
        used = set(re.findall(r"\$__(\w+)", target["rawSql"]))
        assert used <= PLUGIN_MACROS, (query.where, used - PLUGIN_MACROS)


def test_links_open_existing_dashboards_with_their_variables() -> None:
    boards = {board["uid"]: board for board in dashboards().values()}
    links = 0
    for board in boards.values():
        text = json.dumps(board)
        for uid, params in re.findall(r"/d/([\w-]+)(?:/[\w-]+)?\?([^\"]*)", text):
            links += 1
            assert uid in boards, uid
            names = {v["name"] for v in boards[uid]["templating"]["list"]}
            wanted = set(re.findall(r"var-(\w+)=", params))
            assert wanted and wanted <= names, (uid, wanted - names)
    assert links, "the annotator table links to the drill-down"


# --- ClickHouse queries on chDB -----------------------------------------------------------


def render(
    sql: str,
    variables: Mapping[str, Sequence[str]],
    database: str,
    time_range: tuple[datetime, datetime] = (FROM, TO),
) -> str:
    """``sql`` as ClickHouse receives it from Grafana for ``time_range``, the interval
    INTERVAL_S and the variables' selected values, reading ``database``."""

    def variable(match: re.Match[str]) -> str:
        name, fmt = match.group(1) or match.group(3), match.group(2)
        values = variables[name]
        if fmt == "singlequote":
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        assert fmt is None, f"format {fmt} not rendered here"
        # The ClickHouse plugin's own format: one value as is, several quoted and joined.
        if len(values) == 1:
            return values[0]
        return ",".join(f"'{v}'" for v in values)

    sql = re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)", variable, sql)
    start, end = (int(moment.timestamp()) for moment in time_range)

    def macro(match: re.Match[str]) -> str:
        name, argument = match.group(1), match.group(2)
        if name == "timeFilter":
            return f"{argument} >= toDateTime({start}) AND {argument} <= toDateTime({end})"
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({argument}), INTERVAL {INTERVAL_S} second)"
        if name == "fromTime":
            return f"toDateTime({start})"
        if name == "toTime":
            return f"toDateTime({end})"
        if name == "interval_s":
            return str(INTERVAL_S)
        raise AssertionError(f"macro $__{name} not rendered here")

    sql = re.sub(r"\$__(\w+)(?:\(([^()]*)\))?", macro, sql)
    assert "$" not in sql, sql
    # The dashboards read the worker's database (the compose DSN's: labelwatch).
    return re.sub(r"\blabelwatch\.(?=[a-z_]+\b)", f"{database}.", sql)


def event(i: int, project: str, annotator: str, at: datetime, duration_ms: int) -> LabelEvent:
    return LabelEvent.model_validate(
        {
            "event_id": f"e-{i}",
            "ts": at,
            "project": project,
            "item_id": f"item-{i}",
            "annotator_id": annotator,
            "label": "cat",
            "duration_ms": duration_ms,
        },
        strict=False,
    )


def snapshot(
    annotator: str, shard: str, at: datetime, accuracy: float, low: float, high: float, total: float
) -> AnnotatorSnapshot:
    return AnnotatorSnapshot(
        ts=at,
        project="p1",
        annotator_id=annotator,
        shard=shard,
        n_labels=int(total),
        accuracy=accuracy,
        accuracy_low=low,
        accuracy_high=high,
        gold_seen=0,
        gold_accuracy=None,
        correct=accuracy * total,
        total=total,
        per_class_accuracy={},
    )


def alert(
    kind: str, state: str, annotator: str, at: datetime, score: float, offset: int, reason: str
) -> Alert:
    return Alert(
        alert_id=alert_id(kind, "p1", annotator, "labels:0", 1),
        kind=kind,
        state=state,
        severity="warning",
        ts=at,
        project="p1",
        annotator_id=annotator,
        score=score,
        threshold=6.0,
        reason=reason,
        detector="robust_z:speed" if kind == "annotator_anomaly" else "random_answers",
        shard="labels:0",
        offset=offset,
        opened_offset=1,
    )


def minute(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


@pytest.fixture(scope="module")
def store(chdb_dir: Path) -> Iterator[tuple[Client, str]]:
    """A migrated database holding, through the sink code:

    p1/ann-a: 4 labels in range (2 s each; agreeing 3 of 4; gold right 1 of 2) and one
    3 hours before it; snapshots on two shards (latest: 0.8 [0.7, 0.9] over 40 soft labels,
    0.6 [0.4, 0.75] over 10) and a later one after the range; an anomaly episode opened
    (score 7.5) and updated (9.0), open; a drift episode opened and resolved.
    p1/ann-b: 2 labels (1 s each, both agreeing, no gold), a low_reliability episode open.
    p2/ann-c: 3 labels. Privacy: 3 pii_detected (medium) and 1 access_violation (high)
    signals in p1, and a privacy_exposure alert about item-3 (no annotator).
    """
    settings = Settings(data_dir=chdb_dir, clickhouse_database="t_deploy_dashboards")
    db = database_name(settings)
    client = connect(settings=settings)
    client.command(f"DROP DATABASE IF EXISTS {db}")
    migrate(client, db)
    writer = ClickHouseWriter(connect(settings=settings), db)

    labels = [
        # (project, annotator, at, duration, agrees, gold_correct)
        ("p1", "ann-a", minute(1), 2000, True, True),
        ("p1", "ann-a", minute(1.5), 2000, True, None),
        ("p1", "ann-a", minute(2), 2000, True, False),
        ("p1", "ann-a", minute(3), 2000, False, None),
        ("p1", "ann-a", minute(-180), 9000, False, None),  # before the range
        ("p1", "ann-b", minute(1), 1000, True, None),
        ("p1", "ann-b", minute(2), 1000, True, None),
        ("p2", "ann-c", minute(1), 500, True, None),
        ("p2", "ann-c", minute(2), 500, True, None),
        ("p2", "ann-c", minute(3), 500, False, None),
    ]
    events = [
        (event(i, project, who, at, ms), SourcePosition("labels", i % 2, i))
        for i, (project, who, at, ms, _, _) in enumerate(labels)
    ]
    outcomes = [LabelOutcome("cat", 0.9, agrees, gold) for *_, agrees, gold in labels]
    quality = QualityOutput(
        outcomes=outcomes,
        annotators=[
            snapshot("ann-a", "labels:0", minute(1), 0.9, 0.8, 0.95, 30.0),
            snapshot("ann-a", "labels:0", minute(2), 0.8, 0.7, 0.9, 40.0),
            snapshot("ann-a", "labels:1", minute(1), 0.6, 0.4, 0.75, 10.0),
            snapshot("ann-a", "labels:0", minute(180), 0.1, 0.0, 0.2, 90.0),  # after the range
        ],
        alerts=[
            alert("annotator_anomaly", "opened", "ann-a", minute(1), 7.5, 1, "speed unusual"),
            alert("annotator_anomaly", "updated", "ann-a", minute(2), 9.0, 2, "speed unusual"),
            alert("annotator_drift", "opened", "ann-a", minute(1.5), 12.0, 1, "toward random"),
            alert("annotator_drift", "resolved", "ann-a", minute(2.5), 1.0, 3, "recovered"),
            alert("low_reliability", "opened", "ann-b", minute(1), 0.4, 1, "below the floor"),
            Alert(
                alert_id=alert_id("privacy_exposure", "p1", "item-3", "privacy:0", 3),
                kind="privacy_exposure",
                state="opened",
                severity="critical",
                ts=minute(2),
                project="p1",
                item_id="item-3",
                subject="item-3",
                score=1.0,
                threshold=1.0,
                reason="PII shown to an annotator",
                shard="privacy:0",
                offset=3,
                opened_offset=3,
            ),
        ],
    )
    writer.insert_tables(sink_rows(events, quality, T0))

    def signal(i: int, kind: str, severity: str, at: datetime) -> tuple[Any, ...]:
        parsed = PrivacySignal.model_validate(
            {
                "event_id": f"s-{i}",
                "ts": at,
                "project": "p1",
                "source": "scanner",
                "kind": kind,
                "severity": severity,
                "annotator_id": "ann-a",
                "item_id": f"item-{i}",
            },
            strict=False,
        )
        return privacy_signal_row(
            parsed, SourcePosition("privacy", 0, i), T0, allowlist=frozenset()
        )

    writer.insert_tables(
        {
            "privacy_signals": [
                signal(0, "pii_detected", "medium", minute(1)),
                signal(1, "pii_detected", "medium", minute(1.2)),
                signal(2, "pii_detected", "medium", minute(1.4)),
                signal(3, "access_violation", "high", minute(2)),
            ]
        }
    )
    writer.close()
    yield client, db
    client.command(f"DROP DATABASE IF EXISTS {db}")
    client.close()


DRILL_DOWN = {"project": ["p1"], "annotator": ["ann-a"]}


def variables_for(query: Query) -> dict[str, list[str]]:
    return DRILL_DOWN if query.where.startswith("annotator.json") else {"project": ["p1"]}


def run(client: Client, query: Query, database: str) -> tuple[list[str], list[str], list[Any]]:
    sql = render(query.target["rawSql"], variables_for(query), database)
    try:
        result = client.query(sql)
    except Exception as exc:
        pytest.fail(f"{query.where}: {exc}\n{sql}")
    types = [str(t.name) for t in result.column_types]
    return list(result.column_names), types, list(result.result_rows)


def panel_query(board: str, title: str) -> Query:
    [found] = [q for q in clickhouse_queries() if q.where.rsplit(" ", 1)[0] == f"{board} / {title}"]
    return found


def test_every_clickhouse_query_runs_on_the_migrated_schema(store: tuple[Client, str]) -> None:
    client, db = store
    found = clickhouse_queries()
    assert len(found) >= 15
    for query in found:
        columns, types, rows = run(client, query, db)
        if query.kind == "variable":
            assert len(columns) == 1 and rows, query.where
        elif query.kind == "annotation":
            assert {"time", "text"} <= set(columns), query.where
        elif query.target["format"] == 0:
            # Grafana needs the time column first (long frames: time, label, value).
            assert columns[0] == "time" and types[0].startswith("DateTime"), query.where
        assert rows, f"{query.where}: no rows"


def test_annotator_table_shows_what_the_sinks_stored(store: tuple[Client, str]) -> None:
    client, db = store
    columns, _, rows = run(client, panel_query("annotators.json", "Annotators"), db)
    table = {row[columns.index("annotator")]: dict(zip(columns, row, strict=True)) for row in rows}
    assert set(table) == {"ann-a", "ann-b"}, "project p1 only, annotators with labels in range"
    a, b = table["ann-a"], table["ann-b"]
    # Each shard's latest snapshot up to the range's end, pooled by soft label counts.
    assert a["reliability"] == pytest.approx((0.8 * 40 + 0.6 * 10) / 50, rel=1e-6)
    assert a["reliability_low"] == pytest.approx(0.4) and a["reliability_high"] == pytest.approx(
        0.9
    )
    assert (a["labels"], a["agreement"], a["gold_seen"], a["gold_accuracy"]) == (4, 0.75, 2, 0.5)
    assert a["seconds_per_label"] == pytest.approx(2.0)
    assert a["anomaly_score"] == 9.0 and a["open_alerts"] == 1
    assert b["reliability"] is None and b["reliability_low"] is None
    assert (b["labels"], b["agreement"], b["gold_seen"], b["gold_accuracy"]) == (2, 1.0, 0, None)
    assert b["seconds_per_label"] == pytest.approx(1.0)
    assert b["anomaly_score"] is None and b["open_alerts"] == 1
    assert [row[columns.index("annotator")] for row in rows] == ["ann-a", "ann-b"], (
        "least reliable first, unknown reliability last"
    )


def test_drill_down_shows_reliability_over_time_and_drift_change_points(
    store: tuple[Client, str],
) -> None:
    client, db = store
    columns, _, rows = run(client, panel_query("annotator.json", "Reliability over time"), db)
    series = {row[0].replace(tzinfo=UTC): dict(zip(columns, row, strict=True)) for row in rows}
    assert sorted(series) == [minute(1), minute(2)], "the snapshot after the range is left out"
    first, second = series[minute(1)], series[minute(2)]
    assert first["reliability"] == pytest.approx((0.9 * 30 + 0.6 * 10) / 40, rel=1e-6)
    assert (first["low"], first["high"]) == (pytest.approx(0.4), pytest.approx(0.95))
    assert second["reliability"] == pytest.approx(0.8, rel=1e-6)

    board = dashboards()["annotator.json"]
    [drift] = [a for a in board["annotations"]["list"] if a["name"] == "Drift change points"]
    query = Query("annotator.json / drift", drift["datasource"], drift["target"], "annotation")
    columns, _, rows = run(client, query, db)
    assert [(row[0].replace(tzinfo=UTC), row[columns.index("text")]) for row in rows] == [
        (minute(1.5), "toward random")
    ]

    columns, _, rows = run(client, panel_query("annotator.json", "Labels and speed"), db)
    assert sum(row[columns.index("labels")] for row in rows) == 4


def test_alert_and_privacy_panels_show_what_the_sinks_stored(store: tuple[Client, str]) -> None:
    client, db = store
    columns, _, rows = run(client, panel_query("annotators.json", "Open alerts"), db)
    assert sorted((r[columns.index("kind")], r[columns.index("annotator")]) for r in rows) == [
        ("annotator_anomaly", "ann-a"),
        ("low_reliability", "ann-b"),
        ("privacy_exposure", ""),
    ]
    assert rows[0][columns.index("severity")] == "critical", "most severe first"
    columns, _, rows = run(client, panel_query("privacy.json", "Privacy alerts"), db)
    assert [(r[columns.index("kind")], r[columns.index("subject")]) for r in rows] == [
        ("privacy_exposure", "item-3")
    ]
    columns, _, rows = run(client, panel_query("privacy.json", "Privacy signals, by kind"), db)
    per_kind: dict[str, int] = {}
    for row in rows:
        per_kind[row[1]] = per_kind.get(row[1], 0) + row[2]
    assert per_kind == {"pii_detected": 3, "access_violation": 1}
    title = "Serious signals (high, critical), by kind"
    columns, _, rows = run(client, panel_query("privacy.json", title), db)
    assert {row[1]: row[2] for row in rows if row[2]} == {"access_violation": 1}


def test_privacy_alert_panel_lists_every_privacy_kind() -> None:
    sql = panel_query("privacy.json", "Privacy alerts").target["rawSql"]
    listed = re.search(r"kind IN \(([^)]*)\)", sql)
    assert listed is not None
    assert sorted(re.findall(r"'(\w+)'", listed.group(1))) == sorted(PRIVACY_ALERT_KINDS)


# --- Prometheus queries -------------------------------------------------------------------


def exported_metrics() -> dict[str, set[str]]:
    """Every series name the worker exports, with its label names."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    found: dict[str, set[str]] = {}
    for value in vars(Metrics()).values():
        if isinstance(value, MetricWrapperBase):
            labels = set(value._labelnames)
            for suffix in suffixes[str(value._type)]:
                found[value._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return found


# Series Prometheus makes itself, and the labels it attaches to every scraped series.
PROMETHEUS_SERIES = {"up": set(), "ALERTS": {"alertname", "alertstate", "severity"}}
TARGET_LABELS = {"job", "instance"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text))
    return names - {"or", "and", "unless", "bool", "offset", "e"}


def test_prometheus_panels_use_only_metrics_and_labels_the_worker_exports() -> None:
    exported = exported_metrics()
    known = {**exported, **PROMETHEUS_SERIES}
    found = prometheus_queries()
    assert len(found) >= 10
    used_anywhere: set[str] = set()
    for query in found:
        expr = query.target["expr"]
        names = metric_names(expr)
        assert names and names <= set(known), (query.where, names - set(known))
        used_anywhere |= names
        labels = set().union(*(known[n] for n in names)) | TARGET_LABELS
        for selector in re.findall(r"\{([^}]*)\}", expr):
            matched = set(re.findall(r"(\w+)\s*[=!]~?", selector))
            assert matched <= labels, (query.where, matched - labels)
        grouped: set[str] = set()
        for _, group in _GROUPING.findall(expr):
            grouped |= {g.strip() for g in group.split(",") if g.strip()}
        assert grouped <= labels, (query.where, grouped - labels)
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", query.target.get("legendFormat", "")))
        assert legend <= (grouped or labels), (query.where, legend)
    # The operations view covers throughput, dead letters, lag and the ClickHouse writes.
    for name in (
        "labelwatch_events_consumed_total",
        "labelwatch_events_dead_lettered_total",
        "labelwatch_consumer_lag",
        "labelwatch_sink_batch_seconds_bucket",
        "labelwatch_errors_total",
        "labelwatch_output_failing",
    ):
        assert name in used_anywhere, name


def test_prometheus_panel_queries_parse(debian_tools: ModuleType, tmp_path: Path) -> None:
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": q.target["expr"]
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$instance", ".*"),
        }
        for i, q in enumerate(prometheus_queries())
    ]
    assert not any("$" in rule["expr"] for rule in rules)
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [str(debian_tools.binary("promtool")), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
