"""The plan of a membership query, as data: what is read, computed and tested.

Frozen dataclasses, built by ``segql.compile.planner``: which sources are read and under which row
guards, the ``GROUP BY person`` passes over each and the aggregates each computes (and for
which segments), the distinct counts and sequences computed on their own, the population
functions and the stages of per-person columns, and each segment's predicate over those
columns. ``segql plan`` prints it; tests assert on it instead of reading SQL back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

# "streak" and "last_rows" (``among last N``): on their own, like a distinct count, over
# ranked rows (segql.compile.ranked).
AggregateLayout = Literal["pass", "bitmap", "distinct", "streak", "last_rows"]
ColumnKind = Literal["trait", "segment", "population_input", "population", "bucket_digest"]
RunUpdate = Literal["changed_people", "full"]


@dataclass(frozen=True)
class RowGuard:
    """Rows a pass reads: one of ``events`` (None: any event), as far back as ``reach``
    (None: the whole history; else as the rules say it, ``within 90 days``)."""

    events: tuple[str, ...] | None
    reach: str | None


@dataclass(frozen=True)
class PlannedAggregate:
    """One aggregate column. ``incremental``: it could be updated from new rows alone (a
    mergeable kind over a window no row ages out of), for incremental runs later."""

    column: str
    kind: str
    event: str | None
    property: str | None
    filter: str | None
    window: str | None
    layout: AggregateLayout
    incremental: bool
    definition: str
    segments: tuple[str, ...]
    # What an incremental run does with it: recompute it for the people with a new row or
    # a row that crossed its window's edge ("changed_people"), or everybody ("full").
    per_run: RunUpdate = "full"


@dataclass(frozen=True)
class AggregatePass:
    """One ``GROUP BY person`` over a source's rows; ``guards`` None: every row up to T."""

    name: str
    guards: tuple[RowGuard, ...] | None
    aggregates: tuple[PlannedAggregate, ...]


@dataclass(frozen=True)
class DistinctCount:
    """A ``COUNT(DISTINCT ...)`` computed on its own, over only its rows."""

    name: str
    aggregate: PlannedAggregate


@dataclass(frozen=True)
class SourceRead:
    """One source table, read once: the rows up to T of ``events`` (None: every event)."""

    name: str
    table: str
    events: tuple[str, ...] | None
    columns: tuple[str, ...]
    person_columns: tuple[str, ...]
    json_properties: bool
    passes: tuple[AggregatePass, ...]
    distinct_counts: tuple[DistinctCount, ...]


@dataclass(frozen=True)
class PlannedSequence:
    """The people with a ``first`` row followed (or not, ``negated``) by a ``then`` row."""

    column: str
    definition: str
    segments: tuple[str, ...]


@dataclass(frozen=True)
class PopulationFunction:
    """A function over everybody (``ntile``, ``qcut``, ...) of a per-person value.
    ``by_edges``: computed from bucket edges (one sort of a list), not a window."""

    column: str
    function: str
    input_column: str
    definition: str
    by_edges: bool
    segments: tuple[str, ...]


@dataclass(frozen=True)
class PopulationValue:
    """One value over everybody (``quantile``, ``median``, ``population_avg``, ...) of a
    per-person value, the same for every person: an aggregate of everybody's input, which
    a change to anyone's input changes, so never updated from new rows alone."""

    column: str
    function: str
    input_column: str
    definition: str
    segments: tuple[str, ...]
    incremental: bool = False


@dataclass(frozen=True)
class HistoryRead:
    """A condition on recorded membership (``entered X within D``, ...): the changes of
    committed runs before the as-of time, read from ``table``. It moves with T and with
    each run, so it is read again every run."""

    column: str
    definition: str
    segment: str
    table: str
    segments: tuple[str, ...]
    incremental: bool = False


@dataclass(frozen=True)
class ComputedColumn:
    """A per-person column computed after the passes."""

    name: str
    kind: ColumnKind
    definition: str


@dataclass(frozen=True)
class Stage:
    """Columns computed together, each reading only those of earlier stages."""

    number: int
    columns: tuple[ComputedColumn, ...]


@dataclass(frozen=True)
class SegmentPlan:
    """A segment's predicate, over the plan's columns (``reads``)."""

    name: str
    predicate: str
    reads: tuple[str, ...]
    hysteresis: bool


