"""Rows as programs read them: CSV a spreadsheet opens without running formulas."""

from __future__ import annotations

import csv
import io

from segql.output import FORMATS, escape_csv_formula, render


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_cells_that_would_be_formulas_are_quoted() -> None:
    """``--format csv`` prefixes ``'`` to text a spreadsheet would evaluate (OWASP's rule)."""
    hostile = ['=HYPERLINK("http://x")', "+1+cmd", "-2+3", "@SUM(A1)", "\tx"]
    rows = [(value, 1) for value in hostile]
    cells = read_csv(render(["person_id", "n"], rows, "csv"))
    assert [row[0] for row in cells[1:]] == ["'" + value for value in hostile]


def test_csv_keeps_numbers_and_plain_text() -> None:
    """Numbers, negative ones too, stay numbers; other text is as it was."""
    rows = [(-5, "-5", "-1.5e3", "a=b", "plain", None, 2.5)]
    cells = read_csv(render(list("abcdefg"), rows, "csv"))
    assert cells[1] == ["-5", "-5", "-1.5e3", "a=b", "plain", "", "2.5"]


def test_csv_raw_writes_text_as_it_is() -> None:
    """``--format csv-raw`` is for programs that want the ids exactly."""
    assert "csv-raw" in FORMATS
    cells = read_csv(render(["person_id"], [("=1+2",)], "csv-raw"))
    assert cells[1] == ["=1+2"]


def test_escaping_function_is_shared() -> None:
    """The one function every CSV writer calls (file actions too)."""
    assert escape_csv_formula("@x") == "'@x"
    assert escape_csv_formula("\rx") == "'\rx"
    assert escape_csv_formula("x@") == "x@"
    assert escape_csv_formula("") == ""
