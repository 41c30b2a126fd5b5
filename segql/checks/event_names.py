"""Event names the rules use that the events table never holds: most often a misspelling,
which would make a segment silently empty.

Each is a warning at the name in the rules (line, column, caret) with the closest names
the events table does hold. ``segql check`` and ``segql run`` print them; with
``--strict`` they are errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from segql.compile.sqltext import generate_sql
from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlError, SegqlErrors, Span, render_at
from segql.language import ast
from segql.language.checker import walk
from segql.project import Project


@dataclass(frozen=True)
class UnseenEvent:
    """An event name of the rules with no row in the events table."""

    name: str
    span: Span | None
    closest: tuple[str, ...]

    @property
    def message(self) -> str:
        text = f"event '{self.name}' does not occur in the events table"
        if self.closest:
            text += ": did you mean " + " or ".join(f"'{c}'" for c in self.closest) + "?"
        return text

    def render(self, level: str = "warning") -> str:
        help = None if self.closest else "no event name like it occurs (yet)"
        if self.span is None:
            return f"{level}: {self.message}" + (f"\n  = help: {help}" if help else "")
        return render_at(self.span, self.message, help, level=level)

    def error(self) -> SegqlError:
        return SegqlError(self.message, span=self.span)


def event_spans(project: Project) -> dict[str, Span | None]:
    """Every event name the rules mention, with where it first appears (its name only)."""
    found: dict[str, Span | None] = {}
    definitions = project.definitions
    for definition in [*definitions.segments.values(), *definitions.traits.values()]:
        for node in walk(definition):
            if not isinstance(node, ast.EventSpec) or node.ref is None:
                continue
            if node.ref in project.config.sources or node.ref in found:
                continue
            found[node.ref] = _name_span(node.span, node.ref)
    return found


def _name_span(span: Span | None, name: str) -> Span | None:
    if span is None:
        return None
    at = span.text.find(name)
    if at < 0:
        return span
    return Span(span.source, span.start + at, span.start + at + len(name))


def distinct_event_names(project: Project, warehouse: Warehouse) -> set[str]:
    """The distinct values of the events table's name column."""
    events = project.config.events
    if events is None:
        return set()
    assert events.event_name is not None  # [events] name is always set (event_type)
    column = exp.column(events.event_name, quoted=True)
    query = exp.select(column).distinct().from_(exp.to_table(events.table, quoted=True))
    rows = warehouse.query(generate_sql(query, warehouse.dialect.sqlglot))
    return {str(row[0]) for row in rows if row[0] is not None}


def unseen_events(project: Project, warehouse: Warehouse) -> list[UnseenEvent]:
    """The rules' event names the events table has no row of, in name order."""
    used = event_spans(project)
    if project.config.events is None or not used:
        return []
    present = distinct_event_names(project, warehouse)
    return [
        UnseenEvent(name, used[name], tuple(difflib.get_close_matches(name, present, n=3)))
        for name in sorted(used)
        if name not in present
    ]


def report_unseen(events: list[UnseenEvent], strict: bool, echo: Callable[[str], None]) -> None:
    """Print each as a warning (``echo(text)``); with ``strict``, raise them as errors."""
    if strict and events:
        raise SegqlErrors([event.error() for event in events])
    for event in events:
        echo(event.render())
