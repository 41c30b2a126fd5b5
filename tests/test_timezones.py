"""The same members in every session time zone, on every engine, for naive and zoned times.

The SQL that ``segql compile`` prints is run as it is (not through ``segql run``, which
sets its session to UTC) on DuckDB, PostgreSQL, Snowflake (fakesnow) and Spark, with the
time columns naive (``TIMESTAMP``, ``TIMESTAMP_NTZ``) and holding instants
(``TIMESTAMPTZ``, ``TIMESTAMP_LTZ``/``_TZ``, Spark's ``TIMESTAMP``), each under three session
time zones, and compared with the reference evaluator. The project's timezone is
America/New_York, whose clocks moved on 2026-03-08, inside every window below. The
catalog each query is compiled against is read from the engine, as segql reads it.

fakesnow runs Snowflake SQL on DuckDB: it has no ``ALTER SESSION SET TIMEZONE`` (the
session zone is set on its DuckDB connection instead), and it stores ``TIMESTAMP_LTZ`` as
``TIMESTAMP_TZ`` (its catalog reports both as ``TIMESTAMP_TZ``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from segql import project_from_text
from segql.language.catalog import Catalog
from segql.project import Project
from tests.support.engines import (
    DuckDBEngine,
    Engine,
    PostgresEngine,
    PostgresServerHandle,
    SnowflakeEngine,
    Table,
)
from tests.support.scenario import SCHEMA, make_config, make_tables, run_reference

T = datetime(2026, 3, 15, 12, 0, 0)
SESSION_ZONES = ("UTC", "America/Los_Angeles", "Asia/Tokyo")
PROJECT_ZONE = "America/New_York"  # clocks forward at 2026-03-08 02:00 local (07:00 UTC)
TIME_COLUMNS = {"people": "signup_at", "events": "occurred_at", "subscriptions": "created_at"}

RULES = """
segment recent where did login within 30 days
segment between_rel where count(login between 20 days ago and 10 days ago) >= 1
segment since_literal where did login since '2026-03-08'
segment before_literal where did login before '2026-02-20 12:00:00'
segment signup_recent where signup_at within 30 days
segment signup_after where signup_at after '2026-03-01'
segment signup_compare where signup_at >= '2026-02-25 06:00:00'
segment idle where days_since(last_time(login)) >= 3
segment fresh where hours_since(signup_at) < 300
segment days where active_days(login within 14 days) >= 3
segment long_days where active_days(login within 90 days) >= 4
segment weeks where active_weeks(login within 4 weeks) >= 3
segment months where active_months(login within 3 months) >= 2
segment funnel where did login then purchase within 1 day
segment signed_then where did login since person.signup_at
segment subscribed where did subscriptions within 30 days
segment today_s where did login today
segment yesterday_s where did login yesterday
segment previous_week where did login in previous week
segment this_week where count(login in this week) >= 2
segment signup_previous where signup_at in previous 2 weeks
segment signup_this_week where signup_at in this week
segment day_streak where streak(login, day) >= 2
segment week_streak where streak(login, week) >= 2
segment last_two where count(login where hours_since(person.signup_at) < 200 among last 2) >= 1
segment funnel_3 where did login then purchase within 1 day then login within 1 day
"""

# Points where a session zone's offset (-7/-8 h, +9 h) or a local midnight in New York
# moves a row across the edge: T itself, the windows' edges, the literals (New York wall
# clock), and the local midnights around the change of the clocks.
_EDGES = [
    T,
    T - timedelta(days=30),
    T - timedelta(days=20),
    T - timedelta(days=10),
    T - timedelta(days=14),
    datetime(2026, 3, 8, 5, 0),  # '2026-03-08' in New York (still EST at midnight)
    datetime(2026, 2, 20, 17, 0),  # '2026-02-20 12:00:00' in New York
    datetime(2026, 3, 1, 5, 0),
    datetime(2026, 2, 25, 11, 0),
    *(datetime(2026, 3, day, 5 if day <= 8 else 4) for day in (6, 7, 8, 9, 10)),
    datetime(2026, 2, 16, 5, 0),  # a Monday midnight in New York
    datetime(2026, 3, 1, 5, 0) - timedelta(days=28),
]
# Local midnights of the last days before T (today, yesterday: streaks and periods); rows
# near them are drawn after the others, from a generator of their own.
_RECENT_EDGES = [datetime(2026, 3, day, 4, 0) for day in (12, 13, 14, 15)]


def _tables(seed: int = 15) -> dict[str, Table]:
    """People with rows a few hours either side of the edges (never after T)."""
    rng = random.Random(seed)
    people, events, subscriptions = [], [], []

    def near() -> datetime:
        moment = rng.choice(_EDGES) + timedelta(minutes=rng.randint(-13 * 60, 13 * 60))
        return min(moment, T)

    for person_id in range(1, 121):
        people.append(_row("people", person_id=person_id, signup_at=near()))
        for _ in range(rng.randint(1, 5)):
            login = near()
            events.append(
                _row("events", person_id=person_id, event_type="login", occurred_at=login)
            )
            if rng.random() < 0.3:
                later = min(login + timedelta(hours=rng.randint(1, 30)), T)
                events.append(
                    _row("events", person_id=person_id, event_type="purchase", occurred_at=later)
                )
        if rng.random() < 0.5:
            subscriptions.append(_row("subscriptions", person_id=person_id, created_at=near()))
    recent = random.Random(seed + 1)
    for person_id in range(1, 121):
        for _ in range(recent.randint(0, 3)):
            moment = recent.choice(_RECENT_EDGES) + timedelta(minutes=recent.randint(-600, 600))
            login = {"event_type": "login", "occurred_at": min(moment, T)}
            events.append(_row("events", person_id=person_id, **login))
    return make_tables(people=people, events=events, subscriptions=subscriptions)


def _row(table: str, **values: Any) -> tuple[Any, ...]:
    return tuple(values.get(name) for name, _ in SCHEMA[table])


TABLES = _tables()


# --- engines, their time types and session zones -----------------------------------------


class _Zoned:
    """One engine with the time columns of a given type, and a way to set the session zone."""

    def __init__(self, engine: Engine, zoned: str | None, tables: tuple[str, ...] = ()):
        self.engine = engine
        self.zoned = zoned  # the time type holding instants, or None: naive columns
        self.tables = tables or tuple(TIME_COLUMNS)  # the tables whose time column it is

    @property
    def dialect(self) -> str:
        return self.engine.dialect

    def load(self) -> None:
        self.engine.load(TABLES)  # naive UTC, under a UTC session
        if self.zoned is not None:
            for table in self.tables:
                self.retype(table, TIME_COLUMNS[table])

    def retype(self, table: str, column: str) -> None:
        using = f"\"{column}\" AT TIME ZONE 'UTC'"
        self.engine.query(
            f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {self.zoned} USING {using}'
        )

    def set_zone(self, zone: str) -> None:
        raise NotImplementedError

    def catalog(self) -> Catalog:
        raise NotImplementedError


class _DuckDB(_Zoned):
    def set_zone(self, zone: str) -> None:
        self.engine.query(f"SET TimeZone = '{zone}'")

    def catalog(self) -> Catalog:
        return _catalog(
            self.engine.query(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
            ),
            self.dialect,
        )


class _Postgres(_Zoned):
    def set_zone(self, zone: str) -> None:
        self.engine.query(f"SET TIME ZONE '{zone}'")

    def catalog(self) -> Catalog:
        rows = self.engine.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
        return _catalog(rows, self.dialect)


class _Snowflake(_Zoned):
    def retype(self, table: str, column: str) -> None:
        names = [name for name, _ in SCHEMA[table]]
        columns = ", ".join(
            f'CAST("{n}" AS {self.zoned}) AS "{n}"' if n == column else f'"{n}"' for n in names
        )
        self.engine.query(f'CREATE OR REPLACE TABLE "{table}" AS SELECT {columns} FROM "{table}"')

    def set_zone(self, zone: str) -> None:
        # fakesnow has no ALTER SESSION SET TIMEZONE: the zone of the DuckDB beneath it
        self.engine._conn._duck_conn.execute(f"SET TimeZone = '{zone}'")  # type: ignore[attr-defined]

    def catalog(self) -> Catalog:
        return _catalog(
            self.engine.query(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
            ),
            self.dialect,
        )


class _Spark(_Zoned):
    def load(self) -> None:
        from pyspark.sql import types

        from tests.support.spark import _spark_type

        session = self.engine.session  # type: ignore[attr-defined]
        for name, table in TABLES.items():
            fields = []
            for column, ctype in table.columns:
                kind = _spark_type(ctype)
                if ctype == "timestamp" and self.zoned is None:
                    kind = types.TimestampNTZType()
                fields.append(types.StructField(column, kind, nullable=True))
            rows = [
                tuple(self.value(v, c) for v, (_, c) in zip(row, table.columns, strict=True))
                for row in table.normalized_rows()
            ]
            frame = session.createDataFrame(rows, schema=types.StructType(fields))
            frame.createOrReplaceTempView(name)
            self.engine.views.add(name)  # type: ignore[attr-defined]

    def value(self, value: Any, ctype: str) -> Any:
        from datetime import timezone

        if value is not None and ctype == "timestamp" and self.zoned is not None:
            return value.replace(tzinfo=timezone.utc)  # an instant, whatever the process zone
        return value

    def set_zone(self, zone: str) -> None:
        self.engine.session.conf.set("spark.sql.session.timeZone", zone)  # type: ignore[attr-defined]

    def catalog(self) -> Catalog:
        found = []
        for table in TABLES:
            for column, data_type, *_ in self.engine.query(f"DESCRIBE `{table}`"):
                found.append((table, column, data_type))
        return _catalog(found, self.dialect)


def _catalog(rows: list[tuple[Any, ...]], dialect: str) -> Catalog:
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        if table in TABLES:
            tables.setdefault(table, []).append((column, data_type))
    return Catalog.from_columns(tables, dialect=dialect)


# (engine, the type of zoned time columns, the tables that have one: all when empty)
CASES: list[tuple[str, str | None, tuple[str, ...]]] = [
    ("duckdb", None, ()),
    ("duckdb", "TIMESTAMPTZ", ()),
    ("duckdb", "TIMESTAMPTZ", ("events",)),  # zoned events, naive people: mixed compares
    ("postgres", None, ()),
    ("postgres", "TIMESTAMPTZ", ()),
    ("postgres", "TIMESTAMPTZ", ("events",)),
    ("snowflake", None, ()),
    ("snowflake", "TIMESTAMP_LTZ", ()),
    ("snowflake", "TIMESTAMP_TZ", ()),
    ("snowflake", "TIMESTAMP_TZ", ("events",)),
    ("spark", None, ()),
    ("spark", "TIMESTAMP", ()),
]


@pytest.fixture(
    params=CASES, ids=[f"{e}-{z or 'naive'}{'-' + '-'.join(t) if t else ''}" for e, z, t in CASES]
)
def zoned(request: pytest.FixtureRequest) -> Iterator[_Zoned]:
    name, zoned_type, tables = request.param
    engine: Any
    if name == "duckdb":
        engine, wrapper = DuckDBEngine(), _DuckDB
    elif name == "postgres":
        server: PostgresServerHandle = request.getfixturevalue("postgres_server")
        engine, wrapper = PostgresEngine(server.uri), _Postgres
    elif name == "snowflake":
        engine, wrapper = SnowflakeEngine(), _Snowflake
    else:
        pytest.importorskip("pyspark")
        from tests.support.spark import SparkEngine

        engine, wrapper = SparkEngine(), _Spark
    case = wrapper(engine, zoned_type, tables)
    try:
        case.load()
        yield case
    finally:
        case.set_zone("UTC")
        engine.close()


def _project(catalog: Catalog) -> Project:
    return project_from_text(make_config(PROJECT_ZONE), RULES, catalog)


def _members(case: _Zoned, sql: str, project: Project) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {name: set() for name in project.segment_names}
    for segment, person_id in case.engine.query(sql):
        found[segment].add(int(person_id))
    return found


def test_same_members_in_every_session_zone(zoned: _Zoned) -> None:
    catalog = zoned.catalog()
    if zoned.zoned is not None:  # the test means what it says: these columns are zoned
        zoned_tables = {t for t, c in TIME_COLUMNS.items() if catalog.holds_instants(t, c)}
        assert zoned_tables == set(zoned.tables)
    project = _project(catalog)
    sql = project.compile(dialect=zoned.dialect, as_of=T)
    expected = run_reference(project, TABLES, T)
    for zone in SESSION_ZONES:
        zoned.set_zone(zone)
        assert _members(zoned, sql, project) == expected, zone


def test_the_data_tells_the_zones_apart() -> None:
    """Read in another zone, the rows give other members: the test above can fail."""
    project = _project(Catalog.from_columns({}))
    expected = run_reference(project, TABLES, T)
    assert all(expected.values())
    shifted = {
        name: Table(
            table.columns,
            tuple(
                tuple(v - timedelta(hours=7) if isinstance(v, datetime) else v for v in row)
                for row in table.rows
            ),
        )
        for name, table in TABLES.items()
    }
    moved = run_reference(project, shifted, T)
    differ = [name for name in expected if moved[name] != expected[name]]
    # all but those that only compare rows with rows (funnel, funnel_3, signed_then) and a
    # few more
    assert len(differ) >= len(expected) - 5, differ


def test_bind_parameter_is_utc_in_every_session_zone() -> None:
    """``segql compile`` without ``--as-of``: the bound text is a UTC time, whatever the
    session's zone, also against instants."""
    engine = DuckDBEngine()
    case = _DuckDB(engine, "TIMESTAMPTZ")
    try:
        case.load()
        project = _project(case.catalog())
        sql = project.compile(dialect="duckdb", as_of=None)
        expected = run_reference(project, TABLES, T)
        for zone in SESSION_ZONES:
            case.set_zone(zone)
            rows = engine._con.execute(sql, {"as_of": "2026-03-15 12:00:00"}).fetchall()
            found: dict[str, set[int]] = {name: set() for name in project.segment_names}
            for segment, person_id in rows:
                found[segment].add(int(person_id))
            assert found == expected, zone
    finally:
        engine.close()


