"""Runs that start at once on a fresh PostgreSQL schema: segql's tables are created
inside the run lock, so none of them fails on the catalog (two CREATE TABLE IF NOT EXISTS
at once collide on PostgreSQL's catalog) and the layout is recorded once."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from segql.engines import connect
from segql.project import load_project
from segql.runs.runner import Runner
from tests.support.engines import PostgresServerHandle
from tests.support.runtime import RuntimeProject
from tests.support.scenario import make_tables, person

RUNS_AT_ONCE = 4


def test_first_runs_at_once_on_a_fresh_schema(
    postgres_server: PostgresServerHandle, tmp_path: Path
) -> None:
    runtime = RuntimeProject(tmp_path / "project", "postgres", postgres_server.uri)
    try:
        runtime.write_rules("segment paid where status = 'paid'")
        runtime.load(make_tables(people=[person(1, status="paid"), person(2, status="free")]))
        start = threading.Barrier(RUNS_AT_ONCE)
        errors: list[BaseException] = []

        def first_run() -> None:
            project = load_project(runtime.root)
            warehouse = connect(project.config)
            try:
                start.wait(timeout=30)
                Runner(project, warehouse).run(None, datetime(2026, 1, 10), wait=60)
            except BaseException as error:
                errors.append(error)
            finally:
                warehouse.close()

        threads = [threading.Thread(target=first_run) for _ in range(RUNS_AT_ONCE)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert runtime.members() == {("paid", "1")}
        assert runtime.query('SELECT COUNT(*) FROM {s}."segql_meta"') == [(1,)]
        seqs = runtime.query('SELECT "commit_seq" FROM {s}."segql_runs" ORDER BY 1')
        assert [int(s) for (s,) in seqs] == list(range(1, RUNS_AT_ONCE + 1))
        assert len(runtime.history()) == 1
    finally:
        runtime.close()
