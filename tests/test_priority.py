"""Priority lists (runtime.md 8.4): ``priority a, b, c`` makes each person a member of only
the first of those segments they qualify for, in the compiled SQL, in the reference
evaluator and in a run (history reason ``rules``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from segql.errors import SegqlErrors
from segql.language.parser import parse
from segql.language.printer import format_module
from tests.support.engines import Engine
from tests.support.runtime import RuntimeProject
from tests.support.scenario import make_project, make_tables, person, run_reference, run_sql

D = datetime
AS_OF = D(2026, 1, 10)
RULES = """
segment tier_gold where ltv >= 100
segment tier_silver where ltv >= 50
segment tier_bronze where ltv >= 10 or status = 'paid'
segment any_silver where in tier_silver
priority tier_gold, tier_silver, tier_bronze
"""
TABLES = make_tables(
    people=[
        person(1, ltv=150.0),
        person(2, ltv=60.0),
        person(3, ltv=20.0),
        person(4, ltv=5.0, status="paid"),
        person(5, ltv=None),
        person(6, ltv=100.0, status="paid"),
    ]
)
EXPECTED = {
    "tier_gold": {1, 6},
    "tier_silver": {2},
    "tier_bronze": {3, 4},
    "any_silver": {1, 2, 6},  # a reference reads the segment's own rules
}


def test_priority_parses_prints_back_and_is_checked() -> None:
    module = parse(RULES, "rules.segql")
    assert module.priorities[0].segments == ("tier_gold", "tier_silver", "tier_bronze")
    assert format_module(parse(format_module(module), "again.segql")) == format_module(module)
    assert "priority tier_gold, tier_silver, tier_bronze" in format_module(module)
    bad = make_project(RULES + "priority tier_gld, any_silver\npriority tier_bronze\n")
    with pytest.raises(SegqlErrors) as errors:
        bad.check()
    text = str(errors.value)
    assert "did you mean 'tier_gold'" in text and "at least two segments" in text
    assert "more than one priority list" in text


def test_each_person_is_only_in_the_first_segment_they_qualify_for(engine: Engine) -> None:
    project = make_project(RULES)
    engine.load(TABLES)
    assert run_reference(project, TABLES, AS_OF) == EXPECTED
    assert run_sql(engine, project, AS_OF) == EXPECTED
    alone = run_sql(engine, project, AS_OF, ["tier_bronze"])  # the others are not selected
    assert alone == {"tier_bronze": {3, 4}}


@pytest.fixture(params=["duckdb", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeProject]:
    uri = request.getfixturevalue("postgres_server").uri if request.param == "postgres" else None
    project = RuntimeProject(tmp_path / "project", request.param, uri)
    project.write_rules(RULES)
    project.load(TABLES)
    yield project
    project.close()


def test_a_run_records_the_first_qualifying_segment_with_reason_rules(
    runtime: RuntimeProject,
) -> None:
    runtime.run(AS_OF)
    members = runtime.members()
    assert members == {(s, str(p)) for s, people in EXPECTED.items() for p in people}
    assert {row[4] for row in runtime.history()} == {"rules"}


def test_a_changed_priority_list_is_a_new_version_of_its_segments(
    runtime: RuntimeProject,
) -> None:
    runtime.run(AS_OF)
    runtime.write_rules(RULES.replace("tier_gold, tier_silver, tier_bronze",
                                      "tier_silver, tier_gold, tier_bronze"))  # fmt: skip
    runtime.run(D(2026, 1, 11))
    versions = dict(
        runtime.query(
            'SELECT "segment", max("version") FROM {s}."segql_segment_versions" GROUP BY 1'
        )
    )
    assert {k: int(v) for k, v in versions.items()} == {
        "tier_gold": 2, "tier_silver": 2, "tier_bronze": 2, "any_silver": 1,
    }  # fmt: skip
    assert ("tier_silver", "1") in runtime.members() and ("tier_gold", "1") not in runtime.members()
