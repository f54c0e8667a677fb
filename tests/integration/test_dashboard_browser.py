"""The dashboard end to end: a real worker fed through the real broker (a drifting annotator
among others, and an hour of privacy signals), looked at in Debian's chromium, headless,
through Playwright. The test reads the page the way a person would (table, open alerts,
the drifting annotator's chart with its change point, the privacy chart) and checks a
full-page screenshot: every key element has a box inside it, and the box is not blank."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from labelwatch.privacy_simulator import PrivacySimulationConfig, PrivacySimulator
from labelwatch.settings import Settings
from labelwatch.simulator import PROJECT_LABELS, LabelingSimulator, SimulationConfig, encode_event
from labelwatch.streams.produce import produce
from labelwatch.streams.topics import ensure_topics, wait_for_lag_zero
from labelwatch.streams.worker_process import WorkerProcess
from tests.integration.conftest import settings_from

pytestmark = pytest.mark.broker

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-e2e-token"
T0 = datetime(2026, 6, 1, tzinfo=UTC)
N_LABELS = 2_000


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def get(url: str, token: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def wait_for(base: str, path: str, ready: Any, timeout_s: float = 60.0) -> Any:
    """GET ``path`` (as JSON) until ``ready(body)`` holds; returns that body."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body, _ = get(base + path, TOKEN)
        value = json.loads(body) if status == 200 else None
        if value is not None and ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{path} not ready after {timeout_s:.0f} s: {status} {body[:500]!r}"
            )
        time.sleep(0.5)


def box_of(page: Any, selector: str) -> dict[str, float]:
    """The element's box in page coordinates (as in a full-page screenshot)."""
    box: dict[str, float] = page.eval_on_selector(
        selector,
        """e => { const r = e.getBoundingClientRect();
                  return {x: r.left + window.scrollX, y: r.top + window.scrollY,
                          width: r.width, height: r.height}; }""",
    )
    return box


def assert_drawn(image: Image.Image, box: dict[str, float], what: str) -> None:
    """``box`` lies inside the screenshot and its pixels are not one flat colour."""
    assert box["width"] > 0 and box["height"] > 0, f"{what} has an empty box: {box}"
    left, top = int(box["x"]), int(box["y"])
    right, bottom = int(box["x"] + box["width"]), int(box["y"] + box["height"])
    assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height, (
        f"{what} at {box} is outside the {image.width}x{image.height} screenshot"
    )
    crop = image.crop((left, top, right, bottom)).convert("L")
    low, high = crop.getextrema()
    assert high - low > 60, f"{what} looks blank in the screenshot (grey {low}..{high})"
    assert ImageStat.Stat(crop).stddev[0] > 4, f"{what} looks blank in the screenshot"


