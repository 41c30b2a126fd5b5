"""The engine adapters: capabilities as data, the one URL map, and Snowflake's run lock.

Snowflake's lock is a lease row taken by MERGE (segql/engines/lease.py). fakesnow runs it
on DuckDB through two connections to one database: it shows who wins, the refusal, the
lease running out and a stale run failing at its commit. It cannot show Snowflake's own
locking of two MERGEs at the same instant (DuckDB raises a conflict instead of waiting).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlglot import exp

from segql.engines import (
    ADAPTERS,
    ENGINES,
    EngineAdapter,
    adapter_for_dialect,
    dialect_of_url,
    open_dbapi,
)
from segql.errors import SegqlError
from segql.project import project_from_text
from segql.runs.runner import Runner
from tests.support.engines import SnowflakeEngine
from tests.support.scenario import make_config, make_tables, person

RULES = "segment paid where status = 'paid'"


def test_one_engine_per_url_scheme() -> None:
    assert dialect_of_url("postgresql+psycopg://u@h/db") == "postgres"
    assert dialect_of_url("duckdb:///w.duckdb") == "duckdb"
    assert dialect_of_url("snowflake://acct/db") == "snowflake"
    assert dialect_of_url("databricks://token@host") == "spark"
    assert dialect_of_url("nosuch://x") == "nosuch"
    schemes = [s for adapter in ADAPTERS for s in adapter.URL_SCHEMES]
    assert len(schemes) == len(set(schemes)) == len(ENGINES)


def test_capabilities_are_data() -> None:
    runs = {a.DIALECT for a in ADAPTERS if a.RUNS}
    assert runs == {"duckdb", "postgres", "snowflake", "spark"}
    for adapter in ADAPTERS:
        if adapter.RUNS and adapter.COMMIT_PROTOCOL == "transaction":
            # a run needs a commit and one writer at a time
            assert adapter.SUPPORTS_TRANSACTIONS
            assert adapter.RUN_LOCK != "none"
        if adapter.RUNS and adapter.COMMIT_PROTOCOL == "swap":
            # no transaction: the swap of the head row decides which of two runs commits
            assert adapter.SUPPORTS_MERGE
        if adapter.RUN_LOCK == "lease":  # the lease is taken by one MERGE
            assert adapter.SUPPORTS_MERGE
    assert adapter_for_dialect("postgres").ENFORCED_KEYS
    assert not adapter_for_dialect("snowflake").ENFORCED_KEYS
    assert adapter_for_dialect("snowflake").RUN_LOCK == "lease"
    assert adapter_for_dialect("postgres").RUN_LOCK == "advisory"
    assert not adapter_for_dialect("spark").SUPPORTS_TRANSACTIONS


@pytest.fixture
def two_sessions(
    snowflake_engine: SnowflakeEngine,
) -> Iterator[tuple[EngineAdapter, EngineAdapter]]:
    import snowflake.connector

    snowflake_engine.load(make_tables(people=[person(1, status="paid"), person(2)]))
    other = snowflake.connector.connect(
        database=snowflake_engine.database, schema=snowflake_engine.schema, paramstyle="qmark"
    )
    first = open_dbapi(snowflake_engine._conn, "snowflake")
    second = open_dbapi(other, "snowflake")
    yield first, second
    other.close()


def _runner(warehouse: EngineAdapter) -> Runner:
    return Runner(project_from_text(make_config(), RULES), warehouse)


def test_a_second_snowflake_run_is_refused_while_one_holds_the_lock(
    two_sessions: tuple[EngineAdapter, EngineAdapter],
) -> None:
    first, second = two_sessions
    with _runner(first).run_lock(0.0):
        with pytest.raises(SegqlError) as refused:
            _runner(second).run(None, datetime(2026, 1, 10), wait=0.3)
        assert "another segql run holds this project's lock" in refused.value.message
        assert "--wait" in (refused.value.help or "")
    result = _runner(second).run(None, datetime(2026, 1, 10))
    assert result.commit_seq == 1


def test_commit_seqs_of_runs_from_two_sessions_are_distinct(
    two_sessions: tuple[EngineAdapter, EngineAdapter],
) -> None:
    first, second = two_sessions
    seqs = [
        _runner(session).run(None, datetime(2026, 1, day)).commit_seq
        for day, session in ((10, first), (11, second), (12, first))
    ]
    assert seqs == [1, 2, 3]


def test_a_run_whose_lease_was_taken_over_records_nothing(
    two_sessions: tuple[EngineAdapter, EngineAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two_sessions
    runner = _runner(first)
    taken_over: list[Any] = []

    def lease_ends_and_another_run_commits() -> None:
        table = exp.to_table('"segql"."segql_locks"')
        first.run(exp.update(table, {"expires_at": exp.Literal.number(0)}))
        taken_over.append(_runner(second).run(None, datetime(2026, 1, 10)))

    monkeypatch.setattr(first, "keep_locks", lease_ends_and_another_run_commits)
    with pytest.raises(SegqlError) as lost:
        runner.run(None, datetime(2026, 1, 10))
    assert "taken over" in lost.value.message
    assert taken_over[0].commit_seq == 1
    rows = first.query('SELECT "status", "commit_seq" FROM "segql"."segql_runs" ORDER BY 2')
    assert sorted((r[0], r[1]) for r in rows) == [("committed", 1), ("failed", None)]
    history = first.query('SELECT COUNT(*) FROM "segql"."segql_history"')
    assert history == [(1,)]  # the taking-over run's one enter, nothing of the stale run
