"""``segql report``: one self-contained HTML page about a project's recorded membership.

The figures are aggregated in the warehouse from segql's own tables (sizes from
``segql_members``, size over time and moves from ``segql_history`` summed per run, the
overlap matrix from a self-join of ``segql_members``, the run log from ``segql_runs``);
only those aggregates reach Python and the page, never a member id. The page draws its
charts as inline SVG with inline CSS and a few lines of inline JavaScript for filtering
and sorting, so it works offline and from a file.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlglot import exp

from segql.errors import SegqlError
from segql.project import Project
from segql.reports import Reports
from segql.store import HISTORY, MEMBERS, RUNS, Store
from segql.timeutil import utc_now
from segql.warehouse import Warehouse

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


def _timestamp(value: datetime) -> exp.Expression:
    return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")


def _count_where(condition: exp.Expression) -> exp.Expression:
    return exp.Sum(
        this=exp.Case(
            ifs=[exp.If(this=condition, true=exp.Literal.number(1))],
            default=exp.Literal.number(0),
        )
    )


def _is(column: exp.Expression, value: str) -> exp.Expression:
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

    overlap_names = [f.name for f in shown if f.size > 0][:OVERLAP_LIMIT]
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
    return ReportData(
        project=project.config.root.name,
        schema=schema,
        days=days,
        last_as_of=last,
        since=since,
        segments=shown,
        overlap_names=overlap_names,
        overlap=overlap,
        runs=log,
        run_counts=run_counts,
    )


def _as_datetime(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


# --- the page ------------------------------------------------------------------------------


def build_report(warehouse: Warehouse, project: Project, days: int = 30) -> str:
    """The report of ``project`` over the last ``days`` days, as one HTML document."""
    return render_report(collect_report(warehouse, project, days), generated_at=utc_now())


def write_report(warehouse: Warehouse, project: Project, days: int, out: Path) -> Path:
    """Build the report and write it to ``out`` (UTF-8); returns the path written."""
    out.write_text(build_report(warehouse, project, days), encoding="utf-8")
    return out


def render_report(data: ReportData, generated_at: datetime | None = None) -> str:
    """The page for already collected figures: every text escaped, nothing fetched."""
    segments = data.segments
    entered = sum(f.entered for f in segments)
    exited = sum(f.exited for f in segments)
    failed = data.run_counts.get("failed", 0)
    if data.last_as_of is None:
        period = "no committed run yet"
    else:
        period = (
            f"last {data.days} days: {_when(data.since)} to {_when(data.last_as_of)} "
            f"(the as-of of the last committed run)"
        )
    kpis = "".join(
        f'<div class="kpi"><div class="kpi-value" data-figure="{key}">{value}</div>'
        f'<div class="kpi-label">{label}</div></div>'
        for key, value, label in (
            ("segments", f"{len(segments):,}", "segments"),
            ("memberships", f"{sum(f.size for f in segments):,}", "memberships now"),
            ("entered", _signed(entered, "+"), "entered in period"),
            ("exited", _signed(exited, "&minus;"), "exited in period"),
            (
                "runs",
                f"{data.committed_runs:,}",
                "committed runs" + (f", {failed:,} failed" if failed else ""),
            ),
        )
    )
    generated = f" &middot; generated {_when(generated_at)} UTC" if generated_at else ""
    cards = "\n".join(_segment_card(i, f, data) for i, f in enumerate(segments))
    rows = "\n".join(_overview_row(i, f) for i, f in enumerate(segments))
    empty_note = (
        '<p class="note">The project has no segments and segql has recorded none.</p>'
        if not segments
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>segql report: {_e(data.project)}</title>
<style>{_CSS}</style>
</head>
<body>
<header class="page-header">
  <div class="wrap">
    <div class="brand">segql report</div>
    <h1>{_e(data.project)}</h1>
    <p class="meta">Period: {_e(period)} &middot;
      schema <code>{_e(data.schema)}</code>{generated}</p>
    <div class="kpis">{kpis}</div>
  </div>
</header>
<main class="wrap">
<section id="segments" aria-labelledby="segments-title">
  <div class="section-head">
    <h2 id="segments-title">Segments</h2>
    <div class="toolbar">
      <input id="segment-filter" type="search" placeholder="Filter by name or title"
        aria-label="Filter segments" autocomplete="off">
      <label>Sort
        <select id="segment-sort" aria-label="Sort segments">
          <option value="size">size</option>
          <option value="growth">growth</option>
          <option value="entered">entered</option>
          <option value="exited">exited</option>
          <option value="name">name</option>
        </select>
      </label>
      <span id="segment-shown" class="muted">{len(segments):,} segments</span>
    </div>
  </div>
  {empty_note}
  <div class="overview">
    <table class="grid-table">
      <thead><tr>
        <th data-sort="name">Segment</th><th data-sort="size" class="n">Size</th>
        <th data-sort="growth" class="n">Growth</th><th data-sort="entered" class="n">Entered</th>
        <th data-sort="exited" class="n">Exited</th><th>Size over the period</th>
      </tr></thead>
      <tbody id="segment-rows">
{rows}
      </tbody>
    </table>
  </div>
  <p id="segment-none" class="note" hidden>No segment matches the filter.</p>
  <div id="segment-cards" class="cards">
{cards}
  </div>
</section>
<section id="overlap" aria-labelledby="overlap-title">
  <h2 id="overlap-title">Overlap</h2>
  {_overlap_section(data)}
</section>
<section id="runs" aria-labelledby="runs-title">
  <h2 id="runs-title">Runs</h2>
  {_run_log(data)}
</section>
<footer class="muted">
  Aggregated in the warehouse from <code>segql_members</code>, <code>segql_history</code> and
  <code>segql_runs</code>; the page holds counts only, no member ids. Times are UTC.
</footer>
</main>
<script>{_JS}</script>
</body>
</html>
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    if value.hour == value.minute == value.second == 0:
        return f"{value:%Y-%m-%d}"
    return f"{value:%Y-%m-%d %H:%M}"


def _compact(value: float) -> str:
    """1234 -> 1.2k: short labels for axes."""
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            scaled = value / limit
            if size < 10 * limit:
                return f"{scaled:.1f}".rstrip("0").rstrip(".") + suffix
            return f"{scaled:.0f}{suffix}"
    return f"{value:.0f}"


def _signed(count: int, sign: str) -> str:
    """A count of people who moved, with its direction unless it is zero."""
    return f"{sign}{count:,}" if count else "0"


def _growth_text(figure: SegmentFigures) -> tuple[str, str]:
    """The growth as shown, and its CSS class."""
    growth = figure.growth_pct
    if growth is None:
        return ("new", "up") if figure.size else ("&ndash;", "flat")
    if growth > 0:
        return f"+{growth:.1f}%", "up"
    if growth < 0:
        return f"&minus;{abs(growth):.1f}%", "down"
    return "0.0%", "flat"


def _search_text(figure: SegmentFigures) -> str:
    return _e(" ".join(p for p in (figure.name, figure.title or "") if p).lower())


def _sort_attributes(figure: SegmentFigures) -> str:
    growth = figure.growth_pct
    return (
        f'data-name="{_e(figure.name)}" data-search="{_search_text(figure)}" '
        f'data-size="{figure.size}" data-entered="{figure.entered}" '
        f'data-exited="{figure.exited}" data-growth="{"" if growth is None else round(growth, 4)}"'
    )


def _overview_row(index: int, figure: SegmentFigures) -> str:
    growth, trend = _growth_text(figure)
    title = f'<span class="muted"> {_e(figure.title)}</span>' if figure.title else ""
    return (
        f"<tr {_sort_attributes(figure)}>"
        f'<td><a href="#segment-{index}"><code>{_e(figure.name)}</code></a>{title}</td>'
        f'<td class="n">{figure.size:,}</td><td class="n {trend}">{growth}</td>'
        f'<td class="n">{_signed(figure.entered, "+")}</td>'
        f'<td class="n">{_signed(figure.exited, "&minus;")}</td>'
        f"<td>{_sparkline(figure)}</td></tr>"
    )


def _segment_card(index: int, figure: SegmentFigures, data: ReportData) -> str:
    growth, trend = _growth_text(figure)
    heading = _e(figure.title or figure.name)
    subtitle = f"<code>{_e(figure.name)}</code>" if figure.title else ""
    if not figure.in_project:
        subtitle += ' <span class="badge">not in the project</span>'
    description = f'<p class="desc">{_e(figure.description)}</p>' if figure.description else ""
    if figure.points:
        charts = (
            '<h4>Size after each run</h4>' + _size_chart(figure, data)
            + '<h4>Entered and exited per run</h4>' + _moves_chart(figure, data)
        )  # fmt: skip
    else:
        charts = '<p class="note">Not run yet: no history recorded for this segment.</p>'
    return f"""<article class="card" id="segment-{index}" data-segment="{_e(figure.name)}" \
{_sort_attributes(figure)}>
  <div class="card-head">
    <div><h3>{heading}</h3><div class="sub">{subtitle}</div></div>
    <div class="figures">
      <div class="big" data-figure="size">{figure.size:,}</div>
      <div class="small"><span class="{trend}" data-figure="growth">{growth}</span>
        &middot; <span class="in" data-figure="entered">{figure.entered:,}</span> in
        &middot; <span class="out" data-figure="exited">{figure.exited:,}</span> out</div>
    </div>
  </div>
  {description}
  {charts}
  <h4>Why people exited</h4>
  {_reasons(figure)}
