"""Real-engine test harness: load tables into DuckDB, PostgreSQL and (fake) Snowflake, run SQL.

Every engine implements the small :class:`Engine` protocol:

* ``load(tables)`` (re)creates exactly the given tables in the engine's working schema
  (dropping any table of the same name first) and bulk-inserts the rows;
* ``query(sql)`` runs one SQL statement written in the engine's dialect and returns all rows
  as tuples;
* ``close()`` releases everything the engine owns.

Engines
-------
``DuckDBEngine``
    In-process DuckDB (``:memory:``), session ``TimeZone = 'UTC'``.
``PostgresEngine``
    A real PostgreSQL server started from the ``pgserver`` wheel (see :func:`start_postgres`),
    connected with psycopg 3 in autocommit mode.  Every engine instance creates its own fresh
    schema and puts *only* that schema on its ``search_path``, so tests never see each other's
    tables; the schema is dropped (``CASCADE``) on ``close()``.
``SnowflakeEngine``
    Snowflake SQL executed by ``fakesnow`` (which transpiles it with sqlglot and runs it on an
    in-memory DuckDB).  Each instance enters its own ``fakesnow.patch()``, so every instance
    starts from an empty in-memory database.  ``fakesnow.patch()`` refuses to nest, so only one
    ``SnowflakeEngine`` may be open at a time in a process.

Value conventions
-----------------
Input rows use plain Python values: ``int``, ``float``, ``str``, ``bool``, naive
``datetime.datetime`` (meaning UTC; aware datetimes are converted to naive UTC), ``datetime.date``,
any JSON-serialisable value for ``json`` columns (usually a ``dict``), and ``None`` for SQL NULL.
A JSON ``None`` is always SQL NULL, never the JSON literal ``null``.

What ``query`` returns is whatever the engine's driver produces, not normalised:

* timestamps (``timestamp`` columns) come back as *naive* ``datetime.datetime`` on all three;
* numbers may come back as ``int``, ``float`` or ``decimal.Decimal`` depending on engine and
  expression -- compare numerically.  Known cases: Postgres ``SUM``/``AVG`` over ``bigint`` give
  ``Decimal``; DuckDB ``SUM(BIGINT)`` gives ``int``; fakesnow ``SUM`` over an ``INTEGER`` column
  gives ``float`` (!) while ``COUNT_IF`` and ``::NUMBER`` give ``Decimal``;
* ``json`` values come back as ``dict``/``list``/scalars from Postgres (jsonb is decoded by
  psycopg) but as JSON *text* (``str``) from DuckDB and fakesnow (like the real Snowflake
  connector does for VARIANT).  JSON extraction functions return ``str``.

Column types per engine
-----------------------
=========  ========  ================  ===============================
ColumnType DuckDB    PostgreSQL        Snowflake (fakesnow)
=========  ========  ================  ===============================
integer    BIGINT    BIGINT            INTEGER (NUMBER(38,0); BIGINT in fakesnow)
double     DOUBLE    DOUBLE PRECISION  DOUBLE (FLOAT)
text       VARCHAR   TEXT              TEXT (VARCHAR)
boolean    BOOLEAN   BOOLEAN           BOOLEAN
timestamp  TIMESTAMP TIMESTAMP         TIMESTAMP_NTZ
date       DATE      DATE              DATE
json       JSON      JSONB             VARIANT
=========  ========  ================  ===============================
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "COLUMN_TYPES",
    "ENGINE_NAMES",
    "ColumnType",
    "DuckDBEngine",
    "Engine",
    "PostgresEngine",
    "PostgresServerHandle",
    "SnowflakeEngine",
    "Table",
    "in_ci",
    "quote_ident",
    "start_postgres",
]

ColumnType = Literal["integer", "double", "text", "boolean", "timestamp", "date", "json"]
COLUMN_TYPES: tuple[ColumnType, ...] = get_args(ColumnType)
ENGINE_NAMES: tuple[str, ...] = ("duckdb", "postgres", "snowflake")


def in_ci() -> bool:
    """True when running in CI (``CI=true``); there, engine problems must fail, never skip."""
    return os.environ.get("CI", "").strip().lower() == "true"


# --------------------------------------------------------------------------------------------
# Table description and value normalisation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table to load: ordered ``(name, type)`` columns and rows of plain Python values.

    Lists are accepted and converted to tuples; the shape and column types are validated
    eagerly so a malformed fixture fails at construction, not deep inside an engine.
    """

    columns: tuple[tuple[str, ColumnType], ...]
    rows: tuple[tuple[Any, ...], ...] = field(default=())

    def __post_init__(self) -> None:
        columns = tuple((str(name), ctype) for name, ctype in self.columns)
        rows = tuple(tuple(row) for row in self.rows)
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "rows", rows)
        if not columns:
            raise ValueError("a Table needs at least one column")
        seen: set[str] = set()
        for name, ctype in columns:
            if ctype not in COLUMN_TYPES:
                raise ValueError(f"column {name!r}: unknown type {ctype!r}")
            # DuckDB (and therefore fakesnow) matches identifiers case-insensitively even when
            # quoted, so names differing only by case cannot coexist there.
            if name.lower() in seen:
                raise ValueError(f"duplicate column name (case-insensitively): {name!r}")
            seen.add(name.lower())
        width = len(columns)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise ValueError(f"row {i} has {len(row)} values, expected {width}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def normalized_rows(self) -> list[tuple[Any, ...]]:
        """Rows with every value checked and converted to its canonical Python form.

        ``json`` values become JSON text (``str``) here; each engine parses that text itself.
        """
        types = [ctype for _, ctype in self.columns]
        return [
            tuple(_normalize(value, ctype) for value, ctype in zip(row, types, strict=True))
            for row in self.rows
        ]

    def normalized_columns(self) -> list[list[Any]]:
        """Column-major version of :meth:`normalized_rows` (one list per column)."""
        rows = self.normalized_rows()
        return [[row[i] for row in rows] for i in range(len(self.columns))]


def _normalize(value: Any, ctype: ColumnType) -> Any:
    """Validate ``value`` for ``ctype`` and return its canonical Python representation."""
    if value is None:
        return None
    if ctype == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"integer column expects int, got {value!r}")
        return int(value)
    if ctype == "double":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"double column expects float, got {value!r}")
        return float(value)
    if ctype == "text":
        if not isinstance(value, str):
            raise TypeError(f"text column expects str, got {value!r}")
        if "\x00" in value:
            raise ValueError("text values may not contain NUL (PostgreSQL rejects them)")
        return value
    if ctype == "boolean":
        if not isinstance(value, bool):
            raise TypeError(f"boolean column expects bool, got {value!r}")
        return value
    if ctype == "timestamp":
        if not isinstance(value, _dt.datetime):
            raise TypeError(f"timestamp column expects datetime, got {value!r}")
        if value.tzinfo is not None:
            # Timestamps are naive UTC everywhere; accept aware values by converting them.
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value
    if ctype == "date":
        # datetime is a subclass of date: reject it rather than silently truncating.
        if isinstance(value, _dt.datetime) or not isinstance(value, _dt.date):
            raise TypeError(f"date column expects date, got {value!r}")
        return value
    if ctype == "json":
        # allow_nan=False: NaN/Infinity are not JSON and no engine would parse them.
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    raise ValueError(f"unknown column type {ctype!r}")  # pragma: no cover - guarded by Table


