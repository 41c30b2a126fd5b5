"""Segment templates: each renders with its defaults to text that parses, bad parameters are
errors naming the parameter, and each template's segments pick the people a person would
pick by hand, on DuckDB and in the reference evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from segql.errors import SegqlError
from segql.language import ast
from segql.language.parser import parse
from segql.starters.templates import (
    get_template,
    list_templates,
    render_template,
    show_template,
    template_dirs,
    templates_dir,
)
from tests.support.engines import DuckDBEngine, Table
from tests.support.scenario import (
    event,
    make_project,
    make_tables,
    person,
    run_reference,
    run_sql,
)

T = datetime(2026, 3, 15, 12, 0, 0)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TEMPLATE_NAMES = [info.name for info in list_templates()]


def members(
    engine: DuckDBEngine,
    template: str,
    tables: Mapping[str, Table],
    params: Mapping[str, str] | None = None,
) -> dict[str, set[Any]]:
    """Members per segment of a rendered template; DuckDB and the reference must agree."""
    project = make_project(render_template(template, params or {}))
    engine.load(dict(tables))
    found = run_sql(engine, project, T)
    assert found == run_reference(project, tables, T)
    return found


# --- listing and rendering -----------------------------------------------------------------


def test_the_expected_templates_are_listed() -> None:
    assert set(TEMPLATE_NAMES) >= {
        "power_users",
        "churn_risk",
        "trial_to_paid",
        "free_trial",
        "high_ltv",
        "lifecycle",
        "engagement",
        "focus",
        "rfm",
        "activity_classes",
        "ab_holdout",
        "streak",
        "certification_focus",
    }
    for info in list_templates():
        assert info.title and info.description.strip()
        assert all(p.default != "" for p in info.params)


def test_templates_are_found_in_the_source_tree() -> None:
    assert templates_dir() in template_dirs()
    assert (templates_dir() / "power_users.segql.j2").is_file()


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_template_renders_with_defaults_and_parses(name: str) -> None:
    module = parse(render_template(name, {}))
    assert module.definitions
    assert any(isinstance(d, ast.Segment) for d in module.definitions)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_show_template_gives_description_params_and_text(name: str) -> None:
    shown = show_template(name)
    assert get_template(name).title in shown
    for param in get_template(name).params:
        assert param.name in shown
    assert render_template(name, {}) in shown


def test_event_and_property_names_are_rendered_safely() -> None:
    text = render_template(
        "high_ltv",
        {"name": "big spenders", "event": "Order Completed", "property": "where"},
    )
    (segment,) = parse(text).definitions
    assert isinstance(segment, ast.Segment)
    assert segment.name == "big spenders"
    assert segment.where == ast.Compare(
        ">=",
        ast.Aggregate("sum", ast.EventSpec("Order Completed"), "where"),
        ast.Number(500),
    )


def test_hostile_event_names_stay_event_names() -> None:
    hostile = "x') >= 0 or (count(any"
    text = render_template("power_users", {"event": hostile})
    (segment,) = parse(text).definitions
    assert isinstance(segment, ast.Segment)
    assert segment.where == ast.Compare(
        ">=",
        ast.Aggregate(
            "count", ast.EventSpec(hostile, window=ast.WindowWithin(ast.Duration(30, "day")))
        ),
        ast.Number(10),
    )


def test_any_means_every_event() -> None:
    (segment,) = parse(render_template("power_users", {"event": "any"})).definitions
    assert isinstance(segment, ast.Segment) and isinstance(segment.where, ast.Compare)
    assert isinstance(segment.where.left, ast.Aggregate)
    assert segment.where.left.spec.ref is None


# --- parameter errors ----------------------------------------------------------------------


BAD_PARAMETERS = [
    ("power_users", "count", "ten", "must be a whole number, got 'ten'"),
    ("power_users", "count", "2.5", "must be a whole number, got '2.5'"),
    ("power_users", "days", "0", "must be at least 1, got 0"),
    ("power_users", "event", "  ", "must not be empty"),
    ("power_users", "event", "a\nb", "must not contain control characters or newlines"),
    ("high_ltv", "threshold", "lots", "must be a number, got 'lots'"),
    ("high_ltv", "threshold", "inf", "must be a number, got 'inf'"),
    ("focus", "share", "1.5", "must be at most 1, got 1.5"),
    ("lifecycle", "active_days", "5", "must be greater than 'new_days' (7), got 5"),
    ("activity_classes", "dormant_days", "90", "must be greater than 'inactive_days' (90), got 90"),
]


@pytest.mark.parametrize(("template", "param", "value", "problem"), BAD_PARAMETERS)
def test_bad_parameters_are_errors_naming_the_parameter(
    template: str, param: str, value: str, problem: str
) -> None:
    with pytest.raises(SegqlError) as caught:
        render_template(template, {param: value})
    assert caught.value.message == f"parameter '{param}' of template '{template}' {problem}"


def test_an_unknown_parameter_suggests_the_closest() -> None:
    with pytest.raises(SegqlError) as caught:
        render_template("power_users", {"cuont": "3"})
    assert caught.value.message == (
        "unknown parameter 'cuont' for template 'power_users': did you mean 'count'?"
    )
    assert caught.value.help == "parameters: name, event, count, days"


def test_an_unknown_template_suggests_the_closest() -> None:
    with pytest.raises(SegqlError) as caught:
        render_template("power_user", {})
    assert caught.value.message == "unknown template 'power_user': did you mean 'power_users'?"


# --- members on data -----------------------------------------------------------------------


def test_power_users(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4, 5)],
        events=[
            *(event(1, "login", T - i * DAY) for i in (0, 1, 6)),
            *(event(2, "login", T - i * DAY) for i in (1, 2, 7)),  # T - 7d: outside
            *(event(3, "page_view", T - i * DAY) for i in (1, 2, 3)),  # wrong event
            *(event(4, "login", T - i * DAY) for i in (1, 2)),
            event(4, "login", T + HOUR),  # after T: does not exist
            *(event(5, "login", T - i * HOUR) for i in range(5)),
        ],
    )
    params = {"event": "login", "count": "3", "days": "7"}
    assert members(duckdb_engine, "power_users", tables, params) == {"power_users": {1, 5}}
    everything = {"event": "any", "count": "3", "days": "7"}
    assert members(duckdb_engine, "power_users", tables, everything) == {"power_users": {1, 3, 5}}


def test_churn_risk(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4, 5)],
        events=[
            event(1, "login", T - 31 * DAY),
            event(2, "login", T - 29 * DAY),
            event(2, "login", T - 60 * DAY),
            # 3: no events, never started, so not at risk
            event(4, "login", T - 30 * DAY),  # exactly 30 days ago: outside the window
            event(5, "login", T - 40 * DAY),
            event(5, "login", T + HOUR),  # after T: does not exist
        ],
    )
    assert members(duckdb_engine, "churn_risk", tables) == {"churn_risk": {1, 4, 5}}


def test_trial_to_paid(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4, 5)],
        events=[
            event(1, "trial_started", T - 20 * DAY),
            event(1, "purchase", T - 10 * DAY, amount=10.0),
            event(2, "trial_started", T - 20 * DAY),
            event(2, "purchase", T - 5 * DAY, amount=10.0),  # 15 days later: too late
            event(3, "purchase", T - 30 * DAY, amount=10.0),  # bought before the trial
            event(3, "trial_started", T - 20 * DAY),
            event(4, "trial_started", T - 20 * DAY),
            event(5, "trial_started", T - 20 * DAY),
            event(5, "purchase", T - 6 * DAY, amount=10.0),  # exactly 14 days later: counts
        ],
    )
    assert members(duckdb_engine, "trial_to_paid", tables) == {"trial_to_paid": {1, 5}}


def test_free_trial(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3)],
        events=[
            event(1, "trial_started", T - 3 * DAY),
            event(2, "trial_started", T - 3 * DAY),
            event(2, "purchase", T - DAY, amount=10.0),
            event(3, "trial_started", T - 20 * DAY),  # trial over
        ],
    )
    assert members(duckdb_engine, "free_trial", tables) == {"free_trial_users": {1}}


def test_high_ltv(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4)],
        events=[
            event(1, "purchase", T - 400 * DAY, amount=60.0),
            event(1, "purchase", T - DAY, amount=50.0),
            event(2, "purchase", T - DAY, amount=99.5),
            event(3, "refund", T - DAY, amount=100.0),
            event(4, "purchase", T - DAY, amount=100.0),
        ],
    )
    assert members(duckdb_engine, "high_ltv", tables, {"threshold": "100"}) == {"high_ltv": {1, 4}}


def test_lifecycle(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4, 5, 6)],
        events=[
            event(1, "login", T - 3 * DAY),
            event(2, "login", T - 100 * DAY),
            event(2, "login", T - 2 * DAY),
            event(3, "login", T - 100 * DAY),
            event(3, "login", T - 40 * DAY),
            event(4, "login", T - 95 * DAY),
            # 5: no activity, in no stage
            event(6, "login", T - 7 * DAY),  # first seen exactly 7 days ago: no longer new
        ],
    )
    assert members(duckdb_engine, "lifecycle", tables) == {
        "lifecycle_new": {1},
        "lifecycle_active": {2, 6},
        "lifecycle_inactive": {3},
        "lifecycle_churned": {4},
    }


def test_engagement(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4, 5)],
        events=[
            *(event(1, "login", T - i * DAY) for i in range(20)),
            *(event(2, "login", T - i * DAY) for i in (1, 5, 9)),
            *(event(3, "login", T - i * DAY) for i in (1, 5, 9, 13, 17)),
            # active every day of the last seven, not yet today
            *(event(4, "login", T - i * DAY) for i in range(1, 7)),
            event(4, "login", T - 7 * DAY + HOUR),
            *(event(5, "login", T - i * DAY) for i in range(6)),  # six days only
        ],
    )
    assert members(duckdb_engine, "engagement", tables) == {
        "engagement_power": {1},
        "engagement_casual": {2},
        "engagement_streak": {1, 4},
    }


def test_focus(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4)],
        events=[
            *(event(1, "page_view", T - i * DAY) for i in (1, 2, 3)),
            *(event(1, "login", T - i * DAY) for i in (1, 2)),  # 3 of 5: exactly 0.6
            event(2, "page_view", T - DAY),
            event(2, "login", T - DAY),
            # 3: no events, no share at all
            *(event(4, "page_view", T - i * DAY) for i in (1, 2)),
            *(event(4, "login", T - i * DAY) for i in (40, 41, 42, 43, 44)),  # before the window
        ],
    )
    assert members(duckdb_engine, "focus", tables) == {"focused_users": {1, 4}}


# Buyers for RFM: (id, days since last purchase, purchases, total spend). Ten buyers in
# quintiles of two: recency by days, frequency by purchases, monetary by spend.
RFM_BUYERS = [
    (1, 1, 9, 90.0),  # R5 F5 M5
    (2, 2, 2, 20.0),  # R5 F1 M1
    (3, 10, 8, 70.0),  # R4 F4 M4
    (4, 11, 3, 30.0),  # R4 F2 M2
    (5, 20, 5, 40.0),  # R3 F3 M2: FM 2.5 rounds to 3
    (6, 21, 6, 50.0),  # R3 F3 M3
    (7, 100, 7, 80.0),  # R2 F4 M4
    (8, 101, 4, 60.0),  # R2 F2 M3: FM 2.5 rounds to 3
    (9, 200, 10, 100.0),  # R1 F5 M5
    (10, 201, 1, 10.0),  # R1 F1 M1
]


def rfm_events() -> list[tuple[Any, ...]]:
    rows = []
    for person_id, days, count, total in RFM_BUYERS:
        amounts = [total - (count - 1)] + [1.0] * (count - 1)
        for i, amount in enumerate(amounts):
            rows.append(event(person_id, "purchase", T - (days + i) * DAY, amount=amount))
    return rows


def test_rfm(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        # 11 and 12 never bought: they are in no segment and do not shift anyone's scores.
        people=[person(i) for i in range(1, 13)],
        events=[*rfm_events(), event(12, "page_view", T - DAY)],
    )
    assert members(duckdb_engine, "rfm", tables) == {
        "champions": {1},
        "loyal_customers": {3},
        "potential_loyalists": {4},
        "new_customers": {2},
        "promising": set(),
        "need_attention": {5, 6},
        "about_to_sleep": set(),
        "at_risk": {7, 8},
        "cant_lose_them": {9},
        "hibernating": set(),
        "lost": {10},
    }


def test_activity_classes(duckdb_engine: DuckDBEngine) -> None:
    last_seen = {
        1: HOUR,
        2: DAY,
        3: 7 * DAY - HOUR,
        4: 7 * DAY,
        5: 29 * DAY,
        6: 30 * DAY,
        7: 89 * DAY,
        8: 90 * DAY,
        9: 179 * DAY,
        10: 180 * DAY,
        11: 400 * DAY,
    }
    tables = make_tables(
        people=[person(i) for i in range(1, 14)],
        events=[
            *(event(i, "login", T - ago) for i, ago in last_seen.items()),
            event(11, "login", T - 500 * DAY),
            # 12: never active; 13: active only after T
            event(13, "login", T + HOUR),
        ],
    )
    assert members(duckdb_engine, "activity_classes", tables) == {
        "activity_super_active": {1},
        "activity_active": {2, 3},
        "activity_regular": {4, 5},
        "activity_inactive": {6, 7},
        "activity_dormant": {8, 9},
        "activity_churned": {10, 11},
    }


def test_ab_holdout(duckdb_engine: DuckDBEngine) -> None:
    """The audience splits by md5 of salt:id (computed here with hashlib), into a holdout
    and the rest; people outside the audience are in neither."""
    import hashlib

    ids = range(1, 41)
    tables = make_tables(
        people=[person(i) for i in ids],
        events=[event(i, "purchase", T - DAY) for i in ids if i != 40]
        + [event(40, "purchase", T - 100 * DAY)],
    )
    found = members(duckdb_engine, "ab_holdout", tables, {"percent": "30", "salt": "s1"})

    def bucket(i: int) -> int:
        return int(hashlib.md5(f"s1:{i}".encode()).hexdigest()[:8], 16) % 100

    holdout = {i for i in ids if i != 40 and bucket(i) < 30}
    assert found == {
        "promo_audience": set(range(1, 40)),
        "promo_holdout": holdout,
        "promo_send": set(range(1, 40)) - holdout,
    }
    assert 0 < len(holdout) < 39  # the split splits
    other = members(duckdb_engine, "ab_holdout", tables, {"percent": "30", "salt": "s2"})
    assert other["promo_holdout"] != holdout  # another experiment, another split
def test_streak(duckdb_engine: DuckDBEngine) -> None:
    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4, 5)],
        events=[
            *(event(1, "login", T - i * DAY) for i in range(1, 8)),  # 7 days, not yet today
            *(event(2, "login", T - i * DAY) for i in range(6)),  # 6 days with today
            *(event(3, "login", T - i * DAY) for i in range(1, 9) if i != 4),  # a gap
            *(event(4, "login", T - i * DAY) for i in range(7)),  # 7 days with today
            *(event(5, "login", T - i * DAY) for i in range(2, 10)),  # over since yesterday
        ],
    )
    assert members(duckdb_engine, "streak", tables) == {"seven_day_streak": {1, 4}}
    three = members(duckdb_engine, "streak", tables, {"days": "3", "event": "login"})
    assert three == {"seven_day_streak": {1, 2, 3, 4}}


def test_certification_focus(duckdb_engine: DuckDBEngine) -> None:
    def quiz(person_id: int, days: int, cert: str) -> tuple[Any, ...]:
        return event(person_id, "quiz", T - days * DAY, properties={"cert": cert})

    tables = make_tables(
        people=[person(i) for i in (1, 2, 3, 4)],
        events=[
            *(quiz(1, d, "aws") for d in (1, 2, 3)),
            *(quiz(1, d, "gcp") for d in (4, 5, *range(6, 16))),  # older ones do not count
            *(quiz(2, d, "gcp") for d in (1, 2, 3)),  # the newest are not about AWS
            *(quiz(2, d, "aws") for d in range(4, 14)),
            *(quiz(3, d, "aws") for d in (1, 2)),  # too few quizzes
            *(quiz(4, d, "aws") for d in (1, 2, 3)),
            quiz(4, 4, "gcp"),
            quiz(4, 5, "gcp"),
            quiz(4, 5, "gcp"),  # tied with the 5th: both kept, 3 of 6
        ],
    )
    params = {"event": "quiz", "last": "5", "min_rows": "3"}
    assert members(duckdb_engine, "certification_focus", tables, params) == {"aws_focus": {1}}
