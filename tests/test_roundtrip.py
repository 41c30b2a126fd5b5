"""Printer and parser agree: ``parse(format_module(m)) == m`` for every valid tree.

Also: ``format_source`` is idempotent and keeps every comment, every example of
language.md parses (and survives formatting), and each sugar the spec defines gives the
same tree as its long form.
"""

from __future__ import annotations

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from segql.errors import SegqlError, Source
from segql.language import ast
from segql.language.lexer import tokenize
from segql.language.parser import parse
from segql.language.printer import format_module, format_source
from tests import strategies as gen

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


def where(condition: str) -> ast.Condition:
    """The tree of one condition, parsed as the ``where`` of a segment."""
    segment = parse(f"segment s where {condition}").definitions[0]
    assert isinstance(segment, ast.Segment) and segment.where is not None
    return segment.where


def value(expr: str) -> ast.Expr:
    """The tree of one expression, parsed as the value of a trait."""
    trait = parse(f"trait t = {expr}").definitions[0]
    assert isinstance(trait, ast.Trait)
    return trait.expr


def same_tree(actual: ast.Module, expected: ast.Module, text: str) -> None:
    """Fail with the text and both trees printed, without pytest's slow dataclass diff."""
    if actual != expected:
        try:
            shown = format_module(actual)
        except Exception as error:  # a tree the printer cannot print
            shown = repr(error)
        raise AssertionError(
            f"text:\n{text}\nreads back as:\n{shown}\nexpected: {expected!r}\nactual:   {actual!r}"
        )


# --- generated trees ---------------------------------------------------------------------


@gen.property_settings
@given(gen.modules())
def test_print_then_parse_gives_the_same_tree(module: ast.Module) -> None:
    text = format_module(module)
    note(text)
    same_tree(parse(text, "roundtrip.segql"), module, text)
    assert format_module(parse(text)) == text


def _with_comments(text: str, comments: list[str], places: list[int]) -> str:
    """Insert ``comments`` between tokens of ``text`` (never inside a literal)."""
    tokens = tokenize(Source("<gen>", text))
    gaps = sorted({t.span.end for t in tokens[:-1]} | {0})
    inserts: dict[int, list[str]] = {}
    for comment, place in zip(comments, places, strict=False):
        inserts.setdefault(gaps[place % len(gaps)], []).append(comment)
    out, last = [], 0
    for offset in sorted(inserts):
        out.append(text[last:offset])
        # A space first, so that a '-' before the comment does not become part of "--".
        out.extend(f" {comment}\n" for comment in inserts[offset])
        last = offset
    out.append(text[last:])
    return "".join(out)


comment_texts = st.builds(
    str.__add__,
    st.sampled_from(("#", "# ", "--", "-- ")),
    st.text(st.characters(blacklist_characters="\n"), max_size=15),
)


@gen.property_settings
@given(
    gen.modules(),
    st.lists(comment_texts, max_size=4),
    st.lists(st.integers(min_value=0, max_value=1000), min_size=4, max_size=4),
)
def test_format_source_is_idempotent_and_keeps_comments(
    module: ast.Module, comments: list[str], places: list[int]
) -> None:
    text = _with_comments(format_module(module), comments, places)
    note(text)
    once = format_source(text, "fmt.segql")
    note(once)
    assert format_source(once, "fmt.segql") == once
    for comment in comments:
        assert comment.strip() in once
    same_tree(parse(text), module, text)
    same_tree(parse(once), module, once)


# --- the examples of language.md -----------------------------------------------------------

SPEC_MODULES = [
    """# A segment: a named boolean condition over one person (the entity).
segment power_users
  title "Power Users"
  description "10+ renders in the last 30 days on a paid plan"
  where count(video_rendered within 30 days) >= 10
    and status = 'paid'

# A trait: a named per-person value, reusable in conditions and exportable.
trait lifetime_value = sum(purchase.amount)

segment high_ltv where lifetime_value >= 500
""",
    """segment engaged
  enter when count(any within 7 days) >= 20
  exit when count(any within 7 days) < 10
""",
    """trait recency_score   = ntile(5, -days_since(last_time(purchase)))
trait frequency_score = ntile(5, count(purchase))
trait monetary_score  = ntile(5, sum(purchase.amount))

segment champions
  where recency_score >= 4 and frequency_score >= 4 and monetary_score >= 4
""",
    "segment x where `Plan Name` = 'Pro' -- a name with spaces\n",
]

