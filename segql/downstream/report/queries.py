"""The report's warehouse side: the figures it shows and the queries that aggregate them.

Every figure is aggregated in the warehouse from segql's own tables; only counts reach
Python, never a member id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlglot import exp

from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlError
from segql.project import Project
from segql.reading.reports import Reports
from segql.runs.store import HISTORY, MEMBERS, RUNS, Store

OVERLAP_LIMIT = 30  # the heatmap shows the largest segments; more cells would be unreadable
RUN_LOG_LIMIT = 100
REASONS = ("rules", "definition_changed", "segment_deleted")


# --- the figures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPoint:
    """One segment at one committed run: its size after the run and what the run moved."""

    commit_seq: int
    as_of: datetime
    size: int
    entered: int
    exited: int


@dataclass
class SegmentFigures:
    """Everything the page shows about one segment."""

    name: str
    title: str | None
    description: str | None
    in_project: bool
    size: int = 0
    entered: int = 0
    exited: int = 0
    exit_reasons: dict[str, int] = field(default_factory=dict)
    points: list[RunPoint] = field(default_factory=list)

    @property
    def start_size(self) -> int:
        """The size at the start of the period (as ``segql stats`` computes it)."""
        return self.size - self.entered + self.exited

    @property
    def growth_pct(self) -> float | None:
        start = self.start_size
        return None if start == 0 else 100.0 * (self.size - start) / start


@dataclass(frozen=True)
class RunLogRow:
    run_id: str
    as_of: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    commit_seq: int | None
    error: str | None
    entered: int
    exited: int

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass
class ReportData:
    """The aggregates behind one report."""

    project: str
    schema: str
    days: int
    last_as_of: datetime | None
    since: datetime | None
    segments: list[SegmentFigures]
    overlap_names: list[str]
    overlap: dict[tuple[str, str], int]
    runs: list[RunLogRow]
    run_counts: dict[str, int]

    @property
    def committed_runs(self) -> int:
        return self.run_counts.get("committed", 0)


# --- SQL -----------------------------------------------------------------------------------


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _alias(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _timestamp(value: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")


def _count_where(condition: exp.Expr) -> exp.Expr:
    return exp.Sum(
        this=exp.Case(
            ifs=[exp.If(this=condition, true=exp.Literal.number(1))],
            default=exp.Literal.number(0),
        )
    )


def _is(column: exp.Expr, value: str) -> exp.Expr:
    return column.eq(exp.Literal.string(value))


@dataclass(frozen=True)
class ReportQueries:
    """The report's questions, as sqlglot expressions over one schema's segql tables."""

    store: Store

    def committed_runs(self) -> exp.Select:
        """Every committed run's commit_seq and as-of, in commit order."""
        return (
            exp.select(_col("commit_seq"), _col("as_of"))
            .from_(self.store.table(RUNS))
            .where(_is(_col("status"), "committed"))
            .order_by(_col("commit_seq"))
        )

    def sizes(self) -> exp.Select:
        """Current size of each segment."""
        return (
            exp.select(_col("segment"), exp.Count(this=exp.Star()))
            .from_(self.store.table(MEMBERS))
            .group_by(_col("segment"))
        )

    def period_moves(self, since: datetime | None) -> exp.Select:
        """Entered and exited per segment, change and reason, after ``since``."""
        select = (
            exp.select(_col("segment"), _col("change"), _col("reason"), exp.Count(this=exp.Star()))
            .from_(self.store.table(HISTORY))
            .group_by(_col("segment"), _col("change"), _col("reason"))
        )
        if since is not None:
            select = select.where(_col("as_of") > _timestamp(since))
        return select

    def size_series(self, first_seq: int) -> exp.Select:
        """Per segment and committed run from ``first_seq`` on: size after the run (the
        running sum of enters minus exits over all runs) and the run's enters and exits."""
        moves = (
            exp.select(
                _col("segment"),
                _col("commit_seq"),
                exp.alias_(_count_where(_is(_col("change"), "enter")), "entered", quoted=True),
                exp.alias_(_count_where(_is(_col("change"), "exit")), "exited", quoted=True),
            )
            .from_(self.store.table(HISTORY))
            .group_by(_col("segment"), _col("commit_seq"))
        )
        segments = exp.select(_col("segment")).distinct().from_(self.store.table(HISTORY))
        entered = exp.Coalesce(this=_col("entered", "m"), expressions=[exp.Literal.number(0)])
        exited = exp.Coalesce(this=_col("exited", "m"), expressions=[exp.Literal.number(0)])
        running_size = exp.Window(
            this=exp.Sum(this=exp.Sub(this=entered.copy(), expression=exited.copy())),
            partition_by=[_col("segment", "s")],
            order=exp.Order(expressions=[exp.Ordered(this=_col("commit_seq", "r"))]),
            spec=exp.WindowSpec(
                kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"
            ),
        )
        grid = (
            exp.select(
                exp.alias_(_col("segment", "s"), "segment", quoted=True),
                exp.alias_(_col("commit_seq", "r"), "commit_seq", quoted=True),
                exp.alias_(_col("as_of", "r"), "as_of", quoted=True),
                exp.alias_(entered, "entered", quoted=True),
                exp.alias_(exited, "exited", quoted=True),
                exp.alias_(running_size, "size", quoted=True),
            )
            .from_(segments.subquery(_alias("s")))
            .join(self.store.table(RUNS, "r"), join_type="cross")
            .join(
                moves.subquery(_alias("m")),
                join_type="left",
                on=exp.and_(
                    _col("segment", "m").eq(_col("segment", "s")),
                    _col("commit_seq", "m").eq(_col("commit_seq", "r")),
                ),
            )
            .where(_is(_col("status", "r"), "committed"))
        )
        return (
            exp.select(*(_col(c) for c in ("segment", "commit_seq", "as_of", "size")))
            .select(_col("entered"), _col("exited"))
            .from_(grid.subquery(_alias("series")))
            .where(_col("commit_seq") >= exp.Literal.number(first_seq))
            .order_by(_col("segment"), _col("commit_seq"))
        )

    def overlap(self, names: Sequence[str]) -> exp.Select:
        """People in both segments, for every ordered pair of ``names`` (a pair with itself
        gives the size)."""
        literals = [exp.Literal.string(n) for n in names]
        return (
            exp.select(_col("segment", "a"), _col("segment", "b"), exp.Count(this=exp.Star()))
            .from_(self.store.table(MEMBERS, "a"))
            .join(
                self.store.table(MEMBERS, "b"),
                on=_col("person_id", "a").eq(_col("person_id", "b")),
            )
            .where(
                exp.and_(
                    _col("segment", "a").isin(*literals),
                    _col("segment", "b").isin(*(n.copy() for n in literals)),
                )
            )
            .group_by(_col("segment", "a"), _col("segment", "b"))
        )

    def run_counts(self) -> exp.Select:
        """How many runs have each status."""
        return (
            exp.select(_col("status"), exp.Count(this=exp.Star()))
            .from_(self.store.table(RUNS))
            .group_by(_col("status"))
        )

    def run_log(self, limit: int) -> exp.Select:
        """The latest runs, with the changes each recorded."""
        changes = (
            exp.select(
                _col("run_id"),
                exp.alias_(_count_where(_is(_col("change"), "enter")), "entered", quoted=True),
                exp.alias_(_count_where(_is(_col("change"), "exit")), "exited", quoted=True),
            )
            .from_(self.store.table(HISTORY))
            .group_by(_col("run_id"))
        )
        columns = ("run_id", "as_of", "started_at", "finished_at", "status", "commit_seq", "error")
        return (
            exp.select(*(_col(c, "r") for c in columns))
            .select(_col("entered", "h"), _col("exited", "h"))
            .from_(self.store.table(RUNS, "r"))
            .join(
                changes.subquery(_alias("h")),
                join_type="left",
                on=_col("run_id", "h").eq(_col("run_id", "r")),
            )
            .order_by(
                exp.Ordered(this=_col("started_at", "r"), desc=True),
                exp.Ordered(this=_col("as_of", "r"), desc=True),
                exp.Ordered(this=_col("run_id", "r")),
            )
            .limit(limit)
        )


