"""The read-only dashboard on the worker's web server (Faust's aiohttp), GET only.

Routes:

- ``/`` and ``/dashboard`` redirect to ``/dashboard/``, the page (``static/index.html``);
  ``/dashboard/static/dashboard.js`` and ``dashboard.css`` are its script and style sheet.
- ``/dashboard/api/annotators?project=&limit=``: the annotator table
  (:func:`labelwatch.web.queries.annotators`).
- ``/dashboard/api/annotator/{project}/{annotator_id}``: one annotator's drill-down
  (:func:`~labelwatch.web.queries.annotator_detail`; 404 when it has no labels there).
- ``/dashboard/api/alerts?project=&limit=``: open alerts
  (:func:`~labelwatch.web.queries.open_alerts`).
- ``/dashboard/api/privacy?project=&minutes=``: privacy signals per kind over time
  (:func:`~labelwatch.web.queries.privacy`).

Access: the page and the API follow the rule of ``/query`` (the ``access`` callable given to
:func:`register_dashboard`): with ``LABELWATCH_QUERY_TOKEN`` set, every request must bear the
token; without it only loopback clients are served. A browser cannot add a header to the
address it opens, so the token is also accepted as a ``?token=`` query parameter: open
``/dashboard/?token=...``; the page's script then sends it to the API as an
``Authorization: Bearer`` header, never in an API address. A token in the address ends up in
the browser's history (and in the log of any proxy in between), so on a shared machine
prefer an SSH tunnel to the loopback address, or a reverse proxy that adds the header. The
script and the style sheet are served to anyone: they are the package's code, with no data.

Queries run on the ClickHouse writer's thread, like ``/query`` (with chDB only that thread
may use the store), so they wait behind inserts and inserts wait behind them: each is bounded
(LIMITs, ``query_timeout_seconds``), and each answer is reused for
:data:`CACHE_SECONDS`, so many open dashboards cost the store what one does. Nothing here
writes, and annotator ids are shown as stored (pseudonyms when pseudonymization is on).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import faust
from faust.web import View

from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import ClickHouseWriter, database_name
from labelwatch.web import queries

log = logging.getLogger(__name__)

Access = Callable[[Settings, Any], "tuple[int, str] | None"]
"""(settings, request) -> (status, reason) when the request is refused, else None."""

CACHE_SECONDS = 2.0
_CACHE_ENTRIES = 256
STATIC_FILES: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# The page loads nothing from elsewhere; the policy makes the browser refuse it if it tried.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BadParameter(ValueError):
    """A query parameter that is not what the route expects."""


def static_file(name: str) -> bytes:
    """The content of one of the dashboard's static files (shipped as package data)."""
    return (resources.files("labelwatch.web") / "static" / name).read_bytes()


class _BearerRequest:
    """The parts of a request an access rule reads, with the ``?token=`` as a bearer header."""

    def __init__(self, request: Any, token: str) -> None:
        self.remote = request.remote
        self.headers = {"Authorization": f"Bearer {token}"}


def check_access(access: Access, settings: Settings, request: Any) -> tuple[int, str] | None:
    """``access`` applied to ``request``, reading a ``?token=`` parameter as a bearer token
    when the request has no Authorization header."""
    token = request.query.get("token")
    if token and "Authorization" not in request.headers:
        return access(settings, _BearerRequest(request, token))
    return access(settings, request)


def int_parameter(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """``query[name]`` as an int in [low, high] (``default`` when absent)."""
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadParameter(f"{name} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise BadParameter(f"{name} must be between {low} and {high}, got {value}")
    return value


class _Cache:
    """Answers of the last :data:`CACHE_SECONDS`, by route and parameters."""

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Any, ...]) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > CACHE_SECONDS:
            return None
        return entry[1]

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        if len(self._entries) >= _CACHE_ENTRIES:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] <= CACHE_SECONDS}
            if len(self._entries) >= _CACHE_ENTRIES:
                self._entries.clear()
        self._entries[key] = (time.monotonic(), value)


def _json(web: Any, value: Any, status: int = 200) -> Any:
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return web.bytes(
        json.dumps(value).encode(),
        content_type="application/json",
        status=status,
        headers=headers,
    )


