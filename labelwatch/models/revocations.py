"""Items that must no longer be labeled, and the labels that came anyway.

A ``consent_revoked`` or ``deletion_requested`` privacy signal revokes an item: from its
event time on, the labeling platform must stop handing the item to annotators. Every label
of a revoked item given at or after the revocation raises one ``revoked_item_labeled`` alert
(critical, one-shot). Its id is derived from the label's position in its input topic, so the
same label found from either side (the label arriving after the revocation, or the
revocation arriving after the label) gives the same alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from labelwatch.schemas import LabelEvent, PrivacySignal, SourcePosition
from labelwatch.schemas.alerts import Alert, alert_id
from labelwatch.schemas.events import REVOKING_KINDS

KIND = "revoked_item_labeled"


@dataclass(frozen=True, slots=True)
class Revocation:
    """An item revoked at ``revoked_at`` by the signal ``event_id`` of kind ``kind``."""

    project: str
    item_id: str
    revoked_at: datetime
    kind: str
    event_id: str

    @classmethod
    def from_signal(cls, signal: PrivacySignal) -> Revocation | None:
        """The revocation a signal makes, or None if it revokes nothing."""
        if signal.kind not in REVOKING_KINDS or signal.item_id is None:
            return None
        return cls(signal.project, signal.item_id, signal.ts, signal.kind, signal.event_id)


class RevocationRegistry:
    """The revoked items a worker knows, the earliest revocation per item.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> r = RevocationRegistry()
    >>> r.add(Revocation("p", "i1", datetime(2026, 1, 1, tzinfo=UTC), "consent_revoked", "s1"))
    True
    >>> r.revoked_at("p", "i1").isoformat(), r.revoked_at("p", "i2")
    ('2026-01-01T00:00:00+00:00', None)
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Revocation] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, revocation: Revocation) -> bool:
        """Record ``revocation``; True if it is new or earlier than the one known."""
        key = (revocation.project, revocation.item_id)
        known = self._items.get(key)
        if known is not None and known.revoked_at <= revocation.revoked_at:
            return False
        self._items[key] = revocation
        return True

    def update(self, revocations: Iterable[Revocation]) -> None:
        for revocation in revocations:
            self.add(revocation)

    def get(self, project: str, item_id: str) -> Revocation | None:
        return self._items.get((project, item_id))

    def revoked_at(self, project: str, item_id: str) -> datetime | None:
        known = self._items.get((project, item_id))
        return None if known is None else known.revoked_at

    def check(self, labels: Iterable[tuple[LabelEvent, SourcePosition]]) -> list[Alert]:
        """An alert for each label of a revoked item given at or after its revocation."""
        if not self._items:
            return []
        alerts = []
        for event, source in labels:
            known = self._items.get((event.project, event.item_id))
            if known is not None and event.ts >= known.revoked_at:
                alerts.append(revoked_label_alert(event, source, known))
        return alerts


def revoked_label_alert(event: LabelEvent, source: SourcePosition, revocation: Revocation) -> Alert:
    """The one-shot alert for a label given to a revoked item."""
    shard = f"{source.topic}:{source.partition}"
    after = (event.ts - revocation.revoked_at).total_seconds()
    return Alert(
        alert_id=alert_id(KIND, event.project, event.item_id, shard, source.offset),
        kind=KIND,
        state="opened",
        severity="critical",
        ts=event.ts,
        project=event.project,
        annotator_id=event.annotator_id,
        item_id=event.item_id,
        subject=event.item_id,
        score=after,
        threshold=0.0,
        reason=(
            f"item {event.item_id} was labeled by {event.annotator_id} {after:.0f} s after "
            f"{revocation.kind} ({revocation.event_id}); stop serving it"
        ),
        evidence={
            "revoked_at": revocation.revoked_at.isoformat(),
            "revocation_kind": revocation.kind,
            "revocation_event_id": revocation.event_id,
            "label_event_id": event.event_id,
        },
        detector="rule:revoked_item",
        shard=shard,
        offset=source.offset,
        opened_offset=source.offset,
    )
