"""The compiler plans first, then lowers: the plan holds no SQL, and the lowering writes
only what the plan holds (a node it did not plan fails loudly, not silently)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone

import pytest
from sqlglot import exp

from segql.compile.compiler import QueryBuilder, QueryOptions, compile_membership_query
from segql.compile.dialect import get_dialect
from segql.compile.planner import Planner
from segql.compile.query_plan import QueryPlan, UnplannedError
from tests.support.scenario import make_project

RULES = """
trait ltv = sum(purchase.amount)
segment buyers where count(purchase within 30 days) >= 1
segment big where ltv > 100 and not in buyers
segment wide where count_distinct(purchase.amount) >= 2
segment ranked where ntile(4, ltv) = 4 and in buyers
segment converted where did signup then purchase within 7 days
segment streaky where streak(purchase, day) >= 2
segment recent where count(login within 7 days) >= 1
"""
AS_OF = datetime(2024, 6, 1, tzinfo=timezone.utc)


def planned(rules: str = RULES, dialect: str = "duckdb") -> QueryPlan:
    project = make_project(rules)
    project.check()
    planner = Planner(project.analyzer, get_dialect(dialect))
    return planner.plan_membership(project.segment_names)


def _everything_in(value: object) -> Iterator[object]:
    yield value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from _everything_in(getattr(value, item.name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _everything_in(key)
            yield from _everything_in(item)
    elif isinstance(value, (tuple, list, frozenset, set)):
        for item in value:
            yield from _everything_in(item)


def test_the_plan_is_made_before_any_sql_and_holds_none() -> None:
    plan = planned()
    assert not [v for v in _everything_in(plan) if isinstance(v, exp.Expr)]
    # everything the query computes is decided in it
    events = plan.sources["events"]
    assert set(events.layouts.values()) >= {"pass", "distinct", "streak"}
    assert set(events.layouts) == set(events.aggregates.values())
    assert {c.node.__class__.__name__ for c in plan.columns} == {"SegmentFlag", "PopulationRank"}
    # ntile's input is the trait, which is the aggregate's column itself (no rename stage)
    assert set(plan.population_inputs.values()) == {"sum__purchase__amount"}
    assert [p.segment for p in plan.segments] == [
        "buyers", "big", "wide", "ranked", "converted", "streaky", "recent",
    ]  # fmt: skip
    assert next(p for p in plan.segments if p.segment == "buyers").flagged


def test_the_lowering_writes_the_plan_it_is_given() -> None:
    """The SQL follows the plan's decisions, not decisions of its own: the same plan with
    one pass per guard for a dialect that would keep one pass is lowered as planned."""
    project = make_project(RULES)
    project.check()
    dialect = get_dialect("postgres")
    assert not dialect.pass_per_guard
    split = Planner(project.analyzer, get_dialect("duckdb")).plan_membership(["recent", "big"])
    assert len(split.passes) == 2
    lowering = QueryBuilder(project.analyzer, dialect, AS_OF, QueryOptions())
    sql = lowering.lower_membership(split).sql(dialect="postgres")
    assert all(f'"{p.name}"' in sql for p in split.passes)
    one = compile_membership_query(project.analyzer, ["recent", "big"], dialect, AS_OF).sql
    assert '"segql_aggs_events"' in one and not any(f'"{p.name}"' in one for p in split.passes)


def test_a_node_the_planner_did_not_plan_fails_loudly() -> None:
    plan = planned()
    events = plan.sources["events"]
    forgotten = {a: c for a, c in events.aggregates.items() if c != "count__purchase__30day"}
    broken = dataclasses.replace(
        plan, sources={"events": dataclasses.replace(events, aggregates=forgotten)}
    )
    project = make_project(RULES)
    project.check()
    lowering = QueryBuilder(project.analyzer, get_dialect("duckdb"), AS_OF, QueryOptions())
    with pytest.raises(UnplannedError, match="aggregate not in the plan"):
        lowering.lower_membership(broken)


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "snowflake", "spark"])
def test_every_plan_column_is_a_column_of_the_sql(dialect: str) -> None:
    plan = planned(dialect=dialect)
    project = make_project(RULES)
    project.check()
    sql = compile_membership_query(
        project.analyzer, project.segment_names, get_dialect(dialect), AS_OF
    ).sql
    for needs in plan.sources.values():
        for column in needs.aggregates.values():
            assert f'"{column}"' in sql or f"`{column}`" in sql
    for column in plan.columns:
        assert f'"{column.name}"' in sql or f"`{column.name}`" in sql
