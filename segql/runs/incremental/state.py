"""Where the per-person state lives, and what is recorded about it.

The values are in a table of their own, ``segql_state_<id>`` in segql's schema, made by a
full run (before its commit: some warehouses commit on ``CREATE``) and updated in place
by incremental runs, inside their commit. Which table is the state, the run that wrote
it last, its as-of, the definitions it holds (a fingerprint) and its layout are rows of
``segql_meta``, written in the run's commit: a run that never committed leaves the old
state as it leaves the old members. ``segql_state_days`` holds the rows per day of each
source without a ``loaded_at`` column, to notice late rows.

Beside the values: ``segql_state_people_<id>``, the entity columns the segments read, as
the state's run read them (the people whose row changed since are recomputed), and, in
``segql_meta``, a digest of each segment's query over the state (a segment whose query is
the same, read at another as-of, keeps its members for everybody whose values and entity
row did not change) and the data summary's counts up to the as-of.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlglot import exp

from segql.engines import EngineAdapter as Warehouse
from segql.runs.store import META, Store
from segql.timeutil import format_timestamp

# The layout of the state's rows; a state of another layout is recomputed.
STATE_LAYOUT = 1
_PREFIX = "state."
_KEYS = ("table", "run_id", "as_of", "fingerprint", "layout")


@dataclass(frozen=True)
class StateRecord:
    """What ``segql_meta`` says of the state."""

    table: str
    run_id: str
    as_of: datetime
    fingerprint: str
    layout: int
    high_water: dict[str, str]  # source -> the highest loaded_at the state has read
    people: str | None = None  # the table of entity columns as the state's run read them
    people_columns: list[str] | None = None
    segments: dict[str, str] = field(default_factory=dict)  # segment -> its query's digest
    summary: list[int] | None = None  # the data summary's counts up to the as-of
    overrides: str | None = None  # the table of the people with an override at that run


def read_record(warehouse: Warehouse, store: Store) -> StateRecord | None:
    select = (
        exp.select("key", "value")
        .from_(store.table(META))
        .where(exp.column("key").like(exp.Literal.string(_PREFIX + "%")))
    )
    values = {str(k)[len(_PREFIX) :]: v for k, v in warehouse.run(select)}
    if any(values.get(key) is None for key in _KEYS):
        return None
    try:
        layout = int(values["layout"])
        as_of = datetime.fromisoformat(values["as_of"])
    except ValueError:
        return None
    high_water = {
        key.removeprefix("hwm."): value
        for key, value in values.items()
        if key.startswith("hwm.") and value is not None
    }
    return StateRecord(
        values["table"],
        values["run_id"],
        as_of,
        values["fingerprint"],
        layout,
        high_water,
        values.get("people"),
        _json(values.get("people_columns"), list),
        _json(values.get("segments"), dict) or {},
        _json(values.get("summary"), list),
        values.get("overrides"),
    )


_Json = TypeVar("_Json", list[Any], dict[str, Any])


def _json(text: str | None, kind: type[_Json]) -> _Json | None:
    """A JSON value of ``segql_meta``, None where missing or not of that kind."""
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def write_record(store: Store, record: StateRecord) -> list[exp.Expr]:
    """Statements (for the run's commit) that make ``record`` the state's."""
    delete = exp.delete(
        store.table(META), where=exp.column("key").like(exp.Literal.string(_PREFIX + "%"))
    )
    values = {
        "table": record.table,
        "run_id": record.run_id,
        "as_of": format_timestamp(record.as_of),
        "fingerprint": record.fingerprint,
        "layout": str(record.layout),
        **{f"hwm.{source}": mark for source, mark in record.high_water.items()},
        "segments": json.dumps(record.segments, sort_keys=True),
    }
    if record.people is not None:
        values["people"] = record.people
        values["people_columns"] = json.dumps(record.people_columns or [])
    if record.overrides is not None:
        values["overrides"] = record.overrides
    rows = [
        exp.Tuple(expressions=[exp.Literal.string(_PREFIX + k), exp.Literal.string(v)])
        for k, v in values.items()
    ]
    insert = exp.insert(exp.Values(expressions=rows), store.table(META))
    return [delete, insert]


def write_summary(store: Store, counts: tuple[int, ...]) -> exp.Insert:
    """The statement (for the run's commit, after ``write_record``'s) that keeps the data
    summary's counts up to the as-of."""
    row = exp.Tuple(
        expressions=[
            exp.Literal.string(_PREFIX + "summary"),
            exp.Literal.string(json.dumps(list(counts))),
        ]
    )
    return exp.insert(exp.Values(expressions=[row]), store.table(META))


def forget_record(store: Store) -> exp.Delete:
    """The state is no longer the state (``segql forget``): the next run recomputes."""
    return exp.delete(
        store.table(META), where=exp.column("key").like(exp.Literal.string(_PREFIX + "%"))
    )
