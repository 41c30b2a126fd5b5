"""Checked definitions to one sqlglot query returning ``(segment, person_id)``.

The query is planned, not pasted together:

Every CTE is named ``segql_...`` so that none can shadow a table of the user's.

- ``segql_people``: one row per distinct non-null id with the entity columns the rules use
  (duplicates merged by ``GROUP BY``, unless the warehouse enforces the id unique).
- ``segql_rows_<source>``: each source table read once, with only the columns, event names and
  rows up to ``T`` that some rule needs.
- ``segql_aggs_<source>``: every aggregate over that source as a filtered aggregate of one
  ``GROUP BY person``, over only the rows some aggregate reads (``segql.compile.reach``: the last
  90 days, say, plus every purchase); where the dialect says so, ``segql_pass_<k>_<source>``,
  one pass per merged guard instead. ``segql_distinct_<agg>``: a distinct count on its
  own, over only its rows (in the shared pass it would hash every row; active days of a
  short window are a bitmap there instead, where the dialect has one).
  ``segql_seq_<n>``: the people who did each sequence.
- ``segql_stage_0 .. k``: per-person columns in dependency order. A trait, a population
  function or a referenced segment is a column computed once, in the first stage after
  everything it reads; ``segql_edges_<n>``: the bucket edges of ``qcut`` (and ``ntile``
  where the dialect ranks by edges).
- the result: one ``SELECT`` per segment, combined with ``UNION ALL``.

Logic is two-valued (language.md section 3). SQL's unknown only differs from false under
``NOT``, so leaves are wrapped in ``COALESCE(..., FALSE)`` there and in stored flags.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect as SqlglotDialect

from segql.compile.bucket_sql import bucket_from_hex, digest_hex
from segql.compile.dialect import TYPE, Dialect
from segql.compile.history_sql import (
    HistorySource,
    history_select,
    project_history,
    recorded_select,
)
from segql.compile.naming import (
    aggregate_name,
    column_name,
    duration_name,
    funnel_name,
    population_name,
    sequence_name,
)
from segql.compile.population_values import statistic_select
from segql.compile.reach import Guard, merge, reach, reaches_whole, seconds
from segql.compile.sqltext import generate_sql
from segql.config import SourceConfig
from segql.errors import SegqlError
from segql.language import ast
from segql.language.catalog import ValueType
from segql.language.checker import PERSON, Analyzer, PersonScope, RowScope, is_relative_point, walk
from segql.language.lists import LIST_COLUMN, read_id_list

PERSON_ID = "person_id"
_PEOPLE = "segql_people"
_STAGE_0 = "segql_stage_0"
_RECORDED = "segql_recorded"  # the recorded changes history conditions read (9.6)
EVENT_TIME = "event_time"
EVENT_NAME = "event_name"
PROPERTIES = "properties"
_COUNT_LIKE = frozenset(
    {"count", "count_distinct", "sum", "active_days", "active_weeks", "active_months"}
) | {"streak"}
COUNT_LIKE = _COUNT_LIKE  # 0, not null, for a person without rows (segql.runs.incremental)
_SECONDS = {"day": 86400, "hour": 3600}
# Aggregate passes per source at most, where the dialect splits them by guard.
_MAX_PASSES = 4
_PERIODS: dict[str, str] = {"active_days": "day", "active_weeks": "week", "active_months": "month"}


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


@dataclass
class _Row:
    """Where a row-scope expression is compiled: a source, read under a table alias."""

    source: SourceConfig
    alias: str | None = None

    def column(self, name: str) -> exp.Column:
        return exp.column(name, table=self.alias, quoted=True)


@dataclass
class _SourceNeeds:
    """What the rules read from one source; decides its ``rows_`` and ``aggs_`` CTEs."""

    source: SourceConfig
    columns: set[str] = field(default_factory=set)
    person_columns: set[str] = field(default_factory=set)
    event_names: set[str] = field(default_factory=set)
    any_event: bool = False
    json: bool = False
    aggregates: dict[ast.Aggregate, str] = field(default_factory=dict)
    aggregate_sql: dict[str, exp.Expr] = field(default_factory=dict)  # by column
    guards: dict[str, Guard] = field(default_factory=dict)  # the rows each of those keeps
    # Those whose whole filter is their guard: where the pass's WHERE is that guard, the
    # aggregate's own test of it is left out.
    guard_only: dict[str, ast.Aggregate] = field(default_factory=dict)
    separate: dict[str, exp.Select] = field(default_factory=dict)  # distinct counts, by column
    held_in: dict[str, str] = field(default_factory=dict)  # aggregate column -> its CTE


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
        return MembershipQuery(query, dialect, tuple(segments), builder.pushed)


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


class QueryBuilder:
    """Builds the query; afterwards its attributes are what ``segql.compile.planner`` reads."""

    def __init__(
        self,
        analyzer: Analyzer,
        dialect: Dialect,
        as_of: datetime | None,
        options: QueryOptions,
    ):
        self.analyzer = analyzer
        self.config = analyzer.config
        self.definitions = analyzer.definitions
        self.dialect = dialect
        self.members_table = options.members_table
        self.user_table = options.tables or table_ref
        # T as a naive UTC time; compared with a column of instants, as that instant
        # (``now_as``). The bind parameter is the text of a UTC time, read as UTC.
        self.as_of = options.as_of_sql or (
            dialect.naive_time(exp.Placeholder(this="as_of"))
            if as_of is None
            else dialect.time_literal(as_of)
        )
        self.entity_columns: set[str] = set()
        self.sources: dict[str, _SourceNeeds] = {}
        self.sequences: dict[ast.Sequence | ast.Funnel, str] = {}
        self.sequence_sql: dict[str, exp.Select] = {}  # by column
        self.current: dict[str, str] = {}  # hysteresis segment -> column of current membership
        self.stages: dict[str, int] = {PERSON_ID: 0}
        self.columns: list[tuple[str, exp.Expr]] = []  # computed person columns, in order
        # rank column -> (the value column, buckets, "qcut" or "ntile")
        self.edges: dict[str, tuple[str, int, str]] = {}
        self.traits: dict[str, str] = {}
        self.flags: dict[str, str] = {}
        self.population: dict[ast.Call, str] = {}
        self.taken: set[str] = set()  # every computed column's name
        self.population_inputs: dict[str, str] = {}  # population column -> its input
        # (CTE, source, the guards of the rows it reads or None: all, aggregate columns)
        self.passes: list[tuple[str, str, list[Guard] | None, tuple[str, ...]]] = []
        self.person_ids = options.person_ids
        self.pushed = False  # decided once the conditions are compiled
        # v2 (lang2): conditions on recorded membership, population values, bucket digests
        self.history_source = options.history or project_history(self.config.warehouse.schema)
        self.histories: dict[ast.HistoryTest, str] = {}
        self.history_sql: dict[str, exp.Select] = {}  # by column
        # population value column -> (function, its input column, p for quantiles)
        self.statistics: dict[str, tuple[str, str, float | None]] = {}
        self.bucket_digests: dict[str, str] = {}  # salt -> column of the id's md5 hex

    # --- the query ---------------------------------------------------------------------

    def build(self, segments: Sequence[str]) -> exp.Query:
        if not segments:
            raise SegqlError("no segments to compile")
        conditions = {name: self.segment_condition(name) for name in segments}
        for name in segments:  # a segment also referenced by another is computed once
            if self.flags.get(name):
                conditions[name] = self.column_ref(self.flags[name])
        for name in segments:  # priority lists: only the first segment one qualifies for
            earlier = self.definitions.priority_over(name)
            if earlier:
                taken = [_two_valued(self.segment_condition(e)) for e in earlier]
                conditions[name] = _and(
                    _grouped(_two_valued(conditions[name])), *(_not(t) for t in taken)
                )
        # A population function ranks everybody: its inputs must not be filtered.
        self.pushed = self.person_ids is not None and not self.population
        ctes = self.base_ctes()
        last = self.stage_ctes(ctes)
        selects = [
            exp.select(
                _alias(exp.Literal.string(name), "segment"),
                exp.column(PERSON_ID, quoted=True),
            )
            .from_(exp.to_identifier(last, quoted=True), copy=False)
            .where(self.only_selected(condition), copy=False)
            for name, condition in conditions.items()
        ]
        query = _union_all(selects)
        if len(selects) > 1 and self.dialect.materialize_ctes:
            ctes[-1].set("materialized", True)
        query.set("with_", exp.With(expressions=ctes))
        return query

    def build_values(self, values: Mapping[str, ast.Expr]) -> exp.Query:
        columns = {label: self.value(e, PERSON, None, None) for label, e in values.items()}
        self.pushed = self.person_ids is not None and not self.population
        ctes = self.base_ctes()
        last = self.stage_ctes(ctes)
        select = exp.select(exp.column(PERSON_ID, quoted=True)).from_(
            exp.to_identifier(last, quoted=True), copy=False
        )
        for label, value in columns.items():
            select = select.select(_alias(value, label), copy=False)
        select = select.where(self.only_selected(exp.true()), copy=False)
        select.set("with_", exp.With(expressions=ctes))
        return select

    def only_selected(self, condition: exp.Expr) -> exp.Expr:
        """A result's condition, limited to ``person_ids`` where the reads are not."""
        if self.person_ids is None or self.pushed:
            return condition
        person = exp.column(PERSON_ID, quoted=True)
        return _and(_grouped(condition), self.person_filter(person, self.config.entity.table))

    def person_filter(self, person: exp.Column, table: str) -> exp.Expr:
        """``person IN (ids)``: numbers where the column is a number (an id that is not
        one matches no one), text otherwise."""
        assert self.person_ids is not None
        ids: list[exp.Expr] = []
        numeric = self.analyzer.catalog.column_type(table, person.name) == "number"
        for person_id in dict.fromkeys(self.person_ids):
            if not numeric:
                ids.append(exp.Literal.string(person_id))
            elif _is_number(person_id):
                ids.append(exp.Literal.number(person_id))
        return person.isin(*ids) if ids else exp.false()

    def segment_condition(self, name: str) -> exp.Expr:
        """The condition that selects a segment's members from the last stage."""
        segment = self.definitions.segments[name]
        if name in self.flags:
            return self.column_ref(self.flags[name])
        if segment.is_hysteresis:
            return self.hysteresis(name, segment)
        assert segment.where is not None
        return self.condition(segment.where, PERSON, None)

    def hysteresis(self, name: str, segment: ast.Segment) -> exp.Expr:
        assert segment.enter is not None and segment.exit is not None
        enter = _two_valued(self.condition(segment.enter, PERSON, None))
        exit_ = _two_valued(self.condition(segment.exit, PERSON, None))
        if self.members_table is None:
            return enter
        if name not in self.current:
            self.current[name] = self.new_column(column_name(["current", name], name))
        current = self.current[name]
        self.stages[current] = 0
        stays = _and(self.column_ref(current), _not(exit_))
        return _or(enter, stays)

    # --- stages of person columns ------------------------------------------------------

    def column_ref(self, name: str) -> exp.Column:
        return exp.column(name, quoted=True)

    def now(self) -> exp.Expr:
        """The as-of time ``T``, a fresh node each time (a node has one parent)."""
        return self.as_of.copy()

    # --- times: naive UTC, or instants where the column holds them ---------------------

    def now_as(self, instant: bool) -> exp.Expr:
        """``T`` typed to meet a time column: naive UTC, or the instant (``+00:00``)."""
        return self.dialect.as_instant(self.now()) if instant else self.now()

    def source_instant(self, source: SourceConfig) -> bool:
        """Whether a source's time column holds instants (``TIMESTAMPTZ`` and the like)."""
        return source.time is not None and self.analyzer.catalog.holds_instants(
            source.table, source.time
        )

    def holds_instant(self, expr: ast.Expr, scope: PersonScope | RowScope) -> bool:
        """Whether a time expression's SQL is an instant; literals, ``now`` and ``N units
        ago`` are naive UTC, like columns without a time zone."""
        catalog = self.analyzer.catalog
        if isinstance(expr, ast.Name):
            if isinstance(scope, RowScope):
                return catalog.holds_instants(scope.source.table, expr.name)
            if self.analyzer.resolve(expr.name, scope, expr.span).kind == "trait":
                return self.holds_instant(self.definitions.traits[expr.name].expr, PERSON)
            return catalog.holds_instants(self.config.entity.table, expr.name)
        if isinstance(expr, ast.PersonProperty):
            return catalog.holds_instants(self.config.entity.table, expr.name)
        if isinstance(expr, ast.Aggregate):
            source = self.analyzer.source_of(expr.spec)
            if expr.func in ("first_time", "last_time"):
                return self.source_instant(source)
            return expr.prop is not None and catalog.holds_instants(source.table, expr.prop)
        if isinstance(expr, ast.Call) and expr.func in ("coalesce", "least", "greatest"):
            return all(self.holds_instant(a, scope) for a in expr.args)
        return False

    def aligned(
        self, left: exp.Expr, left_instant: bool, right: exp.Expr, right_instant: bool
    ) -> tuple[exp.Expr, exp.Expr]:
        """Two times of one type: where one is an instant, the naive one (UTC) becomes the
        same instant; the engine would otherwise convert it in the session's zone."""
        if left_instant and not right_instant:
            return left, self.dialect.as_instant(right)
        if right_instant and not left_instant:
            return self.dialect.as_instant(left), right
        return left, right

    def stage_of(self, expression: exp.Expr) -> int:
        """The stage that holds everything an expression reads."""
        return max(
            (self.stages.get(c.name, 0) for c in expression.find_all(exp.Column) if not c.table),
            default=0,
        )

    def new_column(self, name: str) -> str:
        """A computed column's name, kept unique (the hash of ``segql.compile.naming`` makes a clash
        all but impossible; a numbered suffix settles one anyway)."""
        unique, number = name, 1
        while unique in self.taken:
            number += 1
            unique = f"{name}_{number}"
        self.taken.add(unique)
        return unique

    def add_column(self, name: str, expression: exp.Expr) -> str:
        """A computed person column, placed one stage after what it reads. A column that
        would only rename another (``trait ltv = sum(...)``) is that column: a stage per
        rename made ranks over traits wait, and each stage is a copy of every person."""
        if isinstance(expression, exp.Column) and not expression.table:
            return expression.name
        self.stages[name] = self.stage_of(expression) + 1
        self.columns.append((name, expression))
        return name

    def stage_ctes(self, ctes: list[exp.CTE]) -> str:
        """The stages on top of stage 0; returns the last one's name."""
        last = _STAGE_0
        top = max((self.stages[name] for name, _ in self.columns), default=0)
        for stage in range(1, top + 1):
            name = f"segql_stage_{stage}"
            select = exp.select(exp.Star()).from_(exp.to_identifier(last, quoted=True))
            for column, expression in self.columns:
                if self.stages[column] == stage:
                    select = select.select(_alias(expression, column), copy=False)
                    if column in self.edges:
                        ctes.append(_cte(_edges(column), self.edges_select(last, column)))
                        _join(select, exp.to_identifier(_edges(column), quoted=True), kind="CROSS")
                    if column in self.statistics:
                        func, value_name, p = self.statistics[column]
                        values = statistic_select(last, value_name, func, p, _statistic(column))
                        ctes.append(_cte(_statistics(column), values))
                        statistics = exp.to_identifier(_statistics(column), quoted=True)
                        _join(select, statistics, kind="CROSS")
            ctes.append(_cte(name, select))
            last = name
        return last

    # --- base CTEs ---------------------------------------------------------------------

    def base_ctes(self) -> list[exp.CTE]:
        ctes = [_cte(_PEOPLE, self.people_select())]
        joins: list[str] = []  # CTEs of one row per person, joined to people
        for needs in self.sources.values():
            rows = f"segql_rows_{needs.source.name}"
            rows_cte = _cte(rows, self.rows_select(needs))
            if self.pushed and self.dialect.materialize_ctes:
                # One person's rows: read the table once, and let every pass read those few
                # rows, instead of each pass scanning the table for them.
                rows_cte.set("materialized", True)
            elif self.dialect.inline_source_rows:
                rows_cte.set("materialized", False)
            ctes.append(rows_cte)
            for aggs, select in self.aggregate_passes(needs, rows):
                ctes.append(_cte(aggs, select))
                joins.append(aggs)
            for column, select in needs.separate.items():
                name = needs.held_in[column]
                ctes.append(_cte(name, select))
                joins.append(name)
        for column in self.sequences.values():
            name = f"segql_seq_{column}"
            ctes.append(_cte(name, self.sequence_sql[column]))
            joins.append(name)
        if self.histories:
            segments = [test.segment for test in self.histories]
            recorded = recorded_select(self.history_source, self.now(), segments)
            ctes.append(_cte(_RECORDED, recorded))
        for column in self.histories.values():
            ctes.append(_cte(f"segql_hist_{column}", self.history_sql[column]))
        stage = exp.select(exp.column(PERSON_ID, table=_PEOPLE, quoted=True)).from_(
            exp.to_identifier(_PEOPLE, quoted=True)
        )
        for column in sorted(self.entity_columns):
            stage = stage.select(
                exp.column(_entity_alias(column), table=_PEOPLE, quoted=True), copy=False
            )
        for table in joins:
            on = exp.column(PERSON_ID, table=table, quoted=True).eq(
                exp.column(PERSON_ID, table=_PEOPLE, quoted=True)
            )
            _join(stage, exp.to_identifier(table, quoted=True), on=on, side="LEFT")
        for needs in self.sources.values():
            for aggregate, column in needs.aggregates.items():
                held = needs.held_in[column]
                value: exp.Expr = exp.column(column, table=held, quoted=True)
                if aggregate.func in _COUNT_LIKE:
                    value = exp.func("COALESCE", value, exp.Literal.number(0))
                stage = stage.select(_alias(value, column), copy=False)
        for column in self.sequences.values():
            found = exp.column(PERSON_ID, table=f"segql_seq_{column}", quoted=True)
            stage = stage.select(_alias(found.is_(exp.null()).not_(), column), copy=False)
        for segment, column in self.current.items():
            stage = self.join_current_members(stage, segment, column)
        for column in self.histories.values():
            stage = self.join_history(stage, column)
        ctes.append(_cte(_STAGE_0, stage))
        return ctes

    def people_select(self) -> exp.Select:
        """One row per distinct non-null id: duplicate rows merged column by column (the
        greatest value), unless the warehouse guarantees the id unique."""
        entity = self.config.entity
        catalog = self.analyzer.catalog
        unique = catalog.is_unique(entity.table, entity.id)
        person = exp.column(entity.id, quoted=True)
        select = exp.select(_alias(person, PERSON_ID)).from_(self.user_table(entity.table, None))
        for column in sorted(self.entity_columns):
            value: exp.Expr = exp.column(column, quoted=True)
            if catalog.column_type(entity.table, column) == "number":
                value = self.dialect.nan_as_null(value)
            if not unique:
                boolean = catalog.column_type(entity.table, column) == "boolean"
                value = exp.LogicalOr(this=value) if boolean else exp.Max(this=value)
            select = select.select(_alias(value, _entity_alias(column)), copy=False)
        select = select.where(person.is_(exp.null()).not_(), copy=False)
        if self.pushed:
            select = select.where(self.person_filter(person.copy(), entity.table), copy=False)
        return select if unique else select.group_by(person.copy(), copy=False)

    def rows_select(self, needs: _SourceNeeds) -> exp.Select:
        """A source's rows up to T. Rows without a person are not filtered out here: every
        reader meets the people by ``person_id =``, which a null never passes, and the
        test cost DuckDB's scan a tenth of a one-segment query."""
        source = needs.source
        table = "source_rows"
        person = exp.column(source.person, table=table, quoted=True)
        select = exp.select(_alias(person, PERSON_ID)).from_(self.user_table(source.table, table))
        filters: list[exp.Expr] = []
        if self.pushed:
            filters.append(self.person_filter(person.copy(), source.table))
        if source.time is not None:
            time = exp.column(source.time, table=table, quoted=True)
            select = select.select(_alias(time, EVENT_TIME), copy=False)
            filters.append(exp.LTE(this=time, expression=self.now_as(self.source_instant(source))))
        if source.event_name is not None:
            name = exp.column(source.event_name, table=table, quoted=True)
            select = select.select(_alias(name, EVENT_NAME), copy=False)
            if not needs.any_event:
                names = [exp.Literal.string(n) for n in sorted(needs.event_names)]
                filters.append(name.isin(*names))
        for column in sorted(needs.columns):
            value: exp.Expr = exp.column(column, table=table, quoted=True)
            if self.analyzer.catalog.column_type(source.table, column) == "number":
                value = self.dialect.nan_as_null(value)
            select = select.select(_alias(value, _row_alias(column)), copy=False)
        if needs.json:
            assert source.properties is not None
            value = exp.column(source.properties, table=table, quoted=True)
            # JSON in a text column may be malformed: null for that row, not a failed run
            if self.analyzer.catalog.column_type(source.table, source.properties) == "string":
                value = self.dialect.json_or_null(value)
            select = select.select(_alias(value, PROPERTIES), copy=False)
        if needs.person_columns:
            people = exp.to_identifier(_PEOPLE, quoted=True)
            on = exp.column(PERSON_ID, table=_PEOPLE, quoted=True).eq(person)
            _join(select, people, on=on, kind="INNER")
            for column in sorted(needs.person_columns):
                value = exp.column(_entity_alias(column), table=_PEOPLE, quoted=True)
                select = select.select(_alias(value, _person_alias(column)), copy=False)
        return select.where(_and(*filters), copy=False) if filters else select

    def aggregate_passes(self, needs: _SourceNeeds, rows: str) -> list[tuple[str, exp.Select]]:
        """The ``GROUP BY person`` passes over a source's rows: ``(CTE name, select)``.

        One pass keeps the rows of every merged guard (``segql.compile.reach``). Where the dialect
        says so, each merged guard is a pass of its own instead, holding the aggregates it
        covers (event-named guards first: they usually keep fewer rows): a window alone
        then lets the scan skip old data, a name reaches the scan as an equality, and no
        row is offered to aggregates that ignore it. Joining each pass to the people costs
        a hash join, so past ``_MAX_PASSES`` guards one pass keeps them all.
        """
        guards = merge(list(needs.guards.values()))
        columns = list(needs.aggregate_sql)
        name = f"segql_aggs_{needs.source.name}"
        split = (
            self.dialect.pass_per_guard and guards is not None and 1 < len(guards) <= _MAX_PASSES
        )
        if not split:
            passes = [(guards, columns)] if columns else []
        else:
            assert guards is not None
            guards = sorted(guards, key=lambda g: g.names is None)
            held: dict[Guard, list[str]] = {guard: [] for guard in guards}
            for column in columns:
                covering = next(g for g in guards if g.covers(needs.guards[column]))
                held[covering].append(column)
            passes = [([guard], kept) for guard, kept in held.items() if kept]
        named = []
        for number, (kept_rows, kept) in enumerate(passes, 1):
            # not segql_aggs_<source>_<k>: a source may be named events_1
            cte = name if len(passes) == 1 else f"segql_pass_{number}_{needs.source.name}"
            named.append((cte, self.aggregates_select(needs, rows, kept_rows, kept)))
            self.passes.append((cte, needs.source.name, kept_rows, tuple(kept)))
            needs.held_in.update(dict.fromkeys(kept, cte))
        return named

    def aggregates_select(
        self, needs: _SourceNeeds, rows: str, guards: list[Guard] | None, columns: list[str]
    ) -> exp.Select:
        """One pass: ``columns`` over the rows that one of ``guards`` keeps (None: all)."""
        select = exp.select(exp.column(PERSON_ID, quoted=True)).from_(
            exp.to_identifier(rows, quoted=True)
        )
        only = guards[0] if guards and len(guards) == 1 else None  # the WHERE, if one guard
        for column in columns:
            sql = needs.aggregate_sql[column]
            aggregate = needs.guard_only.get(column)
            if aggregate is not None and only is not None and needs.guards[column].covers(only):
                sql = self.shared_sql(aggregate, _Row(needs.source), None)  # no test left
            select = select.select(_alias(sql, column), copy=False)
        select = select.group_by(exp.column(PERSON_ID, quoted=True), copy=False)
        if guards is None:
            return select
        keeps = _or(*(self.guard_sql(g, _Row(needs.source)) for g in guards))
        return select.where(keeps, copy=False)

    def guard_sql(self, guard: Guard, row: _Row) -> exp.Expr:
        """The rows a guard keeps: some of its names, after how far back it reaches."""
        parts: list[exp.Expr] = []
        if guard.names is not None:
            names = [exp.Literal.string(n) for n in sorted(guard.names)]
            name = row.column(EVENT_NAME)
            parts.append(name.eq(names[0]) if len(names) == 1 else name.isin(*names))
        if isinstance(guard.reach, ast.Duration):
            since = self.shift(self.now(), guard.reach, -1)
            if self.source_instant(row.source):
                since = self.dialect.as_instant(since)
            parts.append(exp.GT(this=row.column(EVENT_TIME), expression=since))
        elif guard.reach is not None:
            parts.append(self.window(guard.reach, row.column(EVENT_TIME), row))
        return _and(*parts) if parts else exp.true()

    def join_current_members(self, stage: exp.Select, segment: str, column: str) -> exp.Select:
        assert self.members_table is not None
        alias = f"members_{column}"
        members = (
            exp.select(exp.column(PERSON_ID, quoted=True))
            .from_(self.members_table.copy())
            .where(exp.column("segment", quoted=True).eq(exp.Literal.string(segment)))
        )
        person = exp.cast(
            exp.column(PERSON_ID, table=_PEOPLE, quoted=True), TYPE.VARCHAR, copy=False
        )
        on = exp.column(PERSON_ID, table=alias, quoted=True).eq(person)
        _join(stage, members.subquery(alias, copy=False), on=on, side="LEFT")
        found = exp.column(PERSON_ID, table=alias, quoted=True).is_(exp.null()).not_()
        return stage.select(_alias(found, column), copy=False)

    # --- aggregates and sequences ------------------------------------------------------

    def needs(self, source: SourceConfig) -> _SourceNeeds:
        return self.sources.setdefault(source.name, _SourceNeeds(source))

    def aggregate_column(self, aggregate: ast.Aggregate) -> exp.Column:
        source = self.analyzer.source_of(aggregate.spec)
        needs = self.needs(source)
        if aggregate not in needs.aggregates:
            column = self.new_column(aggregate_name(aggregate))
            needs.aggregates[aggregate] = column
            self.stages[column] = 0
            # Built now, once: building it also records the columns and names it reads.
            self.add_aggregate(aggregate, column, needs)
        return self.column_ref(needs.aggregates[aggregate])

    def add_aggregate(self, aggregate: ast.Aggregate, column: str, needs: _SourceNeeds) -> None:
        """An aggregate into its source's passes; a distinct count into a CTE of its own.

        A ``COUNT(DISTINCT ...)`` in the shared pass would hash every row the pass reads
        (the engine cannot skip the rows its ``CASE`` turns to null); on its own, it reads
        only the rows it counts. Distinct periods in a short window are a bitmap in the
        shared pass where the dialect has one.
        """
        spec = aggregate.spec
        if aggregate.func == "streak" or spec.last is not None:
            self.add_ranked_aggregate(aggregate, column, needs)
            return
        row = _Row(needs.source)
        distinct = self.distinct_value(aggregate, row)
        if distinct is not None and not self.fits_bitmap(aggregate.func, spec.window):
            match = self.spec_filter(spec, row, where_clause=True)
            needs.separate[column] = self.distinct_select(needs, distinct, match, column)
            needs.held_in[column] = f"segql_distinct_{column}"
            return
        match = self.spec_filter(spec, row)
        needs.aggregate_sql[column] = self.shared_sql(aggregate, row, match)
        names = None if spec.ref is None or not needs.source.is_events else frozenset([spec.ref])
        needs.guards[column] = Guard(names, reach(spec.window))
        if spec.where is None and reaches_whole(spec.window):
            needs.guard_only[column] = aggregate

    def add_ranked_aggregate(
        self, aggregate: ast.Aggregate, column: str, needs: _SourceNeeds
    ) -> None:
        """``streak()`` and ``among last N`` (language v2): a ``GROUP BY person`` of their
        own over ranked rows (``segql.compile.ranked``), joined to the people."""
        from segql.compile.ranked import (  # they build on this module
            last_rows_select,
            streak_select,
        )

        build = streak_select if aggregate.func == "streak" else last_rows_select
        needs.separate[column] = build(self, aggregate, column)
        kind = "streak" if aggregate.func == "streak" else "last"
        needs.held_in[column] = f"segql_{kind}_{column}"

    def shared_sql(
        self, aggregate: ast.Aggregate, row: _Row, match: exp.Expr | None
    ) -> exp.Expr:
        """An aggregate of the shared pass, over the rows that match."""
        if aggregate.func in _PERIODS:
            return self.period_bitmap(aggregate.func, match, self.source_instant(row.source))
        return self.aggregate_sql(aggregate, row, match)

    def aggregate_sql(
        self, aggregate: ast.Aggregate, row: _Row, match: exp.Expr | None
    ) -> exp.Expr:
        func = aggregate.func
        time = exp.column(EVENT_TIME, quoted=True)
        if func == "count":
            return self.filtered(exp.Count(this=exp.Star()), None, match)
        if aggregate.prop is not None:
            want: ValueType | None = "number" if func in ("sum", "avg", "min", "max") else None
            if func in ("min", "max") and self.prop_type(aggregate) != "json":
                want = None
            value = self.row_value(aggregate.prop, row, want)
            of_values = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}
            return self.filtered(of_values[func](this=value), value, match)
        assert func in ("first_time", "last_time"), func
        of_times = exp.Min if func == "first_time" else exp.Max
        return self.filtered(of_times(this=time), time, match)

    def distinct_value(self, aggregate: ast.Aggregate, row: _Row) -> exp.Expr | None:
        """What a distinct count counts (None: not a distinct count)."""
        if aggregate.func == "count_distinct":
            assert aggregate.prop is not None
            return self.row_value(aggregate.prop, row, None)
        if aggregate.func in _PERIODS:
            instant = self.source_instant(row.source)
            return self.period(aggregate.func, row.column(EVENT_TIME), instant)
        return None

    def period(self, func: str, time: exp.Expr, instant: bool = False) -> exp.Expr:
        """The calendar day, week or month of a time, in the project's timezone."""
        local = self.local_time(time, instant)
        if func == "active_days":
            return exp.cast(local, TYPE.DATE, copy=False)
        unit = self.dialect.iso_week_unit if func == "active_weeks" else _PERIODS[func].upper()
        return exp.TimestampTrunc(this=local, unit=exp.var(unit))

    def fits_bitmap(self, func: str, window: ast.Window | None) -> bool:
        """Whether ``active_*`` over this window can be a bitmap of 64 periods."""
        unit = _PERIODS.get(func)
        bounded = reach(window)
        if unit is None or not self.dialect.distinct_bitmap:
            return False
        if not isinstance(bounded, ast.Duration):
            return False
        longest = seconds(bounded)[1] // seconds(ast.Duration(1, unit))[0]  # type: ignore[arg-type]
        # +1 for a partial period at each end, +1 because bit 0 is kept free: a timezone
        # that falls back at midnight can date a row just before T on T's next day.
        return longest + 3 <= 64

    def period_bitmap(
        self, func: str, match: exp.Expr | None, instant: bool = False
    ) -> exp.Expr:
        """``active_*`` over a short window as a bitmap of periods back from T (one bit each,
        counted with ``BIT_COUNT``): an ordinary aggregate in the shared pass."""
        unit = _PERIODS[func]
        time = exp.column(EVENT_TIME, quoted=True)
        back = exp.DateDiff(
            this=self.period(func, self.now()),
            expression=self.period(func, time, instant),
            unit=exp.var(unit.upper()),
        )
        index = exp.Add(this=back, expression=exp.Literal.number(1))
        one = exp.cast(exp.Literal.number(1), TYPE.UBIGINT, copy=False)
        bit = exp.BitwiseLeftShift(this=one, expression=index)
        bits = self.filtered(exp.BitwiseOrAgg(this=bit), bit, match)
        return exp.cast(exp.BitwiseCount(this=bits), TYPE.BIGINT, copy=False)

    def distinct_select(
        self,
        needs: _SourceNeeds,
        value: exp.Expr,
        match: exp.Expr | None,
        column: str,
    ) -> exp.Select:
        """``COUNT(DISTINCT value)`` per person over only the rows that match."""
        count = exp.Count(this=exp.Distinct(expressions=[value]))
        select = (
            exp.select(exp.column(PERSON_ID, quoted=True), _alias(count, column))
            .from_(table_ref(f"segql_rows_{needs.source.name}", cte=True), copy=False)
            .group_by(exp.column(PERSON_ID, quoted=True), copy=False)
        )
        return select.where(match, copy=False) if match is not None else select

    def prop_type(self, aggregate: ast.Aggregate) -> ValueType:
        source = self.analyzer.source_of(aggregate.spec)
        assert aggregate.prop is not None
        return self.analyzer.resolve(aggregate.prop, RowScope(source), aggregate.span).type

    def filtered(
        self, aggregate: exp.Expr, value: exp.Expr | None, match: exp.Expr | None
    ) -> exp.Expr:
        """An aggregate over the rows that match: ``FILTER (WHERE ...)`` or ``CASE WHEN``."""
        if match is None:
            return aggregate
        if self.dialect.aggregate_filter:
            return exp.Filter(this=aggregate, expression=exp.Where(this=match))
        kept = exp.Case(ifs=[exp.If(this=match, true=value or exp.Literal.number(1))])
        inner = aggregate.this
        if isinstance(inner, exp.Distinct):
            return aggregate.__class__(this=exp.Distinct(expressions=[kept]))
        return aggregate.__class__(this=kept)

    def local_time(self, time: exp.Expr, instant: bool = False) -> exp.Expr:
        """A time (naive UTC, or an instant) as wall-clock time in the project's timezone,
        for calendar days: the zone is written in the SQL, the session's never counts."""
        return self.dialect.wall_time(time, instant, self.config.warehouse.timezone)

    def spec_filter(
        self, spec: ast.EventSpec, row: _Row, where_clause: bool = False
    ) -> exp.Expr | None:
        """Which rows of the source an event spec keeps (None: every row up to T).

        In a ``WHERE`` clause it is a plain ``AND``, the cheap tests first: the engine pushes
        the name and window into its scan (skipping blocks of rows by their time range) and
        evaluates the rest only on the rows that pass them."""
        needs = self.needs(row.source)
        cheap: list[exp.Expr] = []
        if row.source.is_events:
            if spec.ref is None:
                needs.any_event = True
            else:
                needs.event_names.add(spec.ref)
                cheap.append(
                    exp.EQ(this=row.column(EVENT_NAME), expression=exp.Literal.string(spec.ref))
                )
        if spec.window is not None:
            cheap.append(self.window(spec.window, row.column(EVENT_TIME), row))
        if spec.where is None:
            return _and(*cheap) if cheap else None
        where = self.condition(spec.where, RowScope(row.source), row)
        if not cheap:
            return where
        if where_clause:
            return _and(*cheap, where)
        # The filter (JSON, text, regular expressions) only for rows of the right event and
        # window: CASE evaluates its THEN for the rows that pass its WHEN, AND may not.
        return exp.Case(ifs=[exp.If(this=_and(*cheap), true=where)])

    def window(self, window: ast.Window, time: exp.Expr, row: _Row | None) -> exp.Expr:
        """A window on a row's time (the time of ``row``'s source)."""
        instant = row is not None and self.source_instant(row.source)
        if isinstance(window, ast.WindowPeriod):
            from segql.compile.calendar import period_test  # it builds on this module

            return period_test(self, window, time, instant, up_to_now=False)
        if isinstance(window, ast.WindowWithin):
            # Source rows are already at or before T: only the lower bound is left to test.
            since = self.shift(self.now(), window.duration, -1)
            since = self.dialect.as_instant(since) if instant else since
            return exp.GT(this=time, expression=since)
        parts = []
        if window.start is not None:
            parts.append(self.time_side("after", time, window.start, row, instant))
        if window.end is not None:
            parts.append(self.time_side("before", time, window.end, row, instant))
        return _and(*parts)

    def within(
        self, time: exp.Expr, duration: ast.Duration, instant: bool = False
    ) -> exp.Expr:
        since = self.shift(self.now(), duration, -1)
        if instant:
            since = self.dialect.as_instant(since)
        return _and(
            exp.GT(this=time, expression=since),
            exp.LTE(this=time.copy(), expression=self.now_as(instant)),
        )

    def time_side(
        self,
        op: str,
        time: exp.Expr,
        point: ast.Expr,
        row: _Row | None,
        instant: bool = False,
    ) -> exp.Expr:
        """``before``/``after`` a point, on the side language.md gives the point; ``instant``:
        whether ``time`` is one (the point is then typed the same)."""
        scope = PERSON if row is None else RowScope(row.source)
        value = self.value(point, scope, row, "time")
        time, value = self.aligned(time, instant, value, self.holds_instant(point, scope))
        relative = is_relative_point(point)
        if op == "before":
            return time <= value if relative else time < value
        return time > value if relative else time >= value

    def shift(self, time: exp.Expr, duration: ast.Duration, sign: int) -> exp.Expr:
        amount = exp.Literal.number(duration.amount)
        unit = exp.var(duration.unit.upper())
        if sign < 0:
            return exp.DateSub(this=time, expression=amount, unit=unit)
        return exp.DateAdd(this=time, expression=amount, unit=unit)

    def naive_row_time(self, row: _Row) -> exp.Expr:
        """A row's time as naive UTC: steps of days and months are taken there, not in
        the session's zone (as on an instant)."""
        time = row.column(EVENT_TIME)
        return self.dialect.as_naive(time) if self.source_instant(row.source) else time

    def sequence_column(self, sequence: ast.Sequence) -> exp.Column:
        if sequence not in self.sequences:
            column = self.new_column(sequence_name(sequence))
            self.sequences[sequence] = column
            self.stages[column] = 0
            # Built now, once: building it also records the columns and names it reads.
            self.sequence_sql[column] = self.sequence_select(sequence)
        return self.column_ref(self.sequences[sequence])

    def sequence_select(self, sequence: ast.Sequence) -> exp.Select:
        """People with an A row followed (or, negated, not followed) by a B row in time."""
        first = _Row(self.analyzer.source_of(sequence.first), "a")
        then = _Row(self.analyzer.source_of(sequence.then), "b")
        a_instant, b_instant = self.source_instant(first.source), self.source_instant(then.source)
        b_time, a_time = self.aligned(
            then.column(EVENT_TIME), b_instant, first.column(EVENT_TIME), a_instant
        )
        follows: list[exp.Expr] = [
            exp.EQ(this=then.column(PERSON_ID), expression=first.column(PERSON_ID)),
            exp.GT(this=b_time, expression=a_time),
        ]
        if sequence.within is not None:
            until = self.shift(self.naive_row_time(first), sequence.within, +1)
            follows.append(
                exp.LTE(
                    this=then.column(EVENT_TIME),
                    expression=self.dialect.as_instant(until) if b_instant else until,
                )
            )
        then_filter = self.spec_filter(sequence.then, then, where_clause=True)
        if then_filter is not None:
            follows.append(then_filter)
        later = (
            exp.select(exp.Literal.number(1))
            .from_(table_ref(f"segql_rows_{then.source.name}", alias="b", cte=True), copy=False)
            .where(_and(*follows), copy=False)
        )
        found = exp.Exists(this=later)
        # The A rows as distinct (person, time) pairs, filtered first: all the EXISTS reads
        # of them. (Correlated on the raw rows, DuckDB scanned them twice: 1.25x the time.)
        firsts = (
            exp.select(first.column(PERSON_ID), first.column(EVENT_TIME))
            .distinct(copy=False)
            .from_(table_ref(f"segql_rows_{first.source.name}", alias="a", cte=True), copy=False)
        )
        first_filter = self.spec_filter(sequence.first, first, where_clause=True)
        if first_filter is not None:
            firsts = firsts.where(first_filter, copy=False)
        conditions: list[exp.Expr] = []
        if sequence.negated:
            conditions.append(_not(found))
            if sequence.within is not None:
                until = self.shift(self.naive_row_time(first), sequence.within, +1)
                conditions.append(exp.LTE(this=until, expression=self.now()))
        else:
            conditions.append(found)
        return (
            exp.select(first.column(PERSON_ID))
            .distinct(copy=False)
            .from_(firsts.subquery(exp.to_identifier("a", quoted=True), copy=False), copy=False)
            .where(_and(*conditions), copy=False)
        )

    # --- conditions --------------------------------------------------------------------

    def condition(
        self, condition: ast.Condition, scope: PersonScope | RowScope, row: _Row | None,
        strict: bool = False,
    ) -> exp.Expr:  # fmt: skip
        """A condition as SQL. ``strict``: an unknown must come out false (under NOT)."""
        match condition:
            case ast.And(items=items):
                return _and(*(self.condition(c, scope, row, strict) for c in items))
            case ast.Or(items=items):
                return _or(*(self.condition(c, scope, row, strict) for c in items))
            case ast.Not(operand=operand):
                return _not(self.condition(operand, scope, row, strict=True))
        predicate = self.predicate(condition, scope, row)
        if strict and self.nullable(condition, scope):
            return _two_valued(predicate)
        return predicate

    def id_list(self, condition: ast.IdList) -> exp.Expr:
        """A list segment: the person's id among the file's ids, or in the table's
        ``person_id`` column (both compared as text)."""
        person = self.column_ref(PERSON_ID)
        if condition.kind == "list":
            entity = self.config.entity
            ids = read_id_list(self.config.root, condition.name, entity.id, condition.span)
            numeric = self.analyzer.catalog.column_type(entity.table, entity.id) == "number"
            if numeric:
                ids = [i for i in ids if _is_number(i)]
                literals = [exp.Literal.number(i) for i in ids]
            else:
                literals = [exp.Literal.string(i) for i in ids]
            return person.isin(*literals) if literals else exp.false()
        *schema, table = condition.name.split(".")
        source = exp.Table(
            this=exp.to_identifier(table, quoted=True),
            db=exp.to_identifier(schema[-1], quoted=True) if schema else None,
        )
        listed = exp.cast(exp.column(LIST_COLUMN, quoted=True), TYPE.VARCHAR, copy=False)
        listed_ids = exp.select(listed).from_(source, copy=False)
        listed_ids = listed_ids.where(
            exp.column(LIST_COLUMN, quoted=True).is_(exp.null()).not_(), copy=False
        )
        text = exp.cast(person, TYPE.VARCHAR, copy=False)
        return exp.In(this=text, query=listed_ids.subquery(copy=False))

    def nullable(self, condition: ast.Condition, scope: PersonScope | RowScope) -> bool:
        """Can SQL give unknown for this predicate? (A guess on the safe side.)"""
        if isinstance(condition, (ast.IsSet, ast.InSegment, ast.Sequence, ast.IdList)):
            return False
        if isinstance(condition, ast.Funnel):
            return False
        operands = [n for n in walk(condition) if isinstance(n, ast.Expr.__args__)]
        return not all(_never_null(n) for n in operands if not isinstance(n, ast.EventSpec))

    def predicate(
        self, condition: ast.Condition, scope: PersonScope | RowScope, row: _Row | None
    ) -> exp.Expr:
        if isinstance(condition, ast.Compare):
            left_type, right_type = self.types(condition.left, condition.right, scope)
            left = self.value(condition.left, scope, row, right_type)
            right = self.value(condition.right, scope, row, left_type)
            if "time" in (left_type, right_type):
                left, right = self.aligned(
                    left,
                    self.holds_instant(condition.left, scope),
                    right,
                    self.holds_instant(condition.right, scope),
                )
            return _COMPARISONS[condition.op](this=left, expression=right)
        if isinstance(condition, ast.InList):
            kinds = [self.analyzer.type_of(v, scope) for v in condition.values]
            want: ValueType | None = next((k for k in kinds if k != "null"), None)
            subject = self.value(condition.expr, scope, row, want)
            values = [
                self.value(v, scope, row, self.analyzer.type_of(condition.expr, scope))
                for v in condition.values
                if not isinstance(v, ast.Null)
            ]
            if not values:
                return subject.is_(exp.null()).not_() if condition.negated else exp.false()
            test: exp.Expr = subject.isin(*values)
            return _not(test) if condition.negated else test
        if isinstance(condition, ast.Between):
            bounds = [self.analyzer.type_of(b, scope) for b in (condition.low, condition.high)]
            want = next((k for k in bounds if k not in ("null", "json", "any")), None)
            kind = self.analyzer.type_of(condition.expr, scope)
            subject = self.value(condition.expr, scope, row, want)
            low = self.value(condition.low, scope, row, kind)
            high = self.value(condition.high, scope, row, kind)
            if "time" in (kind, want):
                instant = self.holds_instant(condition.expr, scope)
                subject, low = self.aligned(
                    subject, instant, low, self.holds_instant(condition.low, scope)
                )
                subject, high = self.aligned(
                    subject, instant, high, self.holds_instant(condition.high, scope)
                )
            test = exp.Between(this=subject, low=low, high=high)
            return _not(test) if condition.negated else test
        if isinstance(condition, ast.TextTest):
            return self.text_test(condition, scope, row)
        if isinstance(condition, ast.IsSet):
            value = self.value(condition.expr, scope, row, None)
            test = value.is_(exp.null())
            return test if condition.negated else test.not_()
        if isinstance(condition, ast.TimeTest):
            time = self.value(condition.expr, scope, row, "time")
            instant = self.holds_instant(condition.expr, scope)
            if condition.op == "within":
                assert isinstance(condition.arg, ast.Duration)
                return self.within(time, condition.arg, instant)
            return self.time_side(condition.op, time, condition.arg, row, instant)
        if isinstance(condition, ast.InSegment):
            return self.column_ref(self.segment_flag(condition.segment))
        if isinstance(condition, ast.Sequence):
            return self.sequence_column(condition)
        if isinstance(condition, (ast.Funnel, ast.PeriodTest)):
            return self.v2_predicate(condition, scope, row)
        if isinstance(condition, ast.IdList):
            return self.id_list(condition)
        if isinstance(condition, ast.HistoryTest):
            return self.history_column(condition)
        raise TypeError(f"not a condition: {condition!r}")

    def v2_predicate(
        self, condition: ast.Funnel | ast.PeriodTest, scope: PersonScope | RowScope,
        row: _Row | None,
    ) -> exp.Expr:  # fmt: skip
        """Funnels of three steps or more, and calendar tests on a time (language v2)."""
        if isinstance(condition, ast.PeriodTest):
            from segql.compile.calendar import period_test  # it builds on this module

            time = self.value(condition.expr, scope, row, "time")
            instant = self.holds_instant(condition.expr, scope)
            return period_test(self, condition.period, time, instant, up_to_now=True)
        if condition not in self.sequences:
            from segql.compile.funnels import funnel_select  # it builds on this module

            column = self.new_column(funnel_name(condition))
            self.sequences[condition] = column
            self.stages[column] = 0
            self.sequence_sql[column] = funnel_select(self, condition)
        return self.column_ref(self.sequences[condition])

    def types(
        self, left: ast.Expr, right: ast.Expr, scope: PersonScope | RowScope
    ) -> tuple[ValueType, ValueType]:
        """The kinds two compared sides are read as (a text literal beside a time is a time)."""
        left_type = self.analyzer.type_of(left, scope)
        right_type = self.analyzer.type_of(right, scope)
        if left_type in ("json", "any") and right_type in ("json", "any", "null"):
            left_type = right_type = "string"
        return left_type, right_type

    def text_test(
        self, test: ast.TextTest, scope: PersonScope | RowScope, row: _Row | None
    ) -> exp.Expr:
        value = self.value(test.expr, scope, row, "string")
        pattern = exp.Literal.string(test.pattern.value)
        if test.op == "matches":
            return self.dialect.regex_search(value, pattern)
        # Plain string functions, not LIKE: the pattern's % _ and \ stay literal.
        value, pattern_lower = exp.Lower(this=value), exp.Lower(this=pattern)
        if test.op == "contains":
            position = exp.StrPosition(this=value, substr=pattern_lower)
            return position > exp.Literal.number(0)
        length = exp.Length(this=pattern_lower.copy())
        cut = exp.Left if test.op == "starts_with" else exp.Right
        return cut(this=value, expression=length).eq(pattern_lower)

    def segment_flag(self, name: str) -> str:
        """A referenced segment becomes a stored two-valued column, computed once."""
        if name not in self.flags:
            condition = _two_valued(self.segment_condition(name))
            flag = self.new_column(column_name(["in", name], name))
            self.flags[name] = self.add_column(flag, condition)
        return self.flags[name]

    # --- values ------------------------------------------------------------------------

    def value(
        self,
        expr: ast.Expr,
        scope: PersonScope | RowScope,
        row: _Row | None,
        want: ValueType | None,
    ) -> exp.Expr:
        """An expression as SQL; ``want`` is the kind the context needs (for JSON and text
        literals that stand for times)."""
        if isinstance(expr, ast.Number):
            return exp.Literal.number(expr.value)
        if isinstance(expr, ast.String):
            if want == "time":
                moment = self.analyzer.time_literal(expr)
                if moment is not None:
                    return self.dialect.time_literal(moment)
            return exp.Literal.string(expr.value)
        if isinstance(expr, ast.Boolean):
            return exp.Boolean(this=expr.value)
        if isinstance(expr, ast.Null):
            return exp.null()
        if isinstance(expr, ast.Now):
            return self.now()
        if isinstance(expr, ast.Ago):
            return self.shift(self.now(), expr.duration, -1)
        if isinstance(expr, ast.Name):
            if isinstance(scope, RowScope):
                assert row is not None
                return self.row_value(expr.name, row, want)
            resolved = self.analyzer.resolve(expr.name, scope, expr.span)
            if resolved.kind == "trait":
                return self.column_ref(self.trait_column(expr.name))
            return self.entity_column(expr.name)
        if isinstance(expr, ast.PersonProperty):
            if isinstance(scope, RowScope):
                assert row is not None
                self.needs(row.source).person_columns.add(expr.name)
                self.entity_columns.add(expr.name)
                return row.column(_person_alias(expr.name))
            return self.entity_column(expr.name)
        if isinstance(expr, ast.Negate):
            return exp.Neg(this=_wrap(self.value(expr.operand, scope, row, "number")))
        if isinstance(expr, ast.Arithmetic):
            left = _wrap(self.value(expr.left, scope, row, "number"))
            right = _wrap(self.value(expr.right, scope, row, "number"))
            if expr.op == "/":
                return exp.Div(
                    this=exp.cast(left, TYPE.DOUBLE, copy=False),
                    expression=exp.Nullif(this=right, expression=exp.Literal.number(0)),
                )
            return {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}[expr.op](this=left, expression=right)
        if isinstance(expr, ast.Aggregate):
            return self.aggregate_column(expr)
        if isinstance(expr, ast.Call):
            return self.call(expr, scope, row, want)
        if isinstance(expr, ast.CaseWhen):
            return self.case_when(expr, scope, row, want)
        raise TypeError(f"not an expression: {expr!r}")

    def entity_column(self, name: str) -> exp.Column:
        self.entity_columns.add(name)
        self.stages.setdefault(_entity_alias(name), 0)
        return self.column_ref(_entity_alias(name))

    def row_value(self, name: str, row: _Row, want: ValueType | None) -> exp.Expr:
        """A property of a source's row: its column, or a key of its JSON properties."""
        resolved = self.analyzer.resolve(name, RowScope(row.source), None)
        needs = self.needs(row.source)
        if resolved.kind == "column":
            needs.columns.add(name)
            return row.column(_row_alias(name))
        needs.json = True
        text = self.dialect.json_text(row.column(PROPERTIES), name)
        cast_to = {"number": "DOUBLE", "boolean": "BOOLEAN", "time": "TIMESTAMP"}.get(want or "")
        return self.dialect.try_cast(text, cast_to) if cast_to else text

    def trait_column(self, name: str) -> str:
        if name not in self.traits:
            trait = self.definitions.traits[name]
            value = self.value(trait.expr, PERSON, None, None)
            column = self.new_column(column_name(["trait", name], name))
            self.traits[name] = self.add_column(column, value)
        return self.traits[name]

    def call(
        self,
        call: ast.Call,
        scope: PersonScope | RowScope,
        row: _Row | None,
        want: ValueType | None,
    ) -> exp.Expr:
        func = call.func
        if func in ast.POPULATION_VALUES:
            return self.column_ref(self.statistic_column(call))
        if func in ast.BUCKET_FUNCTIONS:
            return self.bucket(call)
        if func in ast.POPULATION_FUNCTIONS:
            return self.column_ref(self.population_column(call))
        if func in ("days_since", "hours_since"):
            time = self.value(call.args[0], scope, row, "time")
            seconds = exp.Sub(
                this=self.dialect.epoch_seconds(self.now(), instant=False),
                expression=self.dialect.epoch_seconds(
                    time, instant=self.holds_instant(call.args[0], scope)
                ),
            )
            per = _SECONDS["day" if func == "days_since" else "hour"]
            return exp.cast(
                exp.Floor(this=exp.Div(this=_wrap(seconds), expression=exp.Literal.number(per))),
                "BIGINT",
            )
        if func in ("lower", "upper", "length"):
            text = self.value(call.args[0], scope, row, "string")
            return {"lower": exp.Lower, "upper": exp.Upper, "length": exp.Length}[func](this=text)
        if func == "abs":
            return exp.Abs(this=self.value(call.args[0], scope, row, "number"))
        if func == "round":
            number = self.value(call.args[0], scope, row, "number")
            digits = (
                self.value(call.args[1], scope, row, "number")
                if len(call.args) > 1
                else exp.Literal.number(0)
            )
            return self.dialect.round_half_away(number, digits)
        kind = self.analyzer.call_type(call, scope)
        args = [self.value(a, scope, row, kind if kind != "any" else want) for a in call.args]
        instants = [self.holds_instant(a, scope) for a in call.args]
        if kind == "time" and any(instants) and not all(instants):  # all naive UTC, then
            pairs = zip(args, instants, strict=True)
            args = [self.dialect.as_naive(a) if i else a for a, i in pairs]
        if func == "coalesce":
            return exp.Coalesce(this=args[0], expressions=args[1:])
        builder = exp.Least if func == "least" else exp.Greatest
        return builder(this=args[0], expressions=args[1:], ignore_nulls=True)

    def population_column(self, call: ast.Call) -> str:
        """A population function: its argument as a column, then a window over everybody."""
        if call in self.population:
            return self.population[call]
        name = self.new_column(population_name(call))  # before the argument's own
        argument = call.args[-1]
        value_name = self.add_column(
            self.new_column(f"input__{name}"), self.value(argument, PERSON, None, None)
        )
        value = self.column_ref(value_name)
        self.population_inputs[name] = value_name
        ordered = exp.Order(expressions=[exp.Ordered(this=value.copy(), nulls_first=False)])
        func = call.func
        if func == "ntile" and self.dialect.ntile_edges:
            buckets_count = int(call.args[0].value)  # type: ignore[union-attr]
            result: exp.Expr = self.count_edges_below(value, name, buckets_count, inclusive=True)
            self.edges[name] = (value_name, buckets_count, "ntile")
        elif func == "ntile":
            buckets = exp.Literal.number(call.args[0].value)  # type: ignore[union-attr]
            # Nulls where the dialect sorts them by default (no NULLS clause): COUNT(value)
            # counts no null wherever they sort, and BigQuery cannot say NULLS LAST in an
            # aggregate's window (sqlglot used to drop the clause there without a word).
            small = SqlglotDialect.get_or_raise(self.dialect.sqlglot).NULL_ORDERING
            default = exp.Ordered(this=value.copy(), nulls_first=small == "nulls_are_small")
            by_value = exp.Order(expressions=[default])
            at_or_below = exp.Window(this=exp.Count(this=value.copy()), order=by_value)
            everybody = exp.Window(this=exp.Count(this=value.copy()))
            share = exp.Div(
                this=exp.cast(
                    exp.Mul(this=buckets, expression=at_or_below), TYPE.DOUBLE, copy=False
                ),
                expression=everybody,
            )
            result = exp.cast(exp.Ceil(this=share), TYPE.BIGINT, copy=False)
        elif func == "qcut":
            buckets_count = int(call.args[0].value)  # type: ignore[union-attr]
            result = self.count_edges_below(value, name, buckets_count, inclusive=False)
            self.edges[name] = (value_name, buckets_count, "qcut")
        elif func == "row_number":
            tie_break = exp.Ordered(this=exp.column(PERSON_ID, quoted=True), nulls_first=False)
            ordered.append("expressions", tie_break)
            result = exp.Window(this=exp.RowNumber(), order=ordered)
        else:  # percent_rank, among the people who have a value
            result = exp.Window(
                this=exp.PercentRank(),
                partition_by=[value.copy().is_(exp.null())],
                order=ordered,
            )
        guarded = exp.Case(
            ifs=[exp.If(this=value.copy().is_(exp.null()), true=exp.null())], default=result
        )
        self.population[call] = self.add_column(name, guarded)
        return name

    def count_edges_below(
        self, value: exp.Column, number: str, buckets: int, inclusive: bool
    ) -> exp.Expr:
        """``1 +`` how many of the edges ``segql_edges_<rank>`` lie below the value (or at
        it, ``inclusive``): the value's bucket."""
        result: exp.Expr = exp.Literal.number(1)
        for k in range(1, buckets):
            edge = exp.column(_edge(number, k), table=_edges(number), quoted=True)
            below = (exp.LTE if inclusive else exp.LT)(this=edge, expression=value.copy())
            result = exp.Add(
                this=result,
                expression=exp.Case(
                    ifs=[exp.If(this=below, true=exp.Literal.number(1))],
                    default=exp.Literal.number(0),
                ),
            )
        return result

    def edges_select(self, stage: str, column: str) -> exp.Select:
        """One row with the bucket edges of a ``qcut``, or of an ``ntile`` ranked by edges.

        ``qcut``: the quantiles at ``k / buckets``. ``ntile``: with the ``n`` values sorted,
        bucket ``k + 1`` starts at the one at (0-based) position ``floor(k * n / buckets)``,
        since ``ceil(buckets * rank / n) > k`` exactly when ``rank > k * n / buckets``: one
        sort of a list instead of a window sorting every person's row.
        """
        value_name, buckets, func = self.edges[column]
        number = column
        if buckets == 1:  # no edges: one row all the same, not one per person
            return exp.select(_alias(exp.Literal.number(0), f"no_edges_{number}"))
        value = exp.column(value_name, quoted=True)
        sorted_values = exp.column("sorted_values", quoted=True)
        count = exp.column("value_count", quoted=True)
        select = exp.select()
        if func == "qcut":
            select = select.from_(exp.to_identifier(stage, quoted=True), copy=False)
        else:
            values = (
                exp.select(
                    _alias(exp.SortArray(this=exp.ArrayAgg(this=value.copy())), "sorted_values"),
                    _alias(exp.Count(this=value.copy()), "value_count"),
                )
                .from_(exp.to_identifier(stage, quoted=True), copy=False)
                .where(value.copy().is_(exp.null()).not_(), copy=False)
            )
            alias = exp.to_identifier("segql_values", quoted=True)
            select = select.from_(values.subquery(alias, copy=False), copy=False)
        for k in range(1, buckets):
            edge: exp.Expr
            if func == "qcut":
                quantile = exp.PercentileCont(this=exp.Literal.number(k / buckets))
                order = exp.Order(expressions=[exp.Ordered(this=value.copy())])
                edge = exp.WithinGroup(this=quantile, expression=order)
            else:
                below = exp.IntDiv(
                    this=exp.Mul(this=exp.Literal.number(k), expression=count.copy()),
                    expression=exp.Literal.number(buckets),
                )
                position = exp.Add(this=below, expression=exp.Literal.number(1))  # 1-based
                # offset=1: the position is already 1-based (sqlglot would otherwise infer
                # its type on every generation, to shift 0-based literals to the dialect's)
                edge = exp.Bracket(this=sorted_values.copy(), expressions=[position], offset=1)
            select = select.select(_alias(edge, _edge(number, k)), copy=False)
        return select

    # --- v2: lang2 (language.md 9.5 to 9.8) ---------------------------------------------

    def bucket(self, call: ast.Call) -> exp.Expr:
        """``bucket(n[, 'salt'])``: from the md5 of the id, a column computed once per salt."""
        buckets = int(call.args[0].value)  # type: ignore[union-attr]
        salt = call.args[1].value if len(call.args) > 1 else self.config.salt  # type: ignore[union-attr]
        if salt not in self.bucket_digests:
            column = self.new_column(column_name(["bucket_md5"], salt, exact=False))
            text = digest_hex(self.column_ref(PERSON_ID), str(salt))
            self.bucket_digests[salt] = self.add_column(column, text)  # type: ignore[index]
        digest = self.column_ref(self.bucket_digests[salt])  # type: ignore[index]
        return bucket_from_hex(digest, buckets, self.dialect.hex_digits)

    def statistic_column(self, call: ast.Call) -> str:
        """A population value (``quantile``, ``median``, ``population_*``): one row of
        aggregates over everybody's input, joined to every person in the next stage."""
        if call in self.population:
            return self.population[call]
        name = self.new_column(population_name(call))
        argument = call.args[-1]
        value_name = self.add_column(
            self.new_column(f"input__{name}"), self.value(argument, PERSON, None, None)
        )
        self.population_inputs[name] = value_name
        p: float | None = None
        if call.func == "quantile":
            p = float(call.args[0].value)  # type: ignore[union-attr]
        elif call.func == "median":
            p = 0.5
        self.statistics[name] = (call.func, value_name, p)
        value = exp.column(_statistic(name), table=_statistics(name), quoted=True)
        self.population[call] = self.add_column(name, value)
        self.stages[name] = self.stages.get(value_name, 0) + 1  # after its input
        return name

    def case_when(
        self,
        case: ast.CaseWhen,
        scope: PersonScope | RowScope,
        row: _Row | None,
        want: ValueType | None,
    ) -> exp.Expr:
        """``CASE WHEN``: SQL's unknown and false both pass to the next branch, which is
        two-valued logic already."""
        kind = self.analyzer.type_of(case, scope)
        wanted = want if kind in ("any", "null", "json") else kind
        ifs = [
            exp.If(
                this=self.condition(condition, scope, row),
                true=self.value(value, scope, row, wanted),
            )
            for condition, value in case.branches
        ]
        default = None if case.default is None else self.value(case.default, scope, row, wanted)
        return exp.Case(ifs=ifs, default=default)

    def history_column(self, test: ast.HistoryTest) -> exp.Column:
        """A condition on recorded membership: the people it holds for, read once."""
        if test not in self.histories:
            parts = [test.kind, test.segment]
            if test.duration is not None:
                parts.append(duration_name(test.duration))
            column = self.new_column(column_name(parts, test))
            self.histories[test] = column
            self.stages[column] = 0
            since = (
                None if test.duration is None else self.shift(self.now(), test.duration, -1)
            )
            self.history_sql[column] = history_select(test, _RECORDED, since)
        return self.column_ref(self.histories[test])

    def join_history(self, stage: exp.Select, column: str) -> exp.Select:
        """Stage 0 gains ``column``: whether the person is among the history CTE's ids
        (kept as text)."""
        alias = f"segql_hist_{column}"
        person = exp.cast(
            exp.column(PERSON_ID, table=_PEOPLE, quoted=True), TYPE.VARCHAR, copy=False
        )
        on = exp.column(PERSON_ID, table=alias, quoted=True).eq(person)
        _join(stage, exp.to_identifier(alias, quoted=True), on=on, side="LEFT")
        found = exp.column(PERSON_ID, table=alias, quoted=True).is_(exp.null()).not_()
        return stage.select(_alias(found, column), copy=False)


