"""LabelEvent validation: good events pass, each kind of bad input gets its code and field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from labelwatch.schemas import InvalidEvent, LabelEvent, decode_label_event, json_schemas

GOOD = {
    "event_id": "e-1",
    "ts": "2026-03-01T12:00:00+02:00",
    "project": "sentiment",
    "item_id": "item-1",
    "annotator_id": "ann-1",
    "label": "positive",
}


def raw(**changes: object) -> bytes:
    body = dict(GOOD)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body).encode()


def test_minimal_event_gets_defaults_and_utc_time() -> None:
    event = decode_label_event(raw(), max_bytes=4096)
    assert event.ts == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert event.schema_version == 2
    assert event.gold_label is None and event.duration_ms is None
    assert (event.model_label, event.model_confidence) == (None, None)
    assert (event.task_type, event.guideline_version) == (None, None)


def test_a_version_1_event_is_still_accepted() -> None:
    event = decode_label_event(raw(gold_label="negative", schema_version=1), max_bytes=4096)
    assert (event.schema_version, event.gold_label, event.model_label) == (1, "negative", None)


def test_version_2_carries_the_pre_label_task_type_and_guideline() -> None:
    event = decode_label_event(
        raw(
            model_label="negative",
            model_confidence=0.93,
            task_type="sentiment",
            guideline_version="v3",
            schema_version=2,
        ),
        max_bytes=4096,
    )
    assert (event.model_label, event.model_confidence) == ("negative", 0.93)
    assert (event.task_type, event.guideline_version) == ("sentiment", "v3")
    # A pre-label without a confidence is fine: not every tool has one.
    assert decode_label_event(raw(model_label="x"), max_bytes=4096).model_confidence is None


def test_full_event_keeps_every_field() -> None:
    event = decode_label_event(
        raw(gold_label="negative", duration_ms=0, schema_version=1), max_bytes=4096
    )
    assert (event.gold_label, event.duration_ms) == ("negative", 0)


def test_null_optional_fields_are_accepted() -> None:
    event = decode_label_event(
        raw()[:-1] + b', "gold_label": null, "duration_ms": null}', max_bytes=4096
    )
    assert event.gold_label is None and event.duration_ms is None


@pytest.mark.parametrize(
    ("payload", "code", "fields", "reason_part"),
    [
        (b"", "empty", (), "no value"),
        (None, "empty", (), "no value"),
        (b'{"event_id": "\xff"}', "invalid_utf8", (), "byte 14"),
        (b'{"event_id": ', "invalid_json", (), "line 1 column"),
        (b"[1, 2]", "not_an_object", (), "not an object"),
        (b"42", "not_an_object", (), "not an object"),
        (raw(duration_ms="15"), "invalid_fields", ("duration_ms",), "valid integer"),
        (raw(duration_ms=1.5), "invalid_fields", ("duration_ms",), "valid integer"),
        (raw(duration_ms=-1), "invalid_fields", ("duration_ms",), "greater than or equal"),
        (raw(label=7), "invalid_fields", ("label",), "valid string"),
        (raw(label=""), "invalid_fields", ("label",), "at least 1"),
        (raw(annotator_id=None), "invalid_fields", ("annotator_id",), "Field required"),
        (raw(ts="2026-03-01T12:00:00"), "invalid_fields", ("ts",), "timezone"),
        (raw(ts="yesterday"), "invalid_fields", ("ts",), "datetime"),
        (raw(gold="x"), "invalid_fields", ("gold",), "unknown field"),
        (
            raw(schema_version=3),
            "unsupported_schema_version",
            ("schema_version",),
            "supported: 1, 2",
        ),
        (
            raw(model_label="x", guideline_version="v2", schema_version=1),
            "invalid_fields",
            ("model_label",),
            "model_label: a field of schema_version 2, but the event says schema_version 1 "
            "(also guideline_version)",
        ),
        (
            raw(model_confidence=0.7),
            "invalid_fields",
            ("model_confidence",),
            "model_confidence: given without model_label",
        ),
        (
            raw(model_label="x", model_confidence=1.2),
            "invalid_fields",
            ("model_confidence",),
            "less than or equal to 1",
        ),
        (raw(model_label="x", model_confidence="0.9"), "invalid_fields", ("model_confidence",), ""),
        (raw(guideline_version="v" * 65), "invalid_fields", ("guideline_version",), "at most 64"),
        (raw(schema_version="1"), "invalid_fields", ("schema_version",), "valid integer"),
    ],
)
def test_bad_input_is_rejected_with_code_field_and_reason(
    payload: bytes | None, code: str, fields: tuple[str, ...], reason_part: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_label_event(payload, max_bytes=4096)
    assert info.value.code == code
    assert info.value.fields == fields
    assert reason_part in info.value.reason


def test_oversized_message_is_rejected_before_parsing() -> None:
    payload = raw(label="x" * 100)
    with pytest.raises(InvalidEvent) as info:
        decode_label_event(payload, max_bytes=len(payload) - 1)
    assert info.value.code == "oversized"
    assert str(len(payload)) in info.value.reason


def test_many_errors_are_summarised_not_truncated_silently() -> None:
    body = {f"extra{i}": i for i in range(20)}
    with pytest.raises(InvalidEvent) as info:
        decode_label_event(json.dumps(body).encode(), max_bytes=4096)
    assert len(info.value.fields) == 26  # 6 missing + 20 unknown
    assert "and 16 more" in info.value.reason


def test_events_are_immutable() -> None:
    event = decode_label_event(raw(), max_bytes=4096)
    with pytest.raises(ValueError, match="frozen"):
        event.label = "other"  # type: ignore[misc]


def test_json_schema_describes_required_fields_and_forbids_extras() -> None:
    schema = json_schemas()["LabelEvent"]
    assert set(schema["required"]) == {
        "event_id",
        "ts",
        "project",
        "item_id",
        "annotator_id",
        "label",
    }
    assert schema["additionalProperties"] is False
    assert ">>>" not in schema["description"]
    assert schema["properties"]["duration_ms"]["anyOf"][0]["minimum"] == 0


def test_model_and_schema_agree_on_a_valid_event() -> None:
    event = LabelEvent.model_validate_json(raw(duration_ms=5))
    again = LabelEvent.model_validate_json(event.model_dump_json())
    assert again == event
