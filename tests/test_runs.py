"""Runs and membership history, on a DuckDB file and on PostgreSQL.

The scenario's expected history was written by hand from the rules and the data; the
crash tests kill ``segql run`` with SIGKILL at each step and check that a rerun leaves
the same history as a run that was never interrupted.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from segql.compile.compiler import table_ref
from segql.engines import EngineAdapter as Warehouse
from segql.engines import connect, open_dbapi, open_duckdb
from segql.project import load_project, project_from_text
from segql.runs.runner import Runner
from tests.support.engines import SnowflakeEngine, Table
from tests.support.runtime import RuntimeProject
from tests.support.scenario import event, make_config, make_tables, person

D = datetime
RULES_V1 = """
segment active where did login within 7 days
segment paid where status = 'paid'
segment engaged
  enter when count(login within 30 days) >= 2
  exit when count(login within 30 days) < 1
"""
RULES_V2 = """
segment active where did login within 1 day
segment engaged
  enter when count(login within 30 days) >= 2
  exit when count(login within 30 days) < 1
"""
TABLES = make_tables(
    people=[person(1, status="paid"), person(2, status="free"), person(3, status="paid")],
    events=[
        event(1, "login", D(2026, 1, 8)),
        event(1, "login", D(2026, 1, 28)),
        event(2, "login", D(2026, 1, 9)),
        event(2, "login", D(2026, 1, 15)),
    ],
)

EXPECTED_HISTORY = [
    (D(2026, 1, 10), "active", "1", "enter", "rules", 1),
    (D(2026, 1, 10), "active", "2", "enter", "rules", 1),
    (D(2026, 1, 10), "paid", "1", "enter", "rules", 1),
    (D(2026, 1, 10), "paid", "3", "enter", "rules", 1),
    (D(2026, 1, 20), "active", "1", "exit", "rules", 1),
    (D(2026, 1, 20), "engaged", "2", "enter", "rules", 1),
    (D(2026, 1, 30), "active", "1", "enter", "rules", 1),
    (D(2026, 1, 30), "active", "2", "exit", "rules", 1),
    (D(2026, 1, 30), "engaged", "1", "enter", "rules", 1),
    (D(2026, 2, 5), "active", "1", "exit", "definition_changed", 2),
    (D(2026, 2, 5), "paid", "1", "exit", "segment_deleted", 1),
    (D(2026, 2, 5), "paid", "3", "exit", "segment_deleted", 1),
    (D(2026, 2, 20), "engaged", "2", "exit", "rules", 1),
]


@pytest.fixture(params=["duckdb", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeProject]:
    uri = request.getfixturevalue("postgres_server").uri if request.param == "postgres" else None
    project = RuntimeProject(tmp_path / "project", request.param, uri)
    yield project
    project.close()


def test_history_of_a_scenario_written_by_hand(runtime: RuntimeProject) -> None:
    runtime.write_rules(RULES_V1)
    runtime.load(TABLES)
    runtime.run(D(2026, 1, 10))
    runtime.run(D(2026, 1, 20))
    runtime.run(D(2026, 1, 30))
    runtime.write_rules(RULES_V2)  # active narrows to 1 day; paid is deleted
    runtime.run(D(2026, 2, 5))
    runtime.run(D(2026, 2, 20))  # engaged: 2 has no login in 30 days; 1 has one, and stays
    assert runtime.history() == EXPECTED_HISTORY
    assert runtime.members() == {("engaged", "1")}
    intervals = runtime.query(
        'SELECT "segment", "person_id", "valid_from", "valid_to" FROM {s}."segql_intervals" '
        'ORDER BY "segment", "person_id", "valid_from"'
    )
    assert intervals == [
        ("active", "1", D(2026, 1, 10), D(2026, 1, 20)),
        ("active", "1", D(2026, 1, 30), D(2026, 2, 5)),
        ("active", "2", D(2026, 1, 10), D(2026, 1, 30)),
        ("engaged", "1", D(2026, 1, 30), None),
        ("engaged", "2", D(2026, 1, 20), D(2026, 2, 20)),
        ("paid", "1", D(2026, 1, 10), D(2026, 2, 5)),
        ("paid", "3", D(2026, 1, 10), D(2026, 2, 5)),
    ]
    versions = runtime.query(
        'SELECT "segment", "version", "retired_at" IS NULL FROM {s}."segql_segment_versions" '
        'ORDER BY "segment", "version"'
    )
    assert versions == [
        ("active", 1, False),
        ("active", 2, True),
        ("engaged", 1, True),
        ("paid", 1, False),
    ]


def test_a_unique_entity_id_is_read_as_is(runtime: RuntimeProject) -> None:
    """With a PRIMARY KEY on the id, the compiled query reads people without merging
    duplicates (no GROUP BY), and the members are the same as without it."""
    runtime.write_rules(RULES_V1)
    runtime.load(TABLES)
    before = load_project(runtime.root)
    warehouse = connect(before.config)
    try:
        dialect = warehouse.dialect.name
        before.read_catalog(warehouse)
        assert not before.catalog.is_unique(before.config.entity.table, "person_id")
        merged_sql = before.compile(dialect=warehouse.dialect.name, as_of=D(2026, 1, 30))
        people = table_ref(before.config.entity.table).sql(dialect=warehouse.dialect.sqlglot)
        warehouse.query(f'ALTER TABLE {people} ADD PRIMARY KEY ("person_id")')
        after = load_project(runtime.root)
        after.read_catalog(warehouse)
        assert after.catalog.is_unique(after.config.entity.table, "person_id")
        unique_sql = after.compile(dialect=warehouse.dialect.name, as_of=D(2026, 1, 30))
    finally:
        warehouse.close()

    def people_cte(sql: str) -> str:
        return sql.split('"segql_people" AS (', 1)[1].split("), ", 1)[0]

    assert "GROUP BY" in people_cte(merged_sql)
    assert "GROUP BY" not in people_cte(unique_sql)
    # `segql compile` (no run's connection) keeps merging: its SQL may run elsewhere.
    portable = load_project(runtime.root).compile(dialect=dialect, as_of=D(2026, 1, 30))
    assert "GROUP BY" in people_cte(portable)
    runtime.run(D(2026, 1, 30))
    assert runtime.members() == {
        ("active", "1"),
        ("paid", "1"),
        ("paid", "3"),
        ("engaged", "1"),
        ("engaged", "2"),
    }


def test_unique_keys_are_those_of_the_table_the_name_reads(tmp_path: Path) -> None:
    warehouse = open_duckdb(str(tmp_path / "w.duckdb"))
    try:
        warehouse.query("CREATE TABLE people (person_id INTEGER, email TEXT UNIQUE)")
        warehouse.query("CREATE SCHEMA crm")
        warehouse.query("CREATE TABLE crm.people (person_id INTEGER PRIMARY KEY, email TEXT)")
        warehouse.query("CREATE TABLE crm.pairs (a INTEGER, b INTEGER, PRIMARY KEY (a, b))")
        assert warehouse.unique_columns("people") == {"email"}
        assert warehouse.unique_columns("crm.people") == {"person_id"}
        assert warehouse.unique_columns("crm.pairs") == set()  # unique together, not alone
    finally:
        warehouse.close()


def test_a_segment_removed_and_added_back_continues_its_versions(
    runtime: RuntimeProject,
) -> None:
    """Removed (or renamed away) and added back: the next version follows the highest ever
    recorded, so every later run works and each version number names one definition."""
    runtime.load(TABLES)
    runtime.write_rules("segment paid where status = 'paid'\n")
    runtime.run(D(2026, 1, 10))
    runtime.write_rules("segment paying where status = 'paid'\n")  # renamed
    runtime.run(D(2026, 1, 11))
    runtime.write_rules("segment paid where status = 'free'\n")  # renamed back, changed
    runtime.run(D(2026, 1, 12))
    runtime.run(D(2026, 1, 13))
    versions = runtime.query(
        'SELECT "segment", "version", "retired_at" IS NULL, "source_text" '
        'FROM {s}."segql_segment_versions" ORDER BY "segment", "version"'
    )
    paid = [
        (int(v), current, "free" in text) for name, v, current, text in versions if name == "paid"
    ]
    assert paid == [(1, False, False), (2, True, True)]
    assert {m for m in runtime.members() if m[0] == "paid"} == {("paid", "2")}
    assert [h for h in runtime.history() if h[1] == "paid"] == [
        (D(2026, 1, 10), "paid", "1", "enter", "rules", 1),
        (D(2026, 1, 10), "paid", "3", "enter", "rules", 1),
        (D(2026, 1, 11), "paid", "1", "exit", "segment_deleted", 1),
        (D(2026, 1, 11), "paid", "3", "exit", "segment_deleted", 1),
        (D(2026, 1, 12), "paid", "2", "enter", "rules", 2),
    ]


def test_rerun_at_the_same_as_of_appends_nothing(runtime: RuntimeProject) -> None:
    runtime.write_rules(RULES_V1)
    runtime.load(TABLES)
    first = runtime.run(D(2026, 1, 10))
    again = runtime.run(D(2026, 1, 10))
    assert first.changes == 4
    assert again.changes == 0
    assert len(runtime.history()) == 4
    seqs = runtime.query('SELECT "commit_seq" FROM {s}."segql_runs" ORDER BY "commit_seq"')
    assert [int(s[0]) for s in seqs] == [1, 2]


def test_an_earlier_as_of_is_refused(runtime: RuntimeProject) -> None:
    runtime.write_rules(RULES_V1)
    runtime.load(TABLES)
    runtime.run(D(2026, 1, 20))
    result = runtime.cli("run", "--as-of", "2026-01-10", "-q")
    assert result.returncode == 1
    assert "earlier than the last committed run" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("step", ["before_diff", "after_history_insert", "after_commit"])
def test_a_run_killed_at_any_step_leaves_the_same_history(
    runtime: RuntimeProject, step: str, tmp_path: Path
) -> None:
    runtime.write_rules(RULES_V1)
    runtime.load(TABLES)
    assert runtime.cli("run", "--as-of", "2026-01-10", "-q").returncode == 0
    killed = runtime.cli("run", "--as-of", "2026-01-20", "-q", env={"SEGQL_FAULT": f"{step}:kill"})
    assert killed.returncode == -signal.SIGKILL
    assert runtime.cli("run", "--as-of", "2026-01-20", "-q").returncode == 0
    assert runtime.cli("run", "--as-of", "2026-01-30", "-q").returncode == 0

    control = RuntimeProject(tmp_path / "control", "duckdb")
    control.write_rules(RULES_V1)
    control.load(TABLES)
    for day in (10, 20, 30):
        control.run(D(2026, 1, day))
    assert runtime.history() == control.history()
    assert runtime.members() == control.members()
    duplicates = runtime.query(
        'SELECT "event_id" FROM {s}."segql_history" GROUP BY "event_id" HAVING COUNT(*) > 1'
    )
    assert duplicates == []
    statuses = runtime.query('SELECT "status" FROM {s}."segql_runs"')
    assert ("running",) not in statuses
    if step != "after_commit":  # the killed run is recorded as failed by the next run
        assert ("failed",) in statuses


def test_two_runs_at_once_never_interleave(runtime: RuntimeProject) -> None:
    runtime.write_rules(RULES_V1)
    runtime.load(TABLES)
    runtime.run(D(2026, 1, 10))
    # The first run holds the lock until the test releases it: no timing to guess.
    release = runtime.root / "release"
    holder = runtime.cli(
        "run", "--as-of", "2026-01-20", env={"SEGQL_FAULT": f"before_diff:until={release}"},
        background=True,
    )  # fmt: skip
    try:
        while "computing" not in (line := holder.stderr.readline()):
            assert line, "the first run ended before it took the lock"
        refused = runtime.cli("run", "--as-of", "2026-01-20", "-q")
        assert refused.returncode == 1
        assert "another" in refused.stderr and "--wait" in refused.stderr
        assert "Traceback" not in refused.stderr
        waiter = runtime.cli("run", "--as-of", "2026-01-20", "-q", "--wait", "600",
                             background=True)  # fmt: skip
        release.touch()
        _out, err = waiter.communicate(timeout=600)
        assert waiter.returncode == 0, err
    finally:
        release.touch()
        holder.wait(timeout=600)
    assert holder.returncode == 0
    history = runtime.history()
    assert len(history) == len(set(history)) == 6  # 4 at the first run, 2 at the second


def test_data_problems_are_counted_and_never_make_wrong_members(runtime: RuntimeProject) -> None:
    runtime.write_rules("segment active where did login within 7 days\nsegment all where true")
    runtime.load(
        make_tables(
            people=[person(1), person(1), person(None), person(2)],
            events=[
                event(1, "login", D(2026, 1, 9)),
                event(2, "login", D(2026, 1, 11)),  # after the as-of
                event(7, "login", D(2026, 1, 9)),  # nobody with id 7
                event(None, "login", D(2026, 1, 9)),
            ],
        )
    )
    result = runtime.run(D(2026, 1, 10))
    assert result.data == {
        "people": 2,
        "null_ids": 1,
        "duplicate_ids": 1,
        "events": 4,
        "events_after_as_of": 1,
        "events_of_unknown_people": 1,
        "events_without_person": 1,
        "events_with_malformed_properties": 0,
    }
    assert runtime.members() == {("active", "1"), ("all", "1"), ("all", "2")}



def test_events_are_counted_once_whether_or_not_people_ids_repeat(
    runtime: RuntimeProject,
) -> None:
    """The summary joins the people table itself where no id repeats, the distinct ids
    where one does: the event counts are the same either way."""
    runtime.write_rules("segment all where true")
    events = [
        event(1, "login", D(2026, 1, 9)),
        event(1, "login", D(2026, 1, 9)),
        event(2, "login", D(2026, 1, 11)),
        event(7, "login", D(2026, 1, 9)),
    ]
    counts = {}
    for people in ([person(1), person(2)], [person(1), person(1), person(2), person(2)]):
        runtime.load(make_tables(people=people, events=events))
        data = runtime.run(D(2026, 1, 10)).data
        counts[len(people)] = {k: v for k, v in data.items() if k.startswith("events")}
    assert counts[2] == counts[4] == {
        "events": 4,
        "events_after_as_of": 1,
        "events_of_unknown_people": 1,
        "events_without_person": 0,
        "events_with_malformed_properties": 0,
    }

def load_text_properties(runtime: RuntimeProject) -> None:
    """Events whose properties column is text: one object, one truncated, one array, one null."""
    schema = tuple((c, "text" if c == "properties" else t) for c, t in TABLES["events"].columns)
    texts = ['{"plan": "pro"}', '{"plan": "pro"', '["pro"]', None]
    events = [
        tuple(text if c == "properties" else v for (c, _), v in zip(schema, row, strict=True))
        for text, row in zip(
            texts, [event(i, "login", D(2026, 1, 9)) for i in (1, 2, 3, 4)], strict=True
        )
    ]
    tables = make_tables(people=[person(i) for i in (1, 2, 3, 4)])
    tables = {**tables, "events": Table(schema, tuple(events))}
    runtime.load(tables)


def test_malformed_json_properties_are_counted_and_the_run_goes_on(
    runtime: RuntimeProject,
) -> None:
    """A text properties column with one malformed value and one array: the run commits,
    those rows have no properties, and the summary counts them."""
    runtime.write_rules("segment pro where did login where plan = 'pro'")
    load_text_properties(runtime)
    result = runtime.run(D(2026, 1, 10))
    assert result.data["events_with_malformed_properties"] == 2
    assert runtime.members() == {("pro", "1")}


def test_history_scenario_on_snowflake(snowflake_engine: SnowflakeEngine) -> None:
    """The same hand-written scenario through the Snowflake dialect (fakesnow)."""
    snowflake_engine.load(TABLES)
    warehouse = open_dbapi(snowflake_engine._conn, "snowflake")
    config = make_config()
    for rules, day in ((RULES_V1, (1, 10)), (RULES_V1, (1, 20)), (RULES_V1, (1, 30)),
                       (RULES_V2, (2, 5)), (RULES_V2, (2, 20))):  # fmt: skip
        project = project_from_text(config, rules)
        Runner(project, warehouse).run(None, D(2026, *day))
    rows = warehouse.query(
        'SELECT "as_of", "segment", "person_id", "change", "reason", "version" '
        'FROM "segql"."segql_history" ORDER BY "commit_seq", "segment", "person_id", "change"'
    )
    assert [(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows] == EXPECTED_HISTORY


def test_the_data_summary_is_an_anti_join_on_postgres(
    tmp_path: Path, postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events of unknown people are counted by a join, not a subplan run per event row
    (PostgreSQL without an index on the people id took 424 s for 20k people)."""
    runtime = RuntimeProject(tmp_path / "project", "postgres", postgres_server.uri)
    try:
        runtime.write_rules(RULES_V1)
        runtime.load(TABLES)
        seen: list[str] = []
        original = Warehouse.run

        def recording(self: Warehouse, statement: exp.Expression) -> list[tuple[Any, ...]]:
            if isinstance(statement, exp.Select) and "occurred_at" in statement.sql():
                seen.append(statement.sql(dialect="postgres"))
            return original(self, statement)

        monkeypatch.setattr(Warehouse, "run", recording)
        result = runtime.run(D(2026, 1, 10))
        assert result.changes == 4
        summary_sql, *_ = [sql for sql in seen if "COUNT" in sql.upper()]
        project = load_project(runtime.root)
        live = connect(project.config)
        try:
            plan = "\n".join(row[0] for row in live.query("EXPLAIN " + summary_sql))
        finally:
            live.close()
        assert "SubPlan" not in plan and "Join" in plan, plan
    finally:
        runtime.close()


