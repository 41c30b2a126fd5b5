"""Language v2, part 2 (language.md 9.5 to 9.8): ``bucket()``, conditions on recorded
membership, population values and ``case when``.

Each is run on DuckDB, PostgreSQL and Snowflake (fakesnow) and in the reference evaluator,
and compared with answers written here by hand (or, for buckets, computed here with
hashlib from the formula of the language).
"""

from __future__ import annotations

import hashlib
import statistics
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from segql import project_from_text
from segql.compile.compiler import QueryOptions, compile_membership_query, compile_values_query
from segql.compile.dialect import get_dialect
from segql.compile.history_sql import HistorySource
from segql.compile.plan import describe_plan
from segql.config import config_from_dict
from segql.errors import SegqlError
from segql.language import ast
from segql.language.catalog import Catalog
from segql.language.parser import parse
from segql.language.printer import format_module
from segql.project import Project
from segql.reference import RecordedChange, evaluate, evaluate_traits
from tests.support.engines import Engine, Table
from tests.support.scenario import event, make_project, make_tables, person

T = datetime(2026, 3, 15, 12, 0, 0)
DAY = timedelta(days=1)


def expected_bucket(person_id: object, salt: str, buckets: int) -> int:
    """The language's formula, written out here again: md5 of ``salt:id``, its first
    eight hex digits as a number, mod n."""
    digest = hashlib.md5(f"{salt}:{person_id}".encode()).hexdigest()
    return int(digest[:8], 16) % buckets


# --- text: parse, print, errors ------------------------------------------------------------

ROUND_TRIP = """
trait ltv = sum(purchase.amount)
trait tier = case when ltv >= 1000 then 'gold' when ltv >= 250 then 'silver' else 'bronze' end
trait no_else = case when did login within 7 days then 1 end
trait seq = case when (did signup then login within 1 day) then 1 else 0 end
trait nested = case when case when ltv > 1 then 1 else 0 end = 1 then 'a' end
segment holdout where bucket(100, 'spring_promo') < 10 and bucket(4) = 0
segment send where not in holdout
segment top where ltv >= quantile(0.8, ltv) and ltv > 2 * population_avg(ltv)
segment mid where median(ltv) <= ltv and population_count(ltv) > population_min(ltv)
segment loyal where member of loyal for 30 days or entered top within 7 days
segment churned where exited top within 2 weeks and ever in top and not ever in `case`
segment `case` where population_max(ltv) = ltv
"""


def test_round_trip_of_every_construct() -> None:
    module = parse(ROUND_TRIP)
    text = format_module(module)
    assert parse(text) == module
    assert format_module(parse(text)) == text
    assert "case when ltv >= 1000 then 'gold'" in text
    assert "member of loyal for 30 days or entered top within 7 days" in text
    # a `did` inside a branch's condition is written as its count (no `then` to steal)
    assert "case when count(login within 7 days) >= 1 then 1 end" in text


def test_names_that_look_like_the_new_words_still_parse() -> None:
    """`member`, `ever`, `entered` as columns: the new forms need the words after them."""
    module = parse("segment a where member = 1 and ever in ('x') and entered is set and `end` > 0")
    assert parse(format_module(module)) == module


def _check(rules: str) -> SegqlError:
    with pytest.raises(SegqlError) as caught:
        make_project(rules).check()
    return caught.value


