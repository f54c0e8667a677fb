"""``labelwatch doctor``: check the configuration, the broker, the topics, the ClickHouse store,
the alert receivers and a running worker, and say what is wrong in plain words.

Each check gives one :class:`Finding` (ok, warn or fail) with a sentence a person can act on.
A check that depends on another one that failed is skipped and says so, rather than
repeating the same connection error. Nothing here writes: topics are not created and
migrations are not applied (the worker does both when it starts).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from labelwatch.settings import Settings

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str


def _local_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (a bind-all)


def check_configuration(settings: Settings) -> list[Finding]:
    """What the configuration allows that a production deployment may not want."""
    out = [
        Finding(
            "configuration",
            "ok",
            f"valid: broker {settings.kafka_bootstrap}, store {settings.redacted_dsn()}, "
            f"web http://{settings.web_host}:{settings.web_port}",
        )
    ]
    if settings.pseudonym_key is None:
        out.append(
            Finding(
                "pseudonyms",
                "warn",
                "annotator ids are stored as sent; set LABELWATCH_PSEUDONYM_KEY to store "
                "keyed pseudonyms instead",
            )
        )
    if _local_host(settings.web_host) != settings.web_host and settings.query_token is None:
        out.append(
            Finding(
                "web access",
                "warn",
                f"the worker listens on {settings.web_host} but /query and the dashboard "
                "answer loopback clients only; set LABELWATCH_QUERY_TOKEN to reach them "
                "from other hosts",
            )
        )
    return out


def check_kafka(settings: Settings, timeout_s: float) -> list[Finding]:
    """The broker answers, and labelwatch's topics exist with the configured partitions."""
    from kafka.errors import KafkaError

    from labelwatch.streams.topics import admin_client, wanted_topics

    try:
        admin = admin_client(settings, timeout_s)
    except KafkaError as exc:
        return [
            Finding(
                "kafka broker",
                "fail",
                f"cannot reach the broker at {settings.kafka_bootstrap} "
                f"({type(exc).__name__}). Is it running, is LABELWATCH_KAFKA_BOOTSTRAP right"
                ", and do the security settings (LABELWATCH_KAFKA_SECURITY_PROTOCOL, SASL) "
                "match the broker's listener? Locally: make broker",
            ),
            Finding("topics", "warn", "skipped: the broker is unreachable"),
        ]
    try:
        described = {
            str(t["name"]): t
            for t in admin.describe_topics()
            if not str(t["name"]).startswith("__")
        }
    except KafkaError as exc:
        admin.close()
        return [
            Finding(
                "kafka broker",
                "fail",
                f"the broker at {settings.kafka_bootstrap} answered but listing topics failed "
                f"({type(exc).__name__}): check the ACLs of labelwatch's user",
            )
        ]
    admin.close()
    out = [Finding("kafka broker", "ok", f"{settings.kafka_bootstrap} answers")]
    for topic in wanted_topics(settings):
        if topic not in described:
            out.append(
                Finding(
                    f"topic {topic}",
                    "warn",
                    "missing: the worker creates it when it starts (with "
                    f"{settings.topic_partitions} partitions), or run labelwatch topics create",
                )
            )
            continue
        partitions = len(described[topic]["partitions"])
        if partitions != settings.topic_partitions:
            out.append(
                Finding(
                    f"topic {topic}",
                    "warn",
                    f"has {partitions} partitions, LABELWATCH_TOPIC_PARTITIONS says "
                    f"{settings.topic_partitions}; at most {partitions} workers share it",
                )
            )
        else:
            out.append(Finding(f"topic {topic}", "ok", f"{partitions} partitions"))
    return out


