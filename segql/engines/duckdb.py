"""DuckDB: the embedded default, through DuckDB's own Python API."""

from __future__ import annotations

from typing import Any, ClassVar

from segql.engines.base import EngineAdapter, LockKind
from segql.engines.sessions import DuckDBSession


class DuckDBAdapter(EngineAdapter):
    DIALECT = "duckdb"
    URL_SCHEMES = ("duckdb",)
    RUNS = True
    SUPPORTS_MERGE = True
    RUN_LOCK: ClassVar[LockKind] = "connection"  # one writing process per file
    ENFORCED_KEYS = True
    # DuckDB rewrites its ART indexes at every commit (a run's commit took 3x longer); the
    # keys of segql's tables are unique by construction, and the tests check it.
    DECLARE_KEYS = False
    SESSION_TIME_ZONE = "SET TimeZone = 'UTC'"

    def __init__(self, session: DuckDBSession):
        super().__init__(session)
        self.path = session.path
        # DuckDB draws a progress bar on stdout for queries over 2 s, which would corrupt
        # `--format json` and CSV output; segql reports progress itself, on stderr.
        self.query("SET enable_progress_bar = false")

    @property
    def connection(self) -> Any:
        return self.session.connection  # type: ignore[attr-defined]

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
