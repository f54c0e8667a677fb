"""JSON log lines: one object per line, with exceptions and extra fields, secrets masked."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import subprocess
import sys

from labelwatch.logs import JsonFormatter, faust_logging_config


def record(message: str, *args: object, **kwargs: object) -> logging.LogRecord:
    logger = logging.getLogger("labelwatch.test")
    return logger.makeRecord(
        "labelwatch.test", logging.WARNING, __file__, 1, message, args, None, **kwargs
    )  # type: ignore[arg-type]


def test_a_record_is_one_json_object_on_one_line() -> None:
    line = JsonFormatter().format(record("lag on %s is %d\nmessages", "labels", 42))
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "warning"
    assert out["logger"] == "labelwatch.test"
    assert out["message"] == "lag on labels is 42\nmessages"
    assert out["ts"].endswith("+00:00")


def test_extra_fields_and_exceptions_are_kept() -> None:
    try:
        raise ValueError("bad offset")
    except ValueError:
        exc_info = sys.exc_info()
    rec = logging.getLogger("x").makeRecord(
        "x", logging.ERROR, __file__, 1, "failed", (), exc_info, extra={"partition": 3}
    )
    out = json.loads(JsonFormatter().format(rec))
    assert out["partition"] == 3
    assert "ValueError: bad offset" in out["exc"]
    assert "args" not in out and "msg" not in out  # standard attributes are not repeated


def test_faust_config_routes_every_logger_through_the_json_formatter() -> None:
    config = faust_logging_config("json", "INFO")
    assert config is not None
    assert faust_logging_config("text", "INFO") is None
    stream = io.StringIO()
    config["handlers"]["default"]["stream"] = stream
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(config)
        logging.getLogger("faust.worker").info("started")
        logging.getLogger("kafka.conn").info("connecting")  # kafka-python's chatter is cut
    finally:
        root.handlers[:], root.level = saved
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [("faust.worker", "started")]


def test_the_cli_configures_json_logs_unless_logging_is_configured_already() -> None:
    code = (
        "import logging, sys\n"
        "from labelwatch.logs import configure\n"
        "configure('json', logging.INFO, sys.stderr)\n"
        "configure('text', logging.INFO, sys.stderr)\n"  # a second call changes nothing
        "logging.getLogger('labelwatch.cli').info('applied %d migrations', 6)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stderr)["message"] == "applied 6 migrations"
