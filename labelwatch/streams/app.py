"""The Faust application: topics, the (thin) label agent, and the worker's web pages.

Topics carry raw bytes; the one validator is :func:`labelwatch.schemas.decode_label_event`
(no parallel ``faust.Record`` definitions). The agent is deliberately thin: take a batch,
hand it to :class:`~labelwatch.streams.pipeline.LabelPipeline`, ack.

Delivery: the agent runs with ``concurrency=1`` (faust-streaming issue #606: concurrent agents
can commit past in-flight messages) and reads with ``noack_take``, acking a batch's offsets
only after ``LabelPipeline.process`` returned, i.e. after the ClickHouse insert, the
dead-letter deliveries and the alert deliveries of that batch succeeded. Faust commits acked
offsets only. A crash before that re-delivers the batch; ``label_events`` collapses the
duplicates by event_id, and a re-raised alert has the same alert_id.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import faust
from faust.web import View

from labelwatch.models.consensus import StreamingConsensus
from labelwatch.models.privacy_tracker import PrivacyTracker
from labelwatch.models.revocations import Revocation, RevocationRegistry
from labelwatch.models.tracker import QualityTracker, ReviewItem
from labelwatch.schemas import InvalidEvent
from labelwatch.schemas.alerts import Alert
from labelwatch.schemas.pseudonym import Pseudonymizer
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import ClickHouseWriter, connect, database_name
from labelwatch.sinks.metrics import CONTENT_TYPE_LATEST, Metrics
from labelwatch.sinks.notify import Notifier
from labelwatch.sinks.query import QueryError, run_query
from labelwatch.streams.alerts import alert_record
from labelwatch.streams.dead_letter import RawMessage, dead_letter_headers
from labelwatch.streams.kafka_security import broker_credentials
from labelwatch.streams.pipeline import LabelPipeline, Revocations, ShuttingDown, retrying
from labelwatch.streams.privacy_pipeline import PrivacyPipeline
from labelwatch.streams.review import review_record
from labelwatch.web.pages import register_dashboard

log = logging.getLogger(__name__)

# Room for the dead-letter headers on top of a maximal input message.
_HEADER_ROOM = 64 * 1024
# Exit code of a worker that stopped because processing a batch raised (EX_SOFTWARE).
EXIT_PROCESSING_FAILED = 70
# How often a worker sharing a ClickHouse server reads the revocations other workers stored.
_REVOCATION_REFRESH_SECONDS = 5.0


class FaustDeadLetters:
    """Sends rejected messages to the dead-letter topic and waits until the broker has them."""

    def __init__(self, topic: faust.TopicT) -> None:
        self._topic = topic

    async def send(self, rejects: Sequence[tuple[RawMessage, InvalidEvent]]) -> None:
        pending = [
            await self._topic.send(
                key=message.key,
                value=message.value,
                headers=dead_letter_headers(message, rejection),
            )
            for message, rejection in rejects
        ]
        for delivery in pending:
            await delivery


class FaustAlerts:
    """Publishes alerts to the alerts topic and waits until the broker has them; then offers
    them to the optional push receivers (which never make it wait)."""

    def __init__(self, topic: faust.TopicT, notifiers: Sequence[Notifier] = ()) -> None:
        self._topic = topic
        self._notifiers = notifiers

    async def publish(self, alerts: Sequence[Alert]) -> None:
        pending = []
        for alert in alerts:
            key, value = alert_record(alert)
            pending.append(await self._topic.send(key=key, value=value))
        for delivery in pending:
            await delivery
        for notifier in self._notifiers:
            notifier.offer(alerts)


class FaustReviews:
    """Publishes review picks to the review topic and waits until the broker has them."""

    def __init__(self, topic: faust.TopicT) -> None:
        self._topic = topic

    async def publish(self, items: Sequence[ReviewItem]) -> None:
        pending = []
        for item in items:
            key, value = review_record(item)
            pending.append(await self._topic.send(key=key, value=value))
        for delivery in pending:
            await delivery


def notifiers(
    settings: Settings, session: aiohttp.ClientSession, metrics: Metrics
) -> list[Notifier]:
    """The push receivers ``settings`` configures (Alertmanager, webhook), not yet started."""
    out = []
    if settings.alertmanager_url:
        out.append(
            Notifier.for_alertmanager(
                settings.alertmanager_url,
                session,
                metrics.notifications,
                resend_seconds=settings.alertmanager_resend_seconds,
                max_queue=settings.notify_queue_size,
            )
        )
    if settings.webhook_url is not None:
        token = settings.webhook_token
        out.append(
            Notifier.for_webhook(
                settings.webhook_url.get_secret_value(),
                session,
                metrics.notifications,
                token=None if token is None else token.get_secret_value(),
                max_queue=settings.notify_queue_size,
            )
        )
    return out


def raw_message(event: faust.EventT[Any]) -> RawMessage:
    """The Kafka coordinates and bytes of a Faust event."""
    message = event.message
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
    )


def quality_tracker(settings: Settings) -> QualityTracker:
    """The consensus/reliability tracker configured by ``settings``."""

    def model() -> StreamingConsensus:
        return StreamingConsensus(
            max_items=settings.max_items_per_shard, item_ttl_seconds=settings.item_ttl_seconds
        )

    return QualityTracker(
        model_factory=model,
        snapshot_seconds=settings.reliability_snapshot_seconds,
        checkpoint_every_labels=settings.checkpoint_every_labels,
        monitor_config=settings.monitor_config(),
        review_config=settings.review_config(),
        agreement_max_items=settings.max_items_per_shard,
        dedup_window=settings.dedup_window,
    )


def _record_lag(app: faust.App, metrics: Metrics, events: Sequence[Any]) -> None:
    """Consumer lag of each partition in the batch: messages after the last one processed."""
    last: dict[Any, int] = {}
    for event in events:
        last[event.message.tp] = event.message.offset
    for tp, offset in last.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            lag = max(int(highwater) - offset - 1, 0)
            metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)


class LabelwatchApp(faust.App):
    """Faust's app with one change to stopping: the wait for the batches in flight ends
    when a batch is given up because its output keeps failing.

    On stop Faust waits until every message taken from the streams is acked. A batch whose
    ClickHouse insert keeps failing is never acked, so the worker used to hang there until
    it was killed. Once the app stops, the retry loops give up instead of sleeping
    (:meth:`retry_pause`); the given-up batch stays unacked, its offsets uncommitted, and
    the next worker gets it again, exactly as after a crash. Faust's consumer then commits
    what was acked before it, as on every stop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = asyncio.Event()
        self.given_up = asyncio.Event()

    async def retry_pause(self, seconds: float) -> None:
        """Sleep between two attempts at a failing output; raise :class:`ShuttingDown` at
        once if the app is stopping or starts to."""
        if not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), seconds)
            except TimeoutError:
                return
        raise ShuttingDown("the worker is stopping")

    async def on_stop(self) -> None:
        self.stopping.set()
        await super().on_stop()

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        # Also called when a rebalance revokes partitions; the app is not stopping then,
        # and Faust's wait is kept as it is.
        if not self.stopping.is_set():
            await super()._consumer_wait_empty(consumer, logger)
            return
        waiting = asyncio.ensure_future(super()._consumer_wait_empty(consumer, logger))
        given_up = asyncio.ensure_future(self.given_up.wait())
        try:
            await asyncio.wait({waiting, given_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (waiting, given_up):
                future.cancel()
        if self.given_up.is_set():
            logger.warning("stopped waiting for the streams: a batch was given up (see above)")


def create_app(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    topic_ids: Mapping[str, str] | None = None,
) -> faust.App:
    """Build the labelwatch Faust app for ``settings``.

    The ClickHouse connection is opened when the agent starts, not here, so building the app
    (e.g. for ``agent.test_context()``) needs no store.
    """
    metrics = metrics or Metrics()
    app = LabelwatchApp(
        settings.app_id,
        broker=settings.broker_url(),
        broker_credentials=broker_credentials(settings),
        store="memory://",
        autodiscover=False,
        datadir=str(settings.data_dir / "faust"),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        # Heartbeats well inside the session timeout (Kafka's rule of thumb: a third).
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout_seconds / 3),
        producer_max_request_size=settings.max_message_bytes + _HEADER_ROOM,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        web_enabled=True,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
    )
    labels_topic = app.topic(
        settings.topic_labels, key_serializer="raw", value_serializer="raw", allow_empty=True
    )
    dead_letter_topic = app.topic(
        settings.topic_dead_letter, key_serializer="raw", value_serializer="raw"
    )
    alerts_topic = app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw")
    review_topic = app.topic(settings.topic_review, key_serializer="raw", value_serializer="raw")
    privacy_topic = app.topic(
        settings.topic_privacy, key_serializer="raw", value_serializer="raw", allow_empty=True
    )

    # One ClickHouse writer, notifiers and revocation registry for both agents, opened by the
    # first agent to start and closed by the last to stop; /query borrows the writer. With
    # chDB only this process can open the store, and the writer's thread is the one that may
    # use it.
    shared = _SharedResources(settings, metrics, FaustAlerts, alerts_topic, app.retry_pause)
    store = shared.store

    # The running agents' pipelines, told when a rebalance takes partitions away.
    pipelines: list[LabelPipeline | PrivacyPipeline] = []

    async def forget_revoked(sender: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        # Sent after Faust waited for the in-flight events to be acked.
        partitions = [(tp.topic, tp.partition) for tp in revoked]
        if partitions:
            log.info("partitions revoked: %s", ", ".join(f"{t}:{p}" for t, p in partitions))
        for pipeline in pipelines:
            pipeline.partitions_revoked(partitions)

    # faust's signal typing wants (sender, *args, signal=...); the receiver takes the same.
    app.on_partitions_revoked.connect(cast(Any, forget_revoked))

    @app.agent(labels_topic, concurrency=1, name="labels")
    async def consume_labels(stream: faust.StreamT[Any]) -> None:
        resources = await shared.acquire()
        pipeline = LabelPipeline(
            tables=resources.writer,
            tracker=quality_tracker(settings),
            topic_ids=topic_ids,
            dead_letters=FaustDeadLetters(dead_letter_topic),
            alerts=resources.alerts,
            reviews=FaustReviews(review_topic),
            metrics=metrics,
            max_message_bytes=settings.max_message_bytes,
            retry_max_seconds=settings.sink_retry_max_seconds,
            sleep=app.retry_pause,
            pseudonymize=resources.pseudonymize,
            revocations=resources.revocations,
        )
        pipelines.append(pipeline)
        try:
            await _consume(app, settings, metrics, stream, pipeline.process)
        finally:
            pipelines.remove(pipeline)
            await shared.release()

    @app.agent(privacy_topic, concurrency=1, name="privacy")
    async def consume_privacy(stream: faust.StreamT[Any]) -> None:
        resources = await shared.acquire()
        pipeline = PrivacyPipeline(
            tables=resources.writer,
            tracker=PrivacyTracker(settings.privacy_config(), dedup_window=settings.dedup_window),
            revocations=resources.revocations,
            topic_ids=topic_ids,
            dead_letters=FaustDeadLetters(dead_letter_topic),
            alerts=resources.alerts,
            metrics=metrics,
            max_message_bytes=settings.max_message_bytes,
            attribute_allowlist=frozenset(settings.privacy_attribute_allowlist),
            pseudonymize=resources.pseudonymize,
            retry_max_seconds=settings.sink_retry_max_seconds,
            sleep=app.retry_pause,
        )
        pipelines.append(pipeline)
        try:
            await _consume(app, settings, metrics, stream, pipeline.process)
        finally:
            pipelines.remove(pipeline)
            await shared.release()

    # The read-only dashboard (/dashboard/, its API), under the access rule of /query.
    register_dashboard(app, settings, store, access=_query_access)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=, so the full header goes in headers.
        return web.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/query")
    class QueryView(View):
        """Read-only SQL: POST {"sql": "...", "params": {...}} -> {"columns", "types",
        "rows", "truncated"}; errors are {"error": "..."} with a 4xx/5xx status."""

        async def post(self, request: Any) -> Any:
            denied = _query_access(settings, request)
            if denied is not None:
                return _json_response(self.web, {"error": denied[1]}, denied[0])
            try:
                body = json.loads(await self.read_request_content(request) or b"{}")
                sql, params = body["sql"], body.get("params") or {}
                if not isinstance(sql, str) or not isinstance(params, dict):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                message = 'expected a JSON body {"sql": "...", "params": {...}}'
                return _json_response(self.web, {"error": message}, 400)
            writer = store.get("writer")
            if writer is None:
                return _json_response(self.web, {"error": "the store is not open yet"}, 503)
            try:
                result = await writer.run(
                    functools.partial(
                        run_query,
                        writer.client,
                        sql,
                        params,
                        max_rows=settings.query_max_rows,
                        timeout_seconds=settings.query_timeout_seconds,
                        server=not settings.embedded_store,
                    )
                )
            except QueryError as exc:
                return _json_response(self.web, {"error": str(exc)}, 400)
            return _json_response(self.web, result.to_json(), 200)

    @app.page("/health")
    async def health_page(web: Any, request: Any) -> Any:
        # Liveness: the event loop answers. Whether it does useful work is /ready's question.
        return web.json({"status": "ok", "app_id": settings.app_id})

    @app.page("/ready")
    async def ready_page(web: Any, request: Any) -> Any:
        # The consumer exists once the agents run (reading app.consumer earlier would create it).
        report = readiness(
            store_open=store.get("writer") is not None,
            agents_running=len(pipelines),
            agents_expected=2,
            joined=app.rebalancing_count > 0,
            rebalancing=bool(app.rebalancing),
            assigned=len(app.consumer.assignment()) if pipelines else None,
            failing=metrics.failing,
            now=time.time(),
        )
        return _json_response(web, report, 200 if report["ready"] else 503)

    return app


async def _consume(
    app: LabelwatchApp,
    settings: Settings,
    metrics: Metrics,
    stream: faust.StreamT[Any],
    process: Callable[[list[RawMessage]], Awaitable[None]],
) -> None:
    """Hand the stream to ``process`` a batch at a time; ack a batch once it returned.

    A batch is at most ``sink_batch_size`` messages, and is handed over in chunks of at most
    ``sink_batch_bytes``: a batched envelope carries many events, so 5,000 envelopes of
    1,000 events would otherwise be 5 million events in one step of the models and one
    insert, with the event loop (and /metrics, /health) blocked all along."""
    # noack_take is on faust.Stream (what agents get), not on the StreamT interface.
    async for taken in cast("faust.Stream[Any]", stream).noack_take(
        settings.sink_batch_size, within=settings.sink_flush_seconds
    ):
        for events in _chunks(taken, settings.sink_batch_bytes):
            if not await _process_and_ack(app, metrics, stream, process, events):
                return  # given up on stopping: nothing after this batch may be acked


def _chunks(events: Sequence[Any], max_bytes: int) -> list[Sequence[Any]]:
    """``events`` in order, cut so that each piece's message values add up to at most
    ``max_bytes`` (a piece holds at least one message)."""
    out: list[Sequence[Any]] = []
    start, size = 0, 0
    for i, event in enumerate(events):
        n = len(event.message.value or b"")
        if i > start and size + n > max_bytes:
            out.append(events[start:i])
            start, size = i, 0
        size += n
    if start < len(events):
        out.append(events[start:])
    return out


async def _process_and_ack(
    app: LabelwatchApp,
    metrics: Metrics,
    stream: faust.StreamT[Any],
    process: Callable[[list[RawMessage]], Awaitable[None]],
    events: Sequence[Any],
) -> bool:
    """Process ``events``, then ack them and return True; False if the batch was given up
    because the worker is stopping while an output fails (or exit: see below)."""
    try:
        await process([raw_message(e) for e in events])
    except ShuttingDown:
        first, last = events[0].message, events[-1].message
        log.warning(
            "stopping while an output fails: the batch from %s:%d offset %d to %s:%d offset "
            "%d is not committed, and the next worker gets it again",
            first.topic,
            first.partition,
            first.offset,
            last.topic,
            last.partition,
            last.offset,
        )
        app.given_up.set()
        return False
    except Exception as exc:
        # Output failures are retried inside ``process``; this is a bug (e.g. in a
        # model). Faust would restart the agent and go on with the batch never acked:
        # commits stall there while later batches are processed, and the models may be
        # half-way through the batch. Exiting at once is loud instead, and exactly as
        # safe as a SIGKILL (the chaos suite kills workers at every point): nothing
        # unacked was committed, and the successor restores the models from ClickHouse
        # and gets the batch again. (A graceful app.crash() could hang in Faust's agent
        # supervisor, which is busy restarting the failed agent.)
        first = events[0].message
        log.critical(
            "processing the batch from %s:%d offset %d failed (%s: %s); exiting with "
            "code %d so that the batch is redelivered to a fresh worker",
            first.topic,
            first.partition,
            first.offset,
            type(exc).__name__,
            exc,
            EXIT_PROCESSING_FAILED,
            exc_info=exc,
        )
        logging.shutdown()
        os._exit(EXIT_PROCESSING_FAILED)
    for event in events:
        await stream.ack(event)
    _record_lag(app, metrics, events)
    return True


@dataclass
class _Resources:
    writer: ClickHouseWriter
    alerts: FaustAlerts
    revocations: Revocations
    pseudonymize: Callable[[str], str] | None


class _SharedResources:
    """What the agents share, opened on first use and closed when the last agent stops."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        make_alerts: Callable[[faust.TopicT, Sequence[Notifier]], FaustAlerts],
        alerts_topic: faust.TopicT,
        retry_pause: Callable[[float], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._retry_pause = retry_pause
        self._metrics = metrics
        self._make_alerts = make_alerts
        self._alerts_topic = alerts_topic
        self._users = 0
        self._opening = asyncio.Lock()
        self._resources: _Resources | None = None
        self._session: aiohttp.ClientSession | None = None
        self._receivers: list[Notifier] = []
        self.store: dict[str, ClickHouseWriter] = {}

    async def acquire(self) -> _Resources:
        async with self._opening:
            self._users += 1
            if self._resources is None:
                self._resources = self._open()
            return self._resources

    def _open(self) -> _Resources:
        settings = self._settings
        writer = ClickHouseWriter(connect(settings=settings), database_name(settings))
        self.store["writer"] = writer
        self._session = aiohttp.ClientSession()
        self._receivers = notifiers(settings, self._session, self._metrics)
        for receiver in self._receivers:
            receiver.start()

        async def reload() -> list[Revocation]:
            return await retrying(
                "clickhouse",
                lambda: writer.run(writer.revocations),
                self._metrics,
                self._retry_pause,
                settings.sink_retry_max_seconds,
            )

        key = settings.pseudonym_key
        return _Resources(
            writer=writer,
            alerts=self._make_alerts(self._alerts_topic, self._receivers),
            revocations=Revocations(
                RevocationRegistry(),
                reload,
                refresh_seconds=None if settings.embedded_store else _REVOCATION_REFRESH_SECONDS,
            ),
            pseudonymize=None if key is None else Pseudonymizer(key.get_secret_value().encode()),
        )

    async def release(self) -> None:
        async with self._opening:
            self._users -= 1
            if self._users > 0 or self._resources is None:
                return
            resources, self._resources = self._resources, None
            for receiver in self._receivers:
                await receiver.stop()
            if self._session is not None:
                await self._session.close()
            self.store.pop("writer", None)
            resources.writer.close()


def _query_access(settings: Settings, request: Any) -> tuple[int, str] | None:
    """(status, reason) if the request may not query, else None. With a token configured
    every request must bear it; without one only loopback clients are served."""
    token = settings.query_token
    if token is not None:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return 401, "missing or wrong bearer token (LABELWATCH_QUERY_TOKEN)"
        return None
    try:
        loopback = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return 403, "set LABELWATCH_QUERY_TOKEN to query from another host"
    return None


def readiness(
    *,
    store_open: bool,
    agents_running: int,
    agents_expected: int,
    joined: bool,
    rebalancing: bool,
    assigned: int | None,
    failing: Mapping[str, tuple[float, str]],
    now: float,
) -> dict[str, Any]:
    """The /ready report: ready when the store is open, every agent runs, the consumer has
    joined its group and is not rebalancing, and no output is failing. Each problem is said
    in plain words.

    A worker with no partitions assigned is ready: it is a standby member of a group with more
    workers than partitions, and takes partitions over when another member leaves."""
    problems = []
    if not store_open:
        problems.append("the ClickHouse store is not open yet")
    if agents_running < agents_expected:
        problems.append(f"{agents_running} of {agents_expected} agents are running")
    if not joined:
        problems.append("the consumer has not joined its group yet")
    elif rebalancing:
        problems.append("the consumer group is rebalancing")
    for component, (since, error) in sorted(failing.items()):
        problems.append(
            f"{component} writes have been failing for {now - since:.0f} s "
            f"({error}; retrying, consumption waits; the worker's log has the details)"
        )
    return {
        "ready": not problems,
        "problems": problems,
        "partitions_assigned": assigned,
    }


def _json_response(web: Any, value: Any, status: int) -> Any:
    return web.bytes(json.dumps(value).encode(), content_type="application/json", status=status)
