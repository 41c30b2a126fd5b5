"""SQL text is written with sqlglot's unsupported-translation level raised to an error."""

from __future__ import annotations

import pytest
from sqlglot import exp

from segql.compile.sqltext import generate_sql
from segql.errors import SegqlError


def _count_window_nulls_last() -> exp.Select:
    value = exp.column("v", quoted=True)
    ordered = exp.Order(expressions=[exp.Ordered(this=value.copy(), nulls_first=False)])
    window = exp.Window(this=exp.Count(this=value.copy()), order=ordered)
    return exp.select(window).from_("t")


def test_a_clause_the_dialect_cannot_express_is_an_error_not_dropped() -> None:
    # BigQuery has no NULLS LAST in an aggregate's window: sqlglot's default wrote the
    # query without it (a warning in the log), which orders nulls first there.
    with pytest.raises(SegqlError, match="bigquery dialect cannot express"):
        generate_sql(_count_window_nulls_last(), "bigquery")


def test_the_same_query_is_written_where_the_dialect_can_say_it() -> None:
    assert "NULLS LAST" in generate_sql(_count_window_nulls_last(), "spark")
    assert "NULLS LAST" not in generate_sql(_count_window_nulls_last(), "duckdb")  # default