@pytest.mark.parametrize(
    ("rules", "message", "caret"),
    [
        ("segment a where quantile(1.5, ltv) > 0", "quantile() takes p from 0 to 1", "1.5"),
        ("segment a where quantile(-0.1, ltv) > 0", "quantile() takes p from 0 to 1", "-0.1"),
        ("segment a where quantile(p, ltv) > 0", "a number from 0 to 1", "p"),
        ("segment a where bucket(0) = 0", "bucket() needs at least 1 bucket", "0"),
        ("segment a where bucket(2.5) = 0", "a whole number of buckets", "2.5"),
        ("segment a where bucket(10, status) = 0", "the salt of bucket() is a quoted", "status"),
        ("segment a where median(status) = 'x'", "median() takes a number", "status"),
        (
            "segment a where (case when ltv > 1 then 'x' else 2 end) = 1",
            "the branches of case are of one kind: this is a number, the first is a string",
            "2",
        ),
        ("segment a where entered tpo within 7 days", "did you mean 'top'?", "entered"),
        (
            "segment a where did login where bucket(2) = 1",
            "bucket() reads the person's id, so it cannot stand inside an event filter",
            "bucket(2)",
        ),
    ],
)
def test_errors_point_at_the_mistake(rules: str, message: str, caret: str) -> None:
    error = _check(rules + "\nsegment top where ltv > 1")
    errors = getattr(error, "errors", [error])
    assert len(errors) == 1
    (found,) = errors
    assert message in found.render()
    assert found.span is not None and found.span.line == 1
    assert found.span.text.startswith(caret)
    assert "^" in found.render()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("segment a where entered top", "expected 'within' and a duration after 'entered top'"),
        ("segment a where member of top", "expected 'for' and a duration after 'member of top'"),
        ("trait t = case when ltv > 1 then 2", "expected 'when', 'else' or 'end'"),
        ("trait t = case when ltv > 1 2 end", "expected a condition and 'then' after 'when'"),
        ("trait t = case when ltv > then 2 end", "expected an expression, found 'then'"),
    ],
)
def test_syntax_errors(rules: str, message: str) -> None:
    with pytest.raises(SegqlError) as caught:
        parse(rules)
    assert message in str(caught.value)


def test_a_segment_may_name_itself_in_a_history_condition() -> None:
    make_project("segment sticky where status = 'paid' or ever in sticky").check()
    with pytest.raises(SegqlError, match="refer to each other"):
        make_project("segment sticky where status = 'paid' or in sticky").check()


# --- values on every engine ----------------------------------------------------------------


def _values(engine: Engine, project: Project, values: dict[str, str]) -> dict[Any, dict[str, Any]]:
    traits = parse("\n".join(f"trait {label} = {text}" for label, text in values.items()))
    exprs = {d.name: d.expr for d in traits.definitions if isinstance(d, ast.Trait)}
    project.check()
    query = compile_values_query(
        project.analyzer, exprs, get_dialect(engine.dialect), T, QueryOptions()
    )
    sql = query.sql(dialect=get_dialect(engine.dialect).sqlglot)
    found: dict[Any, dict[str, Any]] = {}
    for row in engine.query(sql):
        person_id = row[0]
        if isinstance(person_id, (Decimal, float)):
            person_id = int(person_id)
        found[person_id] = dict(zip(values, [_plain(v) for v in row[1:]], strict=True))
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


def _reference_values(
    project: Project, tables: dict[str, Table], values: dict[str, str]
) -> dict[Any, dict[str, Any]]:
    rules = "\n".join(f"trait {label} = {text}" for label, text in values.items())
    definitions = [*parse(rules).definitions]
    data = {name: (table.column_names, table.rows) for name, table in tables.items()}
    traits = evaluate_traits(definitions, project.config, data, T)
    people = next(iter(traits.values()))
    return {p: {label: traits[label][p] for label in values} for p in people}


BIG = 2**40 + 7
INTEGER_IDS = (0, 1, 7, 42, 999_999, BIG, -5)


def test_bucket_matches_md5_for_integer_ids(engine: Engine) -> None:
    tables = make_tables(people=[person(i) for i in INTEGER_IDS])
    engine.load(tables)
    project = make_project("segment any_one where true")
    values = {"b100": "bucket(100, 'spring_promo')", "b7": "bucket(7)", "b1": "bucket(1)"}
    found = _values(engine, project, values)
    expected = {
        i: {
            "b100": expected_bucket(i, "spring_promo", 100),
            "b7": expected_bucket(i, "", 7),
            "b1": 0,
        }
        for i in INTEGER_IDS
    }
    assert found == expected
    assert _reference_values(project, tables, values) == expected
    # the id's text: decimal, with the sign kept for a negative id
    assert expected_bucket(-5, "", 7) == int(hashlib.md5(b":-5").hexdigest()[:8], 16) % 7


