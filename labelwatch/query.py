"""``labelwatch query``: read-only SQL against the store, wherever it is.

- A ClickHouse server (``http(s)://`` DSN): connect directly.
- The embedded chDB store: only one process can open its directory, and while the worker
  runs that is the worker. So go through the worker's read-only ``/query`` endpoint; when
  no worker answers there, open the store directly.

Read-only is checked on whichever side runs the query (:mod:`labelwatch.sinks.query`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Literal

from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import connect
from labelwatch.sinks.query import QueryError, QueryResult, run_query

Via = Literal["auto", "worker", "direct"]


class WorkerUnreachable(ConnectionError):
    """No worker answers on the configured web address."""


def worker_url(settings: Settings) -> str:
    host = settings.web_host
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web_port}/query"


def query_worker(
    settings: Settings, sql: str, params: Mapping[str, Any], timeout: float | None = None
) -> QueryResult:
    """Run ``sql`` through the worker's /query endpoint."""
    body = json.dumps({"sql": sql, "params": dict(params)}).encode()
    request = urllib.request.Request(  # noqa: S310 - http URL built from settings
        worker_url(settings),
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if settings.query_token is not None:
        request.add_header("Authorization", f"Bearer {settings.query_token.get_secret_value()}")
    wait = timeout if timeout is not None else settings.query_timeout_seconds + 30
    try:
        with urllib.request.urlopen(request, timeout=wait) as response:  # noqa: S310
            return QueryResult.from_json(json.load(response))
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code} {exc.reason}"
        raise QueryError(f"worker at {worker_url(settings)}: {message}") from exc
    except (urllib.error.URLError, ConnectionError) as exc:
        raise WorkerUnreachable(str(exc)) from exc


def query_direct(settings: Settings, sql: str, params: Mapping[str, Any]) -> QueryResult:
    """Open the store in this process and run ``sql``."""
    client = connect(settings=settings)
    try:
        return run_query(
            client,
            sql,
            params,
            max_rows=settings.query_max_rows,
            timeout_seconds=settings.query_timeout_seconds,
            server=not settings.embedded_store,
        )
    finally:
        client.close()


def query(
    settings: Settings, sql: str, params: Mapping[str, Any] | None = None, via: Via = "auto"
) -> QueryResult:
    """Run read-only ``sql``; ``via`` forces the worker endpoint or a direct connection."""
    params = params or {}
    if via == "direct" or (via == "auto" and not settings.embedded_store):
        return query_direct(settings, sql, params)
    try:
        return query_worker(settings, sql, params)
    except WorkerUnreachable as exc:
        if via == "worker":
            raise QueryError(f"no worker answers at {worker_url(settings)} ({exc})") from exc
    return query_direct(settings, sql, params)
