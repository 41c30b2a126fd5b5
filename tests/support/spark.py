"""Spark SQL for the engine tests: PySpark in local mode, one SparkSession per process.

``SparkEngine`` has the interface of the engines in :mod:`tests.support.engines`
(``name``, ``dialect``, ``load(tables)``, ``query(sql)``, ``close()``).

The session
-----------
Starting a JVM costs seconds, so :func:`spark_session` creates ONE session, ``local[2]``,
and every engine shares it (it is stopped at interpreter exit, or by the session-scoped
fixture). Settings: ``spark.sql.session.timeZone=UTC`` (every ``TIMESTAMP`` is read and
written in UTC), ``spark.sql.shuffle.partitions=2`` (tiny tables: two tasks per shuffle
instead of 200), no web UI, ANSI mode left at the Spark 4 default (on, like Databricks SQL),
and the driver bound to 127.0.0.1.

Tables
------
``load`` registers each table as a temporary view of an in-memory DataFrame: nothing is
written to disk, and a view replaces any table of the same name in the session. Views
belong to the engine that created them and are dropped by ``close()``.

=========  ================================================================
ColumnType Spark type
=========  ================================================================
integer    BIGINT
double     DOUBLE
text       STRING
boolean    BOOLEAN
timestamp  TIMESTAMP (with the UTC session time zone; see below)
date       DATE
json       STRING holding the JSON text (read with ``get_json_object``)
=========  ================================================================

Timestamps: ``TIMESTAMP`` (Spark's instant type, the Databricks default), not
``TIMESTAMP_NTZ``: it is what Databricks tables hold and what ``CAST(... AS TIMESTAMP)``
in the compiled SQL produces, so no comparison mixes the two types. With the session time
zone pinned to UTC, a naive UTC ``datetime`` is loaded as that UTC instant (it is made
aware before PySpark sees it, since PySpark reads naive values in the *process's* local
zone) and ``query`` returns naive UTC ``datetime`` values, like the other engines.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import os
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from tests.support.engines import ColumnType, Table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SparkEngine", "spark_session", "stop_spark_session"]

_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.adaptive.enabled": "false",  # tiny plans: re-optimising costs more than it saves
    # Compiling generated Java for each tiny query costs more than interpreting it.
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.warehouse.dir": "",  # set per process in spark_session()
}


@cache
def spark_session() -> SparkSession:
    """The one local SparkSession of this process (created on first use)."""
    import tempfile

    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    warehouse = tempfile.mkdtemp(prefix="segql-spark-warehouse-")
    builder = SparkSession.builder.master("local[2]").appName("segql-tests")
    for key, value in {**_CONF, **_iceberg_ready(), "spark.sql.warehouse.dir": warehouse}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    atexit.register(stop_spark_session)
    return session


def _iceberg_ready() -> dict[str, str]:
    """Static settings an Iceberg catalog needs at start-up (jars, SQL extensions), so that
    the run tests (tests/test_spark_runs.py) can add one to the shared session."""
    from segql.engines.spark import local_jars

    jars = local_jars()
    if not jars:
        return {}
    return {
        "spark.jars": ",".join(jars),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
    }


def stop_spark_session() -> None:
    """Stop the shared session if it was started."""
    if spark_session.cache_info().currsize:
        spark_session().stop()
        spark_session.cache_clear()


def _spark_type(ctype: ColumnType) -> Any:
    from pyspark.sql import types

    return {
        "integer": types.LongType(),
        "double": types.DoubleType(),
        "text": types.StringType(),
        "boolean": types.BooleanType(),
        "timestamp": types.TimestampType(),
        "date": types.DateType(),
        "json": types.StringType(),
    }[ctype]


def _to_spark(value: Any, ctype: ColumnType) -> Any:
    if value is not None and ctype == "timestamp":
        return value.replace(tzinfo=_dt.timezone.utc)  # an instant, whatever the process TZ
    return value


def _from_spark(value: Any) -> Any:
    """PySpark returns TIMESTAMP values as naive datetimes in the process's local zone."""
    if isinstance(value, _dt.datetime) and value.tzinfo is None:
        return value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value


class SparkEngine:
    """Spark SQL on the shared local session; tables are temporary views."""

    name = "spark"
    dialect = "spark"

    def __init__(self) -> None:
        self.session = spark_session()
        self.views: set[str] = set()

    def load(self, tables: Mapping[str, Table]) -> None:
        from pyspark.sql import types

        for table_name, table in tables.items():
            schema = types.StructType(
                [
                    types.StructField(column, _spark_type(ctype), nullable=True)
                    for column, ctype in table.columns
                ]
            )
            kinds = [ctype for _, ctype in table.columns]
            rows = [
                tuple(_to_spark(v, t) for v, t in zip(row, kinds, strict=True))
                for row in table.normalized_rows()
            ]
            frame = self.session.createDataFrame(rows, schema=schema, verifySchema=False)
            frame.createOrReplaceTempView(table_name)
            self.views.add(table_name)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(_from_spark(v) for v in row) for row in self.session.sql(sql).collect()]

    def close(self) -> None:
        for view in self.views:
            self.session.catalog.dropTempView(view)
        self.views.clear()
