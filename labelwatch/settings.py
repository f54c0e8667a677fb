"""Configuration: one frozen settings object, read from ``LABELWATCH_*`` environment variables.

Every field carries a one-line description; the README's configuration table is generated
from these descriptions (``labelwatch config --markdown``). Secrets are ``SecretStr`` and never
appear in ``repr``, logs or command output; use :meth:`Settings.redacted_dsn` to show where the
ClickHouse store is without its credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from labelwatch.models.monitor import MonitorConfig
from labelwatch.models.privacy import PrivacyConfig
from labelwatch.models.tracker import ReviewConfig
from labelwatch.schemas.alerts import QUALITY_ALERT_KINDS

_M = MonitorConfig  # the detector defaults live with the detectors


@dataclass(frozen=True)
class Retention:
    """How long rows are kept: raw events by when they were stored, the rest by event time."""

    raw_days: int = 30
    aggregate_days: int = 365


class Settings(BaseSettings):
    """All of labelwatch's configuration. Read once at start-up; immutable afterwards."""

    model_config = SettingsConfigDict(
        env_prefix="LABELWATCH_",
        frozen=True,
        extra="forbid",
        validate_default=True,
    )

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated host:port list.",
    )
    app_id: str = Field(
        "labelwatch",
        description="Faust application id; also the Kafka consumer group of the workers.",
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
    )
    topic_labels: str = Field(
        "labelwatch.labels", description="Input topic carrying labeling events (JSON)."
    )
    topic_dead_letter: str = Field(
        "labelwatch.dead-letter",
        description="Topic receiving every rejected input message, original bytes plus reason.",
    )
    topic_alerts: str = Field("labelwatch.alerts", description="Output topic for alerts.")
    topic_review: str = Field(
        "labelwatch.review-queue", description="Output topic for items picked for expert review."
    )
    topic_partitions: int = Field(
        4,
        ge=1,
        le=1024,
        description="Partitions used when labelwatch creates its topics (the unit of scale-out).",
    )
    topic_replication: int = Field(
        1, ge=1, le=16, description="Replication factor used when labelwatch creates its topics."
    )
    max_message_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest input message accepted; larger ones are dead-lettered as oversized.",
    )
    kafka_session_timeout_seconds: float = Field(
        60.0,
        ge=6,
        le=1800,
        description=(
            "Kafka consumer session timeout: how long the group waits for a worker that "
            "stopped heartbeating (e.g. killed) before its partitions move."
        ),
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN",
        description="SASL mechanism (SASL_* protocols): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    kafka_sasl_username: str | None = Field(
        None, description="SASL user name; required by the SASL_* protocols."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password; required by the SASL_* protocols. A secret."
    )
    kafka_ssl_cafile: FilePath | None = Field(
        None,
        description="CA bundle (PEM) the brokers' certificates are checked against "
        "(SSL, SASL_SSL); default: the system's trust store.",
    )
    kafka_ssl_certfile: FilePath | None = Field(
        None,
        description="Client certificate (PEM) for mutual TLS; needs kafka_ssl_keyfile.",
    )
    kafka_ssl_keyfile: FilePath | None = Field(
        None, description="Private key (PEM) of kafka_ssl_certfile."
    )
    kafka_ssl_keyfile_password: SecretStr | None = Field(
        None, description="Password of an encrypted kafka_ssl_keyfile. A secret."
    )

    # --- ClickHouse -----------------------------------------------------------------------
    data_dir: Path = Field(
        Path(".labelwatch"),
        description="Directory for local state, including the embedded chDB store by default.",
    )
    clickhouse_dsn: SecretStr | None = Field(
        None,
        description=(
            "ClickHouse target: chdb:///abs/path for the embedded engine or "
            "http(s)://user:pass@host:8123/db for a server. Default: chDB in data_dir."
        ),
    )
    clickhouse_database: str = Field(
        "labelwatch",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="ClickHouse database holding labelwatch's tables (a DSN path overrides it).",
    )
    sink_batch_size: int = Field(
        5000, ge=1, le=1_000_000, description="Maximum rows per ClickHouse insert."
    )
    sink_batch_bytes: int = Field(
        1024 * 1024,
        ge=1,
        description="Maximum message bytes the models and one insert take at a time (batched "
        "envelopes carry many events per message).",
    )
    sink_flush_seconds: float = Field(
        1.0, gt=0, le=300, description="Maximum time an event waits before its batch is written."
    )
    sink_retry_max_seconds: float = Field(
        30.0, gt=0, description="Upper bound of the back-off between failed ClickHouse writes."
    )

    # --- Models ---------------------------------------------------------------------------
    item_ttl_seconds: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="Event-time inactivity after which an item is closed and its votes dropped.",
    )
    max_items_per_shard: int = Field(
        1_000_000,
        ge=1,
        description="Open items per partition and project; least recently labeled close beyond.",
    )
    reliability_snapshot_seconds: float = Field(
        60.0,
        gt=0,
        description="Event-time interval of the annotator_reliability snapshots.",
    )
    checkpoint_every_labels: int = Field(
        20_000,
        ge=1,
        description="Labels per partition between model checkpoints (bounds recovery replay).",
    )
    dedup_window: int = Field(
        100_000,
        ge=0,
        description=(
            "Events per partition whose event_id is remembered: an event sent again within it "
            "is counted once (0: off)."
        ),
    )

    # --- Annotator alerts (see README "Annotator alerts") --------------------------------
    drift_target_arl: float = Field(
        _M.drift_target_arl,
        ge=100,
        description=(
            "False-alarm budget of annotator_drift: average labels between false alarms of a "
            "stationary annotator."
        ),
    )
    drift_warmup_labels: int = Field(
        _M.drift_warmup,
        ge=5,
        le=1000,
        description="Labels of an annotator before its drift detectors give verdicts.",
    )
    drift_guard_labels: int = Field(
        _M.drift_guard,
        ge=5,
        le=1000,
        description="Latest labels left out of the baseline a change is judged against.",
    )
    spam_min_labels: int = Field(
        _M.spam_min_labels, ge=5, description="Labels before an annotator can be called a spammer."
    )
    spam_kappa: float = Field(
        _M.spam_kappa,
        gt=0,
        lt=1,
        description="Chance-corrected agreement (kappa) below which answers count as blind.",
    )
    fast_answer_ms: float = Field(
        _M.fast_answer_ms,
        ge=0,
        description="Median time per answer (ms) below which answers are too fast for a person.",
    )
    low_reliability_margin: float = Field(
        _M.low_reliability_margin,
        gt=0,
        lt=1,
        description="low_reliability floor: share of the way from chance to perfect accuracy.",
    )
    anomaly_threshold: float = Field(
        _M.anomaly_threshold,
        gt=0,
        description="Robust z-score of a behaviour feature that opens annotator_anomaly.",
    )
    copy_alpha: float = Field(
        _M.copy_alpha,
        gt=0,
        lt=0.01,
        description="Significance of a copied-answers verdict on one pair of annotators.",
    )
    copy_min_shared: int = Field(
        _M.copy_min_shared,
        ge=10,
        description="Items two annotators must share before they can be called copies.",
    )

    alert_cooldown_seconds: float = Field(
        600.0,
        ge=0,
        description=(
            "Event-time seconds after an alert episode resolves during which a new episode of "
            "the same rule for the same annotator is held back (announced after it, if still "
            "true)."
        ),
    )
    alert_cooldowns: dict[str, float] = Field(
        default_factory=dict,
        description=(
            'Per-rule cooldowns overriding the default, as JSON: {"low_reliability": 3600}. '
            "Rules: the alert kinds, and copied_answers."
        ),
    )

    # --- Privacy (see README "Privacy") ---------------------------------------------------
    topic_privacy: str = Field(
        "labelwatch.privacy-signals",
        description="Input topic carrying privacy signals (JSON), keyed by project.",
    )
    pseudonym_key: SecretStr | None = Field(
        None,
        description=(
            "Key (16+ characters) of the HMAC that replaces annotator ids before anything is "
            "stored, published or logged; unset: ids are kept as sent."
        ),
    )
    privacy_attribute_allowlist: list[str] = Field(
        default_factory=list,
        description=(
            'Privacy-signal attribute keys whose values are stored, as JSON: ["pii_type"]. '
            "Others are dropped (counted)."
        ),
    )
    privacy_window_seconds: float = Field(
        300.0,
        ge=10,
        le=86_400,
        description="Event-time window of the privacy-signal rate detectors.",
    )
    raw_retention_days: int = Field(
        30,
        ge=1,
        le=36_500,
        description="Days raw label and privacy events are kept after they were stored (TTL).",
    )
    aggregate_retention_days: int = Field(
        365,
        ge=1,
        le=36_500,
        description="Days aggregates, reliability snapshots and alerts are kept (TTL).",
    )

    # --- Alert delivery (optional) ---------------------------------------------------------
    alertmanager_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Alertmanager base URL (http://host:9093); alerts are pushed to its v2 API.",
    )
    alertmanager_resend_seconds: float = Field(
        60.0, gt=0, description="Interval at which open alerts are re-sent to Alertmanager."
    )
    webhook_url: SecretStr | None = Field(
        None, description="URL receiving alerts as JSON (POST {'alerts': [...]}); a secret."
    )
    webhook_token: SecretStr | None = Field(
        None, description="Bearer token sent to the webhook, if it needs one."
    )
    notify_queue_size: int = Field(
        10_000,
        ge=10,
        description="Alerts waiting per receiver; the oldest are dropped (counted) beyond it.",
    )

    # --- Worker ---------------------------------------------------------------------------
    web_host: str = Field(
        "127.0.0.1", description="Address of the worker's HTTP endpoint (/metrics, health)."
    )
    web_port: int = Field(6066, ge=0, le=65535, description="Port of the worker's HTTP endpoint.")
    query_token: SecretStr | None = Field(
        None,
        description=(
            "Bearer token the worker's read-only /query endpoint requires (labelwatch query "
            "sends it); without one the endpoint answers loopback clients only."
        ),
    )
    query_max_rows: int = Field(
        10_000, ge=1, description="Rows a query returns at most (the rest are cut, and said so)."
    )
    query_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Time limit of one query (it runs on the writer's connection: keep it short).",
    )
    log_level: str = Field(
        "info",
        pattern=r"^(debug|info|warning|error)$",
        description="Worker log level: debug, info, warning or error.",
    )
    review_budget_per_hour: int = Field(
        100,
        ge=1,
        description="Items picked for expert review per hour of event time, over all "
        "partitions (each partition's models get an equal share).",
    )
    review_random_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Share of the review budget drawn uniformly at random (stratified by "
        "project and consensus confidence), so audit estimates stay unbiased.",
    )
    review_window_seconds: int = Field(
        3600,
        ge=1,
        le=3600,
        description="Event-time window in which review picks are decided (divides an hour).",
    )
    review_after_votes: int = Field(
        3,
        ge=1,
        description="An item is judged for review once, at the label that gives it this many "
        "votes (items that never get as many are not offered).",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text, or as one JSON object per line (for log collectors).",
    )

    @field_validator("alert_cooldowns")
    @classmethod
    def _known_rules(cls, value: dict[str, float]) -> dict[str, float]:
        rules = (*QUALITY_ALERT_KINDS, "copied_answers")
        for rule, seconds in value.items():
            if rule not in rules:
                raise ValueError(f"unknown rule {rule!r}; rules are {', '.join(rules)}")
            if seconds < 0:
                raise ValueError(f"cooldown of {rule} must be >= 0, not {seconds}")
        return value

    @field_validator("pseudonym_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (the value is not shown)")
        return value

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol in ("SSL", "SASL_SSL")
        if sasl:
            missing = [
                f"kafka_sasl_{name}"
                for name, value in (
                    ("username", self.kafka_sasl_username),
                    ("password", self.kafka_sasl_password),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"kafka_security_protocol={protocol} needs {' and '.join(missing)}"
                )
        elif self.kafka_sasl_username is not None or self.kafka_sasl_password is not None:
            raise ValueError(
                "kafka_sasl_username/kafka_sasl_password are set but kafka_security_protocol "
                f"is {protocol}; use SASL_PLAINTEXT or SASL_SSL to send them"
            )
        tls_files = {
            "kafka_ssl_cafile": self.kafka_ssl_cafile,
            "kafka_ssl_certfile": self.kafka_ssl_certfile,
            "kafka_ssl_keyfile": self.kafka_ssl_keyfile,
            "kafka_ssl_keyfile_password": self.kafka_ssl_keyfile_password,
        }
        given = [name for name, value in tls_files.items() if value is not None]
        if given and not tls:
            raise ValueError(
                f"{', '.join(given)} set but kafka_security_protocol is {protocol}; "
                "TLS settings need SSL or SASL_SSL"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError(
                "kafka_ssl_certfile and kafka_ssl_keyfile go together: a client certificate "
                "needs its private key (for one PEM file holding both, give it twice)"
            )
        if self.kafka_ssl_keyfile_password is not None and self.kafka_ssl_keyfile is None:
            raise ValueError("kafka_ssl_keyfile_password is set but kafka_ssl_keyfile is not")
        return self

    @model_validator(mode="after")
    def _check_dsn_scheme(self) -> Settings:
        if self.clickhouse_dsn is not None:
            scheme = urlsplit(self.clickhouse_dsn.get_secret_value()).scheme
            if scheme not in ("chdb", "http", "https"):
                raise ValueError(
                    f"clickhouse_dsn: scheme must be chdb, http or https, not {scheme!r}"
                )
        return self

    @model_validator(mode="after")
    def _check_review_window(self) -> Settings:
        windows = 3600 // self.review_window_seconds
        if 3600 % self.review_window_seconds:
            raise ValueError("review_window_seconds must divide an hour (3600 seconds)")
        if self.review_budget_per_hour < windows * self.topic_partitions:
            raise ValueError(
                f"review_budget_per_hour must be at least {windows * self.topic_partitions}: "
                f"each of the {self.topic_partitions} partitions needs one pick per window"
            )
        return self

    # --- derived values -------------------------------------------------------------------
    def review_config(self) -> ReviewConfig:
        """One partition's review queue: its share of the hourly budget."""
        return ReviewConfig(
            budget_per_hour=self.review_budget_per_hour // self.topic_partitions,
            random_share=self.review_random_share,
            window_seconds=self.review_window_seconds,
            after_votes=self.review_after_votes,
        )

    def monitor_config(self) -> MonitorConfig:
        """The annotator monitor's detector settings."""
        return MonitorConfig(
            drift_target_arl=self.drift_target_arl,
            drift_warmup=self.drift_warmup_labels,
            drift_guard=self.drift_guard_labels,
            spam_min_labels=self.spam_min_labels,
            spam_kappa=self.spam_kappa,
            fast_answer_ms=self.fast_answer_ms,
            low_reliability_margin=self.low_reliability_margin,
            anomaly_threshold=self.anomaly_threshold,
            copy_alpha=self.copy_alpha,
            copy_min_shared=self.copy_min_shared,
            cooldown_seconds=self.alert_cooldown_seconds,
            cooldowns=tuple(sorted(self.alert_cooldowns.items())),
        )

    def privacy_config(self) -> PrivacyConfig:
        """The privacy-signal detectors' settings."""
        return PrivacyConfig(window_seconds=self.privacy_window_seconds)

    def retention(self) -> Retention:
        """How long ClickHouse keeps rows (applied by migrations as table TTLs)."""
        return Retention(self.raw_retention_days, self.aggregate_retention_days)

    def resolved_dsn(self) -> str:
        """The ClickHouse DSN to connect to, with the chDB default filled in (a secret)."""
        if self.clickhouse_dsn is not None:
            return self.clickhouse_dsn.get_secret_value()
        return f"chdb://{(self.data_dir / 'labelwatch.chdb').resolve()}"

    @property
    def embedded_store(self) -> bool:
        """True for the embedded chDB engine (one process at a time), False for a server."""
        return urlsplit(self.resolved_dsn()).scheme == "chdb"

    def redacted_dsn(self) -> str:
        """The DSN with user and password removed, safe to print or log."""
        parts = urlsplit(self.resolved_dsn())
        if parts.scheme == "chdb":
            return f"chdb://{parts.path}"  # a local path: no credentials to hide
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))

    def broker_url(self) -> str:
        """The Faust broker URL(s) for :attr:`kafka_bootstrap`."""
        return ";".join(f"kafka://{h.strip()}" for h in self.kafka_bootstrap.split(",") if h)

    def bootstrap_servers(self) -> list[str]:
        """:attr:`kafka_bootstrap` as the list kafka-python expects."""
        return [h.strip() for h in self.kafka_bootstrap.split(",") if h.strip()]

    def kafka_client_options(self) -> dict[str, Any]:
        """Security keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and
        KafkaAdminClient: the protocol plus only the SASL/TLS options that apply. The values
        include the secrets in clear: pass them to a client, never log them."""
        protocol = self.kafka_security_protocol
        options: dict[str, Any] = {"security_protocol": protocol}
        if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
            assert self.kafka_sasl_password is not None  # checked by the validator
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if protocol in ("SSL", "SASL_SSL"):
            files = {
                "ssl_cafile": self.kafka_ssl_cafile,
                "ssl_certfile": self.kafka_ssl_certfile,
                "ssl_keyfile": self.kafka_ssl_keyfile,
            }
            options.update({key: str(path) for key, path in files.items() if path is not None})
            if self.kafka_ssl_keyfile_password is not None:
                options["ssl_password"] = self.kafka_ssl_keyfile_password.get_secret_value()
        return options
