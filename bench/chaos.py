"""Chaos benchmark: the full-size version of ``tests/chaos`` (same harness, same verifier).

A broker of its own (``scripts/local_kafka.py``, in a temporary directory) receives one
seeded ledger: the dog data set's labels ``--copies`` times over (new item and event ids per
copy, seeded shuffles), simulated privacy signals with a spike, poison messages of every kind
(two of about 1 MB) and re-sent duplicates. Then, each run with a consumer group, chDB store
and output topics of its own, over the same input topics:

- ``control``: uninterrupted; its tables are what every other run must end with;
- ``kill``: SIGKILLed ``--kills`` times at seeded random points (plus once right after an
  insert, before its commit); each restart's *recovery* is the time from the kill until
  the group commits again past where it stood;
- ``term``: three SIGTERM bounces (exit code and time to exit);
- ``outage``: ClickHouse inserts fail for ``--outage-seconds``; resident memory sampled
  every 0.5 s; *recovery* is the time from the end of the outage until the lag is 0;
- ``broker``: the broker is SIGKILLed mid-run and restarted on its data 10 s later.

For each run the verifier reports lost, duplicated and unexpected event ids, rows written
twice, poison messages missing from (or repeated in) the dead-letter topic, result tables
that differ from the control, and the consensus accuracy against truth.csv.

Usage: ``.venv/bin/python bench/chaos.py [--copies 12] [--kills 10] [--outage-seconds 600]
[--quick]``; prints a table, writes ``bench/results/chaos.json``; the last line of stdout is
a one-line JSON summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _support import script  # noqa: E402
from plots import plot_next_to  # noqa: E402

from tests.chaos.harness import (  # noqa: E402
    Ledger,
    Run,
    StoreView,
    base_env,
    build_ledger,
    prepare_topics,
    produce_ledger,
    rss_summary,
    settings_of,
    verify,
)

RESULTS = REPO / "bench" / "results" / "chaos.json"
PARTITIONS = 3
# Every run started, so that a failure part-way leaves no worker behind.
RUNS: list[Run] = []


def new_run(name: str, env: dict[str, str], directory: Path) -> Run:
    run = Run.new(name, env, directory)
    RUNS.append(run)
    return run


def log(message: str) -> None:
    print(f"[chaos] {message}", file=sys.stderr, flush=True)


def finish(run: Run, timeout_s: float = 1800) -> float:
    took = run.wait_done(timeout_s)
    code, _ = run.stop()
    if code != 0:
        raise RuntimeError(f"{run.name}: worker exited {code}")
    return took


def control_run(env: dict[str, str], root: Path) -> tuple[Run, float]:
    run = new_run("control", env, root / "control")
    started = time.monotonic()
    run.start()
    finish(run)
    return run, time.monotonic() - started


def kill_run(
    env: dict[str, str], root: Path, ledger: Ledger, kills: int, seed: int
) -> tuple[Run, dict[str, Any]]:
    rng = random.Random(seed)
    run = new_run("kill", env, root / "kill")
    total = len(ledger.records)
    recoveries = []
    started = time.monotonic()
    run.start(CHAOS_KILL_AFTER_INSERTS="3")
    run.worker.process.wait(300)  # type: ignore[union-attr]
    run.events.append("killed itself after insert 3")
    run.worker = None
    run.start()
    for fraction in sorted(rng.uniform(0.05, 0.9) for _ in range(kills)):
        run.wait_progress(int(fraction * total), timeout_s=900)
        time.sleep(rng.uniform(0.0, 1.5))
        lag_at_kill = run.lag()
        killed_at = time.monotonic()
        run.kill()
        run.start()
        while 0 < lag_at_kill <= run.lag() or run.lag() < 0:
            time.sleep(0.2)
        recoveries.append(time.monotonic() - killed_at)
        log(f"kill {len(recoveries)}/{kills}: committing again after {recoveries[-1]:.1f} s")
    finish(run)
    return run, {
        "kills": kills + 1,
        "seconds": time.monotonic() - started,
        "recovery_s": recoveries,
    }


def term_run(env: dict[str, str], root: Path, ledger: Ledger) -> tuple[Run, dict[str, Any]]:
    run = new_run("term", env, root / "term")
    total = len(ledger.records)
    exits = []
    run.start()
    for fraction in (0.2, 0.45, 0.7):
        run.wait_progress(int(fraction * total), timeout_s=900)
        code, seconds = run.stop()
        exits.append({"code": code, "seconds": seconds})
        run.start()
    finish(run)
    return run, {"exits": exits}


def outage_run(
    env: dict[str, str], root: Path, ledger: Ledger, outage_s: float
) -> tuple[Run, dict[str, Any]]:
    run = new_run("outage", env, root / "outage")
    fail_file = run.directory / "clickhouse-down"
    stop = threading.Event()
    run.start(CHAOS_SINK_FAIL_FILE=str(fail_file))
    sampler = run.sample_rss(stop)
    try:
        run.wait_progress(len(ledger.records) // 5, timeout_s=900)
        before = list(run.rss_samples)
        fail_file.touch()
        outage_started = time.monotonic()
        time.sleep(3)
        lag_start = run.lag()
        mark = len(run.rss_samples)
        while time.monotonic() - outage_started < outage_s:
            time.sleep(1)
            if run.worker is None or run.worker.process.poll() is not None:
                raise RuntimeError("worker died during the outage")
        lag_end = run.lag()
        during = run.rss_samples[mark:]
        fail_file.unlink()
        ended = time.monotonic()
        recovery = run.wait_done(1800, restart_if_dead=False)
        code, _ = run.stop()
    finally:
        stop.set()
        sampler.join()
    return run, {
        "outage_s": outage_s,
        "lag_at_outage_start": lag_start,
        "lag_at_outage_end": lag_end,
        "rss_before": rss_summary(before),
        "rss_during": rss_summary(during),
        "recovery_s": recovery,
        "exit_code": code,
        "since_outage_end_s": time.monotonic() - ended,
    }


def broker_run(
    env: dict[str, str], root: Path, ledger: Ledger, kafka: Any, broker_dir: Path
) -> tuple[Run, dict[str, Any]]:
    run = new_run("broker", env, root / "broker-run")
    run.start()
    run.wait_progress(len(ledger.records) // 3, timeout_s=900)
    kafka.kill(run_dir=broker_dir)
    run.events.append("broker kill -9")
    down_at = time.monotonic()
    time.sleep(10)
    kafka.restart(run_dir=broker_dir, timeout=180.0)
    run.events.append("broker restarted")
    recovery = run.wait_done(1800)
    code, _ = run.stop()
    return run, {
        "recovery_s": recovery,
        "since_broker_kill_s": time.monotonic() - down_at,
        "worker_starts": run.starts,
        "exit_code": code,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=12, help="copies of the dog data set")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--outage-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--quick", action="store_true", help="2 copies, 3 kills, 30 s outage")
    args = parser.parse_args(argv)
    if args.quick:
        args.copies, args.kills, args.outage_seconds = 2, 3, 30.0

    kafka = script("local_kafka")
    with tempfile.TemporaryDirectory(prefix="labelwatch-chaos-") as tmp:
        root = Path(tmp)
        broker_dir = root / "broker"
        broker_dir.mkdir()
        state = kafka.start(run_dir=broker_dir, port=0, timeout=180.0)
        try:
            ledger = build_ledger(
                args.datasets, copies=args.copies, seed=args.seed, partitions=PARTITIONS
            )
            env = base_env(str(state["bootstrap"]), f"bench{args.seed}", PARTITIONS)
            prepare_topics(env)
            produce_ledger(settings_of(env), ledger)
            log(f"ledger: {ledger.counts()}")

            control, control_s = control_run(env, root)
            control_verdict, control_view = verify(ledger, control, None)
            log(f"control: {control_s:.0f} s, {control_verdict.as_dict()}")
            runs: dict[str, tuple[Run, dict[str, Any]]] = {}
            runs["kill"] = kill_run(env, root, ledger, args.kills, args.seed)
            runs["term"] = term_run(env, root, ledger)
            runs["outage"] = outage_run(env, root, ledger, args.outage_seconds)
            runs["broker"] = broker_run(env, root, ledger, kafka, broker_dir)
            report = summarize(ledger, control_verdict.as_dict(), control_s, control_view, runs)
        finally:
            for run in RUNS:
                if run.worker is not None and run.worker.process.poll() is None:
                    run.kill()
            kafka.stop(run_dir=broker_dir)
    report["parameters"] = vars(args) | {"datasets": str(args.datasets)}
    print_table(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str) + "\n")
    plot_next_to(RESULTS, report, "chaos")
    print(json.dumps(report["summary"]))
    return 0 if report["summary"]["all_ok"] else 1


def summarize(
    ledger: Ledger,
    control: dict[str, Any],
    control_s: float,
    control_view: StoreView,
    runs: dict[str, tuple[Run, dict[str, Any]]],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ledger": ledger.counts(),
        "events": len(ledger.records),
        "control": control | {"seconds": control_s},
        "runs": {},
    }
    for name, (run, extra) in runs.items():
        verdict, _ = verify(ledger, run, control_view)
        out["runs"][name] = verdict.as_dict() | extra | {"harness": run.events}
    all_runs = [out["control"], *out["runs"].values()]
    accuracy = control["accuracy"]
    outage = out["runs"]["outage"]
    out["summary"] = {
        "events": len(ledger.records),
        "kills": out["runs"]["kill"]["kills"],
        "lost": sum(r["lost"] for r in all_runs),
        "duplicated": sum(r["duplicated"] + r["raw_extra_rows"] for r in all_runs),
        "tables_differing": sum(len(r["tables_differing"]) for r in all_runs),
        "max_accuracy_delta_points": max(
            abs((r["accuracy"] or 0) - accuracy) * 100 for r in all_runs
        ),
        "outage_rss_growth_mb": outage["rss_during"].get("rss_max_mb", 0)
        - outage["rss_during"].get("rss_min_mb", 0),
        "outage_recovery_s": outage["recovery_s"],
        "kill_recovery_s_max": max(out["runs"]["kill"]["recovery_s"] or [0]),
        "all_ok": all(r["ok"] for r in all_runs),
    }
    return out


def print_table(report: dict[str, Any]) -> None:
    print(f"ledger: {report['events']} messages {report['ledger']}")
    print(
        "| run | lost | duplicated | rows written twice | dead letters missing / repeated | tables differing | accuracy | notes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = {"control": report["control"], **report["runs"]}
    for name, r in rows.items():
        notes = ""
        if name == "control":
            notes = f"{r['seconds']:.0f} s"
        elif name == "kill":
            rec = r["recovery_s"]
            notes = f"{r['kills']} kills; committing again after max {max(rec or [0]):.1f} s"
        elif name == "term":
            notes = "exits " + ", ".join(f"{e['code']} in {e['seconds']:.1f} s" for e in r["exits"])
        elif name == "outage":
            notes = (
                f"{r['outage_s']:.0f} s outage; lag {r['lag_at_outage_start']} -> {r['lag_at_outage_end']}; "
                f"RSS {r['rss_during'].get('rss_min_mb', 0):.0f}-{r['rss_during'].get('rss_max_mb', 0):.0f} MB; "
                f"lag 0 {r['recovery_s']:.0f} s after"
            )
        elif name == "broker":
            notes = f"lag 0 {r['since_broker_kill_s']:.0f} s after the broker kill; worker starts {r['worker_starts']}"
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        print(
            f"| {name} | {r['lost']} | {r['duplicated']} | {r['raw_extra_rows']} | "
            f"{r['dead_letters_missing']} / {r['dead_letters_repeated']} | "
            f"{', '.join(r['tables_differing']) or 0} | {acc} | {notes} |"
        )


if __name__ == "__main__":
    sys.exit(main())
