"""scripts/local_kafka.py kill and restart: a hard-killed broker comes back as the same broker.

Same bootstrap addresses and cluster id, topic data and committed offsets kept, and clients
opened before the kill carry on. The listeners must rebind ports on which the killed broker's
connections still linger (TIME_WAIT, FIN_WAIT2), which a plain bind() refuses; the test checks
that such sockets are really there, so the restart is not tested on clean ports by luck.

It starts a broker of its own in a temporary run dir: killing the session broker would break
every other broker test.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

from tests.conftest import _local_kafka

pytestmark = pytest.mark.broker

TOPIC = "restart-check"
GROUP = "restart-check-group"
RECORDS = [f"record-{i}".encode() for i in range(5)]
COMMITTED = 3
# kafka-python backs off exponentially up to 30 s by default; the broker is away for ~10 s.
CLIENT_OPTIONS: dict[str, object] = {
    "reconnect_backoff_ms": 50,
    "reconnect_backoff_max_ms": 500,
    "request_timeout_ms": 10_000,
}
# /proc/net/tcp socket states (include/net/tcp_states.h).
TCP_LISTEN = "0A"


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def lingering_states(port: int) -> list[str]:
    """States of the sockets, other than listening ones, whose local port is ``port``."""
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # the JVM's sockets are IPv6 ones
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if int(local.rpartition(":")[2], 16) == port and state != TCP_LISTEN:
                states.append(state)
    return states


def read_all(bootstrap: str, tp: TopicPartition, n: int) -> list[bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **CLIENT_OPTIONS
    )
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(values) < n and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
        return values
    finally:
        consumer.close()


def test_killed_broker_restarts_with_its_ports_and_data(tmp_path: Path) -> None:
    local_kafka = _local_kafka()
    run_dir = tmp_path / "kafka"
    state = local_kafka.start(run_dir=run_dir, timeout=120.0)
    bootstrap = str(state["bootstrap"])
    tp = TopicPartition(TOPIC, 0)
    with contextlib.ExitStack() as clients:
        clients.callback(local_kafka.stop, run_dir)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **CLIENT_OPTIONS)
        clients.callback(admin.close)
        admin.create_topics([NewTopic(TOPIC, 1, 1)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **CLIENT_OPTIONS)
        clients.callback(producer.close)
        for value in RECORDS:
            producer.send(TOPIC, value)
        producer.flush(timeout=30)
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False, **CLIENT_OPTIONS
        )
        clients.callback(consumer.close)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(COMMITTED, "", -1)})
        assert consumer.committed(tp) == COMMITTED

        t0 = time.monotonic()
        local_kafka.kill(run_dir)
        killed_in = time.monotonic() - t0
        assert local_kafka.status(run_dir) is None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port_of(bootstrap)), timeout=5).close()
        # The killed broker's connections linger on its port, so a plain bind() is refused:
        # the restart below has to rebind past them (SO_REUSEADDR), not merely find it free.
        assert lingering_states(port_of(bootstrap)), "no lingering sockets: nothing to rebind"
        with socket.socket() as plain, pytest.raises(OSError, match="in use"):
            plain.bind(("127.0.0.1", port_of(bootstrap)))

        t0 = time.monotonic()
        restarted = local_kafka.restart(run_dir, timeout=60.0)
        restarted_in = time.monotonic() - t0
        print(f"kill took {killed_in:.2f}s, restart {restarted_in:.1f}s")
        assert restarted["pid"] != state["pid"]
        for key in ("bootstrap", "sasl_bootstrap", "cluster_id"):
            assert restarted[key] == state[key], key
        assert local_kafka.status(run_dir) == restarted
        # (A new admin client: kafka-python's admin sends each request once, so the old one
        # may still have the broker in reconnect back-off.)
        fresh_admin = KafkaAdminClient(bootstrap_servers=bootstrap, **CLIENT_OPTIONS)
        clients.callback(fresh_admin.close)
        assert fresh_admin.describe_cluster()["cluster_id"] == state["cluster_id"]
        assert TOPIC in fresh_admin.list_topics()

        # Producer and consumer opened before the kill reconnect to the same address.
        producer.send(TOPIC, b"after-restart").get(timeout=30)
        assert consumer.committed(tp) == COMMITTED
        assert read_all(bootstrap, tp, len(RECORDS) + 1) == [*RECORDS, b"after-restart"]
        # A new member of the group resumes at the committed offset.
        resumed = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False, **CLIENT_OPTIONS
        )
        clients.callback(resumed.close)
        resumed.assign([tp])
        assert resumed.position(tp) == COMMITTED