def _text_id_project(salt: str | None) -> tuple[Project, dict[str, Table]]:
    raw: dict[str, Any] = {
        "entity": {"table": "accounts_by_name", "id": "name"},
        "sources": {"accounts": {"table": "accounts", "person": "person_id"}},
    }
    if salt is not None:
        raw["project"] = {"salt": salt}
    config = config_from_dict(raw, Path("."))
    catalog = Catalog.from_columns(
        {
            "accounts_by_name": [("name", "VARCHAR")],
            "accounts": [("person_id", "VARCHAR"), ("tier", "VARCHAR")],
        }
    )
    names = ("Ethyl Botsford", "a", "", "ünï", "it's", "A")
    tables = {
        "accounts_by_name": Table((("name", "text"),), tuple((n,) for n in names)),
        "accounts": Table((("person_id", "text"), ("tier", "text")), ()),
    }
    return project_from_text(config, "segment x where true", catalog), tables


@pytest.mark.parametrize("salt", [None, "house"])
def test_bucket_matches_md5_for_text_ids_and_the_project_salt(engine: Engine, salt) -> None:
    project, tables = _text_id_project(salt)
    engine.load(tables)
    values = {"default": "bucket(10)", "given": "bucket(10, 'x')"}
    found = _values(engine, project, values)
    expected = {
        name: {
            "default": expected_bucket(name, salt or "", 10),
            "given": expected_bucket(name, "x", 10),
        }
        for (name,) in tables["accounts_by_name"].rows
    }
    assert found == expected
    assert _reference_values(project, tables, values) == expected


LTV = {1: 1.0, 2: 2.0, 3: 2.0, 4: 3.0, 5: 10.0, 6: None}


def test_population_values_over_people_with_a_value(engine: Engine) -> None:
    tables = make_tables(people=[person(i, ltv=v) for i, v in LTV.items()])
    engine.load(tables)
    project = make_project("segment x where true")
    values = {
        "q80": "quantile(0.8, ltv)",
        "q25": "quantile(0.25, ltv)",
        "q0": "quantile(0, ltv)",
        "q1": "quantile(1, ltv)",
        "median": "median(ltv)",
        "avg": "population_avg(ltv)",
        "min": "population_min(ltv)",
        "max": "population_max(ltv)",
        "count": "population_count(ltv)",
    }
    present = sorted(v for v in LTV.values() if v is not None)
    cuts = statistics.quantiles(present, n=20, method="inclusive")  # every 5%
    by_hand = {
        "q80": 4.4,  # h = 4 * 0.8 = 3.2: 3 + 0.2 * (10 - 3)
        "q25": 2.0,  # h = 1: the tie of two 2s
        "q0": 1.0,
        "q1": 10.0,
        "median": 2.0,
        "avg": 3.6,
        "min": 1.0,
        "max": 10.0,
        "count": 5,  # the null is left out
    }
    assert cuts[15] == pytest.approx(by_hand["q80"]) and cuts[4] == by_hand["q25"]
    found = _values(engine, project, values)
    reference = _reference_values(project, tables, values)
    for person_id in LTV:
        for label, value in by_hand.items():
            assert found[person_id][label] == pytest.approx(value), (person_id, label)
            assert reference[person_id][label] == pytest.approx(value), (person_id, label)


def test_population_values_of_nobody(engine: Engine) -> None:
    tables = make_tables(people=[person(1), person(2)])
    engine.load(tables)
    project = make_project("segment x where true")
    values = {"q": "quantile(0.5, ltv)", "avg": "population_avg(ltv)", "n": "population_count(ltv)"}
    expected = {1: {"q": None, "avg": None, "n": 0}, 2: {"q": None, "avg": None, "n": 0}}
    assert _values(engine, project, values) == expected
    assert _reference_values(project, tables, values) == expected