def _statistics(column: str) -> str:
    """The CTE of one population value."""
    return f"segql_stat_{column}"


def _statistic(column: str) -> str:
    return f"value__{column}"


_COMPARISONS = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a query is checked, built or written. Every sqlglot node
    points back to its parent, so each is in a cycle; a large query's hundred thousand new
    nodes set the collector off again and again, over every node made so far (a third of
    the time for 1,000 segments). Whatever becomes garbage is collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")


def _and(*parts: exp.Expr) -> exp.Expr:
    """``AND`` of fresh subtrees, as sqlglot's ``and_`` writes it (a connector operand in
    parentheses), without its defensive copies and parsing (compile time is linear)."""
    return _connect(exp.And, parts)


def _or(*parts: exp.Expr) -> exp.Expr:
    return _connect(exp.Or, parts)


def _not(part: exp.Expr) -> exp.Expr:
    return exp.Not(this=_grouped(part))


def _connect(
    connector: type[exp.And] | type[exp.Or], parts: Sequence[exp.Expr]
) -> exp.Expr:
    if len(parts) == 1:
        return parts[0]
    result = _grouped(parts[0])
    for part in parts[1:]:
        result = connector(this=result, expression=_grouped(part))
    return result


def _grouped(part: exp.Expr) -> exp.Expr:
    return exp.Paren(this=part) if isinstance(part, exp.Connector) else part


