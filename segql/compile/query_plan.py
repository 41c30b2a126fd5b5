"""The plan the lowering reads: every decision about one query, made before any SQL.

``segql.compile.planner`` walks the checked AST once and fills a :class:`QueryPlan`: which sources
are read and which of their columns and event names, each aggregate's column and layout
(a pass of its source, a bitmap, a distinct count or a ranked query of its own), the row
guard of each pass aggregate and the passes those guards make, the sequences and funnels,
the per-person columns computed after the passes (traits, segment flags, population
functions and their inputs, population values, bucket digests) each with its stage, the
reads of recorded membership, and each segment's predicate. The lowering
(``segql.compile.lowering``) turns it into sqlglot for one dialect and decides nothing: it looks
every column up here.

A predicate is held as the checked AST's condition: the plan maps every node in it that
is computed as a column (an aggregate, a sequence, a population function, a trait, a
referenced segment, a history test) to that column, so the lowering of a predicate reads
plan columns only. ``segql.compile.plan_description`` makes the ``Plan`` people read from this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from segql.compile.plan import AggregateLayout
from segql.compile.reach import Guard
from segql.config import SourceConfig
from segql.language import ast

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class SourceNeeds:
    """What the rules read from one source: its ``rows_`` CTE and the aggregates over it.

    ``aggregates``: every aggregate over the source and its column, in the order planned
    (``aggregate_of``: the other way).
    ``pass_columns``: those computed in a ``GROUP BY person`` pass, each under the row
    ``guards`` it keeps; ``guard_only``: those whose whole filter is their guard (where a
    pass's ``WHERE`` is that guard, the aggregate's own test of it is left out).
    ``separate``: those computed on their own (distinct counts, streaks, last rows).
    ``held_in``: the CTE that holds each aggregate's column.
    """

    source: SourceConfig
    columns: frozenset[str]
    person_columns: frozenset[str]
    event_names: frozenset[str]
    any_event: bool
    json: bool
    aggregates: Mapping[ast.Aggregate, str]
    aggregate_of: Mapping[str, ast.Aggregate]  # by column
    layouts: Mapping[str, AggregateLayout]
    pass_columns: tuple[str, ...]
    guards: Mapping[str, Guard]
    guard_only: frozenset[str]
    separate: tuple[str, ...]
    held_in: Mapping[str, str]


@dataclass(frozen=True)
class PassNode:
    """One ``GROUP BY person`` over a source's rows: the rows one of ``guards`` keeps
    (None: every row up to T), computing ``columns``."""

    name: str
    source: str
    guards: tuple[Guard, ...] | None
    columns: tuple[str, ...]


# --- per-person columns computed after the passes ------------------------------------


@dataclass(frozen=True)
class TraitValue:
    """A trait's expression."""

    trait: str


@dataclass(frozen=True)
class SegmentFlag:
    """A segment another segment references: its predicate as a two-valued column."""

    segment: str


@dataclass(frozen=True)
class PopulationInput:
    """The per-person argument of a population function or value (its last argument)."""

    call: ast.Call


@dataclass(frozen=True)
class PopulationRank:
    """A population function (``ntile``, ``qcut``, ``row_number``, ``percent_rank``) of
    ``input_column``; ``by_edges``: from the bucket edges of ``segql_edges_<column>``."""

    call: ast.Call
    input_column: str
    by_edges: bool


@dataclass(frozen=True)
class PopulationStatistic:
    """A population value (``quantile``, ``median``, ``population_*``) of ``input_column``,
    read from the one row of ``segql_stat_<column>``; ``p``: the quantile's fraction."""

    call: ast.Call
    input_column: str
    p: float | None


@dataclass(frozen=True)
class BucketDigest:
    """The md5 hex of ``salt:id`` that ``bucket(n, salt)`` reads its digits from."""

    salt: str


ComputedNode = (
    TraitValue | SegmentFlag | PopulationInput | PopulationRank | PopulationStatistic | BucketDigest
)


@dataclass(frozen=True)
class PlannedColumn:
    """A per-person column of ``stage`` (one after everything it reads)."""

    name: str
    stage: int
    node: ComputedNode


# --- predicates ---------------------------------------------------------------------


@dataclass(frozen=True)
class Exclusion:
    """A segment earlier in a priority list: a member of it is no member of this one.
    ``flagged``: read as its flag column, not as its predicate."""

    segment: str
    flagged: bool


@dataclass(frozen=True)
class SegmentPredicate:
    """What selects a segment's members from the last stage: its flag column
    (``flagged``) or its predicate, and not any of the segments before it in a priority
    list."""

    segment: str
    flagged: bool
    excluded: tuple[Exclusion, ...]


@dataclass(frozen=True)
class QueryPlan:
    """Every decision about one query, for one dialect (see the module's docstring).

    ``stages``: the stage of every column the stages read (0: the passes, sequences,
    history reads, current members); ``edges``: rank column -> (value column, buckets,
    ``qcut`` or ``ntile``); ``statistics``: population value column -> (function, input
    column, p). ``pushed``: the person filter is in every read (no population function).
    ``segments``: the predicates of a membership query; ``values``: the labelled
    person-scope expressions of a values query.
    """

    dialect: str
    entity_columns: frozenset[str]
    sources: Mapping[str, SourceNeeds]
    passes: tuple[PassNode, ...]
    sequences: Mapping[ast.Sequence | ast.Funnel, str]
    histories: Mapping[ast.HistoryTest, str]
    current: Mapping[str, str]
    traits: Mapping[str, str]
    flags: Mapping[str, str]
    population: Mapping[ast.Call, str]
    population_inputs: Mapping[str, str]
    edges: Mapping[str, tuple[str, int, str]]
    statistics: Mapping[str, tuple[str, str, float | None]]
    bucket_digests: Mapping[str, str]
    columns: tuple[PlannedColumn, ...]
    stages: Mapping[str, int]
    pushed: bool
    segments: tuple[SegmentPredicate, ...] = ()
    values: Mapping[str, ast.Expr] | None = None

    def aggregate_column(self, aggregate: ast.Aggregate, source: str) -> str:
        """The column of a planned aggregate (a missing one is a planner bug)."""
        return _planned(self.sources[source].aggregates, aggregate, "aggregate")

    def sequence_column(self, sequence: ast.Sequence | ast.Funnel) -> str:
        return _planned(self.sequences, sequence, "sequence")

    def history_column(self, test: ast.HistoryTest) -> str:
        return _planned(self.histories, test, "history test")

    def trait_column(self, trait: str) -> str:
        return _planned(self.traits, trait, "trait")

    def flag_column(self, segment: str) -> str:
        return _planned(self.flags, segment, "segment flag")

    def population_column(self, call: ast.Call) -> str:
        return _planned(self.population, call, "population function")

    def bucket_column(self, salt: str) -> str:
        return _planned(self.bucket_digests, salt, "bucket digest")


class UnplannedError(LookupError):
    """The lowering met a node the planner did not plan: a bug in segql, never a user's."""


def _planned(mapping: Mapping[K, V], key: K, what: str) -> V:
    try:
        return mapping[key]
    except KeyError:
        raise UnplannedError(f"{what} not in the plan: {key!r}") from None
