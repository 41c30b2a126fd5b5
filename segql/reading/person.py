"""``segql person ID``: the segments one person is in and their membership history, as
recorded by the last runs, and the values of the project's traits for them now (computed
for that person; nothing is written)."""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from segql.compile.compiler import QueryOptions, compile_values_query
from segql.compile.dialect import get_dialect
from segql.engines import EngineAdapter as Warehouse
from segql.language import ast
from segql.project import Project
from segql.reading.reports import Rows
from segql.runs.store import HISTORY, MEMBERS, Store
from segql.timeutil import utc_now


def person_segments(warehouse: Warehouse, store: Store, person_id: str) -> Rows:
    """(segment, entered_at, version) of each segment the person is in now."""
    column = exp.column
    enter = exp.and_(
        column("segment", table="h", quoted=True).eq(column("segment", table="m", quoted=True)),
        column("person_id", table="h", quoted=True).eq(column("person_id", table="m", quoted=True)),
        column("run_id", table="h", quoted=True).eq(
            column("entered_run_id", table="m", quoted=True)
        ),
        column("change", table="h", quoted=True).eq(exp.Literal.string("enter")),
    )
    select = (
        exp.select(
            column("segment", table="m", quoted=True),
            column("entered_at", table="m", quoted=True),
            column("version", table="h", quoted=True),
        )
        .from_(store.table(MEMBERS, alias="m"))
        .join(store.table(HISTORY, alias="h"), on=enter, join_type="left")
        .where(column("person_id", table="m", quoted=True).eq(exp.Literal.string(person_id)))
        .order_by(column("segment", table="m", quoted=True))
    )
    return Rows(("segment", "entered_at", "version"), warehouse.run(select))


def person_history(warehouse: Warehouse, store: Store, person_id: str) -> Rows:
    """Every enter and exit of the person, in commit order."""
    columns = ("commit_seq", "as_of", "segment", "change", "reason", "version")
    select = (
        exp.select(*(exp.column(c, quoted=True) for c in columns))
        .from_(store.table(HISTORY))
        .where(exp.column("person_id", quoted=True).eq(exp.Literal.string(person_id)))
        .order_by(exp.column("commit_seq", quoted=True), exp.column("segment", quoted=True))
    )
    return Rows(columns, warehouse.run(select))


def person_traits(
    project: Project, warehouse: Warehouse, person_id: str, as_of: datetime | None = None
) -> Rows:
    """(trait, value) of every trait of the project for the person at ``as_of`` (now),
    computed for that person only (a population function still ranks everybody)."""
    names = list(project.definitions.traits)
    if not names:
        return Rows(("trait", "value"), [])
    project.read_catalog(warehouse)
    project.check()
    query = compile_values_query(
        project.analyzer,
        {name: ast.Name(name) for name in names},
        get_dialect(warehouse.dialect.name),
        as_of or utc_now(),
        QueryOptions(person_ids=(str(person_id),)),
    )
    found = warehouse.run(query)
    values = found[0][1:] if found else (None,) * len(names)
    return Rows(("trait", "value"), list(zip(names, values, strict=True)))
