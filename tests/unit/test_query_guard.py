"""The statement splitter that keeps ``labelwatch query`` to one statement."""

from __future__ import annotations

import pytest

from labelwatch.sinks.query import (
    QueryError,
    QueryResult,
    format_csv,
    format_table,
    single_statement,
)


@pytest.mark.parametrize(
    ("sql", "statement"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT 1;", "SELECT 1"),
        ("SELECT 1 ;  \n", "SELECT 1 "),
        ("SELECT ';' AS s", "SELECT ';' AS s"),
        ("SELECT 'it''s;' , `a;b` FROM t", "SELECT 'it''s;' , `a;b` FROM t"),
        ("SELECT 'a\\';b' AS x", "SELECT 'a\\';b' AS x"),
        ('SELECT "we;ird" FROM t', 'SELECT "we;ird" FROM t'),
        ("SELECT 1 -- one; two\n", "SELECT 1 -- one; two\n"),
        ("SELECT /* ; */ 1", "SELECT /* ; */ 1"),
        ("SELECT 1; -- done", "SELECT 1"),
    ],
)
def test_one_statement_is_accepted(sql: str, statement: str) -> None:
    assert single_statement(sql) == statement


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT 1; DROP TABLE t", "only one statement"),
        ("SELECT 1;;", "only one statement"),
        ("SELECT 'a'; SELECT 'b'", "only one statement"),
        ("SELECT 'open", "unterminated"),
        ("SELECT `open", "unterminated"),
        ("SELECT /* open", "unterminated"),
        ("SELECT $$ ' $$; DROP TABLE t; --'", "heredoc"),
        ("  ;", "empty"),
    ],
)
def test_anything_else_is_refused(sql: str, why: str) -> None:
    with pytest.raises(QueryError, match=why):
        single_statement(sql)


def test_formats() -> None:
    result = QueryResult(
        ["annotator", "labels", "rate"],
        ["String", "UInt64", "Nullable(Float64)"],
        [["ann-1", 12, 0.5], ["a,b", 3, None]],
        truncated=True,
    )
    table = format_table(result).splitlines()
    assert table[0].split() == ["annotator", "labels", "rate"]
    assert table[2].split() == ["ann-1", "12", "0.5"]
    assert table[3].endswith("NULL") and table[-1] == "(2 rows, cut at the row limit)"
    assert format_csv(result).splitlines() == ["annotator,labels,rate", "ann-1,12,0.5", '"a,b",3,']