</article>"""


# --- charts --------------------------------------------------------------------------------

_CHART_WIDTH = 600
_LEFT, _RIGHT, _PAD = 52, 14, 18
_ENTER_COLOR, _EXIT_COLOR, _LINE_COLOR = "#0d9488", "#e11d48", "#4f46e5"
_REASON_COLORS = {
    "rules": "#e11d48",
    "definition_changed": "#f59e0b",
    "segment_deleted": "#64748b",
}


def _nice_ticks(maximum: float, count: int = 4) -> list[int]:
    """Round tick values from 0 to at least ``maximum``."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, round(step))
    top = math.ceil(maximum / step) * step
    return list(range(0, top + 1, step))


class _TimeScale:
    """Maps the as-of times of the runs shown onto the chart's width."""

    def __init__(self, times: Sequence[datetime]):
        self.start, self.end = min(times), max(times)
        self.times = sorted(set(times))
        self.x0, self.x1 = _LEFT + _PAD, _CHART_WIDTH - _RIGHT - _PAD

    def x(self, when: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        if span == 0:
            return (self.x0 + self.x1) / 2
        return self.x0 + (self.x1 - self.x0) * (when - self.start).total_seconds() / span

    def bar_width(self) -> float:
        xs = [self.x(t) for t in self.times]
        gap = min((b - a for a, b in itertools.pairwise(xs)), default=60.0)
        return max(2.0, min(28.0, gap * 0.6))

    def labels(self, baseline: float) -> str:
        """Date labels under the runs, dropping those that would overlap."""
        span = self.end - self.start
        with_time = span < timedelta(days=3) and any(
            t.hour or t.minute for t in self.times
        )  # fmt: skip
        kept: list[datetime] = []
        for when in self.times:
            if kept and self.x(when) - self.x(kept[-1]) < 74:
                if when == self.times[-1]:
                    kept[-1] = when  # the latest run always has its label
                continue
            kept.append(when)
        parts = []
        for when in kept:
            text = f"{when:%b} {when.day}" + (f" {when:%H:%M}" if with_time else "")
            parts.append(
                f'<text x="{self.x(when):.1f}" y="{baseline + 16:.1f}" class="axis" '
                f'text-anchor="middle">{_e(text)}</text>'
            )
        return "".join(parts)


def _in_period(point: RunPoint, data: ReportData) -> bool:
    return data.since is None or point.as_of > data.since


def _size_chart(figure: SegmentFigures, data: ReportData) -> str:
    height, top, bottom = 170, 12, 26
    points = figure.points
    scale = _TimeScale([p.as_of for p in points])
    ticks = _nice_ticks(max(p.size for p in points))
    y_max = ticks[-1]
    inner = height - top - bottom

    def y(value: float) -> float:
        return top + inner - inner * value / y_max

    grid = "".join(
        f'<line x1="{_LEFT}" x2="{_CHART_WIDTH - _RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
        f'class="gridline"/><text x="{_LEFT - 8}" y="{y(t) + 4:.1f}" class="axis" '
        f'text-anchor="end">{_compact(t)}</text>'
        for t in ticks
    )
    xy = [(scale.x(p.as_of), y(p.size)) for p in points]
    line = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in xy)
    area = (
        f'<polygon points="{xy[0][0]:.1f},{y(0):.1f} {line} {xy[-1][0]:.1f},{y(0):.1f}" '
        f'fill="{_LINE_COLOR}" fill-opacity="0.08"/>'
        if len(xy) > 1
        else ""
    )
    dots = []
    for point, (x, yy) in zip(points, xy, strict=True):
        start = not _in_period(point, data)
        note = " (start of the period)" if start else (
            f" (+{point.entered:,} / \u2212{point.exited:,})"
        )  # fmt: skip
        dots.append(
            f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="{3.5 if start else 3}" '
            f'class="{"dot start" if start else "dot"}" data-role="size-point" '
            f'data-seq="{point.commit_seq}" data-value="{point.size}">'
            f"<title>{_e(_when(point.as_of))}: {point.size:,} members{_e(note)}</title></circle>"
        )
    return (
        f'<svg data-role="size-chart" viewBox="0 0 {_CHART_WIDTH} {height}" role="img" '
        f'aria-label="Size of {_e(figure.name)} after each run">{grid}{area}'
        f'<polyline points="{line}" fill="none" stroke="{_LINE_COLOR}" stroke-width="2" '
        f'stroke-linejoin="round"/>{"".join(dots)}{scale.labels(top + inner)}</svg>'
    )


