"""Kafka TLS/SASL settings for the clients, and keeping their secrets out of the logs.

* :func:`kafka_python_options`: the keyword arguments for kafka-python's producer, consumer
  and admin client (:meth:`Settings.kafka_client_options`).
* :func:`broker_credentials`: the Faust (aiokafka) side, ``faust.App(broker_credentials=...)``,
  credential objects with an :class:`ssl.SSLContext` built from the CA/cert/key files.

Both hand the secrets to libraries that log them at DEBUG: aiokafka logs each request, the
SASL/PLAIN token (user and password in clear) included, and kafka-python logs its whole
configuration. So both first register the secrets with :func:`redact_in_logs`, which masks
them in every log record of the process, whatever the logger, level or handler.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labelwatch.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

MASK = "**********"

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def redact_in_logs(*secrets: str) -> None:
    """Mask ``secrets`` in every log record created from now on (process-wide; idempotent).

    The masking wraps the :func:`logging.setLogRecordFactory` factory, so it applies before
    any filter, handler or formatter, including those Faust's worker installs later. Each
    secret is also masked as it appears inside a ``repr`` of a str or bytes value.
    """
    global _installed
    forms = set()
    for secret in secrets:
        if secret:
            forms |= {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1]}
    with _lock:
        _secrets.update(forms)
        if not _installed:
            logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))
            _installed = True


def _redacting(inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it itself later
            return record
        hidden = [s for s in _secrets if s in message]
        if hidden:
            for secret in sorted(hidden, key=len, reverse=True):
                message = message.replace(secret, MASK)
            record.msg, record.args = message, ()
        return record

    return factory


def kafka_secrets(settings: Settings) -> list[str]:
    """The secret values among the Kafka settings (SASL password, TLS key password)."""
    values = (settings.kafka_sasl_password, settings.kafka_ssl_keyfile_password)
    return [v.get_secret_value() for v in values if v is not None]


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """:meth:`Settings.kafka_client_options`, with its secrets masked in the logs first."""
    redact_in_logs(*kafka_secrets(settings))
    return settings.kafka_client_options()


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A client TLS context for the SSL and SASL_SSL protocols (None otherwise): brokers are
    verified against ``kafka_ssl_cafile`` (else the system's trust store), host names checked,
    and the client certificate loaded when one is configured."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = settings.kafka_ssl_cafile
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if cafile is None else str(cafile)
    )
    if settings.kafka_ssl_certfile is not None:
        password = settings.kafka_ssl_keyfile_password
        keyfile = settings.kafka_ssl_keyfile
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            keyfile=None if keyfile is None else str(keyfile),
            password=None if password is None else password.get_secret_value(),
        )
    return context


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """What to pass as ``faust.App(broker_credentials=...)``; None for PLAINTEXT.

    Faust's ``SASLCredentials.__repr__`` shows the user name only.
    """
    import faust  # here, so that the kafka-python tools need not import Faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    redact_in_logs(*kafka_secrets(settings))
    context = ssl_context(settings)
    if protocol == "SSL":
        assert context is not None
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    assert password is not None  # the settings validator requires it for SASL_*
    # With an ssl_context, SASLCredentials switches itself to SASL_SSL.
    credentials = faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value(),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )
    assert credentials.protocol.value == protocol
    return credentials
