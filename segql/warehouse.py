"""The names segql used before ``segql.engines``: kept so that imports keep working.

New code imports from ``segql.engines``.
"""

from __future__ import annotations

from segql.engines import EngineAdapter, connect, duckdb_path, open_dbapi, open_duckdb, tables_of

Warehouse = EngineAdapter
DuckDBWarehouse = open_duckdb
DbApiWarehouse = open_dbapi

__all__ = [
    "DbApiWarehouse",
    "DuckDBWarehouse",
    "Warehouse",
    "connect",
    "duckdb_path",
    "tables_of",
]
