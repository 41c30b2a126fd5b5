"""PostgreSQL 12+, through SQLAlchemy (psycopg)."""

from __future__ import annotations

from typing import ClassVar

from segql.engines.base import EngineAdapter, LockKind
from segql.engines.sessions import SqlAlchemySession


class PostgresAdapter(EngineAdapter):
    DIALECT = "postgres"
    URL_SCHEMES = ("postgresql",)
    RUNS = True
    SUPPORTS_MERGE = False  # MERGE is PostgreSQL 15+; segql supports 12+
    RUN_LOCK: ClassVar[LockKind] = "advisory"
    ENFORCED_KEYS = True
    SESSION_TIME_ZONE = "SET TIME ZONE 'UTC'"

    def unique_columns(self, table: str) -> set[str]:
        if not isinstance(self.session, SqlAlchemySession):
            return set()
        return {key[0] for key in self.session.reflect_keys(table) if len(key) == 1}
