"""The ceiling for ``bench/throughput.py``: a bare Faust agent that only decodes JSON.

Same Faust version and consumer settings as the worker (raw serializers, earliest offsets,
one agent with concurrency 1), on the same topic, with a consumer group of its own. It reads
``--events`` messages, ``json.loads`` each value, and prints one JSON line: the messages
per second from its first message to its last.

Usage: ``python bench/bare_faust.py --bootstrap HOST:PORT --topic T --events N --group G``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import faust


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--web-port", type=int, default=0)
    args = parser.parse_args()

    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        autodiscover=False,
        datadir=tempfile.mkdtemp(prefix="bare-faust-"),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        topic_disable_leader=True,
    )
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic, concurrency=1)
    async def decode(stream: Any) -> None:
        async for value in stream:
            json.loads(value)
            seen["n"] += 1
            if seen["n"] == 1:
                seen["first"] = time.perf_counter()
            if seen["n"] >= args.events:
                took = time.perf_counter() - seen["first"]
                rate = (args.events - 1) / took if took > 0 else 0.0
                print(
                    json.dumps({"events": args.events, "seconds": took, "events_per_second": rate}),
                    flush=True,
                )
                os._exit(0)  # the measurement is done; no need to wait for a clean stop

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
