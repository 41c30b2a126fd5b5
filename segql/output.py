"""Rows as people read them (an aligned table) or as programs read them (CSV, JSON)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

Format = Literal["table", "csv", "csv-raw", "json"]
FORMATS = ("table", "csv", "csv-raw", "json")

# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: Format) -> str:
    """Rows under the given column names, in one of the three formats."""
    if fmt == "json":
        records = [dict(zip(columns, (_plain(v) for v in row), strict=True)) for row in rows]
        return json.dumps(records, indent=2, ensure_ascii=False)
    if fmt in ("csv", "csv-raw"):
        cell = escape_csv_formula if fmt == "csv" else str
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([cell(c) for c in columns])
        writer.writerows([[_csv_cell(v, cell) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    return table(columns, rows)


def escape_csv_formula(text: str) -> str:
    """``text`` made safe for a spreadsheet: a leading ``'`` where it would start a formula.

    The OWASP rule for CSV injection: a cell starting with ``=``, ``+``, ``-``, ``@``, a
    tab or a carriage return is prefixed with a single quote, which spreadsheets show as
    text and do not evaluate. A plain number (``-5``, ``+1.5e3``) is left as it is: no
    spreadsheet runs it, and quoting it would turn a number into text. Shared by every
    CSV segql writes (``--format csv``, file actions)."""
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_cell(value: Any, cell: Callable[[str], str]) -> str:
    # Numbers are written as they are: only text can carry a formula.
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return _text(value)
    return cell(_text(value))


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned text table; numbers align right."""
    return table_chunk(columns, rows, None, header=True)[1]


def table_chunk(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    widths: list[int] | None,
    header: bool,
) -> tuple[list[int], str]:
    """Rows as aligned text, each column at least as wide as ``widths`` (the chunks
    printed before it, when a table is streamed); the widths it used, and the text."""
    cells = [[_text(v) for v in row] for row in rows]
    grown = list(widths) if widths is not None else [len(c) for c in columns]
    for row in cells:
        grown = [max(w, len(c)) for w, c in zip(grown, row, strict=True)]
    numeric = [
        all(isinstance(row[i], (int, float, Decimal)) for row in rows if row[i] is not None)
        and any(row[i] is not None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, grown, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in grown)] if header else []
    return grown, "\n".join(out + [line(row) for row in cells])


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e15 else str(value)
    plain = _plain(value)
    return str(plain)


def cell_text(value: Any) -> str:
    """One value as the aligned table writes it (``segql ui`` shows values so)."""
    return _text(value)
