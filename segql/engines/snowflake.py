"""Snowflake, through SQLAlchemy (snowflake-sqlalchemy) or a DB-API connection."""

from __future__ import annotations

from typing import ClassVar

from sqlglot import exp

from segql.engines.base import EngineAdapter, LockKind


class SnowflakeAdapter(EngineAdapter):
    DIALECT = "snowflake"
    URL_SCHEMES = ("snowflake",)
    RUNS = True
    SUPPORTS_MERGE = True
    # No session advisory lock on Snowflake: a lease row in segql_locks, taken by MERGE.
    RUN_LOCK: ClassVar[LockKind] = "lease"
    ENFORCED_KEYS = False  # PRIMARY KEY and UNIQUE are declared, never enforced

    def create_schema(self, schema: str) -> None:
        """Creating a schema also makes it the session's current one: come back."""
        current = self.run(exp.select(exp.func("CURRENT_SCHEMA")))[0][0]
        super().create_schema(schema)
        if current:
            back = exp.Use(kind=exp.var("SCHEMA"), this=exp.to_identifier(current, quoted=True))
            self.run(back)
