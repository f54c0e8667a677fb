"""Event models (pydantic v2) and their decoders. No Kafka, Faust or ClickHouse imports here."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from labelwatch.schemas.decode import (
    REJECTION_CODES,
    InvalidEvent,
    decode_label_event,
    decode_label_message,
    decode_privacy_message,
    decode_privacy_signal,
)
from labelwatch.schemas.events import (
    LABEL_EVENT_SCHEMA_VERSION,
    PRIVACY_SIGNAL_KINDS,
    SUPPORTED_LABEL_EVENT_VERSIONS,
    LabelBatch,
    LabelEvent,
    PrivacySignal,
)
from labelwatch.schemas.positions import SourcePosition

__all__ = [
    "LABEL_EVENT_SCHEMA_VERSION",
    "PRIVACY_SIGNAL_KINDS",
    "REJECTION_CODES",
    "SUPPORTED_LABEL_EVENT_VERSIONS",
    "InvalidEvent",
    "LabelBatch",
    "LabelEvent",
    "PrivacySignal",
    "SourcePosition",
    "decode_label_event",
    "decode_label_message",
    "decode_privacy_message",
    "decode_privacy_signal",
    "json_schemas",
]

_EXPORTED: dict[str, type[BaseModel]] = {
    "LabelEvent": LabelEvent,
    "LabelBatch": LabelBatch,
    "PrivacySignal": PrivacySignal,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12) of every input event, keyed by model name, for producers."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in _EXPORTED.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        # The docstring's first paragraph only: its doctest examples are not for producers.
        schema["description"] = (model.__doc__ or "").strip().split("\n\n")[0]
        out[name] = schema
    return out


def dump_json_schemas() -> str:
    """:func:`json_schemas` as stable, indented JSON text."""
    return json.dumps(json_schemas(), indent=2, sort_keys=True)
