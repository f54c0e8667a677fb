"""Command line: ``labelwatch worker | demo | simulate | query | db migrate | schema export | ...``.

Every command reads its configuration from :class:`labelwatch.settings.Settings`
(``LABELWATCH_*`` environment variables); flags only choose what to do.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labelwatch.logs import LogFormat
from labelwatch.logs import configure as configure_logging
from labelwatch.settings import Settings

log = logging.getLogger("labelwatch")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        sys.exit(f"labelwatch: invalid configuration:\n{configuration_errors(exc)}")


def _log_format() -> LogFormat:
    """LABELWATCH_LOG_FORMAT, or text while the configuration is invalid (the command then
    reports what is wrong with it)."""
    try:
        return Settings().log_format
    except ValidationError:
        return "text"


def configuration_errors(exc: ValidationError) -> str:
    """One line per invalid setting: its variable and what is wrong, never the value given
    (pydantic's own message repeats the input, which for a secret is the secret)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in error["loc"])
        name = f"LABELWATCH_{field.upper()}" if field else "configuration"
        lines.append(f"  {name}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def cmd_worker(args: argparse.Namespace) -> int:
    from labelwatch.streams.worker import run_worker

    return run_worker(_settings())


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from labelwatch.sinks.clickhouse import connect, database_name
    from labelwatch.sinks.migrations import current_version, migrate

    settings = _settings()
    client = connect(settings=settings)
    try:
        applied = migrate(client, database_name(settings), settings.retention())
    finally:
        client.close()
    for migration in applied:
        print(f"applied {migration.version:04d} {migration.name}")
    print(f"{settings.redacted_dsn()} is at schema version {current_version()}")
    return 0


def stored_annotator_id(settings: Settings, raw_id: str) -> str:
    """The id under which labelwatch stores ``raw_id``: its pseudonym when a key is set."""
    from labelwatch.schemas.pseudonym import Pseudonymizer

    key = settings.pseudonym_key
    return raw_id if key is None else Pseudonymizer(key.get_secret_value().encode())(raw_id)


def cmd_db_purge(args: argparse.Namespace) -> int:
    from labelwatch.sinks.clickhouse import connect, database_name
    from labelwatch.sinks.purge import purge_annotator

    settings = _settings()
    stored = args.annotator if args.stored_id else stored_annotator_id(settings, args.annotator)
    client = connect(settings=settings)
    try:
        report = purge_annotator(client, database_name(settings), stored, delete=args.yes)
    finally:
        client.close()
    verb = "deleted" if report.deleted else "found (dry run: add --yes to delete)"
    for table, n in report.rows.items():
        print(f"{table:<24}{n:>10}")
    print(f"{report.total} rows {verb} for annotator {stored}")
    return 0


def cmd_pseudonym(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.pseudonym_key is None:
        print(
            "labelwatch pseudonym: LABELWATCH_PSEUDONYM_KEY is not set; ids are stored as sent",
            file=sys.stderr,
        )
        return 2
    for raw in args.ids:
        print(f"{raw}\t{stored_annotator_id(settings, raw)}")
    return 0


def cmd_schema_export(args: argparse.Namespace) -> int:
    from labelwatch.schemas import dump_json_schemas

    text = dump_json_schemas() + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from labelwatch.streams.topics import ensure_topics

    created = ensure_topics(_settings())
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from labelwatch.progress import counted, stderr_bars
    from labelwatch.simulator import (
        BEHAVIOURS,
        LabelingSimulator,
        SimulationConfig,
        encode_event,
        kafka_batches,
        kafka_records,
        malformed_messages,
        write_replay_files,
    )

    stages = stderr_bars(enabled=not args.no_progress)
    behaviours: dict[str, int] = {}
    for spec in args.inject or []:
        kind, _, count = spec.partition("=")
        if kind not in BEHAVIOURS or not count.isdigit():
            print(
                f"labelwatch simulate: --inject {spec!r}: expected KIND=COUNT with KIND one of "
                f"{', '.join(BEHAVIOURS)}",
                file=sys.stderr,
            )
            return 2
        behaviours[kind] = int(count)
    config = SimulationConfig(seed=args.seed, run_id=args.run_id, behaviours=behaviours)
    if args.to_file:
        return _simulate_to_file(args, behaviours)
    sim = LabelingSimulator(config)
    start = datetime.now(UTC)
    if args.to_dir:
        directory = Path(args.to_dir)
        write_replay_files(sim.labels(start), args.events, directory, stages=stages)
        print(
            f"wrote {args.events} labels to {directory}/labels.csv (+ truth.csv, annotators.json)"
        )
        return 0

    from labelwatch.streams.produce import produce
    from labelwatch.streams.topics import ensure_topics

    settings = _settings()
    ensure_topics(settings)
    bad = malformed_messages(args.seed, args.bad, max_message_bytes=settings.max_message_bytes)
    with stages("producing", args.events, " labels") as advance:
        records = kafka_records(counted(sim.labels(start), advance), args.events, bad)
        if args.batch > 1:
            records = kafka_batches(records, args.batch, settings.topic_partitions)
        sent = produce(settings, settings.topic_labels, records, rate=args.rate)
    print(f"sent {sent} messages ({args.bad} malformed) to {settings.topic_labels}")
    if args.privacy:
        now = datetime.now(UTC)
        made, _ = _privacy_signals(args, now - timedelta(hours=args.hours), now, stages)
        keyed = [(str(e["project"]).encode(), encode_event(e)) for e, _ in made]
        sent = produce(settings, settings.topic_privacy, keyed)
        print(f"sent {sent} privacy signals over {args.hours:g} h to {settings.topic_privacy}")
    return 0


def _privacy_signals(
    args: argparse.Namespace, start: datetime, end: datetime, stages: Any
) -> tuple[list[tuple[dict[str, object], str | None]], list[dict[str, object]]]:
    """Simulated privacy signals from ``start`` to ``end`` with ``args.spikes`` rate spikes
    and ``args.exposures`` critical exposures: (event, incident name) pairs and the incidents
    described for a ground-truth file."""
    from labelwatch.privacy_simulator import (
        PrivacySimulationConfig,
        PrivacySimulator,
        SpikeIncident,
    )
    from labelwatch.progress import counted

    privacy = PrivacySimulator(PrivacySimulationConfig(seed=args.seed, run_id=f"{args.run_id}-p"))
    warmup = min(7200.0, (end - start).total_seconds() / 3)
    incidents = privacy.random_incidents(
        start, end, args.spikes, args.exposures, warmup_seconds=warmup
    )
    with stages("privacy signals", None, " signals") as advance:
        made = [
            (s.event, s.incident) for s in counted(privacy.signals(start, end, incidents), advance)
        ]
    described: list[dict[str, object]] = []
    for incident in incidents:
        if isinstance(incident, SpikeIncident):
            described.append(
                {
                    "name": incident.name,
                    "type": "spike",
                    "project": incident.project,
                    "kind": incident.kind,
                    "start": incident.start.isoformat(),
                    "end": incident.end.isoformat(),
                    "factor": incident.factor,
                }
            )
        else:
            described.append(
                {
                    "name": incident.name,
                    "type": "exposure",
                    "project": incident.project,
                    "ts": incident.ts.isoformat(),
                    "annotator_id": incident.annotator_id,
                    "item_id": incident.item_id,
                    "severity": incident.severity,
                }
            )
    return made, described


def _simulate_to_file(args: argparse.Namespace, behaviours: dict[str, int]) -> int:
    from labelwatch.progress import stderr_bars
    from labelwatch.simulator import LabelingSimulator, SimulationConfig, write_mixed_file

    if args.hours <= 0 or args.events <= 0:
        print("labelwatch simulate: --events and --hours must be positive", file=sys.stderr)
        return 2
    config = SimulationConfig(
        seed=args.seed,
        run_id=args.run_id,
        behaviours=behaviours,
        events_per_second=args.events / (args.hours * 3600.0),
    )
    stages = stderr_bars(enabled=not args.no_progress)

    def signals(
        start: datetime, end: datetime
    ) -> tuple[list[tuple[dict[str, object], str | None]], list[dict[str, object]]]:
        return _privacy_signals(args, start, end, stages)

    path = Path(args.to_file)
    truth = write_mixed_file(
        LabelingSimulator(config).labels(datetime.now(UTC)),
        args.events,
        path,
        signals=signals,
        revocations=args.revocations,
        seed=args.seed,
        stages=stages,
    )
    print(
        f"wrote {truth['labels']} labels and {truth['signals']} privacy signals over "
        f"{args.hours:g} h to {path} (ground truth: {path}.truth.json)"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from labelwatch.demo import print_summary, run_demo

    summary = run_demo(_settings(), seconds=args.seconds, rate=args.rate, seed=args.seed)
    print_summary(summary, as_json=args.json)
    return 0 if summary["ok"] else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from labelwatch.progress import stderr_bars
    from labelwatch.replay import (
        ReplayInputError,
        annotator_table,
        count_events,
        is_event_file,
        ordered,
        read_events,
        read_labels,
        read_truth,
        replay,
        replay_events,
        summary,
    )

    settings = _settings()
    stages = stderr_bars(enabled=not args.no_progress)
    path = Path(args.labels)
    try:
        truth = read_truth(Path(args.truth)) if args.truth else None
        if is_event_file(path):
            if args.shuffle is not None:
                print("labelwatch replay: --shuffle applies to CSV input only", file=sys.stderr)
                return 2
            with stages("reading", count_events(path), " events") as advance:
                events = read_events(
                    path, max_line_bytes=settings.max_message_bytes, progress=advance
                )
            result = replay_events(
                events,
                monitor_config=settings.monitor_config(),
                privacy_config=settings.privacy_config(),
                stages=stages,
            )
        else:
            with stages("reading", count_events(path), " labels") as advance:
                rows = ordered(read_labels(path, progress=advance), args.shuffle)
            with stages("models", len(rows), " labels") as advance:
                result = replay(rows, monitor_config=settings.monitor_config(), progress=advance)
    except (ReplayInputError, OSError) as exc:
        print(f"labelwatch replay: {exc}", file=sys.stderr)
        return 2
    report = summary(result, truth)
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    order = "file order" if args.shuffle is None else f"shuffle seed {args.shuffle}"
    signals = f" and {report['privacy_signals']} privacy signals" if result.signals else ""
    print(
        f"replayed {report['labels']} labels{signals} ({order}): {report['items']} items, "
        f"{report['annotators']} annotators, {report['labels_per_second']:,.0f} labels/s"
    )
    if truth:
        print(f"consensus accuracy     {report['accuracy']:.4f}")
        print(f"majority-vote accuracy {report['majority_vote_accuracy']:.4f}")
    print(f"\n{'least reliable annotators':<30}{'labels':>8}{'accuracy':>10}  90% interval")
    for r in annotator_table(result):
        print(
            f"{r['annotator'][:29]:<30}{r['labels']:>8}{r['accuracy']:>10.3f}"
            f"  [{r['low']:.3f}, {r['high']:.3f}]"
        )
    opened = [a for a in report["alerts"] if a["state"] == "opened"]
    others = Counter(a["state"] for a in report["alerts"] if a["state"] != "opened")
    print(
        f"\nalerts opened: {len(opened)} "
        f"({others['updated']} updated, {others['resolved']} resolved)"
    )
    for a in opened[: args.alerts]:
        print(
            f"  at line {a['at_event']:>7}  {a['kind']:<20} {a['subject'][:24]:<24} {a['reason']}"
        )
    if len(opened) > args.alerts:
        print(f"  ... {len(opened) - args.alerts} more (--json lists all)")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from labelwatch.query import query
    from labelwatch.sinks.clickhouse import database_name
    from labelwatch.sinks.query import (
        SAVED_QUERIES,
        QueryError,
        format_csv,
        format_json,
        format_table,
        saved_query,
    )

    if args.list:
        for q in SAVED_QUERIES:
            usage = " ".join(f"--param {k}={v or '...'}" for k, v in q.parameters.items())
            print(f"{q.name:<22}{q.question}" + (f"  [{usage}]" if usage else ""))
        return 0
    if not args.sql:
        print("labelwatch query: give SQL or a saved query's name (--list)", file=sys.stderr)
        return 2
    settings = _settings()
    params: dict[str, str] = {}
    sql = args.sql
    saved = saved_query(args.sql)
    if saved is not None:
        sql = saved.render(database_name(settings))
        params.update(saved.parameters)
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"labelwatch query: --param {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        params[name] = value
    try:
        result = query(settings, sql, params, via=args.via)
    except QueryError as exc:
        print(f"labelwatch query: {exc}", file=sys.stderr)
        return 2
    formatter = {"table": format_table, "csv": format_csv, "json": format_json}[args.format]
    text = formatter(result)
    if text:
        print(text)
    if result.truncated and args.format != "table":
        print(f"labelwatch query: cut at {len(result.rows)} rows", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from labelwatch.replay import ReplayInputError
    from labelwatch.report import live_report, render_markdown, replay_report, write_report
    from labelwatch.sinks.query import QueryError

    if args.shuffle is not None and not args.replay:
        print("labelwatch report: --shuffle needs --replay", file=sys.stderr)
        return 2
    settings = _settings()
    try:
        if args.replay:
            report = replay_report(
                settings, Path(args.replay), args.project, args.since, args.until, args.shuffle
            )
        else:
            report = live_report(settings, args.project, args.since, args.until)
    except (ReplayInputError, QueryError, ValueError, OSError) as exc:
        print(f"labelwatch report: {exc}", file=sys.stderr)
        return 2
    print(render_markdown(report), end="")
    out = Path(args.out)
    written = write_report(report, out, args.format)
    print(f"wrote {', '.join(p.name for p in written)} to {out}", file=sys.stderr)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_markdown())
        return 0
    settings = _settings()
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name == "clickhouse_dsn":
            value = settings.redacted_dsn()
        print(f"{name} = {value}")
    return 0


def settings_markdown() -> str:
    """The configuration table for the README, generated from the settings' descriptions."""
    lines = ["| variable | default | description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, dict):
            default = json.dumps(default)
        shown = "" if default is None else f"`{default}`"
        lines.append(f"| `LABELWATCH_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    from labelwatch.doctor import Finding, as_json, diagnose, render

    # kafka-python logs every failed connection attempt; the findings say it once, plainly.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings()
    except ValidationError as exc:
        findings = [Finding("configuration", "fail", configuration_errors(exc).strip())]
    else:
        findings = diagnose(settings, timeout_s=args.timeout)
    print(json.dumps(as_json(findings), indent=1) if args.json else render(findings))
    return 1 if any(f.status == "fail" for f in findings) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelwatch", description="Streaming quality monitor for human data labeling."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="run the stream worker (Faust) until SIGTERM")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("demo", help="bounded run: broker -> worker -> ClickHouse, then a summary")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to produce events")
    p.add_argument("--rate", type=float, default=200.0, help="events per second to produce")
    p.add_argument("--seed", type=int, default=1, help="simulator seed")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line last")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="produce simulated labeling events to the labels topic")
    p.add_argument("--events", type=int, default=10_000, help="number of valid events")
    p.add_argument("--rate", type=float, default=None, help="events per second (default: max)")
    p.add_argument("--seed", type=int, default=1, help="simulator seed")
    p.add_argument("--bad", type=int, default=0, help="malformed messages to interleave")
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help="send batched envelopes of up to N events per message (default: one event each; "
        "--rate then counts messages)",
    )
    p.add_argument("--run-id", default="sim", help="prefix of the generated event ids")
    p.add_argument(
        "--inject",
        action="append",
        metavar="KIND=COUNT",
        help="add annotators with a behaviour: drifter, spammer_constant, spammer_random, "
        "spammer_fast, colluder (pairs); repeatable",
    )
    p.add_argument(
        "--to-dir",
        metavar="DIR",
        help="write replay files (labels.csv, truth.csv, annotators.json) instead of producing",
    )
    p.add_argument(
        "--to-file",
        metavar="PATH",
        help="write one JSONL file of mixed labels and privacy signals (for labelwatch replay) "
        "and PATH.truth.json with the injected incidents, instead of producing",
    )
    p.add_argument(
        "--hours",
        type=float,
        default=6.0,
        help="--to-file: event-time span of the file; --privacy: of the signals",
    )
    p.add_argument(
        "--privacy",
        action="store_true",
        help="also produce privacy signals of the last --hours (with --spikes and "
        "--exposures) to the privacy topic",
    )
    p.add_argument(
        "--spikes", type=int, default=3, help="--to-file, --privacy: 5x privacy rate spikes"
    )
    p.add_argument(
        "--exposures", type=int, default=3, help="--to-file, --privacy: critical PII exposures"
    )
    p.add_argument(
        "--revocations",
        type=int,
        default=5,
        help="--to-file: items revoked while still being labeled",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr (there is none when stderr is not a terminal)",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "replay", help="run the online models over a labels CSV or a mixed JSONL file, no Kafka"
    )
    p.add_argument(
        "labels",
        help="CSV with item,annotator,label[,gold,duration_ms,ts,project], or a .jsonl file of "
        'mixed events ({"type": "label" | "privacy_signal", ...} per line)',
    )
    p.add_argument("--truth", help="CSV with item,label ground truth, for accuracy")
    p.add_argument("--shuffle", type=int, default=None, metavar="SEED", help="seeded shuffle")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--alerts", type=int, default=20, help="alerts to list (text output)")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr (there is none when stderr is not a terminal)",
    )
    p.set_defaults(func=cmd_replay)

    db = sub.add_parser("db", help="ClickHouse schema").add_subparsers(dest="db", required=True)
    p = db.add_parser("migrate", help="create or update tables (idempotent, versioned)")
    p.set_defaults(func=cmd_db_migrate)
    p = db.add_parser(
        "purge",
        help="erase every stored row about one annotator (right to erasure)",
        description=(
            "Count, and with --yes delete, every stored row about one annotator: labels, "
            "privacy signals, reliability snapshots, aggregates, alerts, and the model "
            "checkpoints that mention them. Give the id the platform uses; with "
            "LABELWATCH_PSEUDONYM_KEY set it is turned into the stored pseudonym. Stop the "
            "workers first."
        ),
    )
    p.add_argument("--annotator", required=True, metavar="ID", help="the annotator's raw id")
    p.add_argument(
        "--stored-id",
        action="store_true",
        help="ID is already the stored id (a pseudonym): do not pseudonymize it",
    )
    p.add_argument("--yes", action="store_true", help="delete (without it: count only)")
    p.set_defaults(func=cmd_db_purge)

    p = sub.add_parser(
        "pseudonym",
        help="print the stored id (pseudonym) of raw annotator ids; needs the key",
    )
    p.add_argument("ids", nargs="+", metavar="RAW_ID")
    p.set_defaults(func=cmd_pseudonym)

    schema = sub.add_parser("schema", help="event schemas").add_subparsers(
        dest="schema", required=True
    )
    p = schema.add_parser("export", help="print the JSON Schema of the input events")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_schema_export)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="topics", required=True
    )
    p = topics.add_parser("create", help="create labelwatch's topics if missing")
    p.set_defaults(func=cmd_topics_create)

    p = sub.add_parser(
        "query",
        help="read-only SQL on the store (through the running worker with chDB)",
        description=(
            "Run read-only SQL, or a saved query by name, and print the result. With the "
            "embedded store the query goes through the running worker's /query endpoint "
            "(or opens the store when no worker runs); with a server it connects directly."
        ),
    )
    p.add_argument("sql", nargs="?", help="SQL, or the name of a saved query (see --list)")
    p.add_argument("--list", action="store_true", help="list the saved queries")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a query parameter, used as {NAME:Type} in the SQL",
    )
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument(
        "--via",
        choices=("auto", "worker", "direct"),
        default="auto",
        help="force the worker endpoint or a direct connection",
    )
    p.set_defaults(func=cmd_query)

    p = sub.add_parser(
        "report",
        help="root-cause report of one project (agreement, confusion, attribution, "
        "pre-labels, alerts, review queue) as Markdown and HTML",
        description=(
            "Print a root-cause report of one project over a time window as Markdown, and "
            "write it to DIR as report.md (with its plots as .svg files) and a self-contained "
            "report.html. The data comes from the store (through the running worker with "
            "chDB), or from a replay of a file through the worker's models into a temporary "
            "store. Durations count back from the project's newest label."
        ),
    )
    p.add_argument("--project", required=True, help="the project to report on")
    p.add_argument(
        "--since",
        default="7d",
        help="window start: a duration before its end (7d, 24h, 90m, 2w) or an ISO date/time "
        "(UTC unless given); default 7d",
    )
    p.add_argument(
        "--until",
        default=None,
        help="window end: a duration before the newest label, or an ISO date/time; default "
        "the project's newest label",
    )
    p.add_argument("--out", default="labelwatch-report", metavar="DIR", help="output directory")
    p.add_argument(
        "--replay",
        metavar="FILE",
        help="report on a replay of FILE (a labels CSV or a JSONL file of label events) "
        "instead of the store",
    )
    p.add_argument(
        "--shuffle",
        type=int,
        default=None,
        metavar="SEED",
        help="--replay of a CSV: seeded shuffle",
    )
    p.add_argument(
        "--format", choices=("md", "html", "both"), default="both", help="files to write"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("config", help="print the effective configuration (secrets masked)")
    p.add_argument("--markdown", action="store_true", help="print the README's config table")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "doctor",
        help="check configuration, broker, topics, ClickHouse, Alertmanager and a running "
        "worker; say what is wrong in plain words (exit 1 if anything fails)",
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per network check")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(_log_format(), logging.INFO, sys.stderr)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
