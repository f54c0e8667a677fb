"""PrivacyTracker: redelivered offsets and re-sent event ids are counted once, also after a
restore from a checkpoint."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from labelwatch.models.privacy import PrivacyConfig
from labelwatch.models.privacy_tracker import PrivacyTracker
from labelwatch.schemas import PrivacySignal, SourcePosition
from tests.resend import with_resends

START = datetime(2026, 3, 2, tzinfo=UTC)


def signals(n: int, seed: int = 3) -> list[PrivacySignal]:
    """A quiet series with a burst in the middle, so the monitor has something to find."""
    rng = random.Random(seed)
    out, t = [], 0.0
    for i in range(n):
        t += rng.expovariate(1 / 20.0) if not n // 2 < i < n // 2 + 60 else 1.0
        out.append(
            PrivacySignal(
                event_id=f"e{i}",
                ts=START + timedelta(seconds=t),
                project="p",
                source="scanner",
                kind="pii_detected",
                severity="low",
                item_id=f"i{i}",
            )
        )
    return out


def positioned(stream: list[PrivacySignal]) -> list[tuple[PrivacySignal, SourcePosition]]:
    return [(s, SourcePosition("privacy", 0, offset)) for offset, s in enumerate(stream)]


def tracker() -> PrivacyTracker:
    return PrivacyTracker(PrivacyConfig(), checkpoint_every=100)


def alerts_of(t: PrivacyTracker, data: list[tuple[PrivacySignal, SourcePosition]]):
    outputs = []
    for start in range(0, len(data), 50):
        outputs.append(t.apply(data[start : start + 50]))
    return outputs


def test_resent_signals_are_counted_once() -> None:
    base = signals(600)
    control = tracker()
    control.restore("privacy", 0, None)
    # Offsets (and so alert ids) shift with the re-sent copies; what was found does not.
    expected = [
        (a.kind, a.state, a.ts) for o in alerts_of(control, positioned(base)) for a in o.alerts
    ]
    assert expected  # the burst raises a spike

    noisy = positioned(with_resends(base, every=4, lag=15))
    t = tracker()
    t.restore("privacy", 0, None)
    outputs = alerts_of(t, noisy)
    assert [(a.kind, a.state, a.ts) for o in outputs for a in o.alerts] == expected
    duplicates = [d for o in outputs for d in o.duplicates]
    late = [x for o in outputs for x in o.late]
    assert sum(duplicates) == len(noisy) - len(base)
    assert all(x is None for x, d in zip(late, duplicates, strict=True) if d)


def test_a_restored_shard_still_recognises_resent_signals() -> None:
    base = signals(600)
    noisy = positioned(with_resends(base, every=3, lag=30))
    control = tracker()
    control.restore("privacy", 0, None)
    control_out = alerts_of(control, noisy)

    cut = 500
    crashed = tracker()
    crashed.restore("privacy", 0, None)
    before = alerts_of(crashed, noisy[:cut])
    checkpoint = [c for o in before for c in o.checkpoints][-1]
    flags = [d for o in before for d in o.duplicates]
    stored = [v for v, d in zip(noisy[:cut], flags, strict=True) if not d]
    recent = [s.event_id for s, p in stored if p.offset <= checkpoint.last_offset]
    later = [(s, p) for s, p in stored if p.offset > checkpoint.last_offset]

    recovered = tracker()
    recovered.restore("privacy", 0, checkpoint, later, recent)
    after = alerts_of(recovered, noisy[cut:])
    control_flags = [d for o in control_out for d in o.duplicates]
    assert [d for o in after for d in o.duplicates] == control_flags[cut:]
    assert sum(control_flags[cut:]) > 10