SPEC_CONDITIONS = [
    "status != 'paid'",
    "not (status = 'paid')",
    "a = b",
    "a <> b",
    "a < 1 or a <= 2 or a > 3 or a >= 4",
    "a in ('x', 'y')",
    "a not in ('x', 'y')",
    "a between 1 and 5",
    "a not between 1 and 5",
    "a contains 'x'",
    "a starts with 'x'",
    "a ends with 'x'",
    "a matches '^[a-z]+$'",
    "a contains '50%_off\\'",
    "a is set",
    "a is not set",
    "a is not null",
    "a is null",
    "t within 7 days",
    "t before 30 days ago",
    "t after '2026-01-01'",
    "t after 30 days ago",
    "t before '2026-01-01'",
    "t since '2026-01-01'",
    "t after '2026-01-01 12:00:00'",
    "in trial_users",
    "not in trial_users",
    "x = 10 or x = 2.5 or x = -3",
    "name = 'it''s'",
    "flag = true or flag = false or flag = null",
    "a + b * c - d / 2 > 1",
    "count(video_rendered within 30 days) >= 10",
    "count('Order Completed') >= 1",
    "count(any) > 0",
    "count(subscriptions) > 0",
    "count(e where person.plan = 'pro') > 0",
    "count(e within 30 days) > 0 and count(e in last 30 days) > 0",
    "count(e between 90 days ago and 30 days ago) > 0",
    "count(e between '2026-01-01' and '2026-02-01') > 0",
    "count(e since '2026-01-01') > 0",
    "count(e before 30 days ago) > 0",
    "count_distinct(e.p) > 1",
    "sum(purchase.amount where currency = 'USD' within 1 year) > 100",
    "avg(e.p) > 1 and min(e.p) > 1 and max(e.p) > 1",
    "first_time(e) before 30 days ago and last_time(e) within 7 days",
    "active_days(e) > 1 and active_weeks(e) > 1 and active_months(e) > 1",
    "did page_view where (url contains 'pricing' and device = 'mobile') within 30 days",
    "did x",
    "did not x",
    "did x at least 3 times",
    "did x at most 3 times",
    "did x exactly 3 times",
    "has subscriptions where status = 'active'",
    "did trial_started then subscription_paid within 7 days",
    "did cart_created within 30 days then not order_completed within 1 day",
    "not (did a then b within 1 day)",
    "days_since(t) > 1 and hours_since(t) > 1",
    "coalesce(a, b, c) = 1 and lower(s) = 'x' and upper(s) = 'X' and length(s) > 1",
    "abs(x) > 1 and round(x) > 1 and round(x, 2) > 1",
    "least(a, b) > 1 and greatest(a, b, c) > 1",
    "ntile(5, -days_since(x)) = 1",
    "qcut(5, row_number(frequency)) = 1",
    "percent_rank(x) > 0.5",
    "5 + 1 - qcut(5, x) = 1",
    "t within 30d and t within 24h and t within 2w and t within 1y",
    "t within 15min and t within 6mo",
    "t within 1 day and t within 24 hours and t within 2 weeks and t within 6 months",
    "t within 1 year and t within 15 minutes",
]


@pytest.mark.parametrize("text", SPEC_MODULES)
def test_spec_modules_parse_and_format(text: str) -> None:
    module = parse(text, "spec.segql")
    assert module.definitions
    assert parse(format_module(module)) == module
    formatted = format_source(text)
    assert parse(formatted) == module
    assert format_source(formatted) == formatted
    for line in text.splitlines():
        for marker in ("#", "--"):
            if line.lstrip().startswith(marker) or f" {marker} " in line:
                comment = line[line.index(marker) :].strip()
                assert comment in formatted


