"""Fuzzing the event decoders: any message value becomes a valid event or an InvalidEvent.

``decode_event`` (and ``decode_label_event`` / ``decode_privacy_signal``) must never raise
anything else: a worker that crashes on one bad message stops its partition for good. Inputs:
arbitrary bytes, and JSON documents that are mostly *nearly* valid (a valid event with a few
keys dropped, added, duplicated or given odd values, or odd raw literals such as ``NaN`` and
``1e400``), which is where validators and error reporting get exercised. ``decode_batch`` must
account for every message of a batch: valid or delivered to the dead-letter output, and
counted as such.

Deterministic (``derandomize=True``, no example database), so CI runs the same examples.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwatch.privacy_simulator import PrivacySimulationConfig, PrivacySimulator
from labelwatch.schemas import (
    REJECTION_CODES,
    InvalidEvent,
    LabelEvent,
    PrivacySignal,
    SourcePosition,
)
from labelwatch.schemas.decode import (
    EMPTY,
    INVALID_FIELDS,
    INVALID_JSON,
    INVALID_UTF8,
    OVERSIZED,
    UNSUPPORTED_VERSION,
    decode_event,
    decode_label_event,
    decode_label_message,
    decode_privacy_message,
    decode_privacy_signal,
)
from labelwatch.schemas.events import (
    PRIVACY_SIGNAL_KINDS,
    REVOKING_KINDS,
    SIGNAL_SEVERITIES,
    SUPPORTED_LABEL_EVENT_VERSIONS,
    SUPPORTED_PRIVACY_SIGNAL_VERSIONS,
)
from labelwatch.simulator import LabelingSimulator, SimulationConfig, malformed_messages
from labelwatch.sinks.metrics import Metrics
from labelwatch.streams.dead_letter import RawMessage, dead_letter_headers
from labelwatch.streams.pipeline import decode_batch

MAX_BYTES = 4096
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
Event = LabelEvent | PrivacySignal
Model = type[LabelEvent] | type[PrivacySignal]
DECODERS: dict[Model, Callable[..., Event]] = {
    LabelEvent: decode_label_event,
    PrivacySignal: decode_privacy_signal,
}
SUPPORTED_VERSIONS = {
    LabelEvent: SUPPORTED_LABEL_EVENT_VERSIONS,
    PrivacySignal: SUPPORTED_PRIVACY_SIGNAL_VERSIONS,
}
MODELS = pytest.mark.parametrize("model", [LabelEvent, PrivacySignal], ids=lambda m: m.__name__)


# --------------------------------------------------------------------------------------------
# The properties
# --------------------------------------------------------------------------------------------


def check_event(event: Event, model: Model) -> None:
    """What every decoded event guarantees."""
    assert type(event) is model
    assert isinstance(event.ts, datetime) and event.ts.tzinfo is UTC
    assert event.schema_version in SUPPORTED_VERSIONS[model]
    if isinstance(event, PrivacySignal) and event.kind in REVOKING_KINDS:
        assert event.item_id is not None
    if isinstance(event, PrivacySignal):
        assert all(math.isfinite(v) for v in event.attributes.values() if isinstance(v, float))
    again = decode_event(event.model_dump_json().encode(), model, max_bytes=1 << 24)
    assert again == event


def check_rejection(rejection: InvalidEvent, raw: bytes | None, max_bytes: int) -> None:
    """What every rejection guarantees, including which check comes first."""
    assert rejection.code in REJECTION_CODES
    assert rejection.reason.strip()
    assert str(rejection) == f"{rejection.code}: {rejection.reason}"
    if rejection.code == INVALID_FIELDS:
        assert rejection.fields and all(rejection.fields)
    if rejection.code == UNSUPPORTED_VERSION:
        assert rejection.fields == ("schema_version",)
    assert (rejection.code == EMPTY) == (not raw)
    if raw:
        assert (rejection.code == OVERSIZED) == (len(raw) > max_bytes)
    if raw and len(raw) <= max_bytes:
        try:
            raw.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            utf8 = False
        assert (rejection.code == INVALID_UTF8) == (not utf8)


def outcome(raw: bytes | None, model: Model, max_bytes: int = MAX_BYTES) -> Event | InvalidEvent:
    """Decode with the model's own decoder; anything but an event or InvalidEvent propagates
    and fails the test with the input that caused it."""
    try:
        event = DECODERS[model](raw, max_bytes=max_bytes)
    except InvalidEvent as rejection:
        check_rejection(rejection, raw, max_bytes)
        hypothesis.event(rejection.code)  # shown by --hypothesis-show-statistics
        return rejection
    check_event(event, model)
    hypothesis.event("valid")
    return event


# --------------------------------------------------------------------------------------------
# Strategies: valid events
# --------------------------------------------------------------------------------------------

identifiers = st.one_of(
    st.sampled_from(["e-1", "ann-007", "sentiment", "item-42", "pii-scanner"]),
    st.text(min_size=1, max_size=12),
    st.integers(250, 256).map(lambda n: "x" * n),  # at the 256-character limit
)
label_values = st.one_of(
    st.sampled_from(["cat", "dog", "positive", "negative", "neutral"]),
    st.text(min_size=1, max_size=8),
    st.integers(124, 128).map(lambda n: "y" * n),  # at the 128-character limit
)
# Any offset a datetime allows, on any date: near 0001-01-01 and 9999-12-31 the offset can
# move the instant out of datetime's range once converted to UTC.
tzinfos = st.one_of(
    st.just(UTC),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m))),
)
timestamps = st.builds(
    lambda dt, tz, spec, zulu: (
        dt.replace(tzinfo=tz).isoformat(timespec=spec).replace("+00:00", "Z" if zulu else "+00:00")
    ),
    st.datetimes()
    | st.datetimes(max_value=datetime(1, 1, 2))
    | st.datetimes(min_value=datetime(9999, 12, 30)),
    tzinfos,
    st.sampled_from(["auto", "seconds", "milliseconds", "microseconds"]),
    st.booleans(),
)


@st.composite
def valid_label_events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": draw(identifiers),
        "ts": draw(timestamps),
        "project": draw(identifiers),
        "item_id": draw(identifiers),
        "annotator_id": draw(identifiers),
        "label": draw(label_values),
    }
    if draw(st.booleans()):
        event["gold_label"] = draw(st.none() | label_values)
    if draw(st.booleans()):
        event["duration_ms"] = draw(st.none() | st.integers(0, 86_400_000))
    if draw(st.booleans()):
        event["schema_version"] = 1
    return event


attribute_values = st.one_of(
    st.text(max_size=16),
    st.integers(250, 256).map(lambda n: "z" * n),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def valid_privacy_signals(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(PRIVACY_SIGNAL_KINDS))
    signal: dict[str, Any] = {
        "event_id": draw(identifiers),
        "ts": draw(timestamps),
        "project": draw(identifiers),
        "source": draw(identifiers),
        "kind": kind,
        "severity": draw(st.sampled_from(SIGNAL_SEVERITIES)),
    }
    if kind in REVOKING_KINDS or draw(st.booleans()):
        signal["item_id"] = draw(identifiers)
    elif draw(st.booleans()):
        signal["item_id"] = None
    if draw(st.booleans()):
        signal["annotator_id"] = draw(st.none() | identifiers)
    if draw(st.booleans()):
        signal["count"] = draw(st.integers(1, 1_000_000_000))
    if draw(st.booleans()):
        signal["attributes"] = draw(
            st.dictionaries(
                st.from_regex(r"[a-z][a-z0-9_]{0,63}", fullmatch=True),
                attribute_values,
                max_size=4,
            )
            | st.integers(30, 32).map(lambda n: {f"k{i}": i for i in range(n)})
        )
    if draw(st.booleans()):
        signal["schema_version"] = 1
    return signal


# What the simulators send, as further valid starting points.
SIMULATED_LABELS = [
    s.event
    for s in itertools.islice(
        LabelingSimulator(SimulationConfig(seed=11)).labels(datetime(2026, 1, 1, tzinfo=UTC)), 20
    )
]
SIMULATED_SIGNALS = [
    s.event
    for s in itertools.islice(
        PrivacySimulator(PrivacySimulationConfig(seed=5)).signals(
            datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC)
        ),
        40,
    )
]
VALID: dict[Model, st.SearchStrategy[dict[str, Any]]] = {
    LabelEvent: valid_label_events() | st.sampled_from(SIMULATED_LABELS),
    PrivacySignal: valid_privacy_signals() | st.sampled_from(SIMULATED_SIGNALS),
}


# --------------------------------------------------------------------------------------------
# Strategies: mutations
# --------------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**100, -(10**400)]),
    st.floats(),  # NaN and +-inf included: json.dumps writes them as NaN / Infinity literals
    st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0, 1.0, 2.5]),
    st.text(max_size=12),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.text(st.characters(max_codepoint=0x10FFFF), max_size=6),
    st.integers(255, 300).map(lambda n: "w" * n),
    st.integers(1000, 5000).map(lambda n: "v" * n),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def nested(depth: int, as_dict: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value


deep_values = st.builds(nested, st.integers(1, 400), st.booleans())
# Raw JSON value text that json.dumps would never write, or that stresses number parsing.
RAW_LITERALS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "1e400",
    "-1e400",
    "1E-400",
    "1e308",
    "-0",
    "0.0e0",
    "123456789012345678901234567890",
    "1" * 5000,
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
    "true",
    "null",
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\u0000"',
    '"\\x"',
    '"a\x00b"',
    '"a\tb"',
    "[]",
    "{}",
    '{"a": }',
]
FIELD_NAMES = sorted(set(LabelEvent.model_fields) | set(PrivacySignal.model_fields))
# Near misses of real field names: misspellings must be rejected, not ignored.
UNKNOWN_KEYS = ["gold", "Label", "event_id ", "eventId", "ts\x00", "", "colour", "__proto__"]
WEIRD_VERSIONS = ["0", "2", "-1", "99", str(2**63), str(10**40), '"1"', "1.0", "true", "null"]
WEIRD_TIMESTAMPS = [
    '"2026-01-01T00:00:00"',  # naive
    '"2026-01-01"',
    '"2026-01-01T00:00:00+24:00"',
    '"9999-12-31T23:59:59.999999-23:59"',
    '"0001-01-01T00:00:00+23:59"',
    '"0000-01-01T00:00:00Z"',
    '"2026-02-30T00:00:00Z"',
    '"2026-01-01T25:00:00Z"',
    '"now"',
    "1767225600",
    "1767225600.5",
    '"1767225600"',
]


@st.composite
def near_valid_documents(draw: st.DrawFn, model: Model) -> bytes:
    """A valid event's JSON text after a few random mutations (possibly none)."""
    ensure_ascii = draw(st.booleans())

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii)

    pairs = [(dumps(k), dumps(v)) for k, v in draw(VALID[model]).items()]
    for _ in range(draw(st.integers(0, 3))):
        op = draw(
            st.sampled_from(
                [
                    "drop",
                    "unknown",
                    "replace",
                    "literal",
                    "deep",
                    "duplicate",
                    "version",
                    "ts",
                    "attribute",
                ]
            )
        )
        at = draw(st.integers(0, max(0, len(pairs) - 1)))
        if op == "drop" and pairs:
            del pairs[at]
        elif op == "unknown":
            key = draw(st.sampled_from(UNKNOWN_KEYS) | st.text(max_size=10))
            pairs.insert(at, (dumps(key), dumps(draw(json_values))))
        elif op in ("replace", "literal", "deep"):
            key = dumps(draw(st.sampled_from(FIELD_NAMES)))
            if op == "replace":
                value = dumps(draw(json_values))
            elif op == "literal":
                value = draw(st.sampled_from(RAW_LITERALS))
            else:
                value = dumps(draw(deep_values))
            pairs = [p for p in pairs if p[0] != key]
            pairs.insert(at, (key, value))
        elif op == "duplicate" and pairs:
            # The same key twice in the raw text, with its own value or another one.
            key, value = pairs[at]
            other = draw(st.just(value) | json_values.map(dumps) | st.sampled_from(RAW_LITERALS))
            pairs.insert(draw(st.integers(0, len(pairs))), (key, other))
        elif op == "version":
            pairs = [p for p in pairs if p[0] != '"schema_version"']
            pairs.insert(at, ('"schema_version"', draw(st.sampled_from(WEIRD_VERSIONS))))
        elif op == "ts":
            pairs = [p for p in pairs if p[0] != '"ts"']
            pairs.insert(at, ('"ts"', draw(st.sampled_from(WEIRD_TIMESTAMPS))))
        elif op == "attribute":
            # One attribute (a PrivacySignal field) with an odd key or value.
            key = draw(st.sampled_from(["pii_type", "rows", "x", "A", "1x", "a" * 65]))
            value = draw(json_values.map(dumps) | st.sampled_from(RAW_LITERALS))
            pairs = [p for p in pairs if p[0] != '"attributes"']
            pairs.insert(at, ('"attributes"', f"{{{dumps(key)}: {value}}}"))
    separator = draw(st.sampled_from([", ", ",", ",\n  "]))
    text = "{" + separator.join(f"{k}: {v}" for k, v in pairs) + "}"
    # Now and then damage the text itself: cut it, or splice in some bytes.
    raw = text.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none"] * 8 + ["truncate", "splice"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "splice":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


