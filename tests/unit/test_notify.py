"""Alert push receivers: never block the stream, retry with back-off, bounded memory."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from labelwatch.schemas.alerts import Alert, alert_id
from labelwatch.sinks.metrics import Metrics
from labelwatch.sinks.notify import Notifier, alertmanager_payload, webhook_payload

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def alert(n: int, state: str = "opened") -> Alert:
    return Alert.model_validate(
        {
            "alert_id": alert_id("spammer_suspected", "p", f"ann-{n}", "labels:0", n),
            "kind": "spammer_suspected",
            "state": state,
            "severity": "critical",
            "ts": T0 + timedelta(seconds=n),
            "project": "p",
            "annotator_id": f"ann-{n}",
            "score": 0.01,
            "threshold": 0.3,
            "reason": "answers look random",
            "evidence": {"labels": 40},
            "detector": "random_answers",
            "shard": "labels:0",
            "offset": n,
            "opened_offset": n,
        }
    )


def count(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "labelwatch_notifications_total", {"receiver": "test", "outcome": outcome}
    )
    return value or 0.0


def test_alertmanager_payload_one_alert_per_episode_and_resolution() -> None:
    now = T0 + timedelta(hours=1)
    body = json.loads(
        alertmanager_payload([alert(1), alert(1, "resolved")], now, timedelta(minutes=3))
    )
    opened, resolved = body
    assert opened["labels"]["alertname"] == "LabelwatchAnnotatorAlert"
    assert opened["labels"]["alert_id"] == resolved["labels"]["alert_id"] == alert(1).alert_id
    assert (
        opened["labels"]["annotator_id"] == "ann-1"
        and opened["labels"]["kind"] == "spammer_suspected"
    )
    assert opened["startsAt"] == (T0 + timedelta(seconds=1)).isoformat()
    assert opened["endsAt"] == (now + timedelta(minutes=3)).isoformat()
    assert resolved["endsAt"] == now.isoformat()
    assert opened["annotations"]["description"] == "answers look random"
    assert json.loads(webhook_payload([alert(2)]))["alerts"][0]["annotator_id"] == "ann-2"


def test_failed_posts_are_retried_in_order_and_offer_never_waits() -> None:
    metrics = Metrics()
    bodies: list[list[str]] = []
    failures = 3

    async def post(body: bytes) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("receiver down")
        bodies.append([a["annotator_id"] for a in json.loads(body)["alerts"]])

    async def run() -> None:
        notifier = Notifier(
            "test",
            post,
            webhook_payload,
            metrics.notifications,
            batch_size=2,
            retry_max_seconds=0.05,
        )
        notifier.start()
        notifier.offer([alert(n) for n in range(5)])
        await notifier.stop(flush_seconds=5)

    asyncio.run(run())
    assert [a for batch in bodies for a in batch] == [f"ann-{n}" for n in range(5)]
    assert count(metrics, "sent") == 5 and count(metrics, "failed") == 3 * 2
    assert count(metrics, "dropped") == 0


def test_a_receiver_that_never_answers_costs_bounded_memory_and_no_waiting() -> None:
    metrics = Metrics()

    async def hang(body: bytes) -> None:
        await asyncio.sleep(3600)

    async def run() -> int:
        notifier = Notifier(
            "test", hang, webhook_payload, metrics.notifications, max_queue=100, batch_size=10
        )
        notifier.start()
        notifier.offer([alert(i) for i in range(100)])
        await asyncio.sleep(0.05)  # the sender takes a batch of 10 into the post that hangs
        for n in range(1, 50):
            notifier.offer([alert(n * 100 + i) for i in range(100)])  # returns at once
        pending = notifier.pending
        await notifier.stop(flush_seconds=0.1)
        return pending

    pending = asyncio.run(run())
    assert pending == 100
    assert count(metrics, "dropped") == 5_000 - 100 - 10
    assert count(metrics, "sent") == 0


def test_open_episodes_are_resent_until_resolved() -> None:
    metrics = Metrics()
    sent: list[tuple[str, str]] = []

    async def post(body: bytes) -> None:
        sent.extend((a["annotator_id"], a["state"]) for a in json.loads(body)["alerts"])

    async def run() -> None:
        notifier = Notifier(
            "test", post, webhook_payload, metrics.notifications, resend_seconds=0.05
        )
        notifier.start()
        notifier.offer([alert(1), alert(2)])
        await asyncio.sleep(0.2)
        notifier.offer([alert(1, "resolved")])
        sent.clear()
        await asyncio.sleep(0.2)
        await notifier.stop()

    asyncio.run(run())
    assert ("ann-1", "resolved") in sent
    assert sent.count(("ann-2", "opened")) >= 2  # kept alive
    after = sent[sent.index(("ann-1", "resolved")) + 1 :]
    assert ("ann-1", "opened") not in after


def test_an_escalated_update_ends_the_alert_under_its_old_severity() -> None:
    posted: list[tuple[str, str, str]] = []

    async def post(body: bytes) -> None:
        now = T0 + timedelta(hours=1)
        for a in json.loads(body):
            state = "ended" if a["endsAt"] <= now.isoformat() else "active"
            posted.append((a["labels"]["alert_id"], a["labels"]["severity"], state))

    def encode(alerts: list[Alert]) -> bytes:
        return alertmanager_payload(alerts, T0 + timedelta(hours=1), timedelta(minutes=3))

    opened = alert(1).model_copy(update={"severity": "warning"})
    updated = alert(1, "updated")  # critical now

    async def run() -> None:
        notifier = Notifier("test", post, encode, Metrics().notifications, resend_seconds=60)
        notifier.start()
        notifier.offer([opened])
        notifier.offer([updated])
        await notifier.stop(flush_seconds=2)

    asyncio.run(run())
    episode = opened.alert_id
    assert posted == [
        (episode, "warning", "active"),
        (episode, "warning", "ended"),
        (episode, "critical", "active"),
    ]