@pytest.mark.parametrize("text", SPEC_CONDITIONS)
def test_spec_conditions_parse_and_format(text: str) -> None:
    module = parse(f"segment s where {text}", "spec.segql")
    assert parse(format_module(module)) == module


# --- sugar and aliases ---------------------------------------------------------------------

SAME_CONDITION = [
    ("did x", "count(x) >= 1"),
    ("did not x", "count(x) = 0"),
    ("did x at least 3 times", "count(x) >= 3"),
    ("did x at most 3 times", "count(x) <= 3"),
    ("did x exactly 3 times", "count(x) = 3"),
    ("did x at least 1 time", "count(x) >= 1"),
    ("did x where a = 1 within 30 days", "count(x where a = 1 within 30 days) >= 1"),
    ("did not x within 30 days", "count(x within 30 days) = 0"),
    ("did any", "count(any) >= 1"),
    ("did 'Order Completed'", "count('Order Completed') >= 1"),
    (
        "has subscriptions where status = 'active'",
        "count(subscriptions where status = 'active') >= 1",
    ),
    ("has subscriptions at least 2 times", "count(subscriptions) >= 2"),
    ("did x in last 30 days", "did x within 30 days"),
    ("count(x in last 30 days) > 2", "count(x within 30 days) > 2"),
    ("t in last 30 days", "t within 30 days"),
    ("a is null", "a is not set"),
    ("a is not null", "a is set"),
    ("a <> 1", "a != 1"),
    ("t since '2026-01-01'", "t after '2026-01-01'"),
    ("t since 30 days ago", "t after 30 days ago"),
    ("did x since '2026-01-01'", "did x after '2026-01-01'"),
    ("t within 30d", "t within 30 days"),
    ("t within 24h", "t within 24 hours"),
    ("t within 2w", "t within 2 weeks"),
    ("t within 1y", "t within 1 year"),
    ("t within 15min", "t within 15 minutes"),
    ("t within 6mo", "t within 6 months"),
    ("t within 1d", "t within 1 day"),
    ("t within 1 days", "t within 1 day"),
    ("t within 15 mins", "t within 15 min"),
    ("t before 30d ago", "t before 30 days ago"),
    ("did x within 2w then y within 1d", "did x within 2 weeks then y within 1 day"),
    ("paid", "paid = true"),
    ("(a = 1)", "a = 1"),
    ("((a + 1)) * 2 > 3", "(a + 1) * 2 > 3"),
    ("a = -3", "a = - 3"),
    ("`x` = 1", "x = 1"),
    ("`Plan Name` = 'a'", "`Plan Name` = 'a'"),
    ("DID x WITHIN 30 DAYS", "did x within 30 days"),
    (
        "a IS NOT SET AND b IN ('x') OR NOT c NOT BETWEEN 1 AND 2",
        "a is not set and b in ('x') or not c not between 1 and 2",
    ),
    ("Count(x) >= 2", "count(x) >= 2"),
    ("Days_Since(t) > 1", "days_since(t) > 1"),
    ("t within 30 DAYS", "t within 30 days"),
    ("x = TRUE", "x = true"),
    ("x = NULL", "x = null"),
    ("t > NOW", "t > now"),
    ("t before 3 days AGO", "t before 3 days ago"),
    ("PERSON.x = 1", "person.x = 1"),
]


@pytest.mark.parametrize(("sugar", "plain"), SAME_CONDITION)
def test_sugar_gives_the_same_tree(sugar: str, plain: str) -> None:
    assert where(sugar) == where(plain)


def test_sugar_trees_are_the_documented_ones() -> None:
    count = ast.Aggregate("count", ast.EventSpec("x"))
    assert where("did x") == ast.Compare(">=", count, ast.Number(1))
    assert where("did not x") == ast.Compare("=", count, ast.Number(0))
    assert where("paid") == ast.Compare("=", ast.Name("paid"), ast.Boolean(True))
    assert where("t in last 30 days") == ast.TimeTest(
        "within", ast.Name("t"), ast.Duration(30, "day")
    )
    assert where("a is null") == ast.IsSet(ast.Name("a"), negated=True)
    assert value("-3") == ast.Number(-3)
    assert value("-(3)") == ast.Negate(ast.Number(3))
    assert value("-3 days") == ast.Negate(ast.Duration(3, "day"))
    assert value("6mo ago") == ast.Ago(ast.Duration(6, "month"))


