"""Read-only SQL over the labelwatch store, for ``labelwatch query`` and the worker's /query.

Read-only is enforced before a query runs, in two steps, because the embedded chDB engine
cannot do it itself: its ``readonly`` setting is session-wide and would stop the worker's own
writes (it cannot even be switched back), and it executes every statement of a
``;``-separated string.

1. :func:`single_statement` rejects anything but one statement, scanning strings, quoted
   identifiers and comments so that a ``;`` inside them is allowed. Where it could read the
   text differently from ClickHouse's lexer it refuses (``$`` heredocs), never the reverse.
2. ClickHouse's own parser (``EXPLAIN AST``, which parses without executing) must see a
   SELECT (or SHOW TABLES, DESCRIBE, EXISTS, SHOW CREATE) with no SETTINGS, FORMAT or
   INTO OUTFILE clause, and no function that reaches outside the store: table functions
   other than generators (``file``, ``url``, ``s3``, ``remote``, ...) and ``file()``.

Against a ClickHouse server the query also runs with ``readonly = 2``. Every query gets a
time limit and a row limit (rows beyond it are cut, and the result says so).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import ipaddress
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

__all__ = [
    "SAVED_QUERIES",
    "QueryError",
    "QueryResult",
    "SavedQuery",
    "check_read_only",
    "run_query",
    "single_statement",
]

# Statements a read-only user may run (the first line of EXPLAIN AST names the statement).
_READ_STATEMENTS = (
    "SelectWithUnionQuery",
    "ShowTables",
    "DescribeQuery",
    "ExistsTableQuery",
    "ShowCreateTableQuery",
)
# Table functions that only generate or re-read data already in the store.
_SAFE_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series", "view", "merge"}
)
# Scalar functions that read files.
_IO_FUNCTIONS = frozenset({"file", "catboostevaluate"})
_FUNCTION_NODE = re.compile(r"^\s*Function (\S+)")


class QueryError(ValueError):
    """The query was refused or failed; the message says why, in plain words."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": [[json_value(v) for v in row] for row in self.rows],
            "truncated": self.truncated,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueryResult:
        return cls(
            list(data["columns"]),
            list(data["types"]),
            [list(r) for r in data["rows"]],
            bool(data.get("truncated", False)),
        )


