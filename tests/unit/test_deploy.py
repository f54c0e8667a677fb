"""The deployment files stay consistent with the code and with each other.

docker-compose.yml cannot run on the development machines (no Docker engine), so what can be
checked without it is checked here: the services and their commands, that every
``LABELWATCH_*`` variable is a setting and the labelwatch services' environments validate as
:class:`~labelwatch.settings.Settings`, that ports, hosts, users and databases agree between
the compose file, the Dockerfile, Prometheus, Alertmanager and Grafana, that images are
pinned, and that no secret is written down. promtool, amtool and the dashboards' queries are
exercised in ``tests/integration/test_deploy_*.py``.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from labelwatch.cli import build_parser
from labelwatch.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SERVICES = {"kafka", "clickhouse", "worker", "simulator", "prometheus", "alertmanager", "grafana"}
# The services that run the labelwatch image, configured by LABELWATCH_* variables.
LABELWATCH_SERVICES = ("init", "worker", "simulator")
CLICKHOUSE_HTTP_PORT = 8123  # what the clickhouse-server image listens on for HTTP
SETTING_VARIABLES = {f"LABELWATCH_{name.upper()}" for name in Settings.model_fields}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(REPO / "docker-compose.yml")
    return data


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str] | None = None) -> str:
    """Compose's variable substitution: ``${VAR}``, ``${VAR:-default}``, ``$$``; unset
    variables take their default (as `docker compose` does with no .env file)."""
    given = env or {}

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        return given.get(name) or (default or "")

    return _VARIABLE.sub(substitute, value)


def environment(name: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's environment as the container gets it (YAML anchors merged, variables
    substituted)."""
    raw = service(name).get("environment") or {}
    assert isinstance(raw, dict), f"{name}: write environment as a mapping"
    return {key: interpolate(str(value), env) for key, value in raw.items()}


