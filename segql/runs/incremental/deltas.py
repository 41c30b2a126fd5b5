"""Values brought from the state's as-of ``L`` to ``T`` by deltas, without rereading a
person's history (``segql.compile.updates``: ``add`` and ``merge``).

Over only the rows that are new or crossed a window's edge, per person:

- ``add`` (``count``, ``sum``): ``value(T) = value(L) + agg(rows matching at T) -
  agg(rows present at L and matching at L)``; a row matching at both adds and subtracts
  the same amount, a row leaving a window only subtracts, a new row only adds;
- ``merge`` (``min``, ``max``, ``first_time``, ``last_time`` over a window no row leaves):
  the old value merged with the rows matching at T (merging a row twice changes nothing).

"Present at L": dated at or before ``L`` and, with ``loaded_at``, loaded at or before the
state's high-water mark.
"""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from segql.compile.compiler import EVENT_TIME, PERSON_ID, QueryOptions, _Row, collector_paused
from segql.compile.updates import aggregate_update
from segql.config import SourceConfig
from segql.language import ast
from segql.runs.incremental.builder import StateBuilder

LOADED = "segql_loaded"


def deltas_apply(builder: StateBuilder) -> bool:
    """Whether every value of the plan is an ``add`` or a ``merge`` (no sequences)."""
    if builder.sequences:
        return False
    return all(
        aggregate_update(aggregate) in ("add", "merge")
        for needs in builder.sources.values()
        for aggregate in needs.aggregates
    )


def some_deltas_apply(builder: StateBuilder) -> bool:
    """Whether some value of the plan is an ``add`` or a ``merge``: the people whose rows
    concern only those are updated by deltas, the others recomputed."""
    return any(
        aggregate_update(aggregate) in ("add", "merge")
        for needs in builder.sources.values()
        for aggregate in needs.aggregates
    )


class Deltas:
    """The delta query of each source, and the new values of the people they touch."""

    def __init__(
        self,
        analyzer: object,
        dialect: object,
        names: list[str],
        last: datetime,
        now: datetime,
        members: exp.Table,
    ):
        options = QueryOptions(members_table=members)
        self.at_t = StateBuilder(analyzer, dialect, now, options)  # type: ignore[arg-type]
        self.at_l = StateBuilder(analyzer, dialect, last, options)  # type: ignore[arg-type]
        with collector_paused():
            self.at_t.build(names)
            self.at_l.build(names)

    def source_delta(
        self, source: SourceConfig, changed: exp.Expr, present: exp.Expr
    ) -> exp.Select:
        """``(person_id, <column>...)``: each value's delta (add) or new rows' value (merge)
        over the rows of ``source`` that ``changed`` keeps."""
        needs_t = self.at_t.sources[source.name]
        needs_l = self.at_l.sources[source.name]
        rows = self.at_t.rows_select(needs_t).where(changed, copy=False)
        if source.loaded_at is not None:
            loaded = exp.column(source.loaded_at, table="source_rows", quoted=True)
            rows = rows.select(exp.alias_(loaded, LOADED, quoted=True), copy=False)
        row = _Row(source)
        select = exp.select(exp.column(PERSON_ID, quoted=True)).from_(
            rows.subquery(exp.to_identifier(f"segql_rows_{source.name}", quoted=True))
        )
        for aggregate, column in needs_t.aggregates.items():
            if aggregate_update(aggregate) == "recompute":
                continue  # kept, or recomputed with every value of the person
            match_t = self.at_t.spec_filter(aggregate.spec, row)
            now = self.at_t.aggregate_sql(aggregate, row, match_t)
            if aggregate_update(aggregate) == "merge":
                select = select.select(exp.alias_(now, column, quoted=True), copy=False)
                continue
            match_l = self.at_l.spec_filter(aggregate.spec, row)
            was_match = present if match_l is None else exp.and_(present, match_l)
            then = self.at_l.aggregate_sql(aggregate, row, was_match)
            delta = exp.Sub(this=_zero(now), expression=_zero(then))
            select = select.select(exp.alias_(delta, column, quoted=True), copy=False)
        del needs_l
        return select.group_by(exp.column(PERSON_ID, quoted=True), copy=False)

    def merged(
        self, state: exp.Table, touched: exp.Table, deltas: dict[str, exp.Table]
    ) -> exp.Select:
        """The new rows of values of the people in ``touched``: the values deltas update
        combined with their delta, the others (a person none of whose rows concern them)
        as they were."""
        select = exp.select(exp.column(PERSON_ID, table="t", quoted=True)).from_(
            _aliased(touched, "t")
        )
        on = exp.column(PERSON_ID, table="s", quoted=True).eq(
            exp.column(PERSON_ID, table="t", quoted=True)
        )
        select.append("joins", exp.Join(this=_aliased(state, "s"), on=on, side="LEFT"))
        for number, (name, table) in enumerate(deltas.items()):
            alias = f"d{number}"
            on = exp.column(PERSON_ID, table=alias, quoted=True).eq(
                exp.column(PERSON_ID, table="t", quoted=True)
            )
            select.append("joins", exp.Join(this=_aliased(table, alias), on=on, side="LEFT"))
            for aggregate, column in self.at_t.sources[name].aggregates.items():
                old = exp.column(column, table="s", quoted=True)
                new = exp.column(column, table=alias, quoted=True)
                value = (
                    old
                    if aggregate_update(aggregate) == "recompute"
                    else _combine(aggregate, old, new)
                )
                select = select.select(exp.alias_(value, column, quoted=True), copy=False)
        for column in self.at_t.sequences.values():
            old = exp.column(column, table="s", quoted=True)
            select = select.select(exp.alias_(old, column, quoted=True), copy=False)
        return select


def present_at(source: SourceConfig, last: exp.Expr, mark: exp.Expr | None) -> exp.Expr:
    """Rows of the delta's read that the state's run had read: dated at or before L and,
    with ``loaded_at``, loaded at or before the high-water mark."""
    dated = exp.LTE(this=exp.column(EVENT_TIME, quoted=True), expression=last)
    if source.loaded_at is None:
        return dated
    loaded = exp.column(LOADED, quoted=True)
    if mark is None:
        return exp.and_(dated, loaded.is_(exp.null()))
    return exp.and_(
        dated,
        exp.or_(loaded.copy().is_(exp.null()), exp.LTE(this=loaded, expression=mark)),
    )


def _combine(aggregate: ast.Aggregate, old: exp.Expr, new: exp.Expr) -> exp.Expr:
    if aggregate_update(aggregate) == "add":
        return exp.Add(this=_zero(old), expression=_zero(new))
    smaller = aggregate.func in ("min", "first_time")
    pick = exp.LT(this=new, expression=old) if smaller else exp.GT(this=new, expression=old)
    return exp.Case(
        ifs=[
            exp.If(this=old.copy().is_(exp.null()), true=new.copy()),
            exp.If(this=new.copy().is_(exp.null()), true=old.copy()),
            exp.If(this=pick, true=new.copy()),
        ],
        default=old.copy(),
    )


def _zero(value: exp.Expr) -> exp.Expr:
    return exp.func("COALESCE", value, exp.Literal.number(0))


def _aliased(table: exp.Table, alias: str) -> exp.Table:
    table = table.copy()
    table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    return table
