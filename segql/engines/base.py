"""The engine adapter: what every warehouse shares, and the capabilities that differ as data.

One subclass per warehouse (``segql/engines/<name>.py``) sets the class flags and overrides
the few methods that differ. Code outside this package asks a flag or calls a method; it
never tests an engine's name. How statements reach the warehouse (DuckDB's own API,
SQLAlchemy, a DB-API connection) is a ``Session``, chosen by ``connect``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ClassVar, Literal, Protocol

from sqlglot import exp

from segql.compile.dialect import Dialect, get_dialect
from segql.compile.sqltext import generate_sql
from segql.errors import SegqlError
from segql.language.catalog import Catalog

# How one writer per project schema is ensured:
#   "connection": the open connection already excludes every other writer (DuckDB's file)
#   "advisory":   a session advisory lock, released when the session ends (PostgreSQL)
#   "lease":      a row in segql_locks with a lease, taken by MERGE (segql/engines/lease.py)
#   "none":       no lock is known on this engine yet
LockKind = Literal["connection", "advisory", "lease", "none"]


class Session(Protocol):
    """How statements reach one warehouse session."""

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement; the SQL text is sent as it is (no placeholder parsing)."""
        ...

    def reflect_columns(self, table: str) -> list[tuple[str, str]] | None:
        """The table's columns through the driver's own catalog reader (SQLAlchemy's
        inspector), or None if absent; ``NotImplementedError`` if the session has none."""
        ...

    def close(self) -> None: ...


