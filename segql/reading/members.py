"""``segql members``: a segment's members with their ids in the id column's own type, sorted
as that type, and optionally columns of the people table and traits beside them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlglot import exp

from segql.compile.compiler import QueryOptions, compile_values_query, table_ref
from segql.compile.dialect import get_dialect
from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlNameError, unknown_name_message
from segql.language import ast
from segql.project import Project
from segql.reading.reports import Reports, Rows
from segql.timeutil import utc_now

_KEY = "segql_key"


def member_rows(
    project: Project,
    warehouse: Warehouse,
    reports: Reports,
    segment: str,
    columns: Sequence[str],
    limit: int | None,
) -> Rows:
    """``person_id``, ``entered_at``, ``run_id`` and the asked-for columns of each member."""
    check_columns(project, warehouse, columns)
    recorded = reports.members(segment, None).rows
    values = column_values(project, warehouse, columns, reports.last_as_of() or utc_now())
    rows = []
    for person, entered_at, run_id in recorded:
        found = values.get(str(person))
        native = found[0] if found else person
        row: list[Any] = [native, entered_at, run_id]
        row.extend(found[1:] if found else (None,) * len(columns))
        rows.append(tuple(row))
    rows.sort(key=lambda r: (isinstance(r[0], str), r[0]))
    if limit is not None:
        rows = rows[:limit]
    return Rows(("person_id", "entered_at", "run_id", *columns), rows)


def check_columns(project: Project, warehouse: Warehouse, columns: Sequence[str]) -> None:
    """Every name is a column of the people table or a trait (an error names the closest)."""
    project.read_catalog(warehouse)
    people = set(project.catalog.columns(project.config.entity.table) or ())
    for name in columns:
        if name not in people and name not in project.definitions.traits:
            raise SegqlNameError(
                unknown_name_message("column", name, [*people, *project.definitions.traits]),
                help="--columns takes columns of the people table and traits",
            )


def column_values(
    project: Project,
    warehouse: Warehouse,
    columns: Sequence[str],
    as_of: datetime,
    person_ids: Sequence[str] | None = None,
) -> dict[str, tuple[Any, ...]]:
    """By id as text: the id in its column's own type, then each of ``columns`` (people
    columns as stored, traits at ``as_of``); of everybody, or of ``person_ids`` only.
    The names must have passed ``check_columns``."""
    if person_ids is not None and not person_ids:
        return {}
    traits = [c for c in columns if c in project.definitions.traits]
    entity_columns = [c for c in columns if c not in traits]
    entity = project.config.entity
    select = _keyed(table_ref(entity.table), entity.id, entity_columns)
    if person_ids is not None:
        text_id = exp.cast(exp.column(entity.id, quoted=True), "VARCHAR")
        select = select.where(text_id.isin(*(exp.Literal.string(str(p)) for p in person_ids)))
    values = _by_key(warehouse, select)
    trait_values: dict[str, tuple[Any, ...]] = {}
    if traits:
        options = (
            QueryOptions()
            if person_ids is None
            else QueryOptions(person_ids=tuple(str(p) for p in person_ids))
        )
        query = compile_values_query(
            project.analyzer,
            {name: ast.Name(name) for name in traits},
            get_dialect(warehouse.dialect.name),
            as_of,
            options,
        )
        trait_values = _by_key(warehouse, _keyed(query.subquery("v"), "person_id", traits))
    found: dict[str, tuple[Any, ...]] = {}
    for key, row in values.items():
        own = trait_values.get(key)
        found[key] = (
            row[0],
            *(
                (own[1 + traits.index(c)] if own else None)
                if c in traits
                else row[1 + entity_columns.index(c)]
                for c in columns
            ),
        )
    return found


def _keyed(source: exp.Expr, id_column: str, columns: Sequence[str]) -> exp.Select:
    key = exp.cast(exp.column(id_column, quoted=True), "VARCHAR")
    return exp.select(
        exp.alias_(key, _KEY, quoted=True),
        exp.column(id_column, quoted=True),
        *(exp.column(c, quoted=True) for c in columns),
    ).from_(source)


def _by_key(warehouse: Warehouse, select: exp.Select) -> dict[str, tuple[Any, ...]]:
    return {str(row[0]): tuple(row[1:]) for row in warehouse.run(select)}
