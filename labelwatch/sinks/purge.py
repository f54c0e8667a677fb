"""Right to erasure: delete every stored row about one annotator (``labelwatch db purge``).

Rows are found by the id as stored: the pseudonym when ``LABELWATCH_PSEUDONYM_KEY`` is set
(the CLI turns a raw id into it), the raw id otherwise. Erased: the annotator's raw label and
privacy-signal rows, their reliability snapshots, per-minute aggregates and alerts (including
alerts whose evidence names them, such as the partner in a copied-answers alert), and the
model checkpoints whose state mentions them. A shard whose checkpoints are deleted is rebuilt
from the stored labels (which no longer include the annotator) when a worker next takes it.

Run it with the workers stopped: a running worker still holds the annotator in memory and
would write them into its next checkpoint (with the embedded chDB store, the worker holds the
store anyway). Kafka topics keep their messages until the topics' own retention removes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

# table -> condition on {id:String} (the stored id) and {quoted:String} (it as a JSON string)
_WHERE: dict[str, str] = {
    "label_events": "annotator_id = {id:String}",
    "privacy_signals": "annotator_id = {id:String}",
    "annotator_reliability": "annotator_id = {id:String}",
    "annotator_minute_agg": "annotator_id = {id:String}",
    "alerts": "annotator_id = {id:String} OR position(evidence, {quoted:String}) > 0",
    "model_checkpoints": "position(state, {quoted:String}) > 0",
}
PURGED_TABLES: tuple[str, ...] = tuple(_WHERE)


@dataclass(frozen=True)
class PurgeReport:
    """Rows found per table, and whether they were deleted (False: a dry run)."""

    annotator: str
    rows: dict[str, int]
    deleted: bool

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def purge_annotator(
    client: Client, database: str, stored_id: str, *, delete: bool = True
) -> PurgeReport:
    """Count, and with ``delete`` erase, every row about ``stored_id``; returns the counts.

    Deletes are synchronous (``mutations_sync = 2``): when this returns the rows are gone."""
    if not stored_id:
        raise ValueError("an annotator id is required")
    params = {"id": stored_id, "quoted": json.dumps(stored_id)}
    rows: dict[str, int] = {}
    for table, where in _WHERE.items():
        # The database name is validated by Settings; the id is a bound parameter.
        found = client.query(
            f"SELECT count() FROM {database}.{table} WHERE {where}",  # noqa: S608
            parameters=params,
        ).first_row
        rows[table] = int(found[0]) if found else 0
        if delete and rows[table]:
            client.command(
                f"ALTER TABLE {database}.{table} DELETE WHERE {where}",
                parameters=params,
                settings={"mutations_sync": 2},
            )
    return PurgeReport(stored_id, rows, delete)
