"""Engines: one adapter class per warehouse, and the one map from URL scheme to engine.

``connect(config)`` opens the project's warehouse; the rest of segql talks to the
``EngineAdapter`` it returns, asking its flags (``RUNS``, ``RUN_LOCK``, ``ENFORCED_KEYS``...)
and calling its methods (``lock``, ``commit``, ``catalog``), never testing its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segql.config import ProjectConfig, expand_env
from segql.engines.base import EngineAdapter, LockKind, Session
from segql.engines.compile_only import BigQueryAdapter, RedshiftAdapter, TrinoAdapter
from segql.engines.duckdb import DuckDBAdapter
from segql.engines.postgres import PostgresAdapter
from segql.engines.sessions import DbApiSession, DuckDBSession, SqlAlchemySession
from segql.engines.snowflake import SnowflakeAdapter
from segql.engines.spark import SparkAdapter, SparkSessionAdapter
from segql.errors import SegqlWarehouseError

__all__ = [
    "ADAPTERS",
    "ENGINES",
    "EngineAdapter",
    "LockKind",
    "Session",
    "adapter_for_dialect",
    "connect",
    "dialect_of_url",
    "duckdb_path",
    "open_dbapi",
    "open_duckdb",
    "tables_of",
]

ADAPTERS: tuple[type[EngineAdapter], ...] = (
    DuckDBAdapter,
    PostgresAdapter,
    SnowflakeAdapter,
    SparkAdapter,
    SparkSessionAdapter,
    BigQueryAdapter,
    RedshiftAdapter,
    TrinoAdapter,
)
# The one map from URL scheme (``postgresql`` of ``postgresql+psycopg://...``) to engine.
ENGINES: dict[str, type[EngineAdapter]] = {
    scheme: adapter for adapter in ADAPTERS for scheme in adapter.URL_SCHEMES
}


def url_scheme(url: str) -> str:
    return url.partition(":")[0].partition("+")[0].lower()


def dialect_of_url(url: str) -> str:
    """The segql dialect a warehouse URL reaches (the scheme itself if no engine has it)."""
    scheme = url_scheme(url)
    return ENGINES[scheme].DIALECT if scheme in ENGINES else scheme


def adapter_for_dialect(dialect: str) -> type[EngineAdapter]:
    """The adapter class of a segql dialect name."""
    for adapter in ADAPTERS:
        if dialect == adapter.DIALECT:
            return adapter
    raise SegqlWarehouseError(f"no engine for dialect '{dialect}'")


def duckdb_path(config: ProjectConfig) -> str | None:
    """The DuckDB file of a ``duckdb:///path`` URL, relative to the project; None otherwise."""
    url = expand_env(config.warehouse.url, "[warehouse] url")
    if ENGINES.get(url_scheme(url)) is not DuckDBAdapter:
        return None
    path = url.removeprefix("duckdb://").removeprefix("/")
    if path in ("", ":memory:"):
        return ":memory:"
    if url.startswith("duckdb:////"):
        return "/" + path.lstrip("/")
    return str((config.root / path).resolve())


def open_duckdb(path: str, read_only: bool = False, wait: float = 0.0) -> DuckDBAdapter:
    """A DuckDB file (or ``:memory:``) through DuckDB's own API."""
    return DuckDBAdapter(DuckDBSession(path, read_only=read_only, wait=wait))


def open_dbapi(connection: Any, dialect: str) -> EngineAdapter:
    """An open DB-API connection (autocommit) to a warehouse of that dialect, used as it is."""
    return adapter_for_dialect(dialect)(DbApiSession(connection))


def connect(config: ProjectConfig, read_only: bool = False, wait: float = 0.0) -> EngineAdapter:
    """Open the project's warehouse."""
    path = duckdb_path(config)
    if path is not None:
        if path != ":memory:" and not Path(path).exists():
            raise SegqlWarehouseError(
                f"the DuckDB file {path} does not exist",
                help="check [warehouse] url in segql.toml (a relative path is relative to it)",
            )
        return open_duckdb(path, read_only=read_only, wait=wait)
    url = expand_env(config.warehouse.url, "[warehouse] url")
    adapter = ENGINES.get(url_scheme(url))
    if adapter is None:
        raise SegqlWarehouseError(
            f"no segql engine for the warehouse URL scheme '{url_scheme(url)}'",
            help="schemes: " + ", ".join(sorted(ENGINES)),
        )
    if adapter is SparkSessionAdapter:
        return SparkSessionAdapter.open(url, config.warehouse.spark)
    return adapter(SqlAlchemySession(url))


def tables_of(config: ProjectConfig) -> Sequence[str]:
    """Every table segql.toml names."""
    tables = [config.entity.table]
    if config.events is not None:
        tables.append(config.events.table)
    tables += [s.table for s in config.sources.values()]
    return tables