def check_clickhouse(settings: Settings, *, worker_answers: bool = False) -> list[Finding]:
    """The store opens, answers, and has every migration applied. An embedded store that a
    worker on this host has open is left alone (chDB allows one process per store)."""
    from labelwatch.sinks.clickhouse import connect, database_name
    from labelwatch.sinks.migrations import applied_versions, current_version

    where = settings.redacted_dsn()
    if settings.embedded_store and worker_answers:
        return [
            Finding(
                "clickhouse",
                "ok",
                f"the embedded store {where} belongs to the running worker (one process per "
                "store); its readiness above covers it",
            )
        ]
    parts = urlsplit(settings.resolved_dsn())
    if parts.scheme == "chdb" and not Path(parts.path).exists():
        return [
            Finding(
                "clickhouse",
                "warn",
                f"the embedded store {where} does not exist yet: the worker creates it when "
                "it starts (or run labelwatch db migrate)",
            )
        ]
    try:
        client = connect(settings=settings)
    except Exception as exc:  # any driver error is the finding
        return [Finding("clickhouse", "fail", _store_problem(settings, where, exc))]
    try:
        version = client.command("SELECT version()")
        applied = applied_versions(client, database_name(settings))
    except Exception as exc:
        return [Finding("clickhouse", "fail", _store_problem(settings, where, exc))]
    finally:
        client.close()
    out = [Finding("clickhouse", "ok", f"{where} answers (ClickHouse {version})")]
    latest = current_version()
    missing = sorted(set(range(1, latest + 1)) - applied)
    if missing:
        out.append(
            Finding(
                "schema",
                "warn",
                f"migrations {', '.join(map(str, missing))} of {latest} are not applied: "
                "the worker applies them when it starts, or run labelwatch db migrate",
            )
        )
    else:
        out.append(Finding("schema", "ok", f"at version {latest}"))
    return out


def _store_problem(settings: Settings, where: str, exc: Exception) -> str:
    if settings.embedded_store:
        return (
            f"cannot open the embedded store {where} ({type(exc).__name__}). chDB lets one "
            "process open a store: if a worker is running, ask it instead (labelwatch query, "
            "or its dashboard)"
        )
    return (
        f"cannot reach ClickHouse at {where} ({type(exc).__name__}: "
        f"{_first_line(exc)}). Is the server running, and are the DSN's user, password and "
        "database right?"
    )


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def check_alertmanager(settings: Settings, timeout_s: float) -> list[Finding]:
    """Alertmanager's readiness endpoint, when alerts are pushed there."""
    if not settings.alertmanager_url:
        return []
    url = settings.alertmanager_url.rstrip("/") + "/-/ready"
    status, detail = _get(url, timeout_s)
    if status == 200:
        return [Finding("alertmanager", "ok", f"{settings.alertmanager_url} is ready")]
    return [
        Finding(
            "alertmanager",
            "fail",
            f"{settings.alertmanager_url} is not ready ({detail}); alerts wait in the "
            "worker's queue (LABELWATCH_NOTIFY_QUEUE_SIZE) and the oldest are dropped if it "
            "fills",
        )
    ]


def check_worker(settings: Settings, timeout_s: float) -> list[Finding]:
    """A worker answering on the configured web port, and whether it is ready."""
    base = f"http://{_local_host(settings.web_host)}:{settings.web_port}"
    status, detail = _get(base + "/ready", timeout_s)
    if status is None:
        return [
            Finding(
                "worker",
                "warn",
                f"no worker answers at {base} ({detail}); fine if none runs on this host",
            )
        ]
    try:
        report = json.loads(detail)
    except ValueError:
        return [
            Finding("worker", "fail", f"{base}/ready answered {status}: not a labelwatch worker?")
        ]
    if status == 200:
        return [
            Finding(
                "worker",
                "ok",
                f"{base} is ready, {report.get('partitions_assigned')} partitions assigned",
            )
        ]
    problems = "; ".join(report.get("problems") or ["no reason given"])
    return [Finding("worker", "fail", f"{base} is not ready: {problems}")]


def _get(url: str, timeout_s: float) -> tuple[int | None, str]:
    """(status, body) of a GET; (None, reason) when nothing answers."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None, f"not an http(s) URL: {url}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (checked)
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(reason)


def diagnose(settings: Settings, *, timeout_s: float = 5.0) -> list[Finding]:
    """Every check, in order."""
    findings = check_configuration(settings) + check_kafka(settings, timeout_s)
    worker = check_worker(settings, timeout_s)
    findings += worker
    answers = worker[0].status != "warn"  # warn: nothing answers
    findings += check_clickhouse(settings, worker_answers=answers)
    findings += check_alertmanager(settings, timeout_s)
    return findings


def render(findings: Sequence[Finding]) -> str:
    """The findings as aligned lines: status, check, detail."""
    width = max((len(f.check) for f in findings), default=0)
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    lines = [f"{marks[f.status]}  {f.check.ljust(width)}  {f.detail}" for f in findings]
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    lines.append(f"{failed} problem(s), {warned} warning(s)")
    return "\n".join(lines)


def as_json(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]
