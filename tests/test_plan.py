"""The plan as data: what the query reads and computes, asserted without reading SQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from segql.cli import main
from segql.compile.dialect import available_dialects
from segql.compile.plan import Plan, describe_plan
from tests.support.scenario import make_project

RULES = """
segment buyers where count(purchase within 30 days) >= 1
segment big where sum(purchase.amount) > 100 and ltv > 5
segment regulars where active_days(any within 14 days) >= 3
segment wide where count_distinct(purchase.amount) >= 2
segment ranked where ntile(4, sum(purchase.amount)) = 4 and in buyers
segment converted where did signup then purchase within 7 days
"""


def plan_of(rules: str, dialect: str = "duckdb", segments: list[str] | None = None) -> Plan:
    return make_project(rules).plan(dialect, segments)


def test_column_names_do_not_depend_on_the_other_rules() -> None:
    """A segment added before another does not rename the other's columns (they were
    numbered in traversal order: agg_1 became agg_2 in every golden file)."""
    alone = plan_of(RULES, segments=["big"])
    before = "segment first where count(login within 7 days) >= 1 and max(purchase.amount) > 1\n"
    with_more = plan_of(before + RULES, segments=["first", "big"])
    names = {a.column for a in alone.aggregates}
    assert names == {"sum__purchase__amount"}
    assert names <= {a.column for a in with_more.aggregates}


def test_different_filters_get_different_names() -> None:
    plan = plan_of(
        """
        segment a where count(purchase where amount > 1) >= 1
        segment b where count(purchase where amount > 2) >= 1
        """
    )
    columns = [a.column for a in plan.aggregates]
    assert len(set(columns)) == 2
    assert all(c.startswith("count__purchase_") for c in columns)


def test_each_source_is_read_once_with_its_aggregates_and_their_segments() -> None:
    plan = plan_of(RULES)
    assert [s.name for s in plan.sources] == ["events"]
    events = plan.source("events")
    by_column = {a.column: a for a in plan.aggregates}
    assert by_column["count__purchase__30day"].segments == ("buyers", "ranked")
    assert by_column["sum__purchase__amount"].segments == ("big", "ranked")
    assert by_column["sum__purchase__amount"].property == "amount"
    assert by_column["count__purchase__30day"].window == "within 30 days"
    # the distinct count is on its own, over only its rows
    assert [d.aggregate.column for d in events.distinct_counts] == [
        "count_distinct__purchase__amount"
    ]
    in_passes = {a.column for p in events.passes for a in p.aggregates}
    assert "count_distinct__purchase__amount" not in in_passes


def test_active_days_are_a_bitmap_on_duckdb_and_a_distinct_count_elsewhere() -> None:
    def layout(dialect: str) -> str:
        plan = plan_of(RULES, dialect, ["regulars"])
        return next(a.layout for a in plan.aggregates if a.kind == "active_days")

    assert layout("duckdb") == "bitmap"
    assert layout("postgres") == "distinct"


def test_incremental_follows_from_kind_and_window() -> None:
    plan = plan_of(
        """
        segment s where count(purchase) >= 1 and count(purchase within 7 days) >= 1
          and count(login after '2026-01-01') >= 1 and count(login after 3 days ago) >= 1
          and count_distinct(purchase.amount) >= 1
        """
    )
    flags = {a.definition: a.incremental for a in plan.aggregates}
    assert flags == {
        "count(purchase)": True,
        "count(purchase within 7 days)": False,
        "count(login since '2026-01-01')": True,
        "count(login since 3 days ago)": False,
        "count_distinct(purchase.amount)": False,
    }


def test_population_functions_stages_sequences_and_predicates() -> None:
    plan = plan_of(RULES, segments=["ranked", "converted"])
    [ntile] = plan.population_functions
    assert ntile.function == "ntile" and ntile.by_edges and ntile.segments == ("ranked",)
    computed = {c.name: (stage.number, c.kind) for stage in plan.stages for c in stage.columns}
    assert computed[ntile.column] == (1, "population")
    assert computed["in__buyers"] == (1, "segment")
    [sequence] = plan.sequences
    assert sequence.segments == ("converted",)
    ranked = plan.segments[0]
    assert ranked.name == "ranked"
    assert set(ranked.reads) >= {ntile.column, "in__buyers", "count__purchase__30day"}


def test_every_plan_column_is_in_the_sql() -> None:
    project = make_project(RULES)
    sql = project.compile("duckdb")
    plan = project.plan("duckdb")
    columns = [a.column for a in plan.aggregates] + [s.column for s in plan.sequences]
    columns += [c.name for stage in plan.stages for c in stage.columns]
    assert columns and all(f'"{c}"' in sql for c in columns)
    for source in plan.sources:
        assert all(f'"{p.name}"' in sql for p in source.passes)


def test_plan_text_names_sources_passes_and_segments() -> None:
    text = describe_plan(plan_of(RULES))
    assert "source events: table events, read once" in text
    assert "count__purchase__30day = count(purchase within 30 days)" in text
    assert "for: buyers, ranked" in text
    assert "population functions (over everybody):" in text


def write_project(folder: Path, rules: str) -> Path:
    (folder / "segments").mkdir(parents=True)
    (folder / "segql.toml").write_text(
        '[warehouse]\nurl = "duckdb:///:memory:"\n\n[entity]\ntable = "people"\nid = "id"\n\n'
        '[events]\ntable = "events"\nperson = "person_id"\nname = "name"\ntime = "at"\n'
        'properties = "props"\n'
    )
    (folder / "segments" / "rules.segql").write_text(rules)
    return folder


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return write_project(
        tmp_path / "p",
        "segment buyers where count(purchase within 30 days) >= 1\n"
        "segment big where sum(purchase.amount) > 100\n",
    )


def test_cli_plan_prints_text_and_json(project_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(project_dir), "plan", "buyers"])
    assert result.exit_code == 0, result.output
    assert "pass segql_aggs_events" in result.output
    assert "count__purchase__30day" in result.output and "sum__" not in result.output
    result = runner.invoke(
        main, ["--project", str(project_dir), "plan", "--format", "json", "-d", "postgres"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dialect"] == "postgres"
    [source] = data["sources"]
    assert source["events"] == ["purchase"]
    columns = {a["column"] for p in source["passes"] for a in p["aggregates"]}
    assert columns == {"count__purchase__30day", "sum__purchase__amount"}


def test_cli_plan_of_an_unknown_segment_is_a_clear_error(project_dir: Path) -> None:
    result = CliRunner().invoke(main, ["--project", str(project_dir), "plan", "buyer"])
    assert result.exit_code == 1
    assert "buyer" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("dialect", sorted(available_dialects()))
def test_every_dialect_has_a_plan_that_its_sql_follows(dialect: str) -> None:
    project = make_project(RULES)
    plan = project.plan(dialect)
    sql = project.compile(dialect)
    quote = "`" if dialect in ("bigquery", "spark") else '"'
    assert all(f"{quote}{a.column}{quote}" in sql for a in plan.aggregates)
    assert json.loads(json.dumps(plan.to_dict()))["dialect"] == dialect
