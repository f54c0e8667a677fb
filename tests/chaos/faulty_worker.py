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

Nothing else differs from the real worker; production code has no fault hooks.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

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


def main() -> int:
    install()
    from labelwatch.cli import main as cli_main

    return cli_main(["worker"])


if __name__ == "__main__":
    sys.exit(main())
