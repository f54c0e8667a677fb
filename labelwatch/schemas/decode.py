"""Turning raw Kafka message bytes into validated events, or into a precise rejection.

The worker never lets a bad message crash it or vanish: :func:`decode_label_event` either
returns an event or raises :class:`InvalidEvent`, whose ``code`` is a short stable category
(used as a metric label) and whose ``reason`` says what is wrong and where (byte position,
JSON line/column, or field path).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from labelwatch.schemas.events import LabelBatch, LabelEvent, PrivacySignal

M = TypeVar("M", bound=BaseModel)

# Stable rejection codes: metric label values and the dead-letter ``code`` header.
EMPTY: Final = "empty"
OVERSIZED: Final = "oversized"
INVALID_UTF8: Final = "invalid_utf8"
INVALID_JSON: Final = "invalid_json"
NOT_AN_OBJECT: Final = "not_an_object"
INVALID_FIELDS: Final = "invalid_fields"
UNSUPPORTED_VERSION: Final = "unsupported_schema_version"
REJECTION_CODES: Final = (
    EMPTY,
    OVERSIZED,
    INVALID_UTF8,
    INVALID_JSON,
    NOT_AN_OBJECT,
    INVALID_FIELDS,
    UNSUPPORTED_VERSION,
)

_MAX_REASON_ERRORS = 10


class InvalidEvent(ValueError):
    """A message that cannot become an event.

    Attributes
    ----------
    code
        One of :data:`REJECTION_CODES`.
    reason
        Human-readable explanation naming the offending position or field(s).
    fields
        Dotted paths of the offending fields, when the problem is in fields.
    index
        For one event of a batched envelope: its position in ``events`` (else None).
    element
        For one event of a batched envelope: that event as compact JSON bytes, what the
        dead-letter topic receives instead of the whole envelope (else None).
    """

    def __init__(
        self,
        code: str,
        reason: str,
        fields: tuple[str, ...] = (),
        *,
        index: int | None = None,
        element: bytes | None = None,
    ) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.fields = fields
        self.index = index
        self.element = element


def decode_label_event(raw: bytes | None, *, max_bytes: int) -> LabelEvent:
    """Validate one message value as a :class:`LabelEvent`.

    Examples
    --------
    >>> try:
    ...     decode_label_event(b'{"event_id": 1, "colour": "red"}', max_bytes=1024)
    ... except InvalidEvent as rejection:
    ...     print(rejection.code, rejection.fields[:2], rejection.fields[-1])
    invalid_fields ('event_id', 'ts') colour
    >>> try:
    ...     decode_label_event(b'{"a": ', max_bytes=1024)
    ... except InvalidEvent as rejection:
    ...     print(rejection)
    invalid_json: EOF while parsing a value at line 1 column 6
    """
    return decode_event(raw, LabelEvent, max_bytes=max_bytes)


# A batched envelope is the object {"events": [...]} with no other key, so "events" is its
# first key; a single event can never have that key (unknown fields are rejected).
_ENVELOPE = re.compile(rb'\A\s*\{\s*"events"\s*:')


def decode_label_message(raw: bytes | None, *, max_bytes: int) -> list[LabelEvent | InvalidEvent]:
    """Validate one message value holding one label event or a batched envelope of them.

    Returns the message's events in order, each either valid or an :class:`InvalidEvent`
    with its ``index`` and ``element`` set, so that one bad event of an envelope is
    dead-lettered alone. Raises :class:`InvalidEvent` when the message as a whole is
    unusable: not an event, or an envelope that is not valid JSON, has other keys than
    ``events``, or holds no or too many events.

    Examples
    --------
    >>> good = b'{"event_id": "e1", "ts": "2026-01-01T10:00:00Z", "project": "p",'
    >>> good += b' "item_id": "i1", "annotator_id": "a1", "label": "cat"}'
    >>> out = decode_label_message(b'{"events": [' + good + b', {"label": 1}]}', max_bytes=4096)
    >>> out[0].event_id, out[1].code, out[1].index, out[1].reason[:35]
    ('e1', 'invalid_fields', 1, 'events[1]: event_id: Field required')
    """
    if raw is None or not _ENVELOPE.match(raw):
        return [decode_event(raw, LabelEvent, max_bytes=max_bytes)]
    try:
        return list(decode_event(raw, LabelBatch, max_bytes=max_bytes).events)
    except InvalidEvent as rejection:
        if not _only_element_errors(rejection):
            raise
    # Some events are invalid and the envelope is otherwise fine: decode each on its own, so
    # that each gets exactly the outcome it would get as a message of its own.
    out: list[LabelEvent | InvalidEvent] = []
    for index, element in enumerate(json.loads(raw)["events"]):
        body = json.dumps(element, separators=(",", ":")).encode()
        try:
            out.append(decode_event(body, LabelEvent, max_bytes=max_bytes))
        except InvalidEvent as bad:
            reason = f"events[{index}]: {bad.reason}"
            out.append(InvalidEvent(bad.code, reason, bad.fields, index=index, element=body))
    return out


def _only_element_errors(rejection: InvalidEvent) -> bool:
    """True when every problem of an envelope is inside its events (``events.<i>...``)."""
    if rejection.code not in (INVALID_FIELDS, UNSUPPORTED_VERSION) or not rejection.fields:
        return False
    for field in rejection.fields:
        parts = field.split(".")
        if len(parts) < 2 or parts[0] != "events" or not parts[1].isdigit():
            return False
    return True


def decode_privacy_signal(raw: bytes | None, *, max_bytes: int) -> PrivacySignal:
    """Validate one message value as a :class:`PrivacySignal` (same rejections as labels)."""
    return decode_event(raw, PrivacySignal, max_bytes=max_bytes)


def decode_privacy_message(raw: bytes | None, *, max_bytes: int) -> list[PrivacySignal]:
    """A privacy message holds one signal (the privacy topic takes no batched envelopes);
    as a list, like :func:`decode_label_message`."""
    return [decode_privacy_signal(raw, max_bytes=max_bytes)]


def decode_event(raw: bytes | None, model: type[M], *, max_bytes: int) -> M:
    """Validate one message value as ``model``, or raise :class:`InvalidEvent`."""
    if not raw:
        raise InvalidEvent(EMPTY, "message has no value (empty or tombstone)")
    if len(raw) > max_bytes:
        raise InvalidEvent(OVERSIZED, f"message is {len(raw)} bytes, limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}: {exc.reason}"
        ) from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise _rejection(exc) from None


def _rejection(exc: ValidationError) -> InvalidEvent:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        detail = str(first.get("ctx", {}).get("error", first["msg"]))
        return InvalidEvent(INVALID_JSON, detail)
    if first["type"] == "model_type" and not first["loc"]:
        return InvalidEvent(NOT_AN_OBJECT, "JSON value is not an object")
    errors = _merge_union_errors(errors)
    fields = tuple(".".join(str(p) for p in e["loc"]) or _named_field(e["msg"]) for e in errors)
    parts = []
    for field, e in zip(fields, errors, strict=True):
        msg = e["msg"].removeprefix("Value error, ").removeprefix(f"{field}: ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (not in the schema)"
        got = e.get("input")
        silent = e["type"] in ("missing", "extra_forbidden") or not e["loc"]
        shown = "" if silent else f" (got {_short(got)})"
        parts.append(f"{field}: {msg}{shown}")
    code = INVALID_FIELDS
    if any(
        f == "schema_version" and "unsupported schema_version" in p
        for f, p in zip(fields, parts, strict=True)
    ):
        code = UNSUPPORTED_VERSION if len(fields) == 1 else INVALID_FIELDS
    extra = len(parts) - _MAX_REASON_ERRORS
    reason = "; ".join(parts[:_MAX_REASON_ERRORS]) + (f"; and {extra} more" if extra > 0 else "")
    return InvalidEvent(code, reason, fields)


# pydantic reports a value matching no member of a union once per member, the member's name
# appended to the location; one error per value reads better.
_UNION_MEMBERS = {
    "constrained-str": "a string of at most 256 characters",
    "str": "a string",
    "bool": "a boolean",
    "int": "an integer",
    "float": "a finite number",
}


def _merge_union_errors(errors: list[Any]) -> list[Any]:
    merged: list[Any] = []
    by_loc: dict[tuple[Any, ...], Any] = {}
    for e in errors:
        loc = tuple(e["loc"])
        if len(loc) > 1 and loc[-1] in _UNION_MEMBERS:
            head = loc[:-1]
            if head in by_loc:
                by_loc[head]["members"].append(_UNION_MEMBERS[loc[-1]])
                continue
            entry = dict(e, loc=head, members=[_UNION_MEMBERS[loc[-1]]])
            by_loc[head] = entry
            merged.append(entry)
        else:
            merged.append(e)
    for entry in by_loc.values():
        members = entry.pop("members")
        entry["msg"] = "must be " + (
            members[0] if len(members) == 1 else ", ".join(members[:-1]) + " or " + members[-1]
        )
    return merged


_FIELD_PREFIX = re.compile(r"^(?:Value error, )?([a-z_]+): ")


def _named_field(message: str) -> str:
    """The field a whole-object check names at the start of its message, else ``<root>``."""
    match = _FIELD_PREFIX.match(message)
    return match.group(1) if match else "<root>"


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
