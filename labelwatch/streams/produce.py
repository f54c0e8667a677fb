"""Sending events to Kafka with kafka-python (simulator, demo, tests, benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka import KafkaProducer

from labelwatch.settings import Settings
from labelwatch.streams.kafka_security import kafka_python_options

_HEADER_ROOM = 64 * 1024


def make_producer(settings: Settings) -> KafkaProducer:
    """A producer that waits for the broker's acknowledgement of every record."""
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers(),
        acks="all",
        linger_ms=5,
        max_request_size=settings.max_message_bytes + _HEADER_ROOM,
        client_id=f"{settings.app_id}-producer",
        **kafka_python_options(settings),
    )


def produce(
    settings: Settings,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    rate: float | None = None,
) -> int:
    """Send ``(key, value)`` records to ``topic``, at most ``rate`` per second if given.

    Returns the number sent; every one has been acknowledged by the broker when this returns
    (a failed send raises).
    """
    producer = make_producer(settings)
    sent = 0
    started = time.monotonic()
    try:
        futures = []
        for key, value in records:
            futures.append(producer.send(topic, key=key, value=value))
            sent += 1
            if rate is not None:
                # Pace against the schedule, not per message, so bursts of sleep jitter even out.
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if len(futures) >= 10_000:
                _wait_all(futures)
        _wait_all(futures)
        producer.flush()
    finally:
        producer.close()
    return sent


def _wait_all(futures: list) -> None:  # type: ignore[type-arg]
    for future in futures:
        future.get(timeout=60)
    futures.clear()
