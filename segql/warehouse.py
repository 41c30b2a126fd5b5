"""Connections to where the data lives: a DuckDB file, or any SQLAlchemy URL.

A ``Warehouse`` reads the catalog (tables, columns, types) and runs SQL. DuckDB is used
through its own Python API (the embedded default needs no server); everything else goes
through SQLAlchemy. Every session works in UTC so that naive timestamps mean UTC.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlglot import exp

from segql.catalog import Catalog
from segql.config import ProjectConfig, expand_env
from segql.dialect import Dialect, get_dialect
from segql.errors import SegqlWarehouseError

# SQLAlchemy dialect names to segql dialect names.
_SQLALCHEMY_DIALECTS = {
    "postgresql": "postgres",
    "snowflake": "snowflake",
    "duckdb": "duckdb",
    "databricks": "spark",
    "hive": "spark",
}


class Warehouse:
    """One session with a warehouse: statements, transactions, and its catalog.

    The session stays open (temporary tables live in it) and runs in autocommit mode;
    ``transaction()`` groups statements into one ``BEGIN ... COMMIT``.
    """

    dialect: Dialect

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def run(self, statement: exp.Expression) -> list[tuple[Any, ...]]:
        """Execute a sqlglot statement in this warehouse's dialect."""
        return self.query(statement.sql(dialect=self.dialect.sqlglot))

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

    def table_columns(self, table: str) -> list[tuple[str, str]] | None:
        """``[(column, sql_type)]`` of a table (``schema.table`` allowed), None if absent."""
        raise NotImplementedError

    def unique_columns(self, table: str) -> set[str]:
        """Columns of a table that an enforced PRIMARY KEY or UNIQUE constraint makes unique
        on their own. None known by default: Snowflake, for one, declares but never
        enforces them."""
        return set()

    def catalog(self, tables: Iterable[str]) -> Catalog:
        found: dict[str, list[tuple[str, str]]] = {}
        unique: dict[str, set[str]] = {}
        for table in dict.fromkeys(tables):
            columns = self.table_columns(table)
            if columns is not None:
                found[table] = columns
                unique[table] = self.unique_columns(table)
        return Catalog.from_columns(found, unique)

    def close(self) -> None:
        pass


class DuckDBWarehouse(Warehouse):
    """A DuckDB file (or memory). DuckDB lets one process write a file at a time: another
    segql process waits up to ``wait`` seconds for it, then fails with a clear message."""

    def __init__(self, path: str, read_only: bool = False, wait: float = 0.0):
        import duckdb

        self.path = path
        self.dialect = get_dialect("duckdb")
        deadline = time.monotonic() + wait
        while True:
            try:
                self.connection = duckdb.connect(path, read_only=read_only)
                break
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise SegqlWarehouseError(f"cannot open DuckDB file {path}: {error}") from None
                if time.monotonic() >= deadline:
                    raise SegqlWarehouseError(
                        f"another process is using the DuckDB file {path}",
                        help="DuckDB allows one writer at a time: wait for the other segql run "
                        "to finish, or pass --wait SECONDS to wait for it",
                    ) from None
                time.sleep(0.2)
            except duckdb.Error as error:
                raise SegqlWarehouseError(f"cannot open DuckDB file {path}: {error}") from None
        self.connection.execute("SET TimeZone = 'UTC'")
        # DuckDB draws a progress bar on stdout for queries over 2 s, which would corrupt
        # `--format json` and CSV output; segql reports progress itself, on stderr.
        self.connection.execute("SET enable_progress_bar = false")

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        import duckdb

        try:
            return self.connection.execute(sql, params or None).fetchall()
        except duckdb.Error as error:
            raise SegqlWarehouseError(f"DuckDB refused a statement: {error}") from None

    def table_columns(self, table: str) -> list[tuple[str, str]] | None:
        *schema, name = table.split(".")
        sql = (
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $name"
        )
        params: dict[str, Any] = {"name": name}
        if schema:
            sql += " AND table_schema = $schema"
            params["schema"] = schema[-1]
        rows = self.query(sql + " ORDER BY ordinal_position", params)
        return [(r[0], r[1]) for r in rows] or None

    def unique_columns(self, table: str) -> set[str]:
        *schema, name = table.split(".")
        sql = (
            "SELECT constraint_column_names[1] FROM duckdb_constraints() "
            "WHERE table_name = $name AND constraint_type IN ('PRIMARY KEY', 'UNIQUE') "
            "AND len(constraint_column_names) = 1"
        )
        params: dict[str, Any] = {"name": name}
        if schema:
            sql += " AND schema_name = $schema"
            params["schema"] = schema[-1]
        else:  # the table the unqualified name reads, not one of that name elsewhere
            sql += " AND schema_name = current_schema()"
        sql += " AND database_name = current_database()"
        return {column for (column,) in self.query(sql, params)}

    def close(self) -> None:
        self.connection.close()