def test_top_spenders_and_case_tiers(engine: Engine) -> None:
    rules = """
    trait tier = case when ltv >= 5 then 'gold' when ltv >= 2 then 'silver' end
    trait band = case when not (ltv >= 3) then 'low' else 'other' end
    segment top where ltv >= quantile(0.8, ltv)
    segment above where ltv > population_avg(ltv)
    segment silver where tier = 'silver'
    segment untiered where tier is not set
    segment low where band = 'low'
    segment at_median where ltv = median(ltv)
    """
    tables = make_tables(people=[person(i, ltv=v) for i, v in LTV.items()])
    engine.load(tables)
    project = make_project(rules)
    expected = {
        "top": {5},
        "above": {5},
        "silver": {2, 3, 4},
        "untiered": {1, 6},  # below every branch, and null: no else gives null
        "low": {1, 2, 3, 6},  # ltv >= 3 is false for the null, so `not` holds
        "at_median": {2, 3},
    }
    assert _members(engine, project) == expected
    assert _reference(project, tables) == expected


def _members(
    engine: Engine, project: Project, options: QueryOptions | None = None
) -> dict[str, set[Any]]:
    project.check()
    names = list(project.definitions.segments)
    query = compile_membership_query(
        project.analyzer, names, get_dialect(engine.dialect), T, options=options
    )
    found: dict[str, set[Any]] = {name: set() for name in names}
    for segment, person_id in engine.query(query.sql):
        found[segment].add(int(person_id) if isinstance(person_id, (Decimal, float)) else person_id)
    return found


def _reference(
    project: Project, tables: dict[str, Table], history: tuple[RecordedChange, ...] = ()
) -> dict[str, set[Any]]:
    data = {name: (table.column_names, table.rows) for name, table in tables.items()}
    definitions = [*project.definitions.segments.values(), *project.definitions.traits.values()]
    return evaluate(definitions, project.config, data, T, history=history)


# --- conditions on recorded membership -----------------------------------------------------

HISTORY_COLUMNS = (
    ("segment", "text"),
    ("person_id", "text"),
    ("change", "text"),
    ("as_of", "timestamp"),
    ("commit_seq", "integer"),
    ("run_id", "text"),
)
RUNS_COLUMNS = (("run_id", "text"), ("status", "text"))

# (segment, person, change, as_of, run): the runs below, in commit order
RECORDED = [
    ("paid", 2, "enter", T - 40 * DAY, "r1"),
    ("paid", 3, "enter", T - 40 * DAY, "r1"),
    ("paid", 6, "enter", T - 50 * DAY, "r0"),
    ("paid", 2, "exit", T - 20 * DAY, "r2"),
    ("paid", 2, "enter", T - 10 * DAY, "r3"),
    ("paid", 1, "enter", T - 3 * DAY, "r4"),
    ("paid", 6, "exit", T - 1 * DAY, "r5"),
    ("paid", 5, "enter", T - 2 * DAY, "failed"),  # a failed run's rows are not history
    ("paid", 4, "enter", T, "r6"),  # at T itself: a rerun at T does not see its own run
    ("loyal", 3, "enter", T - 5 * DAY, "r4"),
]
RUN_SEQ = {"r0": 1, "r1": 2, "r2": 3, "r3": 4, "r4": 5, "r5": 6, "failed": 7, "r6": 8}
HISTORY_RULES = """
segment paid where status = 'paid'
segment new_payer where entered paid within 7 days
segment very_new where entered paid within 2 days
segment lapsed where exited paid within 30 days
segment paying_30 where member of paid for 30 days
segment paying_7 where member of paid for 7 days
segment ever_paid where ever in paid
segment loyal where member of paid for 30 days or ever in loyal
"""
HISTORY_EXPECTED = {
    "paid": set(),
    "new_payer": {1},
    "very_new": set(),
    "lapsed": {2, 6},
    "paying_30": {3},  # 2 left and came back 10 days ago; 6 left yesterday
    "paying_7": {2, 3},
    "ever_paid": {1, 2, 3, 6},
    "loyal": {3},  # itself, 5 days ago, and paid for 30 days
}


