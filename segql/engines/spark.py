"""Spark SQL through a SparkSession: ``spark://local`` in this process, ``sc://`` Spark Connect.

``[warehouse.spark]`` settings go to the session builder as they are. Spark has no
``BEGIN ... COMMIT``: a run commits with the protocol of ``segql.runs.swap_commit`` (rows tagged
with the run's id, one compare-and-swap of a head row), and segql's own tables are Apache
Iceberg tables (``USING iceberg``), which give each statement its own atomic commit.

A run's scratch tables (the new membership, the changes) are session-local views of
checkpointed rows: nothing is written to the lake for them. Spark cannot delete from,
insert into or update a view, so ``SparkTempTables`` turns those statements into a new
cached view of the changed rows and points the name at it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from sqlglot import exp

from segql.compile.sqltext import generate_sql
from segql.engines.base import EngineAdapter, LockKind
from segql.errors import SegqlWarehouseError

LOCAL_URL = "spark://local"
# The Apache Iceberg runtime for Spark 3.5 (Scala 2.12) that the PyPI package
# snowpark-connect-deps-iceberg==1.0.1 ships, and its SHA-256: a local session loads it
# only if the file is that one (1.0.3's jar lacks the shaded Jackson classes).
ICEBERG_JAR = "iceberg-spark-runtime-3.5_2.12-1.9.2.jar"
ICEBERG_JAR_SHA256 = "c40ae0a8e2673bb5c01951b7d15aae2224a534f8331f4274ce2082776116a044"
# Debian's libpostgresql-jdbc-java: the driver of an Iceberg JDBC catalog on PostgreSQL.
POSTGRES_JDBC_JAR = Path("/usr/share/java/postgresql.jar")
_DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",  # segql reads and writes times in UTC
    "spark.ui.showConsoleProgress": "false",  # progress bars would corrupt CSV/JSON output
}


def iceberg_jar() -> Path | None:
    """The pinned Iceberg runtime jar if its package is installed (checked by hash)."""
    try:
        import snowpark_connect_deps_iceberg as package
    except ImportError:
        return None
    jar = Path(package.__file__).parent / "jars" / ICEBERG_JAR
    if not jar.exists():
        return None
    if hashlib.sha256(jar.read_bytes()).hexdigest() != ICEBERG_JAR_SHA256:
        raise SegqlWarehouseError(
            f"{jar} is not the Iceberg runtime segql was tested with (its SHA-256 differs)",
            help="pip install 'snowpark-connect-deps-iceberg==1.0.1'",
        )
    return jar


def local_jars() -> list[str]:
    """Jars a local session loads when ``spark.jars`` is not set: Iceberg, the JDBC driver."""
    jars = [iceberg_jar(), POSTGRES_JDBC_JAR if POSTGRES_JDBC_JAR.exists() else None]
    return [str(jar) for jar in jars if jar is not None]


def builder_settings(url: str, settings: dict[str, str]) -> dict[str, str]:
    """What the builder gets: segql's defaults, then ``[warehouse.spark]`` as it is."""
    merged = {**_DEFAULTS, **settings}
    if url == LOCAL_URL and "spark.jars" not in merged and "spark.jars.packages" not in merged:
        jars = local_jars()
        if jars:
            merged["spark.jars"] = ",".join(jars)
    return merged


