"""Overrides, paused segments, forget and prune, on a DuckDB file and on PostgreSQL,
through the command line (runtime.md 8.3, 8.4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from segql.engines import connect
from segql.errors import SegqlError, SegqlNameError, SegqlSyntaxError
from segql.language import ast
from segql.language.parser import parse
from segql.language.printer import format_module
from segql.project import load_project
from tests.support.runtime import RuntimeProject
from tests.support.scenario import event, make_tables, person

D = datetime
RULES = """
segment active where did login within 30 days
segment paid where status = 'paid'
"""
TABLES = make_tables(
    people=[person(1, status="paid"), person(2, status="free"), person(3, status="paid")],
    events=[
        event(1, "login", D(2026, 1, 8)),
        event(2, "login", D(2026, 1, 9)),
        event(3, "login", D(2026, 1, 9)),
    ],
)


@pytest.fixture(params=["duckdb", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeProject]:
    uri = request.getfixturevalue("postgres_server").uri if request.param == "postgres" else None
    project = RuntimeProject(tmp_path / "project", request.param, uri)
    project.write_rules(RULES)
    project.load(TABLES)
    yield project
    project.close()


def ok(runtime: RuntimeProject, *args: str) -> str:
    result = runtime.cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_overrides_apply_at_the_next_run_with_reason_manual(runtime: RuntimeProject) -> None:
    runtime.run(D(2026, 1, 10))
    ok(runtime, "exclude", "active", "1", "--reason", "asked to stop")
    ok(runtime, "include", "paid", "2", "--reason", "comped")
    ok(runtime, "exclude", "*", "3", "--reason", "suppression list")
    assert runtime.members() == {("active", "1"), ("active", "2"), ("active", "3"),
                                 ("paid", "1"), ("paid", "3")}  # fmt: skip
    runtime.run(D(2026, 1, 11))
    assert runtime.members() == {("active", "2"), ("paid", "1"), ("paid", "2")}
    later = [row for row in runtime.history() if row[0] == D(2026, 1, 11)]
    assert later == [
        (D(2026, 1, 11), "active", "1", "exit", "manual", 1),
        (D(2026, 1, 11), "active", "3", "exit", "manual", 1),
        (D(2026, 1, 11), "paid", "2", "enter", "manual", 1),
        (D(2026, 1, 11), "paid", "3", "exit", "manual", 1),
    ]
    listed = ok(runtime, "overrides", "paid", "--format", "csv")
    assert "paid,2,include,comped" in listed and "*,3,exclude,suppression list" in listed
    assert "active,1" not in listed
    ok(runtime, "clear-override", "active", "1")
    runtime.run(D(2026, 1, 12))
    assert ("active", "1") in runtime.members()
    assert runtime.history()[-1] == (D(2026, 1, 12), "active", "1", "enter", "rules", 1)


def test_override_errors_are_clear(runtime: RuntimeProject) -> None:
    result = runtime.cli("exclude", "activ", "1", "--reason", "x")
    assert result.returncode == 1 and "active" in result.stderr and "Traceback" not in result.stderr
    result = runtime.cli("include", "*", "1", "--reason", "x")
    assert result.returncode == 1 and "exclusions" in result.stderr


def test_a_paused_segment_keeps_its_members(runtime: RuntimeProject) -> None:
    runtime.run(D(2026, 1, 10))
    runtime.write_rules(RULES.replace("segment paid", "segment paid\n  paused"))
    runtime.load(make_tables(people=[person(1, status="free")], events=[]))
    result = runtime.run(D(2026, 3, 1))
    assert [s.segment for s in result.segments] == ["active"]
    assert {m for m in runtime.members() if m[0] == "paid"} == {("paid", "1"), ("paid", "3")}
    assert not [row for row in runtime.history() if row[1] == "paid" and row[3] == "exit"]


def scan_for(runtime: RuntimeProject, person_id: str) -> list[str]:
    """Every segql table with a text value that is the id (or an event key naming it)."""
    tables = runtime.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '"
        + runtime.segql_schema
        + "'"
    )
    found = []
    for (table,) in tables:
        for row in runtime.query(f'SELECT * FROM {{s}}."{table}"'):
            texts = [value for value in row if isinstance(value, str)]
            if any(value == person_id or f"|{person_id}|" in value for value in texts):
                found.append(table)
    return found


def test_forget_removes_the_person_from_every_segql_table(runtime: RuntimeProject) -> None:
    runtime.run(D(2026, 1, 10))
    ok(runtime, "exclude", "paid", "3", "--reason", "x")
    runtime.run(D(2026, 1, 11))
    found = sorted(set(scan_for(runtime, "3")))
    # the incremental state keeps who had an override (segql_state_overrides_<run>)
    assert [t for t in found if not t.startswith("segql_state_overrides_")] == [
        "segql_history",
        "segql_intervals",
        "segql_members",
        "segql_overrides",
    ]
    assert len(found) == 5
    output = ok(runtime, "forget", "3")
    assert "rows removed" in output
    assert scan_for(runtime, "3") == []
    assert ("active", "2") in runtime.members()  # the others stay
    tombstones = runtime.query('SELECT "person_hash", "rows_removed" FROM {s}."segql_tombstones"')
    # 1 member, 3 history, 1 override, the incremental state's rows: values, entity row,
    # the override kept
    assert len(tombstones) == 1 and tombstones[0][1] == 8
    assert tombstones[0][0] != "3" and len(tombstones[0][0]) == 64


def test_prune_keeps_the_intervals_that_reach_the_cut(runtime: RuntimeProject) -> None:
    runtime.run(D(2026, 1, 10))  # everyone active
    runtime.load(make_tables(
        people=[person(1, status="paid"), person(2, status="free"), person(3, status="paid")],
        events=[event(1, "login", D(2026, 1, 8)), event(2, "login", D(2026, 2, 1)),
                event(3, "login", D(2026, 1, 9))],
    ))  # fmt: skip
    runtime.run(D(2026, 2, 15))  # 1 and 3 exit active; 2 stays
    runtime.run(D(2026, 3, 20))  # 2 exits active
    intervals_query = (
        'SELECT "segment", "person_id", "valid_from", "valid_to" FROM {s}."segql_intervals" '
        'WHERE "valid_to" IS NULL OR "valid_to" >= CAST(\'2026-03-01\' AS TIMESTAMP) '
        "ORDER BY 1, 2, 3"
    )
    before = runtime.query(intervals_query)
    ok(runtime, "prune", "--history-before", "2026-03-01")
    assert runtime.query(intervals_query) == before
    assert ("paid", "1", D(2026, 1, 10), None) in before
    old = runtime.query(
        'SELECT "segment", "person_id", "change" FROM {s}."segql_history" '
        "WHERE \"as_of\" < CAST('2026-03-01' AS TIMESTAMP) ORDER BY 1, 2"
    )
    assert old == [("active", "2", "enter"), ("paid", "1", "enter"), ("paid", "3", "enter")]


def test_forget_removes_the_deliveries_of_the_persons_changes(runtime: RuntimeProject) -> None:
    runtime.run(D(2026, 1, 10))
    events = runtime.query('SELECT "event_id", "person_id" FROM {s}."segql_history"')
    project = load_project(runtime.root)
    warehouse = connect(project.config)
    try:
        for event_id, _ in events:
            warehouse.query(
                f'INSERT INTO "{runtime.segql_schema}"."segql_deliveries" '
                f'("destination", "event_id", "status", "attempts") '
                f"VALUES ('hook', '{event_id}', 'delivered', 1)"
            )
    finally:
        warehouse.close()
    ok(runtime, "forget", "2")
    left = {row[0] for row in runtime.query('SELECT "event_id" FROM {s}."segql_deliveries"')}
    assert left == {event_id for event_id, person_id in events if person_id != "2"}


def test_metadata_parses_prints_back_and_rejects_repeats() -> None:
    text = (
        "segment gold\n  title \"Gold\"\n  tags 'vip', 'tier'\n  owner 'growth'\n  paused\n"
        "  where status = 'paid'\n"
    )
    module = parse(text)
    segment = module.definitions[0]
    assert isinstance(segment, ast.Segment)
    assert (segment.tags, segment.owner, segment.paused) == (("vip", "tier"), "growth", True)
    assert format_module(module) == text
    assert parse("segment owner where owner = 'x'").definitions[0].owner is None
    with pytest.raises(SegqlSyntaxError, match="'owner' is given twice"):
        parse("segment s owner 'a' owner 'b' where did login")


def test_person_shows_segments_with_version_and_history(runtime: RuntimeProject) -> None:
    runtime.run(D(2026, 1, 10))
    runtime.run(D(2026, 3, 1))  # 1 leaves active
    document = json.loads(ok(runtime, "person", "1", "--format", "json"))
    assert [(s["segment"], s["version"]) for s in document["segments"]] == [("paid", 1)]
    assert document["segments"][0]["entered_at"].startswith("2026-01-10")
    assert [(h["segment"], h["change"]) for h in document["history"]] == [
        ("active", "enter"), ("paid", "enter"), ("active", "exit"),
    ]  # fmt: skip
    assert json.loads(ok(runtime, "person", "99", "--format", "json"))["segments"] == []


def test_dispatch_sends_nothing_for_a_paused_segment(tmp_path: Path) -> None:
    """Dispatch itself is tested on DuckDB (tests/test_dispatch.py); so is this."""
    runtime = RuntimeProject(tmp_path / "project", "duckdb")
    runtime.write_rules(RULES)
    runtime.load(TABLES)
    runtime.run(D(2026, 1, 10))
    with (runtime.root / "segql.toml").open("a") as config:
        config.write(
            '\n[[actions]]\nname = "paid_out"\nsegment = "paid"\non = "enter"\n'
            'file = { path = "exports/paid.jsonl" }\n'
        )
    runtime.write_rules(RULES.replace("segment paid", "segment paid\n  paused"))
    ok(runtime, "dispatch", "--quiet")
    exported = runtime.root / "exports" / "paid.jsonl"
    assert not exported.exists() or exported.read_text() == ""
    runtime.write_rules(RULES)  # unpaused: what waited is sent
    ok(runtime, "dispatch", "--quiet")
    sent = [json.loads(line)["person_id"] for line in exported.read_text().splitlines()]
    assert sorted(sent) == ["1", "3"]


def test_the_python_api_runs_and_answers_like_the_command_line(runtime: RuntimeProject) -> None:
    project = load_project(runtime.root)
    result = project.run(as_of=D(2026, 1, 10))
    assert {s.segment: s.members for s in result.segments} == {"active": 3, "paid": 2}
    assert [row[0] for row in project.members("paid")] == ["1", "3"]
    count, ids = project.preview("status = 'paid'", as_of=D(2026, 1, 10))
    assert (count, sorted(str(i) for i in ids)) == (2, ["1", "3"])
    found = project.person("3")
    assert [s["segment"] for s in found["segments"]] == ["active", "paid"]
    with pytest.raises(SegqlNameError, match="did you mean 'paid'"):
        project.members("pad")
    with pytest.raises(SegqlError, match="earlier than the last committed run"):
        project.run(as_of=D(2026, 1, 1))


def test_explain_counts_each_clause_alone_and_as_a_funnel(runtime: RuntimeProject) -> None:
    runtime.write_rules(
        RULES + "segment odd where status = 'paid' and did login within 30 days "
        "and count(login within 7 days) > count(login within 30 days)\n"
        "segment nobody where status = 'paid' and status = 'gold'\n"
    )
    result = runtime.cli("explain", "odd", "--as-of", "2026-01-10", "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1:] == [
        "status = 'paid',2,2",
        "did login within 30 days,3,2",
        "count(login within 7 days) > count(login within 30 days),0,0",
    ]
    assert (
        "clause 3 (count(login within 7 days) > count(login within 30 days)) can never hold: "
        "count(login within 7 days) is never more than count(login within 30 days)"
    ) in result.stderr
    nobody = runtime.cli("explain", "nobody", "--as-of", "2026-01-10")
    assert nobody.returncode == 0, nobody.stderr
    assert "clause 2 (status = 'gold') holds for no one at this as-of" in nobody.stderr
    assert "can never hold" not in nobody.stderr
    one = runtime.cli("explain", "odd", "--person", "2", "--as-of", "2026-01-10", "--format", "csv")
    assert one.returncode == 0, one.stderr
    assert [line.split(",")[-2:] for line in one.stdout.splitlines()[1:]] == [
        ["fails", "free"], ["passes", "1"], ["fails", "1"],  # `did` is count(...) > 0
    ]  # fmt: skip
    written = runtime.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '"
        + runtime.segql_schema
        + "'"
    )
    assert written == []  # explain writes nothing, not even segql's tables


def test_a_run_with_every_segment_paused_changes_nothing(runtime: RuntimeProject) -> None:
    runtime.run(D(2026, 1, 10))
    before = runtime.members()
    runtime.write_rules(RULES.replace("where", "paused where"))
    result = runtime.run(D(2026, 3, 1))
    assert result.segments == [] and runtime.members() == before