class EngineAdapter:
    """One session with a warehouse: statements, transactions, its catalog, its lock.

    The session stays open (temporary tables live in it) and runs in autocommit mode;
    ``transaction()`` groups statements into one ``BEGIN ... COMMIT``.
    """

    DIALECT: ClassVar[str]
    # URL schemes (before ``:`` and ``+``) that reach this engine; see ``segql.engines.ENGINES``.
    URL_SCHEMES: ClassVar[tuple[str, ...]] = ()
    # ``segql run`` may use it: BEGIN/COMMIT across tables, tested run and lock.
    RUNS: ClassVar[bool] = False
    # How a run's rows become visible at once: "transaction" (one BEGIN ... COMMIT) or
    # "swap" (rows tagged with the run's id, one compare-and-swap: segql.runs.swap_commit).
    COMMIT_PROTOCOL: ClassVar[Literal["transaction", "swap"]] = "transaction"
    SUPPORTS_TRANSACTIONS: ClassVar[bool] = True
    SUPPORTS_MERGE: ClassVar[bool] = False
    RUN_LOCK: ClassVar[LockKind] = "none"
    # PRIMARY KEY / UNIQUE constraints are enforced, so a column they make unique on its
    # own can be read without merging duplicates.
    ENFORCED_KEYS: ClassVar[bool] = False
    # segql's own tables declare their PRIMARY KEY.
    DECLARE_KEYS: ClassVar[bool] = True
    # The statement that makes the session read and write times in UTC, if one is needed.
    SESSION_TIME_ZONE: ClassVar[str | None] = None
    # Seconds a "lease" lock lasts without renewal (a crashed holder blocks this long).
    LOCK_LEASE: ClassVar[int] = 600

    def __init__(self, session: Session):
        self.session = session
        self.held_leases: list[Any] = []
        self.dialect: Dialect = get_dialect(self.DIALECT)
        if self.SESSION_TIME_ZONE:
            self.query(self.SESSION_TIME_ZONE)

    # --- statements ----------------------------------------------------------------------

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.session.execute(sql, params)

    def run(self, statement: exp.Expr) -> list[tuple[Any, ...]]:
        """Execute a sqlglot statement in this warehouse's dialect."""
        return self.query(generate_sql(statement, self.dialect.sqlglot))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together, or not at all."""
        self.query("BEGIN")
        try:
            yield
        except BaseException:
            self.query("ROLLBACK")
            raise
        self.query("COMMIT")

    def commit(self) -> AbstractContextManager[None]:
        """A run's commit: what is written inside becomes visible at once, or never.

        On engines with transactions that is one ``BEGIN ... COMMIT``, and whatever the
        caller reads inside (the next ``commit_seq``) is read inside it. An engine without
        them (Spark) overrides this with its own protocol (runs tagged by run id, one
        atomic swap of the committed marker)."""
        if not self.SUPPORTS_TRANSACTIONS:
            raise SegqlError(f"{self.DIALECT} has no commit protocol for segql run yet")
        return self._confirmed_transaction()

    @contextmanager
    def _confirmed_transaction(self) -> Iterator[None]:
        with self.transaction():
            for lease in self.held_leases:
                lease.confirm()
            yield

    def table_properties(self) -> list[exp.Expr]:
        """What ``CREATE TABLE`` of segql's own tables adds (Spark: ``USING ICEBERG``)."""
        return []

    def keep_locks(self) -> None:
        """Renew the leases this session holds (a no-op for session locks)."""
        for lease in self.held_leases:
            lease.renew()

    def create_schema(self, schema: str) -> None:
        """``CREATE SCHEMA IF NOT EXISTS``, leaving the session where it was."""
        self.run(
            exp.Create(
                this=exp.Table(this=exp.to_identifier(schema, quoted=True)),
                kind="SCHEMA",
                exists=True,
            )
        )

    # --- the lock ------------------------------------------------------------------------

    def lock(
        self,
        name: str,
        wait: float,
        busy: str,
        help: str | None = None,
        schema: str | None = None,
    ) -> AbstractContextManager[Any]:
        """One holder of ``name`` at a time (``segql:SCHEMA`` for runs), waited for up to
        ``wait`` seconds; then ``SegqlError(busy)``. A lease lock keeps its row in
        ``schema`` (without one, no lease is taken)."""
        if self.RUN_LOCK == "advisory":
            return _AdvisoryLock(self, zlib.crc32(name.encode()), wait, busy, help)
        if self.RUN_LOCK == "lease" and schema is not None:
            from segql.engines.lease import LeaseLock

            return LeaseLock(self, schema, name, wait, busy, help, self.LOCK_LEASE)
        return nullcontext()

    # --- the catalog ---------------------------------------------------------------------

    def table_columns(self, table: str) -> list[tuple[str, str]] | None:
        """``[(column, sql_type)]`` of a table (``schema.table`` allowed), None if absent."""
        try:
            return self.session.reflect_columns(table)
        except NotImplementedError:
            pass  # information_schema, in SQL
        *schema, name = table.split(".")
        filters = [exp.column("table_name").eq(exp.Literal.string(name))]
        if schema:
            filters.append(exp.column("table_schema").eq(exp.Literal.string(schema[-1])))
        select = (
            exp.select("column_name", "data_type")
            .from_(exp.to_table("information_schema.columns"))
            .where(exp.and_(*filters))
            .order_by("ordinal_position")
        )
        rows = self.run(select)
        return [(r[0], r[1]) for r in rows] or None

    def unique_columns(self, table: str) -> set[str]:
        """Columns an enforced PRIMARY KEY or UNIQUE constraint makes unique on their own.
        None where constraints are not enforced (Snowflake declares but never enforces)."""
        return set()

    def catalog(self, tables: Iterable[str]) -> Catalog:
        found: dict[str, list[tuple[str, str]]] = {}
        unique: dict[str, set[str]] = {}
        for table in dict.fromkeys(tables):
            columns = self.table_columns(table)
            if columns is not None:
                found[table] = columns
                unique[table] = self.unique_columns(table) if self.ENFORCED_KEYS else set()
        return Catalog.from_columns(found, unique, self.dialect.name)

    def close(self) -> None:
        self.session.close()


class _AdvisoryLock:
    """A PostgreSQL session advisory lock, waited for up to ``wait`` seconds."""

    def __init__(
        self, adapter: EngineAdapter, key: int, wait: float, busy: str, help: str | None
    ):
        self.adapter, self.key, self.wait, self.busy, self.help = adapter, key, wait, busy, help

    def __enter__(self) -> None:
        deadline = time.monotonic() + self.wait
        key = exp.Literal.number(self.key)
        while not self.adapter.run(exp.select(exp.func("pg_try_advisory_lock", key)))[0][0]:
            if time.monotonic() >= deadline:
                raise SegqlError(self.busy, help=self.help)
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        key = exp.Literal.number(self.key)
        self.adapter.run(exp.select(exp.func("pg_advisory_unlock", key)))
