"""The dashboard's routes on a Faust web server (in process, aiohttp's test client) over a
chDB store: what each route answers, the access rule, and the states before the store is
open and when it fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from labelwatch.models.tracker import QualityOutput
from labelwatch.schemas import LabelEvent, SourcePosition
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name, sink_rows
from labelwatch.sinks.migrations import migrate
from labelwatch.streams.app import _query_access
from labelwatch.web import queries
from labelwatch.web.pages import register_dashboard
from tests.integration.test_dashboard_queries import T0, fill

Check = Callable[[TestClient[Any, Any], dict[str, ClickHouseWriter]], Awaitable[None]]


@pytest.fixture
def writer(ch_settings: Settings) -> Iterator[ClickHouseWriter]:
    """A writer on a migrated database holding the rows of ``test_dashboard_queries.fill``."""
    name = database_name(ch_settings)
    admin = connect(settings=ch_settings)
    migrate(admin, name)
    writer = ClickHouseWriter(connect(settings=ch_settings), name)
    fill(writer)
    yield writer
    writer.close()
    admin.command(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


def serve(settings: Settings, check: Check) -> None:
    """Run ``check(client, store)`` against a Faust app that has only the dashboard's routes
    (and Faust's own); ``store`` starts empty, as before the agents opened the store."""
    app = faust.App(f"dash-{settings.clickhouse_database}", web_enabled=True, autodiscover=False)
    store: dict[str, ClickHouseWriter] = {}
    register_dashboard(app, settings, store, access=_query_access)
    app.web.init_server()  # adds Faust's own blueprints, among them an index at "/"

    async def run() -> None:
        async with TestClient(TestServer(app.web.web_app)) as client:
            await check(client, store)

    asyncio.run(run())


async def get_json(
    client: TestClient[Any, Any], path: str, status: int = 200, **headers: str
) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith("application/json")
    return await response.json()


def test_each_route_answers_its_query(ch_settings: Settings, writer: ClickHouseWriter) -> None:
    db = database_name(ch_settings)
    client_: Client = writer.client

    def expected(value: Any) -> Any:
        return json.loads(json.dumps(value))

    async def check(http: TestClient[Any, Any], store: dict[str, ClickHouseWriter]) -> None:
        # Before the agents opened the store: 503 in plain words; the page itself is there.
        body = await get_json(http, "/dashboard/api/annotators", 503)
        assert body == {"error": "the store is not open yet"}
        page = await http.get("/dashboard/")
        assert page.status == 200 and '<table id="annotators"' in await page.text()
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        for path in ("/", "/dashboard"):
            moved = await http.get(path, allow_redirects=False)
            assert (moved.status, moved.headers["Location"]) == (302, "/dashboard/")
        script = await http.get("/dashboard/static/dashboard.js")
        assert script.status == 200
        assert script.headers["Content-Type"].startswith("text/javascript")
        assert (await http.get("/dashboard/static/../pages.py")).status == 404

        store["writer"] = writer
        assert await get_json(http, "/dashboard/api/annotators") == expected(
            queries.annotators(client_, db)
        )
        assert await get_json(http, "/dashboard/api/annotators?project=p1&limit=1") == expected(
            queries.annotators(client_, db, project="p1", limit=1)
        )
        detail = await get_json(http, "/dashboard/api/annotator/p1/ann-1")
        assert detail == expected(queries.annotator_detail(client_, db, "p1", "ann-1"))
        assert len(detail["change_points"]) == 1
        # Ids are path segments, percent-encoded by the page (a "/" or "?" is fine).
        event = LabelEvent.model_validate(
            {
                "event_id": "odd-1",
                "ts": T0,
                "project": "p 1",
                "item_id": "i",
                "annotator_id": "team a/ann?7",
                "label": "cat",
            },
            strict=False,
        )
        writer.insert_tables(
            sink_rows([(event, SourcePosition("labels", 0, 99))], QualityOutput(), T0)
        )
        odd = await get_json(http, "/dashboard/api/annotator/p%201/team%20a%2Fann%3F7")
        assert odd["annotator"]["annotator_id"] == "team a/ann?7"
        missing = await get_json(http, "/dashboard/api/annotator/p1/nobody", 404)
        assert "no labels" in missing["error"]
        alerts = await get_json(http, "/dashboard/api/alerts?limit=2")
        assert alerts == expected(queries.open_alerts(client_, db, limit=2))
        privacy = await get_json(http, "/dashboard/api/privacy?minutes=2")
        assert privacy == expected(queries.privacy(client_, db, minutes=2))

        for path, word in (
            ("/dashboard/api/annotators?limit=0", "between 1 and"),
            ("/dashboard/api/alerts?limit=many", "whole number"),
            ("/dashboard/api/privacy?minutes=99999999", "between 1 and"),
        ):
            assert word in (await get_json(http, path, 400))["error"]
        assert (await http.post("/dashboard/api/annotators")).status == 405

        # A store that fails (here: the database is gone) is an error for the page to show.
        writer.client.command(f"DROP DATABASE {db}")
        failed = await get_json(http, "/dashboard/api/alerts?project=p2", 500)
        assert failed["error"].startswith("the store could not answer")

    serve(ch_settings, check)


def test_with_a_token_every_data_route_needs_it(
    ch_settings: Settings, writer: ClickHouseWriter
) -> None:
    settings = ch_settings.model_copy(update={"query_token": SecretStr("s3cret")})

    async def check(http: TestClient[Any, Any], store: dict[str, ClickHouseWriter]) -> None:
        store["writer"] = writer
        refused = await get_json(http, "/dashboard/api/annotators", 401)
        assert "bearer token" in refused["error"]
        await get_json(http, "/dashboard/api/annotators", 401, Authorization="Bearer guess")
        await get_json(http, "/dashboard/api/annotators?token=guess", 401)
        # A header, when given, is what counts.
        await get_json(
            http, "/dashboard/api/annotators?token=s3cret", 401, Authorization="Bearer guess"
        )
        body = await get_json(http, "/dashboard/api/annotators", Authorization="Bearer s3cret")
        assert len(body["annotators"]) == 2
        await get_json(http, "/dashboard/api/alerts?token=s3cret")
        assert (await http.get("/dashboard/")).status == 401
        assert (await http.get("/dashboard/?token=s3cret")).status == 200
        moved = await http.get("/?token=s3cret", allow_redirects=False)
        assert moved.headers["Location"] == "/dashboard/?token=s3cret"
        # The script and the style sheet hold no data: served to anyone.
        assert (await http.get("/dashboard/static/dashboard.css")).status == 200

    serve(settings, check)