def register_dashboard(
    app: faust.App,
    settings: Settings,
    store: Mapping[str, ClickHouseWriter],
    *,
    access: Access,
) -> None:
    """Add the dashboard's routes to ``app``'s web server.

    ``store`` is the worker's shared mapping that holds the open ClickHouse writer under
    ``"writer"`` (absent until the agents opened the store: the API answers 503 then);
    ``access`` is the rule of ``/query`` (see the module docstring)."""
    database = database_name(settings)
    timeout = settings.query_timeout_seconds
    page = static_file("index.html")
    assets = {name: static_file(name) for name in STATIC_FILES}
    cache = _Cache()

    async def answer(
        view: View,
        request: Any,
        read: Callable[..., Any],
        params: Callable[[], dict[str, Any]],
    ) -> Any:
        """Check access and ``params()``; then run ``read(client, **params)`` on the writer
        thread, or reuse its answer of the last :data:`CACHE_SECONDS`."""
        denied = check_access(access, settings, request)
        if denied is not None:
            return _json(view.web, {"error": denied[1]}, denied[0])
        try:
            kwargs = params()
        except BadParameter as exc:
            return _json(view.web, {"error": str(exc)}, 400)
        key = (read.__name__, *sorted(kwargs.items()))
        cached = cache.get(key)
        if cached is not None:
            return _json(view.web, cached)
        writer = store.get("writer")
        if writer is None:
            return _json(view.web, {"error": "the store is not open yet"}, 503)
        call = functools.partial(read, database=database, timeout_seconds=timeout, **kwargs)
        try:
            result = await writer.run(call, writer.client)
        except Exception as exc:
            # A query that fails (say, on a half-migrated store) is a page error, not a crash.
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            log.warning("dashboard query %s failed: %s", read.__name__, message)
            return _json(view.web, {"error": f"the store could not answer: {message}"}, 500)
        if result is None:
            return _json(view.web, {"error": "no labels stored for this annotator"}, 404)
        cache.put(key, result)
        return _json(view.web, result)

    def redirect(web: Any, request: Any) -> Any:
        # The query string goes along: it may hold the ?token= the page needs.
        query = request.query_string
        location = "/dashboard/" + (f"?{query}" if query else "")
        return web.bytes(b"", status=302, headers={"Location": location})

    @app.page("/", name="dashboard_root")
    class Root(View):
        async def get(self, request: Any) -> Any:
            return redirect(self.web, request)

    @app.page("/dashboard", name="dashboard_bare")
    class Bare(View):
        async def get(self, request: Any) -> Any:
            return redirect(self.web, request)

    @app.page("/dashboard/", name="dashboard_page")
    class Page(View):
        async def get(self, request: Any) -> Any:
            denied = check_access(access, settings, request)
            if denied is not None:
                return self.web.text(
                    f"{denied[1]}\n", status=denied[0], headers=dict(_SECURITY_HEADERS)
                )
            headers = {**_SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8"}
            return self.web.bytes(page, headers=headers)

    @app.page("/dashboard/static/{name}", name="dashboard_static")
    class Static(View):
        async def get(self, request: Any, name: str) -> Any:
            if name not in assets:
                return self.web.text("not found\n", status=404)
            headers = {**_SECURITY_HEADERS, "Content-Type": STATIC_FILES[name]}
            return self.web.bytes(assets[name], headers=headers)

    @app.page("/dashboard/api/annotators", name="dashboard_annotators")
    class Annotators(View):
        async def get(self, request: Any) -> Any:
            q = request.query
            return await answer(
                self,
                request,
                queries.annotators,
                lambda: {
                    "project": q.get("project", ""),
                    "limit": int_parameter(q, "limit", 500, 1, queries.MAX_ANNOTATORS),
                },
            )

    @app.page("/dashboard/api/annotator/{project}/{annotator_id}", name="dashboard_annotator")
    class Annotator(View):
        async def get(self, request: Any, project: str, annotator_id: str) -> Any:
            return await answer(
                self,
                request,
                queries.annotator_detail,
                lambda: {"project": project, "annotator_id": annotator_id},
            )

    @app.page("/dashboard/api/alerts", name="dashboard_alerts")
    class Alerts(View):
        async def get(self, request: Any) -> Any:
            q = request.query
            return await answer(
                self,
                request,
                queries.open_alerts,
                lambda: {
                    "project": q.get("project", ""),
                    "limit": int_parameter(q, "limit", 200, 1, queries.MAX_ALERTS),
                },
            )

    @app.page("/dashboard/api/privacy", name="dashboard_privacy")
    class Privacy(View):
        async def get(self, request: Any) -> Any:
            q = request.query
            return await answer(
                self,
                request,
                queries.privacy,
                lambda: {
                    "project": q.get("project", ""),
                    "minutes": int_parameter(q, "minutes", 180, 1, queries.MAX_PRIVACY_MINUTES),
                },
            )