def collect_report(warehouse: Warehouse, project: Project, days: int) -> ReportData:
    """Ask the warehouse for every aggregate the page shows."""
    data = collect_segment_figures(warehouse, project, days)
    queries = ReportQueries(Store(data.schema))
    overlap_names = [f.name for f in data.segments if f.size > 0][:OVERLAP_LIMIT]
    overlap: dict[tuple[str, str], int] = {}
    if overlap_names:
        for a, b, count in warehouse.run(queries.overlap(overlap_names)):
            overlap[(a, b)] = int(count)

    run_counts = {str(status): int(count) for status, count in warehouse.run(queries.run_counts())}
    log = [
        RunLogRow(
            str(r[0]), _as_datetime(r[1]), _as_datetime(r[2]), _as_datetime(r[3]), str(r[4]),
            None if r[5] is None else int(r[5]), r[6], int(r[7] or 0), int(r[8] or 0),
        )
        for r in warehouse.run(queries.run_log(RUN_LOG_LIMIT))
    ]  # fmt: skip
    return replace(
        data, overlap_names=overlap_names, overlap=overlap, runs=log, run_counts=run_counts
    )


def collect_segment_figures(warehouse: Warehouse, project: Project, days: int) -> ReportData:
    """Each segment's size, moves in the period and size after each run (the figures of the
    report's segment cards, also shown by ``segql ui``); no overlap and no run log."""
    if days < 1:
        raise SegqlError(f"--days must be at least 1 (got {days})")
    schema = project.config.warehouse.schema
    Reports(warehouse, schema)  # a clear error when segql has not run here yet
    queries = ReportQueries(Store(schema))
    runs = [
        (int(seq), _as_datetime(as_of)) for seq, as_of in warehouse.run(queries.committed_runs())
    ]
    last = runs[-1][1] if runs else None
    since = last - timedelta(days=days) if last is not None else None
    # The series starts at the last run before the period (its size is the starting point).
    before = [seq for seq, as_of in runs if since is not None and as_of <= since]
    first_seq = before[-1] if before else (runs[0][0] if runs else 0)

    definitions = project.definitions.segments
    figures: dict[str, SegmentFigures] = {
        name: SegmentFigures(name, d.title, d.description, True) for name, d in definitions.items()
    }

    def segment(name: str) -> SegmentFigures:
        if name not in figures:
            figures[name] = SegmentFigures(name, None, None, in_project=False)
        return figures[name]

    for name, count in warehouse.run(queries.sizes()):
        segment(name).size = int(count)
    for name, change, reason, count in warehouse.run(queries.period_moves(since)):
        figure = segment(name)
        if change == "enter":
            figure.entered += int(count)
        else:
            figure.exited += int(count)
            key = reason or "rules"
            figure.exit_reasons[key] = figure.exit_reasons.get(key, 0) + int(count)
    series_rows = warehouse.run(queries.size_series(first_seq)) if runs else []
    for name, seq, as_of, size, entered, exited in series_rows:
        if name not in figures and not (entered or exited):
            continue  # a segment gone before this period: nothing to show
        point = RunPoint(int(seq), _as_datetime(as_of), int(size), int(entered), int(exited))
        segment(name).points.append(point)
    # Segments no longer in the project stay on the page only while they still changed.
    shown = [
        f for f in figures.values()
        if f.in_project or f.size or f.entered or f.exited
    ]  # fmt: skip
    shown.sort(key=lambda f: (-f.size, f.name))

    return ReportData(
        project=project.config.root.name,
        schema=schema,
        days=days,
        last_as_of=last,
        since=since,
        segments=shown,
        overlap_names=[],
        overlap={},
        runs=[],
        run_counts={},
    )


def _as_datetime(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