def _moves_chart(figure: SegmentFigures, data: ReportData) -> str:
    # Room above and below the bars for their value labels, then the date labels.
    height, top, bottom, room = 150, 16, 26, 14
    inner = height - top - bottom - room
    scale = _TimeScale([p.as_of for p in figure.points])
    shown = [p for p in figure.points if _in_period(p, data)]
    up = max((p.entered for p in shown), default=0)
    down = max((p.exited for p in shown), default=0)
    if up + down == 0:
        zero = top + inner / 2
        up_px = down_px = inner / 2
    else:
        # Keep both directions visible even when one dwarfs the other.
        up_share = 0.5 if not (up and down) else min(0.8, max(0.2, up / (up + down)))
        if not down:
            up_share = 1.0
        if not up:
            up_share = 0.0
        up_px, down_px = inner * up_share, inner * (1 - up_share)
        zero = top + up_px
    width = scale.bar_width()
    parts = [
        f'<line x1="{_LEFT}" x2="{_CHART_WIDTH - _RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}" '
        f'class="zeroline"/><text x="{_LEFT - 8}" y="{zero + 4:.1f}" class="axis" '
        f'text-anchor="end">0</text>'
    ]
    if up:
        parts.append(
            f'<text x="{_LEFT - 8}" y="{top + 4:.1f}" class="axis" text-anchor="end">'
            f"+{_compact(up)}</text>"
        )
    if down:
        parts.append(
            f'<text x="{_LEFT - 8}" y="{top + inner + 4:.1f}" class="axis" '
            f'text-anchor="end">&minus;{_compact(down)}</text>'
        )
    label_values = len(shown) <= 12
    for point in shown:
        x = scale.x(point.as_of) - width / 2
        for role, value, color in (
            ("entered", point.entered, _ENTER_COLOR),
            ("exited", point.exited, _EXIT_COLOR),
        ):
            extent = up_px * value / up if role == "entered" and up else 0.0
            if role == "exited" and down:
                extent = down_px * value / down
            y = zero - extent if role == "entered" else zero
            sign = "+" if role == "entered" else "\u2212"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{max(extent, 0.0):.1f}" fill="{color}" rx="1.5" data-role="{role}" '
                f'data-seq="{point.commit_seq}" data-value="{value}">'
                f"<title>{_e(_when(point.as_of))}: {sign}{value:,} {role}</title></rect>"
            )
            if label_values and value:
                ty = y - 4 if role == "entered" else zero + extent + 11
                parts.append(
                    f'<text x="{x + width / 2:.1f}" y="{ty:.1f}" class="value" '
                    f'text-anchor="middle">{sign}{_compact(value)}</text>'
                )
    if not shown or up + down == 0:
        parts.append(
            f'<text x="{(_LEFT + _CHART_WIDTH) / 2:.1f}" y="{zero - 8:.1f}" class="axis" '
            f'text-anchor="middle">no changes in this period</text>'
        )
    parts.append(scale.labels(top + inner + room))
    return (
        f'<svg data-role="moves-chart" viewBox="0 0 {_CHART_WIDTH} {height}" role="img" '
        f'aria-label="People who entered and exited {_e(figure.name)} at each run">'
        f"{''.join(parts)}</svg>"
    )


