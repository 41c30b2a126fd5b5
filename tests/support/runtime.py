"""A project on disk with a real warehouse (a DuckDB file, or a schema of the test
PostgreSQL), for tests of runs and history through the Python API and the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from segql.engines import connect
from segql.project import load_project
from segql.runs.runner import Runner, RunResult
from tests.support.engines import DuckDBEngine, PostgresEngine, Table

CONFIG = """\
[warehouse]
url = "{url}"
schema = "{segql_schema}"

[entity]
table = "{prefix}people"
id = "person_id"

[events]
table = "{prefix}events"
person = "person_id"
name = "event_type"
time = "occurred_at"
properties = "properties"

[sources.subscriptions]
table = "{prefix}subscriptions"
person = "person_id"
time = "created_at"

[sources.accounts]
table = "{prefix}accounts"
person = "person_id"
"""


# Settings of a local test session (2 cores): few shuffle partitions, no web UI.
SPARK_TEST_SETTINGS = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.adaptive.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Compiling generated Java for each tiny query costs more than interpreting it.
    "spark.sql.codegen.wholeStage": "false",
}


class RuntimeProject:
    """One project folder and its warehouse; data and rules can change between runs."""

    def __init__(
        self,
        root: Path,
        kind: str,
        postgres_uri: str | None = None,
        spark: dict[str, str] | None = None,
    ):
        """``kind`` duckdb, postgres (``postgres_uri``) or spark (``spark``: the
        ``[warehouse.spark]`` settings of an Iceberg catalog, tests/support/iceberg.py)."""
        self.root = root
        self.kind = kind
        self.segql_schema = "segql_" + uuid.uuid4().hex[:8]
        (root / "segments").mkdir(parents=True, exist_ok=True)
        self._postgres: PostgresEngine | None = None
        self.spark = spark
        extra = ""
        if kind == "duckdb":
            url, prefix = "duckdb:///warehouse.duckdb", ""
            DuckDBEngine(str(root / "warehouse.duckdb")).close()
        elif kind == "spark":
            assert spark is not None
            url, prefix = "spark://local", "data_" + uuid.uuid4().hex[:8] + "."
            self.spark_namespace = prefix.rstrip(".")
            settings = {**SPARK_TEST_SETTINGS, **spark}
            extra = "\n[warehouse.spark]\n" + "".join(
                f'"{key}" = "{value}"\n' for key, value in settings.items()
            )
        else:
            assert postgres_uri is not None
            self._postgres = PostgresEngine(postgres_uri)
            url = postgres_uri.replace("postgresql://", "postgresql+psycopg://", 1)
            prefix = self._postgres.schema + "."
        (root / "segql.toml").write_text(
            CONFIG.format(url=url, segql_schema=self.segql_schema, prefix=prefix) + extra
        )

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.query(f'DROP SCHEMA IF EXISTS "{self.segql_schema}" CASCADE')
            self._postgres.close()

    def write_rules(self, text: str, name: str = "rules.segql") -> None:
        (self.root / "segments" / name).write_text(text)

    def load(self, tables: Mapping[str, Table]) -> None:
        if self.kind == "spark":
            from tests.support.spark import SparkEngine

            engine = SparkEngine()
            engine.query(f"CREATE NAMESPACE IF NOT EXISTS `{self.spark_namespace}`")
            engine.load(tables)
            try:
                for name in tables:
                    engine.query(
                        f"CREATE OR REPLACE TABLE `{self.spark_namespace}`.`{name}` "
                        f"USING iceberg AS SELECT * FROM `{name}`"
                    )
            finally:
                engine.close()
            return
        if self._postgres is not None:
            self._postgres.load(tables)
            return
        engine = DuckDBEngine(str(self.root / "warehouse.duckdb"))
        try:
            engine.load(tables)
        finally:
            engine.close()

    def run(
        self, as_of: datetime, segments: Sequence[str] | None = None, prune: bool = False
    ) -> RunResult:
        project = load_project(self.root)
        warehouse = connect(project.config)
        try:
            return Runner(project, warehouse).run(segments, as_of, prune=prune)
        finally:
            warehouse.close()

    def cli(
        self, *args: str, env: Mapping[str, str] | None = None, background: bool = False
    ) -> Any:
        command = [sys.executable, "-m", "segql.cli", "--project", str(self.root), *args]
        environment = {**os.environ, **(env or {})}
        if background:
            return subprocess.Popen(
                command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)

    def query(self, sql_body: str) -> list[tuple[Any, ...]]:
        """A query against segql's schema; ``{s}`` stands for the quoted schema name."""
        project = load_project(self.root)
        warehouse = connect(project.config, read_only=True)
        sql = sql_body.format(s=f'"{self.segql_schema}"')
        if self.kind == "spark":
            import sqlglot

            sql = sqlglot.transpile(sql, read="postgres", write="spark")[0]
        try:
            return warehouse.query(sql)
        finally:
            warehouse.close()

    def history(self) -> list[tuple[Any, ...]]:
        """(as_of, segment, person_id, change, reason, version), in a stable order."""
        rows = self.query(
            'SELECT "as_of", "segment", "person_id", "change", "reason", "version" '
            'FROM {s}."segql_history" ORDER BY "commit_seq", "segment", "person_id", "change"'
        )
        return [(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows]

    def members(self) -> set[tuple[str, str]]:
        return {
            (r[0], r[1])
            for r in self.query('SELECT "segment", "person_id" FROM {s}."segql_members"')
        }
