"""The dashboard's pure parts: the access rule with ``?token=``, parameters, the pooling of
shards over time, and the static files (shipped, and fetching nothing from elsewhere)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from labelwatch.settings import Settings
from labelwatch.streams.app import _query_access
from labelwatch.web.pages import STATIC_FILES, BadParameter, check_access, int_parameter
from labelwatch.web.queries import reliability_series

STATIC = Path(__file__).resolve().parents[2] / "labelwatch" / "web" / "static"


class Request:
    def __init__(self, remote: str, query: dict[str, str], headers: dict[str, str]) -> None:
        self.remote = remote
        self.query = query
        self.headers = headers


def settings(token: str | None = None) -> Settings:
    return Settings(
        query_token=None if token is None else SecretStr(token),
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.mark.parametrize(
    ("token", "remote", "query", "headers", "status"),
    [
        # No token configured: loopback only, whatever the request carries.
        (None, "127.0.0.1", {}, {}, None),
        (None, "::1", {}, {}, None),
        (None, "10.1.2.3", {}, {}, 403),
        (None, "10.1.2.3", {"token": "x"}, {}, 403),
        # A token configured: from anywhere, as a header or as ?token=.
        ("t0k", "10.1.2.3", {}, {}, 401),
        ("t0k", "10.1.2.3", {"token": "t0k"}, {}, None),
        ("t0k", "127.0.0.1", {"token": "wrong"}, {}, 401),
        ("t0k", "10.1.2.3", {}, {"Authorization": "Bearer t0k"}, None),
        ("t0k", "10.1.2.3", {"token": "t0k"}, {"Authorization": "Bearer no"}, 401),
        ("t0k", "127.0.0.1", {"token": ""}, {}, 401),
    ],
)
def test_access_is_the_rule_of_query_with_the_token_also_in_the_address(
    token: str | None,
    remote: str,
    query: dict[str, str],
    headers: dict[str, str],
    status: int | None,
) -> None:
    denied = check_access(_query_access, settings(token), Request(remote, query, headers))
    assert (denied[0] if denied else None) == status


def test_int_parameters_are_bounded() -> None:
    assert int_parameter({}, "limit", 7, 1, 10) == 7
    assert int_parameter({"limit": ""}, "limit", 7, 1, 10) == 7
    assert int_parameter({"limit": "10"}, "limit", 7, 1, 10) == 10
    for bad in ("0", "11", "2.5", "ten"):
        with pytest.raises(BadParameter, match="limit"):
            int_parameter({"limit": bad}, "limit", 7, 1, 10)


def snapshot(second: int, shard: str, accuracy: float, total: float) -> dict[str, Any]:
    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)
    return {
        "ts": t.isoformat(),
        "shard": shard,
        "accuracy": accuracy,
        "accuracy_low": accuracy - 0.1,
        "accuracy_high": accuracy + 0.05,
        "n_labels": int(total),
        "total": total,
    }


def test_reliability_over_time_pools_each_shards_latest_snapshot() -> None:
    rows = [
        snapshot(0, "labels:0", 0.9, 10.0),
        snapshot(1, "labels:1", 0.5, 10.0),
        snapshot(2, "labels:0", 0.8, 30.0),
        snapshot(2, "labels:1", 0.6, 10.0),
    ]
    points = reliability_series(rows)
    assert [p["shards"] for p in points] == [1, 2, 2]
    assert [p["accuracy"] for p in points] == pytest.approx([0.9, 0.7, (24 + 6) / 40])
    assert [p["n_labels"] for p in points] == [10, 20, 40]
    assert points[1]["accuracy_low"] == pytest.approx(0.4)
    assert points[1]["accuracy_high"] == pytest.approx(0.95)


def test_long_histories_are_thinned_keeping_both_ends() -> None:
    rows = [snapshot(i, "labels:0", 0.5 + i / 4000, 10.0 + i) for i in range(1000)]
    points = reliability_series(rows, max_points=50)
    assert len(points) == 50
    assert points[0]["ts"] == rows[0]["ts"] and points[-1]["ts"] == rows[-1]["ts"]
    assert [p["ts"] for p in points] == sorted(p["ts"] for p in points)


def test_static_files_exist_and_fetch_nothing_from_elsewhere() -> None:
    page = (STATIC / "index.html").read_text()
    assert set(re.findall(r'(?:src|href)="([^"]+)"', page)) == {
        "static/dashboard.css",
        "static/dashboard.js",
        "data:,",
    }
    for name in ("index.html", *STATIC_FILES):
        text = (STATIC / name).read_text()
        # The one absolute URL is the SVG namespace, a name rather than an address.
        hosts = set(re.findall(r"(?:https?:)?//[\w-]+(?:\.[\w-]+)+", text))
        assert hosts <= {"http://www.w3.org"}, (name, hosts)
        assert "@import" not in text and "innerHTML" not in text


def test_package_data_ships_the_static_files() -> None:
    pyproject = (STATIC.parents[2] / "pyproject.toml").read_text()
    section = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert '"labelwatch.web"' in section
    for name in ("index.html", *STATIC_FILES):
        suffix = name.rsplit(".", 1)[1]
        assert f'"static/*.{suffix}"' in section
