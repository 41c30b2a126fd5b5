"""Checked definitions to a :class:`segql.compile.query_plan.QueryPlan`, before any SQL is written.

The planner walks each segment's predicate (and, for a values query, each expression)
once, in the order the query computes them, and decides everything the SQL will do:
which sources and which of their columns and event names are read, each aggregate's
column (named by ``segql.compile.naming``: what it computes) and layout, the row guard of each
pass aggregate and the passes those guards make, the sequences, the per-person columns
and their stages, the population functions and values, the history reads and the
predicate of each segment. The lowering (``segql.compile.lowering``) then writes that plan as
SQL for one dialect; ``plan_membership`` describes it for people (``segql plan``), so the
plan shown and the SQL written come from the same decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from typing_extensions import assert_never

from segql.compile.dialect import Dialect
from segql.compile.naming import (
    aggregate_name,
    column_name,
    duration_name,
    funnel_name,
    population_name,
    sequence_name,
)
from segql.compile.plan import AggregateLayout, Plan
from segql.compile.query_plan import (
    BucketDigest,
    ComputedNode,
    Exclusion,
    PassNode,
    PlannedColumn,
    PopulationInput,
    PopulationRank,
    PopulationStatistic,
    QueryPlan,
    SegmentFlag,
    SegmentPredicate,
    SourceNeeds,
    TraitValue,
)
from segql.compile.reach import Guard, merge, reach, reaches_whole, seconds
from segql.compile.sql_build import PERSON_ID, _entity_alias, collector_paused
from segql.config import SourceConfig
from segql.errors import SegqlError
from segql.language import ast
from segql.language.checker import PERSON, Analyzer, PersonScope, RowScope

# Aggregate passes per source at most, where the dialect splits them by guard.
_MAX_PASSES = 4
_PERIODS: dict[str, str] = {"active_days": "day", "active_weeks": "week", "active_months": "month"}


def plan_membership(analyzer: Analyzer, segments: Sequence[str], dialect: Dialect) -> Plan:
    """The plan of the one query for ``segments`` in ``dialect``, for people and tools."""
    # imported here: it reaches segql.runs.incremental, which builds on the compiler
    from segql.compile.plan_description import describe

    with collector_paused():
        planned = Planner(analyzer, dialect).plan_membership(segments)
    return describe(planned, analyzer, dialect, segments)


@dataclass(frozen=True)
class _Value:
    """What planning an expression found: the plan columns its SQL reads (for its stage)
    and, when its SQL is one of them alone, that column (``bare``)."""

    reads: frozenset[str] = frozenset()
    bare: str | None = None


_NOTHING = _Value()


@dataclass
class _Needs:
    """A source's needs while planning (frozen into ``SourceNeeds`` at the end)."""

    source: SourceConfig
    columns: set[str] = field(default_factory=set)
    person_columns: set[str] = field(default_factory=set)
    event_names: set[str] = field(default_factory=set)
    any_event: bool = False
    json: bool = False
    aggregates: dict[ast.Aggregate, str] = field(default_factory=dict)
    layouts: dict[str, AggregateLayout] = field(default_factory=dict)
    pass_columns: list[str] = field(default_factory=list)
    guards: dict[str, Guard] = field(default_factory=dict)
    guard_only: set[str] = field(default_factory=set)
    separate: list[str] = field(default_factory=list)
    held_in: dict[str, str] = field(default_factory=dict)


