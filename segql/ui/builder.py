"""The builder of ``segql ui``: a condition checked as it is typed, counted, explained and
sampled, then saved as a new segment file.

The check is ``segql preview``'s (the same parser and checker, so the same errors with
line, column, caret and suggestion), at the same time (the last committed run's as-of);
the funnel is ``segql explain``'s for the condition; the sample's columns are read as
``segql members --columns`` reads them. Saving writes the segment in the canonical form of
``segql fmt``, checked with the rest of the project first; an existing name or file is
never overwritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from segql.checks.event_names import UnseenEvent, unseen_events
from segql.errors import SegqlError, SegqlErrors, Span
from segql.language import ast
from segql.language.parser import parse, parse_condition
from segql.language.printer import format_condition, format_definition, format_source
from segql.project import Project
from segql.reading.explain import Clause, explain_condition
from segql.reading.members import check_columns, column_values
from segql.reading.preview import PREVIEW, last_committed_as_of, preview_condition
from segql.ui.workspace import Reading

SAMPLE = 10  # as `segql preview` shows by default
_FILE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SUGGESTION = re.compile(r"did you mean '([^']+)'")


@dataclass(frozen=True)
class Problem:
    """One error (or warning) as the command line shows it, and where it is."""

    text: str  # rendered exactly as the CLI prints it: location, line, caret, help
    message: str
    line: int | None = None
    column: int | None = None
    start: int | None = None  # offsets in the condition as the page's JavaScript counts them
    end: int | None = None  # (UTF-16 code units, so text after an emoji still lines up)
    suggestion: str | None = None

    @classmethod
    def of(cls, error: SegqlError | UnseenEvent, level: str = "error") -> Problem:
        span: Span | None = error.span
        text = error.render() if isinstance(error, SegqlError) else error.render(level)
        found = _SUGGESTION.search(error.message)
        suggestion = found.group(1) if found else None
        if span is None:
            return cls(text, error.message, suggestion=suggestion)
        start, end = (_utf16_offset(span.source.text, at) for at in (span.start, span.end))
        return cls(text, error.message, span.line, span.column, start, end, suggestion)


def _utf16_offset(text: str, index: int) -> int:
    """A Python (code point) index into ``text`` as a JavaScript string index."""
    return len(text[:index].encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Check:
    condition: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    canonical: str | None = None
    as_of: datetime | None = None
    count: int | None = None
    clauses: list[Clause] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    sample: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.count is not None


def problems(error: SegqlError) -> list[Problem]:
    """Each error of ``error`` (one, or the several a check found together)."""
    errors = error.errors if isinstance(error, SegqlErrors) else [error]
    return [Problem.of(e) for e in errors]


def check_condition(reading: Reading, condition: str, columns: list[str]) -> Check:
    """What ``segql preview CONDITION`` and ``segql explain`` say about the condition."""
    if not condition.strip():
        return Check(condition)
    project, warehouse = reading.project, reading.warehouse
    try:
        parsed = parse_condition(condition, "<condition>")
        as_of = last_committed_as_of(project, warehouse)
        count, ids = preview_condition(project, warehouse, condition, as_of, SAMPLE)
    except SegqlError as error:
        return Check(condition, errors=problems(error))
    warnings = [Problem.of(u, "warning") for u in _unseen_in_condition(project, reading, parsed)]
    explanation = explain_condition(project, warehouse, parsed, as_of)
    try:
        check_columns(project, warehouse, columns)
    except SegqlError as error:
        warnings.append(Problem.of(error))
        columns = []
    values = column_values(project, warehouse, columns, as_of, [str(i) for i in ids])
    sample = [(i, *values.get(str(i), (i, *[None] * len(columns)))[1:]) for i in ids]
    return Check(
        condition,
        warnings=warnings,
        canonical=format_condition(parsed),
        as_of=as_of,
        count=count,
        clauses=explanation.clauses,
        columns=columns,
        sample=sample,
    )


def _unseen_in_condition(
    project: Project, reading: Reading, condition: ast.Condition
) -> list[UnseenEvent]:
    """Event names of the condition that the events table never holds (``segql check``'s
    warning), with the closest names it does hold."""
    trial = Project(project.config, [ast.Module((ast.Segment(PREVIEW, where=condition),))])
    trial.catalog = project.catalog
    return unseen_events(trial, reading.warehouse)


@dataclass(frozen=True)
class Saved:
    name: str
    path: Path
    text: str


def save_segment(
    project: Project,
    reading: Reading,
    name: str,
    condition: str,
    title: str = "",
    description: str = "",
    tags: str = "",
) -> Saved:
    """Write ``segments/NAME.segql`` holding the segment in canonical form; refuse a name
    the project already has, a file that exists and a project that would not check."""
    name = name.strip()
    if not _FILE_NAME.match(name):
        raise SegqlError(
            f"'{name}' cannot name a new segment here",
            help="use letters, digits and _ (not first a digit); it is also the file's name",
        )
    if name in project.definitions.segments or name in project.definitions.traits:
        raise SegqlError(f"the project already has a definition named '{name}'",
                         help="choose another name")  # fmt: skip
    folder = project.config.root / project.config.segments_dir
    path = folder / f"{name}.segql"
    if path.exists():
        raise SegqlError(f"{path} already exists", help="choose another name")
    segment = ast.Segment(
        name,
        where=parse_condition(condition, "<condition>"),
        title=title.strip() or None,
        description=description.strip() or None,
        tags=tuple(dict.fromkeys(t.strip() for t in tags.split(",") if t.strip())),
    )
    display = str(path.relative_to(project.config.root))
    text = format_source(format_definition(segment) + "\n", display)
    trial = Project(project.config, [*project.modules, parse(text, display)])
    trial.read_catalog(reading.warehouse)
    trial.check()
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".segql-tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)  # never half a file
    return Saved(name, path, text)
