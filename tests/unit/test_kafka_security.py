"""Kafka TLS/SASL settings: validation, the kafka-python options, the Faust credentials, and
secrets kept out of repr, `labelwatch config` and the logs."""

from __future__ import annotations

import logging
import ssl
import subprocess
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from labelwatch.cli import main
from labelwatch.settings import Settings
from labelwatch.streams.app import create_app
from labelwatch.streams.kafka_security import (
    broker_credentials,
    kafka_python_options,
    redact_in_logs,
    ssl_context,
)

SASL_PW = "sasl-pw-Zq81!x"
KEY_PW = "key-pw-Hh27%y"


def settings(**values: Any) -> Settings:
    return Settings(**values, _env_file=None)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA/client certificate with its key, plain and encrypted (openssl CLI)."""
    d = tmp_path_factory.mktemp("pki")
    files = {name: d / f"{name}.pem" for name in ("cert", "key", "key_enc")}
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=labelwatch-test", "-keyout", str(files["key"])),
            *("-out", str(files["cert"])),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *("openssl", "pkey", "-in", str(files["key"]), "-aes256"),
            *("-passout", f"pass:{KEY_PW}", "-out", str(files["key_enc"])),
        ],
        check=True,
        capture_output=True,
    )
    return files


# --- validation -----------------------------------------------------------------------------


def test_plaintext_is_the_default_and_adds_only_the_protocol() -> None:
    s = settings()
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert s.kafka_client_options() == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(s) is None
    assert ssl_context(s) is None


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_protocols_need_username_and_password(protocol: str) -> None:
    with pytest.raises(
        ValidationError, match=f"{protocol} needs kafka_sasl_username and kafka_sasl_password"
    ):
        settings(kafka_security_protocol=protocol)
    with pytest.raises(ValidationError, match=f"{protocol} needs kafka_sasl_password"):
        settings(kafka_security_protocol=protocol, kafka_sasl_username="u")
    with pytest.raises(ValidationError, match=f"{protocol} needs kafka_sasl_username(?! and)"):
        settings(kafka_security_protocol=protocol, kafka_sasl_password="p")
    with pytest.raises(ValidationError, match="needs kafka_sasl_password"):
        settings(kafka_security_protocol=protocol, kafka_sasl_username="u", kafka_sasl_password="")


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_sasl_credentials_without_a_sasl_protocol_are_an_error(protocol: str) -> None:
    with pytest.raises(ValidationError, match="use SASL_PLAINTEXT or SASL_SSL"):
        settings(kafka_security_protocol=protocol, kafka_sasl_username="u", kafka_sasl_password="p")


def test_tls_files_without_a_tls_protocol_are_an_error(pki: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match=r"kafka_ssl_cafile set but .* is SASL_PLAINTEXT"):
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
            kafka_ssl_cafile=pki["cert"],
        )


def test_certificate_and_key_go_together(pki: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="kafka_ssl_certfile and kafka_ssl_keyfile go"):
        settings(kafka_security_protocol="SSL", kafka_ssl_certfile=pki["cert"])
    with pytest.raises(ValidationError, match="kafka_ssl_certfile and kafka_ssl_keyfile go"):
        settings(kafka_security_protocol="SSL", kafka_ssl_keyfile=pki["key"])
    with pytest.raises(ValidationError, match="kafka_ssl_keyfile_password is set but"):
        settings(kafka_security_protocol="SSL", kafka_ssl_keyfile_password=KEY_PW)


def test_missing_files_and_unknown_names_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="kafka_ssl_cafile"):
        settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        settings(kafka_security_protocol="TLS")
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="GSSAPI",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )


# --- kafka-python options ---------------------------------------------------------------------


def test_sasl_plaintext_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("LABELWATCH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("LABELWATCH_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("LABELWATCH_KAFKA_SASL_PASSWORD", SASL_PW)
    assert Settings().kafka_client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": SASL_PW,
    }


def test_sasl_ssl_options_carry_every_tls_file(pki: dict[str, Path]) -> None:
    s = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password=SASL_PW,
        kafka_ssl_cafile=pki["cert"],
        kafka_ssl_certfile=pki["cert"],
        kafka_ssl_keyfile=pki["key_enc"],
        kafka_ssl_keyfile_password=KEY_PW,
    )
    assert s.kafka_client_options() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": SASL_PW,
        "ssl_cafile": str(pki["cert"]),
        "ssl_certfile": str(pki["cert"]),
        "ssl_keyfile": str(pki["key_enc"]),
        "ssl_password": KEY_PW,
    }
    assert kafka_python_options(s) == s.kafka_client_options()


def test_ssl_with_only_a_ca_has_no_sasl_or_client_certificate(pki: dict[str, Path]) -> None:
    s = settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki["cert"])
    assert s.kafka_client_options() == {"security_protocol": "SSL", "ssl_cafile": str(pki["cert"])}
    assert settings(kafka_security_protocol="SSL").kafka_client_options() == {
        "security_protocol": "SSL"
    }


# --- Faust credentials --------------------------------------------------------------------


def test_sasl_plaintext_credentials_reach_aiokafka() -> None:
    s = settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password=SASL_PW,
    )
    credentials = broker_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert SASL_PW not in repr(credentials)
    app = create_app(s)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    assert auth == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": SASL_PW,
        "ssl_context": None,
    }


def test_sasl_ssl_credentials_carry_a_verifying_context_with_the_client_key(
    pki: dict[str, Path],
) -> None:
    s = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc",
        kafka_sasl_password=SASL_PW,
        kafka_ssl_cafile=pki["cert"],
        kafka_ssl_certfile=pki["cert"],
        kafka_ssl_keyfile=pki["key_enc"],
        kafka_ssl_keyfile_password=KEY_PW,
    )
    app = create_app(s)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "PLAIN"
    context = auth["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "labelwatch-test"),),)
    ]


def test_ssl_credentials_and_a_wrong_key_password(pki: dict[str, Path]) -> None:
    s = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_certfile=pki["cert"],
        kafka_ssl_keyfile=pki["key"],
    )
    credentials = broker_credentials(s)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    wrong = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_certfile=pki["cert"],
        kafka_ssl_keyfile=pki["key_enc"],
        kafka_ssl_keyfile_password="wrong",
    )
    with pytest.raises(ssl.SSLError):
        broker_credentials(wrong)


# --- secrets never shown --------------------------------------------------------------------


def test_passwords_never_appear_in_repr_or_config_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pki: dict[str, Path]
) -> None:
    for name, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD": SASL_PW,
        "KAFKA_SSL_CERTFILE": str(pki["cert"]),
        "KAFKA_SSL_KEYFILE": str(pki["key_enc"]),
        "KAFKA_SSL_KEYFILE_PASSWORD": KEY_PW,
    }.items():
        monkeypatch.setenv(f"LABELWATCH_{name}", value)
    s = Settings()
    for text in (repr(s), str(s), str(s.model_dump())):
        assert SASL_PW not in text and KEY_PW not in text
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert SASL_PW not in out and KEY_PW not in out
    assert "kafka_sasl_password = **********" in out
    assert "kafka_ssl_keyfile_password = **********" in out
    assert "kafka_sasl_username = svc" in out


def test_registered_secrets_are_masked_in_every_log_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "unit-secret-'q\\\u00e9"
    redact_in_logs(secret)
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("aiokafka.conn")
    log.debug("Request %s: %s", 3, {"sasl_plain_password": secret})
    log.debug("auth bytes %r", b"user\x00user\x00" + secret.encode())
    logging.getLogger("labelwatch.anything").info("config: %s", secret)
    assert len(caplog.records) == 3
    assert secret not in caplog.text
    assert repr(secret)[1:-1] not in caplog.text
    assert repr(secret.encode())[2:-1] not in caplog.text
    assert caplog.text.count("**********") == 3


def test_an_invalid_configuration_is_reported_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABELWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LABELWATCH_KAFKA_SASL_PASSWORD", SASL_PW)
    with pytest.raises(SystemExit) as exited:
        main(["config"])
    message = str(exited.value) + "".join(capsys.readouterr())
    assert "needs kafka_sasl_username" in message
    assert SASL_PW not in message
