"""Warehouses segql compiles for but does not run on (yet): BigQuery, Redshift, Trino.

They connect through SQLAlchemy where a driver is installed (``segql check``, ``preview``
and the read-only commands work); ``segql run`` refuses them (``RUNS = False``).
"""

from __future__ import annotations

from segql.engines.base import EngineAdapter


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
