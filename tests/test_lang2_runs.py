"""Conditions on recorded membership (language.md 9.6) over real runs: each run reads the
history committed before its as-of time, a rerun at the same as-of sees the same history
(and so records nothing), and ``segql compile`` reads the project schema's history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from segql.engines import connect
from segql.project import load_project
from segql.reference import RecordedChange, evaluate
from tests.support.runtime import RuntimeProject
from tests.support.scenario import event, make_tables, person

D1 = datetime(2026, 1, 10)
DAY = timedelta(days=1)
RULES = """
segment paid where status = 'paid'
segment veteran where in paid and member of paid for 2 days
segment returning where did login within 1 day or ever in returning
segment winback where in paid and exited paid within 10 days
"""
LOGIN = event(3, "login", D1 - timedelta(hours=1))


def _tables(statuses: dict[int, str]):  # type: ignore[no-untyped-def]
    return make_tables(people=[person(i, status=s) for i, s in statuses.items()], events=[LOGIN])


@pytest.fixture(params=["duckdb", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeProject]:
    uri = request.getfixturevalue("postgres_server").uri if request.param == "postgres" else None
    project = RuntimeProject(tmp_path / "project", request.param, uri)
    yield project
    project.close()


def _members(runtime: RuntimeProject) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {name: set() for name in ("paid", "veteran", "returning")}
    found["winback"] = set()
    for segment, person_id in runtime.members():
        found[segment].add(person_id)
    return found


def test_runs_read_the_history_committed_before_them(runtime: RuntimeProject) -> None:
    runtime.write_rules(RULES)
    runtime.load(_tables({1: "paid", 2: "paid", 3: "free"}))
    runtime.run(D1)  # no history yet: every history condition is false
    assert _members(runtime) == {
        "paid": {"1", "2"}, "veteran": set(), "returning": {"3"}, "winback": set()
    }  # fmt: skip
    runtime.load(_tables({1: "paid", 2: "free", 3: "free"}))
    runtime.run(D1 + DAY)  # 3's login is over a day old: `ever in returning` keeps 3
    assert _members(runtime) == {
        "paid": {"1"}, "veteran": set(), "returning": {"3"}, "winback": set()
    }  # fmt: skip
    runtime.load(_tables({1: "paid", 2: "paid", 3: "free"}))
    runtime.run(D1 + 2 * DAY)  # 1 paid since D1 = T - 2 days; 2 left a day ago
    expected_d3 = {"paid": {"1", "2"}, "veteran": {"1"}, "returning": {"3"}, "winback": {"2"}}
    assert _members(runtime) == expected_d3
    recorded = len(runtime.history())
    runtime.run(D1 + 2 * DAY)  # the same as-of: its own changes are not read
    assert _members(runtime) == expected_d3
    assert len(runtime.history()) == recorded
    runtime.run(D1 + 4 * DAY)  # 2 came back at D1 + 2d, two days ago
    expected_d5 = {"paid": {"1", "2"}, "veteran": {"1", "2"}, "returning": {"3"}, "winback": {"2"}}
    assert _members(runtime) == expected_d5

    # `segql compile` at that as-of reads the same history from the project's schema
    project = load_project(runtime.root)
    sql = project.compile(dialect=runtime.kind, as_of=D1 + 4 * DAY)
    warehouse = connect(project.config, read_only=True)
    try:
        rows = warehouse.query(sql)
    finally:
        warehouse.close()
    compiled: dict[str, set[str]] = {name: set() for name in expected_d5}
    for segment, person_id in rows:
        compiled[segment].add(str(person_id))
    assert compiled == expected_d5

    # and so does the reference evaluator, given the history
    history = runtime.query(
        'SELECT "segment", "person_id", "change", "as_of", "commit_seq" FROM {s}."segql_history"'
    )
    changes = [RecordedChange(s, p, c, a, int(q)) for s, p, c, a, q in history]
    tables = _tables({1: "paid", 2: "paid", 3: "free"})
    prefix = project.config.entity.table.removesuffix("people")  # a schema on PostgreSQL
    data = {prefix + name: (table.column_names, table.rows) for name, table in tables.items()}
    definitions = list(project.definitions.segments.values())
    found = evaluate(definitions, project.config, data, D1 + 4 * DAY, history=changes)
    assert {k: {str(p) for p in v} for k, v in found.items()} == expected_d5


def test_evaluate_before_any_run_reads_no_history(tmp_path: Path) -> None:
    """``segql eval --person`` before the first run (segql's tables not made yet): the
    conditions on recorded membership are false, not an error; after runs, they read it."""
    runtime = RuntimeProject(tmp_path / "project", "duckdb")
    runtime.write_rules(RULES)
    runtime.load(_tables({1: "paid", 2: "paid", 3: "free"}))
    project = load_project(runtime.root)
    assert project.evaluate(["1", "3"], as_of=D1) == {"1": ["paid"], "3": ["returning"]}
    runtime.run(D1)
    runtime.load(_tables({1: "paid", 2: "free", 3: "free"}))
    runtime.run(D1 + 2 * DAY)
    assert project.evaluate(["1", "2", "3"], as_of=D1 + 2 * DAY) == {
        "1": ["paid", "veteran"], "2": [], "3": ["returning"]
    }  # fmt: skip


def test_preview_and_explain_before_any_run_read_no_history(tmp_path: Path) -> None:
    """``segql preview`` and ``segql explain`` of conditions on recorded membership before
    the first run: false (nobody), not a missing-table error; after a run, they read it."""
    runtime = RuntimeProject(tmp_path / "project", "duckdb")
    runtime.write_rules(RULES)
    runtime.load(_tables({1: "paid", 2: "paid", 3: "free"}))
    project = load_project(runtime.root)
    assert project.preview("ever in paid", as_of=D1) == (0, [])
    assert project.preview("not ever in paid", as_of=D1)[0] == 3
    before = runtime.cli("explain", "veteran", "--as-of", D1.isoformat(), "--format", "csv")
    assert before.returncode == 0, before.stderr
    runtime.run(D1)
    assert project.preview("ever in paid", as_of=D1 + DAY) == (2, [1, 2])
