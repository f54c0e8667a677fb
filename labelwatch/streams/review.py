"""The review-queue topic format: one item picked for expert review per record.

Key: the item id (UTF-8), so a labeling tool consuming the topic sees an item's picks in one
partition. Value: JSON with ``review_id``, ``project``, ``item_id``, ``kind`` (``priority``
or ``random``), ``priority``, ``rank``, ``stratum``, ``inclusion_probability`` (random picks:
the chance the item had of being drawn, for an unbiased audit; null for priority picks),
``reason`` (why the item scores what it does, in plain words), ``offered_at`` and
``window_start`` (ISO 8601, UTC, event time) and ``shard``. A pick may be delivered more than
once (a retried batch): consumers keep one record per ``review_id``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from labelwatch.models.tracker import ReviewItem
from labelwatch.settings import Settings
from labelwatch.streams.topics import read_range


def review_record(item: ReviewItem) -> tuple[bytes, bytes]:
    """The ``(key, value)`` of a pick's record on the review topic."""
    value = dataclasses.asdict(item)
    value["offered_at"] = item.offered_at.isoformat()
    value["window_start"] = item.window_start.isoformat()
    return item.item_id.encode(), json.dumps(value).encode()


def read_reviews(
    settings: Settings, start: dict[int, int], *, timeout_s: float = 20.0
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """``(key, pick)`` records from ``start`` (partition -> offset) to the current end."""
    records = read_range(settings, settings.topic_review, start, timeout_s=timeout_s)
    return [(r.key, json.loads(r.value)) for r in records]