class SqlAlchemyWarehouse(Warehouse):
    def __init__(self, url: str):
        import sqlalchemy

        try:
            self.engine = sqlalchemy.create_engine(url)
        except Exception as error:  # unknown driver, malformed URL
            raise SegqlWarehouseError(f"cannot use warehouse URL: {error}") from None
        name = _SQLALCHEMY_DIALECTS.get(self.engine.dialect.name, self.engine.dialect.name)
        self.dialect = get_dialect(name)
        try:
            self.connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SegqlWarehouseError(f"cannot connect to the warehouse: {error}") from None
        if self.dialect.name == "postgres":
            self.query("SET TIME ZONE 'UTC'")

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        import sqlalchemy

        try:
            if params:
                result = self.connection.exec_driver_sql(sql, params)
            else:
                # no_parameters: the driver gets the text alone, so a `%` in a literal or a
                # name is a `%` (psycopg parses placeholders whenever parameters are passed,
                # even none: '50%' failed and '%%' read as '%').
                result = self.connection.execution_options(no_parameters=True).exec_driver_sql(
                    sql
                )
            return [tuple(row) for row in result] if result.returns_rows else []
        except sqlalchemy.exc.SQLAlchemyError as error:
            message = str(getattr(error, "orig", error)).strip()
            raise SegqlWarehouseError(f"the warehouse refused a statement: {message}") from None

    def table_columns(self, table: str) -> list[tuple[str, str]] | None:
        import sqlalchemy

        *schema, name = table.split(".")
        inspector = sqlalchemy.inspect(self.engine)
        try:
            columns = inspector.get_columns(name, schema=schema[-1] if schema else None)
        except sqlalchemy.exc.NoSuchTableError:
            return None
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SegqlWarehouseError(f"cannot read the warehouse catalog: {error}") from None
        return [(c["name"], str(c["type"])) for c in columns] or None

    def unique_columns(self, table: str) -> set[str]:
        if self.dialect.name != "postgres":  # where constraints are known to be enforced
            return set()
        import sqlalchemy

        *schema, name = table.split(".")
        inspector = sqlalchemy.inspect(self.engine)
        kwargs = {"schema": schema[-1] if schema else None}
        try:
            keys = [inspector.get_pk_constraint(name, **kwargs)["constrained_columns"]]
            keys += [u["column_names"] for u in inspector.get_unique_constraints(name, **kwargs)]
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SegqlWarehouseError(f"cannot read the warehouse catalog: {error}") from None
        return {key[0] for key in keys if len(key) == 1}

    def close(self) -> None:
        self.connection.close()
        self.engine.dispose()


class DbApiWarehouse(Warehouse):
    """Any DB-API connection in autocommit mode, for warehouses reached without SQLAlchemy
    (the Snowflake connector, and fakesnow in the tests)."""

    def __init__(self, connection: Any, dialect: str):
        self.connection = connection
        self.dialect = get_dialect(dialect)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params) if params else cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
        except Exception as error:  # each driver has its own error classes
            raise SegqlWarehouseError(f"the warehouse refused a statement: {error}") from None
        finally:
            cursor.close()
        return [tuple(row) for row in rows]

    def table_columns(self, table: str) -> list[tuple[str, str]] | None:
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

    def close(self) -> None:
        self.connection.close()


def duckdb_path(config: ProjectConfig) -> str | None:
    """The DuckDB file of a ``duckdb:///path`` URL, relative to the project; None otherwise."""
    url = expand_env(config.warehouse.url, "[warehouse] url")
    if not url.startswith("duckdb://"):
        return None
    path = url.removeprefix("duckdb://").removeprefix("/")
    if path in ("", ":memory:"):
        return ":memory:"
    if url.startswith("duckdb:////"):
        return "/" + path.lstrip("/")
    return str((config.root / path).resolve())


def connect(config: ProjectConfig, read_only: bool = False, wait: float = 0.0) -> Warehouse:
    """Open the project's warehouse."""
    path = duckdb_path(config)
    if path is not None:
        if path != ":memory:" and not Path(path).exists():
            raise SegqlWarehouseError(
                f"the DuckDB file {path} does not exist",
                help="check [warehouse] url in segql.toml (a relative path is relative to it)",
            )
        return DuckDBWarehouse(path, read_only=read_only, wait=wait)
    return SqlAlchemyWarehouse(expand_env(config.warehouse.url, "[warehouse] url"))


def tables_of(config: ProjectConfig) -> Sequence[str]:
    """Every table segql.toml names."""
    tables = [config.entity.table]
    if config.events is not None:
        tables.append(config.events.table)
    tables += [s.table for s in config.sources.values()]
    return tables
