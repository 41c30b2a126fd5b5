"""The one error hierarchy of segql, and how an error with a location is shown.

Every error a user can cause is a ``SegqlError``. Errors that come from rule text carry a
``Span`` and render as ``file:line:col: error: message`` followed by the source line and a
caret under the offending text, so that a person can see at once what to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """One text that rules were read from: a file, or a string given on the command line."""

    path: str
    text: str

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        line = self.text.count("\n", 0, offset) + 1
        start = self.text.rfind("\n", 0, offset) + 1
        return line, offset - start + 1

    def line_text(self, line: int) -> str:
        return self.text.split("\n")[line - 1] if self.text else ""


@dataclass(frozen=True)
class Span:
    """Where a piece of rule text stands: character offsets ``[start, end)`` in a source."""

    source: Source = field(compare=False, repr=False)
    start: int
    end: int

    @property
    def line(self) -> int:
        return self.source.line_col(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.line_col(self.start)[1]

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of ``other``."""
        return Span(self.source, self.start, max(self.end, other.end))

    def __str__(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"


class SegqlError(Exception):
    """Base of every error segql reports to a user."""

    def __init__(self, message: str, span: Span | None = None, help: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.help = help

    def render(self) -> str:
        """The error as shown to a person: location, message, source line, caret, help."""
        if self.span is None:
            text = f"error: {self.message}"
            return text + (f"\n  = help: {self.help}" if self.help else "")
        return render_at(self.span, self.message, self.help)

    def __str__(self) -> str:
        return self.render()


class SegqlSyntaxError(SegqlError):
    """The rule text does not follow the grammar."""


class SegqlNameError(SegqlError):
    """A name in the rules does not exist: property, trait, segment, source, function."""


class SegqlTypeError(SegqlError):
    """Values of the wrong kind meet: a string compared with a number, a window on a number."""


class SegqlDefinitionError(SegqlError):
    """Definitions clash: duplicate names, reference cycles."""


class SegqlConfigError(SegqlError):
    """segql.toml is missing, malformed, or names something that is not there."""


class SegqlWarehouseError(SegqlError):
    """The warehouse could not be reached or refused a statement."""


class SegqlErrors(SegqlError):
    """Several errors found in one pass, reported together."""

    def __init__(self, errors: Iterable[SegqlError]):
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, first.span, first.help)

    def render(self) -> str:
        parts = [error.render() for error in self.errors]
        if len(parts) > 1:
            parts.append(f"{len(parts)} errors")
        return "\n\n".join(parts)


def render_at(span: Span, message: str, help: str | None = None, level: str = "error") -> str:
    """Render a message with its location, the source line and a caret under the span;
    ``level`` is ``error`` or ``warning``."""
    line, column = span.line, span.column
    source_line = span.source.line_text(line)
    line_end = len(source_line) - (column - 1)
    width = max(1, min(span.end - span.start, line_end))
    gutter = " " * len(str(line))
    lines = [
        f"{span}: {level}: {message}",
        f"{gutter} |",
        f"{line} | {source_line}",
        f"{gutter} | {' ' * (column - 1)}{'^' * width}",
    ]
    if help:
        lines.append(f"{gutter} = help: {help}")
    return "\n".join(lines)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, if one is close enough to suggest."""
    pool = list(dict.fromkeys(candidates))
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        matches = [lowered[m] for m in matches]
    return matches[0] if matches else None


def unknown_name_message(kind: str, name: str, candidates: Iterable[str]) -> str:
    """``unknown property 'staus': did you mean 'status'?`` (the suggestion only when close)."""
    suggestion = did_you_mean(name, candidates)
    message = f"unknown {kind} '{name}'"
    return f"{message}: did you mean '{suggestion}'?" if suggestion else message