def json_value(value: Any) -> Any:
    """A ClickHouse value as JSON: dates ISO 8601, decimals, UUIDs and addresses as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(
        value, decimal.Decimal | uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address
    ):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(json_value(k)): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_value(v) for v in value]
    return str(value)


def single_statement(sql: str) -> str:
    """``sql`` without a trailing ``;``; :class:`QueryError` if it holds more than one
    statement or an unterminated string, identifier or comment."""
    i, n = 0, len(sql)
    end = None  # position of a statement-ending ';'
    while i < n:
        c = sql[i]
        if c in "'\"`":
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
            if i >= n:
                raise QueryError("unterminated quoted string or identifier")
            i += 1
            continue
        if c == "$":
            # Heredoc strings ($tag$...$tag$) would need a scanner of their own.
            raise QueryError("$ outside a quoted string is not allowed (no heredoc strings)")
        if sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            if close < 0:
                raise QueryError("unterminated /* comment")
            i = close + 2
            continue
        if c == ";":
            if end is not None:
                raise QueryError("only one statement per query")
            end = i
        elif end is not None and not c.isspace():
            raise QueryError("only one statement per query")
        i += 1
    statement = sql if end is None else sql[:end]
    if not statement.strip():
        raise QueryError("empty query")
    return statement


def check_read_only(client: Client, sql: str, parameters: Mapping[str, Any] | None = None) -> str:
    """The statement to run, if it only reads the store; else :class:`QueryError`."""
    statement = single_statement(sql)
    try:
        ast = str(client.command(f"EXPLAIN AST {statement}", parameters=dict(parameters or {})))
    except Exception as exc:
        raise QueryError(_clickhouse_message(exc)) from exc
    lines = ast.splitlines()
    head = lines[0].split(" (", 1)[0].split(" ", 1)[0] if lines else ""
    if head not in _READ_STATEMENTS:
        raise QueryError(f"read-only: {head or 'this statement'} is not allowed, only SELECT")
    if head == "SelectWithUnionQuery" and not lines[0].endswith("(children 1)"):
        raise QueryError("FORMAT and INTO OUTFILE are not allowed (choose --format instead)")
    table_functions = _table_functions(client)
    for line in lines[1:]:
        if line.strip() == "Set":
            raise QueryError("a SETTINGS clause is not allowed")
        match = _FUNCTION_NODE.match(line)
        if match:
            name = match.group(1)
            lowered = name.lower()
            if lowered in _IO_FUNCTIONS or (
                lowered in table_functions and lowered not in _SAFE_TABLE_FUNCTIONS
            ):
                raise QueryError(f"function {name}() reaches outside the store: not allowed")
    return statement


def run_query(
    client: Client,
    sql: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    max_rows: int = 10_000,
    timeout_seconds: float = 10.0,
    server: bool = False,
) -> QueryResult:
    """Check ``sql`` is read-only, run it with a time and row limit, return the rows."""
    statement = check_read_only(client, sql, parameters)
    settings: dict[str, Any] = {
        "max_execution_time": timeout_seconds,
        "max_result_rows": max_rows + 1,
        "result_overflow_mode": "break",
    }
    if server:
        settings["readonly"] = 2
    try:
        result = client.query(statement, parameters=dict(parameters or {}), settings=settings)
    except Exception as exc:
        raise QueryError(_clickhouse_message(exc)) from exc
    rows = [list(r) for r in result.result_rows]
    return QueryResult(
        list(result.column_names),
        [t.name for t in result.column_types],
        rows[:max_rows],
        truncated=len(rows) > max_rows,
    )


def _table_functions(client: Client) -> frozenset[str]:
    result = client.query("SELECT lower(name) FROM system.table_functions")
    return frozenset(str(r[0]) for r in result.result_rows)


def _clickhouse_message(exc: Exception) -> str:
    """The useful part of a ClickHouse error (``Code: N. DB::Exception: ...``), one line."""
    text = str(exc)
    match = re.search(r"DB::Exception: (.*?)(?: \(version [^)]*\))?(?:\. \([A-Z_]+\))?$", text)
    message = match.group(1) if match else text
    return message.splitlines()[0] if message else type(exc).__name__


# --- formatting -------------------------------------------------------------------------
def format_table(result: QueryResult, max_width: int = 60) -> str:
    """Aligned text table (cells cut at ``max_width``), with a row count."""

    def cell(value: Any) -> str:
        text = "NULL" if value is None else str(json_value(value))
        text = text.replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    body = [[cell(v) for v in row] for row in result.rows]
    widths = [len(c) for c in result.columns]
    for row in body:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    numeric = [_is_numeric(t) for t in result.types]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(result.columns), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in body]
    count = f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    count += ", cut at the row limit)" if result.truncated else ")"
    return "\n".join([*out, count])


def _is_numeric(type_name: str) -> bool:
    inner = re.sub(r"^(Nullable|LowCardinality)\((.*)\)$", r"\2", type_name)
    return inner.startswith(("UInt", "Int", "Float", "Decimal"))


def format_csv(result: QueryResult) -> str:
    """CSV with a header row; NULL is an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if v is None else _csv_value(json_value(v)) for v in row])
    return out.getvalue().rstrip("\n")


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def format_json(result: QueryResult) -> str:
    """One JSON object per row (JSON Lines)."""
    return "\n".join(
        json.dumps(dict(zip(result.columns, [json_value(v) for v in row], strict=True)))
        for row in result.rows
    )


# --- saved queries ------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedQuery:
    """A named question with its SQL; ``{db}`` is the database, ``{name:Type}`` a parameter
    given with ``--param name=value``."""

    name: str
    question: str
    sql: str
    parameters: dict[str, str] = field(default_factory=dict)  # name -> default

    def render(self, database: str) -> str:
        return self.sql.replace("{db}", database)


