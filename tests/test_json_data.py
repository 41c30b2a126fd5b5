"""JSON properties as they come from real trackers: keys with quotes, backslashes, dots or
brackets; every warehouse reads the key it was asked for, as the reference does."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segql.language.catalog import Catalog
from segql.project import Project, project_from_text
from tests.support.engines import Engine, Table
from tests.support.scenario import (
    SCHEMA,
    SQL_TYPES,
    event,
    make_config,
    make_project,
    make_tables,
    person,
    run_reference,
    run_sql,
)

T = datetime(2026, 3, 15, 12, 0, 0)
ODD = "\"\\'$./[]*~@ -_:aB0é`{}"
KEYS = st.text(alphabet=ODD, min_size=1, max_size=6)


def backticked(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@pytest.mark.parametrize("engine", ["duckdb", "postgres"], indirect=True)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(keys=st.lists(KEYS, min_size=1, max_size=8, unique=True))
def test_odd_json_keys_read_the_key_named(engine: Engine, keys: list[str]) -> None:
    """Person i has ``keys[i] = 1``; other people hold the other keys (= 2), and keys one
    character longer or shorter (decoys a wrong path would read). Segment i is person i."""
    rules = "".join(
        f"segment k{i} where did purchase where {backticked(key)} = 1\n"
        for i, key in enumerate(keys)
    )
    events = []
    for i, key in enumerate(keys):
        properties = {other: 2 for other in keys if other != key}
        properties.update({key + "x": 3, key[:-1] or "y": 4})
        properties[key] = 1
        events.append(event(i + 1, "purchase", T - timedelta(days=1), properties=properties))
    tables = make_tables(people=[person(i + 1) for i in range(len(keys))], events=events)
    project = make_project(rules)
    expected = {f"k{i}": {i + 1} for i in range(len(keys))}
    assert run_reference(project, tables, T) == expected
    engine.load(tables)
    assert run_sql(engine, project, T) == expected


NAN_RULES = """
segment big where ltv > 100
segment small where ltv < 100
segment unset where ltv is not set
segment top where ntile(2, ltv) = 2
segment spent where sum(purchase.amount) > 10
segment biggest where max(purchase.amount) > 100
"""


def test_nan_is_null_on_every_engine_and_the_reference(engine: Engine) -> None:
    """NaN in a numeric column is no value: not above every number (DuckDB, PostgreSQL),
    not a member of ``> 100``, counted as unset, skipped by sum and max."""
    nan = float("nan")
    tables = make_tables(
        people=[person(1, ltv=nan), person(2, ltv=500.0), person(3, ltv=5.0)],
        events=[
            event(1, "purchase", T - timedelta(days=1), amount=nan),
            event(1, "purchase", T - timedelta(days=2), amount=20.0),
            event(2, "purchase", T - timedelta(days=1), amount=nan),
        ],
    )
    project = make_project(NAN_RULES)
    expected = {
        "big": {2},
        "small": {3},
        "unset": {1},
        "top": {2},
        "spent": {1},
        "biggest": set(),
    }
    assert run_reference(project, tables, T) == expected
    engine.load(tables)
    assert run_sql(engine, project, T) == expected


TEXT_SCHEMA = {
    name: tuple((c, "text" if (name, c) == ("events", "properties") else t) for c, t in columns)
    for name, columns in SCHEMA.items()
}
MALFORMED_RULES = """
segment big_spender where did purchase where amount_json > 10
segment any_purchase where did purchase
segment no_plan where not did purchase where plan = 'pro'
"""


def text_properties_project(rules: str) -> Project:
    """The scenario's project with ``events.properties`` a text column holding JSON."""
    catalog = Catalog.from_columns(
        {table: [(c, SQL_TYPES[t]) for c, t in cols] for table, cols in TEXT_SCHEMA.items()}
    )
    return project_from_text(make_config(), rules, catalog)


def test_malformed_json_properties_are_null_for_that_row(engine: Engine) -> None:
    """A properties value that is not a JSON object is null for its row; the other rows
    are read (the run used to fail on the first malformed value)."""
    texts = [
        (1, '{"amount_json": 20, "plan": "pro"}'),
        (2, '{"amount_json": 20, "plan": "pro"'),  # truncated
        (3, "not json at all"),
        (4, '{"amount_json": 30}'),
        (5, '[{"amount_json": 30, "plan": "pro"}]'),  # JSON, but no object
    ]
    events = [
        tuple(
            text if column == "properties" else value
            for (column, _), value in zip(
                SCHEMA["events"], event(pid, "purchase", T - timedelta(days=1)), strict=True
            )
        )
        for pid, text in texts
    ]
    tables = make_tables(people=[person(i) for i in range(1, 6)])
    tables = {
        **{name: Table(TEXT_SCHEMA[name], table.rows) for name, table in tables.items()},
        "events": Table(TEXT_SCHEMA["events"], tuple(events)),
    }
    project = text_properties_project(MALFORMED_RULES)
    expected = {
        "big_spender": {1, 4},
        "any_purchase": {1, 2, 3, 4, 5},
        "no_plan": {2, 3, 4, 5},
    }
    assert run_reference(project, tables, T) == expected
    engine.load(tables)
    assert run_sql(engine, project, T) == expected


def text_events(texts: list[tuple[int, str]]) -> dict[str, Table]:
    """Tables of people 1..n, each with one purchase whose text properties are given."""
    events = [
        tuple(
            text if column == "properties" else value
            for (column, _), value in zip(
                SCHEMA["events"], event(pid, "purchase", T - timedelta(days=1)), strict=True
            )
        )
        for pid, text in texts
    ]
    tables = make_tables(people=[person(pid) for pid, _ in texts])
    return {
        **{name: Table(TEXT_SCHEMA[name], table.rows) for name, table in tables.items()},
        "events": Table(TEXT_SCHEMA["events"], tuple(events)),
    }


@pytest.mark.parametrize("engine", ["duckdb", "postgres"], indirect=True)
def test_a_duplicate_json_key_reads_its_last_value(engine: Engine) -> None:
    """``{"plan": "free", "plan": "pro"}`` is plan "pro", as PostgreSQL's json and jsonb and
    Python's json read it (DuckDB's extraction read the first). Not Snowflake: fakesnow
    reads the first, and Snowflake's own parser refuses duplicate keys by default."""
    tables = text_events(
        [
            (1, '{"plan": "free", "n": 1, "plan": "pro"}'),
            (2, '{"plan": "pro", "plan": "free"}'),
            (3, '{"plan": "pro", "note": "plan", "plan": null}'),
            (4, '{"plan": "pro", "x": {"plan": "free"}}'),  # the inner one is another key
            (5, '{"a\\"b": 1, "a\\"b": 2, "n": 1}'),
            (6, '{"a_b": 1, "axb": 2, "ayb": 3}'),  # LIKE's _ matches x: not a duplicate
            (7, '{"axb": 2, "a_b": 5, "ayb": 3, "a_b": 1}'),
            (8, '{"axb": 1, "ayb": 1}'),
        ]
    )
    rules = (
        "segment pro where did purchase where plan = 'pro'\n"
        'segment quoted where did purchase where `a"b` = 2\n'
        "segment underscore where did purchase where a_b = 1\n"
        "segment no_underscore where did purchase where a_b is not set\n"
    )
    project = text_properties_project(rules)
    expected = {
        "pro": {1, 4},
        "quoted": {5},
        "underscore": {6, 7},
        "no_underscore": {1, 2, 3, 4, 5, 8},
    }
    assert run_reference(project, tables, T) == expected
    engine.load(tables)
    assert run_sql(engine, project, T) == expected