def quote_ident(name: str) -> str:
    """Quote an identifier the standard-SQL way (valid for DuckDB, Postgres and Snowflake).

    The name is wrapped in double quotes with embedded double quotes doubled, so names with
    spaces, capitals (``"Plan Name"``) or keywords are preserved verbatim.
    """
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


class Engine(Protocol):
    """What tests use: load tables, run one statement, close."""

    name: str  # "duckdb" | "postgres" | "snowflake"
    dialect: str  # the segql/sqlglot dialect name: "duckdb" | "postgres" | "snowflake"

    def load(self, tables: Mapping[str, Table]) -> None: ...

    def query(self, sql: str) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# DuckDB
# --------------------------------------------------------------------------------------------

_DUCKDB_TYPES: dict[ColumnType, str] = {
    "integer": "BIGINT",
    "double": "DOUBLE",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "json": "JSON",
}


class DuckDBEngine:
    """In-process DuckDB database (in memory by default)."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, database: str = ":memory:") -> None:
        import duckdb

        self._con = duckdb.connect(database)
        # TIMESTAMP (without time zone) never shifts, but anything touching TIMESTAMPTZ
        # (now(), casts, date_trunc on tz values, strftime) uses the session zone: pin UTC.
        self._con.execute("SET TimeZone = 'UTC'")

    def load(self, tables: Mapping[str, Table]) -> None:
        for table_name, table in tables.items():
            qtable = quote_ident(table_name)
            columns_sql = ", ".join(
                f"{quote_ident(col)} {_DUCKDB_TYPES[ctype]}" for col, ctype in table.columns
            )
            self._con.execute(f"DROP TABLE IF EXISTS {qtable}")
            self._con.execute(f"CREATE TABLE {qtable} ({columns_sql})")
            if not table.rows:
                continue
            # executemany() on DuckDB costs ~1 ms per row (15 s for 20k rows).  Instead bind
            # one Python list per column and UNNEST them side by side (DuckDB zips multiple
            # UNNESTs in one SELECT list): 20k rows load in ~0.2 s.  JSON travels as text and
            # is cast to JSON, which validates it.
            selects = []
            for _, ctype in table.columns:
                if ctype == "json":
                    selects.append("UNNEST(?::VARCHAR[])::JSON")
                else:
                    selects.append(f"UNNEST(?::{_DUCKDB_TYPES[ctype]}[])")
            names = ", ".join(quote_ident(col) for col in table.column_names)
            self._con.execute(
                f"INSERT INTO {qtable} ({names}) SELECT {', '.join(selects)}",
                table.normalized_columns(),
            )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self._con.execute(sql)
        if cur.description is None:
            return []
        return [tuple(row) for row in cur.fetchall()]

    def close(self) -> None:
        self._con.close()


# --------------------------------------------------------------------------------------------
# PostgreSQL (pgserver)
# --------------------------------------------------------------------------------------------

_POSTGRES_TYPES: dict[ColumnType, str] = {
    "integer": "BIGINT",
    "double": "DOUBLE PRECISION",
    "text": "TEXT",
    "boolean": "BOOLEAN",
    # "timestamp" is TIMESTAMP WITHOUT TIME ZONE: naive values, no session-zone conversion.
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "json": "JSONB",
}

# Every session runs in UTC so that any timestamptz arithmetic (now(), AT TIME ZONE, casts)
# agrees with the "naive means UTC" convention.  Passed as a startup option, so it also holds
# for connections opened by code under test through PostgresServerHandle.connect().
_PG_OPTIONS = "-c TimeZone=UTC"


@dataclass
class PostgresServerHandle:
    """A running pgserver instance: its connection URI and how to stop it."""

    uri: str
    pgdata: Path
    startup_seconds: float
    _server: Any = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def connect(self, **kwargs: Any) -> psycopg.Connection[tuple[Any, ...]]:
        """Open a psycopg 3 connection (UTC session time zone; autocommit by default)."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("options", _PG_OPTIONS)
        return psycopg.connect(self.uri, **kwargs)

    def stop(self) -> None:
        """Stop the server and delete its data directory (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.cleanup()


def start_postgres(tmpdir: str | os.PathLike[str]) -> PostgresServerHandle:
    """Start a private PostgreSQL server with its data directory inside ``tmpdir``.

    Uses the binaries bundled in the ``pgserver`` wheel (never a system PostgreSQL).  The
    server listens on a Unix socket only (no TCP port, so no port clashes) and uses ``trust``
    auth for the ``postgres`` role.

    Running as root: PostgreSQL refuses to run as root, and pgserver handles that itself.
    When ``os.geteuid() == 0`` it (1) creates a system user ``pgserver`` with ``useradd`` if
    missing, (2) chmods every parent directory of the data dir (and the bundled binaries) to
    be group/other readable+traversable, (3) chowns the data dir to that user, and (4) runs
    ``initdb``/``pg_ctl`` via ``subprocess.run(..., user="pgserver")``.  So as root we need
    ``useradd`` on PATH and a data dir whose parents may be made o+rx (a pytest tmp dir is
    fine: pytest re-tightens ``/tmp/pytest-of-root`` to 0700 on its next run anyway).

    Raises whatever pgserver/psycopg raise if the server cannot be started or reached.
    """
    import time

    start = time.perf_counter()
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI);
        # pgserver then keeps its lock file in /tmp/runtime-<uid>, which is fine.
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = Path(tmpdir) / "pgdata"
    # cleanup_mode="delete": cleanup() stops the server and removes pgdata.  pgserver also
    # registers an atexit hook, so the server is stopped even if the session is interrupted.
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    handle = PostgresServerHandle(
        uri=server.get_uri(),
        pgdata=pgdata,
        startup_seconds=0.0,
        _server=server,
    )
    try:
        with handle.connect() as conn:
            conn.execute("SELECT 1").fetchone()
    except BaseException:
        handle.stop()
        raise
    handle.startup_seconds = time.perf_counter() - start
    return handle


class PostgresEngine:
    """A fresh schema on a (shared) PostgreSQL server; dropped again on :meth:`close`."""

    name = "postgres"
    dialect = "postgres"

    def __init__(self, conninfo: str, schema: str | None = None) -> None:
        import psycopg

        self.schema = schema or f"segql_test_{uuid.uuid4().hex[:12]}"
        # autocommit: a failing statement must not leave the session in an aborted
        # transaction (tests deliberately run SQL that errors).
        self._conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
            conninfo, autocommit=True, options=_PG_OPTIONS
        )
        qschema = quote_ident(self.schema)
        self._conn.execute(f"DROP SCHEMA IF EXISTS {qschema} CASCADE")
        self._conn.execute(f"CREATE SCHEMA {qschema}")
        # Only the private schema: unqualified names cannot resolve to another test's tables
        # (pg_catalog is always searched implicitly, so built-in functions still work).
        self._conn.execute(f"SET search_path TO {qschema}")

    def load(self, tables: Mapping[str, Table]) -> None:
        for table_name, table in tables.items():
            qtable = quote_ident(table_name)
            columns_sql = ", ".join(
                f"{quote_ident(col)} {_POSTGRES_TYPES[ctype]}" for col, ctype in table.columns
            )
            names = ", ".join(quote_ident(col) for col in table.column_names)
            with self._conn.transaction():
                self._conn.execute(f"DROP TABLE IF EXISTS {qtable}")
                self._conn.execute(f"CREATE TABLE {qtable} ({columns_sql})")
                if not table.rows:
                    continue
                # COPY ... FROM STDIN (text format): psycopg escapes every value; JSON goes
                # in as its text and PostgreSQL parses it into jsonb.  ~0.1 s for 20k rows.
                with (
                    self._conn.cursor() as cur,
                    cur.copy(f"COPY {qtable} ({names}) FROM STDIN") as copy,
                ):
                    for row in table.normalized_rows():
                        copy.write_row(row)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        # No parameters are passed, so psycopg sends the text untouched ("%" is not special).
        with self._conn.cursor() as cur:
            cur.execute(sql)
            if cur.description is None:
                return []
            return [tuple(row) for row in cur.fetchall()]

    def close(self) -> None:
        if self._conn.closed:
            return
        with contextlib.suppress(Exception):
            self._conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(self.schema)} CASCADE")
        self._conn.close()


# --------------------------------------------------------------------------------------------
# Snowflake (fakesnow)
# --------------------------------------------------------------------------------------------

_SNOWFLAKE_TYPES: dict[ColumnType, str] = {
    "integer": "INTEGER",
    "double": "DOUBLE",
    "text": "TEXT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP_NTZ",
    "date": "DATE",
    "json": "VARIANT",
}

# Rows per INSERT statement when loading into fakesnow (the whole chunk is one JSON parameter;
# real Snowflake caps a VARIANT at 16 MB, so keep chunks moderate).
_SNOWFLAKE_CHUNK_ROWS = 5_000


@contextlib.contextmanager
def _quiet_fakesnow() -> Iterator[None]:
    # fakesnow fetches results via DuckDB's DB-API arrow path, which emits a UserWarning on
    # every statement ("Arrow output on a DB-API result makes an extra copy ...").
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Arrow output on a DB-API result", category=UserWarning
        )
        yield


def _json_payload_value(value: Any, ctype: ColumnType) -> Any:
    """Encode a normalised value for the JSON document used to bulk-load fakesnow."""
    if value is None:
        return None
    if ctype in ("timestamp", "date"):
        return value.isoformat()  # cast back with ::TIMESTAMP_NTZ / ::DATE
    if ctype == "double" and not math.isfinite(value):
        # JSON has no NaN/Infinity; Snowflake's string -> DOUBLE cast understands these.
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value  # int, float, str, bool, and JSON text (parsed with PARSE_JSON)


def _fakesnow_keeps_try_cast() -> None:
    """Make fakesnow 0.12 keep ``TRY_CAST(text AS TIMESTAMP)`` a TRY_CAST.

    fakesnow turns every cast to a timestamp into its ``_fs_to_timestamp`` function, TRY_CAST
    included (a subclass of CAST in sqlglot), and that function raises on text that is not a
    time, where Snowflake's TRY_CAST gives null. DuckDB's own TRY_CAST, which fakesnow would
    otherwise run, behaves like Snowflake's: leave TRY_CAST alone.
    """
    from fakesnow import transforms
    from sqlglot import exp

    original = transforms.to_timestamp
    if getattr(original, "keeps_try_cast", False):
        return

    def to_timestamp(expression: exp.Expression) -> exp.Expression:
        if isinstance(expression, exp.TryCast):
            return expression
        return original(expression)

    to_timestamp.keeps_try_cast = True  # type: ignore[attr-defined]
    transforms.to_timestamp = to_timestamp


class SnowflakeEngine:
    """Snowflake SQL run by fakesnow on a private in-memory database.

    ``fakesnow.patch(create_database_on_connect=True, create_schema_on_connect=True)`` (the
    defaults, passed explicitly) makes ``snowflake.connector.connect(database=..., schema=...)``
    create the database and schema, so the working schema exists and is the session's current
    schema.  Unquoted names are upper-cased like in Snowflake.
    """

    name = "snowflake"
    dialect = "snowflake"

    def __init__(self, database: str = "SEGQL_TEST", schema: str = "PUBLIC") -> None:
        import fakesnow
        import snowflake.connector

        _fakesnow_keeps_try_cast()
        self.database = database
        self.schema = schema
        self._stack = contextlib.ExitStack()
        try:
            self._stack.enter_context(
                fakesnow.patch(create_database_on_connect=True, create_schema_on_connect=True)
            )
            # qmark: parameters are bound by DuckDB instead of being formatted into the SQL
            # text client-side (the connector default, pyformat).
            self._conn = snowflake.connector.connect(
                database=database, schema=schema, paramstyle="qmark"
            )
            self._stack.callback(self._conn.close)
        except BaseException:
            self._stack.close()
            raise

    def load(self, tables: Mapping[str, Table]) -> None:
        for table_name, table in tables.items():
            qtable = quote_ident(table_name)
            columns_sql = ", ".join(
                f"{quote_ident(col)} {_SNOWFLAKE_TYPES[ctype]}" for col, ctype in table.columns
            )
            self._execute(f"CREATE OR REPLACE TABLE {qtable} ({columns_sql})")
            if not table.rows:
                continue
            # fakesnow's executemany() re-parses and transpiles the statement for every row
            # (~1 ms/row), and a multi-row VALUES list is no better (~1 ms/row in sqlglot).
            # Instead ship a chunk of rows as ONE JSON array parameter and unpack it in SQL
            # (valid Snowflake SQL too):
            #   INSERT INTO t SELECT value[0]::INTEGER, ..., PARSE_JSON(value[6]::TEXT)
            #   FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))
            # 20k rows load in ~0.4 s.  JSON cells are carried as JSON *text* and parsed
            # again, so that a None cell becomes SQL NULL (a JSON null would otherwise be a
            # VARIANT null, which IS NOT NULL).
            selects = []
            for i, (_, ctype) in enumerate(table.columns):
                if ctype == "json":
                    selects.append(f"PARSE_JSON(value[{i}]::TEXT)")
                else:
                    selects.append(f"value[{i}]::{_SNOWFLAKE_TYPES[ctype]}")
            names = ", ".join(quote_ident(col) for col in table.column_names)
            sql = (
                f"INSERT INTO {qtable} ({names}) SELECT {', '.join(selects)} "
                "FROM TABLE(FLATTEN(INPUT => PARSE_JSON(?)))"
            )
            types = [ctype for _, ctype in table.columns]
            rows = table.normalized_rows()
            for start in range(0, len(rows), _SNOWFLAKE_CHUNK_ROWS):
                chunk = [
                    [_json_payload_value(v, t) for v, t in zip(row, types, strict=True)]
                    for row in rows[start : start + _SNOWFLAKE_CHUNK_ROWS]
                ]
                self._execute(sql, [json.dumps(chunk, allow_nan=False)])

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        with _quiet_fakesnow():
            cur = self._conn.cursor()
            cur.execute(sql, params)
            return cur

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with _quiet_fakesnow():
            cur = self._conn.cursor()
            cur.execute(sql)
            # Not cur.description: fakesnow computes it by re-running DESCRIBE on the query.
            # fakesnow gives every statement a result set (DDL returns a status row).
            try:
                rows = cur.fetchall()
            except TypeError:  # "No open result set"
                return []
            return [tuple(row) for row in rows]

    def close(self) -> None:
        self._stack.close()
