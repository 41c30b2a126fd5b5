"""Golden SQL: the query for each segment of tests/golden/segments.segql, per dialect.

A change to the compiler that changes SQL shows up here as a diff to review. Rewrite the
files with ``pytest tests/test_golden.py --update-golden``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlglot

from segql.compile.dialect import available_dialects
from segql.language.parser import parse
from segql.project import Project
from tests.support.scenario import make_catalog, make_config

GOLDEN = Path(__file__).parent / "golden"
AS_OF = datetime(2026, 3, 15, 12, 0, 0)
DIALECTS = sorted(available_dialects())


def golden_project() -> Project:
    source = GOLDEN / "segments.segql"
    return Project(make_config(), [parse(source.read_text(), str(source))], make_catalog())


PROJECT = golden_project()
CASES = [(d, s) for d in DIALECTS for s in [*PROJECT.segment_names, "_all"]]


def header(dialect: str, segment: str) -> str:
    what = "every segment in one query" if segment == "_all" else f"segment {segment}"
    return (
        f"-- Golden SQL: {what} of tests/golden/segments.segql, dialect {dialect},\n"
        f"-- as of {AS_OF:%Y-%m-%d %H:%M:%S}. "
        "Rewrite: pytest tests/test_golden.py --update-golden\n"
    )


@pytest.mark.parametrize(("dialect", "segment"), CASES)
def test_golden_sql(dialect: str, segment: str, update_golden: bool) -> None:
    segments = None if segment == "_all" else [segment]
    sql = PROJECT.compile(dialect=dialect, as_of=AS_OF, segments=segments)
    text = header(dialect, segment) + sql + ";\n"
    path = GOLDEN / dialect / f"{segment}.sql"
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run pytest --update-golden"
    assert text == path.read_text()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sql_parses_back_in_its_dialect(dialect: str) -> None:
    """Every query is one statement that sqlglot reads back as its own dialect."""
    sql = PROJECT.compile(dialect=dialect, as_of=AS_OF)
    statements = sqlglot.parse(sql, read=dialect)
    assert len(statements) == 1
    assert isinstance(statements[0], sqlglot.exp.Query)


def test_each_source_table_is_read_once() -> None:
    """However many segments use a table, the fused query names it in one place."""
    sql = PROJECT.compile(dialect="duckdb", as_of=AS_OF)
    tree = sqlglot.parse_one(sql, read="duckdb")
    cte_names = {cte.alias for cte in tree.find_all(sqlglot.exp.CTE)}
    assert all(name.startswith("segql_") for name in cte_names)
    base_tables = [t.name for t in tree.find_all(sqlglot.exp.Table) if t.name not in cte_names]
    # and segql's history (with its runs, for which are committed), for `member of` & co.
    assert sorted(base_tables) == [
        "events", "people", "segql_history", "segql_runs", "subscriptions"
    ]  # fmt: skip


def test_without_as_of_the_time_is_a_bind_parameter() -> None:
    markers = (("duckdb", "$as_of"), ("postgres", "%(as_of)s"), ("snowflake", ":as_of"))
    for dialect, marker in markers:
        sql = PROJECT.compile(dialect=dialect, segments=["power_users"])
        assert marker in sql
        assert "2026" not in sql