class Planner:
    """Plans one query. ``members`` (a table of current members is given): hysteresis
    segments read current membership; ``person_ids``: the query is for some people only,
    whose filter is pushed into every read unless a population function ranks everybody.
    """

    def __init__(
        self,
        analyzer: Analyzer,
        dialect: Dialect,
        members: bool = False,
        person_ids: bool = False,
    ):
        self.analyzer = analyzer
        self.config = analyzer.config
        self.definitions = analyzer.definitions
        self.dialect = dialect
        self.members = members
        self.person_ids = person_ids
        self.entity_columns: set[str] = set()
        self.sources: dict[str, _Needs] = {}
        self.sequences: dict[ast.Sequence | ast.Funnel, str] = {}
        self.histories: dict[ast.HistoryTest, str] = {}
        self.current: dict[str, str] = {}
        self.traits: dict[str, str] = {}
        self.flags: dict[str, str] = {}
        self.population: dict[ast.Call, str] = {}
        self.population_inputs: dict[str, str] = {}
        self.edges: dict[str, tuple[str, int, str]] = {}
        self.statistics: dict[str, tuple[str, str, float | None]] = {}
        self.bucket_digests: dict[str, str] = {}
        self.columns: list[PlannedColumn] = []
        self.stages: dict[str, int] = {PERSON_ID: 0}
        self.taken: set[str] = set()

    # --- the two kinds of query ---------------------------------------------------------

    def plan_membership(self, segments: Sequence[str]) -> QueryPlan:
        """The plan of ``(segment, person_id)`` for ``segments``."""
        if not segments:
            raise SegqlError("no segments to compile")
        names = list(dict.fromkeys(segments))
        for name in names:
            self.segment_condition(name)
        # A segment also referenced by another is selected by its flag column.
        flagged = {name for name in names if name in self.flags}
        predicates = []
        for name in names:  # priority lists: only the first segment one qualifies for
            excluded = []
            for earlier in self.definitions.priority_over(name):
                excluded.append(Exclusion(earlier, earlier in self.flags))
                self.segment_condition(earlier)
            predicates.append(SegmentPredicate(name, name in flagged, tuple(excluded)))
        return self.freeze(segments=tuple(predicates))

    def plan_values(self, values: Mapping[str, ast.Expr]) -> QueryPlan:
        """The plan of ``(person_id, <label>...)``: each expression's value per person."""
        for expression in values.values():
            self.value(expression, PERSON, None)
        return self.freeze(values=dict(values))

    def freeze(
        self,
        segments: tuple[SegmentPredicate, ...] = (),
        values: Mapping[str, ast.Expr] | None = None,
    ) -> QueryPlan:
        passes: list[PassNode] = []
        sources = {name: self.source_needs(needs, passes) for name, needs in self.sources.items()}
        return QueryPlan(
            dialect=self.dialect.name,
            entity_columns=frozenset(self.entity_columns),
            sources=sources,
            passes=tuple(passes),
            sequences=self.sequences,
            histories=self.histories,
            current=self.current,
            traits=self.traits,
            flags=self.flags,
            population=self.population,
            population_inputs=self.population_inputs,
            edges=self.edges,
            statistics=self.statistics,
            bucket_digests=self.bucket_digests,
            columns=tuple(self.columns),
            stages=self.stages,
            # A population function ranks everybody: its inputs must not be filtered.
            pushed=self.person_ids and not self.population,
            segments=segments,
            values=values,
        )

    # --- sources and their passes -------------------------------------------------------

    def source_needs(self, needs: _Needs, passes: list[PassNode]) -> SourceNeeds:
        held_in = dict(needs.held_in)
        for one_pass in self.aggregate_passes(needs):
            passes.append(one_pass)
            held_in.update(dict.fromkeys(one_pass.columns, one_pass.name))
        return SourceNeeds(
            source=needs.source,
            columns=frozenset(needs.columns),
            person_columns=frozenset(needs.person_columns),
            event_names=frozenset(needs.event_names),
            any_event=needs.any_event,
            json=needs.json,
            aggregates=needs.aggregates,
            aggregate_of={column: a for a, column in needs.aggregates.items()},
            layouts=needs.layouts,
            pass_columns=tuple(needs.pass_columns),
            guards=needs.guards,
            guard_only=frozenset(needs.guard_only),
            separate=tuple(needs.separate),
            held_in=held_in,
        )

    def aggregate_passes(self, needs: _Needs) -> list[PassNode]:
        """The ``GROUP BY person`` passes over a source's rows.

        One pass keeps the rows of every merged guard (``segql.compile.reach``). Where the dialect
        says so, each merged guard is a pass of its own instead, holding the aggregates it
        covers (event-named guards first: they usually keep fewer rows): a window alone
        then lets the scan skip old data, a name reaches the scan as an equality, and no
        row is offered to aggregates that ignore it. Joining each pass to the people costs
        a hash join, so past ``_MAX_PASSES`` guards one pass keeps them all.
        """
        guards = merge([needs.guards[column] for column in needs.pass_columns])
        columns = list(needs.pass_columns)
        split = (
            self.dialect.pass_per_guard and guards is not None and 1 < len(guards) <= _MAX_PASSES
        )
        kept_by: list[tuple[list[Guard] | None, list[str]]]
        if not split:
            kept_by = [(guards, columns)] if columns else []
        else:
            assert guards is not None
            guards = sorted(guards, key=lambda g: g.names is None)
            held: dict[Guard, list[str]] = {guard: [] for guard in guards}
            for column in columns:
                covering = next(g for g in guards if g.covers(needs.guards[column]))
                held[covering].append(column)
            kept_by = [([guard], kept) for guard, kept in held.items() if kept]
        name = f"segql_aggs_{needs.source.name}"
        return [
            # not segql_aggs_<source>_<k>: a source may be named events_1
            PassNode(
                name=name if len(kept_by) == 1 else f"segql_pass_{number}_{needs.source.name}",
                source=needs.source.name,
                guards=None if rows is None else tuple(rows),
                columns=tuple(kept),
            )
            for number, (rows, kept) in enumerate(kept_by, 1)
        ]

    def needs(self, source: SourceConfig) -> _Needs:
        return self.sources.setdefault(source.name, _Needs(source))

    # --- columns ------------------------------------------------------------------------

    def new_column(self, name: str) -> str:
        """A computed column's name, kept unique (the hash of ``segql.compile.naming`` makes a clash
        all but impossible; a numbered suffix settles one anyway)."""
        unique, number = name, 1
        while unique in self.taken:
            number += 1
            unique = f"{name}_{number}"
        self.taken.add(unique)
        return unique

    def add_column(self, name: str, value: _Value, node: ComputedNode) -> str:
        """A computed person column, placed one stage after what it reads. A column that
        would only rename another (``trait ltv = sum(...)``) is that column: a stage per
        rename made ranks over traits wait, and each stage is a copy of every person."""
        if value.bare is not None:
            return value.bare
        self.stages[name] = max((self.stages.get(c, 0) for c in value.reads), default=0) + 1
        self.columns.append(PlannedColumn(name, self.stages[name], node))
        return name

    def column(self, name: str) -> _Value:
        return _Value(frozenset([name]), name)

    # --- segments -----------------------------------------------------------------------

    def segment_condition(self, name: str) -> frozenset[str]:
        if name in self.flags:
            return frozenset([self.flags[name]])
        segment = self.definitions.segments[name]
        if not segment.is_hysteresis:
            assert segment.where is not None
            return self.condition(segment.where, PERSON, None)
        assert segment.enter is not None and segment.exit is not None
        reads = self.condition(segment.enter, PERSON, None)
        exit_reads = self.condition(segment.exit, PERSON, None)
        if not self.members:  # without current members, a hysteresis segment is its enter
            return reads
        reads |= exit_reads
        if name not in self.current:
            self.current[name] = self.new_column(column_name(["current", name], name))
        self.stages[self.current[name]] = 0
        return reads | {self.current[name]}

    def segment_flag(self, name: str) -> str:
        """A referenced segment becomes a stored two-valued column, computed once."""
        if name not in self.flags:
            reads = self.segment_condition(name)
            flag = self.new_column(column_name(["in", name], name))
            self.flags[name] = self.add_column(flag, _Value(reads), SegmentFlag(name))
        return self.flags[name]

    # --- conditions and values ----------------------------------------------------------

    def condition(
        self, condition: ast.Condition, scope: PersonScope | RowScope, source: SourceConfig | None
    ) -> frozenset[str]:
        """Plans what a condition reads; returns the plan columns its SQL reads."""
        match condition:
            case ast.And(items=items) | ast.Or(items=items):
                return frozenset().union(*(self.condition(c, scope, source) for c in items))
            case ast.Not(operand=operand):
                return self.condition(operand, scope, source)
            case ast.Compare(left=left, right=right):
                return self.values((left, right), scope, source)
            case ast.InList(expr=subject, values=values):
                kept = [v for v in values if not isinstance(v, ast.Null)]
                return self.values((subject, *kept), scope, source)
            case ast.Between(expr=subject, low=low, high=high):
                return self.values((subject, low, high), scope, source)
            case ast.TextTest(expr=subject) | ast.IsSet(expr=subject):
                return self.value(subject, scope, source).reads
            case ast.PeriodTest(expr=subject):
                return self.value(subject, scope, source).reads
            case ast.TimeTest(expr=subject, op=op, arg=arg):
                if op == "within":
                    return self.value(subject, scope, source).reads
                return self.values((subject, arg), scope, source)
            case ast.InSegment(segment=segment):
                return frozenset([self.segment_flag(segment)])
            case ast.Sequence():
                return frozenset([self.sequence_column(condition)])
            case ast.Funnel():
                return frozenset([self.funnel_column(condition)])
            case ast.IdList():
                return frozenset()
            case ast.HistoryTest():
                return frozenset([self.history_column(condition)])
            case _:
                assert_never(condition)

    def values(
        self,
        expressions: Sequence[ast.Expr],
        scope: PersonScope | RowScope,
        source: SourceConfig | None,
    ) -> frozenset[str]:
        return frozenset().union(*(self.value(e, scope, source).reads for e in expressions))

    def value(
        self, expr: ast.Expr, scope: PersonScope | RowScope, source: SourceConfig | None
    ) -> _Value:
        """Plans what an expression reads (``source``: the row's, in a row scope)."""
        match expr:
            case ast.Number() | ast.String() | ast.Boolean() | ast.Null() | ast.Now() | ast.Ago():
                return _NOTHING
            case ast.Name(name=name):
                if isinstance(scope, RowScope):
                    assert source is not None
                    self.row_value(name, source)
                    return _NOTHING
                if self.analyzer.resolve(name, scope, expr.span).kind == "trait":
                    return self.column(self.trait_column(name))
                return self.entity_column(name)
            case ast.PersonProperty(name=name):
                if isinstance(scope, RowScope):
                    assert source is not None
                    self.needs(source).person_columns.add(name)
                    self.entity_columns.add(name)
                    return _NOTHING
                return self.entity_column(name)
            case ast.Negate(operand=operand):
                return _Value(self.value(operand, scope, source).reads)
            case ast.Arithmetic(left=left, right=right):
                return _Value(self.values((left, right), scope, source))
            case ast.Aggregate():
                return self.column(self.aggregate_column(expr))
            case ast.Call():
                return self.call(expr, scope, source)
            case ast.CaseWhen(branches=branches, default=default):
                reads: frozenset[str] = frozenset()
                for condition, value in branches:
                    reads |= self.condition(condition, scope, source)
                    reads |= self.value(value, scope, source).reads
                if default is not None:
                    reads |= self.value(default, scope, source).reads
                return _Value(reads)
            case ast.Duration():
                raise TypeError(f"not an expression: {expr!r}")
            case _:
                assert_never(expr)

    def entity_column(self, name: str) -> _Value:
        self.entity_columns.add(name)
        self.stages.setdefault(_entity_alias(name), 0)
        return self.column(_entity_alias(name))

    def row_value(self, name: str, source: SourceConfig) -> None:
        """A property of a source's row: its column, or a key of its JSON properties."""
        resolved = self.analyzer.resolve(name, RowScope(source), None)
        needs = self.needs(source)
        if resolved.kind == "column":
            needs.columns.add(name)
        else:
            needs.json = True

    def trait_column(self, name: str) -> str:
        if name not in self.traits:
            value = self.value(self.definitions.traits[name].expr, PERSON, None)
            column = self.new_column(column_name(["trait", name], name))
            self.traits[name] = self.add_column(column, value, TraitValue(name))
        return self.traits[name]

    def call(
        self, call: ast.Call, scope: PersonScope | RowScope, source: SourceConfig | None
    ) -> _Value:
        func = call.func
        if func in ast.POPULATION_VALUES:
            return self.column(self.statistic_column(call))
        if func in ast.BUCKET_FUNCTIONS:
            return _Value(frozenset([self.bucket_column(call)]))
        if func in ast.POPULATION_FUNCTIONS:
            return self.column(self.population_column(call))
        if func in ("days_since", "hours_since", "lower", "upper", "length", "abs"):
            return _Value(self.value(call.args[0], scope, source).reads)
        if func == "round":
            return _Value(self.values(call.args[:2], scope, source))
        return _Value(self.values(call.args, scope, source))

    # --- population functions and values -------------------------------------------------

    def population_input(self, call: ast.Call, name: str) -> str:
        """The argument of a population function or value, as a column of its own."""
        column = self.new_column(f"input__{name}")
        value = self.value(call.args[-1], PERSON, None)
        value_name = self.add_column(column, value, PopulationInput(call))
        self.population_inputs[name] = value_name
        return value_name

    def population_column(self, call: ast.Call) -> str:
        """A population function: its argument as a column, then a window over everybody
        (or, for ``qcut`` and an ``ntile`` the dialect ranks by edges, bucket edges)."""
        if call in self.population:
            return self.population[call]
        name = self.new_column(population_name(call))  # before the argument's own
        value_name = self.population_input(call, name)
        by_edges = call.func == "qcut" or (call.func == "ntile" and self.dialect.ntile_edges)
        if by_edges:
            buckets = int(call.args[0].value)  # type: ignore[union-attr]
            self.edges[name] = (value_name, buckets, call.func)
        rank = PopulationRank(call, value_name, by_edges)
        self.population[call] = self.add_column(name, _Value(frozenset([value_name])), rank)
        return name

    def statistic_column(self, call: ast.Call) -> str:
        """A population value (``quantile``, ``median``, ``population_*``): one row of
        aggregates over everybody's input, joined to every person in the next stage."""
        if call in self.population:
            return self.population[call]
        name = self.new_column(population_name(call))
        value_name = self.population_input(call, name)
        p: float | None = None
        if call.func == "quantile":
            p = float(call.args[0].value)  # type: ignore[union-attr]
        elif call.func == "median":
            p = 0.5
        self.statistics[name] = (call.func, value_name, p)
        statistic = PopulationStatistic(call, value_name, p)
        self.population[call] = self.add_column(name, _NOTHING, statistic)
        self.stages[name] = self.stages.get(value_name, 0) + 1  # after its input
        self.columns[-1] = PlannedColumn(name, self.stages[name], statistic)
        return name

    def bucket_column(self, call: ast.Call) -> str:
        """``bucket(n[, 'salt'])`` reads the md5 of the id, a column computed once per salt."""
        salt = str(call.args[1].value if len(call.args) > 1 else self.config.salt)  # type: ignore[union-attr]
        if salt not in self.bucket_digests:
            column = self.new_column(column_name(["bucket_md5"], salt, exact=False))
            digest = _Value(frozenset([PERSON_ID]))
            self.bucket_digests[salt] = self.add_column(column, digest, BucketDigest(salt))
        return self.bucket_digests[salt]

    # --- history reads -------------------------------------------------------------------

    def history_column(self, test: ast.HistoryTest) -> str:
        """A condition on recorded membership: the people it holds for, read once."""
        if test not in self.histories:
            parts = [test.kind, test.segment]
            if test.duration is not None:
                parts.append(duration_name(test.duration))
            self.histories[test] = self.new_column(column_name(parts, test))
            self.stages[self.histories[test]] = 0
        return self.histories[test]

    # --- aggregates and sequences --------------------------------------------------------

    def aggregate_column(self, aggregate: ast.Aggregate) -> str:
        needs = self.needs(self.analyzer.source_of(aggregate.spec))
        if aggregate not in needs.aggregates:
            column = self.new_column(aggregate_name(aggregate))
            needs.aggregates[aggregate] = column
            self.stages[column] = 0
            self.add_aggregate(aggregate, column, needs)
        return needs.aggregates[aggregate]

    def add_aggregate(self, aggregate: ast.Aggregate, column: str, needs: _Needs) -> None:
        """An aggregate into its source's passes, or on its own.

        A ``COUNT(DISTINCT ...)`` in the shared pass would hash every row the pass reads
        (the engine cannot skip the rows its ``CASE`` turns to null); on its own, it reads
        only the rows it counts. Distinct periods in a short window are a bitmap in the
        shared pass where the dialect has one. ``streak()`` and ``among last N`` are a
        ``GROUP BY person`` of their own over ranked rows (``segql.compile.ranked``).
        """
        spec, func, source = aggregate.spec, aggregate.func, needs.source
        if func == "streak":
            self.spec_filter(spec, source)
            self.place_alone(needs, column, "streak", f"segql_streak_{column}")
            return
        if spec.last is not None:
            self.event_of(spec, needs)
            if spec.where is not None:
                self.condition(spec.where, RowScope(source), source)
            if aggregate.prop is not None and func != "count":
                self.row_value(aggregate.prop, source)
            self.place_alone(needs, column, "last_rows", f"segql_last_{column}")
            return
        if aggregate.prop is not None and func != "count":
            self.row_value(aggregate.prop, source)
        distinct = func == "count_distinct" or func in _PERIODS
        if distinct and not self.fits_bitmap(func, spec.window):
            self.spec_filter(spec, source)
            self.place_alone(needs, column, "distinct", f"segql_distinct_{column}")
            return
        self.spec_filter(spec, source)
        needs.layouts[column] = "bitmap" if func in _PERIODS else "pass"
        needs.pass_columns.append(column)
        names = None if spec.ref is None or not source.is_events else frozenset([spec.ref])
        needs.guards[column] = Guard(names, reach(spec.window))
        if spec.where is None and reaches_whole(spec.window):
            needs.guard_only.add(column)

    def place_alone(self, needs: _Needs, column: str, layout: AggregateLayout, cte: str) -> None:
        needs.layouts[column] = layout
        needs.separate.append(column)
        needs.held_in[column] = cte

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

    def event_of(self, spec: ast.EventSpec, needs: _Needs) -> None:
        """The event names a spec reads from its source (any: every row up to T)."""
        if not needs.source.is_events:
            return
        if spec.ref is None:
            needs.any_event = True
        else:
            needs.event_names.add(spec.ref)

    def spec_filter(self, spec: ast.EventSpec, source: SourceConfig) -> None:
        """What an event spec's rows read: its event, its window's points, its filter."""
        self.event_of(spec, self.needs(source))
        window = spec.window
        if isinstance(window, ast.WindowRange):
            for point in (window.start, window.end):
                if point is not None:
                    self.value(point, RowScope(source), source)
        if spec.where is not None:
            self.condition(spec.where, RowScope(source), source)

    def sequence_column(self, sequence: ast.Sequence) -> str:
        """People with an A row followed (or, negated, not followed) by a B row in time."""
        if sequence not in self.sequences:
            column = self.new_column(sequence_name(sequence))
            self.sequences[sequence] = column
            self.stages[column] = 0
            self.spec_filter(sequence.then, self.analyzer.source_of(sequence.then))
            self.spec_filter(sequence.first, self.analyzer.source_of(sequence.first))
        return self.sequences[sequence]

    def funnel_column(self, funnel: ast.Funnel) -> str:
        """A funnel of three steps or more (language v2): each step's rows, in order."""
        if funnel not in self.sequences:
            column = self.new_column(funnel_name(funnel))
            self.sequences[funnel] = column
            self.stages[column] = 0
            self.spec_filter(funnel.first, self.analyzer.source_of(funnel.first))
            for step in funnel.steps:
                self.spec_filter(step.spec, self.analyzer.source_of(step.spec))
        return self.sequences[funnel]
