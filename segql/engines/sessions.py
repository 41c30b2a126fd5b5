"""How statements reach a warehouse: DuckDB's own API, SQLAlchemy, or any DB-API connection.

A session sends SQL text as it is: no placeholder parsing, so a ``%`` in a literal or a
name is a ``%`` (psycopg reads ``%`` as a placeholder whenever parameters are passed, even
an empty tuple). Values that segql binds are sqlglot literals in the text.
"""

from __future__ import annotations

import time
from typing import Any

from segql.errors import SegqlWarehouseError


class DuckDBSession:
    """A DuckDB file (or memory). DuckDB lets one process write a file at a time: another
    segql process waits up to ``wait`` seconds for it, then fails with a clear message."""

    def __init__(self, path: str, read_only: bool = False, wait: float = 0.0):
        import duckdb

        self.path = path
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

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        import duckdb

        try:
            return self.connection.execute(sql, params or None).fetchall()
        except duckdb.Error as error:
            raise SegqlWarehouseError(f"DuckDB refused a statement: {error}") from None

    def reflect_columns(self, table: str) -> list[tuple[str, str]] | None:
        raise NotImplementedError

    def close(self) -> None:
        self.connection.close()


class SqlAlchemySession:
    """Any SQLAlchemy URL, in autocommit mode."""

    def __init__(self, url: str):
        import sqlalchemy

        try:
            self.engine = sqlalchemy.create_engine(url)
        except Exception as error:  # unknown driver, malformed URL
            raise SegqlWarehouseError(f"cannot use warehouse URL: {error}") from None
        try:
            self.connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SegqlWarehouseError(f"cannot connect to the warehouse: {error}") from None

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        import sqlalchemy

        try:
            if params:
                result = self.connection.exec_driver_sql(sql, params)
            else:
                # no_parameters: ``cursor.execute(sql)``, the text alone; without it the
                # driver gets an empty tuple, and psycopg parses `%` ('50%' failed,
                # '%%' read as '%', '%s' as '$1').
                raw = self.connection.execution_options(no_parameters=True)
                result = raw.exec_driver_sql(sql)
            return [tuple(row) for row in result] if result.returns_rows else []
        except sqlalchemy.exc.SQLAlchemyError as error:
            message = str(getattr(error, "orig", error)).strip()
            raise SegqlWarehouseError(f"the warehouse refused a statement: {message}") from None

    def reflect_columns(self, table: str) -> list[tuple[str, str]] | None:
        import sqlalchemy

        *schema, name = table.split(".")
        inspector = sqlalchemy.inspect(self.engine)
        try:
            columns = inspector.get_columns(name, schema=schema[-1] if schema else None)
        except sqlalchemy.exc.NoSuchTableError:
            return None
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SegqlWarehouseError(f"cannot read the warehouse catalog: {error}") from None
        # The type as this warehouse spells it: str() drops PostgreSQL's WITH TIME ZONE.
        return [(c["name"], _type_name(c["type"], self.engine.dialect)) for c in columns] or None

    def reflect_keys(self, table: str) -> list[list[str]]:
        """The PRIMARY KEY and UNIQUE constraints of a table, each as its columns."""
        import sqlalchemy

        *schema, name = table.split(".")
        inspector = sqlalchemy.inspect(self.engine)
        kwargs = {"schema": schema[-1] if schema else None}
        try:
            keys = [inspector.get_pk_constraint(name, **kwargs)["constrained_columns"]]
            keys += [u["column_names"] for u in inspector.get_unique_constraints(name, **kwargs)]
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SegqlWarehouseError(f"cannot read the warehouse catalog: {error}") from None
        return keys

    def close(self) -> None:
        self.connection.close()
        self.engine.dispose()


class DbApiSession:
    """Any DB-API connection in autocommit mode, for warehouses reached without SQLAlchemy
    (the Snowflake connector, and fakesnow in the tests). It is used as it is handed over."""

    def __init__(self, connection: Any):
        self.connection = connection

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params) if params else cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
        except Exception as error:  # each driver has its own error classes
            raise SegqlWarehouseError(f"the warehouse refused a statement: {error}") from None
        finally:
            cursor.close()
        return [tuple(row) for row in rows]

    def reflect_columns(self, table: str) -> list[tuple[str, str]] | None:
        raise NotImplementedError

    def close(self) -> None:
        self.connection.close()


def _type_name(sql_type: Any, dialect: Any) -> str:
    try:
        return str(sql_type.compile(dialect=dialect))
    except Exception:  # a type the dialect cannot spell (NullType): its generic name
        return str(sql_type)