def _union_all(selects: list[exp.Select]) -> exp.Query:
    """``UNION ALL`` of the selects as a balanced tree: a chain a thousand deep would be
    as deep to generate (and slow to build, since sqlglot's builder copies)."""
    if len(selects) == 1:
        return selects[0]
    middle = len(selects) // 2
    return exp.Union(
        this=_union_all(selects[:middle]), expression=_union_all(selects[middle:]), distinct=False
    )


def _two_valued(condition: exp.Expr) -> exp.Expr:
    return exp.Coalesce(this=condition, expressions=[exp.false()])


def _wrap(expression: exp.Expr) -> exp.Expr:
    """Parenthesize a compound operand so the generated SQL keeps the tree's grouping."""
    if isinstance(expression, (exp.Binary, exp.Neg)) and not isinstance(expression, exp.Dot):
        return exp.Paren(this=expression)
    return expression


def _never_null(expr: object) -> bool:
    if isinstance(expr, (ast.Number, ast.String, ast.Boolean, ast.Now, ast.Ago, ast.Duration)):
        return True
    if isinstance(expr, ast.Aggregate):
        return expr.func in _COUNT_LIKE
    return False


def _cte(name: str, select: exp.Expr) -> exp.CTE:
    return exp.CTE(this=select, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=True)))


