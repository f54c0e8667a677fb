"""Log output: human-readable lines (default) or one JSON object per line.

JSON logs (``LABELWATCH_LOG_FORMAT=json``) are for log collectors (Loki, Elasticsearch,
Cloud Logging): every line is an object with ``ts`` (ISO 8601, UTC), ``level``, ``logger``
and ``message``, ``exc`` when an exception is attached, and any ``extra={...}`` fields the
call gave. Secrets are masked before formatting either way (see
:func:`labelwatch.streams.kafka_security.redact_in_logs`), since the masking works on the
log record itself.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import IO, Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter for ``fmt``."""
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(fmt: LogFormat, level: int | str, stream: IO[str]) -> None:
    """Send the root logger's records to ``stream`` in ``fmt``; like
    :func:`logging.basicConfig`, nothing changes if the root logger has handlers already."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
    # kafka-python narrates every connection at INFO; its warnings still show.
    logging.getLogger("kafka").setLevel(logging.WARNING)


def faust_logging_config(fmt: LogFormat, level: str) -> dict[str, Any] | None:
    """A :func:`logging.config.dictConfig` for Faust's worker, or None to keep Faust's own
    (coloured) lines. Faust's worker logs to stdout; JSON goes to the same stream."""
    if fmt != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {"kafka": {"level": "WARNING"}},
    }