def _reasons(figure: SegmentFigures) -> str:
    total = sum(figure.exit_reasons.values())
    if total == 0:
        return '<p class="note">No exits in this period.</p>'
    ordered = sorted(
        figure.exit_reasons.items(),
        key=lambda item: (REASONS.index(item[0]) if item[0] in REASONS else 99, item[0]),
    )
    x, rects, legend = 0.0, [], []
    for reason, count in ordered:
        width = _CHART_WIDTH * count / total
        color = _REASON_COLORS.get(reason, "#94a3b8")
        share = f"{100 * count / total:.0f}%"
        rects.append(
            f'<rect x="{x:.2f}" y="0" width="{width:.2f}" height="14" fill="{color}" '
            f'data-role="reason" data-reason="{_e(reason)}" data-value="{count}">'
            f"<title>{_e(reason.replace('_', ' '))}: {count:,} ({share})</title></rect>"
        )
        legend.append(
            f'<span class="key"><i style="background:{color}"></i>{_e(reason.replace("_", " "))}'
            f' <b>{count:,}</b> <span class="muted">{share}</span></span>'
        )
        x += width
    return (
        f'<svg data-role="exit-reasons" class="reasons" viewBox="0 0 {_CHART_WIDTH} 14" '
        f'preserveAspectRatio="none" role="img" aria-label="Reasons for exits">'
        f'{"".join(rects)}</svg><div class="legend">{"".join(legend)}</div>'
    )


