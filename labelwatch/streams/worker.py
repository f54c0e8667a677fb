"""Running the Faust worker: prepare topics and tables, then consume until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import faust

from labelwatch.logs import faust_logging_config
from labelwatch.settings import Settings
from labelwatch.sinks.clickhouse import connect, database_name
from labelwatch.sinks.migrations import migrate
from labelwatch.streams.app import create_app
from labelwatch.streams.topics import ensure_topics, topic_ids

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> dict[str, str]:
    """Create missing topics and apply pending ClickHouse migrations (both idempotent);
    returns the input topics' Kafka ids."""
    created = ensure_topics(settings)
    if created:
        log.info("created topics: %s", ", ".join(created))
    client = connect(settings=settings)
    try:
        for migration in migrate(client, database_name(settings), settings.retention()):
            log.info("applied migration %04d %s", migration.version, migration.name)
    finally:
        client.close()
    return topic_ids(settings)


def run_worker(settings: Settings) -> int:
    """Run until stopped; Faust's worker flushes and commits acked offsets on SIGTERM."""
    log.info(
        "labelwatch worker: broker %s, store %s, web http://%s:%d, annotator ids %s",
        settings.kafka_bootstrap,
        settings.redacted_dsn(),
        settings.web_host,
        settings.web_port,
        "pseudonymized" if settings.pseudonym_key is not None else "stored as sent",
    )
    # Faust creates its datadir without parents; with a server DSN nothing else has made
    # the data directory yet.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, topic_ids=prepare(settings))
    level = settings.log_level.upper()
    worker = faust.Worker(
        app,
        loglevel=level,
        quiet=True,
        logging_config=faust_logging_config(settings.log_format, level),
    )
    worker.execute_from_commandline()  # exits the process with the worker's status
    return 0