@st.composite
def long_values(draw: st.DrawFn) -> bytes:
    """A short pattern repeated to about the size limit, either side of it."""
    pattern = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"{", b"[", b"\x00", b" "]))
    size = draw(st.integers(MAX_BYTES - 2, MAX_BYTES + 2) | st.integers(0, 3 * MAX_BYTES))
    return (pattern * (size // len(pattern) + 1))[:size]


arbitrary_values = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=64),
    st.text(max_size=32).map(str.encode),
    st.text(st.characters(max_codepoint=0x10FFFF), max_size=16).map(
        lambda t: t.encode("utf-8", "surrogatepass")
    ),
    st.sampled_from(
        [b"\x00", b"{\x00}", b"\xef\xbb\xbf{}", b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80"]
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    long_values(),
    st.sampled_from([value for _, value in malformed_messages(3, 10, max_message_bytes=MAX_BYTES)]),
)


def message_values(model: Model) -> st.SearchStrategy[bytes | None]:
    """Two in three nearly valid documents, one in three anything."""
    return st.integers(0, 2).flatmap(
        lambda i: arbitrary_values if i == 0 else near_valid_documents(model)
    )


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@MODELS
@FUZZ
@given(raw=arbitrary_values, max_bytes=st.sampled_from([MAX_BYTES, 0, 1, 64, 1 << 20]))
def test_arbitrary_bytes_give_an_event_or_a_rejection(
    model: Model, raw: bytes | None, max_bytes: int
) -> None:
    try:
        event = decode_event(raw, model, max_bytes=max_bytes)
    except InvalidEvent as rejection:
        check_rejection(rejection, raw, max_bytes)
    else:
        check_event(event, model)


@MODELS
@FUZZ
@given(data=st.data())
def test_near_valid_documents_give_an_event_or_a_rejection(
    model: Model, data: st.DataObject
) -> None:
    outcome(data.draw(near_valid_documents(model), label="raw"), model)


@MODELS
@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_valid_events_decode_and_round_trip(model: Model, data: st.DataObject) -> None:
    event = data.draw(VALID[model], label="event")
    raw = json.dumps(event).encode()
    decoded = outcome(raw, model, max_bytes=1 << 20)
    if isinstance(decoded, InvalidEvent):
        # Valid by construction except for one thing: a timestamp at datetime's very edge
        # whose offset moves it out of range in UTC.
        assert decoded.fields == ("ts",), decoded
        return
    # Nothing a producer sent is changed, except the time's offset (normalised to UTC).
    for key, value in event.items():
        if key == "ts":
            assert decoded.ts == datetime.fromisoformat(value)
        else:
            assert getattr(decoded, key) == value, key


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.calls: list[list[tuple[RawMessage, InvalidEvent]]] = []

    async def send(self, rejects: Sequence[tuple[RawMessage, InvalidEvent]]) -> None:
        self.calls.append(list(rejects))


async def no_retry(component: str, attempt: Callable[[], Awaitable[None]]) -> None:
    await attempt()


def pseudonym(annotator_id: str) -> str:
    return f"pseudo:{annotator_id}"


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"labelwatch_{name}_total", labels) or 0.0


TOPICS = ("labels", "labels-b")


async def decode_with(
    model: Model, batch: list[RawMessage], dead_letters: RecordingDeadLetters, metrics: Metrics
) -> Sequence[tuple[Event, SourcePosition]]:
    """decode_batch as each pipeline calls it, with a pseudonymizer."""
    if model is LabelEvent:
        decode_label = functools.partial(decode_label_message, max_bytes=MAX_BYTES)
        return await decode_batch(batch, decode_label, pseudonym, dead_letters, metrics, no_retry)
    decode_signal = functools.partial(decode_privacy_message, max_bytes=MAX_BYTES)
    return await decode_batch(batch, decode_signal, pseudonym, dead_letters, metrics, no_retry)


@MODELS
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_decode_batch_accounts_for_every_message(model: Model, data: st.DataObject) -> None:
    values = data.draw(st.lists(message_values(model), max_size=24), label="values")
    topics = data.draw(
        st.lists(st.sampled_from(TOPICS), min_size=len(values), max_size=len(values))
    )
    batch = [
        RawMessage(topic, 0, offset, None, value)
        for offset, (topic, value) in enumerate(zip(topics, values, strict=True))
    ]
    expected = [outcome(m.value, model) for m in batch]
    dead_letters = RecordingDeadLetters()
    metrics = Metrics()

    valid = asyncio.run(decode_with(model, batch, dead_letters, metrics))

    rejects = [r for call in dead_letters.calls for r in call]
    assert len(valid) + len(rejects) == len(batch)
    assert len(dead_letters.calls) == (1 if rejects else 0)
    assert [s.offset for _, s in valid] == [
        m.offset for m, e in zip(batch, expected, strict=True) if not isinstance(e, InvalidEvent)
    ]
    assert [m.offset for m, _ in rejects] == [
        m.offset for m, e in zip(batch, expected, strict=True) if isinstance(e, InvalidEvent)
    ]
    for event, source in valid:
        original = expected[source.offset]
        assert not isinstance(original, InvalidEvent) and source.topic == batch[source.offset].topic
        annotator = original.annotator_id
        assert event.annotator_id == (None if annotator is None else pseudonym(annotator))
        # Compared as JSON: a NaN attribute is not equal to itself.
        unpseudonymized = event.model_copy(update={"annotator_id": annotator})
        assert unpseudonymized.model_dump_json() == original.model_dump_json()
    for message, rejection in rejects:
        rejected = expected[message.offset]
        assert isinstance(rejected, InvalidEvent) and rejection.code == rejected.code

    for topic in TOPICS:
        assert sample(metrics, "events_consumed", topic=topic) == topics.count(topic)
        assert sample(metrics, "events_valid", topic=topic) == sum(
            s.topic == topic for _, s in valid
        )
    dead_counts = Counter((m.topic, r.code) for m, r in rejects)
    for topic, code in itertools.product(TOPICS, REJECTION_CODES):
        assert (
            sample(metrics, "events_dead_lettered", topic=topic, code=code)
            == dead_counts[(topic, code)]
        )


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A batched envelope's raw text and its elements' raw texts: nearly valid label events,
    now and then any JSON value."""
    elements = draw(
        st.lists(
            near_valid_documents(LabelEvent) | json_values.map(lambda v: json.dumps(v).encode()),
            min_size=1,
            max_size=8,
        )
    )
    separator = draw(st.sampled_from([b", ", b",", b",\n  "]))
    return b'{"events": [' + separator.join(elements) + b"]}", elements


@settings(FUZZ, max_examples=200)
@given(drawn=envelopes())
def test_each_event_of_an_envelope_gets_the_outcome_it_gets_alone(
    drawn: tuple[bytes, list[bytes]],
) -> None:
    raw, elements = drawn
    try:
        decoded = decode_label_message(raw, max_bytes=1 << 20)
    except InvalidEvent as whole:
        # Only when the envelope itself is broken: not JSON (an element's text is damaged).
        check_rejection(whole, raw, 1 << 20)
        assert whole.code in (INVALID_JSON, INVALID_UTF8) and whole.index is None
        hypothesis.event(f"whole: {whole.code}")
        return
    assert len(decoded) == len(elements)
    for index, (result, element) in enumerate(zip(decoded, elements, strict=True)):
        alone = outcome(element, LabelEvent, max_bytes=1 << 20)
        if isinstance(result, InvalidEvent):
            hypothesis.event("element rejected")
            assert isinstance(alone, InvalidEvent), (element, result)
            assert (result.code, result.fields) == (alone.code, alone.fields)
            assert result.index == index and result.reason.startswith(f"events[{index}]: ")
            # The dead letter gets the element alone, as JSON equal to what was sent.
            assert result.element is not None
            assert json.loads(result.element) == json.loads(element)
        else:
            assert not isinstance(alone, InvalidEvent), (element, alone)
            assert result == alone


@pytest.mark.parametrize(
    ("raw", "code", "reason_part"),
    [
        (b'{"events": []}', INVALID_FIELDS, "events: List should have at least 1 item"),
        (b'{"events": {}}', INVALID_FIELDS, "events: Input should be a valid array"),
        (b'{"events": [], "extra": 1}', INVALID_FIELDS, "extra: unknown field"),
        (b'{"events": [1, ', "invalid_json", "EOF while parsing"),
    ],
)
def test_a_broken_envelope_is_rejected_whole(raw: bytes, code: str, reason_part: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_label_message(raw, max_bytes=4096)
    assert caught.value.code == code and reason_part in caught.value.reason
    assert caught.value.index is None


def test_a_label_mentioning_events_is_not_an_envelope() -> None:
    raw = (
        LABEL_AT.replace(b'"label": "cat"', b'"label": "{\\"events\\": 1}"')
        % b"2026-01-01T00:00:00Z"
    )
    (event,) = decode_label_message(raw, max_bytes=4096)
    assert isinstance(event, LabelEvent) and event.label == '{"events": 1}'


def test_decode_batch_dead_letters_one_event_of_an_envelope_and_keeps_the_rest() -> None:
    good = [LABEL_AT.replace(b"e-1", b"e-%d" % i) % b"2026-01-01T00:00:00Z" for i in range(3)]
    bad = b'{"event_id": "e-x", "label": 5}'
    envelope = b'{"events": [' + b", ".join([good[0], bad, good[1], good[2]]) + b"]}"
    batch = [
        RawMessage("labels", 0, 7, b"k", good[0].replace(b"e-0", b"single")),
        RawMessage("labels", 0, 8, b"k", envelope),
    ]
    dead_letters = RecordingDeadLetters()
    metrics = Metrics()

    valid = asyncio.run(decode_with(LabelEvent, batch, dead_letters, metrics))

    assert [(e.event_id, s.offset, s.index) for e, s in valid] == [
        ("single", 7, 0),
        ("e-0", 8, 0),
        ("e-1", 8, 2),
        ("e-2", 8, 3),
    ]
    ((message, rejection),) = dead_letters.calls[0]
    assert (message.offset, message.key, rejection.index) == (8, b"k", 1)
    assert json.loads(message.value or b"") == json.loads(bad)
    assert rejection.reason.startswith("events[1]: ") and "label" in rejection.fields
    headers = dict(dead_letter_headers(message, rejection))
    assert headers["lw.source.offset"] == b"8" and headers["lw.source.index"] == b"1"
    assert sample(metrics, "events_consumed", topic="labels") == 5
    assert sample(metrics, "events_valid", topic="labels") == 4


# --------------------------------------------------------------------------------------------
# What the fuzzing found
# --------------------------------------------------------------------------------------------

LABEL_AT = (
    b'{"event_id": "e-1", "ts": "%s", "project": "p", "item_id": "i", "annotator_id": "a",'
    b' "label": "cat"}'
)
SIGNAL_AT = (
    b'{"event_id": "s-1", "ts": "%s", "project": "p", "source": "scanner",'
    b' "kind": "pii_detected", "severity": "low"}'
)


@pytest.mark.parametrize(
    "ts",
    [
        b"9999-12-31T23:59:59-01:00",
        b"9999-12-31T23:59:59.999999-23:59",
        b"0001-01-01T00:00:00+00:01",
    ],
)
@pytest.mark.parametrize(
    ("model", "template"),
    [(LabelEvent, LABEL_AT), (PrivacySignal, SIGNAL_AT)],
    ids=["LabelEvent", "PrivacySignal"],
)
def test_time_out_of_range_in_utc_is_rejected_not_raised(
    model: Model, template: bytes, ts: bytes
) -> None:
    """Regression: converting ts to UTC raised OverflowError out of the decoder."""
    with pytest.raises(InvalidEvent) as caught:
        decode_event(template % ts, model, max_bytes=MAX_BYTES)
    assert caught.value.code == INVALID_FIELDS
    assert caught.value.fields == ("ts",)
    assert caught.value.reason.startswith("ts: ")
    # The same local times with an offset that keeps them in range are fine.
    edge = ts[:-6] + b"+00:00"
    assert decode_event(template % edge, model, max_bytes=MAX_BYTES).ts.year in (1, 9999)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_attribute_floats_are_rejected(literal: bytes) -> None:
    raw = SIGNAL_AT % b"2026-01-01T00:00:00Z"
    with pytest.raises(InvalidEvent) as caught:
        decode_privacy_signal(
            raw[:-1] + b', "attributes": {"x": ' + literal + b"}}", max_bytes=4096
        )
    assert caught.value.fields == ("attributes.x",)
    assert "a finite number" in caught.value.reason
