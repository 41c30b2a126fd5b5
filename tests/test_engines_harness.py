"""Self-test of the real-engine harness in ``tests/support``.

Loads tables into each engine (DuckDB, pgserver PostgreSQL, fakesnow Snowflake) and checks that
the data round-trips exactly, so a broken loader cannot go unnoticed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from sqlglot import exp

from segql.compile.sqltext import generate_sql
from tests.support.engines import (
    DuckDBEngine,
    Engine,
    PostgresEngine,
    PostgresServerHandle,
    Table,
    quote_ident,
)

TABLE_NAME = "Plan Events"
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("id", "integer"),
    ("Plan Name", "text"),
    ("amount", "double"),
    ("is_active", "boolean"),
    ("occurred_at", "timestamp"),
    ("signup_date", "date"),
    ("properties", "json"),
)
BASE_TS = dt.datetime(2024, 1, 1, 0, 0, 0)
TRICKY_TEXT = "quote \" apostrophe ' backslash \\ tab\t newline\n unicode é🚀 % _ ,|"


def _rows(n: int) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for i in range(n):
        rows.append(
            (
                i,
                ["Free", "Pro", "Enterprise"][i % 3],
                i * 1.25 + 0.1,
                i % 2 == 0,
                BASE_TS + dt.timedelta(hours=i, microseconds=123),
                dt.date(2023, 12, 1) + dt.timedelta(days=i % 40),
                {"amount": i * 10, "tag": f"t{i % 4}", "nested": {"k": i}},
            )
        )
    return rows


def _table(n: int = 30) -> tuple[Table, list[tuple[Any, ...]]]:
    rows = _rows(n)
    rows.append((n, None, None, None, None, None, None))  # all-NULL row (except the key)
    rows.append(
        (
            n + 1,
            TRICKY_TEXT,
            -0.0,
            False,
            dt.datetime(1999, 12, 31, 23, 59, 59),
            dt.date(1970, 1, 1),
            {"amount": None, "text": TRICKY_TEXT, "list": [1, 2.5]},
        )
    )
    return Table(columns=COLUMNS, rows=tuple(rows)), rows


def _decode_json(value: Any) -> Any:
    # Postgres (jsonb via psycopg) returns decoded values; DuckDB and fakesnow return JSON text.
    return json.loads(value) if isinstance(value, str) else value


def _q(name: str) -> str:
    return quote_ident(name)


def _json_text_expr(dialect: str, column: str, key: str) -> str:
    """Dialect-native 'extract a JSON key as text' expression."""
    col = _q(column)
    if dialect in ("duckdb", "postgres"):
        return f"{col} ->> '{key}'"
    return f"JSON_EXTRACT_PATH_TEXT({col}, '{key}')"


def test_round_trip_every_value(engine: Engine) -> None:
    table, rows = _table()
    engine.load({TABLE_NAME: table})
    got = engine.query(f"SELECT * FROM {_q(TABLE_NAME)} ORDER BY {_q('id')}")
    assert len(got) == len(rows)
    for expected, actual in zip(rows, got, strict=True):
        assert len(actual) == len(COLUMNS)
        ident, plan, amount, active, ts, day, props = actual
        assert ident == expected[0] and isinstance(ident, int)
        assert plan == expected[1]
        assert amount == expected[2]
        assert active is expected[3]
        assert ts == expected[4]
        assert ts is None or (isinstance(ts, dt.datetime) and ts.tzinfo is None)
        assert day == expected[5]
        assert day is None or (isinstance(day, dt.date) and not isinstance(day, dt.datetime))
        if expected[6] is None:
            assert props is None  # SQL NULL, not a JSON null
        else:
            assert _decode_json(props) == expected[6]


def test_aggregates_timestamps_and_json(engine: Engine) -> None:
    table, rows = _table()
    engine.load({TABLE_NAME: table})
    t = _q(TABLE_NAME)
    amount_text = _json_text_expr(engine.dialect, "properties", "amount")
    sql = f"""
        SELECT
            COUNT(*),
            COUNT({_q("properties")}),
            SUM({_q("amount")}),
            SUM(CASE WHEN {_q("occurred_at")} >= CAST('2024-01-01 12:00:00' AS TIMESTAMP)
                     THEN 1 ELSE 0 END),
            SUM(CAST({amount_text} AS DOUBLE PRECISION)),
            COUNT(DISTINCT {_q("Plan Name")}),
            SUM(CASE WHEN {_q("is_active")} THEN 1 ELSE 0 END),
            MAX({_q("signup_date")})
        FROM {t}
    """
    if engine.dialect == "snowflake":
        sql = sql.replace("DOUBLE PRECISION", "DOUBLE")
    ((count, n_props, total, n_after_noon, json_total, n_plans, n_active, max_day),) = engine.query(
        sql
    )
    generated = rows[:-2]
    assert count == len(rows)
    assert n_props == len(rows) - 1
    expected_total = sum(r[2] for r in generated) + 0.0
    assert float(total) == pytest.approx(expected_total)
    assert n_after_noon == sum(1 for r in generated if r[4] >= dt.datetime(2024, 1, 1, 12))
    assert float(json_total) == sum(r[6]["amount"] for r in generated)
    assert n_plans == 4  # Free, Pro, Enterprise and the tricky string
    assert n_active == sum(1 for r in generated if r[3])
    assert max_day == max(r[5] for r in generated)


def test_sqlglot_json_extract_scalar(engine: Engine) -> None:
    """The JSON extraction segql gets from sqlglot runs on each engine (Postgres needs jsonb_*)."""
    table, _ = _table(5)
    engine.load({TABLE_NAME: table})
    node = exp.JSONExtractScalar(
        this=exp.column("properties"),
        expression=exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this="tag")]),
    )
    expr = generate_sql(node, engine.dialect)
    if engine.dialect == "postgres":
        # sqlglot renders JSON_EXTRACT_PATH_TEXT, which only exists for json, not jsonb.
        assert expr.startswith("JSON_EXTRACT_PATH_TEXT(")
        expr = "JSONB_EXTRACT_PATH_TEXT" + expr[len("JSON_EXTRACT_PATH_TEXT") :]
    got = engine.query(f"SELECT {expr} FROM {_q(TABLE_NAME)} ORDER BY id")
    assert [r[0] for r in got] == ["t0", "t1", "t2", "t3", "t0", None, None]


def test_reload_replaces_only_given_tables(engine: Engine) -> None:
    other = Table(columns=(("x", "integer"),), rows=((1,), (2,)))
    engine.load({"Other": other, TABLE_NAME: _table(5)[0]})
    replacement = Table(columns=(("Plan Name", "text"),), rows=(("Solo",),))
    engine.load({TABLE_NAME: replacement})
    assert engine.query(f"SELECT * FROM {_q(TABLE_NAME)}") == [("Solo",)]
    assert engine.query(f'SELECT SUM("x") FROM {_q("Other")}')[0][0] == 3


def test_empty_table_and_odd_identifiers(engine: Engine) -> None:
    cols: tuple[tuple[str, Any], ...] = (("select", "integer"), ('we"ird', "text"))
    engine.load({"Empty Table": Table(columns=cols, rows=())})
    assert engine.query('SELECT COUNT(*) FROM "Empty Table"')[0][0] == 0
    engine.load({"Odd": Table(columns=cols, rows=((1, "a"), (2, None)))})
    got = engine.query('SELECT "select", "we""ird" FROM "Odd" ORDER BY "select"')
    assert got == [(1, "a"), (2, None)]


def test_bulk_load_20k_rows(engine: Engine) -> None:
    n = 20_000
    table = Table(columns=COLUMNS, rows=tuple(_rows(n)))
    start = time.perf_counter()
    engine.load({TABLE_NAME: table})
    elapsed = time.perf_counter() - start
    amount_text = _json_text_expr(engine.dialect, "properties", "amount")
    got = engine.query(
        f"SELECT COUNT(*), MIN(id), MAX(id), MAX(occurred_at), "
        f"SUM(CASE WHEN {amount_text} = '199990' THEN 1 ELSE 0 END) FROM {_q(TABLE_NAME)}"
    )
    assert got == [(n, 0, n - 1, BASE_TS + dt.timedelta(hours=n - 1, microseconds=123), 1)]
    assert elapsed < 15, f"loading {n} rows took {elapsed:.1f}s"


def test_number_types_are_numeric(engine: Engine) -> None:
    engine.load({"n": Table(columns=(("v", "integer"),), rows=((1,), (2,)))})
    ((total,),) = engine.query('SELECT SUM("v") FROM "n"')
    assert isinstance(total, (int, float, Decimal))
    assert total == 3


def test_duckdb_timezone_is_utc(duckdb_engine: DuckDBEngine) -> None:
    assert duckdb_engine.query("SELECT current_setting('TimeZone')") == [("UTC",)]


def test_postgres_session_and_schema_isolation(
    postgres_server: PostgresServerHandle, postgres_engine: PostgresEngine
) -> None:
    assert postgres_engine.query("SHOW TimeZone") == [("UTC",)]
    postgres_engine.load({"t": Table(columns=(("v", "integer"),), rows=((1,),))})
    other = PostgresEngine(postgres_server.uri)
    try:
        assert other.schema != postgres_engine.schema
        with pytest.raises(Exception, match="does not exist"):
            other.query('SELECT * FROM "t"')
        other.load({"t": Table(columns=(("v", "integer"),), rows=((2,),))})
        assert other.query('SELECT "v" FROM "t"') == [(2,)]
        assert postgres_engine.query('SELECT "v" FROM "t"') == [(1,)]
    finally:
        other.close()
    with postgres_server.connect() as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
    assert postgres_engine.schema in schemas
    assert other.schema not in schemas  # dropped on close


def test_table_validation() -> None:
    with pytest.raises(ValueError, match="expected 2"):
        Table(columns=(("a", "integer"), ("b", "text")), rows=((1,),))
    with pytest.raises(ValueError, match="unknown type"):
        Table(columns=(("a", "money"),), rows=())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer column"):
        Table(columns=(("a", "integer"),), rows=(("1",),)).normalized_rows()
    aware = dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    table = Table(columns=(("a", "timestamp"),), rows=((aware,),))
    assert table.normalized_rows() == [(dt.datetime(2024, 1, 1, 0, 0),)]
