"""The aggregate prefilter's guards: merged, they keep every row some aggregate reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from segql.compile.reach import Guard, covers, merge, reach, reaches_whole, seconds
from segql.language import ast

NAMES = ("login", "purchase", "page_view")
UNITS = ("minute", "hour", "day", "week", "month", "year")


def days(n: int) -> ast.Duration:
    return ast.Duration(n, "day")


def test_calendar_units_are_compared_by_their_extremes() -> None:
    assert covers(days(31), ast.Duration(1, "month"))
    assert not covers(days(30), ast.Duration(1, "month"))
    assert not covers(ast.Duration(1, "month"), days(29))  # February has 28 days
    assert covers(ast.Duration(1, "month"), days(28))
    assert covers(days(366), ast.Duration(1, "year"))
    assert covers(ast.Duration(1, "week"), days(7))
    assert covers(None, ast.Duration(5, "year"))
    assert not covers(days(5), None)
    assert covers(ast.Duration(1, "month"), ast.Duration(1, "month"))  # 28 to 31 days, itself


def test_a_window_with_a_fixed_start_is_only_covered_by_itself_or_everything() -> None:
    fixed = ast.WindowRange(ast.String("2026-01-01"), None)
    assert reach(fixed) == fixed
    assert covers(fixed, fixed) and covers(None, fixed)
    assert not covers(days(10_000), fixed)
    since_ago = ast.WindowRange(ast.Ago(days(20)), ast.Ago(days(5)))
    assert reach(since_ago) == days(20)


def test_the_bench_suite_needs_two_guards() -> None:
    guards = [
        Guard(frozenset({"page_view"}), days(30)),
        Guard(None, days(30)),
        Guard(frozenset({"purchase"}), days(90)),
        Guard(frozenset({"purchase"}), None),
        Guard(frozenset({"purchase"}), reach(ast.WindowRange(ast.Ago(days(180)), None))),
        Guard(frozenset({"login"}), days(14)),
        Guard(None, days(90)),
        Guard(None, days(7)),
    ]
    assert set(merge(guards) or []) == {
        Guard(frozenset({"purchase"}), None),
        Guard(None, days(90)),
    }


def test_names_with_one_reach_are_one_guard() -> None:
    merged = merge([Guard(frozenset({"login"}), days(7)), Guard(frozenset({"click"}), days(7))])
    assert merged == [Guard(frozenset({"login", "click"}), days(7))]


def test_any_event_at_any_time_means_no_filter() -> None:
    assert merge([Guard(frozenset({"login"}), days(7)), Guard(None, None)]) is None


guards = st.builds(
    Guard,
    st.one_of(st.none(), st.frozensets(st.sampled_from(NAMES), min_size=1)),
    st.one_of(st.none(), st.builds(ast.Duration, st.integers(1, 400), st.sampled_from(UNITS))),
)


def keeps(guard: Guard, name: str, age: int) -> bool:
    """Whether a guard surely keeps a row of ``name``, ``age`` seconds before T: a row is
    surely within a duration when younger than the duration's shortest length."""
    name_ok = guard.names is None or name in guard.names
    reach_ok = guard.reach is None or age < seconds(guard.reach)[0]  # type: ignore[arg-type]
    return name_ok and reach_ok


@given(
    st.lists(guards, min_size=1, max_size=8),
    st.sampled_from(NAMES),
    st.integers(0, 500 * 366 * 86_400),
)
def test_merged_guards_keep_every_row_a_guard_keeps(
    given_guards: list[Guard], name: str, age: int
) -> None:
    merged = merge(given_guards)
    if any(keeps(g, name, age) for g in given_guards):
        assert merged is None or any(keeps(g, name, age) for g in merged)
    if merged is not None:  # and merging never adds a guard
        assert len(merged) <= len(set(given_guards))
        # each aggregate has a pass: some merged guard covers its own
        assert all(any(m.covers(g) for m in merged) for g in given_guards)


def test_only_a_between_window_has_more_to_it_than_its_reach() -> None:
    between = ast.WindowRange(ast.Ago(days(20)), ast.Ago(days(5)))
    assert not reaches_whole(between)  # its end is not in the guard
    assert reaches_whole(None)
    assert reaches_whole(ast.WindowWithin(days(7)))
    assert reaches_whole(ast.WindowRange(ast.Ago(days(20)), None))
    assert reaches_whole(ast.WindowRange(ast.String("2026-01-01"), ast.String("2026-02-01")))
