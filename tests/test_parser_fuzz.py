"""Garbage in, ``SegqlError`` out: the parser never fails any other way.

Inputs are random unicode text, soups of the language's own tokens, and near-valid text
(printed modules with a character or a token deleted, inserted, swapped or duplicated).
Each must either parse or raise a ``SegqlError`` whose span lies inside the input and whose
``render()`` starts with ``path:line:col``. Text that does parse must also survive
``format_source`` with the same tree.
"""

from __future__ import annotations

import pytest
from hypothesis import currently_in_test_context, given, note
from hypothesis import strategies as st

from segql.errors import SegqlError, Source
from segql.language import ast
from segql.language.lexer import tokenize
from segql.language.parser import Parser, parse
from segql.language.printer import format_module, format_source
from tests import strategies as gen

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

PATH = "rules/fuzz.segql"


def check_error(error: SegqlError, text: str) -> None:
    """The error points inside the text and renders with its location."""
    span = error.span
    assert span is not None, f"{type(error).__name__} without a span: {error.message}"
    assert span.source.text == text
    assert 0 <= span.start <= span.end <= len(text), (span.start, span.end, len(text))
    lines = text.split("\n")
    assert 1 <= span.line <= len(lines), (span.line, len(lines))
    assert 1 <= span.column <= len(lines[span.line - 1]) + 1, (span.column, span.line)
    rendered = error.render()
    assert rendered.startswith(f"{PATH}:{span.line}:{span.column}: "), rendered
    assert error.message in rendered
    str(error)


def _note(text: str) -> None:
    if currently_in_test_context():
        note(text)


def parse_or_error(text: str) -> ast.Module | None:
    """The module, or ``None`` after checking the ``SegqlError``; anything else propagates."""
    _note(repr(text))
    try:
        module = parse(text, PATH)
    except SegqlError as error:
        check_error(error, text)
        return None
    # Whatever parses is also formatted back to the same tree.
    formatted = format_source(text, PATH)
    _note(formatted)
    again = parse(formatted, PATH)
    if again != module:  # not a bare assert: pytest's diff of big trees is very slow
        raise AssertionError(f"format_source changed the tree:\n{text}\nbecame:\n{formatted}")
    return module


# --- random text -----------------------------------------------------------------------


@gen.property_settings
@given(st.text(max_size=60))
def test_random_text(text: str) -> None:
    parse_or_error(text)


@gen.property_settings
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=60))
def test_random_ascii_text(text: str) -> None:
    parse_or_error(text)


# --- token soups -------------------------------------------------------------------------

OPERATORS = ("<=", ">=", "!=", "<>", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",", ".")
LITERALS = (
    "0", "3", "2.5", "1e5", "1e-3", "007", "30d", "24h", "2w", "1y", "15min", "6mo", "3x",
    "'x'", "'it''s'", "''", "'", '"title"', '"a \\" b"', '"', "`Plan Name`", "`a``b`", "``",
    "`", "# comment\n", "-- comment\n", "person", "any", "now", "ago", "last", "times",
)  # fmt: skip
FUNCTION_WORDS = tuple(sorted({*ast.FUNCTIONS, *ast.AGGREGATES}))
soup_tokens = st.one_of(
    st.sampled_from(gen.KEYWORDS),
    st.sampled_from(OPERATORS),
    st.sampled_from(LITERALS),
    st.sampled_from(FUNCTION_WORDS),
    gen.plain_identifiers,
    st.integers(min_value=0, max_value=10**6).map(str),
)
separators = st.sampled_from((" ", " ", " ", "\n", "", "\t"))


@st.composite
def token_soups(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(soup_tokens, max_size=25))
    # Half the soups start like a definition, so that the parser gets past the first word.
    head = draw(st.sampled_from(("", "segment s where ", "trait t = ", "segment s enter when ")))
    return head + "".join(token + draw(separators) for token in tokens)


@gen.property_settings
@given(token_soups())
def test_token_soup(text: str) -> None:
    parse_or_error(text)


# --- near-valid text -----------------------------------------------------------------------

INSERTS = ("(", ")", "'", '"', "`", "#", "-", ".", ",", " ", "\n", "é", "0", "a", "=", "and ")


