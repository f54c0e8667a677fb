"""Push alerts to Prometheus Alertmanager (v2 API) and to a generic JSON webhook.

Both are optional and best-effort side channels: the alerts topic and the ClickHouse
``alerts`` table are the records of truth, and the stream never waits for a receiver. Each
receiver has a :class:`Notifier`: :meth:`Notifier.offer` puts alerts on a bounded queue and
returns at once; a background task posts them in batches, retrying a failed post with capped
exponential back-off. When the queue is full (a receiver down for long), the oldest waiting
alerts are dropped and counted in ``labelwatch_notifications_total{outcome="dropped"}``.

Alertmanager forgets an alert that is not re-sent (after its ``endsAt``), so the Alertmanager
notifier keeps the open episodes it has sent and re-sends them every ``resend_seconds`` with
``endsAt`` three intervals ahead; a resolved alert is sent with ``endsAt`` now and leaves the
set. (Open episodes from before a worker restart are re-sent only when they change.)

Payloads
--------
Alertmanager: ``POST {url}/api/v2/alerts`` with a list of
``{"labels": {...}, "annotations": {...}, "startsAt": ..., "endsAt": ...}``. Labels:
``alertname`` (``LabelwatchAnnotatorAlert``, or ``LabelwatchPrivacyAlert`` for privacy
kinds), ``kind``, ``severity``, ``project``, ``subject``, ``annotator_id`` (empty when none),
``detector`` and ``alert_id`` (one Alertmanager alert per episode). One-shot kinds (an
exposure, a violation, a label on a revoked item) are sent once and expire on their own.
Webhook: ``POST {url}`` with ``{"alerts": [<Alert as JSON>, ...]}`` and, when a token is set,
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import Counter

from labelwatch.schemas.alerts import ONE_SHOT_KINDS, PRIVACY_ALERT_KINDS, Alert

log = logging.getLogger(__name__)

__all__ = ["Notifier", "alertmanager_payload", "webhook_payload"]

ALERTNAME = "LabelwatchAnnotatorAlert"
PRIVACY_ALERTNAME = "LabelwatchPrivacyAlert"


def alertmanager_payload(alerts: Sequence[Alert], now: datetime, ends_in: timedelta) -> bytes:
    """The Alertmanager v2 ``postableAlerts`` body for ``alerts``."""
    body = []
    for alert in alerts:
        resolved = alert.state == "resolved"
        body.append(
            {
                "labels": {
                    "alertname": PRIVACY_ALERTNAME
                    if alert.kind in PRIVACY_ALERT_KINDS
                    else ALERTNAME,
                    "kind": alert.kind,
                    "severity": alert.severity,
                    "project": alert.project,
                    "subject": alert.subject,
                    "annotator_id": alert.annotator_id,
                    "detector": alert.detector,
                    "alert_id": alert.alert_id,
                },
                "annotations": {
                    "summary": f"{alert.kind} for {alert.subject} in {alert.project}",
                    "description": alert.reason,
                    "score": f"{alert.score:.4g}",
                    "threshold": f"{alert.threshold:.4g}",
                },
                "startsAt": alert.ts.isoformat(),
                "endsAt": (now if resolved else now + ends_in).isoformat(),
            }
        )
    return json.dumps(body).encode()


def webhook_payload(alerts: Sequence[Alert]) -> bytes:
    """The generic webhook body: ``{"alerts": [...]}`` with each alert as the topic has it."""
    return b'{"alerts":[' + b",".join(a.model_dump_json().encode() for a in alerts) + b"]}"


Post = Callable[[bytes], Awaitable[None]]


class Notifier:
    """One receiver: a bounded queue, a sender task, retries with back-off.

    ``post(body)`` sends one batch and raises on failure; :meth:`for_alertmanager` and
    :meth:`for_webhook` build it over HTTP. Call :meth:`start` on a running event loop and
    :meth:`stop` at shutdown."""

    def __init__(
        self,
        name: str,
        post: Post,
        encode: Callable[[Sequence[Alert]], bytes],
        counter: Counter,
        *,
        max_queue: int = 10_000,
        batch_size: int = 200,
        retry_max_seconds: float = 60.0,
        resend_seconds: float | None = None,
    ) -> None:
        self.name = name
        self._post = post
        self._encode = encode
        self._counter = counter
        self._queue: deque[Alert] = deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._retry_max_seconds = retry_max_seconds
        self._resend_seconds = resend_seconds
        self._open: dict[str, Alert] = {}  # alert_id -> its newest open state (re-sent)
        self._wake = asyncio.Event()
        self._sending = False
        self._task: asyncio.Task[None] | None = None
        for outcome in ("sent", "failed", "dropped"):
            counter.labels(name, outcome)

    # --- building --------------------------------------------------------------------------
    @classmethod
    def for_alertmanager(
        cls,
        url: str,
        session: aiohttp.ClientSession,
        counter: Counter,
        *,
        resend_seconds: float = 60.0,
        **options: Any,
    ) -> Notifier:
        endpoint = url.rstrip("/") + "/api/v2/alerts"
        ends_in = timedelta(seconds=3 * resend_seconds)

        def encode(alerts: Sequence[Alert]) -> bytes:
            return alertmanager_payload(alerts, datetime.now(UTC), ends_in)

        return cls(
            "alertmanager",
            _http_post(session, endpoint, {}),
            encode,
            counter,
            resend_seconds=resend_seconds,
            **options,
        )

    @classmethod
    def for_webhook(
        cls,
        url: str,
        session: aiohttp.ClientSession,
        counter: Counter,
        *,
        token: str | None = None,
        **options: Any,
    ) -> Notifier:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return cls(
            "webhook", _http_post(session, url, headers), webhook_payload, counter, **options
        )

    # --- use -------------------------------------------------------------------------------
    def offer(self, alerts: Sequence[Alert]) -> None:
        """Queue ``alerts`` for delivery; never blocks. Drops the oldest beyond the bound."""
        for alert in alerts:
            if self._resend_seconds is not None and alert.kind not in ONE_SHOT_KINDS:
                if alert.state == "resolved":
                    self._open.pop(alert.alert_id, None)
                else:
                    previous = self._open.get(alert.alert_id)
                    if previous is not None and previous.severity != alert.severity:
                        # Alertmanager tells alerts apart by their labels, severity among
                        # them: end the alert under the old severity.
                        self._queue.append(previous.model_copy(update={"state": "resolved"}))
                    self._open[alert.alert_id] = alert
            self._queue.append(alert)
        overflow = len(self._queue) - self._max_queue
        for _ in range(max(overflow, 0)):
            self._queue.popleft()
        if overflow > 0:
            self._counter.labels(self.name, "dropped").inc(overflow)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, flush_seconds: float = 2.0) -> None:
        """Give the queue up to ``flush_seconds`` to drain, then stop the sender."""
        if self._task is None:
            return
        deadline = asyncio.get_running_loop().time() + flush_seconds
        while (self._queue or self._sending) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        delay = 0.1
        while True:
            if not self._queue:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._resend_seconds)
                except TimeoutError:
                    self._queue.extend(self._open.values())  # keep them alive in Alertmanager
                continue
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            body = self._encode(batch)
            self._sending = True
            while True:  # the same batch until it is delivered; the queue keeps its bound
                try:
                    await self._post(body)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._counter.labels(self.name, "failed").inc(len(batch))
                    log.warning(
                        "%s delivery of %d alerts failed (%s); retrying in %.1f s",
                        self.name,
                        len(batch),
                        type(exc).__name__,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max_seconds)
            delay = 0.1
            self._sending = False
            self._counter.labels(self.name, "sent").inc(len(batch))


def _http_post(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Post:
    timeout = aiohttp.ClientTimeout(total=10)

    async def post(body: bytes) -> None:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=timeout,
        ) as response:
            if response.status >= 300:
                text = (await response.text())[:200]
                raise RuntimeError(f"HTTP {response.status}: {text}")

    return post
