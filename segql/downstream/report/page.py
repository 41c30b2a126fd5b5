"""The report page: figures rendered through a jinja2 template with autoescaping.

The template, its CSS and its JavaScript are files of this package; the CSS and the script
are inlined, so the page is one self-contained file that works offline.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from segql.downstream.report import charts, formatting
from segql.downstream.report.queries import ReportData, collect_report
from segql.engines import EngineAdapter as Warehouse
from segql.project import Project
from segql.timeutil import utc_now

_TEMPLATE = "report.html.j2"


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("segql.downstream.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=formatting.escape,
    )
    environment.filters.update(
        when=formatting.when,
        thousands=formatting.thousands,
        signed=formatting.signed,
        growth_text=formatting.growth_text,
        growth_attribute=formatting.growth_attribute,
        duration=formatting.duration,
        shorten=formatting.shorten,
    )
    return environment


def _static(name: str) -> Markup:
    """A CSS or script file of the package, trusted as it is (it holds no data)."""
    static = resources.files("segql.downstream.report").joinpath("static")
    return Markup(static.joinpath(name).read_text("utf-8"))


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
    failed = data.run_counts.get("failed", 0)
    if data.last_as_of is None:
        period = "no committed run yet"
    else:
        period = (
            f"last {data.days} days: {formatting.when(data.since)} to "
            f"{formatting.when(data.last_as_of)} (the as-of of the last committed run)"
        )
    kpis = [
        ("segments", formatting.thousands(len(segments)), "segments"),
        ("memberships", formatting.thousands(sum(f.size for f in segments)), "memberships now"),
        ("entered", formatting.signed(sum(f.entered for f in segments), "+"), "entered in period"),
        ("exited", formatting.signed(sum(f.exited for f in segments), "-"), "exited in period"),
        (
            "runs",
            formatting.thousands(data.committed_runs),
            "committed runs" + (f", {failed:,} failed" if failed else ""),
        ),
    ]
    template = _environment().get_template(_TEMPLATE)
    return (
        template.render(
            data=data,
            period=period,
            kpis=kpis,
            generated_at=generated_at,
            with_members=sum(1 for f in segments if f.size > 0),
            runs_total=sum(data.run_counts.values()),
            charts=charts,
            css=_static("report.css"),
            js=_static("report.js"),
        )
        + "\n"
    )