def test_keywords_are_case_insensitive() -> None:
    assert parse("SEGMENT x WHERE A = 1 AND b = 2") == parse("segment x where A = 1 and b = 2")
    assert parse("Trait t = SUM(e.P WITHIN 1 Year)") == parse("trait t = sum(e.P within 1 year)")


def test_identifiers_are_case_sensitive() -> None:
    assert where("A = 1") != where("a = 1")
    assert where("A = 1") == ast.Compare("=", ast.Name("A"), ast.Number(1))
    assert where("did Signup") != where("did signup")
    assert value("sum(e.Amount)") != value("sum(e.amount)")
    assert parse("segment X where a = 1") != parse("segment x where a = 1")


def test_backticks_make_keywords_names() -> None:
    assert where("`where` = 1") == ast.Compare("=", ast.Name("where"), ast.Number(1))
    assert where("`a``b` = 1") == ast.Compare("=", ast.Name("a`b"), ast.Number(1))
    assert where("person.`days` = 1") == ast.Compare("=", ast.PersonProperty("days"), ast.Number(1))


# --- bugs found by the properties above (minimal reproductions) -------------------------

_did_b = ast.Compare(">=", ast.Aggregate("count", ast.EventSpec("b")), ast.Number(1))
_did_not_b = ast.Compare("=", ast.Aggregate("count", ast.EventSpec("b")), ast.Number(0))
_b_then_c = ast.Sequence(ast.EventSpec("b"), ast.EventSpec("c"))
_within = ast.WindowWithin(ast.Duration(3, "day"))


@pytest.mark.parametrize(
    "module",
    [
        # segment s where did a where did b within 3 days
        # (the window belongs to a, but is read back as b's)
        ast.Module(
            (
                ast.Segment(
                    "s",
                    where=ast.Compare(
                        ">=",
                        ast.Aggregate("count", ast.EventSpec("a", _did_b, _within)),
                        ast.Number(1),
                    ),
                ),
            )
        ),
        # trait t = count(a where did b within 3 days)
        ast.Module((ast.Trait("t", ast.Aggregate("count", ast.EventSpec("a", _did_b, _within))),)),
        # trait t = count(a where did not b within 3 days)
        ast.Module(
            (ast.Trait("t", ast.Aggregate("count", ast.EventSpec("a", _did_not_b, _within))),)
        ),
        # trait t = count(a where did b then c within 3 days)
        ast.Module(
            (ast.Trait("t", ast.Aggregate("count", ast.EventSpec("a", _b_then_c, _within))),)
        ),
        # segment s where did a then x where did b within 3 days
        # (the sequence's `within` is read back as b's window)
        ast.Module(
            (
                ast.Segment(
                    "s",
                    where=ast.Sequence(
                        ast.EventSpec("a"),
                        ast.EventSpec("x", _did_b),
                        within=ast.Duration(3, "day"),
                    ),
                ),
            )
        ),
    ],
    ids=["did-in-did", "did-in-count", "did-not-in-count", "sequence-in-count", "did-in-then"],
)
def test_sugar_inside_an_event_filter_keeps_the_outer_window(module: ast.Module) -> None:
    """A ``did``/sequence inside a filter must not take the enclosing spec's window.

    The printer writes the inner sugar bare, so the window that follows it is read back
    as the inner spec's; it has to parenthesize (``where (did b) within 3 days``).
    """
    text = format_module(module)
    same_tree(parse(text), module, text)


@pytest.mark.parametrize("text", ["trait t = 1e999", "segment s where x > 1e400"])
def test_a_number_too_large_for_a_float_is_an_error_or_survives_formatting(text: str) -> None:
    """``1e999`` parses to ``Number(inf)``, which ``format_source`` writes as ``inf``: a name."""
    try:
        module = parse(text)
    except SegqlError:
        return
    formatted = format_source(text)
    same_tree(parse(formatted), module, formatted)
