"""Checked definitions to one sqlglot query: planned first, then lowered.

``compile_membership_query`` returns ``(segment, person_id)`` for some segments and
``compile_values_query`` each person's value of some expressions. Both run the two
stages: ``segql.compile.planner`` walks the checked AST into a ``QueryPlan`` (every source,
pass, aggregate, sequence, per-person column and predicate, decided before any SQL is
written), and ``segql.compile.lowering`` writes that plan as sqlglot for one dialect, looking
every column up in it. ``QueryBuilder`` is the two behind one object, the form
``segql.runs.incremental`` builds its state queries on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from sqlglot import exp

from segql.compile.dialect import Dialect
from segql.compile.history_sql import HistorySource
from segql.compile.lowering import Lowering
from segql.compile.planner import Planner
from segql.compile.query_plan import PassNode, QueryPlan, SourceNeeds
from segql.compile.sql_build import (
    COUNT_LIKE,
    EVENT_NAME,
    EVENT_TIME,
    PERSON_ID,
    PROPERTIES,
    _alias,
    _and,
    _entity_alias,
    _join,
    _not,
    _or,
    _Row,
    collector_paused,
    table_ref,
)
from segql.compile.sqltext import generate_sql
from segql.language import ast
from segql.language.checker import Analyzer

# The names other modules take from here (the lowering's parts live in sql_build).
__all__ = [
    "COUNT_LIKE",
    "EVENT_NAME",
    "EVENT_TIME",
    "PERSON_ID",
    "PROPERTIES",
    "MembershipQuery",
    "QueryBuilder",
    "QueryOptions",
    "_Row",
    "_SourceNeeds",
    "_alias",
    "_and",
    "_entity_alias",
    "_join",
    "_not",
    "_or",
    "collector_paused",
    "compile_membership_query",
    "compile_values_query",
    "table_ref",
]

_SourceNeeds = SourceNeeds  # the name segql.runs.incremental knows a source's needs by


@dataclass(frozen=True)
class MembershipQuery:
    """The compiled query and what it covers."""

    expression: exp.Query
    dialect: Dialect
    segments: tuple[str, ...]
    pushed: bool = False  # the person filter is in every read (QueryOptions.person_ids)

    @cached_property
    def sql(self) -> str:
        """The query's text. Generated without sqlglot's copy of the whole tree first (the
        copy took twice as long as generating); the generator may rewrite parts of
        ``expression`` into the dialect's form, which is the same query there."""
        with collector_paused():
            return generate_sql(self.expression, self.dialect.sqlglot, pretty=True, copy=False)


@dataclass(frozen=True)
class QueryOptions:
    """How a compiled query refers to the world outside the rules.

    ``members_table``: segql's table of current members, read by hysteresis segments (a
    query without one treats everybody as a non-member). ``tables``: how to name a table
    of segql.toml in the SQL (dbt passes ``{{ source(...) }}``). ``as_of_sql``: the as-of
    time as an expression, instead of a literal or the bind parameter. ``person_ids``:
    only those people's membership; ``person_id IN (...)`` is pushed into every read of
    the people table and the sources, unless a population function (``ntile``, ``qcut``,
    ``row_number``, ``percent_rank``) is compiled, which ranks everybody: then only the
    result is filtered (``MembershipQuery.pushed`` says which).
    """

    members_table: exp.Table | None = None
    tables: Callable[[str, str | None], exp.Expr] | None = None
    as_of_sql: exp.Expr | None = None
    person_ids: tuple[str, ...] | None = None
    # Where conditions on recorded membership read (language.md 9.6); None: segql's own
    # tables in the project's schema.
    history: HistorySource | None = None


def compile_membership_query(
    analyzer: Analyzer,
    segments: Sequence[str],
    dialect: Dialect,
    as_of: datetime | None = None,
    members_table: exp.Table | None = None,
    options: QueryOptions | None = None,
) -> MembershipQuery:
    """One query for the given segments at ``as_of`` (a bind parameter ``as_of`` when None)."""
    options = options or QueryOptions(members_table=members_table)
    builder = QueryBuilder(analyzer, dialect, as_of, options)
    with collector_paused():
        query = builder.build(segments)
        return MembershipQuery(query, dialect, tuple(segments), builder.plan.pushed)


def compile_values_query(
    analyzer: Analyzer,
    values: Mapping[str, ast.Expr],
    dialect: Dialect,
    as_of: datetime,
    options: QueryOptions,
) -> exp.Query:
    """``(person_id, <label>...)``: each person-scope expression's value for the people of
    ``options.person_ids`` (a trait is its ``Name``), e.g. for ``segql person``."""
    builder = QueryBuilder(analyzer, dialect, as_of, options)
    with collector_paused():
        return builder.build_values(values)


class QueryBuilder(Lowering):
    """The planner and the lowering behind one object: ``build`` plans the segments and
    lowers the plan; afterwards ``plan`` (and the views below) say what was decided.
    ``segql.runs.incremental`` subclasses it to lower the same plan over a state."""

    def __init__(
        self,
        analyzer: Analyzer,
        dialect: Dialect,
        as_of: datetime | None,
        options: QueryOptions,
    ):
        super().__init__(analyzer, dialect, as_of, options)
        self.passes: list[PassNode] = []
        self.wanted_traits: list[str] = []

    def planner(self) -> Planner:
        return Planner(
            self.analyzer,
            self.dialect,
            members=self.members_table is not None,
            person_ids=self.person_ids is not None,
        )

    def build(self, segments: Sequence[str]) -> exp.Query:
        """The membership query of ``segments``."""
        return self.lower_membership(self.adopt(self.planner().plan_membership(segments)))

    def build_values(self, values: Mapping[str, ast.Expr]) -> exp.Query:
        """The values query of ``values`` (label -> person-scope expression)."""
        return self.lower_values(self.adopt(self.planner().plan_values(values)))

    def trait_column(self, name: str) -> str:
        """Plans the traits asked for so far with ``name``; its column. ``base_ctes`` and
        ``stage_ctes`` then lower them (the trait values of ``segql.downstream.dispatch``)."""
        self.wanted_traits.append(name)
        values = {trait: ast.Name(trait) for trait in self.wanted_traits}
        return self.adopt(self.planner().plan_values(values)).trait_column(name)

    def adopt(self, plan: QueryPlan) -> QueryPlan:
        self.plan = plan
        self.passes = list(plan.passes)
        return plan

    # --- what was planned, as the builder's attributes used to say it ---------------------

    @property
    def sources(self) -> Mapping[str, SourceNeeds]:
        return self.plan.sources

    @property
    def sequences(self) -> Mapping[ast.Sequence | ast.Funnel, str]:
        return self.plan.sequences

    @property
    def current(self) -> Mapping[str, str]:
        return self.plan.current

    @property
    def entity_columns(self) -> frozenset[str]:
        return self.plan.entity_columns

    @property
    def pushed(self) -> bool:
        return self.plan.pushed