def _sparkline(figure: SegmentFigures) -> str:
    points = figure.points
    if not points:
        return '<span class="muted">&ndash;</span>'
    width, height = 120, 26
    top = max(p.size for p in points) or 1
    first, last = points[0].as_of, points[-1].as_of
    span = (last - first).total_seconds() or 1.0

    def x(when: datetime) -> float:
        return 2 + (width - 4) * ((when - first).total_seconds() / span if len(points) > 1 else 0.5)

    coords = [(x(p.as_of), height - 3 - (height - 6) * p.size / top) for p in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    end = coords[-1]
    return (
        f'<svg data-role="sparkline" class="spark" viewBox="0 0 {width} {height}" '
        f'aria-hidden="true"><polyline points="{line}" fill="none" stroke="{_LINE_COLOR}" '
        f'stroke-width="1.5"/><circle cx="{end[0]:.1f}" cy="{end[1]:.1f}" r="2" '
        f'fill="{_LINE_COLOR}"/></svg>'
    )


def _mix(low: str, high: str, share: float) -> str:
    a = [int(low[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(high[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b, strict=True))


def _heat_color(share: float) -> str:
    """0 to 1 on a light-to-indigo scale."""
    if share <= 0.5:
        return _mix("#f1f5f9", "#818cf8", share * 2)
    return _mix("#818cf8", "#312e81", (share - 0.5) * 2)


def _overlap_section(data: ReportData) -> str:
    names = data.overlap_names
    if len(names) < 2:
        return '<p class="note">Overlap needs at least two segments with members.</p>'
    with_members = sum(1 for f in data.segments if f.size > 0)
    note = (
        f"The {len(names)} largest of {with_members:,} segments with members. "
        if with_members > len(names)
        else ""
    )
    return (
        f'<p class="note">{note}Each cell is the share of the <b>row</b> segment that is also in '
        f"the column segment; hover a cell for the count of people in both and the share of "
        f"each. The diagonal is the segment's size.</p>"
        f'<div class="heatmap">{_heatmap(data)}<div class="scale"><span>0%</span>'
        f'<i style="background:linear-gradient(90deg,{_heat_color(0)},{_heat_color(0.5)},'
        f'{_heat_color(1)})"></i><span>100% of the row segment</span></div></div>'
    )


def _heatmap(data: ReportData) -> str:
    names = data.overlap_names
    count = len(names)
    label = min(190, 16 + 7 * max(len(n) for n in names))
    cell = max(20.0, min(64.0, (1240 - label) / count))
    head = min(150, 10 + 5.2 * max(len(n) for n in names))
    width, height = label + cell * count + 8, head + cell * count + 4
    size = {n: data.overlap.get((n, n), 0) for n in names}
    parts = []
    for i, name in enumerate(names):
        short = name if len(name) <= 26 else name[:25] + "\u2026"
        y = head + cell * i
        parts.append(
            f'<text x="{label - 8}" y="{y + cell / 2 + 4:.1f}" class="axis row" '
            f'text-anchor="end">{_e(short)}<title>{_e(name)}</title></text>'
        )
        x = label + cell * i + cell / 2
        parts.append(
            f'<text transform="translate({x:.1f},{head - 8}) rotate(-40)" class="axis" '
            f'text-anchor="start">{_e(short)}<title>{_e(name)}</title></text>'
        )
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            both = data.overlap.get((a, b), 0)
            x, y = label + cell * j, head + cell * i
            if a == b:
                fill, share = "#e2e8f0", 1.0
                tip = f"{a}: {both:,} members"
                text = _compact(both)
            else:
                share = both / size[a] if size[a] else 0.0
                share_b = both / size[b] if size[b] else 0.0
                fill = _heat_color(share)
                tip = (
                    f"{a} and {b}: {both:,} people in both, {100 * share:.1f}% of {a}, "
                    f"{100 * share_b:.1f}% of {b}"
                )
                text = "" if not both else f"{100 * share:.0f}%" if share >= 0.005 else "&lt;1%"
            ink = "#ffffff" if a != b and share > 0.55 else "#0f172a"
            parts.append(
                f'<g data-role="overlap-cell" data-a="{_e(a)}" data-b="{_e(b)}" '
                f'data-count="{both}"><rect x="{x + 1:.1f}" y="{y + 1:.1f}" '
                f'width="{cell - 2:.1f}" height="{cell - 2:.1f}" rx="3" fill="{fill}"/>'
            )
            if cell >= 28:
                parts.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" fill="{ink}" '
                    f'class="cell" text-anchor="middle">{text}</text>'
                )
            parts.append(f"<title>{_e(tip)}</title></g>")
    return (
        f'<svg data-role="overlap-heatmap" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="Overlap between segments">{"".join(parts)}</svg>'
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "&ndash;"
    if seconds < 1:
        return "&lt; 1 s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def _run_log(data: ReportData) -> str:
    if not data.runs:
        return '<p class="note">No runs recorded.</p>'
    total = sum(data.run_counts.values())
    note = (
        f'<p class="note">The latest {len(data.runs):,} of {total:,} runs.</p>'
        if total > len(data.runs)
        else ""
    )
    rows = []
    for run in data.runs:
        error = run.error or ""
        short = error if len(error) <= 90 else error[:89] + "\u2026"
        rows.append(
            f'<tr data-role="run" data-run="{_e(run.run_id)}" data-status="{_e(run.status)}">'
            f"<td>{_e(_when(run.as_of))}</td>"
            f'<td class="n">{"" if run.commit_seq is None else f"#{run.commit_seq}"}</td>'
            f'<td><span class="status {_e(run.status)}">{_e(run.status)}</span></td>'
            f"<td>{_e(_when(run.started_at) if run.started_at else '')}</td>"
            f'<td class="n">{_duration(run.seconds)}</td>'
            f'<td class="n in">{_signed(run.entered, "+")}</td>'
            f'<td class="n out">{_signed(run.exited, "&minus;")}</td>'
            f'<td class="error" title="{_e(error)}">{_e(short)}</td></tr>'
        )
    return (
        f'{note}<table class="grid-table runs" data-role="run-log"><thead><tr><th>As-of</th>'
        '<th class="n">Commit</th><th>Status</th><th>Started</th><th class="n">Duration</th>'
        '<th class="n">Entered</th><th class="n">Exited</th><th>Error</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


_CSS = """
:root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --bg: #f8fafc; --card: #fff;
  --accent: #4f46e5; --in: #0d9488; --out: #e11d48; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui,
  -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif; }
code { font: 12.5px ui-monospace, "SFMono-Regular", Menlo, "DejaVu Sans Mono", monospace;
  color: #334155; }
.wrap { max-width: 1320px; margin: 0 auto; padding: 0 28px; }
.page-header { background: #fff; border-bottom: 1px solid var(--line); padding: 22px 0 18px; }
.brand { color: var(--accent); font-weight: 700; font-size: 12px; letter-spacing: .08em;
  text-transform: uppercase; }
h1 { margin: 2px 0 4px; font-size: 26px; letter-spacing: -.01em; }
h2 { font-size: 18px; margin: 0; }
h3 { font-size: 16px; margin: 0; }
h4 { font-size: 11px; font-weight: 600; color: var(--muted); text-transform: uppercase;
  letter-spacing: .06em; margin: 14px 0 4px; }
.meta, .muted, .note { color: var(--muted); }
.meta { margin: 0 0 14px; }
.note { margin: 6px 0 12px; }
.kpis { display: flex; gap: 12px; flex-wrap: wrap; }
.kpi { border: 1px solid var(--line); border-radius: 10px; padding: 10px 16px; min-width: 150px;
  background: var(--bg); }
.kpi-value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.kpi-label { color: var(--muted); font-size: 12px; }
section { margin: 28px 0; }
.section-head { display: flex; align-items: center; justify-content: space-between; gap: 16px;
  margin-bottom: 10px; flex-wrap: wrap; }
.toolbar { display: flex; align-items: center; gap: 12px; color: var(--muted); }
.toolbar input, .toolbar select { font: inherit; color: var(--ink); border: 1px solid #cbd5e1;
  border-radius: 8px; padding: 6px 10px; background: #fff; }
.toolbar input { width: 280px; }
.overview { max-height: 420px; overflow: auto; background: var(--card);
  border: 1px solid var(--line); border-radius: 12px; }
.grid-table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
.grid-table th { position: sticky; top: 0; background: #f1f5f9; text-align: left;
  font-size: 12px; color: #475569; font-weight: 600; padding: 8px 12px;
  border-bottom: 1px solid var(--line); }
.grid-table th[data-sort] { cursor: pointer; }
.grid-table th.n { text-align: right; }
.grid-table td { padding: 6px 12px; border-bottom: 1px solid #f1f5f9; vertical-align: middle; }
.grid-table a { color: inherit; text-decoration: none; }
.grid-table a:hover code { color: var(--accent); text-decoration: underline; }
.n { text-align: right; white-space: nowrap; }
.up { color: var(--in); } .down { color: var(--out); } .flat { color: var(--muted); }
.in { color: var(--in); } .out { color: var(--out); }
.spark { width: 120px; height: 26px; display: block; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr));
  gap: 16px; margin-top: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
  padding: 16px 18px; }
.card-head { display: flex; justify-content: space-between; gap: 12px; }
.sub { margin-top: 2px; }
.desc { color: var(--muted); margin: 6px 0 0; }
.figures { text-align: right; white-space: nowrap; }
.big { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; line-height: 1.1; }
.small { font-size: 13px; font-variant-numeric: tabular-nums; }
.badge { background: #fef3c7; color: #92400e; border-radius: 6px; padding: 1px 6px;
  font-size: 11px; }
svg { display: block; width: 100%; height: auto; overflow: visible; }
svg text { font-family: inherit; }
.axis { font-size: 11px; fill: var(--muted); }
.value { font-size: 10.5px; fill: #334155; font-variant-numeric: tabular-nums; }
.gridline { stroke: #eef2f7; stroke-width: 1; }
.zeroline { stroke: #cbd5e1; stroke-width: 1; }
.dot { fill: #fff; stroke: var(--accent); stroke-width: 2; }
.dot.start { stroke: #94a3b8; }
.reasons { height: 14px; border-radius: 7px; overflow: hidden; }
.legend { display: flex; gap: 16px; flex-wrap: wrap; margin-top: 6px; font-size: 12.5px; }
.key i { display: inline-block; width: 10px; height: 10px; border-radius: 3px;
  margin-right: 6px; vertical-align: -1px; }
.heatmap { background: var(--card); border: 1px solid var(--line); border-radius: 12px;
  padding: 16px; overflow: auto; }
.heatmap svg { width: auto; max-width: none; }
.scale { display: flex; align-items: center; gap: 8px; margin-top: 10px; color: var(--muted);
  font-size: 12px; }
.scale i { display: inline-block; width: 180px; height: 10px; border-radius: 5px; }
.heatmap .row { fill: #334155; }
.heatmap .cell { font-size: 11px; font-variant-numeric: tabular-nums; }
.heatmap g:hover rect { stroke: var(--ink); stroke-width: 1.5; }
.runs { background: var(--card); border: 1px solid var(--line); border-radius: 12px; }
.status { border-radius: 6px; padding: 1px 8px; font-size: 12px; }
.status.committed { background: #ccfbf1; color: #115e59; }
.status.failed { background: #ffe4e6; color: #9f1239; }
.status.running { background: #fef3c7; color: #92400e; }
.error { color: #9f1239; font-size: 12px; max-width: 420px; }
footer { font-size: 12px; padding: 12px 0 40px; border-top: 1px solid var(--line); }
"""

# Filter, sort and the count of shown segments; "#filter=text" in the address prefills the box.
_JS = """
(function () {
  var input = document.getElementById('segment-filter');
  var sort = document.getElementById('segment-sort');
  var lists = [document.getElementById('segment-rows'), document.getElementById('segment-cards')];
  var shown = document.getElementById('segment-shown');
  var none = document.getElementById('segment-none');
  function value(el, by) {
    if (by === 'name') { return el.getAttribute('data-name'); }
    var text = el.getAttribute('data-' + by);
    return text === '' ? -Infinity : parseFloat(text);
  }
  function compare(by) {
    return function (a, b) {
      var x = value(a, by), y = value(b, by);
      if (by === 'name') { return x < y ? -1 : x > y ? 1 : 0; }
      if (x !== y) { return y - x; }
      var p = a.getAttribute('data-name'), q = b.getAttribute('data-name');
      return p < q ? -1 : p > q ? 1 : 0;
    };
  }
  function apply() {
    var query = input.value.trim().toLowerCase();
    var total = 0, visible = 0;
    lists.forEach(function (list, index) {
      var items = Array.prototype.slice.call(list.children);
      items.sort(compare(sort.value));
      items.forEach(function (item) {
        var match = !query || item.getAttribute('data-search').indexOf(query) >= 0;
        item.hidden = !match;
        list.appendChild(item);
        if (index === 0) { total += 1; visible += match ? 1 : 0; }
      });
    });
    shown.textContent = visible === total ? total + ' segments'
      : visible + ' of ' + total + ' segments';
    none.hidden = visible > 0 || total === 0;
  }
  var hash = window.location.hash;
  if (hash.indexOf('#filter=') === 0) { input.value = decodeURIComponent(hash.slice(8)); }
  input.addEventListener('input', apply);
  sort.addEventListener('change', apply);
  Array.prototype.forEach.call(document.querySelectorAll('th[data-sort]'), function (th) {
    th.addEventListener('click', function () {
      sort.value = th.getAttribute('data-sort');
      apply();
    });
  });
  apply();
  document.body.setAttribute('data-ready', 'true');
})();
"""
