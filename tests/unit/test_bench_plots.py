"""bench/plots.py: every benchmark's plot is written from a result of the shape its JSON has.

The results below are small, made-up dicts with the keys the benchmarks write (bench/results
is not in git, so the tests never read it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _bench(name: str) -> ModuleType:
    """A bench script as a module (bench is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plots = _bench("plots")

LATENCY_STATS = {
    "count": 2800,
    "not_seen": 0,
    "p50_ms": 80.5,
    "p90_ms": 145.4,
    "p99_ms": 1590.1,
    "max_ms": 1597.4,
    "mean_ms": 823.4,
    "p99_under_target": True,
    "lower_bound": {"p50_ms": 80.4, "p99_ms": 1584.6, "max_ms": 1590.8},
}

SHARED_SUMMARY = {"injected": 8, "detected": 5, "detection_rate": 0.625, "median_delay": 18}

PRIVACY_SPIKES = {
    "injected": 6,
    "detected_within_2": 4,
    "share_within_2": 0.667,
    "detected_at_all": 5,
    "median_delay": 0.8,
    "p90_delay": 1.8,
}


def _privacy_detector(false_per_day: float) -> dict[str, Any]:
    bands = {
        "0-1": dict(PRIVACY_SPIKES, share_within_2=0.2),
        "5-15": dict(PRIVACY_SPIKES),
        "15-inf": dict(PRIVACY_SPIKES, share_within_2=None, injected=0),
    }
    return {
        "false_alarms_per_day_stationary": false_per_day,
        "false_alarms_per_day_with_spikes": false_per_day * 1.1,
        "spikes": PRIVACY_SPIKES,
        "bands": bands,
    }


def _spike(delay: float | None) -> dict[str, Any]:
    return {
        "project": "animals",
        "kind": "redaction_failed",
        "start": "2026-01-05T05:49:52+00:00",
        "windows": 4.0,
        "rate_at_start": 1.05,
        "delay_windows": delay,
        "within_2": delay is not None and delay <= 2,
        "openings": 1,
    }


def _chaos_run(**extra: Any) -> dict[str, Any]:
    return {
        "lost": 0,
        "duplicated": 0,
        "unexpected": 0,
        "raw_extra_rows": 0,
        "dead_letters_missing": 0,
        "dead_letters_repeated": 0,
        "tables_differing": [],
        "accuracy": 0.8399,
        "ok": True,
        **extra,
    }


RESULTS: dict[str, dict[str, Any]] = {
    "throughput": {
        "summary": {"events": 100000, "events_per_second": 1770.6, "ratio": 0.39},
        "bare_faust": {"events": 100000, "seconds": 21.8, "events_per_second": 4583.2},
        "worker": {"events": 100000, "seconds": 56.5, "events_per_second": 1770.6},
        "worker_batched": {
            "events": 100000,
            "events_per_second": 2929.3,
            "events_per_envelope": 1000,
        },
        "latency": {
            "2000": {
                "rate": 2000.0,
                "achieved_rate": 1999.8,
                "events": 40000,
                "p50_event_to_clickhouse_ms": 2430.7,
                "p99_event_to_clickhouse_ms": 3257.9,
                "p50_event_to_alert_clickhouse_ms": 2381.8,
                "p99_event_to_alert_clickhouse_ms": 3268.3,
                "p99_event_to_alertmanager_ms": None,  # a quick run can miss a path
                "target_met": False,
            }
        },
        "quick": True,
        "measured": "2026-11-22T10:16:27.207286+00:00",
    },
    "alert_latency": {
        "date": "2026-11-22T10:16:21+00:00",
        "machine": "x86_64 2 cpus, CPython 3.11.7",
        "rate": 2000.0,
        "seconds": 20.0,
        "achieved_rate": 1999.1,
        "through_clickhouse_rate": 1994.2,
        "target_p99_ms": 2000.0,
        "latency": {
            "event_to_clickhouse": LATENCY_STATS,
            "event_to_alert_clickhouse": dict(LATENCY_STATS, count=90),
            "event_to_alertmanager": dict(LATENCY_STATS, count=80, p99_ms=None),
        },
        "event_to_clickhouse_by_5s": [
            {"from_s": 5.0, "n": 9000, "p50_ms": 400.1, "p99_ms": 900.3, "max_ms": 990.0},
            {"from_s": 10.0, "n": 9100, "p50_ms": 420.4, "p99_ms": 1300.7, "max_ms": 1390.2},
        ],
    },
    "consensus_accuracy": {
        "date": "2026-11-22T01:59:24+00:00",
        "machine": "x86_64, Python 3.11.7",
        "datasets": {
            name: {
                "labels": 4212,
                "runs": [
                    {
                        "seed": s,
                        "accuracy": acc,
                        "majority_vote_accuracy": 0.76,
                        "labels_per_second": 1.1e5,
                    }
                    for s, acc in ((1, 0.898), (2, 0.889), (3, 0.901))
                ],
                "median_accuracy": 0.898,
                "file_order_accuracy": 0.889,
                "median_labels_per_second": 191109.5,
                "crowdkit": {
                    "MajorityVote": {
                        "accuracy": 0.759,
                        "seconds": 0.016,
                        "labels_per_second": 262840.0,
                    },
                    "DawidSkene": {
                        "accuracy": 0.889,
                        "seconds": 0.068,
                        "labels_per_second": 61710.2,
                    },
                    "GLAD": {"accuracy": 0.722, "seconds": 7.0, "labels_per_second": 600.4},
                },
                "meets_ds_target": True,
                "meets_mv_target": True,
            }
            for name in ("duck", "product")
        },
        "product_speedup_vs_dawid_skene": 26.3,
        "min_labels_per_second": 127063.2,
    },
    "decode": {
        "events": 1000,
        "decode_events_per_second": 89008.1,
        "decode_us_per_event": 11.23,
        "row_us_per_event": 0.66,
        "machine": "x86_64 CPython 3.11.7",
        "date": "2026-11-22",
    },
    "drift_detection": {
        "date": "2026-11-22T03:50:53+00:00",
        "machine": "x86_64  python 3.11.7",
        "seeds": [1],
        "simulated": {
            "drift": {"injected": 8, "detected": 8, "detection_rate": 1.0, "median_delay": 24.5},
            "adwin": {"injected": 8, "detected": 0, "detection_rate": 0.0, "median_delay": None},
            "false_alarms_per_10000": 0.5,
            "adwin_false_alarms_per_10000": 0.0,
            "runs": [
                {"seed": 1, "drift_delays": [20, 31, 93, 180, 22, 25, 28, 31], "adwin_delays": []}
            ],
        },
        "shared": {
            "dog": {
                "drift_alerts_per_10000_unmodified": 1.65,
                "all": SHARED_SUMMARY,
                "adwin_all": dict(SHARED_SUMMARY, detected=1),
                "informative": SHARED_SUMMARY,
                "adwin_informative": SHARED_SUMMARY,
            }
        },
        "shared_runs": [
            {
                "data_set": "dog",
                "seed": 1,
                "all": dict(SHARED_SUMMARY, delays=[18, 44, 28, 14, 8]),
                "adwin_all": dict(SHARED_SUMMARY, detected=1, delays=[95]),
            }
        ],
        "seconds": 12.0,
    },
    "memory": {
        "date": "2026-11-22",
        "machine": {"platform": "Linux-x86_64", "python": "3.11.7", "cpus": 2},
        "runs": {
            "items": [
                {
                    "scenario": "items",
                    "size": n,
                    "growth_mb": mb,
                    "trimmed_growth_mb": mb * 0.8,
                    "held_mb": mb * 0.75,
                    "peak_growth_mb": mb * 1.4,
                }
                for n, mb in ((10000, 14.0), (30000, 42.0))
            ],
            "annotators": [
                {
                    "scenario": "annotators",
                    "size": n,
                    "growth_mb": mb,
                    "trimmed_growth_mb": None,
                    "held_mb": mb / 2,
                    "peak_growth_mb": mb * 2,
                }
                for n, mb in ((400, 22.0), (800, 44.0))
            ],
            "dedup": [
                {"scenario": "dedup", "size": n, "growth_mb": mb, "trimmed_growth_mb": None}
                for n, mb in ((100000, 13.6), (200000, 27.2))
            ],
        },
        "mb_per_100k_items": 140.0,
        "mb_per_10k_annotators": 550.0,
        "mb_per_100k_dedup_ids": 13.6,
        "trimmed_mb_per_100k_items": 112.0,
        "trimmed_mb_per_10k_annotators": None,
        "held_mb_per_100k_items": 105.0,
        "held_mb_per_10k_annotators": 275.0,
        "peak_mb_per_100k_items": 196.0,
        "peak_mb_per_10k_annotators": 1100.0,
    },
    "model_path": {
        "date": "2026-11-22",
        "machine": {"platform": "Linux-x86_64", "python": "3.11.7", "cpus": 2},
        "parameters": {"labels": 30000, "counted_labels": 28000, "batch": 500, "quick": True},
        "us_per_label": {
            "validation": 21.3,
            "model": 226.6,
            "sink_rows": 6.0,
            "insert": 129.6,
            "total": 383.5,
        },
        "share": {"validation": 0.055, "model": 0.591, "sink_rows": 0.016, "insert": 0.338},
        "labels_per_second": 2607.5,
        "model_labels_per_second": 4413.2,
        "model_stages": {
            "consensus: numba kernel": {"us_per_label": 5.5, "share_of_model_path": 0.02},
            "monitor: drift detectors (3 CUSUMs)": {
                "us_per_label": 53.4,
                "share_of_model_path": 0.24,
            },
        },
    },
    "scale_out": {
        "summary": {
            "events": 50000,
            "partitions": 4,
            "one_worker_events_per_second": 1787.7,
            "two_workers_events_per_second": 3106.1,
            "speedup": 1.737,
            "target_speedup": 1.7,
            "target_met": True,
            "identical": True,
            "rows_compared": 268948,
            "differences": 0,
        },
        "runs": [
            {
                "workers": w,
                "events": 50000,
                "seconds": s,
                "events_per_second": 50000 / s,
                "cpu_s_per_worker": cpu,
                "broker_cpu_s": 7.4,
                "producer": {"seconds": 6.1, "events_per_second": 33054.2, "cpu_s": 4.7},
            }
            for w, s, cpu in ((1, 28.0, [28.1]), (2, 16.1, [14.3, 14.5]))
        ],
        "events_per_partition": {"0": 12490, "1": 12441, "2": 12499, "3": 12570},
        "machine": {"cpu_count": 2, "shared": "broker, producer and workers run on the same cores"},
        "quick": True,
        "measured": "2026-11-22T09:35:21.262175+00:00",
    },
    "chaos": {
        "ledger": {"label": 16140, "signal": 1151, "poison": 42, "duplicate": 431},
        "events": 17764,
        "control": _chaos_run(seconds=30.0),
        "runs": {
            "kill": _chaos_run(kills=3, recovery_s=[17.5, 3.0, 2.9], dead_letters_repeated=2),
            "term": _chaos_run(exits=[{"code": 0, "seconds": 2.3}]),
            "outage": _chaos_run(
                outage_s=30.0,
                lag_at_outage_start=8327,
                lag_at_outage_end=8327,
                rss_before={"rss_min_mb": 461.9, "rss_max_mb": 626.8},
                rss_during={"rss_min_mb": 593.7, "rss_max_mb": 612.5},
                recovery_s=14.1,
            ),
            "broker": _chaos_run(recovery_s=8.5, since_broker_kill_s=18.8, lost=1, ok=False),
        },
        "summary": {"events": 17764, "kills": 3, "lost": 1, "all_ok": False},
        "parameters": {"copies": 2, "kills": 3, "outage_seconds": 30.0, "seed": 7, "quick": True},
    },
    "privacy_detection": {
        "date": "2026-11-22T04:56:18+00:00",
        "machine": "x86_64 python 3.11.7",
        "seeds": [1],
        "days_per_seed": 2.0,
        "config": {"window_seconds": 300.0},
        "monitor": _privacy_detector(0.43),
        "fixed_3x": _privacy_detector(38.5),
        "exposures": {"injected": 4, "alerted": 4, "missed": 0},
        "injected_runs": [
            {
                "seed": 1,
                "monitor": {"spikes": [_spike(0.97), _spike(0.3), _spike(None)]},
                "fixed_3x": {"spikes": [_spike(0.73), _spike(2.4)]},
            }
        ],
    },
    "assist": {
        "date": "2026-11-22T11:35:00+00:00",
        "machine": {"platform": "Linux", "python": "3.11.7", "cpus": 2},
        "automation_bias": {
            "runs": [{"seed": 1, "biased": ["a", "b"], "flagged": ["a"]}],
            "precision": 1.0,
            "recall": 0.5,
            "target": 0.95,
            "met": False,
        },
        "model_drift": {
            "runs": [],
            "null_runs": [],
            "delays": [650, 1200, 2400],
            "missed": 1,
            "false_alarms": 0,
            "null_labels": 300000,
        },
        "guideline_change": {
            "runs": [
                {"seed": 1, "right_pair": True, "delay_project_labels": 118},
                {"seed": 2, "right_pair": False, "delay_project_labels": None},
            ],
            "unchanged_runs": [{"seed": 21, "findings": []}],
            "target_labels": 500,
            "met": False,
            "false_findings": 0,
        },
    },
    "agreement": {
        "date": "2026-11-22T11:34:02+00:00",
        "machine": {"platform": "Linux", "python": "3.11.7", "cpus": 2},
        "tolerance": 0.01,
        "all_targets_met": True,
        "datasets": {
            "duck": {
                "crowdkit_alpha": 0.1255,
                "runs": [{"order": "file", "alpha": 0.1255}, {"order": "seed 1", "alpha": 0.1255}],
                "max_abs_diff": 7.8e-16,
            },
        },
    },
    "review_sampling": {
        "date": "2026-11-22T11:28:00+00:00",
        "machine": {"platform": "Linux", "python": "3.11.7", "cpus": 2},
        "share_reviewed": 0.1,
        "target_ratio": 2.0,
        "datasets": {
            name: {
                "runs": [
                    {"order": "file", "ranked": {"ratio": r}, "queue": {"ratio": r * 0.9}},
                    {"order": "seed 1", "ranked": {"ratio": r + 0.1}, "queue": {"ratio": r}},
                ]
            }
            for name, r in (("duck", 3.5), ("face", 1.4))
        },
    },
}


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > 400 and height > 300
        extrema = image.convert("RGB").getextrema()
    assert any(low != high for low, high in extrema), "a single colour"


def test_every_plot_is_tested_here() -> None:
    assert set(plots.PLOTS) == set(RESULTS)


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_plot_writes_a_png(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.png"
    plots.PLOTS[name](RESULTS[name], out)
    assert_png(out)


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_a_json_written_under_another_name_is_recognised_by_its_keys(name: str) -> None:
    assert plots.kind_of(Path(f"{name}.json"), RESULTS[name]) == name
    assert plots.kind_of(Path("renamed.json"), RESULTS[name]) == name


def test_plot_next_to_writes_the_png_beside_the_json(tmp_path: Path) -> None:
    json_path = tmp_path / "results" / "throughput.json"
    assert plots.plot_next_to(json_path, RESULTS["throughput"]) == json_path.with_suffix(".png")
    assert_png(tmp_path / "results" / "throughput.png")


def test_a_failing_plot_never_fails_the_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plots.plot_next_to(tmp_path / "memory.json", {"date": "2026-11-22"}) is None
    captured = capsys.readouterr()
    assert captured.out == ""  # a benchmark's stdout ends with its summary line
    assert "bench/plots.py" in captured.err
    assert not (tmp_path / "memory.png").exists()


def test_main_plots_json_files_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("decode", "scale_out"):
        (tmp_path / f"{name}.json").write_text(json.dumps(RESULTS[name]))
    (tmp_path / "other.json").write_text("{}")
    paths = sorted(str(p) for p in tmp_path.glob("*.json"))
    assert plots.main(paths) == 1  # other.json is no benchmark's
    assert_png(tmp_path / "decode.png")
    assert_png(tmp_path / "scale_out.png")
    assert "other.json: not a result of a known benchmark" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            RESULTS["alert_latency"],
            "measured 2026-11-22 10:16 UTC on x86_64 2 cpus, CPython 3.11.7",
        ),
        (RESULTS["decode"], "measured 2026-11-22 on x86_64 CPython 3.11.7"),
        (RESULTS["memory"], "measured 2026-11-22 on Linux-x86_64, Python 3.11.7, 2 CPUs"),
        (
            RESULTS["scale_out"],
            "measured 2026-11-22 09:35 UTC on 2 CPUs, broker, producer and workers run on the "
            "same cores; QUICK RUN (smaller than the reference run)",
        ),
        ({}, "measured (date not recorded) on (machine not recorded)"),
    ],
)
def test_caption_names_date_and_machine(result: dict[str, Any], expected: str) -> None:
    assert plots.caption(result) == expected