def open_spark(url: str, settings: dict[str, str]) -> Any:
    """The SparkSession of ``url`` (an active one in this process is used as it is)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SegqlWarehouseError(
            "Spark needs PySpark", help="pip install 'pyspark>=3.5,<3.6'"
        ) from None
    builder = SparkSession.builder
    if url == LOCAL_URL:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.master("local[*]").appName("segql")
    elif url.startswith("sc://"):
        builder = builder.remote(url)
    else:
        raise SegqlWarehouseError(
            f"a Spark warehouse URL is '{LOCAL_URL}' or 'sc://HOST:PORT', not '{url}'"
        )
    for key, value in builder_settings(url, settings).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as error:  # the JVM, the jars, the Connect server
        raise SegqlWarehouseError(f"cannot start the Spark session: {error}") from None
    return session


class SparkSqlSession:
    """Statements through ``SparkSession.sql``; rows as tuples, times as naive UTC."""

    def __init__(self, spark: Any):
        self.spark = spark

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if params:
            raise SegqlWarehouseError("the Spark session takes no bound parameters")
        try:
            rows = self.spark.sql(sql).collect()
        except Exception as error:  # AnalysisException, Py4JJavaError, SparkConnectException
            raise SegqlWarehouseError(f"Spark refused a statement: {_first_line(error)}") from None
        return [tuple(_naive_utc(value) for value in row) for row in rows]

    def materialize(self, view: str, select: str) -> None:
        """``view``: the rows of ``select`` now, cut from the tables they came from. A
        ``CACHE TABLE`` keeps its plan, and Spark recomputes it when one of those tables
        is written (the diff would be made again after the run's own commit)."""
        try:
            frame = self.spark.sql(select)
            checkpoint = getattr(frame, "localCheckpoint", None)
            if checkpoint is None:  # Spark Connect 3.5 has none: cache the view
                frame.createOrReplaceTempView(view)
                self.spark.sql(f"CACHE TABLE `{view}`").collect()
            else:
                checkpoint(eager=True).createOrReplaceTempView(view)
        except Exception as error:
            raise SegqlWarehouseError(f"Spark refused a statement: {_first_line(error)}") from None

    def reflect_columns(self, table: str) -> list[tuple[str, str]] | None:
        raise NotImplementedError

    def close(self) -> None:
        """The session stays (it is the process's); only segql's scratch views go."""


def _first_line(error: BaseException) -> str:
    """The error's first line; for a JVM error, the Java exception's (Py4J's own first
    line only names the call)."""
    text = str(getattr(error, "desc", None) or error).strip()
    lines = [line.strip(" :") for line in text.splitlines() if line.strip(" :")]
    if len(lines) > 1 and lines[0].startswith("An error occurred while calling"):
        return lines[1]
    return lines[0] if lines else type(error).__name__


def _naive_utc(value: Any) -> Any:
    """PySpark returns a TIMESTAMP as a naive datetime in the process's local zone."""
    if isinstance(value, _dt.datetime) and value.tzinfo is None:
        return value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value


class SparkTempTables:
    """A run's temporary tables as cached views, one generation per change.

    ``segql_changes`` is read through ``segql_changes__N``, its latest generation; a DELETE,
    INSERT or UPDATE of it caches generation N+1 made from N, and the statement's other
    references are pointed at the latest generation (aliased to the name they used)."""

    def __init__(self, adapter: SparkSessionAdapter):
        self.adapter = adapter
        self.generation: dict[str, int] = {}
        # Views live in the session, which other adapters (and runs) may share.
        self.token = uuid.uuid4().hex[:8]

    def current(self, name: str) -> exp.Table:
        view = f"{name}__{self.token}_{self.generation[name]}"
        return exp.Table(this=exp.to_identifier(view, quoted=True))

    def forget(self, name: str) -> list[exp.Expr]:
        """Drop every generation of a scratch table (dropping a temporary view uncaches it;
        ``UNCACHE TABLE`` would re-read a view whose source view is already gone)."""
        statements: list[exp.Expr] = []
        for generation in range(self.generation.pop(name), 0, -1):
            view = exp.Table(
                this=exp.to_identifier(f"{name}__{self.token}_{generation}", quoted=True)
            )
            statements.append(exp.Drop(tables=[view], kind="VIEW", exists=True))
        return statements

    def is_temp(self, node: exp.Expr) -> bool:
        """A run's scratch table: an unqualified table name, or a bare name in FROM."""
        if isinstance(node, exp.Identifier):
            return isinstance(node.parent, exp.From) and node.name in self.generation
        return (
            isinstance(node, exp.Table)
            and not node.args.get("db")
            and (node.name in self.generation)
        )

    def translate(self, statement: exp.Expr) -> list[exp.Expr]:
        """The statements Spark runs for one of segql's."""
        if isinstance(statement, exp.Create) and _is_temporary(statement):
            name = statement.this.name
            query = statement.expression
            return [self._cache(name, self.pointed(query))]
        if isinstance(statement, exp.Drop) and _unqualified(statement):
            # A run's scratch table (never a table of the lake: those are qualified).
            statements: list[exp.Expr] = []
            for table in statement.args.get("tables") or []:
                if table.name in self.generation:
                    statements.extend(self.forget(table.name))
            return statements
        target = statement.this
        if isinstance(target, exp.Schema):
            target = target.this
        if isinstance(statement, (exp.Delete, exp.Insert, exp.Update)) and self.is_temp(target):
            return [self._rewrite(statement, target.name)]
        return [self.pointed(statement)]

    def pointed(self, statement: exp.Expr) -> exp.Expr:
        def point(node: exp.Expr) -> exp.Expr:
            if not self.is_temp(node):
                return node
            table = self.current(node.name)
            alias = node.args.get("alias") if isinstance(node, exp.Table) else None
            table.set("alias", alias or _alias(node.name))
            return table

        return statement.copy().transform(point)

    def _cache(self, name: str, query: exp.Expr) -> exp.Expr:
        self.generation[name] = self.generation.get(name, 0) + 1
        return exp.Cache(this=self.current(name), expression=query, lazy=False)

    def _rewrite(self, statement: exp.Expr, name: str) -> exp.Expr:
        source = self.current(name)
        source.set("alias", _alias(name))
        condition = statement.args.get("where")
        keep: exp.Expr | None = condition.this if condition is not None else None
        if isinstance(statement, exp.Delete):
            query: exp.Query = exp.select(exp.Star()).from_(source)
            if keep is not None:
                removed = exp.Coalesce(this=self.pointed(keep), expressions=[exp.false()])
                query = query.where(exp.not_(removed))
            else:
                query = query.where(exp.false())
        elif isinstance(statement, exp.Insert):
            columns = (
                [c.name for c in statement.this.expressions]
                if isinstance(statement.this, exp.Schema)
                else self.columns(name)
            )
            kept = exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(source)
            query = exp.union(kept, self.pointed(statement.expression), distinct=False)
        else:  # UPDATE: each set column takes its new value where the condition holds
            changed = {e.this.name: self.pointed(e.expression) for e in statement.expressions}
            selected: list[exp.Expr] = []
            for column in self.columns(name):
                value: exp.Expr = exp.column(column, table=name, quoted=True)
                if column in changed:
                    value = changed[column]
                    if keep is not None:
                        value = exp.Case(
                            ifs=[exp.If(this=self.pointed(keep), true=value)],
                            default=exp.column(column, table=name, quoted=True),
                        )
                selected.append(exp.alias_(value, column, quoted=True))
            query = exp.select(*selected).from_(source)
        return self._cache(name, query)

    def columns(self, name: str) -> list[str]:
        table = exp.Describe(this=self.current(name))
        return [row[0] for row in self.adapter.query(self.adapter.sql(table)) if row[0]]


def _unqualified(drop: exp.Drop) -> bool:
    tables = drop.args.get("tables") or []
    return bool(tables) and all(not t.args.get("db") for t in tables)


def _is_temporary(create: exp.Create) -> bool:
    properties = create.args.get("properties")
    return properties is not None and any(
        isinstance(p, exp.TemporaryProperty) for p in properties.expressions
    )


def _alias(name: str) -> exp.TableAlias:
    return exp.TableAlias(this=exp.to_identifier(name, quoted=True))


class SparkAdapter(EngineAdapter):
    """Spark SQL and Databricks through SQLAlchemy (``databricks://``, ``hive://``):
    segql compiles, checks and reads; ``segql run`` needs a SparkSession
    (``SparkSessionAdapter``)."""

    DIALECT = "spark"
    URL_SCHEMES = ("databricks", "hive")
    SUPPORTS_TRANSACTIONS = False
    SUPPORTS_MERGE = True  # Iceberg, Delta Lake
    DECLARE_KEYS = False  # no PRIMARY KEY in Spark SQL


class SparkSessionAdapter(SparkAdapter):
    """Spark through a SparkSession (``spark://local``, ``sc://HOST:PORT``): ``segql run``
    commits with the swap protocol (``segql.runs.swap_commit``) on Iceberg tables."""

    URL_SCHEMES = ("spark", "sc")
    RUNS = True
    COMMIT_PROTOCOL = "swap"
    RUN_LOCK: ClassVar[LockKind] = "none"  # two runs at once: one wins the commit's swap
    TABLE_FORMAT = "ICEBERG"

    def __init__(self, session: SparkSqlSession):
        super().__init__(session)
        self.temps = SparkTempTables(self)
        self.column_types: dict[str, list[tuple[str, str]]] = {}

    @classmethod
    def open(cls, url: str, settings: dict[str, str]) -> SparkSessionAdapter:
        return cls(SparkSqlSession(open_spark(url, settings)))

    def sql(self, statement: exp.Expr) -> str:
        return generate_sql(statement, self.dialect.sqlglot)

    def run(self, statement: exp.Expr) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        if isinstance(statement, exp.Insert):
            statement = self.every_column(statement)
        for translated in self.temps.translate(statement):
            if isinstance(translated, exp.Cache):
                view, select = translated.this.name, self.sql(translated.expression)
                self.session.materialize(view, select)  # type: ignore[attr-defined]
                rows = []
            else:
                rows = self.query(self.sql(translated))
        return rows

    def every_column(self, insert: exp.Insert) -> exp.Insert:
        """The INSERT with every column of its table named: Spark fills no missing column
        of an Iceberg table (they are nulls here, as on the other engines)."""
        target = insert.this
        if not isinstance(target, exp.Schema) or self.temps.is_temp(target.this):
            return insert
        table = target.this
        named = [column.name for column in target.expressions]
        name = ".".join(part.name for part in table.parts)
        if name not in self.column_types:
            self.column_types[name] = self.table_columns(name) or []
        columns = self.column_types[name]
        if not columns or {c for c, _ in columns} <= set(named):
            return insert
        given = exp.TableAlias(
            this=exp.to_identifier("given"),
            columns=[exp.to_identifier(column, quoted=True) for column in named],
        )
        source = exp.Subquery(this=insert.expression, alias=given)
        values = [
            exp.column(column, quoted=True)
            if column in named
            else exp.cast(exp.null(), exp.DataType.build(kind, dialect="spark"))
            for column, kind in columns
        ]
        every = exp.Schema(
            this=table, expressions=[exp.to_identifier(c, quoted=True) for c, _ in columns]
        )
        return exp.Insert(this=every, expression=exp.select(*values).from_(source))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """No multi-statement transactions: each statement commits on its own (Iceberg).
        What groups statements elsewhere (dispatch's deliveries and cursor) stays
        at-least-once: a crash between them delivers again, never loses a change."""
        yield

    def table_properties(self) -> list[exp.Expr]:
        """segql's own tables are Iceberg tables."""
        return [exp.FileFormatProperty(this=exp.var(self.TABLE_FORMAT))]

    def table_columns(self, table: str) -> list[tuple[str, str]] | None:
        parts = [exp.to_identifier(part, quoted=True) for part in table.split(".")]
        name = exp.Table(this=parts[-1], db=parts[-2] if len(parts) > 1 else None)
        if len(parts) > 2:
            name.set("catalog", parts[-3])
        try:
            rows = self.query(self.sql(exp.Describe(this=name)))
        except SegqlWarehouseError as error:
            if "TABLE_OR_VIEW_NOT_FOUND" in error.message or "not found" in error.message:
                return None
            raise
        columns = []
        for column, data_type, *_ in rows:
            if not column or column.startswith("#"):  # partition and detail sections
                break
            columns.append((column, data_type))
        return columns or None

    def close(self) -> None:
        scratch = [exp.to_table(name) for name in self.temps.generation]
        if scratch:
            self.run(exp.Drop(tables=scratch, kind="TABLE", exists=True))
        self.session.close()
