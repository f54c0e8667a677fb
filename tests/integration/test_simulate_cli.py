"""``labelwatch simulate`` producing to the real broker: labels and, with --privacy, signals."""

from __future__ import annotations

import pytest

from labelwatch.cli import main
from labelwatch.schemas import decode_privacy_signal
from labelwatch.streams.topics import end_offsets, read_range
from tests.integration.conftest import settings_from

pytestmark = pytest.mark.broker


def test_simulate_produces_labels_and_privacy_signals(
    e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_from(e2e_env, monkeypatch)
    argv = ["simulate", "--events", "300", "--privacy", "--hours", "1", "--spikes", "1"]
    assert main([*argv, "--exposures", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sent 300 messages (0 malformed) to {settings.topic_labels}"
    sent = int(out[1].split()[1])
    assert out[1] == f"sent {sent} privacy signals over 1 h to {settings.topic_privacy}"
    assert sum(end_offsets(settings, settings.topic_labels).values()) == 300
    ends = end_offsets(settings, settings.topic_privacy)
    assert sum(ends.values()) == sent > 0
    records = read_range(settings, settings.topic_privacy, dict.fromkeys(ends, 0))
    signals = [
        decode_privacy_signal(r.value, max_bytes=settings.max_message_bytes) for r in records
    ]
    assert {r.key for r in records} == {s.project.encode() for s in signals}
    assert any(s.severity == "critical" for s in signals)  # the injected exposure
