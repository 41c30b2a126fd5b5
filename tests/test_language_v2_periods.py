"""Language v2, part 1: funnels of more than two steps, calendar periods, streaks and
``among last N`` (language.md 9.1 to 9.4), on every executed engine and in the reference,
each with answers written by hand at the edges.

The calendar scenarios run in America/New_York across the start of DST (Sunday March 8,
2026): the previous ISO week (Monday March 2 to Sunday March 8) is an hour short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from segql.compile.plan import describe_plan
from segql.errors import SegqlError
from segql.language import ast
from segql.language.parser import parse
from segql.language.printer import format_source
from segql.project import Project
from tests.support.engines import Engine, Table
from tests.support.scenario import (
    event,
    make_catalog,
    make_config,
    make_project,
    make_tables,
    person,
    run_reference,
    run_sql,
)
from tests.test_spark import spark  # noqa: F401  (the module's Spark fixture)

T = datetime(2026, 3, 15, 12, 0, 0)  # a Sunday: 08:00 in New York (EDT since March 8)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Case:
    rules: str
    tables: dict[str, Table]
    expected: dict[str, set[int]]
    timezone: str = "UTC"
    as_of: datetime = T


CASES: dict[str, Case] = {}


def case(
    name: str,
    rules: str,
    expected: dict[str, set[int]],
    timezone: str = "UTC",
    as_of: datetime = T,
    **tables: list,
) -> None:
    CASES[name] = Case(rules, make_tables(**tables), expected, timezone, as_of)


def _utc(*parts: int) -> datetime:
    return datetime(*parts)  # type: ignore[arg-type]


case(
    "funnels: chains, equal times, edges of within, then not, did not",
    """
    segment f3 where did signup then trial within 7 days then purchase within 14 days
    segment f3_any_time where did signup then trial then purchase
    segment f3_not where did signup within 30 days then trial within 1 day
      then not purchase within 2 days
    segment not_f3 where did not signup then trial then purchase
    segment f3_never where did signup then trial then not purchase
    segment f4 where did signup then trial within 1 day then purchase within 1 day
      then renew within 1 day
    segment f3_filters where did signup where url = 'ads' then trial
      then purchase where amount > 10 within 5 days
    """,
    expected={
        "f3": {1, 7, 9, 10, 11, 12, 13},
        # 3: the trial is at the signup's very time (strict a.t < b.t); 4: the purchase
        # follows only the trial that came too late for a within-7-days funnel
        "f3_any_time": {1, 2, 4, 7, 9, 10, 11, 12, 13},
        # 6: the two days are not over yet; 8: they end at T exactly (x.t + D <= T)
        "f3_not": {5, 8},
        "not_f3": {3, 5, 6, 8, 14},
        # without within: a reached trial with no purchase after it, up to T
        "f3_never": {5, 6, 8},
        "f4": {10},
        "f3_filters": {11},
    },
    people=[person(i) for i in range(1, 15)],
    events=[
        event(1, "signup", T - 20 * DAY),
        event(1, "trial", T - 15 * DAY),
        event(1, "purchase", T - 5 * DAY),
        event(2, "signup", T - 20 * DAY),
        event(2, "trial", T - 10 * DAY),  # 10 days: too late for within 7 days
        event(2, "purchase", T - 5 * DAY),
        event(3, "signup", T - 10 * DAY),
        event(3, "trial", T - 10 * DAY),  # the same time: does not follow
        event(3, "purchase", T - 9 * DAY),
        event(4, "signup", T - 30 * DAY),  # at T - 30 days: outside within 30 days
        event(4, "trial", T - 29 * DAY),
        event(4, "trial", T - 5 * DAY),
        event(4, "purchase", T - DAY),
        event(5, "signup", T - 10 * DAY),
        event(5, "trial", T - 10 * DAY + HOUR),
        event(6, "signup", T - 2 * DAY),
        event(6, "trial", T - 2 * DAY + HOUR),
        event(7, "signup", T - 10 * DAY),
        event(7, "trial", T - 10 * DAY + HOUR),
        event(7, "purchase", T - 9 * DAY),
        event(8, "signup", T - 3 * DAY),
        event(8, "trial", T - 2 * DAY),  # exactly 1 day later: inside (tA, tA + D]
        event(9, "signup", T - 30 * DAY),
        event(9, "trial", T - 25 * DAY),
        event(9, "purchase", T - 11 * DAY),  # exactly 14 days after the trial: inside
        event(10, "signup", T - 5 * DAY),
        event(10, "trial", T - 5 * DAY + HOUR),
        event(10, "purchase", T - 4 * DAY + HOUR),
        event(10, "renew", T - 4 * DAY + 2 * HOUR),
        event(11, "signup", T - 10 * DAY, url="ads"),
        event(11, "trial", T - 9 * DAY),
        event(11, "purchase", T - 8 * DAY, amount=20.0),
        event(12, "signup", T - 10 * DAY, url="ads"),
        event(12, "trial", T - 9 * DAY),
        event(12, "purchase", T - 8 * DAY, amount=5.0),
        event(13, "signup", T - 10 * DAY, url="organic"),
        event(13, "trial", T - 9 * DAY),
        event(13, "purchase", T - 8 * DAY, amount=20.0),
        event(14, "purchase", T + HOUR),  # after T: does not exist
    ],
)

case(
    "calendar periods in New York across DST",
    """
    segment today_s where did login today
    segment yesterday_s where did login yesterday
    segment this_week where did login in this week
    segment previous_week where did login in previous week
    segment this_month where count(login in this month) >= 1
    segment previous_month where did login in previous month
    segment previous_3_months where did login in previous 3 months
    segment this_quarter where did login in this quarter
    segment previous_quarter where did login in previous quarter
    segment this_year where did login in this year
    segment signup_previous_week where signup_at in previous week
    segment signup_today where signup_at in this day
    """,
    expected={
        "today_s": {1},
        "yesterday_s": {2},
        "this_week": {1, 2, 3},
        "previous_week": {4, 5},
        "this_month": {1, 2, 3, 4, 5, 6},
        "previous_month": {7},
        "previous_3_months": {7, 8, 10},
        "this_quarter": {1, 2, 3, 4, 5, 6, 7},
        "previous_quarter": {8, 9, 10, 12},
        "this_year": {1, 2, 3, 4, 5, 6, 7},
        "signup_previous_week": {1},
        "signup_today": {3},
    },
    timezone="America/New_York",
    people=[
        person(1, signup_at=_utc(2026, 3, 5, 12)),  # Thursday of the previous week
        person(2, signup_at=_utc(2026, 3, 15, 13)),  # today, but after T
        person(3, signup_at=_utc(2026, 3, 15, 11)),  # today, before T
        person(4, signup_at=_utc(2026, 3, 9, 4)),  # Monday 00:00 EDT: this week
        *(person(i) for i in range(5, 14)),
    ],
    events=[
        event(1, "login", _utc(2026, 3, 15, 4)),  # 00:00 EDT: today starts
        event(2, "login", _utc(2026, 3, 15, 3, 59, 59)),  # 23:59:59 EDT on the 14th
        event(3, "login", _utc(2026, 3, 9, 4)),  # Monday March 9, 00:00 EDT
        event(4, "login", _utc(2026, 3, 9, 3, 59)),  # Sunday March 8, 23:59 EDT
        event(5, "login", _utc(2026, 3, 2, 5)),  # Monday March 2, 00:00 EST
        event(6, "login", _utc(2026, 3, 2, 4, 59)),  # Sunday March 1, 23:59 EST
        event(7, "login", _utc(2026, 3, 1, 4, 59)),  # February 28, 23:59 EST
        event(8, "login", _utc(2025, 12, 1, 5)),  # December 1, 00:00 EST
        event(9, "login", _utc(2025, 12, 1, 4, 59)),  # November 30, 23:59 EST
        event(10, "login", _utc(2026, 1, 1, 4, 59)),  # December 31, 23:59 EST
        event(11, "login", T + timedelta(seconds=1)),  # after T: does not exist
        event(12, "login", _utc(2025, 10, 1, 4)),  # October 1, 00:00 EDT
        event(13, "login", _utc(2025, 10, 1, 3, 59)),  # September 30, 23:59 EDT
    ],
)


FALL_BACK = datetime(2026, 11, 2, 12, 0)  # Monday; clocks went back on Sunday November 1

case(
    "calendar periods in New York when the clocks go back: a 25-hour yesterday",
    """
    segment yesterday_s where did login yesterday
    segment today_s where did login today
    segment previous_week where did login in previous week
    segment streak_2 where streak(login, day) >= 2
    """,
    expected={
        "yesterday_s": {1, 2, 4},
        "today_s": {4},
        "previous_week": {1, 2, 3, 4},
        "streak_2": {4},
    },
    timezone="America/New_York",
    as_of=FALL_BACK,
    people=[person(i) for i in range(1, 6)],
    events=[
        event(1, "login", _utc(2026, 11, 2, 4, 30)),  # 23:30 EST on November 1
        event(2, "login", _utc(2026, 11, 1, 4, 0)),  # 00:00 EDT on November 1
        event(3, "login", _utc(2026, 11, 1, 3, 59)),  # 23:59 EDT on October 31
        event(4, "login", _utc(2026, 11, 2, 5, 0)),  # 00:00 EST on November 2: today
        event(4, "login", _utc(2026, 11, 1, 12, 0)),
        event(5, "login", _utc(2026, 10, 25, 3, 59)),  # Saturday October 24 local: 2 weeks
    ],
)


def _days(person_id: int, *days: int, hour: int = 12, name: str = "login", **values) -> list:
    """Rows on March days of 2026 at ``hour`` UTC (07:00 EST / 08:00 EDT: that local day)."""
    return [event(person_id, name, _utc(2026, 3, d, hour), **values) for d in days]


case(
    "streaks in New York: alive until yesterday, gaps, DST, local days",
    """
    segment day_3 where streak(login, day) >= 3
    segment day_2 where streak(login, day) = 2
    segment day_1 where streak(login, day) = 1
    segment day_0 where streak(login, day) = 0
    segment week_2 where streak(login, week) >= 2
    segment month_3 where streak(login, month) >= 3
    segment aws_2 where streak(quiz where url = 'aws', day) >= 2
    """,
    expected={
        "day_3": {1, 5},
        "day_2": {2},
        "day_1": {4, 6},
        "day_0": {3, 7, 8, 9, 10, 11, 12, 13, 14},
        "week_2": {5, 8},
        "month_3": {10, 11},
        "aws_2": {13},
    },
    timezone="America/New_York",
    people=[person(i) for i in range(1, 15)],
    events=[
        event(1, "login", _utc(2026, 3, 15, 5)),  # 01:00 EDT today
        *_days(1, 14, 13),
        *_days(2, 14, 13),  # nothing today: alive until yesterday
        *_days(3, 13, 12),  # nothing yesterday or today: 0
        *_days(4, 15, 13),  # a gap yesterday: today alone
        *_days(5, 7, 8, 9, 10, 11, 12, 13, 14),  # across the DST change: 8 days
        event(5, "login", _utc(2026, 3, 15, 3, 30)),  # 23:30 EDT on the 14th
        # In UTC these are March 15, 14 and 13; in New York all but the last are the 14th.
        event(6, "login", _utc(2026, 3, 15, 3, 59, 59)),
        event(6, "login", _utc(2026, 3, 14, 4)),
        event(6, "login", _utc(2026, 3, 13, 3, 59)),
        event(8, "login", _utc(2026, 3, 4, 12)),  # the previous week and the one before
        event(8, "login", _utc(2026, 2, 25, 12)),
        event(9, "login", _utc(2026, 2, 18, 12)),  # two and three weeks ago: 0 weeks
        event(9, "login", _utc(2026, 2, 25, 12)),
        event(10, "login", _utc(2026, 1, 15, 12)),
        event(10, "login", _utc(2026, 2, 15, 12)),
        event(10, "login", _utc(2026, 3, 1, 5)),  # March 1, 00:00 EST
        event(11, "login", _utc(2025, 12, 15, 12)),
        event(11, "login", _utc(2026, 1, 15, 12)),
        event(11, "login", _utc(2026, 3, 1, 4, 59)),  # still February in New York
        event(12, "login", _utc(2025, 11, 15, 12)),
        event(12, "login", _utc(2025, 12, 15, 12)),
        event(12, "login", _utc(2026, 1, 15, 12)),
        *_days(13, 15, 14, name="quiz", url="aws"),
        *_days(13, 13, name="quiz", url="gcp"),
        *_days(14, 15, name="quiz", url="aws"),
        *_days(14, 14, name="quiz", url="gcp"),
        event(7, "login", T + HOUR),  # after T: does not exist
    ],
)

case(
    "among last N: ties at the N-th row, the filter after the ranking",
    """
    segment aws_focus
      where count(quiz where url = 'aws' among last 3) / count(quiz among last 3) > 0.6
    segment last_2_aws where count(quiz where url = 'aws' among last 2) = 2
    segment newest_tie where count(any among last 1) >= 2
    segment last_2_spend where sum(quiz.amount among last 2) >= 10
    segment newest_is_aws where did quiz where url = 'aws' among last 1
    """,
    expected={
        # 2: the rows tied at the third place are both kept: 2 of 4, not 2 of 3
        "aws_focus": {1, 3, 4},
        "last_2_aws": {1, 4},
        "newest_tie": {4, 6},
        "last_2_spend": {7},
        # 3: its newest quiz is not about AWS (a filter first would find an AWS one)
        "newest_is_aws": {1, 2, 4},
    },
    people=[person(i) for i in range(1, 10)],
    events=[
        event(1, "quiz", T - DAY, url="aws"),
        event(1, "quiz", T - 2 * DAY, url="aws"),
        event(1, "quiz", T - 3 * DAY, url="gcp"),
        event(1, "quiz", T - 4 * DAY, url="gcp"),
        event(2, "quiz", T - DAY, url="aws"),
        event(2, "quiz", T - 2 * DAY, url="gcp"),
        event(2, "quiz", T - 3 * DAY, url="gcp"),
        event(2, "quiz", T - 3 * DAY, url="aws"),
        event(3, "quiz", T - DAY, url="gcp"),
        *(event(3, "quiz", T - k * DAY, url="aws") for k in range(2, 10)),
        event(4, "quiz", T - DAY, url="aws"),
        event(4, "quiz", T - DAY, url="aws"),
        event(4, "quiz", T - 2 * DAY, url="aws"),
        event(5, "quiz", T + HOUR, url="aws"),  # after T: does not exist
        event(5, "quiz", T - DAY, url="gcp"),
        event(6, "login", T - HOUR),
        event(6, "quiz", T - HOUR),
        event(7, "quiz", T - DAY, amount=6.0),
        event(7, "quiz", T - 2 * DAY, amount=6.0),
        event(7, "quiz", T - 3 * DAY, amount=100.0),
        event(8, "quiz", T - DAY, amount=3.0),
        event(8, "quiz", T - 2 * DAY, amount=3.0),
        event(8, "quiz", T - 3 * DAY, amount=100.0),
    ],
)


def _check(engine: Engine, name: str) -> None:
    found = CASES[name]
    project = make_project(found.rules, timezone=found.timezone)
    engine.load(found.tables)
    from_sql = run_sql(engine, project, found.as_of)
    from_reference = run_reference(project, found.tables, found.as_of)
    assert from_reference == found.expected
    assert from_sql == found.expected


@pytest.mark.parametrize("name", list(CASES))
def test_reference_gives_the_hand_written_answers(name: str) -> None:
    found = CASES[name]
    project = make_project(found.rules, timezone=found.timezone)
    assert run_reference(project, found.tables, found.as_of) == found.expected


@pytest.mark.parametrize("name", list(CASES))
def test_engine_gives_the_hand_written_answers(engine: Engine, name: str) -> None:
    _check(engine, name)


@pytest.mark.parametrize("name", list(CASES))
def test_spark_gives_the_hand_written_answers(spark, name: str) -> None:  # noqa: F811
    _check(spark, name)


# --- errors ------------------------------------------------------------------------------

ERRORS: dict[str, tuple[str, str]] = {
    "in_last_month": (
        "segment a where did login in last month",
        "segments/growth.segql:1:27: error: 'in last month' needs a number\n"
        "  |\n"
        "1 | segment a where did login in last month\n"
        "  |                           ^^^^^^^^^^^^^\n"
        "  = help: write `within 1 month` (the last 1 month, rolling) or "
        "`in previous month` (the whole calendar month before this one)",
    ),
    "then_not_in_the_middle": (
        "segment a where did a then not b within 1 day then c",
        "segments/growth.segql:1:47: error: 'then not' is allowed only as the last step "
        "of a funnel\n"
        "  |\n"
        "1 | segment a where did a then not b within 1 day then c\n"
        "  |                                               ^^^^\n"
        "  = help: move the negated step to the end, or test it on its own: "
        "`... and not (did A then B)`",
    ),
    "window_on_a_later_step": (
        "segment a where did a then b then c in this week",
        "segments/growth.segql:1:37: error: only the first step of a funnel takes a window\n"
        "  |\n"
        "1 | segment a where did a then b then c in this week\n"
        "  |                                     ^^\n"
        "  = help: a later step is measured from the step before it: "
        "`then STEP within 7 days`; give the first step the window",
    ),
    "among_last_with_a_window": (
        "segment a where count(quiz among last 5 within 7 days) > 1",
        "segments/growth.segql:1:41: error: 'among last' takes no other window\n"
        "  |\n"
        "1 | segment a where count(quiz among last 5 within 7 days) > 1\n"
        "  |                                         ^^^^^^^^^^^^^\n"
        "  = help: the last 5 rows are the newest up to the as-of time; drop the window, "
        "or drop 'among last' and keep the window",
    ),
    "streak_with_a_window": (
        "segment a where streak(login within 30 days, day) >= 7",
        "segments/growth.segql:1:30: error: streak() takes no window\n"
        "  |\n"
        "1 | segment a where streak(login within 30 days, day) >= 7\n"
        "  |                              ^^^^^^^^^^^^^^\n"
        "  = help: a streak ends at the current period (or the one before it): "
        "write streak(quiz_completed, day)",
    ),
    "streak_unit": (
        "segment a where streak(login, days) >= 7",
        "segments/growth.segql:1:31: error: expected day, week or month, found 'days'\n"
        "  |\n"
        "1 | segment a where streak(login, days) >= 7\n"
        "  |                               ^^^^\n"
        "  = help: did you mean 'day'?",
    ),
    "period_on_a_number": (
        "segment a where ltv in this month",
        "segments/growth.segql:1:17: error: a calendar period tests a time, but this is a "
        "number\n"
        "  |\n"
        "1 | segment a where ltv in this month\n"
        "  |                 ^^^\n"
        "  = help: time tests apply to time columns and to first_time(...), last_time(...)",
    ),
    "plural_this": (
        "segment a where did login in this weeks",
        "segments/growth.segql:1:35: error: 'in this weeks' takes one week\n"
        "  |\n"
        "1 | segment a where did login in this weeks\n"
        "  |                                   ^^^^^\n"
        "  = help: write `in this week`",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_error_text(name: str) -> None:
    text, expected = ERRORS[name]
    with pytest.raises(SegqlError) as caught:
        project = Project(make_config(), [parse(text, "segments/growth.segql")], make_catalog())
        project.check()
    assert caught.value.render() == expected


# --- syntax: aliases, round trip, the plan ------------------------------------------------


def _where(text: str) -> object:
    segment = parse(f"segment s where {text}").definitions[0]
    return segment.where  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("short", "long"),
    [
        ("did login today", "did login in this day"),
        ("did login yesterday", "did login in previous day"),
        ("did login in previous 1 month", "did login in previous month"),
        ("did login in previous 2 WEEKS", "did login in previous 2 weeks"),
        ("did not a then b then c", "not (did a then b then c)"),
        ("did not a then b", "not (did a then b)"),
    ],
)
def test_each_alias_is_the_same_tree(short: str, long: str) -> None:
    assert _where(short) == _where(long)


def test_a_funnel_of_three_steps_is_one_node_with_the_negation_on_its_last_step() -> None:
    funnel = _where("did a within 30 days then b within 1 hour then not c where x = 1 within 1 day")
    assert isinstance(funnel, ast.Funnel)
    assert funnel.negated and funnel.first.window == ast.WindowWithin(ast.Duration(30, "day"))
    assert [step.spec.ref for step in funnel.steps] == ["b", "c"]
    assert [step.within for step in funnel.steps] == [
        ast.Duration(1, "hour"),
        ast.Duration(1, "day"),
    ]
    assert funnel.steps[1].spec.where is not None


def test_fmt_writes_the_v2_forms_back() -> None:
    text = (
        "segment a where did signup then trial within 7 days then not purchase within 14 days\n"
        "segment b where count(login in previous 3 months) >= 2 and signup_at in this week\n"
        "segment c where did login yesterday and did login today\n"
        "segment d where streak(quiz where url = 'aws', week) >= 2\n"
        "segment e where count(quiz where url = 'aws' among last 100) >= 2\n"
    )
    formatted = format_source(text)
    expected = "\n".join(
        line.replace(" where ", "\n  where ", 1) + "\n" for line in text.splitlines()
    )
    assert formatted == expected
    assert parse(formatted) == parse(text)


def test_the_plan_shows_the_v2_aggregates_and_none_is_incremental() -> None:
    project = make_project(
        """
        segment s where streak(login, day) >= 7
        segment m where count(login in this month) >= 2 and sum(purchase.amount in this year) > 1
        segment l where count(quiz among last 10) >= 5
        segment f where did a then b then not c within 1 day
        """
    )
    plan = project.plan()
    kinds = {a.definition: (a.layout, a.incremental) for a in plan.aggregates}
    assert kinds == {
        "streak(login, day)": ("streak", False),
        "count(login in this month)": ("pass", False),
        "sum(purchase.amount in this year)": ("pass", False),
        "count(quiz among last 10)": ("last_rows", False),
    }
    assert [s.definition for s in plan.sequences] == ["did a then b then not c within 1 day"]
    text = describe_plan(plan)
    assert "streak segql_streak_streak__login__day" in text
    assert "[last_rows, per run: changed people]" in text and "[streak, per run: full]" in text
