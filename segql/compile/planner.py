"""Checked definitions to a :class:`segql.compile.plan.Plan`, for one dialect.

The plan is read from the decisions the query builder makes (which sources, guards,
passes, distinct counts, sequences, population functions and stages), so the plan and the
SQL cannot disagree: ``segql plan`` shows exactly what ``segql compile`` writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from segql.compile.compiler import QueryBuilder, QueryOptions, collector_paused
from segql.compile.dialect import Dialect
from segql.compile.plan import (
    AggregateLayout,
    AggregatePass,
    ColumnKind,
    ComputedColumn,
    DistinctCount,
    HistoryRead,
    Plan,
    PlannedAggregate,
    PlannedSequence,
    PopulationFunction,
    PopulationValue,
    RowGuard,
    SegmentPlan,
    SourceRead,
    Stage,
)
from segql.compile.reach import Guard, Reach
from segql.compile.sqltext import generate_sql
from segql.compile.updates import aggregate_offsets
from segql.language import ast
from segql.language.checker import PERSON, Analyzer, walk, walk_outside_specs
from segql.language.printer import format_condition, format_expr, format_window

# Kinds whose value over old rows and new rows follows from the two values alone.
_MERGEABLE = frozenset({"count", "sum", "avg", "min", "max", "first_time", "last_time"})


def plan_membership(analyzer: Analyzer, segments: Sequence[str], dialect: Dialect) -> Plan:
    """The plan of the one query for ``segments`` in ``dialect``."""
    builder = QueryBuilder(analyzer, dialect, None, QueryOptions())
    with collector_paused():
        builder.build(segments)
    return _PlanReader(builder, segments).plan()


class _PlanReader:
    def __init__(self, builder: QueryBuilder, segments: Sequence[str]):
        self.builder = builder
        self.analyzer = builder.analyzer
        self.segment_names = tuple(segments)
        self.aggregate_columns: dict[ast.Aggregate, str] = {
            aggregate: column
            for needs in builder.sources.values()
            for aggregate, column in needs.aggregates.items()
        }
        self.reads = {name: tuple(sorted(self.segment_reads(name))) for name in segments}

    def plan(self) -> Plan:
        builder = self.builder
        return Plan(
            dialect=builder.dialect.name,
            people_table=builder.config.entity.table,
            person_columns=tuple(sorted(builder.entity_columns)),
            sources=tuple(self.source_read(name) for name in builder.sources),
            sequences=tuple(
                PlannedSequence(column, format_condition(sequence), self.used_by(column))
                for sequence, column in builder.sequences.items()
            ),
            population_functions=tuple(
                PopulationFunction(
                    column=column,
                    function=call.func,
                    input_column=builder.population_inputs[column],
                    definition=format_expr(call),
                    by_edges=column in builder.edges,
                    segments=self.used_by(column),
                )
                for call, column in builder.population.items()
                if column not in builder.statistics
            ),
            stages=self.stages(),
            segments=tuple(self.segment_plan(name) for name in self.segment_names),
            population_values=self.population_values(),
            history_reads=self.history_reads(),
        )

    # --- v2: lang2 (language.md 9.5 to 9.7) --------------------------------------------

    def population_values(self) -> tuple[PopulationValue, ...]:
        builder = self.builder
        return tuple(
            PopulationValue(
                column=column,
                function=call.func,
                input_column=builder.population_inputs[column],
                definition=format_expr(call),
                segments=self.used_by(column),
            )
            for call, column in builder.population.items()
            if column in builder.statistics
        )

    def history_reads(self) -> tuple[HistoryRead, ...]:
        builder = self.builder
        table = generate_sql(builder.history_source.history, builder.dialect.sqlglot)
        return tuple(
            HistoryRead(
                column=column,
                definition=format_condition(test),
                segment=test.segment,
                table=table,
                segments=self.used_by(column),
            )
            for test, column in builder.histories.items()
        )

    # --- sources and their passes -------------------------------------------------------

    def source_read(self, name: str) -> SourceRead:
        needs = self.builder.sources[name]
        source = needs.source
        events = (
            None
            if source.event_name is None or needs.any_event
            else tuple(sorted(needs.event_names))
        )
        by_column = {column: self.aggregate(a) for a, column in needs.aggregates.items()}
        passes = tuple(
            AggregatePass(
                name=cte,
                guards=None if guards is None else tuple(_row_guard(g) for g in guards),
                aggregates=tuple(by_column[c] for c in columns),
            )
            for cte, source_name, guards, columns in self.builder.passes
            if source_name == name
        )
        distinct = tuple(
            DistinctCount(needs.held_in[column], by_column[column]) for column in needs.separate
        )
        return SourceRead(
            name=name,
            table=source.table,
            events=events,
            columns=tuple(sorted(needs.columns)),
            person_columns=tuple(sorted(needs.person_columns)),
            json_properties=needs.json,
            passes=passes,
            distinct_counts=distinct,
        )

    def aggregate(self, aggregate: ast.Aggregate) -> PlannedAggregate:
        column = self.aggregate_columns[aggregate]
        needs = self.builder.sources[self.analyzer.source_of(aggregate.spec).name]
        layout: AggregateLayout = "pass"
        if aggregate.func == "streak":
            layout = "streak"
        elif aggregate.spec.last is not None:
            layout = "last_rows"
        elif column in needs.separate:
            layout = "distinct"
        elif aggregate.func.startswith("active_"):
            layout = "bitmap"
        spec = aggregate.spec
        return PlannedAggregate(
            column=column,
            kind=aggregate.func,
            event=spec.ref,
            property=aggregate.prop,
            filter=None if spec.where is None else format_condition(spec.where),
            window=None if spec.window is None else format_window(spec.window),
            layout=layout,
            incremental=is_incremental(aggregate),
            definition=format_expr(aggregate),
            segments=self.used_by(column),
            per_run="full" if aggregate_offsets(aggregate) is None else "changed_people",
        )

    # --- what is computed after ---------------------------------------------------------

    def stages(self) -> tuple[Stage, ...]:
        builder = self.builder
        kinds: dict[str, tuple[ColumnKind, str]] = {}
        for name, column in builder.traits.items():
            kinds[column] = ("trait", format_expr(builder.definitions.traits[name].expr))
        for name, column in builder.flags.items():
            kinds[column] = ("segment", name)
        for salt, column in builder.bucket_digests.items():
            kinds[column] = ("bucket_digest", f"md5 of salt {salt!r} ':' id, as hex")
        for call, column in builder.population.items():
            kinds[column] = ("population", format_expr(call))
            kinds.setdefault(
                builder.population_inputs[column], ("population_input", format_expr(call.args[-1]))
            )
        by_stage: dict[int, list[ComputedColumn]] = {}
        for column, _ in builder.columns:
            kind, definition = kinds[column]
            computed = ComputedColumn(column, kind, definition)
            by_stage.setdefault(builder.stages[column], []).append(computed)
        return tuple(Stage(n, tuple(by_stage[n])) for n in sorted(by_stage))

    def segment_plan(self, name: str) -> SegmentPlan:
        segment = self.builder.definitions.segments[name]
        if segment.is_hysteresis:
            assert segment.enter is not None and segment.exit is not None
            predicate = (
                f"enter {format_condition(segment.enter)} exit {format_condition(segment.exit)}"
            )
        else:
            assert segment.where is not None
            predicate = format_condition(segment.where)
        return SegmentPlan(name, predicate, self.reads[name], segment.is_hysteresis)

    # --- which columns a segment reads --------------------------------------------------

    def used_by(self, column: str) -> tuple[str, ...]:
        return tuple(name for name in self.segment_names if column in self.reads[name])

    def segment_reads(self, name: str) -> set[str]:
        found: set[str] = set()
        self.collect(("segment", name), found, set())
        return found

    def collect(self, definition: tuple[str, str], found: set[str], seen: set[object]) -> None:
        """The plan columns a segment or trait reads, through the traits and segments it
        names."""
        if definition in seen:
            return
        seen.add(definition)
        kind, name = definition
        builder = self.builder
        if kind == "segment":
            segment = builder.definitions.segments[name]
            conditions: list[object] = [
                c for c in (segment.where, segment.enter, segment.exit) if c
            ]
            if name in builder.current:
                found.add(builder.current[name])
        else:
            conditions = [builder.definitions.traits[name].expr]
            if name in builder.traits:
                found.add(builder.traits[name])
        for node in _nodes(conditions):
            match node:
                case ast.Aggregate() if node in self.aggregate_columns:
                    found.add(self.aggregate_columns[node])
                case ast.Sequence() | ast.Funnel() if node in builder.sequences:
                    found.add(builder.sequences[node])
                case ast.Call() if node in builder.population:
                    found.add(builder.population[node])
                    found.add(builder.population_inputs[builder.population[node]])
                case ast.HistoryTest() if node in builder.histories:
                    found.add(builder.histories[node])
                case ast.Call() if node.func in ast.BUCKET_FUNCTIONS:
                    salt = node.args[1].value if len(node.args) > 1 else builder.config.salt  # type: ignore[union-attr]
                    if salt in builder.bucket_digests:
                        found.add(builder.bucket_digests[salt])  # type: ignore[index]
                case ast.InSegment():
                    if node.segment in builder.flags:
                        found.add(builder.flags[node.segment])
                    self.collect(("segment", node.segment), found, seen)
                case ast.Name() if self.is_trait(node):
                    self.collect(("trait", node.name), found, seen)
                case _:
                    pass

    def is_trait(self, name: ast.Name) -> bool:
        if name.name not in self.builder.definitions.traits:
            return False
        return self.analyzer.resolve(name.name, PERSON, name.span).kind == "trait"


def is_incremental(aggregate: ast.Aggregate) -> bool:
    """Whether new rows alone could update the aggregate: a mergeable kind, over a window
    that does not move with T (no row ages out of it)."""
    if aggregate.func not in _MERGEABLE:
        return False
    window = aggregate.spec.window
    # the last N rows and calendar periods move with T: a new row can push an old one out
    if aggregate.spec.last is not None or isinstance(window, ast.WindowPeriod):
        return False
    if window is None:
        return True
    if isinstance(window, ast.WindowWithin):
        return False
    return not any(isinstance(n, (ast.Now, ast.Ago)) for n in walk(window))


def _nodes(roots: list[object]) -> Iterator[object]:
    for root in roots:
        yield from walk_outside_specs(root)


def _row_guard(guard: Guard) -> RowGuard:
    return RowGuard(
        events=None if guard.names is None else tuple(sorted(guard.names)),
        reach=_reach_text(guard.reach),
    )


def _reach_text(reach: Reach) -> str | None:
    match reach:
        case None:
            return None
        case ast.Duration():
            return f"within {format_expr(reach)}"
        case _:
            return format_window(reach)