def test_check_reports_text_properties_that_are_not_json(runtime: RuntimeProject) -> None:
    runtime.write_rules("segment pro where did login where plan = 'pro'")
    load_text_properties(runtime)
    checked = runtime.cli("check")
    assert checked.returncode == 0, checked.stderr
    assert "2 of 3 sampled rows of " in checked.stderr
    assert "events.properties are not a JSON object" in checked.stderr


def test_a_run_at_a_wrong_as_of_can_be_retired(runtime: RuntimeProject) -> None:
    """A run at 9999-12-31 refuses every later run; retiring it undoes its changes in new
    history rows, restores the members (with their enter times) and lets runs go on."""
    runtime.write_rules(RULES_V1)
    runtime.load(TABLES)
    runtime.run(D(2026, 1, 10))
    before = runtime.query('SELECT "segment", "person_id", "entered_at" FROM {s}."segql_members"')
    mistake = runtime.run(D(9999, 12, 31))
    assert mistake.changes > 0
    refused = runtime.cli("run", "--as-of", "2026-01-20", "-q")
    assert refused.returncode == 1 and "earlier than the last committed run" in refused.stderr

    first = runtime.query('SELECT "run_id" FROM {s}."segql_runs" ORDER BY "commit_seq"')[0][0]
    not_latest = runtime.cli("retire-run", first[:12])
    assert not_latest.returncode == 1
    assert "not the latest committed run" in not_latest.stderr
    assert "Traceback" not in not_latest.stderr

    retired = runtime.cli("retire-run", mistake.run_id[:12])
    assert retired.returncode == 0, retired.stderr
    after = runtime.query('SELECT "segment", "person_id", "entered_at" FROM {s}."segql_members"')
    assert sorted(after) == sorted(before)
    history = runtime.history()
    undone = [row for row in history if row[4] == "run_retired"]
    assert len(undone) == mistake.changes
    assert {row[:4] for row in history if row[0] == D(9999, 12, 31) and row[4] != "run_retired"}
    status = runtime.query(
        'SELECT "status" FROM {s}."segql_runs" WHERE "run_id" = ' + f"'{mistake.run_id}'"
    )
    assert status == [("retired",)]
    again = runtime.cli("retire-run", mistake.run_id)
    assert again.returncode == 1 and "retired" in again.stderr

    runtime.run(D(2026, 1, 20))  # no longer refused
    runtime.run(D(2026, 1, 30))
    kept = [row for row in runtime.history() if row[0] != D(9999, 12, 31)]
    assert kept == EXPECTED_HISTORY[:9]


def test_runs_retired_one_after_another_leave_no_members(runtime: RuntimeProject) -> None:
    """Retiring the latest run, then the one before it: members are back to none, every
    change has its opposite, and a run at the first time records the same changes again."""
    runtime.write_rules(RULES_V1)
    runtime.load(TABLES)
    first = runtime.run(D(2026, 1, 10))
    second = runtime.run(D(2026, 1, 20))
    for run in (second, first):
        retired = runtime.cli("retire-run", run.run_id)
        assert retired.returncode == 0, retired.stderr
    assert "any as-of" in retired.stdout
    assert runtime.members() == set()
    history = runtime.history()
    opposite = {"enter": "exit", "exit": "enter"}
    made = [row[:4] for row in history if row[4] != "run_retired"]
    undone = [(*row[:3], opposite[row[3]]) for row in history if row[4] == "run_retired"]
    assert sorted(made) == sorted(undone)
    runtime.run(D(2026, 1, 10))
    assert runtime.history()[len(history) :] == EXPECTED_HISTORY[:4]
