"""Error snapshots: the exact text of each kind of error a user can make, caret and all.

These are part of the product: change one only on purpose, and read the new text.
"""

from __future__ import annotations

import pytest

from segql.errors import SegqlError
from segql.language.parser import parse
from segql.project import Project
from tests.support.scenario import make_catalog, make_config

SNAPSHOTS: dict[str, tuple[str, str]] = {
    "syntax": (
        "segment a where status = = 'x'",
        "segments/growth.segql:1:26: error: expected an expression, found '='\n"
        "  |\n"
        "1 | segment a where status = = 'x'\n"
        "  |                          ^",
    ),
    "unterminated": (
        "segment a where status = 'paid",
        "segments/growth.segql:1:26: error: unterminated string: expected a closing '\n"
        "  |\n"
        "1 | segment a where status = 'paid\n"
        "  |                          ^^^^^",
    ),
    "unknown_property": (
        "segment a\n  where staus = 'paid'",
        "segments/growth.segql:2:9: error: unknown property 'staus': did you mean 'status'?\n"
        "  |\n"
        "2 |   where staus = 'paid'\n"
        "  |         ^^^^^\n"
        "  = help: properties of people: person_id, status, plan, country, email, ltv, signup_at, is_trial, Plan Name",
    ),
    "unknown_segment": (
        "segment a where in trial_userz\nsegment trial_users where true",
        "segments/growth.segql:1:17: error: unknown segment 'trial_userz': did you mean 'trial_users'?\n"
        "  |\n"
        "1 | segment a where in trial_userz\n"
        "  |                 ^^^^^^^^^^^^^^",
    ),
    "unknown_function": (
        "segment a where dayz_since(signup_at) > 3",
        "segments/growth.segql:1:17: error: unknown function 'dayz_since': did you mean 'days_since'?\n"
        "  |\n"
        "1 | segment a where dayz_since(signup_at) > 3\n"
        "  |                 ^^^^^^^^^^\n"
        "  = help: functions: abs, active_days, active_months, active_weeks, avg, bucket, coalesce, count, count_distinct, days_since, first_time, greatest, hours_since, last_time, least, length, lower, max, median, min, ntile, percent_rank, population_avg, population_count, population_max, population_min, qcut, quantile, round, row_number, streak, sum, upper",
    ),
    "type": (
        "segment a where ltv = 'high'",
        "segments/growth.segql:1:17: error: cannot compare a number with a string\n"
        "  |\n"
        "1 | segment a where ltv = 'high'\n"
        "  |                 ^^^^^^^^^^^^\n"
        "  = help: quote numbers only when the column holds text",
    ),
    "cycle": (
        "segment a where in b\nsegment b where in c\nsegment c where in a",
        "segments/growth.segql:3:17: error: these segments refer to each other: a -> b -> c -> a\n"
        "  |\n"
        "3 | segment c where in a\n"
        "  |                 ^^^^",
    ),
    "duplicate": (
        "segment a where true\n\nsegment a where false",
        "segments/growth.segql:3:1: error: 'a' is defined twice\n"
        "  |\n"
        "3 | segment a where false\n"
        "  | ^^^^^^^^^^^^^^^^^^^^^\n"
        "  = help: the first definition is at segments/growth.segql:1:1",
    ),
    "window_no_time": (
        "segment a where count(accounts within 30 days) > 1",
        "segments/growth.segql:1:32: error: source 'accounts' has no time column, so it takes no window\n"
        "  |\n"
        "1 | segment a where count(accounts within 30 days) > 1\n"
        "  |                                ^^^^^^^^^^^^^^\n"
        '  = help: set time = "..." in [sources.accounts] to use windows',
    ),
    "bad_time": (
        "segment a where signup_at after '2026-13-01'",
        "segments/growth.segql:1:33: error: '2026-13-01' is not a time\n"
        "  |\n"
        "1 | segment a where signup_at after '2026-13-01'\n"
        "  |                                 ^^^^^^^^^^^^\n"
        "  = help: write a time as 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'",
    ),
    "sugar_reach": (
        "segment a where did purchase where amount > 5 and currency = 'USD' within 30 days",
        "segments/growth.segql:1:68: error: expected 'and', 'or', or a new 'segment' or 'trait', found 'within'\n"
        "  |\n"
        "1 | segment a where did purchase where amount > 5 and currency = 'USD' within 30 days\n"
        "  |                                                                    ^^^^^^\n"
        "  = help: in `did ... where` and `has ... where` the filter is one predicate: wrap a longer one in parentheses, as in `did page_view where (a = 1 and b = 2) within 30 days`",
    ),
    "missing_where": (
        "segment a status = 'paid'",
        "segments/growth.segql:1:11: error: expected 'where' or 'enter when' after the segment name, found 'status'\n"
        "  |\n"
        "1 | segment a status = 'paid'\n"
        "  |           ^^^^^^\n"
        '  = help: a segment is `segment NAME [title "..."] where CONDITION`',
    ),
    "keyword_name": (
        "segment where where true",
        "segments/growth.segql:1:9: error: expected a segment name, found 'where'\n"
        "  |\n"
        "1 | segment where where true\n"
        "  |         ^^^^^\n"
        "  = help: 'where' is a keyword: write `where` to use it",
    ),
    "text_on_number": (
        "segment a where ltv contains 'x'",
        "segments/growth.segql:1:17: error: 'contains' tests text, but this is a number\n"
        "  |\n"
        "1 | segment a where ltv contains 'x'\n"
        "  |                 ^^^",
    ),
    "trait_cycle": (
        "trait x = y + 1\ntrait y = x * 2\nsegment a where x > 1",
        "segments/growth.segql:2:11: error: these traits refer to each other: x -> y -> x\n"
        "  |\n"
        "2 | trait y = x * 2\n"
        "  |           ^",
    ),
    "aggregate_in_filter": (
        "segment a where did purchase where count(login) > 1",
        "segments/growth.segql:1:36: error: count() cannot stand inside an event filter\n"
        "  |\n"
        "1 | segment a where did purchase where count(login) > 1\n"
        "  |                                    ^^^^^^^^^^^^",
    ),
    "double_quoted_string": (
        'segment a where status = "paid"',
        'segments/growth.segql:1:26: error: expected an expression, found string "paid"\n'
        "  |\n"
        '1 | segment a where status = "paid"\n'
        "  |                          ^^^^^^\n"
        "  = help: strings take single quotes: 'paid' (double quotes are only for title and description)",
    ),
    "double_equals": (
        "segment a where status == 'paid'",
        "segments/growth.segql:1:25: error: expected an expression, found '='\n"
        "  |\n"
        "1 | segment a where status == 'paid'\n"
        "  |                         ^\n"
        "  = help: equality is a single '=': status = 'paid'",
    ),
    "misspelt_unit": (
        "segment a where did login within 30 dayz",
        "segments/growth.segql:1:37: error: expected a duration such as 30 days, found 'dayz'\n"
        "  |\n"
        "1 | segment a where did login within 30 dayz\n"
        "  |                                     ^^^^\n"
        "  = help: did you mean '30 days'?",
    ),
    "event_name_with_spaces": (
        "segment a where did Order Completed within 30 days",
        "segments/growth.segql:1:27: error: expected 'and', 'or', or a new 'segment' or 'trait', found 'Completed'\n"
        "  |\n"
        "1 | segment a where did Order Completed within 30 days\n"
        "  |                           ^^^^^^^^^\n"
        "  = help: a name with spaces is quoted: the event 'Order Completed', or the column `Order Completed`",
    ),
    "misspelt_keyword": (
        "segmnt a where status = 'paid'",
        "segments/growth.segql:1:1: error: expected 'segment' or 'trait', found 'segmnt'\n"
        "  |\n"
        "1 | segmnt a where status = 'paid'\n"
        "  | ^^^^^^\n"
        "  = help: did you mean 'segment'?",
    ),
    "unquoted_text": (
        "segment a where country = DE",
        "segments/growth.segql:1:27: error: unknown property 'DE'\n"
        "  |\n"
        "1 | segment a where country = DE\n"
        "  |                           ^^\n"
        "  = help: to compare with the text DE, quote it: 'DE'",
    ),
}


@pytest.mark.parametrize("name", list(SNAPSHOTS))
def test_error_text(name: str) -> None:
    text, expected = SNAPSHOTS[name]
    with pytest.raises(SegqlError) as caught:
        project = Project(make_config(), [parse(text, "segments/growth.segql")], make_catalog())
        project.check()
    assert caught.value.render() == expected


def test_every_error_in_a_project_is_reported_at_once() -> None:
    text = "segment a where staus = 'x'\nsegment b where ltv = 'high'\nsegment c where in zzz"
    project = Project(make_config(), [parse(text, "s.segql")], make_catalog())
    with pytest.raises(SegqlError) as caught:
        project.check()
    rendered = caught.value.render()
    assert "s.segql:1:17" in rendered and "s.segql:2:17" in rendered and "s.segql:3:17" in rendered
    assert rendered.endswith("3 errors")


def test_a_project_without_segments_says_where_to_add_one() -> None:
    project = Project(make_config(), [], make_catalog())
    with pytest.raises(SegqlError) as caught:
        project.compile("duckdb")
    assert caught.value.render() == (
        "error: nothing to run: no .segql files in segments/\n"
        "  = help: add a file such as segments/first.segql holding "
        "`segment paid where status = 'paid'`, or see `segql templates list`"
    )
