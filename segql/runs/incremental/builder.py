"""The membership query split at stage 0: the per-person values, and the rest over them.

``StateBuilder`` is the compiler's ``QueryBuilder`` with two more outputs:

- ``state_query``: one row per person with a row some value reads, holding every stage-0
  value (aggregates and sequences), as the full query computes them; optionally only
  for the people in a table of ids (``only``), over all of their rows;
- built with ``state``: the membership query whose stage 0 reads those values from a
  table (or query) instead of the sources; the people, their entity columns, current
  members (hysteresis), traits, population functions and segments are computed as ever;
  optionally only for the people in a table of ids as text (``people_in``).

Both come from the same decisions as the one-query plan, so a value of the state is the
value the full query would compute, column for column.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlglot import exp

from segql.compile.compiler import (
    COUNT_LIKE,
    PERSON_ID,
    QueryBuilder,
    QueryOptions,
    _entity_alias,
    _SourceNeeds,
    collector_paused,
)
from segql.compile.dialect import Dialect
from segql.language import ast
from segql.language.checker import Analyzer

PEOPLE = "segql_people"
STAGE_0 = "segql_stage_0"


class StateBuilder(QueryBuilder):
    """A query builder whose stage 0 is a state of per-person values."""

    def __init__(
        self,
        analyzer: Analyzer,
        dialect: Dialect,
        as_of: datetime,
        options: QueryOptions,
        state: exp.Query | exp.Table | None = None,
        only: exp.Table | None = None,
        people_in: exp.Table | None = None,
    ):
        super().__init__(analyzer, dialect, as_of, options)
        self.state = state
        self.only = only
        self.people_in = people_in  # only these people (ids as text), over a state

    # --- what stage 0 holds ------------------------------------------------------------

    def value_columns(self) -> list[str]:
        """The stage-0 values, in a fixed order: aggregates by source, then sequences."""
        columns = [c for needs in self.sources.values() for c in needs.aggregates.values()]
        return [*columns, *self.sequences.values()]

    def definitions_of(self) -> dict[str, str]:
        """Each stage-0 column's definition (what it is computed from)."""
        from segql.language.printer import format_condition, format_expr

        found: dict[str, str] = {}
        for name, needs in self.sources.items():
            for aggregate, column in needs.aggregates.items():
                found[column] = f"{name}: {format_expr(aggregate)}"
        for sequence, column in self.sequences.items():
            found[column] = format_condition(sequence)
        return found

    def nodes(self) -> dict[str, ast.Aggregate | ast.Sequence | ast.Funnel]:
        found: dict[str, ast.Aggregate | ast.Sequence | ast.Funnel] = {}
        for needs in self.sources.values():
            for aggregate, column in needs.aggregates.items():
                found[column] = aggregate
        for sequence, column in self.sequences.items():
            found[column] = sequence
        return found

    def unknown_stage_columns(self) -> list[str]:
        """Columns of the one-query stage 0 that this builder does not know how to keep
        (a kind of value added to the compiler later): such a plan is not kept in a state."""
        with collector_paused():
            saved = list(self.passes)
            stage = QueryBuilder.base_ctes(self)[-1].this
            self.passes = saved
        known = {
            PERSON_ID,
            *self.value_columns(),
            *self.current.values(),
            *(c.alias_or_name for c in self.people_select().expressions),
        }
        return [e.alias_or_name for e in stage.expressions if e.alias_or_name not in known]

    # --- the state query ---------------------------------------------------------------

    def state_query(self, segments: Sequence[str]) -> exp.Query:
        """``(person_id, value...)`` for everybody with a row (or the people of ``only``)."""
        self.build(segments)  # registers every value; the query itself is not used
        self.passes = []
        ctes = QueryBuilder.base_ctes(self)[:-1]  # every CTE but stage 0
        held: list[str] = []  # CTEs of one row per person
        for needs in self.sources.values():
            held.extend(dict.fromkeys(needs.held_in[c] for c in needs.aggregates.values()))
        held.extend(f"segql_seq_{c}" for c in self.sequences.values())
        held = list(dict.fromkeys(held))
        ids = [
            exp.select(exp.column(PERSON_ID, quoted=True)).from_(
                exp.to_identifier(name, quoted=True)
            )
            for name in held
        ]
        union: exp.Query = ids[0]
        for select in ids[1:]:
            union = exp.union(union, select, distinct=True)
        if len(ids) == 1:
            union = union.distinct()  # type: ignore[attr-defined]
        ctes.append(exp.CTE(this=union, alias=exp.TableAlias(this=_ident("segql_ids"))))
        select = exp.select(exp.column(PERSON_ID, table="segql_ids", quoted=True)).from_(
            exp.to_identifier("segql_ids", quoted=True)
        )
        for name in held:
            on = exp.column(PERSON_ID, table=name, quoted=True).eq(
                exp.column(PERSON_ID, table="segql_ids", quoted=True)
            )
            select.append("joins", exp.Join(this=_ident(name), on=on, side="LEFT"))
        for needs in self.sources.values():
            for column in needs.aggregates.values():
                held_in = needs.held_in[column]
                select = select.select(
                    exp.alias_(exp.column(column, table=held_in, quoted=True), column, quoted=True),
                    copy=False,
                )
        for column in self.sequences.values():
            found = exp.column(PERSON_ID, table=f"segql_seq_{column}", quoted=True)
            select = select.select(
                exp.alias_(found.is_(exp.null()).not_(), column, quoted=True), copy=False
            )
        select.set("with_", exp.With(expressions=ctes))
        return select

    def rows_select(self, needs: _SourceNeeds) -> exp.Select:
        select = super().rows_select(needs)
        if self.only is None:
            return select
        person = exp.column(needs.source.person, table="source_rows", quoted=True)
        ids = exp.select(exp.column(PERSON_ID, quoted=True)).from_(self.only.copy())
        return select.where(person.isin(query=ids), copy=False)

    # --- the membership query over a state ---------------------------------------------

    def people_select(self) -> exp.Select:
        select = super().people_select()
        if self.people_in is None:
            return select
        person = exp.cast(
            exp.column(self.config.entity.id, quoted=True), exp.DataType.build("VARCHAR")
        )
        ids = exp.select(exp.column(PERSON_ID, quoted=True)).from_(self.people_in.copy())
        return select.where(person.isin(query=ids), copy=False)

    def base_ctes(self) -> list[exp.CTE]:
        if self.state is None:
            return super().base_ctes()
        people = exp.CTE(this=self.people_select(), alias=exp.TableAlias(this=_ident(PEOPLE)))
        state_alias = "segql_state"
        if isinstance(self.state, exp.Table):
            source: exp.Expr = self.state.copy()
            source.set("alias", exp.TableAlias(this=_ident(state_alias)))
        else:
            source = self.state.subquery(_ident(state_alias))
        stage = exp.select(exp.column(PERSON_ID, table=PEOPLE, quoted=True)).from_(_ident(PEOPLE))
        for column in sorted(self.entity_columns):
            entity = exp.column(_entity_alias(column), table=PEOPLE, quoted=True)
            stage = stage.select(entity, copy=False)
        on = exp.column(PERSON_ID, table=state_alias, quoted=True).eq(
            exp.column(PERSON_ID, table=PEOPLE, quoted=True)
        )
        stage.append("joins", exp.Join(this=source, on=on, side="LEFT"))
        for needs in self.sources.values():
            for aggregate, column in needs.aggregates.items():
                value: exp.Expr = exp.column(column, table=state_alias, quoted=True)
                if aggregate.func in COUNT_LIKE:
                    value = exp.func("COALESCE", value, exp.Literal.number(0))
                stage = stage.select(exp.alias_(value, column, quoted=True), copy=False)
        for column in self.sequences.values():
            value = exp.func(
                "COALESCE", exp.column(column, table=state_alias, quoted=True), exp.false()
            )
            stage = stage.select(exp.alias_(value, column, quoted=True), copy=False)
        for segment, column in self.current.items():
            stage = self.join_current_members(stage, segment, column)
        return [people, exp.CTE(this=stage, alias=exp.TableAlias(this=_ident(STAGE_0)))]


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)