# "Recent" is relative to the newest data, not the wall clock, so the queries also answer
# about a replay or a stream that stopped.
SAVED_QUERIES: tuple[SavedQuery, ...] = (
    SavedQuery(
        "open-alerts",
        "Which alerts are open now, newest first?",
        """SELECT opened_at, kind, severity, project, annotator_id, detector,
       round(score, 3) AS score, reason
FROM {db}.open_alerts
ORDER BY opened_at DESC
LIMIT 100""",
    ),
    SavedQuery(
        "annotators-last-hour",
        "How did each annotator do in the last hour of data (labels, agreement, gold, speed)?",
        """SELECT project, annotator_id, sum(labels) AS n_labels,
       round(sumIf(agreement_rate * labels, agreement_rate IS NOT NULL)
             / nullIf(sumIf(labels, agreement_rate IS NOT NULL), 0), 3) AS agreement,
       sum(gold_seen) AS n_gold,
       round(sumIf(gold_accuracy * gold_seen, gold_seen > 0) / nullIf(n_gold, 0), 3)
           AS gold_right,
       round(median(median_duration_ms)) AS median_ms,
       sum(alerts_opened) AS alerts
FROM {db}.annotator_minute
WHERE minute > (SELECT max(minute) FROM {db}.annotator_minute) - INTERVAL 1 HOUR
GROUP BY project, annotator_id
ORDER BY agreement ASC NULLS LAST, n_labels DESC
LIMIT 200""",
    ),
    SavedQuery(
        "least-reliable",
        "Which annotators does the reliability model rate lowest (latest estimate)?",
        """SELECT project, annotator_id,
       round(argMax(accuracy, hour), 3) AS latest_accuracy,
       round(argMax(accuracy_low_min, hour), 3) AS low,
       round(argMax(accuracy_high_max, hour), 3) AS high,
       argMax(n_labels, hour) AS labels,
       max(hour) AS as_of
FROM {db}.annotator_reliability_hour
GROUP BY project, annotator_id
HAVING labels >= {min_labels:UInt32}
ORDER BY high ASC
LIMIT 50""",
        {"min_labels": "30"},
    ),
    SavedQuery(
        "annotator-history",
        "How has one annotator's reliability and agreement moved, hour by hour?",
        """SELECT a.hour, a.labels, round(a.agreement_rate, 3) AS agreement_rate,
       round(a.gold_accuracy, 3) AS gold_accuracy, a.median_duration_ms, a.alerts_opened,
       round(r.accuracy, 3) AS model_accuracy
FROM {db}.annotator_hour AS a
LEFT JOIN {db}.annotator_reliability_hour AS r
    ON r.project = a.project AND r.annotator_id = a.annotator_id AND r.hour = a.hour
WHERE a.annotator_id = {annotator:String}
ORDER BY a.hour""",
        {"annotator": ""},
    ),
    SavedQuery(
        "disputed-items",
        "Which items with several votes have the weakest consensus?",
        """SELECT project, item_id, consensus_label, round(confidence, 3) AS confidence, n_votes,
       gold_label
FROM {db}.item_consensus_latest
WHERE n_votes >= 3
ORDER BY confidence ASC
LIMIT 50""",
    ),
    SavedQuery(
        "alerts-per-hour",
        "How many alert episodes opened per hour, by kind?",
        """SELECT toStartOfHour(ts) AS hour, kind, uniqExact(alert_id) AS opened
FROM {db}.alerts
WHERE state = 'opened'
GROUP BY hour, kind
ORDER BY hour DESC, kind
LIMIT 500""",
    ),
    SavedQuery(
        "throughput",
        "How many labels arrived per minute, per project, in the last hour of data?",
        """SELECT minute, project, sum(labels) AS labels, uniqExact(annotator_id) AS annotators
FROM {db}.annotator_minute
WHERE minute > (SELECT max(minute) FROM {db}.annotator_minute) - INTERVAL 1 HOUR
GROUP BY minute, project
ORDER BY minute DESC, project""",
    ),
)


def saved_query(name: str) -> SavedQuery | None:
    return next((q for q in SAVED_QUERIES if q.name == name), None)
