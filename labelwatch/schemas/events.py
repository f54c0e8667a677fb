"""Input events: what producers send to labelwatch's topics.

Validation policy (applies to every event model here):

* strict types: ``"15"`` is not an integer, ``1`` is not a string, ``true`` is not a number;
* unknown fields are **rejected**, so a misspelt field (``gold`` for ``gold_label``) is reported
  instead of being silently dropped;
* ``ts`` is an ISO-8601 timestamp *with* a UTC offset; it is normalised to UTC;
* ``schema_version`` may be omitted and then means the current version; a version this release
  does not know is rejected with a reason naming the supported ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

LABEL_EVENT_SCHEMA_VERSION = 2
SUPPORTED_LABEL_EVENT_VERSIONS = frozenset({1, 2})
LABEL_EVENT_V2_FIELDS: tuple[str, ...] = (
    "model_label",
    "model_confidence",
    "task_type",
    "guideline_version",
)
"""Fields schema version 2 added (ML-assisted labeling); a version 1 event may not carry them."""
PRIVACY_SIGNAL_SCHEMA_VERSION = 1
SUPPORTED_PRIVACY_SIGNAL_VERSIONS = frozenset({1})

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""An id given by the labeling platform: non-empty, at most 256 characters."""

LabelValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""A categorical label: non-empty, at most 128 characters."""


class _InputEvent(BaseModel):
    """What every input event shares: the validation policy and a UTC event time."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @field_validator("ts", check_fields=False)
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:
            # A time at datetime's limits that its offset moves past year 1 or 9999
            # ("9999-12-31T23:59:59-01:00"), found by tests/unit/test_decode_fuzz.py. As a
            # ValueError it is reported like any other invalid field, beside the others.
            raise ValueError("out of range once converted to UTC") from None


class LabelEvent(_InputEvent):
    """One answer given by one annotator for one item.

    Version 2 added what ML-assisted labeling tools show and know: the model's pre-label
    suggestion (``model_label``, with ``model_confidence`` when the model gives one), the
    kind of task and the guideline version the annotator worked under. All are optional, and
    version 1 events (without them) are still accepted.

    Examples
    --------
    >>> e = LabelEvent.model_validate_json(
    ...     b'{"event_id": "e1", "ts": "2026-01-01T10:00:00+01:00", "project": "p",'
    ...     b' "item_id": "i1", "annotator_id": "a1", "label": "cat"}'
    ... )
    >>> e.ts.isoformat(), e.schema_version, e.gold_label
    ('2026-01-01T09:00:00+00:00', 2, None)
    """

    event_id: Identifier = Field(description="Unique id of this event; duplicates are collapsed.")
    ts: AwareDatetime = Field(description="Event time: when the label was given, with UTC offset.")
    project: Identifier = Field(description="Labeling project the item belongs to.")
    item_id: Identifier = Field(description="Item (task) that was labeled.")
    annotator_id: Identifier = Field(description="Annotator who gave the label.")
    label: LabelValue = Field(description="The categorical answer given.")
    gold_label: LabelValue | None = Field(
        None, description="Known correct answer when the item is a control (gold) task."
    )
    duration_ms: int | None = Field(
        None, ge=0, le=86_400_000, description="Time the annotator spent on the item, in ms."
    )
    model_label: LabelValue | None = Field(
        None,
        description="The model's pre-label suggestion shown to the annotator, if any (v2).",
    )
    model_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="The model's confidence in its pre-label, 0 to 1 (v2; needs model_label).",
    )
    task_type: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="Kind of task, e.g. 'classification' or 'moderation' (v2)."
    )
    guideline_version: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = (
        Field(None, description="Version of the labeling guideline the annotator followed (v2).")
    )
    schema_version: int = Field(
        LABEL_EVENT_SCHEMA_VERSION, description="Version of this schema the producer wrote."
    )

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        return _known_version_of(value, SUPPORTED_LABEL_EVENT_VERSIONS)

    @model_validator(mode="after")
    def _fields_of_its_version(self) -> LabelEvent:
        if self.schema_version < 2:
            given = [f for f in LABEL_EVENT_V2_FIELDS if getattr(self, f) is not None]
            # "<field>: ..." names the field in the dead-letter reason (decode._named_field).
            if given:
                also = f" (also {', '.join(given[1:])})" if given[1:] else ""
                raise ValueError(
                    f"{given[0]}: a field of schema_version 2, but the event says "
                    f"schema_version 1{also}"
                )
        if self.model_confidence is not None and self.model_label is None:
            raise ValueError("model_confidence: given without model_label")
        return self


MAX_BATCH_EVENTS = 100_000
"""Most events one batched envelope may carry (the message size limit applies as well)."""


