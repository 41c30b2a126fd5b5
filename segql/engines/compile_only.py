"""Warehouses segql compiles for but does not run on (yet): Spark, BigQuery, Redshift, Trino.

They connect through SQLAlchemy where a driver is installed (``segql check``, ``preview``
and the read-only commands work); ``segql run`` refuses them (``RUNS = False``).
"""

from __future__ import annotations

from segql.engines.base import EngineAdapter


class SparkAdapter(EngineAdapter):
    """Spark SQL and Databricks: no multi-statement transactions. A run on Spark needs
    its own commit protocol (runtime: rows tagged by run, one atomic swap of the
    committed marker), which goes in ``commit()`` here."""

    DIALECT = "spark"
    URL_SCHEMES = ("databricks", "hive")
    SUPPORTS_TRANSACTIONS = False
    SUPPORTS_MERGE = True  # Delta Lake, Iceberg


class BigQueryAdapter(EngineAdapter):
    DIALECT = "bigquery"
    URL_SCHEMES = ("bigquery",)
    SUPPORTS_MERGE = True


class RedshiftAdapter(EngineAdapter):
    DIALECT = "redshift"
    URL_SCHEMES = ("redshift",)
    SUPPORTS_MERGE = True


class TrinoAdapter(EngineAdapter):
    DIALECT = "trino"
    URL_SCHEMES = ("trino",)
    SUPPORTS_TRANSACTIONS = False  # depends on the connector
    SUPPORTS_MERGE = True