def test_zoned_literals_carry_their_offset() -> None:
    """Against a TIMESTAMPTZ column, T and the edges are instants written at +00:00."""
    catalog = Catalog.from_columns(
        {
            "people": [("person_id", "BIGINT"), ("signup_at", "TIMESTAMP WITH TIME ZONE")],
            "events": [
                ("person_id", "BIGINT"),
                ("event_type", "VARCHAR"),
                ("occurred_at", "TIMESTAMP WITH TIME ZONE"),
                ("properties", "JSON"),
            ],
            "subscriptions": [("person_id", "BIGINT"), ("created_at", "TIMESTAMP")],
            "accounts": [("person_id", "BIGINT"), ("tier", "VARCHAR")],
        }
    )
    project = project_from_text(
        make_config(PROJECT_ZONE), "segment a where did login within 30 days", catalog
    )
    sql = project.compile(dialect="postgres", as_of=T)
    assert "CAST('2026-03-15 12:00:00+00:00' AS TIMESTAMPTZ)" in sql
    assert "CAST('2026-02-13 12:00:00+00:00' AS TIMESTAMPTZ)" in sql
    assert "AS TIMESTAMP)" not in sql


def test_postgres_catalog_through_sqlalchemy_keeps_the_zone() -> None:
    """``segql run`` reads PostgreSQL's catalog through SQLAlchemy, whose ``str()`` of a
    ``timestamptz`` is plain ``TIMESTAMP``: the type is spelled by the dialect instead."""
    import sqlalchemy
    from sqlalchemy.dialects import postgresql

    from segql.engines.sessions import _type_name
    from segql.language.catalog import holds_instants

    name = _type_name(sqlalchemy.TIMESTAMP(timezone=True), postgresql.dialect())
    assert holds_instants(name, "postgres")
    assert not holds_instants(_type_name(sqlalchemy.TIMESTAMP(), postgresql.dialect()))