class LabelBatch(BaseModel):
    """A batched envelope: one Kafka message carrying many label events.

    The shape is ``{"events": [<label event>, ...]}`` and nothing else, so ``events`` is
    necessarily the object's first key, which is how a message is recognised as an envelope
    (see :func:`labelwatch.schemas.decode.decode_label_message`). Every element is a complete
    :class:`LabelEvent` validated on its own; an invalid element is dead-lettered alone.

    Examples
    --------
    >>> b = LabelBatch.model_validate_json(
    ...     b'{"events": [{"event_id": "e1", "ts": "2026-01-01T10:00:00Z", "project": "p",'
    ...     b' "item_id": "i1", "annotator_id": "a1", "label": "cat"}]}'
    ... )
    >>> [e.event_id for e in b.events]
    ['e1']
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    events: list[LabelEvent] = Field(
        min_length=1,
        max_length=MAX_BATCH_EVENTS,
        description="The label events, in the order they are to be applied.",
    )


def _known_version_of(value: int, supported: frozenset[int]) -> int:
    if value not in supported:
        known = ", ".join(str(v) for v in sorted(supported))
        raise ValueError(f"unsupported schema_version {value}; supported: {known}")
    return value


PRIVACY_SIGNAL_KINDS: tuple[str, ...] = (
    "pii_detected",
    "pii_exposed_to_annotator",
    "redaction_failed",
    "consent_revoked",
    "deletion_requested",
    "access_violation",
    "bulk_export",
)
SignalKind = Literal[
    "pii_detected",
    "pii_exposed_to_annotator",
    "redaction_failed",
    "consent_revoked",
    "deletion_requested",
    "access_violation",
    "bulk_export",
]
SIGNAL_SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
SignalSeverity = Literal["low", "medium", "high", "critical"]
REVOKING_KINDS: frozenset[str] = frozenset({"consent_revoked", "deletion_requested"})
"""Signal kinds after which an item must no longer be labeled (they need an ``item_id``)."""

MAX_ATTRIBUTES = 32
AttributeKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=256)]
    | StrictBool
    | StrictInt
    # Finite only: NaN and infinities cannot be stored (they came back as null).
    | Annotated[float, Field(strict=True, allow_inf_nan=False)]
)


class PrivacySignal(_InputEvent):
    """One privacy-relevant observation from the labeling platform or one of its scanners.

    Same validation policy as :class:`LabelEvent`. ``attributes`` are small typed details
    (``{"pii_type": "phone", "rows": 120}``); labelwatch stores only the allowlisted ones
    (``LABELWATCH_PRIVACY_ATTRIBUTE_ALLOWLIST``). A ``consent_revoked`` or
    ``deletion_requested`` signal must name the item it is about.

    Examples
    --------
    >>> s = PrivacySignal.model_validate_json(
    ...     b'{"event_id": "s1", "ts": "2026-01-01T10:00:00Z", "project": "p",'
    ...     b' "source": "pii-scanner", "kind": "pii_detected", "severity": "high",'
    ...     b' "item_id": "i1", "attributes": {"pii_type": "phone"}}'
    ... )
    >>> s.kind, s.count, s.annotator_id, s.attributes
    ('pii_detected', 1, None, {'pii_type': 'phone'})
    """

    event_id: Identifier = Field(description="Unique id of this signal; duplicates are collapsed.")
    ts: AwareDatetime = Field(description="Event time: when it was observed, with UTC offset.")
    project: Identifier = Field(description="Labeling project the signal is about.")
    source: Identifier = Field(description="What emitted it (a scanner, the platform, ...).")
    kind: SignalKind = Field(description="What was observed.")
    severity: SignalSeverity = Field(description="How serious the source judges it.")
    annotator_id: Identifier | None = Field(
        None, description="The annotator involved (exposed to PII, violating access, ...)."
    )
    item_id: Identifier | None = Field(None, description="The item involved.")
    count: int = Field(
        1, ge=1, le=1_000_000_000, description="Occurrences this signal reports (e.g. rows)."
    )
    attributes: dict[AttributeKey, AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="Small typed details: keys [a-z][a-z0-9_]*, strings up to 256 characters.",
    )
    schema_version: int = Field(
        PRIVACY_SIGNAL_SCHEMA_VERSION, description="Version of this schema the producer wrote."
    )

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        return _known_version_of(value, SUPPORTED_PRIVACY_SIGNAL_VERSIONS)

    @model_validator(mode="after")
    def _revocation_names_item(self) -> PrivacySignal:
        if self.kind in REVOKING_KINDS and self.item_id is None:
            raise ValueError(f"item_id: required for kind {self.kind}")
        return self