def table_ref(name: str, alias: str | None = None, cte: bool = False) -> exp.Table:
    """A table by the name segql.toml gives (``schema.table`` allowed), or a CTE by name."""
    parts = [name] if cte else name.split(".")
    table = exp.Table(
        this=exp.to_identifier(parts[-1], quoted=True),
        db=exp.to_identifier(parts[-2], quoted=True) if len(parts) > 1 else None,
        catalog=exp.to_identifier(parts[-3], quoted=True) if len(parts) > 2 else None,
    )
    if alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    return table


def _edges(rank: str) -> str:
    """The CTE of one population function's bucket edges."""
    return f"segql_edges_{rank}"


def _edge(rank: str, k: int) -> str:
    """An edge column, named by population function: edges CTEs of one stage are joined
    together, so their columns need distinct names."""
    return f"edge_{k}__{rank}"


def _alias(expression: exp.Expr, name: str) -> exp.Alias:
    """``expression AS "name"``, without sqlglot's defensive copy of the expression."""
    return exp.Alias(this=expression, alias=exp.Identifier(this=name, quoted=True))


def _join(
    select: exp.Select,
    table: exp.Expr,
    on: exp.Expr | None = None,
    side: str | None = None,
    kind: str | None = None,
) -> exp.Select:
    """Append a join (sqlglot's builder parses its join type from text on every call)."""
    select.append("joins", exp.Join(this=table, on=on, side=side, kind=kind))
    return select


def _entity_alias(column: str) -> str:
    return f"p_{column}"


def _row_alias(column: str) -> str:
    return f"c_{column}"


def _person_alias(column: str) -> str:
    return f"person_{column}"
