"""``segql report``: one self-contained HTML page about a project's recorded membership.

The figures are aggregated in the warehouse from segql's own tables (sizes from
``segql_members``, size over time and moves from ``segql_history`` summed per run, the
overlap matrix from a self-join of ``segql_members``, the run log from ``segql_runs``);
only those aggregates reach Python and the page, never a member id. The page draws its
charts as inline SVG with inline CSS and a few lines of inline JavaScript for filtering
and sorting, so it works offline and from a file.

The package: ``queries`` (the figures and the warehouse queries behind them), ``charts``
(the inline SVG), ``formatting`` (numbers and times as the page writes them) and ``page``
(the jinja2 template ``templates/report.html.j2`` with ``static/report.css`` and
``static/report.js`` inlined).
"""

from __future__ import annotations

from segql.downstream.report.page import build_report, render_report, write_report
from segql.downstream.report.queries import (
    OVERLAP_LIMIT,
    RUN_LOG_LIMIT,
    ReportData,
    ReportQueries,
    RunLogRow,
    RunPoint,
    SegmentFigures,
    collect_report,
)

__all__ = [
    "OVERLAP_LIMIT",
    "RUN_LOG_LIMIT",
    "ReportData",
    "ReportQueries",
    "RunLogRow",
    "RunPoint",
    "SegmentFigures",
    "build_report",
    "collect_report",
    "render_report",
    "write_report",
]
