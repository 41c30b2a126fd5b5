"""A :class:`segql.compile.query_plan.QueryPlan` described as the
:class:`segql.compile.plan.Plan` people read (``segql plan``) and tools parse (``--format json``).

It reads only the planner's decisions, the same ones the lowering writes as SQL, so the
plan shown and the SQL compiled cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from segql.compile.dialect import Dialect
from segql.compile.history_sql import project_history
from segql.compile.plan import (
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
from segql.compile.query_plan import QueryPlan
from segql.compile.reach import Guard, Reach
from segql.compile.sqltext import generate_sql
from segql.compile.updates import aggregate_offsets
from segql.language import ast
from segql.language.checker import PERSON, Analyzer, walk, walk_outside_specs
from segql.language.printer import format_condition, format_expr, format_window

# Kinds whose value over old rows and new rows follows from the two values alone.
_MERGEABLE = frozenset({"count", "sum", "avg", "min", "max", "first_time", "last_time"})


def describe(
    planned: QueryPlan, analyzer: Analyzer, dialect: Dialect, segments: Sequence[str]
) -> Plan:
    """The plan of ``segments``, as planned for ``dialect``."""
    return _PlanReader(planned, analyzer, dialect, segments).plan()


class _PlanReader:
    def __init__(
        self, planned: QueryPlan, analyzer: Analyzer, dialect: Dialect, segments: Sequence[str]
    ):
        self.planned = planned
        self.analyzer = analyzer
        self.dialect = dialect
        self.config = analyzer.config
        self.definitions = analyzer.definitions
        self.segment_names = tuple(segments)
        self.aggregate_columns: dict[ast.Aggregate, str] = {
            aggregate: column
            for needs in planned.sources.values()
            for aggregate, column in needs.aggregates.items()
        }
        self.reads = {name: tuple(sorted(self.segment_reads(name))) for name in segments}

    def plan(self) -> Plan:
        planned = self.planned
        return Plan(
            dialect=self.dialect.name,
            people_table=self.config.entity.table,
            person_columns=tuple(sorted(planned.entity_columns)),
            sources=tuple(self.source_read(name) for name in planned.sources),
            sequences=tuple(
                PlannedSequence(column, format_condition(sequence), self.used_by(column))
                for sequence, column in planned.sequences.items()
            ),
            population_functions=tuple(
                PopulationFunction(
                    column=column,
                    function=call.func,
                    input_column=planned.population_inputs[column],
                    definition=format_expr(call),
                    by_edges=column in planned.edges,
                    segments=self.used_by(column),
                )
                for call, column in planned.population.items()
                if column not in planned.statistics
            ),
            stages=self.stages(),
            segments=tuple(self.segment_plan(name) for name in self.segment_names),
            population_values=self.population_values(),
            history_reads=self.history_reads(),
        )

    # --- v2: lang2 (language.md 9.5 to 9.7) --------------------------------------------

    def population_values(self) -> tuple[PopulationValue, ...]:
        planned = self.planned
        return tuple(
            PopulationValue(
                column=column,
                function=call.func,
                input_column=planned.population_inputs[column],
                definition=format_expr(call),
                segments=self.used_by(column),
            )
            for call, column in planned.population.items()
            if column in planned.statistics
        )

    def history_reads(self) -> tuple[HistoryRead, ...]:
        planned = self.planned
        history = project_history(self.config.warehouse.schema).history
        table = generate_sql(history, self.dialect.sqlglot)
        return tuple(
            HistoryRead(
                column=column,
                definition=format_condition(test),
                segment=test.segment,
                table=table,
                segments=self.used_by(column),
            )
            for test, column in planned.histories.items()
        )

    # --- sources and their passes -------------------------------------------------------

    def source_read(self, name: str) -> SourceRead:
        needs = self.planned.sources[name]
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
            for cte, guards, columns in (
                (p.name, p.guards, p.columns) for p in self.planned.passes if p.source == name
            )
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
        needs = self.planned.sources[self.analyzer.source_of(aggregate.spec).name]
        layout = needs.layouts[column]
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
        planned = self.planned
        kinds: dict[str, tuple[ColumnKind, str]] = {}
        for name, column in planned.traits.items():
            kinds[column] = ("trait", format_expr(self.definitions.traits[name].expr))
        for name, column in planned.flags.items():
            kinds[column] = ("segment", name)
        for salt, column in planned.bucket_digests.items():
            kinds[column] = ("bucket_digest", f"md5 of salt {salt!r} ':' id, as hex")
        for call, column in planned.population.items():
            kinds[column] = ("population", format_expr(call))
            kinds.setdefault(
                planned.population_inputs[column], ("population_input", format_expr(call.args[-1]))
            )
        by_stage: dict[int, list[ComputedColumn]] = {}
        for column in (c.name for c in planned.columns):
            kind, definition = kinds[column]
            computed = ComputedColumn(column, kind, definition)
            by_stage.setdefault(planned.stages[column], []).append(computed)
        return tuple(Stage(n, tuple(by_stage[n])) for n in sorted(by_stage))

    def segment_plan(self, name: str) -> SegmentPlan:
        segment = self.definitions.segments[name]
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
        planned = self.planned
        if kind == "segment":
            segment = self.definitions.segments[name]
            conditions: list[object] = [
                c for c in (segment.where, segment.enter, segment.exit) if c
            ]
            if name in planned.current:
                found.add(planned.current[name])
        else:
            conditions = [self.definitions.traits[name].expr]
            if name in planned.traits:
                found.add(planned.traits[name])
        for node in _nodes(conditions):
            match node:
                case ast.Aggregate() if node in self.aggregate_columns:
                    found.add(self.aggregate_columns[node])
                case ast.Sequence() | ast.Funnel() if node in planned.sequences:
                    found.add(planned.sequences[node])
                case ast.Call() if node in planned.population:
                    found.add(planned.population[node])
                    found.add(planned.population_inputs[planned.population[node]])
                case ast.HistoryTest() if node in planned.histories:
                    found.add(planned.histories[node])
                case ast.Call() if node.func in ast.BUCKET_FUNCTIONS:
                    salt = node.args[1].value if len(node.args) > 1 else self.config.salt  # type: ignore[union-attr]
                    if salt in planned.bucket_digests:
                        found.add(planned.bucket_digests[salt])  # type: ignore[index]
                case ast.InSegment():
                    if node.segment in planned.flags:
                        found.add(planned.flags[node.segment])
                    self.collect(("segment", node.segment), found, seen)
                case ast.Name() if self.is_trait(node):
                    self.collect(("trait", node.name), found, seen)
                case _:
                    pass

    def is_trait(self, name: ast.Name) -> bool:
        if name.name not in self.definitions.traits:
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
