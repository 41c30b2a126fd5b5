"""The figures of each page of ``segql ui``, asked through the functions the command line
uses (``Reports`` for ``list``/``stats``/``history``, ``member_rows`` for ``members``,
``person_*`` for ``person``, ``explain_segment`` for ``explain``, the report's segment
figures and charts for the sparkline, the size over time and the moves per run). Nothing
here counts anything itself; it only filters and pages what those return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup

from segql.downstream.report import charts
from segql.downstream.report.queries import SegmentFigures, collect_segment_figures
from segql.language.printer import format_definition
from segql.output import render
from segql.reading.explain import Explanation, explain_segment
from segql.reading.members import member_rows
from segql.reading.person import person_history, person_segments, person_traits
from segql.reading.preview import last_committed_as_of
from segql.reading.reports import Reports, Rows
from segql.runs.overrides import COLUMNS as OVERRIDE_COLUMNS
from segql.runs.overrides import Overrides
from segql.ui.workspace import Reading

DAYS = 30  # the period of the overview and of the stat cards, as `segql stats` defaults
PAGE = 50  # members per page


@dataclass(frozen=True)
class SegmentLine:
    """One segment on the overview."""

    name: str
    title: str | None
    description: str | None
    tags: tuple[str, ...]
    paused: bool
    size: int | None  # None: not recorded by any run yet
    entered: int
    exited: int
    sparkline: Markup

    def matches(self, search: str) -> bool:
        text = " ".join([self.name, self.title or "", self.description or "", *self.tags])
        return search.casefold() in text.casefold()


@dataclass(frozen=True)
class Overview:
    segments: list[SegmentLine]
    tags: list[str]
    last_as_of: datetime | None
    period: str


def overview(reading: Reading) -> Overview:
    project, reports = reading.project, reading.reports
    definitions = project.definitions.segments
    names = list(definitions)
    sizes: dict[str, int] = {}
    versions: dict[str, int] = {}
    moves: dict[str, tuple[int, int]] = {}
    figures: dict[str, SegmentFigures] = {}
    period = "no committed run yet"
    last = None
    if reports is not None:
        versions, sizes = reports.versions(), reports.sizes()  # as `segql list`
        if names:
            for name, _, entered, exited, _ in reports.stats(names, DAYS).rows:  # `segql stats`
                moves[name] = (entered, exited)
        period = reports.stats_period(DAYS)
        last = reports.last_as_of()
        data = collect_segment_figures(reading.warehouse, project, DAYS)
        figures = {f.name: f for f in data.segments}
    lines = []
    for name, definition in definitions.items():
        recorded = name in versions
        entered, exited = moves.get(name, (0, 0))
        figure = figures.get(name)  # None: no run recorded it yet
        lines.append(
            SegmentLine(
                name,
                definition.title,
                definition.description,
                tuple(definition.tags),
                definition.paused,
                sizes.get(name, 0) if recorded else None,
                entered,
                exited,
                charts.sparkline(figure or SegmentFigures(name, None, None, in_project=True)),
            )
        )
    tags = sorted({tag for line in lines for tag in line.tags})
    return Overview(lines, tags, last, period)


@dataclass(frozen=True)
class MemberPage:
    rows: Rows
    total: int  # members matching the search
    members: int  # all members
    page: int
    pages: int
    search: str


@dataclass(frozen=True)
class SegmentDetail:
    name: str
    title: str | None
    description: str | None
    tags: tuple[str, ...]
    source: str
    stats: dict[str, Any] | None  # the row of `segql stats NAME`; None before any run
    period: str
    size_chart: Markup | None
    moves_chart: Markup | None
    runs: list[tuple[int, datetime, int, int, int]]  # commit_seq, as_of, size, entered, exited
    members: MemberPage | None
    columns: list[str]
    available_columns: list[str]
    overrides: list[dict[str, Any]] = field(default_factory=list)


def segment_detail(
    reading: Reading, name: str, columns: list[str], search: str, page: int
) -> SegmentDetail:
    project, reports = reading.project, reading.reports
    project.select([name])  # an unknown name is an error, with a suggestion
    definition = project.definitions.segments[name]
    people = list(project.catalog.columns(project.config.entity.table) or ())
    available = [*people, *project.definitions.traits]
    stats = None
    period = "no committed run yet"
    size = moves = None
    runs: list[tuple[int, datetime, int, int, int]] = []
    members = None
    overrides: list[dict[str, Any]] = []
    if reports is not None and reading.has_run:
        found = reports.stats([name], DAYS)
        stats = dict(zip(found.columns, found.rows[0], strict=True))
        period = reports.stats_period(DAYS)
        data = collect_segment_figures(reading.warehouse, project, DAYS)
        figure = next((f for f in data.segments if f.name == name), None)
        if figure is not None and figure.points:
            size, moves = charts.size_chart(figure, data), charts.moves_chart(figure, data)
            runs = [(p.commit_seq, p.as_of, p.size, p.entered, p.exited) for p in figure.points]
        members = member_page(reading, name, columns, search, page)
        listed = Overrides(reading.warehouse, reports.store).list(name)
        overrides = [dict(zip(OVERRIDE_COLUMNS, row, strict=True)) for row in listed]
    return SegmentDetail(
        name,
        definition.title,
        definition.description,
        tuple(definition.tags),
        format_definition(definition),
        stats,
        period,
        size,
        moves,
        runs,
        members,
        columns,
        available,
        overrides,
    )


def member_page(
    reading: Reading, name: str, columns: list[str], search: str, page: int
) -> MemberPage:
    """One page of ``segql members NAME --columns ...``: the rows whose id or one of the
    chosen columns holds ``search`` (ignoring case)."""
    assert reading.reports is not None
    everyone = member_rows(reading.project, reading.warehouse, reading.reports, name, columns, None)
    wanted = search.strip().casefold()
    rows = [
        row
        for row in everyone.rows
        if not wanted
        or any(wanted in str(v).casefold() for v in (row[0], *row[3:]) if v is not None)
    ]
    pages = max(1, -(-len(rows) // PAGE))
    page = min(max(1, page), pages)
    shown = rows[(page - 1) * PAGE : page * PAGE]
    return MemberPage(
        Rows(everyone.columns, shown), len(rows), len(everyone.rows), page, pages, search
    )


def members_csv(reading: Reading, name: str, columns: list[str]) -> str:
    """Exactly what ``segql members NAME --columns ... --format csv`` prints."""
    reading.project.select([name])
    reports = reading.reports or Reports(reading.warehouse, reading.project.config.warehouse.schema)
    rows = member_rows(reading.project, reading.warehouse, reports, name, columns, None)
    return render(rows.columns, rows.rows, "csv") + "\n"


@dataclass(frozen=True)
class PersonDetail:
    person_id: str
    segments: Rows
    history: Rows
    traits: Rows
    segment_names: list[str]
    explain_segment: str | None
    explanation: Explanation | None
    as_of: datetime


def person_detail(reading: Reading, person_id: str, explain: str | None) -> PersonDetail:
    """What ``segql person ID`` prints, and ``segql explain SEG --person ID`` for one
    segment at the last run's as-of."""
    project, reports = reading.project, reading.reports
    empty = Rows((), [])
    segments = history = empty
    if reports is not None:
        segments = person_segments(reading.warehouse, reports.store, person_id)
        history = person_history(reading.warehouse, reports.store, person_id)
    traits = person_traits(project, reading.warehouse, person_id)
    names = project.segment_names
    as_of = last_committed_as_of(project, reading.warehouse)
    chosen = explain if explain in names else (names[0] if names else None)
    if explain is not None and explain not in names:
        project.select([explain])  # the error with a suggestion
    explanation = None
    if chosen is not None:
        explanation = explain_segment(project, reading.warehouse, chosen, as_of, person_id)
    return PersonDetail(person_id, segments, history, traits, names, chosen, explanation, as_of)
