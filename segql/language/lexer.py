"""Turns segql text into tokens.

Keywords are not decided here: a word is an ``IDENT`` and the parser compares its lowercase
form, unless it was written in backticks, in which case it is always a name. Comments run
from ``#`` or ``--`` to the end of the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from segql.errors import SegqlSyntaxError, Source, Span

TokenKind = Literal["IDENT", "NUMBER", "STRING", "DQSTRING", "DURATION", "OP", "EOF"]

# Compact duration suffixes, longest first so that "min" wins over "m..." prefixes.
COMPACT_UNITS = {
    "min": "minute",
    "mo": "month",
    "h": "hour",
    "d": "day",
    "w": "week",
    "y": "year",
}
WORD_UNITS = {
    "minute": "minute",
    "minutes": "minute",
    "min": "minute",
    "mins": "minute",
    "hour": "hour",
    "hours": "hour",
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
}

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_COMPACT = re.compile(r"([0-9]+)(min|mo|h|d|w|y)(?![A-Za-z0-9_])")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names and numbers are ASCII; other text is written in backticks or quotes.
_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OPERATORS = ("<=", ">=", "!=", "<>", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",", ".")


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    value: str
    span: Span
    quoted: bool = False  # an IDENT written in backticks: never a keyword

    def is_word(self, *words: str) -> bool:
        """True when this token is one of the given keywords (case-insensitive, unquoted)."""
        return self.kind == "IDENT" and not self.quoted and self.value.lower() in words

    def describe(self) -> str:
        """How the token is named in an error message."""
        if self.kind == "EOF":
            return "end of input"
        if self.kind == "STRING":
            return f"string '{self.value}'"
        if self.kind == "DQSTRING":
            return f'string "{self.value}"'
        return f"'{self.span.text}'"


def tokenize(source: Source, comments: list[Span] | None = None) -> list[Token]:
    """Split a source into tokens, ending with one ``EOF`` token.

    Comments are skipped; when a list is given, their spans are appended to it.
    """
    text = source.text
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n\f\v":
            i += 1
        elif c == "#" or text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            if comments is not None:
                comments.append(Span(source, i, end))
            i = end
        elif c == "'":
            value, end = _read_quoted(source, i, "'")
            tokens.append(Token("STRING", value, Span(source, i, end)))
            i = end
        elif c == '"':
            value, end = _read_double_quoted(source, i)
            tokens.append(Token("DQSTRING", value, Span(source, i, end)))
            i = end
        elif c == "`":
            value, end = _read_quoted(source, i, "`")
            if not value:
                raise SegqlSyntaxError("empty name in backticks", Span(source, i, end))
            tokens.append(Token("IDENT", value, Span(source, i, end), quoted=True))
            i = end
        elif c in _DIGITS:
            compact = _COMPACT.match(text, i)
            if compact:
                value = compact.group(1) + " " + COMPACT_UNITS[compact.group(2)]
                tokens.append(Token("DURATION", value, Span(source, i, compact.end())))
                i = compact.end()
                continue
            number = _NUMBER.match(text, i)
            assert number is not None
            end = number.end()
            if end < n and (text[end] in _LETTERS or text[end] == "_"):
                word = _WORD.match(text, end)
                assert word is not None
                raise SegqlSyntaxError(
                    f"unexpected '{text[i : word.end()]}'",
                    Span(source, i, word.end()),
                    help="a number is followed by a space; compact durations are "
                    "30d, 24h, 2w, 6mo, 1y, 15min",
                )
            tokens.append(Token("NUMBER", number.group(), Span(source, i, end)))
            i = end
        elif c in _LETTERS or c == "_":
            word = _WORD.match(text, i)
            assert word is not None
            tokens.append(Token("IDENT", word.group(), Span(source, i, word.end())))
            i = word.end()
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token("OP", op, Span(source, i, i + len(op))))
                    i += len(op)
                    break
            else:
                raise SegqlSyntaxError(f"unexpected character {c!r}", Span(source, i, i + 1))
    tokens.append(Token("EOF", "", Span(source, n, n)))
    return tokens


def _read_quoted(source: Source, start: int, quote: str) -> tuple[str, int]:
    """Read a string or name where the quote character is escaped by doubling it."""
    text = source.text
    parts: list[str] = []
    i = start + 1
    while True:
        end = text.find(quote, i)
        if end < 0:
            what = "string" if quote == "'" else "name"
            raise SegqlSyntaxError(
                f"unterminated {what}: expected a closing {quote}",
                Span(source, start, len(text)),
            )
        parts.append(text[i:end])
        if text.startswith(quote * 2, end):
            parts.append(quote)
            i = end + 2
        else:
            return "".join(parts), end + 1


def _read_double_quoted(source: Source, start: int) -> tuple[str, int]:
    """Read a double-quoted title or description; ``\\"`` and ``\\\\`` are escapes."""
    text = source.text
    parts: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            parts.append(text[i + 1])
            i += 2
        elif c == '"':
            return "".join(parts), i + 1
        else:
            parts.append(c)
            i += 1
    raise SegqlSyntaxError(
        'unterminated string: expected a closing "', Span(source, start, len(text))
    )
