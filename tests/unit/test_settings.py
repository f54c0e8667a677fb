"""Settings: env prefix, frozen, documented fields, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from labelwatch.cli import main, settings_markdown
from labelwatch.settings import Settings


def test_reads_labelwatch_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELWATCH_KAFKA_BOOTSTRAP", "10.0.0.1:9092,10.0.0.2:9092")
    monkeypatch.setenv("LABELWATCH_SINK_BATCH_SIZE", "123")
    settings = Settings()
    assert settings.bootstrap_servers() == ["10.0.0.1:9092", "10.0.0.2:9092"]
    assert settings.broker_url() == "kafka://10.0.0.1:9092;kafka://10.0.0.2:9092"
    assert settings.sink_batch_size == 123


def test_detector_settings_reach_the_workers_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    from labelwatch.streams.app import quality_tracker

    monkeypatch.setenv("LABELWATCH_DRIFT_TARGET_ARL", "50000")
    monkeypatch.setenv("LABELWATCH_FAST_ANSWER_MS", "800")
    monkeypatch.setenv("LABELWATCH_COPY_MIN_SHARED", "40")
    config = quality_tracker(Settings()).monitor_config
    assert config is not None
    assert (config.drift_target_arl, config.fast_answer_ms, config.copy_min_shared) == (
        50000.0,
        800.0,
        40,
    )
    monkeypatch.setenv("LABELWATCH_SPAM_KAPPA", "1.5")
    with pytest.raises(ValidationError, match="spam_kappa"):
        Settings()


def test_is_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().sink_batch_size = 5  # type: ignore[misc]


def test_rejects_bad_values_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELWATCH_SINK_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="sink_batch_size"):
        Settings()


def test_rejects_unknown_dsn_scheme() -> None:
    with pytest.raises(ValidationError, match="scheme must be chdb, http or https"):
        Settings(clickhouse_dsn="postgres://u:p@h/db")  # type: ignore[arg-type]


def test_every_field_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"LABELWATCH_{name.upper()}" in settings_markdown()


def test_default_dsn_is_chdb_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_dsn() == f"chdb://{tmp_path.resolve()}/labelwatch.chdb"


def test_password_never_appears_in_repr_redacted_dsn_or_config_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = "https://writer:s3cr3t-pw@ch.example.internal:8443/quality"
    monkeypatch.setenv("LABELWATCH_CLICKHOUSE_DSN", dsn)
    settings = Settings()
    assert "s3cr3t-pw" not in repr(settings)
    assert "s3cr3t-pw" not in str(settings.model_dump())
    assert settings.redacted_dsn() == "https://ch.example.internal:8443/quality"
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "s3cr3t-pw" not in out and "writer" not in out
    assert "ch.example.internal" in out


def test_readme_configuration_table_is_current() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("<!-- config-table:start -->\n") + len("<!-- config-table:start -->\n")
    end = readme.index("<!-- config-table:end -->")
    assert readme[start:end].strip() == settings_markdown()
