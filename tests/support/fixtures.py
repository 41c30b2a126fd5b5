"""Pytest fixtures for the real-engine harness (:mod:`tests.support.engines`).

Registered for the whole suite by ``tests/conftest.py`` (``pytest_plugins``); importing
everything from this module into a conftest works as well.

* ``postgres_server`` (session): ONE pgserver PostgreSQL for the whole session, data dir in a
  pytest tmp dir, stopped (and its data dir deleted) at session end.  If it cannot start, the
  Postgres tests are skipped with the reason -- except when ``CI=true``, where they fail.
* ``duckdb_engine`` / ``postgres_engine`` / ``snowflake_engine`` (function): a fresh, empty
  engine per test (in-memory DuckDB; a new Postgres schema; a new fakesnow database).
* ``engine`` (function): parametrized over all three, with test ids ``duckdb``, ``postgres``
  and ``snowflake``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.engines import (
    ENGINE_NAMES,
    DuckDBEngine,
    Engine,
    PostgresEngine,
    PostgresServerHandle,
    SnowflakeEngine,
    in_ci,
    start_postgres,
)

__all__ = [
    "duckdb_engine",
    "engine",
    "postgres_engine",
    "postgres_server",
    "snowflake_engine",
]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServerHandle]:
    try:
        handle = start_postgres(tmp_path_factory.mktemp("pgserver"))
    except Exception as exc:  # any start-up failure: report it, skip or fail per CI
        reason = f"could not start PostgreSQL via pgserver: {type(exc).__name__}: {exc}"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def duckdb_engine() -> Iterator[DuckDBEngine]:
    eng = DuckDBEngine()
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def postgres_engine(postgres_server: PostgresServerHandle) -> Iterator[PostgresEngine]:
    eng = PostgresEngine(postgres_server.uri)
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def snowflake_engine() -> Iterator[SnowflakeEngine]:
    eng = SnowflakeEngine()
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(params=ENGINE_NAMES)
def engine(request: pytest.FixtureRequest) -> Engine:
    result: Engine = request.getfixturevalue(f"{request.param}_engine")
    return result