def _history_tables() -> dict[str, Table]:
    rows = [
        (segment, str(p), change, as_of, RUN_SEQ[run], run)
        for segment, p, change, as_of, run in RECORDED
    ]
    runs = [(run, "failed" if run == "failed" else "committed") for run in RUN_SEQ]
    return {
        "recorded_history": Table(HISTORY_COLUMNS, tuple(rows)),
        "recorded_runs": Table(RUNS_COLUMNS, tuple(runs)),
    }


def _history_options() -> QueryOptions:
    def table(name: str) -> exp.Table:
        return exp.Table(this=exp.to_identifier(name, quoted=True))

    return QueryOptions(history=HistorySource(table("recorded_history"), table("recorded_runs")))


def _committed() -> tuple[RecordedChange, ...]:
    return tuple(
        RecordedChange(segment, str(p), change, as_of, RUN_SEQ[run])  # type: ignore[arg-type]
        for segment, p, change, as_of, run in RECORDED
        if run != "failed"
    )


def test_history_conditions_by_hand(engine: Engine) -> None:
    tables = {**make_tables(people=[person(i) for i in range(1, 8)]), **_history_tables()}
    engine.load(tables)
    project = make_project(HISTORY_RULES)
    assert _members(engine, project, _history_options()) == HISTORY_EXPECTED
    assert _reference(project, tables, _committed()) == HISTORY_EXPECTED


def test_history_conditions_without_history_are_false(engine: Engine) -> None:
    tables = {
        **make_tables(people=[person(i, status="paid") for i in range(1, 4)]),
        "recorded_history": Table(HISTORY_COLUMNS, ()),
        "recorded_runs": Table(RUNS_COLUMNS, ()),
    }
    engine.load(tables)
    project = make_project(HISTORY_RULES)
    expected = {name: set() for name in HISTORY_EXPECTED} | {"paid": {1, 2, 3}}
    assert _members(engine, project, _history_options()) == expected
    assert _reference(project, tables) == expected


def test_compile_reads_the_history_of_the_project_schema() -> None:
    project = make_project("segment a where status = 'x' or ever in a")
    sql = project.compile("postgres", as_of=T)
    assert 'FROM "segql"."segql_history"' in sql and 'FROM "segql"."segql_runs"' in sql
    plan = project.plan("duckdb")
    assert [(r.definition, r.incremental) for r in plan.history_reads] == [("ever in a", False)]


def test_plan_shows_population_values_as_not_incremental() -> None:
    project = make_project(
        "trait ltv2 = sum(purchase.amount)\n"
        "segment top where ltv2 >= quantile(0.8, ltv2) and bucket(10) < 3"
    )
    plan = project.plan("duckdb")
    assert [(v.function, v.incremental, v.segments) for v in plan.population_values] == [
        ("quantile", False, ("top",))
    ]
    assert plan.population_functions == ()
    text = describe_plan(plan)
    assert "population values (over everybody, one row, recomputed each run):" in text
    assert "quantile(0.8, ltv2)" in text
    assert any(c.kind == "bucket_digest" for s in plan.stages for c in s.columns)


def test_case_inside_an_event_filter(engine: Engine) -> None:
    """A ``case`` over a row's columns, in an event filter: its conditions read the row."""
    rules = """
    segment big_orders where count(purchase where (case when amount >= 10 then 'big'
                                                        when amount is set then 'small'
                                                        end) = 'big') >= 2
    segment unpriced where did purchase where (case when amount >= 0 then 1 end) is not set
    """
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3)],
        events=[
            event(1, "purchase", T - DAY, amount=10.0),
            event(1, "purchase", T - DAY, amount=25.0),
            event(2, "purchase", T - DAY, amount=10.0),
            event(2, "purchase", T - DAY, amount=9.5),
            event(3, "purchase", T - DAY),  # no amount: neither branch, so null
        ],
    )
    engine.load(tables)
    project = make_project(rules)
    expected = {"big_orders": {1}, "unpriced": {3}}
    assert _members(engine, project) == expected
    assert _reference(project, tables) == expected
