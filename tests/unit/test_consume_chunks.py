"""The agent hands a taken batch to the pipeline in pieces bounded by message bytes."""

from __future__ import annotations

from types import SimpleNamespace

from labelwatch.streams.app import _chunks


def events(*sizes: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(message=SimpleNamespace(value=b"x" * n)) for n in sizes]


def sizes(pieces: list) -> list[list[int]]:
    return [[len(e.message.value) for e in piece] for piece in pieces]


def test_pieces_keep_order_and_stay_under_the_byte_limit() -> None:
    taken = events(300, 300, 300, 900, 100, 100, 50)
    assert sizes(_chunks(taken, 1000)) == [[300, 300, 300], [900, 100], [100, 50]]


def test_a_message_over_the_limit_is_a_piece_of_its_own_and_nothing_is_lost() -> None:
    taken = events(10, 5000, 10)
    assert sizes(_chunks(taken, 1000)) == [[10], [5000], [10]]
    assert _chunks([], 1000) == []
    tombstone = [SimpleNamespace(message=SimpleNamespace(value=None))]
    assert len(_chunks(tombstone * 3, 1)) == 1
