"""Every construct of the language, executed on DuckDB, PostgreSQL and Snowflake (fakesnow),
each compared with the reference evaluator, and the edges also with answers written by hand.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from segql import project_from_text
from tests.support.engines import Engine, Table
from tests.support.scenario import (
    SCHEMA,
    SQL_TYPES,
    account,
    event,
    make_catalog,
    make_config,
    make_project,
    make_tables,
    person,
    run_reference,
    run_sql,
    subscription,
)

T = datetime(2026, 3, 15, 12, 0, 0)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Scenario:
    rules: str
    tables: dict[str, Table]
    expected: dict[str, set[int]] | None = None  # written by hand, where it is worth it
    as_of: datetime = T
    timezone: str = "UTC"


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, rules: str, expected: dict[str, set[int]] | None = None, **kw) -> None:
    tables = make_tables(**{k: kw.pop(k) for k in list(kw) if k in _TABLE_ARGS})
    SCENARIOS[name] = Scenario(rules, tables, expected, **kw)


_TABLE_ARGS = ("people", "events", "subscriptions", "accounts")

scenario(
    "window edges, rows after T, unknown and null people",
    """
    segment recent where did login within 30 days
    segment between_window where count(login between 90 days ago and 30 days ago) >= 1
    segment absolute where did login between '2026-02-01' and '2026-03-01'
    segment since_abs where did login since '2026-02-14 12:00:00'
    segment before_rel where did login before 30 days ago
    segment ever where did login
    """,
    expected={
        "recent": {2, 3, 4},
        "between_window": {1, 4},
        "absolute": {1, 3, 4},
        "since_abs": {2, 3, 4},
        "before_rel": {1, 4},
        "ever": {1, 2, 3, 4},
    },
    people=[person(i) for i in (1, 2, 3, 4, 5)] + [person(None)],
    events=[
        event(1, "login", T - 30 * DAY),  # exactly T - 30d: outside within 30 days
        event(2, "login", T),  # exactly T: inside
        event(3, "login", T - 29 * DAY),
        event(4, "login", datetime(2026, 2, 1)),  # absolute start: inclusive
        event(4, "login", datetime(2026, 3, 1)),  # absolute end: exclusive
        event(5, "login", T + timedelta(seconds=1)),  # after T: does not exist
        event(99, "login", T - DAY),  # unknown person: ignored
        event(None, "login", T - DAY),
    ],
)

scenario(
    "properties and two-valued logic",
    """
    segment paid where status = 'paid'
    segment not_paid where status != 'paid'
    segment not_eq_paid where not (status = 'paid')
    segment in_list where country in ('US', 'CA', null)
    segment not_in_list where country not in ('US', null)
    segment range where ltv between 10 and 100
    segment not_range where ltv not between 10 and 100
    segment set where email is set and not (plan is set)
    segment trial where is_trial
    segment not_trial where not is_trial
    segment spaced where `Plan Name` = 'Pro Max'
    segment arith where ltv / 0 is not set and (ltv * 2 + 1) - -3 > 50 and abs(-ltv) >= 10
    segment text_order where country < 'D' and lower(status) = 'paid' and length(email) > 4
    """,
    people=[
        person(1, status="paid", country="US", ltv=10.0, email="a@x.io", is_trial=True),
        person(2, status="free", country="CA", ltv=100.0, plan="pro", is_trial=False),
        person(3, country="FR", ltv=9.5, email="b@y.io", **{"Plan Name": "Pro Max"}),
        person(4, status="PAID", ltv=None, email="", plan="free"),
        person(5, status="paid", country="DE", ltv=250.0, email="c@z.io", is_trial=None),
    ],
)

scenario(
    "text tests: literal % _ backslash, case, regular expressions",
    r"""
    segment has_percent where email contains '%'
    segment has_underscore where email contains '_'
    segment has_backslash where email contains '\'
    segment starts where email starts with 'AB'
    segment ends where email ends with '.IO'
    segment regex where email matches '^[a-z]+@[a-z]+\.io$'
    segment regex_anywhere where email matches 'x\.i'
    segment regex_case where email matches 'AB'
    segment quote where email contains 'it''s'
    """,
    people=[
        person(1, email="ab%c@x.io"),
        person(2, email="abc@x.io"),
        person(3, email="a_b@y.com"),
        person(4, email="AB\\it's@x.IO"),
        person(5, email=None),
        person(6, email="abXc@x.io"),
    ],
)

scenario(
    "aggregates, JSON properties, sources with and without time",
    """
    trait spend = sum(purchase.amount)
    segment big_spender where spend >= 100
    segment usd where sum(purchase.price where currency = 'USD' within 1 year) > 20
    segment distinct_urls where count_distinct(page_view.url within 30 days) >= 2
    segment avg_order where avg(purchase.amount) between 20 and 60
    segment min_max where min(purchase.amount) < 10 and max(purchase.amount) > 50
    segment first_last where first_time(any) before '2026-01-01' and last_time(any) within 7 days
    segment days where active_days(any) >= 3
    segment weeks where active_weeks(any) >= 2
    segment months where active_months(any within 1 year) >= 2
    segment active_sub where has subscriptions where status = 'active'
    segment recent_sub where count(subscriptions within 30 days) >= 1
    segment mrr where sum(subscriptions.mrr where status = 'active') > 50
    segment gold where has accounts where tier = 'gold'
    segment no_purchase where did not purchase
    segment json_bool where did purchase where gift
    segment json_missing where did purchase where coupon is not set
    segment person_filter where did purchase where (person.country = 'US' and amount > 5)
    """,
    people=[
        person(1, country="US"),
        person(2, country="FR"),
        person(3, country="US"),
        person(4),
    ],
    events=[
        event(1, "purchase", T - 2 * DAY, amount=80.0, properties={"currency": "USD", "price": 25}),
        event(
            1, "purchase", T - 40 * DAY, amount=30.0, properties={"currency": "EUR", "price": 99}
        ),
        event(1, "page_view", T - DAY, url="/pricing"),
        event(1, "page_view", T - 2 * DAY, url="/docs"),
        event(1, "page_view", T - 3 * DAY, url="/docs"),
        event(2, "purchase", T - 400 * DAY, amount=5.0, properties={"gift": True, "price": "n/a"}),
        event(2, "purchase", T - 10 * DAY, amount=60.0, properties={"gift": False, "coupon": "X"}),
        event(2, "page_view", datetime(2025, 12, 31, 23, 0), url="/a"),
        event(2, "page_view", T - 40 * DAY, url="/b"),
        event(3, "purchase", T - DAY, amount=None, properties={"currency": "USD", "price": "30"}),
        event(3, "login", T - 8 * DAY),
        event(3, "login", T - 15 * DAY),
    ],
    subscriptions=[
        subscription(1, T - 10 * DAY, status="active", mrr=40.0),
        subscription(1, T - 100 * DAY, status="active", mrr=20.0),
        subscription(2, T - 50 * DAY, status="canceled", mrr=99.0),
        subscription(3, T + DAY, status="active", mrr=500.0),  # after T
    ],
    accounts=[account(1, "gold"), account(2, "silver"), account(2, "gold"), account(None, "gold")],
)

scenario(
    "sequences",
    """
    segment converted where did trial_started then purchase within 7 days
    segment not_converted where did trial_started then not purchase within 7 days
    segment ever_after where did trial_started then purchase
    segment never_after where did trial_started then not purchase
    segment recent_cart where did cart within 30 days then not order within 1 day
    segment filtered
      where did page_view where url = '/pricing' then purchase where amount > 10 within 2 days
    """,
    expected={
        "converted": {1},
        "not_converted": {2, 4},
        "ever_after": {1, 2},
        "never_after": {4, 5},
        "recent_cart": {6},
        "filtered": {7},
    },
    people=[person(i) for i in range(1, 9)],
    events=[
        event(1, "trial_started", T - 20 * DAY),
        event(1, "purchase", T - 13 * DAY),  # exactly 7 days later: inside
        event(2, "trial_started", T - 20 * DAY),
        event(2, "purchase", T - 12 * DAY),  # 8 days later: outside
        event(4, "trial_started", T - 10 * DAY),
        event(5, "trial_started", T - 3 * DAY),  # has not had 7 days yet
        event(6, "cart", T - 5 * DAY),
        event(6, "order", T - 3 * DAY),
        event(6, "cart", T - 2 * DAY),  # no order within a day of this one
        event(7, "page_view", T - 4 * DAY, url="/pricing"),
        event(7, "purchase", T - 4 * DAY, amount=50.0),  # same time: not after
        event(7, "purchase", T - 3 * DAY, amount=50.0),
        event(8, "page_view", T - 4 * DAY, url="/pricing"),
        event(8, "purchase", T - 3 * DAY, amount=5.0),
    ],
)

scenario(
    "population functions with ties and nulls",
    """
    trait spend = sum(purchase.amount)
    trait last_seen = last_time(any)
    trait recency_score = ntile(5, -days_since(last_seen))
    segment top_spend where ntile(4, spend) = 4
    segment bottom_spend where ntile(4, spend) = 1
    segment q1 where qcut(4, spend) = 1
    segment q4 where qcut(4, spend) = 4
    segment q_nested where qcut(3, row_number(spend)) = 3
    segment first_row where row_number(spend) <= 2
    segment pr where percent_rank(ltv) >= 0.5
    segment recent where recency_score >= 4
    segment ltv_ntile where ntile(3, ltv) = 2
    """,
    people=[person(i, ltv=[5.0, 5.0, 1.0, None, 9.0, 9.0, 3.0, None][i - 1]) for i in range(1, 9)],
    events=[
        event(i, "purchase", T - i * DAY, amount=[10.0, 10.0, 20.0, 30.0, 30.0, 30.0, 5.0][i - 1])
        for i in range(1, 8)
    ],
)

scenario(
    "traits, segment references, hysteresis without history, functions",
    """
    trait renders = count(video_rendered within 30 days)
    trait double_renders = renders * 2
    segment power where double_renders >= 4
    segment power_paid where in power and status = 'paid'
    segment not_power where not in power
    segment engaged
      enter when renders >= 3
      exit when renders < 1
    segment inactive where days_since(last_time(any)) > 10 or last_time(any) is not set
    segment hours where hours_since(signup_at) < 48
    segment funcs where coalesce(plan, 'none') = 'none' and upper(status) = 'PAID'
      and round(ltv, 1) = 2.5 and least(ltv, 100, null) = ltv and greatest(ltv, 1) = ltv
    segment signup_window where signup_at within 7 days and signup_at after '2026-03-01'
    """,
    people=[
        person(1, status="paid", signup_at=T - 47 * timedelta(hours=1), ltv=2.46),
        person(2, status="free", signup_at=T - 49 * timedelta(hours=1), plan="pro", ltv=2.54),
        person(3, status="paid", signup_at=T + DAY, ltv=7.0),
        person(4),
    ],
    events=[
        *[event(1, "video_rendered", T - k * DAY) for k in (1, 2, 3)],
        *[event(2, "video_rendered", T - k * DAY) for k in (1, 2)],
        event(3, "video_rendered", T - 40 * DAY),
    ],
)

scenario(
    "calendar steps and timezone days",
    """
    segment month where did login within 1 month
    segment year where did login since 1 year ago
    segment tz_days where active_days(login) >= 2
    segment tz_literal where did login since '2026-03-31'
    """,
    people=[person(i) for i in (1, 2, 3)],
    events=[
        event(1, "login", datetime(2026, 2, 28, 12, 0, 1)),  # T - 1 month clamps to Feb 28
        event(2, "login", datetime(2025, 3, 31, 12, 0, 0)),  # T - 1 year exactly: excluded
        event(3, "login", datetime(2026, 3, 30, 22, 0)),  # same Paris day as the next one
        event(3, "login", datetime(2026, 3, 30, 23, 30)),  # (March 31 in Paris)
        event(3, "login", datetime(2026, 3, 30, 21, 0)),
    ],
    as_of=datetime(2026, 3, 31, 12, 0, 0),
    timezone="Europe/Paris",
)

scenario(
    "duplicate and null ids",
    """
    segment paid where status = 'paid'
    segment everyone where true
    segment clickers where count(click) >= 2
    """,
    expected={"paid": {1, 2}, "everyone": {1, 2, 3}, "clickers": {1}},
    people=[
        person(1, status="paid"),
        person(1, status="paid"),
        person(2, status="free"),
        person(2, status="paid"),  # disagreeing rows: the greatest value, 'paid'
        person(3),
        person(None, status="paid"),
    ],
    events=[event(1, "click", T - DAY), event(1, "click", T - 2 * DAY)],
)

scenario(
    "dates as times and a past as-of",
    """
    segment early where signup_at before '2026-01-01' and did login since '2025-06-01'
    """,
    expected={"early": {1}},
    people=[
        person(1, signup_at=datetime(2025, 5, 1)),
        person(2, signup_at=datetime(2026, 2, 1)),
        person(3, signup_at=datetime(2025, 5, 1)),
    ],
    events=[
        event(1, "login", datetime(2025, 7, 1)),
        event(3, "login", datetime(2025, 8, 1)),  # after this run's as-of
    ],
    as_of=datetime(2025, 7, 15),
)


# DuckDB counts active periods of a short window as a bitmap and ranks by ntile edges;
# PostgreSQL and Snowflake count them with COUNT(DISTINCT ...): all must agree, also where
# local days differ from UTC days and where a window ends inside a period.
PARIS_T = datetime(2026, 3, 31, 0, 30)  # 02:30 in Paris, two days after the clocks moved

scenario(
    "active periods of short windows in a timezone, and the aggregate prefilter",
    """
    segment days where active_days(any within 30 days) >= 3
    segment days_login where active_days(login within 7 days) >= 2
    segment weeks where active_weeks(any within 8 weeks) >= 2
    segment months where active_months(login within 2 months) >= 2
    segment between_days where active_days(any between 20 days ago and 5 days ago) >= 2
    segment long_days where active_days(any within 90 days) >= 3
    segment mixed where count(login within 1 month) >= 1 and sum(purchase.amount) > 10
      and count(page_view between '2026-01-01' and '2026-02-01') = 0
    segment shipped where did purchase where shipped_at after '2026-01-01'
    """,
    expected={
        "days": {1, 5},
        "days_login": {1, 2},
        "between_days": {3, 5},  # 3: a Sunday and a Monday night in Paris, one UTC day
        "long_days": {1, 5, 6, 7},
        "shipped": {7},
    },
    people=[person(i) for i in range(1, 8)],
    events=[
        event(1, "login", PARIS_T),
        event(1, "login", PARIS_T - timedelta(hours=1)),  # same Paris day as T
        event(1, "login", PARIS_T - 2 * DAY),
        event(
            1,
            "purchase",
            PARIS_T - 29 * DAY - timedelta(hours=23),
            amount=20.0,
            properties={"shipped_at": "soon"},  # not a time: null, on Snowflake too
        ),
        event(1, "login", PARIS_T - 30 * DAY),  # exactly T - 30 days: outside
        event(2, "login", datetime(2026, 3, 30, 22, 30)),  # 00:30 on March 31 in Paris
        event(2, "login", datetime(2026, 3, 30, 22, 45)),  # the same Paris day
        event(2, "login", datetime(2026, 3, 30, 21, 0)),  # 23:00 on March 30 in Paris
        event(3, "click", datetime(2026, 3, 22, 22, 30)),  # Sunday 23:30 in Paris
        event(3, "click", datetime(2026, 3, 22, 23, 30)),  # Monday 00:30: a new week
        event(4, "login", datetime(2026, 2, 10)),
        event(4, "login", datetime(2026, 3, 10)),
        event(4, "purchase", datetime(2025, 6, 1), amount=15.0),  # old, still counted
        event(5, "click", PARIS_T - 21 * DAY),  # before the window's start
        event(5, "click", PARIS_T - 19 * DAY),
        event(5, "click", PARIS_T - 6 * DAY),
        event(5, "click", PARIS_T - 4 * DAY),  # after its end
        event(6, "click", PARIS_T - 80 * DAY),
        event(6, "click", PARIS_T - 70 * DAY),
        event(6, "click", PARIS_T - 60 * DAY),
        event(7, "page_view", datetime(2026, 1, 15)),
        event(7, "login", PARIS_T - DAY),
        event(
            7,
            "purchase",
            datetime(2026, 1, 20),
            amount=50.0,
            properties={"shipped_at": "2026-01-21T10:00:00"},
        ),
    ],
    as_of=PARIS_T,
    timezone="Europe/Paris",
)


# DuckDB aggregates each merged guard's rows in a pass of its own, joined by person; past
# four guards, one pass keeps them all. People absent from a pass must still count zero.
scenario(
    "a pass per guard",
    """
    segment buyers_away where sum(purchase.amount) >= 10 and count(login within 7 days) = 0
    segment new_and_idle where count(login within 7 days) >= 1 and count(purchase) = 0
    segment carts_left where did cart_created then not purchase within 1 day
    """,
    expected={"buyers_away": {1}, "new_and_idle": {3}, "carts_left": {2}},
    people=[person(i) for i in range(1, 6)] + [person(None)],
    events=[
        # rows without a person reach every pass and sequence, and join nobody
        event(None, "purchase", T - 100 * DAY, amount=50.0),
        event(None, "login", T - DAY),
        event(None, "cart_created", T - 3 * DAY),
        event(2, "cart_created", T - 5 * DAY),
        event(1, "purchase", T - 200 * DAY, amount=20.0),
        event(2, "purchase", T - 200 * DAY, amount=20.0),
        event(2, "login", T - 2 * DAY),
        event(3, "login", T - DAY),
        event(5, "login", T - 8 * DAY),  # outside the window
        event(5, "purchase", T - DAY, amount=5.0),
    ],
)

scenario(
    "five guards in one pass",
    """
    segment any_signal where count(login within 7 days) >= 1
      or count(click within 14 days) >= 2 or count(purchase within 30 days) >= 1
      or count(page_view within 60 days) >= 3 or count(signup) >= 1
    """,
    expected={"any_signal": {1, 3, 4}},
    people=[person(i) for i in range(1, 6)],
    events=[
        event(1, "login", T - 3 * DAY),
        event(2, "click", T - 10 * DAY),
        event(2, "click", T - 20 * DAY),  # one click within 14 days: not enough
        event(3, "signup", T - 900 * DAY),
        *[event(4, "page_view", T - 50 * DAY) for _ in range(3)],
        event(5, "purchase", T - 40 * DAY),
    ],
)


@pytest.mark.parametrize(
    ("name", "passes"), [("a pass per guard", 2), ("five guards in one pass", 1)]
)
def test_duckdb_aggregates_each_guard_in_a_pass_up_to_four(name: str, passes: int) -> None:
    def aggregate_passes(dialect: str) -> int:
        return len(make_project(SCENARIOS[name].rules).plan(dialect).source("events").passes)

    assert aggregate_passes("duckdb") == passes
    assert aggregate_passes("postgres") == 1  # one pass on the others


# A JSON boolean is true/false, or that text in any case: warehouses' own casts disagree
# on 'yes', 'no', 'on', '1' (DuckDB reads 'no' as false, Snowflake 'on' as true).
scenario(
    "booleans in JSON",
    """
    segment gifted where count(purchase where gift = true) >= 1
    segment ungifted where count(purchase where gift = false) >= 1
    """,
    expected={"gifted": {1, 3}, "ungifted": {2, 4}},
    people=[person(i) for i in range(1, 7)],
    events=[
        event(1, "purchase", T - DAY, properties={"gift": True}),
        event(2, "purchase", T - DAY, properties={"gift": False}),
        event(3, "purchase", T - DAY, properties={"gift": " TRUE "}),
        event(4, "purchase", T - DAY, properties={"gift": "False"}),
        event(5, "purchase", T - DAY, properties={"gift": "yes"}),
        event(5, "purchase", T - DAY, properties={"gift": "no"}),
        event(6, "purchase", T - DAY, properties={"gift": "on"}),
        event(6, "purchase", T - DAY, properties={"gift": 1}),
        event(6, "purchase", T - DAY, properties={"gift": "0"}),
    ],
)

scenario(
    "one bucket",
    """
    segment one_bucket where qcut(1, ltv) = 1 and ntile(1, ltv) = 1
    segment second where row_number(qcut(1, ltv)) = 2
    """,
    expected={"one_bucket": {1, 2}, "second": {2}},  # each person once, in one bucket
    people=[person(1, ltv=0.0), person(2, ltv=5.0), person(3)],
)


def test_pass_names_do_not_clash_with_a_source_named_like_a_pass() -> None:
    config = make_config()
    renamed = dataclasses.replace(config.sources["subscriptions"], name="events_1")
    config = dataclasses.replace(config, sources={**config.sources, "events_1": renamed})
    rules = """
    segment both where count(login within 7 days) >= 1 and count(purchase) >= 1
      and count(events_1) >= 1
    """
    sql = project_from_text(config, rules, make_catalog()).compile("duckdb", as_of=T)
    names = [cte.alias for cte in sqlglot.parse_one(sql, read="duckdb").find_all(exp.CTE)]
    assert len(names) == len(set(names)), names
    con = duckdb.connect()
    for table, columns in SCHEMA.items():
        typed = ", ".join(f'"{c}" {SQL_TYPES[t]}' for c, t in columns)
        con.execute(f"CREATE TABLE {table} ({typed})")
    assert con.execute(sql).fetchall() == []


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_engine_matches_reference(engine: Engine, name: str) -> None:
    case = SCENARIOS[name]
    project = make_project(case.rules, timezone=case.timezone)
    engine.load(case.tables)
    from_sql = run_sql(engine, project, case.as_of)
    from_reference = run_reference(project, case.tables, case.as_of)
    assert from_sql == from_reference
    if case.expected is not None:
        assert {k: from_sql[k] for k in case.expected} == case.expected


def test_scenarios_are_not_vacuous() -> None:
    """Every scenario's segments select somebody and leave somebody out somewhere."""
    for name, case in SCENARIOS.items():
        project = make_project(case.rules, timezone=case.timezone)
        members = run_reference(project, case.tables, case.as_of)
        assert any(members.values()), name
        empty = [segment for segment, found in members.items() if not found]
        assert len(empty) <= len(members) // 3, (name, empty)


def test_dates_are_midnight_utc(duckdb_engine: Engine) -> None:
    """A DATE column compares as midnight UTC of its day."""
    project = make_project("segment on_day where signup_at within 1 day")
    tables = {
        "people": Table(
            (("person_id", "integer"), ("signup_at", "date")), ((1, date(2026, 3, 15)),)
        ),
        **{k: v for k, v in make_tables().items() if k != "people"},
    }
    duckdb_engine.load(tables)
    assert run_sql(duckdb_engine, project, datetime(2026, 3, 15, 23, 59)) == {"on_day": {1}}
    assert run_sql(duckdb_engine, project, datetime(2026, 3, 16, 0, 0, 1)) == {"on_day": set()}