@dataclass(frozen=True)
class Plan:
    """Everything one membership query reads and computes, for one dialect."""

    dialect: str
    people_table: str
    person_columns: tuple[str, ...]
    sources: tuple[SourceRead, ...]
    sequences: tuple[PlannedSequence, ...]
    population_functions: tuple[PopulationFunction, ...]
    stages: tuple[Stage, ...]
    segments: tuple[SegmentPlan, ...]
    population_values: tuple[PopulationValue, ...] = ()
    history_reads: tuple[HistoryRead, ...] = ()

    @property
    def aggregates(self) -> tuple[PlannedAggregate, ...]:
        """Every aggregate, in passes and on its own."""
        found: list[PlannedAggregate] = []
        for source in self.sources:
            for one_pass in source.passes:
                found.extend(one_pass.aggregates)
            found.extend(d.aggregate for d in source.distinct_counts)
        return tuple(found)

    def source(self, name: str) -> SourceRead:
        return next(s for s in self.sources if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (``segql plan --format json``)."""
        return asdict(self)


def describe_plan(plan: Plan) -> str:
    """The plan as text for people: what each source is read for, then what follows."""
    lines = [f"plan of {len(plan.segments)} segment(s), dialect {plan.dialect}", ""]
    people = ", ".join(plan.person_columns) or "the id only"
    lines.append(f"people: table {plan.people_table}, once ({people})")
    for source in plan.sources:
        lines += ["", f"source {source.name}: table {source.table}, read once"]
        events = "" if source.events is None else f" of {', '.join(source.events)}"
        lines.append(f"  the rows up to the as-of time{events}")
        read = [*source.columns, *(f"person.{c}" for c in source.person_columns)]
        if source.json_properties:
            read.append("JSON properties")
        if read:
            lines.append(f"  reads: {', '.join(read)}")
        for one_pass in source.passes:
            lines.append(f"  pass {one_pass.name}: GROUP BY person over {_guards(one_pass)}")
            lines += [f"    {_aggregate(a)}" for a in one_pass.aggregates]
        for distinct in source.distinct_counts:
            lines.append(f"  {_on_its_own(distinct)}")
            lines.append(f"    {_aggregate(distinct.aggregate)}")
    if plan.sequences:
        lines += ["", "sequences (each on its own, over the rows above):"]
        for sequence in plan.sequences:
            lines.append(f"  {sequence.column}: {sequence.definition}{_for(sequence.segments)}")
    if plan.stages:
        lines += ["", "computed after, per person:"]
        for stage in plan.stages:
            lines.append(f"  stage {stage.number}:")
            lines += [f"    {c.name} ({c.kind}) = {c.definition}" for c in stage.columns]
    if plan.population_functions:
        lines += ["", "population functions (over everybody):"]
        for function in plan.population_functions:
            how = "by bucket edges" if function.by_edges else "as a window"
            lines.append(
                f"  {function.column}: {function.definition}, {how}{_for(function.segments)}"
            )
    lines += _lang2_lines(plan)
    lines += ["", "segments:"]
    for segment in plan.segments:
        kind = " (hysteresis)" if segment.hysteresis else ""
        lines.append(f"  {segment.name}{kind}: {segment.predicate}")
        if segment.reads:
            lines.append(f"    reads: {', '.join(segment.reads)}")
    return "\n".join(lines) + "\n"


def _lang2_lines(plan: Plan) -> list[str]:
    """Population values and history reads (language.md 9.6, 9.7), each recomputed."""
    lines: list[str] = []
    if plan.population_values:
        lines += ["", "population values (over everybody, one row, recomputed each run):"]
        for value in plan.population_values:
            lines.append(f"  {value.column}: {value.definition}{_for(value.segments)}")
    if plan.history_reads:
        lines += ["", "recorded membership (committed runs before the as-of time):"]
        for read in plan.history_reads:
            lines.append(
                f"  {read.column}: {read.definition}, from {read.table}{_for(read.segments)}"
            )
    return lines
def _on_its_own(distinct: DistinctCount) -> str:
    """How an aggregate computed on its own is introduced."""
    if distinct.aggregate.layout == "streak":
        return f"streak {distinct.name}, over the distinct periods of its rows:"
    if distinct.aggregate.layout == "last_rows":
        return f"last rows {distinct.name}, over each person's rows ranked newest first:"
    return f"distinct count {distinct.name}, over only its rows:"


def _guards(one_pass: AggregatePass) -> str:
    if one_pass.guards is None:
        return "every row"
    kept = []
    for guard in one_pass.guards:
        events = "any event" if guard.events is None else " or ".join(guard.events)
        kept.append(events if guard.reach is None else f"{events} {guard.reach}")
    return "the rows of " + "; or ".join(kept)


def _aggregate(aggregate: PlannedAggregate) -> str:
    notes: list[str] = [aggregate.layout] if aggregate.layout != "pass" else []
    if aggregate.incremental:
        notes.append("incremental")
    notes.append("per run: " + aggregate.per_run.replace("_", " "))
    note = f" [{', '.join(notes)}]" if notes else ""
    return f"{aggregate.column} = {aggregate.definition}{note}{_for(aggregate.segments)}"


def _for(segments: tuple[str, ...]) -> str:
    return f"  for: {', '.join(segments)}" if segments else ""