def settings_of(variables: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings from exactly ``variables`` (nothing of this process's own LABELWATCH_*)."""
    import os

    for key in list(os.environ):
        if key.startswith("LABELWATCH_"):
            monkeypatch.delenv(key)
    for key, value in variables.items():
        if key.startswith("LABELWATCH_"):
            monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


def image_env(dockerfile: str) -> dict[str, str]:
    """The ENV of the Dockerfile's last stage (KEY=value pairs, continuation lines joined)."""
    last_stage = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[-1]
    text = last_stage.replace("\\\n", " ")
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                pairs[key] = value
    return pairs


def port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or {"http": 80, "https": 443}[parts.scheme]


# --- services and commands --------------------------------------------------------------


def test_the_stack_has_every_service_of_the_issue() -> None:
    assert set(compose()["services"]) >= SERVICES


def test_every_labelwatch_variable_is_a_setting() -> None:
    # Also the commented-out ones: a comment telling to set a variable that does not exist
    # is as wrong as the variable.
    text = (REPO / "docker-compose.yml").read_text()
    named = set(re.findall(r"\b(LABELWATCH_[A-Z_]+)\b", text))
    assert {"LABELWATCH_KAFKA_BOOTSTRAP", "LABELWATCH_CLICKHOUSE_DSN"} <= named
    assert named <= SETTING_VARIABLES, named - SETTING_VARIABLES
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    in_image = set(re.findall(r"\b(LABELWATCH_[A-Z_]+)\b", dockerfile))
    assert in_image <= SETTING_VARIABLES, in_image - SETTING_VARIABLES


@pytest.mark.parametrize("name", LABELWATCH_SERVICES)
def test_labelwatch_services_environment_validates_as_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = image_env((DEPLOY / "Dockerfile").read_text())
    settings = settings_of({**image, **environment(name)}, monkeypatch)
    assert settings.bootstrap_servers() == ["kafka:9092"]
    assert not settings.embedded_store
    assert settings.topic_partitions >= 2, "partitions bound the useful number of workers"


def test_all_labelwatch_services_share_one_configuration() -> None:
    base = environment("init")
    for name in LABELWATCH_SERVICES:
        env = environment(name)
        assert {k: env[k] for k in base} == base, name
        assert service(name)["image"] == service("worker")["image"]


def test_init_runs_the_cli_commands_that_prepare_topics_and_tables() -> None:
    command = service("init")["entrypoint"]
    assert command[:2] == ["sh", "-c"]
    steps = [shlex.split(step) for step in command[2].split("&&")]
    assert [step[1:] for step in steps] == [["topics", "create"], ["db", "migrate"]]
    parser = build_parser()
    for step in steps:
        assert step[0] == "labelwatch"
        parser.parse_args(step[1:])  # a real command (argparse exits on an unknown one)
    worker_needs = service("worker")["depends_on"]
    assert worker_needs["init"] == {"condition": "service_completed_successfully"}
    for dependency in ("kafka", "clickhouse"):
        assert service("init")["depends_on"][dependency] == {"condition": "service_healthy"}


def test_worker_and_simulator_commands_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(service("worker")["command"]).command == "worker"
    args = parser.parse_args(service("simulator")["command"])
    assert args.command == "simulate" and args.events > 0 and args.inject
    # Event time advances at the simulator's own rate: produced at the same rate, it keeps
    # up with the wall clock, so Grafana's "last hour" shows what was just produced.
    from labelwatch.simulator import SimulationConfig

    assert args.rate == SimulationConfig().events_per_second


def test_depends_on_names_real_services() -> None:
    services = compose()["services"]
    for name, spec in services.items():
        needs = spec.get("depends_on") or {}
        assert set(needs) <= set(services), (name, needs)


# --- ports and hosts ----------------------------------------------------------------------


def test_worker_port_is_the_web_port_everywhere() -> None:
    port = Settings.model_fields["web_port"].default
    env = environment("worker")
    assert int(env["LABELWATCH_WEB_PORT"]) == port
    assert env["LABELWATCH_WEB_HOST"] == "0.0.0.0"  # reachable by Prometheus
    # Container port only, so `--scale worker=N` does not fight over one host port.
    assert [str(p) for p in service("worker")["ports"]] == [str(port)]
    assert service("worker")["deploy"]["replicas"] >= 2
    healthcheck = " ".join(service("worker")["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/health" in healthcheck

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in dockerfile
    assert image_env(dockerfile)["LABELWATCH_WEB_PORT"] == str(port)
    assert f"http://127.0.0.1:{port}/health" in dockerfile.split("HEALTHCHECK", 1)[1]


def test_prometheus_scrapes_every_worker_replica_on_the_web_port() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The rules page on up{job="labelwatch"}: the scrape job must carry that name.
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    assert 'job="labelwatch"' in rules
    job = jobs["labelwatch"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    [discovery] = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    assert discovery["port"] == int(environment("worker")["LABELWATCH_WEB_PORT"])
    assert config["rule_files"] == ["alerts.yml"]
    volumes = service("prometheus")["volumes"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in volumes
    assert "--config.file=/etc/prometheus/prometheus.yml" in service("prometheus")["command"]


def test_alerts_reach_the_alertmanager_service() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    [manager] = config["alerting"]["alertmanagers"]
    [target] = manager["static_configs"][0]["targets"]
    url = environment("worker")["LABELWATCH_ALERTMANAGER_URL"]
    assert target == f"{urlsplit(url).hostname}:{port_of(url)}" == "alertmanager:9093"
    assert "9093:9093" in service("alertmanager")["ports"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in service("alertmanager")["volumes"]
    assert (DEPLOY / "alertmanager" / "alertmanager.yml").is_file()


def test_clickhouse_dsn_names_the_clickhouse_service_its_user_and_database() -> None:
    dsn = urlsplit(environment("worker")["LABELWATCH_CLICKHOUSE_DSN"])
    server = environment("clickhouse")
    assert dsn.scheme == "http" and dsn.hostname == "clickhouse"
    assert dsn.port == CLICKHOUSE_HTTP_PORT
    assert dsn.username == server["CLICKHOUSE_USER"]
    assert dsn.password == server["CLICKHOUSE_PASSWORD"]
    assert dsn.path.strip("/") == server["CLICKHOUSE_DB"]
    # The same secret, from the same variable, whatever it is set to.
    secret = {"CLICKHOUSE_PASSWORD": "s3cret-from-env"}
    assert (
        urlsplit(environment("worker", secret)["LABELWATCH_CLICKHOUSE_DSN"]).password
        == (environment("clickhouse", secret)["CLICKHOUSE_PASSWORD"])
    )


def test_grafana_reads_the_workers_clickhouse_database() -> None:
    provisioning = load_yaml(
        DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    )
    sources = {source["type"]: source for source in provisioning["datasources"]}
    clickhouse = sources["grafana-clickhouse-datasource"]
    dsn = urlsplit(environment("worker")["LABELWATCH_CLICKHOUSE_DSN"])
    data = clickhouse["jsonData"]
    assert (data["host"], data["port"], data["protocol"]) == (dsn.hostname, dsn.port, dsn.scheme)
    assert data["username"] == dsn.username
    assert data["defaultDatabase"] == dsn.path.strip("/")
    # The password comes from Grafana's environment, which gets the ClickHouse secret.
    assert clickhouse["secureJsonData"]["password"] == "$CLICKHOUSE_PASSWORD"
    secret = {"CLICKHOUSE_PASSWORD": "s3cret-from-env"}
    assert environment("grafana", secret)["CLICKHOUSE_PASSWORD"] == "s3cret-from-env"
    prometheus = sources["prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"
    assert "9090:9090" in service("prometheus")["ports"]


def test_grafana_loads_the_dashboards_directory() -> None:
    provider_file = DEPLOY / "grafana" / "provisioning" / "dashboards" / "labelwatch.yml"
    [provider] = load_yaml(provider_file)["providers"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in service("grafana")["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    directory, _, name = home.rpartition("/")
    assert directory == provider["options"]["path"]
    assert (DEPLOY / "grafana" / "dashboards" / name).is_file()


def test_mounted_deploy_paths_exist() -> None:
    for name, spec in compose()["services"].items():
        for volume in spec.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), (name, source)


# --- images and secrets -----------------------------------------------------------------

_VERSION_TAG = re.compile(r"^v?\d+(\.\d+)+$")


def test_every_image_is_pinned_to_a_version() -> None:
    for name, spec in compose()["services"].items():
        image = spec["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and _VERSION_TAG.match(tag), f"{name}: {image} is not pinned"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert service("worker")["image"] == f"labelwatch:{project['version']}"
    plugins = environment("grafana")["GF_PLUGINS_PREINSTALL_SYNC"].split(",")
    assert plugins and all(re.fullmatch(r"[a-z0-9-]+@\d+\.\d+\.\d+", p) for p in plugins)
    assert any(p.startswith("grafana-clickhouse-datasource@") for p in plugins)
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            assert re.match(r"FROM python:3\.11\.\d+-slim-\w+( AS \w+)?$", line), line


def test_compose_kafka_image_matches_the_local_broker_version() -> None:
    script = (REPO / "scripts" / "local_kafka.py").read_text()
    version = re.search(r'KAFKA_VERSION = "([\d.]+)"', script)
    assert version is not None
    assert service("kafka")["image"] == f"apache/kafka:{version.group(1)}"


def test_no_secret_is_written_down() -> None:
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
    for name, spec in compose()["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if secret_like.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:-[^}]*)?\}", str(value)), (name, key)
    dsn = str(service("worker")["environment"]["LABELWATCH_CLICKHOUSE_DSN"])
    assert ":${CLICKHOUSE_PASSWORD" in dsn
    provisioning = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    assert re.findall(r"password: (\S+)", provisioning.read_text()) == ["$CLICKHOUSE_PASSWORD"]


# --- the image ----------------------------------------------------------------------------


def test_image_runs_as_an_unprivileged_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert f"--home-dir {image_env(dockerfile)['LABELWATCH_DATA_DIR']}" in dockerfile
    # Numba's kernel cache must not go to the read-only site-packages.
    assert image_env(dockerfile)["NUMBA_CACHE_DIR"].startswith(
        image_env(dockerfile)["LABELWATCH_DATA_DIR"]
    )


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    entries = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert entries[0] == "*", "the ignore file is an allowlist: everything, then exceptions"
    allowed = {entry[1:].rstrip("/") for entry in entries if entry.startswith("!")}
    sources = set()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources.update(line.split()[1:-1])
    assert sources and sources <= allowed, sources - allowed
    for source in sources:
        assert (REPO / source).exists(), source
