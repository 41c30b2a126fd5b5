"""``segql eval --person`` and ``Project.evaluate``: a few people's membership of every
segment, with the person filter in every read and population functions over everyone,
on a DuckDB file and on PostgreSQL (runtime.md 8.2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from segql.compile.compiler import QueryOptions, compile_membership_query
from segql.compile.dialect import get_dialect
from segql.errors import SegqlNameError
from segql.project import load_project
from tests.support.runtime import RuntimeProject
from tests.support.scenario import event, make_project, make_tables, person

D = datetime
AS_OF = D(2026, 1, 10)
RULES = """
trait spend = sum(purchase.amount)
trait half = ntile(2, ltv)
segment active where did login within 30 days
segment paid where status = 'paid'
segment big where spend > 50
segment top_half where ntile(2, ltv) = 2
segment top_spender where row_number(-spend) = 1
segment steady enter when did login within 7 days exit when not did login within 30 days
"""
PEOPLE = [person(i, status="paid" if i % 2 else "free", ltv=float(i * 10)) for i in range(1, 9)]
EVENTS = [
    *(event(i, "login", D(2026, 1, i)) for i in range(1, 9)),
    *(event(i, "purchase", D(2026, 1, 2), amount=float(i * 15)) for i in range(1, 9)),
    event(5, "purchase", D(2026, 1, 11), amount=1000.0),  # after the as-of
]
TABLES = make_tables(people=PEOPLE, events=EVENTS)


@pytest.fixture(params=["duckdb", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeProject]:
    uri = request.getfixturevalue("postgres_server").uri if request.param == "postgres" else None
    project = RuntimeProject(tmp_path / "project", request.param, uri)
    project.write_rules(RULES)
    project.load(TABLES)
    yield project
    project.close()


def restricted(members: set[tuple[str, str]], people: list[str]) -> dict[str, list[str]]:
    return {p: sorted(s for s, q in members if q == p) for p in people}


def test_evaluate_equals_the_full_run_restricted_to_those_people(
    runtime: RuntimeProject,
) -> None:
    project = load_project(runtime.root)
    before = project.evaluate(["3", "8", "42"], as_of=AS_OF)  # nothing recorded yet
    runtime.run(AS_OF)
    full = runtime.members()
    assert {s for s, _ in full} >= {"top_half", "top_spender", "big", "steady"}
    for people in (["1"], ["4"], ["8"], ["3", "8", "42"], [str(i) for i in range(1, 9)]):
        assert project.evaluate(people, as_of=AS_OF) == restricted(full, people)
    assert before == restricted(full, ["3", "8", "42"])
    assert project.evaluate(["8"], as_of=AS_OF)["8"] == ["active", "big", "steady", "top_half",
                                                          "top_spender"]  # fmt: skip
    assert runtime.members() == full  # nothing written


def test_evaluate_applies_overrides_and_keeps_paused_members(runtime: RuntimeProject) -> None:
    runtime.run(AS_OF)
    result = runtime.cli("exclude", "paid", "3", "--reason", "asked")
    assert result.returncode == 0, result.stderr
    result = runtime.cli("include", "big", "1", "--reason", "comped")
    assert result.returncode == 0, result.stderr
    project = load_project(runtime.root)
    found = project.evaluate(["1", "3"], as_of=AS_OF, segments=["paid", "big"])
    assert found == {"1": ["big", "paid"], "3": []}
    runtime.run(AS_OF)
    assert project.evaluate(["1", "3"], as_of=AS_OF, segments=["paid", "big"]) == restricted(
        {m for m in runtime.members() if m[0] in ("paid", "big")}, ["1", "3"]
    )


def test_eval_command_lists_every_segment_for_each_person(runtime: RuntimeProject) -> None:
    result = runtime.cli("eval", "--person", "2", "7", "--as-of", "2026-01-10", "--format",
                         "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 2 * 6
    members = {(r["person_id"], r["segment"]) for r in rows if r["member"]}
    assert members == {("2", "active"), ("7", "active"), ("7", "paid"),
                       ("7", "big"), ("7", "top_half"), ("7", "steady")}  # fmt: skip
    wrong = runtime.cli("eval", "--person", "2", "--segment", "pad")
    assert wrong.returncode == 1 and "paid" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_person_filter_is_in_every_read_unless_a_population_function_ranks() -> None:
    project = make_project(RULES)
    project.check()
    options = QueryOptions(person_ids=("7", "x"))
    dialect = get_dialect("duckdb")
    pushed = compile_membership_query(project.analyzer, ["active", "big"], dialect, AS_OF,
                                      options=options)  # fmt: skip
    assert pushed.pushed and pushed.sql.count("IN (7)") == 2  # people and events; 'x' no id
    ranked = compile_membership_query(project.analyzer, ["top_half"], dialect, AS_OF,
                                      options=options)  # fmt: skip
    assert not ranked.pushed and ranked.sql.count("IN (7)") == 1  # the result only
    # The person's rows are read from the table once, then by every pass: on DuckDB the rows
    # CTE is otherwise inlined into each pass, a scan of the whole table each (3x slower at
    # 1M people, bench/README.md).
    assert '"segql_rows_events" AS MATERIALIZED' in pushed.sql
    everybody = compile_membership_query(project.analyzer, ["active", "big"], dialect, AS_OF)
    assert '"segql_rows_events" AS NOT MATERIALIZED' in everybody.sql


def test_evaluate_rejects_an_unknown_segment(runtime: RuntimeProject) -> None:
    with pytest.raises(SegqlNameError, match="did you mean 'paid'"):
        load_project(runtime.root).evaluate(["1"], segments=["pad"])


def test_person_shows_trait_values_ranked_over_everyone(runtime: RuntimeProject) -> None:
    runtime.run(AS_OF)
    for person_id, spend, half in (("8", 120.0, 2), ("1", 15.0, 1)):
        result = runtime.cli("person", person_id, "--as-of", "2026-01-10", "--format", "json")
        assert result.returncode == 0, result.stderr
        traits = json.loads(result.stdout)["traits"]
        assert (float(traits["spend"]), int(traits["half"])) == (spend, half)
    unknown = json.loads(runtime.cli("person", "99", "--format", "json").stdout)["traits"]
    assert unknown == {"spend": None, "half": None}
    found = load_project(runtime.root).person("8")["traits"]
    assert [row["trait"] for row in found] == ["spend", "half"]
