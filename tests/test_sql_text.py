"""SQL text reaches the warehouse as it is: a `%` is a `%` on every engine.

psycopg reads `%` as a placeholder whenever parameters are passed, even an empty tuple:
`'50%'` failed every run, `'%%'` silently read as `'%'`, and a recorded error holding a
`%` (a webhook reply "Quota 100% used") could not be stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlglot import exp

from segql.engines import connect
from segql.project import load_project
from segql.runs.store import DELIVERIES, Store
from tests.support.engines import Table
from tests.support.runtime import RuntimeProject
from tests.support.scenario import SCHEMA, make_tables, person

D = datetime
RULES = """
segment fifty where email contains '50%'
segment doubled where email = '%%'
segment single where email = '%'
segment `100% sure` where status = 'paid'
"""


@pytest.fixture(params=["duckdb", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeProject]:
    uri = request.getfixturevalue("postgres_server").uri if request.param == "postgres" else None
    project = RuntimeProject(tmp_path / "project", request.param, uri)
    yield project
    project.close()


def test_percent_in_literals_and_names(runtime: RuntimeProject) -> None:
    runtime.write_rules(RULES)
    runtime.load(
        make_tables(
            people=[
                person(1, email="save 50% now", status="paid"),
                person(2, email="%%"),
                person(3, email="%"),
                person(4, email="50 percent"),
            ]
        )
    )
    result = runtime.run(D(2026, 1, 10))
    assert result.changes == 4
    assert runtime.members() == {
        ("fifty", "1"),
        ("doubled", "2"),
        ("single", "3"),
        ("100% sure", "1"),
    }


def test_percent_in_text_person_ids(runtime: RuntimeProject) -> None:
    runtime.write_rules("segment paid where status = 'paid'")
    text_ids = {
        table: tuple(
            (name, "text" if name == "person_id" else kind) for name, kind in columns
        )
        for table, columns in SCHEMA.items()
    }
    tables = {table: Table(columns) for table, columns in text_ids.items()}
    tables["people"] = Table(
        text_ids["people"],
        (person("a%b", status="paid"), person("%s", status="paid")),  # type: ignore[arg-type]
    )
    runtime.load(tables)
    runtime.run(D(2026, 1, 10))
    assert runtime.members() == {("paid", "a%b"), ("paid", "%s")}


def test_percent_in_a_recorded_error(runtime: RuntimeProject) -> None:
    runtime.write_rules("segment paid where status = 'paid'")
    runtime.load(make_tables(people=[person(1, status="paid")]))
    runtime.run(D(2026, 1, 10))  # creates segql's tables
    project = load_project(runtime.root)
    warehouse = connect(project.config)
    store = Store(project.config.warehouse.schema)
    row = exp.Tuple(
        expressions=[
            exp.Literal.string("hook"),
            exp.Literal.string("e1"),
            exp.Literal.string("failed"),
            exp.Literal.number(1),
            exp.Literal.string("HTTP 429: Quota 100% used (%s, %%)"),
            exp.null(),
        ]
    )
    try:
        warehouse.run(exp.insert(exp.Values(expressions=[row]), store.table(DELIVERIES)))
        stored = warehouse.run(exp.select("last_error").from_(store.table(DELIVERIES)))
    finally:
        warehouse.close()
    assert stored == [("HTTP 429: Quota 100% used (%s, %%)",)]
