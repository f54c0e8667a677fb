"""``labelwatch worker`` with fault injection, for the chaos tests and ``bench/chaos.py``.

Run as ``python -m tests.chaos.faulty_worker`` (from the repository root). Faults are set by
environment variables and act on the one place where the worker makes its results durable,
the ClickHouse insert (``ClickHouseWriter.insert_tables``):

``CHAOS_SINK_FAIL_FILE``
    While this file exists, every insert fails (a ClickHouse outage); the worker must retry,
    stop consuming, stay within bounded memory and resume when the file is gone.
``CHAOS_KILL_AFTER_INSERTS``
    SIGKILL the worker right after its N-th successful insert: the rows are stored, their
    offsets are not committed yet (the window a crash is worst in).
``CHAOS_KILL_BEFORE_COUNTS``
    SIGKILL the worker right before its N-th insert of per-minute counts
    (``annotator_minute_input``): the batch's labels and alerts are stored, not counted.
``CHAOS_MODEL_FAILURE_MARKER``
    Once (while this file does not exist yet; it is then created): a bug in the models,
    raised after the 5th shard segment was learned, so the models have moved on and nothing
    of the batch is stored.

Nothing else differs from the real worker; production code has no fault hooks.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from labelwatch.models.tracker import QualityTracker
from labelwatch.sinks.clickhouse import ClickHouseWriter


def install() -> None:
    fail_file = os.environ.get("CHAOS_SINK_FAIL_FILE")
    kill_after = int(os.environ.get("CHAOS_KILL_AFTER_INSERTS", "0"))
    insert = ClickHouseWriter.insert_tables
    done = 0

    def faulty_insert(self: ClickHouseWriter, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        nonlocal done
        if fail_file and Path(fail_file).exists():
            raise ConnectionError("injected ClickHouse outage (CHAOS_SINK_FAIL_FILE exists)")
        insert(self, tables)
        done += 1
        if kill_after and done >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    ClickHouseWriter.insert_tables = faulty_insert  # type: ignore[method-assign]

    kill_before_counts = int(os.environ.get("CHAOS_KILL_BEFORE_COUNTS", "0"))
    insert_one = ClickHouseWriter._insert
    counts = 0

    def faulty_insert_one(self: ClickHouseWriter, table: str, rows: list[tuple[Any, ...]]) -> None:
        nonlocal counts
        if table == "annotator_minute_input":
            counts += 1
            if kill_before_counts and counts >= kill_before_counts:
                os.kill(os.getpid(), signal.SIGKILL)
        insert_one(self, table, rows)

    ClickHouseWriter._insert = faulty_insert_one  # type: ignore[method-assign]

    marker = os.environ.get("CHAOS_MODEL_FAILURE_MARKER")
    learn = QualityTracker._learn
    segments = 0

    def faulty_learn(self: QualityTracker, *args: Any) -> Any:
        nonlocal segments
        result = learn(self, *args)
        segments += 1
        if marker and segments >= 5 and not Path(marker).exists():
            Path(marker).touch()
            raise RuntimeError("injected model failure (CHAOS_MODEL_FAILURE_MARKER)")
        return result

    QualityTracker._learn = faulty_learn  # type: ignore[method-assign]


def main() -> int:
    install()
    from labelwatch.cli import main as cli_main

    return cli_main(["worker"])


if __name__ == "__main__":
    sys.exit(main())
