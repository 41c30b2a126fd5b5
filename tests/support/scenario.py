"""The test project used across engines: one schema, rows given per test, and two ways of
answering "who is in each segment": the compiled SQL on an engine, and the reference
evaluator in plain Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlglot import exp

from segql import project_from_text
from segql.compile.compiler import QueryOptions, compile_membership_query
from segql.compile.dialect import get_dialect
from segql.compile.history_sql import HistorySource
from segql.config import ProjectConfig, config_from_dict
from segql.language.catalog import Catalog
from segql.project import Project
from segql.reference import RecordedChange, evaluate
from tests.support.engines import ColumnType, Engine, Table

SCHEMA: dict[str, tuple[tuple[str, ColumnType], ...]] = {
    "people": (
        ("person_id", "integer"),
        ("status", "text"),
        ("plan", "text"),
        ("country", "text"),
        ("email", "text"),
        ("ltv", "double"),
        ("signup_at", "timestamp"),
        ("is_trial", "boolean"),
        ("Plan Name", "text"),
    ),
    "events": (
        ("person_id", "integer"),
        ("event_type", "text"),
        ("occurred_at", "timestamp"),
        ("properties", "json"),
        ("amount", "double"),
        ("url", "text"),
    ),
    "subscriptions": (
        ("person_id", "integer"),
        ("status", "text"),
        ("created_at", "timestamp"),
        ("mrr", "double"),
    ),
    "accounts": (
        ("person_id", "integer"),
        ("tier", "text"),
    ),
}
SQL_TYPES = {
    "integer": "BIGINT",
    "double": "DOUBLE",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "json": "JSON",
}


def make_config(timezone: str = "UTC") -> ProjectConfig:
    return config_from_dict(
        {
            "warehouse": {"timezone": timezone},
            "entity": {"table": "people", "id": "person_id"},
            "events": {
                "table": "events",
                "person": "person_id",
                "name": "event_type",
                "time": "occurred_at",
                "properties": "properties",
            },
            "sources": {
                "subscriptions": {
                    "table": "subscriptions",
                    "person": "person_id",
                    "time": "created_at",
                },
                "accounts": {"table": "accounts", "person": "person_id"},
            },
        },
        Path("."),
    )


def make_catalog() -> Catalog:
    return Catalog.from_columns(
        {table: [(c, SQL_TYPES[t]) for c, t in cols] for table, cols in SCHEMA.items()}
    )


def make_project(rules: str, timezone: str = "UTC") -> Project:
    return project_from_text(make_config(timezone), rules, make_catalog())


def person(person_id: int | None, **values: Any) -> tuple[Any, ...]:
    """A people row: unnamed columns are null."""
    return _row("people", {"person_id": person_id, **values})


def event(
    person_id: int | None, event_type: str | None, at: datetime | None, **values: Any
) -> tuple[Any, ...]:
    return _row(
        "events", {"person_id": person_id, "event_type": event_type, "occurred_at": at, **values}
    )


def subscription(person_id: int | None, at: datetime | None, **values: Any) -> tuple[Any, ...]:
    return _row("subscriptions", {"person_id": person_id, "created_at": at, **values})


def account(person_id: int | None, tier: str | None) -> tuple[Any, ...]:
    return _row("accounts", {"person_id": person_id, "tier": tier})


def _row(table: str, values: Mapping[str, Any]) -> tuple[Any, ...]:
    names = [c for c, _ in SCHEMA[table]]
    unknown = set(values) - set(names)
    if unknown:
        raise KeyError(f"no columns {sorted(unknown)} in {table}")
    return tuple(values.get(name) for name in names)


def make_tables(
    people: Iterable[tuple[Any, ...]] = (),
    events: Iterable[tuple[Any, ...]] = (),
    subscriptions: Iterable[tuple[Any, ...]] = (),
    accounts: Iterable[tuple[Any, ...]] = (),
) -> dict[str, Table]:
    rows = {
        "people": people,
        "events": events,
        "subscriptions": subscriptions,
        "accounts": accounts,
    }
    return {name: Table(SCHEMA[name], tuple(rows[name])) for name in SCHEMA}


def run_sql(
    engine: Engine,
    project: Project,
    as_of: datetime,
    segments: Sequence[str] | None = None,
) -> dict[str, set[Any]]:
    """Members per segment from the compiled query on an engine (tables already loaded)."""
    names = project.select(segments)
    project.check()
    options = QueryOptions(history=LOADED_HISTORY)  # recorded membership: loaded as tables
    query = compile_membership_query(
        project.analyzer, names, get_dialect(engine.dialect), as_of, options=options
    )
    sql = query.sql
    found: dict[str, set[Any]] = {name: set() for name in names}
    for segment, person_id in engine.query(sql):
        found[segment].add(_normalize_id(person_id))
    return found


def run_reference(
    project: Project,
    tables: Mapping[str, Table],
    as_of: datetime,
    segments: Sequence[str] | None = None,
) -> dict[str, set[Any]]:
    names = project.select(segments)
    data = {name: (table.column_names, table.rows) for name, table in tables.items()}
    definitions = [
        *project.definitions.segments.values(),
        *project.definitions.traits.values(),
        *project.definitions.priorities,
    ]
    history = recorded_changes(tables)
    result = evaluate(definitions, project.config, data, as_of, segments=names, history=history)
    return {name: {_normalize_id(p) for p in result[name]} for name in names}


# Recorded membership (language.md 9.6) in a test: tables ``segql_history`` and
# ``segql_runs`` loaded beside the others (none loaded: the rules have no such condition).
LOADED_HISTORY = HistorySource(
    exp.Table(this=exp.to_identifier("segql_history", quoted=True)),
    exp.Table(this=exp.to_identifier("segql_runs", quoted=True)),
)


def recorded_changes(tables: Mapping[str, Table]) -> list[RecordedChange]:
    """The committed runs' rows of a loaded ``segql_history``, for the reference."""
    if "segql_history" not in tables:
        return []
    runs = tables["segql_runs"].rows
    committed = {run_id for run_id, status in runs if status == "committed"}
    return [
        RecordedChange(segment, person_id, change, as_of, commit_seq)
        for segment, person_id, change, as_of, commit_seq, run_id in tables["segql_history"].rows
        if run_id in committed
    ]


def _normalize_id(value: Any) -> Any:
    if isinstance(value, (Decimal, float)) and value == int(value):
        return int(value)
    return value
