"""Creating labelwatch's topics (idempotent) and reading consumer-group progress."""

from __future__ import annotations

import logging
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError

from labelwatch.settings import Settings
from labelwatch.streams.kafka_security import kafka_python_options

log = logging.getLogger(__name__)

# The dead-letter topic must accept any message the input topics accepted, plus headers.
_DEAD_LETTER_MIN_BYTES = 4 * 1024 * 1024
_HEADER_ROOM = 64 * 1024


def input_topics(settings: Settings) -> list[str]:
    """Topics the worker consumes: labels and privacy signals."""
    return [settings.topic_labels, settings.topic_privacy]


def wanted_topics(settings: Settings) -> dict[str, dict[str, object]]:
    """labelwatch's topics and how each is created (partitions, replication, configs)."""
    dead_letter_bytes = max(_DEAD_LETTER_MIN_BYTES, 2 * settings.max_message_bytes)
    # Input topics accept a little more than the worker's limit, so that oversized messages
    # reach the worker and are dead-lettered with a reason instead of failing at the producer.
    input_bytes = settings.max_message_bytes + _HEADER_ROOM
    wanted: dict[str, dict[str, object]] = {
        topic: _spec(settings, input_bytes) for topic in input_topics(settings)
    }
    wanted[settings.topic_alerts] = _spec(settings, None)
    wanted[settings.topic_review] = _spec(settings, None)
    wanted[settings.topic_dead_letter] = _spec(settings, dead_letter_bytes)
    return wanted


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create labelwatch's topics if missing; returns the names that were created."""
    wanted = wanted_topics(settings)
    admin = admin_client(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
        created = []
        for name, spec in wanted.items():
            if name in existing:
                continue
            try:
                admin.create_topics({name: spec}, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                continue  # another worker created it first
            created.append(name)
        return created
    finally:
        admin.close()


def topic_ids(settings: Settings, topics: list[str] | None = None) -> dict[str, str]:
    """Kafka's id of each topic: it changes when a topic is deleted and created again."""
    admin = admin_client(settings, 30.0)
    try:
        described = admin.describe_topics(topics or input_topics(settings))
    finally:
        admin.close()
    return {str(t["name"]): str(t["topic_id"]) for t in described}


def _spec(settings: Settings, max_message_bytes: int | None) -> dict[str, object]:
    configs = {} if max_message_bytes is None else {"max.message.bytes": str(max_message_bytes)}
    return {
        "num_partitions": settings.topic_partitions,
        "replication_factor": settings.topic_replication,
        "configs": configs,
    }


def group_lag(settings: Settings, topics: list[str] | None = None) -> int:
    """Messages in ``topics`` not yet committed by the worker group (end offset - committed)."""
    topics = topics or input_topics(settings)
    admin = admin_client(settings, 30.0)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers(),
        enable_auto_commit=False,
        **kafka_python_options(settings),
    )
    try:
        committed = admin.list_group_offsets(settings.app_id).get(settings.app_id, {})
        partitions = [
            TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())
        ]
        ends = consumer.end_offsets(partitions)
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, end - done)
        return lag
    finally:
        consumer.close()
        admin.close()


def wait_for_lag_zero(settings: Settings, timeout_s: float, poll_s: float = 0.5) -> int:
    """Poll :func:`group_lag` until it is 0 or ``timeout_s`` passed; returns the last lag.

    -1 means the lag could not be read before the deadline (e.g. no group coordinator).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            lag = group_lag(settings)
        except KafkaError as exc:
            # E.g. no group coordinator yet on a fresh broker: the answer is "not done yet".
            if not exc.retriable:
                raise
            lag = -1
        if lag == 0 or time.monotonic() >= deadline:
            return lag
        time.sleep(poll_s)


def admin_client(settings: Settings, timeout_s: float) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers(),
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=int(timeout_s * 1000),
        # Also bounds the first connection: a rejected SASL login shows up as a failed
        # bootstrap (kafka-python retries it) rather than as an authentication error.
        bootstrap_timeout_ms=int(timeout_s * 1000),
        **kafka_python_options(settings),
    )


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The current end offset of every partition of ``topic`` (partition -> offset)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers(),
        enable_auto_commit=False,
        **kafka_python_options(settings),
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def read_range(
    settings: Settings,
    topic: str,
    start: dict[int, int],
    *,
    timeout_s: float = 20.0,
    fetch_max_bytes: int = 50 * 1024 * 1024,
) -> list[ConsumerRecord]:
    """Records of ``topic`` from ``start`` (partition -> offset) to the end offsets as of the
    call (or until ``timeout_s``), in partition and offset order. For tests and tools that
    read back an output topic; no consumer group, nothing committed."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers(),
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        fetch_max_bytes=fetch_max_bytes,
        **kafka_python_options(settings),
    )
    try:
        parts = [TopicPartition(topic, p) for p in start]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp.partition])
        ends = consumer.end_offsets(parts)
        found: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                found.extend(records)
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
