"""Privacy-signal detectors applied to the stream, one :class:`PrivacyMonitor` per shard.

Pure (no I/O), the privacy counterpart of :mod:`labelwatch.models.tracker`. Producers key
privacy signals by project, so each (project, kind) rate series lives in one partition of the
privacy topic, and each partition (a *shard*) has a monitor of its own. Recovery works as for
labels: a shard's monitor state is checkpointed to ``model_checkpoints`` every
``checkpoint_every`` signals; a worker that gets the partition loads the newest checkpoint,
replays the shard's later signals from ``privacy_signals``, and skips redelivered offsets
it already applied, so no signal is counted twice. A signal sent again under the same
``event_id`` within the shard's last ``dedup_window`` signals is counted once too
(:mod:`labelwatch.models.dedup`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic_core import to_json

from labelwatch.models.dedup import RecentIds
from labelwatch.models.privacy import PrivacyConfig, PrivacyFinding, PrivacyMonitor
from labelwatch.models.tracker import Checkpoint, shard_name
from labelwatch.schemas import PrivacySignal, SourcePosition
from labelwatch.schemas.alerts import Alert, alert_id


def finding_alert(finding: PrivacyFinding, shard: str, offset: int) -> Alert:
    """The alert of a privacy finding reached at ``offset`` of ``shard``."""
    return Alert(
        alert_id=alert_id(finding.kind, finding.project, finding.subject, shard, finding.opened_at),
        kind=finding.kind,
        state=finding.state,
        severity=finding.severity,
        ts=finding.ts,
        project=finding.project,
        annotator_id=finding.annotator_id,
        item_id=finding.item_id,
        subject=finding.subject,
        score=finding.score,
        threshold=finding.threshold,
        reason=finding.reason,
        evidence=dict(finding.evidence),
        detector=finding.detector,
        shard=shard,
        offset=offset,
        opened_offset=finding.opened_at,
    )


@dataclass
class PrivacyOutput:
    """What one batch produced: alerts, which signals were late, checkpoints to store."""

    alerts: list[Alert] = field(default_factory=list)
    # Aligned with the batch's signals: whether each came after its window closed, or None
    # for a signal not applied because it was applied (and stored) before: a redelivered
    # offset, or a duplicate (below). Neither is stored again.
    late: list[bool | None] = field(default_factory=list)
    # Aligned with the batch's signals: sent before under the same event_id.
    duplicates: list[bool] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)


@dataclass
class _Shard:
    monitor: PrivacyMonitor
    recent: RecentIds
    last_offset: int = -1
    n_signals: int = 0
    since_checkpoint: int = 0


class PrivacyTracker:
    """One privacy monitor per input partition, with checkpoints and redelivery skipping."""

    def __init__(
        self,
        config: PrivacyConfig | None = None,
        checkpoint_every: int = 2000,
        dedup_window: int = 100_000,
    ) -> None:
        self._config = config or PrivacyConfig()
        self._checkpoint_every = checkpoint_every
        self.dedup_window = dedup_window
        self._shards: dict[tuple[str, int], _Shard] = {}

    def has_shard(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._shards

    def restore(
        self,
        topic: str,
        partition: int,
        checkpoint: Checkpoint | None,
        later: Sequence[tuple[PrivacySignal, SourcePosition]] = (),
        recent_ids: Sequence[str] = (),
    ) -> PrivacyOutput:
        """Take the shard from its checkpoint, then re-apply its stored later signals.

        ``recent_ids``: the event ids of the shard's last ``dedup_window`` stored signals at
        or before the checkpoint's offset, oldest first. Findings re-raised by the replay are
        returned (their ids equal the originals)."""
        recent = RecentIds(self.dedup_window, recent_ids)
        if checkpoint is None:
            shard = _Shard(PrivacyMonitor(self._config), recent)
        else:
            state = json.loads(checkpoint.state)
            shard = _Shard(
                PrivacyMonitor.from_state(state, self._config),
                recent,
                last_offset=checkpoint.last_offset,
                n_signals=checkpoint.n_labels,
            )
        self._shards[(topic, partition)] = shard
        return self.apply(later)

    def apply(self, signals: Sequence[tuple[PrivacySignal, SourcePosition]]) -> PrivacyOutput:
        """Observe a batch (shards must exist: see :meth:`restore`). Redelivered offsets and
        recently seen event ids, applied before, are skipped (``late`` None)."""
        out = PrivacyOutput()
        touched: set[tuple[str, int]] = set()
        for signal, source in signals:
            key = (source.topic, source.partition)
            shard = self._shards[key]
            if source.offset <= shard.last_offset:
                out.late.append(None)
                out.duplicates.append(False)
                continue
            if signal.event_id in shard.recent:
                out.late.append(None)
                out.duplicates.append(True)
                shard.last_offset = source.offset
                continue
            shard.recent.add(signal.event_id)
            out.duplicates.append(False)
            before = shard.monitor.late_signals
            findings = shard.monitor.observe(signal, source.offset)
            out.late.append(shard.monitor.late_signals > before)
            name = shard_name(key)
            out.alerts.extend(finding_alert(f, name, source.offset) for f in findings)
            shard.last_offset = source.offset
            shard.n_signals += 1
            shard.since_checkpoint += 1
            touched.add(key)
        for key in sorted(touched):
            shard = self._shards[key]
            if shard.since_checkpoint >= self._checkpoint_every:
                out.checkpoints.append(self.checkpoint(*key))
        return out

    def checkpoint(self, topic: str, partition: int) -> Checkpoint:
        """The shard's state now (and reset its countdown)."""
        shard = self._shards[(topic, partition)]
        shard.since_checkpoint = 0
        state = to_json(shard.monitor.to_state()).decode()
        return Checkpoint(topic, partition, shard.last_offset, shard.n_signals, state)

    def drop(self, topic: str, partition: int) -> None:
        """Forget a shard (its partition went to another worker)."""
        self._shards.pop((topic, partition), None)
