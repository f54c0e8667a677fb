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
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

LABEL_EVENT_SCHEMA_VERSION = 1
SUPPORTED_LABEL_EVENT_VERSIONS = frozenset({1})

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""An id given by the labeling platform: non-empty, at most 256 characters."""

LabelValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""A categorical label: non-empty, at most 128 characters."""


class LabelEvent(BaseModel):
    """One answer given by one annotator for one item.

    Examples
    --------
    >>> e = LabelEvent.model_validate_json(
    ...     b'{"event_id": "e1", "ts": "2026-01-01T10:00:00+01:00", "project": "p",'
    ...     b' "item_id": "i1", "annotator_id": "a1", "label": "cat"}'
    ... )
    >>> e.ts.isoformat(), e.schema_version, e.gold_label
    ('2026-01-01T09:00:00+00:00', 1, None)
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

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
    schema_version: int = Field(
        LABEL_EVENT_SCHEMA_VERSION, description="Version of this schema the producer wrote."
    )

    @field_validator("ts")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_LABEL_EVENT_VERSIONS:
            supported = ", ".join(str(v) for v in sorted(SUPPORTED_LABEL_EVENT_VERSIONS))
            raise ValueError(f"unsupported schema_version {value}; supported: {supported}")
        return value
