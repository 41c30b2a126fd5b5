"""No rule text can change what the SQL means: values are literals, names are quoted.

Each hostile rule is compiled for every dialect, parsed back as exactly one query with no
statement hidden in it, and executed on every engine, where it must select exactly the
people whose data holds that text, leaving every table in place.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlglot
from sqlglot import exp

from segql.compile.dialect import available_dialects
from segql.language.catalog import Catalog
from segql.project import project_from_text
from tests.support.engines import Engine, Table
from tests.support.scenario import SCHEMA, event, make_config, make_project, make_tables, person

T = datetime(2026, 3, 15)
DROP = "'; DROP TABLE people; --"
HOSTILE_VALUES = [DROP, "it's", "back\\slash", "50%_off", 'double"quote', "x' OR '1'='1", "$as_of"]
# fakesnow replaces $name with a session variable even inside a string literal (real
# Snowflake does not), so that one value is left out of the emulated run.
EMULATOR_BLIND_SPOTS = {"snowflake": {"$as_of"}}


def quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


NUMBERED = list(enumerate(HOSTILE_VALUES))
RULES = "\n".join(
    [
        *(f"segment eq_{i} where email = {quoted(v)}" for i, v in NUMBERED),
        *(f"segment has_{i} where email contains {quoted(v)}" for i, v in NUMBERED),
        f"segment listed where email in ({quoted(DROP)}, {quoted('it' + chr(39) + 's')})",
        f"segment event_named where did {quoted(DROP)}",
        f"segment json_key where did purchase where `{DROP}` = {quoted(DROP)}",
        f'segment titled title "{DROP} \\" done" where email = {quoted(DROP)}',
    ]
)
PEOPLE = [person(i + 1, email=value) for i, value in enumerate(HOSTILE_VALUES)]
EVENTS = [
    event(1, DROP, T),
    event(2, "purchase", T, properties={DROP: DROP}),
    event(3, "purchase", T, properties={"other": DROP}),
]


def test_queries_hold_one_statement_and_no_hidden_commands() -> None:
    project = make_project(RULES)
    for dialect in available_dialects():
        sql = project.compile(dialect=dialect, as_of=T)
        statements = sqlglot.parse(sql, read=dialect)
        assert len(statements) == 1
        tree = statements[0]
        assert isinstance(tree, exp.Query)
        assert not list(tree.find_all(exp.Drop, exp.Command, exp.Delete, exp.Insert))
        literals = {lit.this for lit in tree.find_all(exp.Literal) if lit.is_string}
        assert DROP in literals  # the hostile text is carried as a value, whole


def test_hostile_values_select_exactly_their_people(engine: Engine) -> None:
    project = make_project(RULES)
    engine.load(make_tables(people=PEOPLE, events=EVENTS))
    skipped = EMULATOR_BLIND_SPOTS.get(engine.name, set())
    segments = [
        name
        for name in project.segment_names
        if not any(name.endswith(f"_{HOSTILE_VALUES.index(v)}") for v in skipped)
    ]
    sql = project.compile(dialect=engine.dialect, as_of=T, segments=segments)
    found: dict[str, set[int]] = {}
    for segment, person_id in engine.query(sql):
        found.setdefault(segment, set()).add(int(person_id))
    for i, value in enumerate(HOSTILE_VALUES):
        if value not in skipped:
            assert found.get(f"eq_{i}") == {i + 1}
    assert found["has_0"] == {1}  # contains "'; DROP TABLE people; --"
    assert found["has_3"] == {4}  # '%' and '_' are literal characters
    assert found["listed"] == {1, 2}
    assert found["event_named"] == {1}
    assert found["json_key"] == {2}
    assert found["titled"] == {1}
    assert len(engine.query('SELECT * FROM "people"')) == len(PEOPLE)


@pytest.mark.parametrize("name", ['we"ird', "Plan Name", "select", "a`b"])
def test_column_names_are_quoted_identifiers(duckdb_engine: Engine, name: str) -> None:
    columns = (("person_id", "integer"), (name, "text"))
    tables = {**make_tables(), "people": Table(columns, ((1, "x"), (2, "y")))}
    catalog = Catalog.from_columns(
        {
            **{t: [(c, "VARCHAR") for c, _ in cols] for t, cols in SCHEMA.items()},
            "people": [("person_id", "BIGINT"), (name, "VARCHAR")],
        }
    )
    backticked = "`" + name.replace("`", "``") + "`"
    project = project_from_text(make_config(), f"segment s where {backticked} = 'x'", catalog)
    duckdb_engine.load(tables)
    rows = duckdb_engine.query(project.compile(dialect="duckdb", as_of=T))
    assert rows == [("s", 1)]