def test_dashboard_shows_annotators_alerts_drill_down_and_privacy_in_chromium(
    e2e_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    # One partition: every label of the drifter reaches one monitor (as in the alerts test).
    env = e2e_env | {"LABELWATCH_TOPIC_PARTITIONS": "1", "LABELWATCH_QUERY_TOKEN": TOKEN}
    settings: Settings = settings_from(env, monkeypatch)
    ensure_topics(settings)
    sim = LabelingSimulator(
        SimulationConfig(
            seed=21,
            run_id="dash",
            annotators=12,
            behaviours={"drifter": 1, "spammer_fast": 1},
            drift_onset=(50, 60),
            noisy_share=0.1,
            projects={"animals": PROJECT_LABELS["animals"]},
        )
    )
    stream = sim.labels(T0)
    labels = [next(stream).event for _ in range(N_LABELS)]
    annotators = {str(e["annotator_id"]) for e in labels}
    drifter = next(a.annotator_id for a in sim.annotators if a.kind == "drifter")
    privacy = PrivacySimulator(
        PrivacySimulationConfig(seed=4, projects=("animals",), project_scale={"animals": 1.0})
    )
    signals = [s.event for s in privacy.signals(T0, T0 + timedelta(hours=1))]
    kinds = {str(s["kind"]) for s in signals}
    assert len(kinds) >= 3

    log = tmp_path / "worker.log"
    worker = WorkerProcess.start(settings, log, env=env)
    base = f"http://{settings.web_host}:{settings.web_port}"
    try:
        produce(settings, settings.topic_privacy, [(b"animals", encode_event(s)) for s in signals])
        produce(
            settings,
            settings.topic_labels,
            [(str(e["item_id"]).encode(), encode_event(e)) for e in labels],
        )
        assert wait_for_lag_zero(settings, timeout_s=120) == 0, log.read_text()[-3000:]

        # The API, under the access rule of /query: the token as a header or ?token=.
        assert get(f"{base}/dashboard/api/annotators")[0] == 401
        assert get(f"{base}/dashboard/")[0] == 401
        assert get(f"{base}/dashboard/api/alerts?token={TOKEN}")[0] == 200
        assert get(f"{base}/dashboard/api/privacy?minutes=0", TOKEN)[0] == 400
        status, _, headers = get(f"{base}/")
        assert (status, headers["Location"]) == (302, "/dashboard/")
        status, script, _ = get(f"{base}/dashboard/static/dashboard.js")  # code, no data
        assert status == 200 and b"createElementNS" in script
        table = wait_for(
            base, "/dashboard/api/annotators", lambda t: len(t["annotators"]) == len(annotators)
        )
        assert all(r["accuracy"] is not None for r in table["annotators"])
        alerts = wait_for(
            base,
            "/dashboard/api/alerts",
            lambda a: any(
                x["kind"] == "annotator_drift" and x["annotator_id"] == drifter for x in a["alerts"]
            ),
        )
        assert alerts["total"] >= 1
        wait_for(base, "/dashboard/api/privacy", lambda p: set(p["kinds"]) == kinds)

        requests: list[str] = []
        problems: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.on("request", lambda r: requests.append(r.url))
                page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
                page.on(
                    "console",
                    lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
                )
                page.goto(f"{base}/dashboard/?token={TOKEN}")
                rows = page.locator("#annotators tbody tr")
                expect(rows).to_have_count(len(annotators), timeout=20_000)
                expect(page.locator("#status")).to_contain_text("Updated")
                drift_alert = page.locator(
                    "#alerts li[data-kind='annotator_drift']", has_text=drifter
                )
                expect(drift_alert.first).to_be_visible()
                series = page.locator("#privacy-chart svg g.series")
                expect(series).to_have_count(len(kinds))
                legend = page.locator("#privacy-legend li")
                expect(legend).to_have_count(len(kinds))

                # Drill down into the drifter: its reliability chart marks the change point.
                page.get_by_role(
                    "button", name=f"Show details of annotator {drifter} in project animals"
                ).first.click()
                expect(page.locator("#detail-title")).to_contain_text(drifter)
                markers = page.locator("#reliability-chart svg g.change-point")
                expect(markers.first).to_be_visible(timeout=10_000)
                assert markers.count() >= 1
                expect(page.locator("#reliability-chart svg polyline.line")).to_have_count(1)
                expect(page.locator("#changes li").first).to_contain_text("correctness")
                # The choice survives a reload (kept in the address's fragment).
                page.reload()
                expect(page.locator("#reliability-chart svg g.change-point").first).to_be_visible(
                    timeout=10_000
                )
                expect(page.locator("#status")).to_contain_text("Updated")
                expect(rows).to_have_count(len(annotators))
                expect(drift_alert.first).to_be_visible()
                expect(series).to_have_count(len(kinds))

                page.evaluate("window.scrollTo(0, 0)")
                boxes = {
                    "annotator table": box_of(page, "#annotators"),
                    "open alerts list": box_of(page, "#alerts"),
                    "drift alert": box_of(page, "#alerts li[data-kind='annotator_drift']"),
                    "reliability chart": box_of(page, "#reliability-chart svg"),
                    "change point marker": box_of(page, "#reliability-chart svg g.change-point"),
                    "privacy chart": box_of(page, "#privacy-chart svg"),
                    "privacy legend": box_of(page, "#privacy-legend"),
                }
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, log.read_text()[-3000:]

    assert problems == []
    # Offline: the page asked this worker for everything, nothing elsewhere.
    assert requests and all(url.startswith(f"{base}/dashboard/") for url in requests), requests
    assert not any("token=" in url for url in requests if "/api/" in url)

    image = Image.open(shot).convert("RGB")
    assert image.width >= 1400
    for what, box in boxes.items():
        assert_drawn(image, box, what)