@st.composite
def char_mutations(draw: st.DrawFn) -> str:
    text = format_module(draw(gen.modules(depth=1)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        i = draw(st.integers(min_value=0, max_value=len(text)))
        kind = draw(st.sampled_from(("delete", "insert", "swap", "duplicate")))
        if kind == "delete":
            j = draw(st.integers(min_value=i, max_value=min(len(text), i + 5)))
            text = text[:i] + text[j:]
        elif kind == "insert":
            insert = draw(st.sampled_from(INSERTS) | st.characters())
            text = text[:i] + insert + text[i:]
        elif kind == "swap" and i + 1 < len(text):
            text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        else:
            j = draw(st.integers(min_value=i, max_value=min(len(text), i + 8)))
            text = text[:j] + text[i:j] + text[j:]
    return text


@st.composite
def token_mutations(draw: st.DrawFn) -> str:
    text = format_module(draw(gen.modules(depth=1)))
    tokens = tokenize(Source("<gen>", text))[:-1]
    if not tokens:
        return text
    pieces = [t.span.text for t in tokens]
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        if not pieces:
            break
        i = draw(st.integers(min_value=0, max_value=len(pieces) - 1))
        kind = draw(st.sampled_from(("delete", "duplicate", "swap", "replace", "insert")))
        if kind == "delete":
            del pieces[i]
        elif kind == "duplicate":
            pieces.insert(i, pieces[i])
        elif kind == "swap":
            j = draw(st.integers(min_value=0, max_value=len(pieces) - 1))
            pieces[i], pieces[j] = pieces[j], pieces[i]
        elif kind == "replace":
            pieces[i] = draw(soup_tokens)
        else:
            pieces.insert(i, draw(soup_tokens))
    return " ".join(pieces)


@gen.property_settings
@given(char_mutations())
def test_near_valid_text_with_characters_changed(text: str) -> None:
    parse_or_error(text)


@gen.property_settings
@given(token_mutations())
def test_near_valid_text_with_tokens_changed(text: str) -> None:
    parse_or_error(text)


# --- hand-picked garbage -------------------------------------------------------------------

GARBAGE = [
    "",
    " ",
    "\n\n",
    "# only a comment",
    "segment",
    "segment s",
    "segment s where",
    "segment s where a =",
    "segment where a = 1",
    "trait t",
    "trait t =",
    "trait = 1",
    "segment s where 'unterminated",
    'segment s title "unterminated where a = 1',
    "segment s where `unterminated = 1",
    "segment s where `` = 1",
    "segment s where a = 3x",
    "segment s where a = 1.5 days ago",
    "segment s where a within 1.5 days",
    "segment s where count(e.p) > 1",
    "segment s where sum(e) > 1",
    "segment s where round() > 1",
    "segment s where round(1, 2, 3) > 1",
    "segment s where ntile(1) > 1",
    "segment s where nosuchfn(1) > 1",
    "segment s where did not a then b",
    "segment s where did a at least x times",
    "segment s where did a at least 2.5 times",
    "segment s where did a at least 2",
    "segment s where a is",
    "segment s where a is not",
    "segment s where a in ()",
    "segment s where a in (1,",
    "segment s where a between 1",
    "segment s where a starts 'x'",
    "segment s where a contains b",
    "segment s where (a = 1",
    "segment s where a = 1)",
    "segment s where ((((a = 1",
    "segment s enter when a = 1",
    "segment s enter when a = 1 exit a = 2",
    "segment s where a = 1 segment",
    "segment s where a ~ 1",
    "segment s where a = $1",
    "segment s where a = 1 ;",
    "segment s where person. = 1",
    "segment s where in",
    "segment s where did",
    "segment s where has",
    "segment s where count(",
    "segment s where count(a where",
    "segment s where count(a within",
    "trait t = -",
    "trait t = 1 +",
    "trait t = - - -",
    "segment s where a = 1\n  and\n",
    "segment s where a = 1 -- trailing comment",
    "segment s where a =\n\n\n",
    "segment s where a = 'x\ny",
    "\tsegment\ts\twhere\ta\t=\t1\t",
    "segment s where a = 1\r\n",
]


@pytest.mark.parametrize("text", GARBAGE)
def test_hand_picked_garbage(text: str) -> None:
    parse_or_error(text)


# --- bugs found by the properties above (minimal reproductions) -------------------------


@pytest.mark.parametrize(
    "text",
    [
        "segment café where a = 1",  # a non-ASCII letter outside backticks
        "segment s where a = é",
        "segment s where a = 2²",  # a digit that is not 0-9
        "segment s where a = ²",
        "segment s where a = 1é",  # a number followed by a non-ASCII letter
    ],
)
def test_non_ascii_letters_and_digits_are_syntax_errors(text: str) -> None:
    """The lexer takes ``str.isalpha``/``isdigit`` characters but its regexes are ASCII:

    ``é`` and ``²`` end in an ``AssertionError`` (``_WORD.match`` / ``_NUMBER.match`` is
    ``None``) instead of a ``SegqlSyntaxError``.
    """
    parse_or_error(text)


@pytest.mark.parametrize(
    "text",
    [
        "segment s where " + "(" * 200 + "a = 1" + ")" * 200,
        "segment s where " + "not " * 2000 + "a = 1",
        "trait t = " + "(" * 1000 + "1" + ")" * 1000,
        "trait t = " + "- " * 2000 + "1",
    ],
    ids=["parens-200", "not-2000", "expr-parens-1000", "minus-2000"],
)
def test_deep_nesting_is_an_error_not_a_crash(text: str) -> None:
    """Deep nesting must give a ``SegqlError`` (or parse), not a ``RecursionError``."""
    parse_or_error(text)


def test_parenthesized_aggregates_parse_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``(count(e where ...) ...)`` level is parsed twice, so nesting is exponential.

    ``parse_parenthesized`` first tries a condition group; when an operator follows it
    rewinds and parses the same text again as an expression, and an aggregate's filter
    inside that expression does the same again. Ten levels cost 3070 calls of
    ``parse_condition``; twenty would take hours. Valid and invalid text alike.
    """
    calls = 0
    original = Parser.parse_condition

    def counting(self: Parser) -> ast.Condition:
        nonlocal calls
        calls += 1
        if calls > 500:
            raise RuntimeError("parse_condition called more than 500 times")
        return original(self)

    monkeypatch.setattr(Parser, "parse_condition", counting)
    text = "x"
    for _ in range(10):
        text = f"(count(e where {text} > 1) + 1)"
    parse(f"segment s where {text} > 2")
    calls = 0
    with pytest.raises(SegqlError):
        parse("segment s where " + "(count(e where " * 10 + "x")
