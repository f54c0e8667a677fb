"""Alerts: what the monitor concludes about annotators, as events on the alerts topic.

One model for every kind. An alert belongs to an *episode* of one annotator in one project:
it is ``opened`` when a detector fires, ``updated`` when the episode gets worse (a second
detector fires: severity critical), and ``resolved`` when the condition clears (the annotator
recovered), never once per label. ``alert_id`` is derived from what identifies the
episode (kind, project, annotator, the shard and offset of the label that opened it), so a
replay or a retried write of the same episode produces the same id and duplicates collapse.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

ALERT_SCHEMA_VERSION = 1

AlertKind = Literal[
    "annotator_drift",
    "annotator_anomaly",
    "spammer_suspected",
    "low_reliability",
    "privacy_spike",
    "privacy_exposure",
    "revoked_item_labeled",
    "access_violation",
    "automation_bias",
    "model_drift",
]
QUALITY_ALERT_KINDS: tuple[str, ...] = (
    "annotator_drift",
    "annotator_anomaly",
    "spammer_suspected",
    "low_reliability",
)
PRIVACY_ALERT_KINDS: tuple[str, ...] = (
    "privacy_spike",
    "privacy_exposure",
    "revoked_item_labeled",
    "access_violation",
)
ASSIST_ALERT_KINDS: tuple[str, ...] = ("automation_bias", "model_drift")
"""ML-assisted labeling: an annotator taking wrong pre-labels (``automation_bias``), and the
model's pre-labels agreeing less with the crowd (``model_drift``, subject ``model``)."""
ALERT_KINDS: tuple[str, ...] = QUALITY_ALERT_KINDS + PRIVACY_ALERT_KINDS + ASSIST_ALERT_KINDS
ONE_SHOT_KINDS: frozenset[str] = frozenset(
    {"privacy_exposure", "revoked_item_labeled", "access_violation"}
)
"""Kinds that report one incident (an exposure, a violation, a label on a revoked item): they
are opened and never resolved, since nothing about them can clear."""
AlertState = Literal["opened", "updated", "resolved"]
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

EvidenceValue = float | int | str | None
MAX_EVIDENCE_ITEMS = 16


def alert_id(episode: str, project: str, subject: str, shard: str, opened_offset: int) -> str:
    """Deterministic id of an episode: the same inputs always give the same id.

    ``episode`` is the alert's kind, or the name of the episode when one kind has several
    (``copied_answers`` beside the behaviour anomaly of ``annotator_anomaly``); ``subject``
    what the alert is about (see :attr:`Alert.subject`)."""
    key = "\x1f".join((episode, project, subject, shard, str(opened_offset)))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Alert(BaseModel):
    """A finding in one project: opened, updated or resolved.

    Quality alerts are about an annotator, as is ``automation_bias``; ``model_drift`` is about
    the project's pre-labeling model (subject ``model``). Privacy alerts are about an annotator
    (``privacy_exposure``, ``access_violation``), an item (``revoked_item_labeled``) or a
    signal kind's rate (``privacy_spike``: the subject is the signal kind). ``subject`` says
    which; it defaults to the annotator.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> a = Alert(
    ...     alert_id=alert_id("annotator_drift", "p", "ann-1", "labels:0", 41),
    ...     kind="annotator_drift", state="opened", severity="warning",
    ...     ts=datetime(2026, 1, 1, tzinfo=UTC), project="p", annotator_id="ann-1",
    ...     score=10.7, threshold=10.3, reason="answers look random",
    ...     shard="labels:0", offset=41, opened_offset=41,
    ... )
    >>> a.subject, len(a.alert_id)
    ('ann-1', 32)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: str = Field(description="Id of the episode; equal for all its states.")
    kind: AlertKind
    state: AlertState
    severity: Severity
    ts: AwareDatetime = Field(
        description="Event time of the label at which this state was reached."
    )
    project: str
    annotator_id: str = Field("", description="The annotator involved, if any.")
    item_id: str = Field("", description="The item involved, if any.")
    subject: str = Field("", description="What the alert is about; the annotator by default.")
    score: float = Field(description="The detector's statistic when the state was reached.")
    threshold: float = Field(description="The value ``score`` had to cross.")
    reason: str = Field(description="What changed, in plain words.")
    evidence: dict[str, EvidenceValue] = Field(
        default_factory=dict,
        max_length=MAX_EVIDENCE_ITEMS,
        description="Numbers behind the reason (before/after rates, window, ...).",
    )
    detector: str = Field("", description="Which detector or rule fired.")
    shard: str = Field(description="Input topic and partition the detector ran on.")
    offset: int = Field(description="Offset of the label at which this state was reached.")
    opened_offset: int = Field(description="Offset of the label that opened the episode.")
    schema_version: int = ALERT_SCHEMA_VERSION

    @model_validator(mode="after")
    def _default_subject(self) -> Alert:
        if not self.subject:
            if not self.annotator_id:
                raise ValueError("an alert needs a subject or an annotator_id")
            object.__setattr__(self, "subject", self.annotator_id)
        return self
