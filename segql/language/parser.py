"""Recursive-descent parser: tokens to the AST of ``segql.language.ast``.

The grammar is language.md. Sugar is removed here: ``did x`` becomes ``count(x) >= 1``,
``has x`` the same, ``did not x`` becomes ``count(x) = 0``, ``at least N times`` a count
comparison, and a bare boolean used as a condition becomes ``expr = true``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from segql.errors import SegqlSyntaxError, Source, Span, did_you_mean
from segql.language import ast
from segql.language.lexer import WORD_UNITS, Token, tokenize

# Words that can never be a bare name; write them in backticks to use them as one.
RESERVED = frozenset(
    {
        "segment", "trait", "where", "and", "or", "not", "in", "between", "is", "null",
        "true", "false", "within", "before", "after", "since", "ago", "did", "has", "then",
        "now", "any", "contains", "matches",
    }
)  # fmt: skip
# Words with a meaning only in one place; the printer backticks names that use them.
CONTEXTUAL = frozenset(
    {
        "title", "description", "enter", "exit", "when", "set", "starts", "ends", "with",
        "at", "least", "most", "exactly", "times", "time", "last", "person",
    }
)  # fmt: skip
# v2 (lang2): words of `case when`, and of the conditions on recorded membership; the
# printer backticks names that use them.
LANG2_WORDS = frozenset({"case", "else", "end", "entered", "exited", "member", "ever"})
# Words of the v2 constructs (calendar periods, among last): names that use them are
# backticked by the printer.
CONTEXTUAL = CONTEXTUAL | frozenset(
    {"this", "previous", "today", "yesterday", "among", "quarter", "quarters"}
)
_PERIOD_WORDS = {
    "day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month",
    "months": "month", "quarter": "quarter", "quarters": "quarter", "year": "year",
    "years": "year",
}  # fmt: skip
COMPARE_OPS = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_TAIL_WORDS = ("in", "not", "between", "contains", "starts", "ends", "matches", "is")
_TIME_WORDS = ("within", "before", "after", "since")

T = TypeVar("T")
MAX_NESTING = 60  # parentheses, not and minus signs inside each other


def _packrat(method: Callable[[Parser], T]) -> Callable[[Parser], T]:
    """Remember a parse by starting token: backtracking over parentheses then costs once."""

    @functools.wraps(method)
    def remembered(self: Parser) -> T:
        key = (method.__name__, self.pos)
        if key in self.memo:
            result, end, error = self.memo[key]
            if error is not None:
                raise error
            self.pos = end
            return result  # type: ignore[return-value]
        try:
            with self.nested():
                result = method(self)
        except SegqlSyntaxError as error:
            self.memo[key] = (None, key[1], error)
            raise
        self.memo[key] = (result, self.pos, None)
        return result

    return remembered


def parse(text: str, path: str = "<input>") -> ast.Module:
    """Parse segql text (any number of definitions) into a ``Module``."""
    return Parser(Source(path, text)).parse_module()


def parse_condition(text: str, path: str = "<condition>") -> ast.Condition:
    """Parse a lone condition, as given to ``segql preview``."""
    parser = Parser(Source(path, text))
    condition = parser.parse_condition()
    parser.expect_end()
    return condition


class Parser:
    """One pass over the tokens of one source."""

    def __init__(self, source: Source):
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0
        self.depth = 0
        self.memo: dict[tuple[str, int], tuple[object, int, SegqlSyntaxError | None]] = {}

    @contextmanager
    def nested(self) -> Iterator[None]:
        """One level deeper; past MAX_NESTING it is an error rather than a crash."""
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise SegqlSyntaxError(
                    f"nested more than {MAX_NESTING} levels deep", self.peek().span
                )
            yield
        finally:
            self.depth -= 1

    # --- token helpers -----------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def at_word(self, *words: str, ahead: int = 0) -> bool:
        return self.peek(ahead).is_word(*words)

    def at_op(self, *ops: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "OP" and token.value in ops

    def error(
        self, expected: str, token: Token | None = None, help: str | None = None
    ) -> SegqlSyntaxError:
        token = token or self.peek()
        help = help or self.common_mistake(token)
        return SegqlSyntaxError(f"expected {expected}, found {token.describe()}", token.span, help)

    def common_mistake(self, token: Token) -> str | None:
        """A help line for the slips people make most: quotes, ==, names with spaces."""
        previous = self.tokens[self.tokens.index(token) - 1] if token in self.tokens[1:] else None
        if token.kind == "DQSTRING":
            return (
                f"strings take single quotes: '{token.value}' "
                "(double quotes are only for title and description)"
            )
        doubled = (
            previous is not None
            and previous.span.text == "="
            and previous.span.end == token.span.start
        )
        if token.kind == "OP" and token.value == "=" and doubled:
            return "equality is a single '=': status = 'paid'"
        if token.kind == "IDENT" and not token.quoted:
            keyword = did_you_mean(token.value.lower(), ["segment", "trait"])
            if previous is None and keyword:
                return f"did you mean '{keyword}'?"
            if previous is not None and previous.kind == "IDENT" and not previous.quoted:
                both = f"{previous.value} {token.value}"
                return f"a name with spaces is quoted: the event '{both}', or the column `{both}`"
        return None

    def expect_word(self, word: str) -> Token:
        if not self.at_word(word):
            raise self.error(f"'{word}'")
        return self.advance()

    def expect_op(self, op: str, expected: str | None = None) -> Token:
        if not self.at_op(op):
            raise self.error(expected or f"'{op}'")
        return self.advance()

    def expect_end(self) -> None:
        if self.peek().kind != "EOF":
            raise self.error("end of input")

    def span_from(self, start: Token) -> Span:
        previous = self.tokens[max(self.pos - 1, 0)]
        return start.span.to(previous.span)

    def attempt(self, parse: Callable[[], T]) -> tuple[T | None, SegqlSyntaxError | None]:
        """Run a parse; on a syntax error, rewind and return the error instead."""
        saved = self.pos
        try:
            return parse(), None
        except SegqlSyntaxError as error:
            self.pos = saved
            return None, error

    # --- definitions -------------------------------------------------------------------

    def parse_module(self) -> ast.Module:
        start = self.peek()
        definitions: list[ast.Definition] = []
        priorities: list[ast.Priority] = []
        while self.peek().kind != "EOF":
            if self.at_word("segment"):
                definitions.append(self.parse_segment())
            elif self.at_word("trait"):
                definitions.append(self.parse_trait())
            elif self.at_word("priority") and self.peek(1).kind == "IDENT":
                priorities.append(self.parse_priority())
            elif definitions:
                raise self.error(
                    "'and', 'or', or a new 'segment' or 'trait'", help=self.stray_token_help()
                )
            else:
                raise self.error("'segment' or 'trait'")
        return ast.Module(
            tuple(definitions), span=self.span_from(start), priorities=tuple(priorities)
        )

    def stray_token_help(self) -> str | None:
        """Why a token after a complete definition may be there: usually a filter's reach."""
        if self.at_word(*_TIME_WORDS, "between") or (
            self.at_word("in") and self.at_word("last", ahead=1)
        ):
            return (
                "in `did ... where` and `has ... where` the filter is one predicate: "
                "wrap a longer one in parentheses, as in "
                "`did page_view where (a = 1 and b = 2) within 30 days`"
            )
        return None

    def parse_name(self, what: str) -> tuple[str, Token]:
        token = self.peek()
        if token.kind != "IDENT":
            raise self.error(what)
        if not token.quoted and token.value.lower() in RESERVED:
            raise self.error(
                what, token, help=f"'{token.value}' is a keyword: write `{token.value}` to use it"
            )
        self.advance()
        return token.value, token

    def parse_labels(self) -> tuple[str | None, str | None]:
        title = description = None
        while self.at_word("title", "description") and self.peek(1).kind == "DQSTRING":
            word = self.advance().value.lower()
            text = self.advance().value
            if word == "title":
                title = text
            else:
                description = text
        return title, description

    def parse_metadata(self) -> tuple[tuple[str, ...], str | None, bool]:
        """``tags 'a', 'b'``, ``owner 'growth'`` and ``paused``, in any order, each once."""
        tags: tuple[str, ...] = ()
        owner: str | None = None
        paused = False
        seen: set[str] = set()
        while self.at_word("tags", "owner", "paused") and (
            self.at_word("paused") or self.peek(1).kind == "STRING"
        ):
            token = self.advance()
            word = token.value.lower()
            if word in seen:
                raise SegqlSyntaxError(f"'{word}' is given twice", token.span)
            seen.add(word)
            if word == "paused":
                paused = True
            elif word == "owner":
                owner = self.advance().value
            else:
                names = [self.advance().value]
                while self.at_op(",") and self.peek(1).kind == "STRING":
                    self.advance()
                    names.append(self.advance().value)
                tags = tuple(names)
        return tags, owner, paused

    def parse_segment(self) -> ast.Segment:
        start = self.advance()
        name, _ = self.parse_name("a segment name")
        title, description = self.parse_labels()
        tags, owner, paused = self.parse_metadata()
        if self.at_word("where"):
            self.advance()
            where = self.parse_condition()
            return ast.Segment(
                name, where=where, title=title, description=description, tags=tags,
                owner=owner, paused=paused, span=self.span_from(start),
            )
        if self.at_word("from") and self.at_word("list", "table", ahead=1):
            where = self.parse_id_list()
            return ast.Segment(
                name, where=where, title=title, description=description, tags=tags,
                owner=owner, paused=paused, span=self.span_from(start),
            )
        if self.at_word("enter") and self.at_word("when", ahead=1):
            self.advance()
            self.advance()
            enter = self.parse_condition()
            if not (self.at_word("exit") and self.at_word("when", ahead=1)):
                raise self.error("'exit when' after the 'enter when' condition")
            self.advance()
            self.advance()
            exit_ = self.parse_condition()
            return ast.Segment(
                name, enter=enter, exit=exit_, title=title, description=description, tags=tags,
                owner=owner, paused=paused, span=self.span_from(start),
            )  # fmt: skip
        raise self.error(
            "'where' or 'enter when' after the segment name",
            help='a segment is `segment NAME [title "..."] where CONDITION`',
        )

    def parse_id_list(self) -> ast.IdList:
        start = self.advance()
        kind = self.advance().value.lower()
        if kind == "list":
            if self.peek().kind != "STRING":
                raise self.error("a quoted file name after 'from list'")
            return ast.IdList(kind, self.advance().value, span=self.span_from(start))
        parts = [self.parse_name("a table name")[0]]
        while self.at_op("."):
            self.advance()
            parts.append(self.parse_name("a table name")[0])
        return ast.IdList(kind, ".".join(parts), span=self.span_from(start))

    def parse_priority(self) -> ast.Priority:
        start = self.advance()
        names = [self.parse_name("a segment name")[0]]
        while self.at_op(","):
            self.advance()
            names.append(self.parse_name("a segment name")[0])
        return ast.Priority(tuple(names), span=self.span_from(start))

    def parse_trait(self) -> ast.Trait:
        start = self.advance()
        name, _ = self.parse_name("a trait name")
        title, description = self.parse_labels()
        self.expect_op("=", "'=' after the trait name")
        expr = self.parse_expr()
        return ast.Trait(name, expr, title, description, span=self.span_from(start))

    # --- conditions --------------------------------------------------------------------

    @_packrat
    def parse_condition(self) -> ast.Condition:
        start = self.peek()
        items = [self.parse_and()]
        while self.at_word("or"):
            self.advance()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else ast.Or(tuple(items), span=self.span_from(start))

    def parse_and(self) -> ast.Condition:
        start = self.peek()
        items = [self.parse_not()]
        while self.at_word("and"):
            self.advance()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else ast.And(tuple(items), span=self.span_from(start))

    def parse_not(self) -> ast.Condition:
        if self.at_word("not"):
            start = self.advance()
            with self.nested():
                operand = self.parse_not()
            return ast.Not(operand, span=self.span_from(start))
        return self.parse_predicate()

    def parse_predicate(self) -> ast.Condition:
        start = self.peek()
        if self.at_op("("):
            return self.parse_parenthesized()
        if self.at_word("in"):
            self.advance()
            name, _ = self.parse_name("a segment name after 'in'")
            return ast.InSegment(name, span=self.span_from(start))
        if self.at_word("did"):
            return self.parse_did()
        if self.at_word("has"):
            self.advance()
            spec = self.parse_sugar_spec()
            return self.parse_count_suffix(spec, start)
        history = self.parse_history_test()
        if history is not None:
            return history
        if self.peek().kind == "EOF":
            raise self.error("a condition")
        expr = self.parse_expr()
        return self.parse_predicate_tail(expr, start)

    def parse_parenthesized(self) -> ast.Condition:
        """``( condition )``, or an expression that starts with a parenthesis: ``(a + b) > 3``."""

        def grouped() -> ast.Condition:
            self.advance()
            condition = self.parse_condition()
            self.expect_op(")")
            return condition

        start, start_pos = self.peek(), self.pos
        condition, group_error = self.attempt(grouped)
        if condition is not None and not self.continues_expression():
            return condition
        after_group = self.pos

        def expression() -> ast.Condition:
            self.pos = start_pos
            return self.parse_predicate_tail(self.parse_expr(), start)

        predicate, expr_error = self.attempt(expression)
        if predicate is not None:
            return predicate
        if condition is not None:
            self.pos = after_group
            return condition
        assert group_error is not None and expr_error is not None
        raise max(group_error, expr_error, key=lambda e: e.span.start if e.span else -1)

    def continues_expression(self) -> bool:
        """After ``( ... )``: does an operator follow that makes the group an expression?"""
        token = self.peek()
        if token.kind == "OP":
            return token.value in COMPARE_OPS or token.value in "+-*/"
        return token.is_word(*_TAIL_WORDS, *_TIME_WORDS)

    def parse_predicate_tail(self, expr: ast.Expr, start: Token) -> ast.Condition:
        token = self.peek()
        if token.kind == "OP" and token.value in COMPARE_OPS:
            self.advance()
            right = self.parse_expr()
            op = COMPARE_OPS[token.value]
            return ast.Compare(op, expr, right, span=self.span_from(start))  # type: ignore[arg-type]
        period = self.parse_period() if self.at_word("in") else None  # not `today`: a window
        if period is not None:
            return ast.PeriodTest(expr, period, span=self.span_from(start))
        negated = self.at_word("not") and self.at_word("in", "between", ahead=1)
        if negated:
            self.advance()
        if self.at_word("in"):
            if self.at_word("last", ahead=1) and not negated:
                self.advance()
                self.advance()
                duration = self.parse_duration()
                return ast.TimeTest("within", expr, duration, span=self.span_from(start))
            self.advance()
            self.expect_op("(", "'(' and a list of values after 'in'")
            values = [self.parse_expr()]
            while self.at_op(","):
                self.advance()
                values.append(self.parse_expr())
            self.expect_op(")", "',' or ')' in the list of values")
            return ast.InList(expr, tuple(values), negated, span=self.span_from(start))
        if self.at_word("between"):
            self.advance()
            low = self.parse_expr()
            self.expect_word("and")
            high = self.parse_expr()
            return ast.Between(expr, low, high, negated, span=self.span_from(start))
        if self.at_word("contains", "matches"):
            op = self.advance().value.lower()
            pattern = self.parse_pattern()
            return ast.TextTest(op, expr, pattern, span=self.span_from(start))  # type: ignore[arg-type]
        if self.at_word("starts", "ends") and self.at_word("with", ahead=1):
            op = self.advance().value.lower() + "_with"
            self.advance()
            pattern = self.parse_pattern()
            return ast.TextTest(op, expr, pattern, span=self.span_from(start))  # type: ignore[arg-type]
        if self.at_word("is"):
            self.advance()
            is_not = self.at_word("not")
            if is_not:
                self.advance()
            if not self.at_word("set", "null"):
                raise self.error("'set' or 'null' after 'is'" if not is_not else "'set' or 'null'")
            word = self.advance().value.lower()
            # "is set" / "is not null" keep the value; "is not set" / "is null" test its absence.
            negated_test = is_not if word == "set" else not is_not
            return ast.IsSet(expr, negated_test, span=self.span_from(start))
        if self.at_word("within"):
            self.advance()
            duration = self.parse_duration()
            return ast.TimeTest("within", expr, duration, span=self.span_from(start))
        if self.at_word("before", "after", "since"):
            word = self.advance().value.lower()
            point = self.parse_expr()
            op = "before" if word == "before" else "after"
            return ast.TimeTest(op, expr, point, span=self.span_from(start))  # type: ignore[arg-type]
        return ast.Compare("=", expr, ast.Boolean(True), span=self.span_from(start))

    def parse_pattern(self) -> ast.String:
        token = self.peek()
        if token.kind != "STRING":
            raise self.error("a quoted pattern such as 'abc'")
        self.advance()
        return ast.String(token.value, span=token.span)

    # --- behaviour sugar ---------------------------------------------------------------

    def parse_did(self) -> ast.Condition:
        start = self.advance()
        if self.at_word("not"):
            self.advance()
            spec = self.parse_sugar_spec()
            if self.at_word("then"):  # `did not` before a funnel negates the whole funnel
                return ast.Not(self.parse_funnel(spec, start), span=self.span_from(start))
            count = ast.Aggregate("count", spec, span=spec.span)
            return ast.Compare("=", count, ast.Number(0), span=self.span_from(start))
        spec = self.parse_sugar_spec()
        if self.at_word("then"):
            return self.parse_funnel(spec, start)
        return self.parse_count_suffix(spec, start)

    def parse_funnel(self, first: ast.EventSpec, start: Token) -> ast.Sequence | ast.Funnel:
        """``then [not] STEP [within D]``, once or more: two steps are a ``Sequence``, more
        a ``Funnel``. Only the first step takes a window; ``then not`` only ends one."""
        steps: list[ast.FunnelStep] = []
        negated = False
        while self.at_word("then"):
            then_token = self.advance()
            if negated:
                raise SegqlSyntaxError(
                    "'then not' is allowed only as the last step of a funnel",
                    then_token.span,
                    help="move the negated step to the end, or test it on its own: "
                    "`... and not (did A then B)`",
                )
            step_start = self.peek()
            negated = self.at_word("not")
            if negated:
                self.advance()
            spec = self.parse_sugar_spec(window=False)
            within = None
            if self.at_word("within"):
                self.advance()
                within = self.parse_duration()
            self.reject_step_window()
            steps.append(ast.FunnelStep(spec, within, span=self.span_from(step_start)))
        if len(steps) == 1:
            step = steps[0]
            return ast.Sequence(first, step.spec, negated, step.within, span=self.span_from(start))
        return ast.Funnel(first, tuple(steps), negated, span=self.span_from(start))

    def reject_step_window(self) -> None:
        """A window after a later step of a funnel: only the first step takes one."""
        token = self.peek()
        window_follows = self.at_word("before", "after", "since", "between", "today", "yesterday")
        window_follows = window_follows or (
            self.at_word("in") and self.at_word("last", "this", "previous", ahead=1)
        )
        if window_follows or self.at_word("among"):
            raise SegqlSyntaxError(
                "only the first step of a funnel takes a window",
                token.span,
                help="a later step is measured from the step before it: "
                "`then STEP within 7 days`; give the first step the window",
            )

    def parse_count_suffix(self, spec: ast.EventSpec, start: Token) -> ast.Condition:
        count = ast.Aggregate("count", spec, span=spec.span)
        op = ">="
        if self.at_word("at") and self.at_word("least", "most", ahead=1):
            self.advance()
            op = ">=" if self.advance().value.lower() == "least" else "<="
        elif self.at_word("exactly"):
            self.advance()
            op = "="
        else:
            return ast.Compare(">=", count, ast.Number(1), span=self.span_from(start))
        token = self.peek()
        if token.kind != "NUMBER" or not token.value.isdigit():
            raise self.error("a whole number of times")
        self.advance()
        if not self.at_word("times", "time"):
            raise self.error("'times'")
        self.advance()
        number = ast.Number(int(token.value), span=token.span)
        return ast.Compare(op, count, number, span=self.span_from(start))  # type: ignore[arg-type]

    def parse_sugar_spec(self, window: bool = True) -> ast.EventSpec:
        """``ref [where ONE-PREDICATE] [window]`` as in ``did`` and ``has``."""
        start = self.peek()
        ref = self.parse_ref()
        where = None
        if self.at_word("where"):
            self.advance()
            where = self.parse_not()
        if not window:
            return ast.EventSpec(ref, where, None, span=self.span_from(start))
        found_window, last = self.parse_window_and_last()
        return ast.EventSpec(ref, where, found_window, span=self.span_from(start), last=last)

    def parse_window_and_last(self) -> tuple[ast.Window | None, int | None]:
        """A window and/or ``among last N``, in either order (the checker refuses both)."""
        window = self.parse_window()
        last = self.parse_among_last()
        if last is not None and window is None:
            window = self.parse_window()
        return window, last

    def parse_among_last(self) -> int | None:
        """``among last N``: the person's N most recent rows of the ref."""
        if not (self.at_word("among") and self.at_word("last", ahead=1)):
            return None
        self.advance()
        self.advance()
        token = self.peek()
        if token.kind != "NUMBER" or not token.value.isdigit() or int(token.value) < 1:
            raise self.error(
                "a whole number of rows after 'among last'",
                help="for example count(quiz_completed among last 100)",
            )
        self.advance()
        return int(token.value)

    def parse_period(self) -> ast.WindowPeriod | None:
        """A calendar window: ``today``, ``yesterday``, ``in this week``, ``in previous
        month``, ``in previous 3 months``; None when none starts here. ``in last month``
        (no number) is an error that names both meanings."""
        start = self.peek()
        if self.at_word("today", "yesterday"):
            self.advance()
            return ast.WindowPeriod("day", 0 if start.is_word("today") else 1, span=start.span)
        if not self.at_word("in"):
            return None
        if self.at_word("last", ahead=1) and self.peek(2).is_word(*_PERIOD_WORDS):
            unit_token = self.peek(2)
            unit = _PERIOD_WORDS[unit_token.value.lower()]
            raise SegqlSyntaxError(
                f"'in last {unit_token.value}' needs a number",
                start.span.to(unit_token.span),
                help=f"write `within 1 {unit}` (the last 1 {unit}, rolling) or "
                f"`in previous {unit}` (the whole calendar {unit} before this one)",
            )
        if not self.at_word("this", "previous", ahead=1):
            return None
        self.advance()
        which = self.advance().value.lower()
        count = 1
        if which == "previous" and self.peek().kind == "NUMBER":
            number = self.peek()
            if not number.value.isdigit() or int(number.value) < 1:
                raise self.error("a whole number of periods", number)
            count = int(self.advance().value)
        unit_token = self.peek()
        if not unit_token.is_word(*_PERIOD_WORDS):
            raise self.error(
                f"a period after 'in {which}': day, week, month, quarter or year",
                help="for example `in this month` or `in previous 3 months`",
            )
        self.advance()
        unit = _PERIOD_WORDS[unit_token.value.lower()]
        plural = unit_token.value.lower() != unit
        if which == "this" or count == 1:
            if plural:
                raise SegqlSyntaxError(
                    f"'in {which} {unit_token.value}' takes one {unit}", unit_token.span,
                    help=f"write `in {which} {unit}`"
                    + ("" if which == "this" else f" or `in previous 2 {unit}s`"),
                )  # fmt: skip
        elif not plural:
            raise SegqlSyntaxError(
                f"{count} periods are written in the plural", unit_token.span,
                help=f"write `in previous {count} {unit}s`",
            )  # fmt: skip
        previous = 0 if which == "this" else count
        return ast.WindowPeriod(unit, previous, span=self.span_from(start))  # type: ignore[arg-type]


    def parse_ref(self) -> str | None:
        """An event name, a quoted event name, a source name, or ``any`` (``None``)."""
        token = self.peek()
        if token.is_word("any"):
            self.advance()
            return None
        if token.kind == "STRING" or token.kind == "IDENT":
            if token.kind == "IDENT" and not token.quoted and token.value.lower() in RESERVED:
                raise self.error("an event name, 'any' or a source name")
            self.advance()
            return token.value
        raise self.error("an event name, 'any' or a source name")

    def parse_window(self) -> ast.Window | None:
        start = self.peek()
        period = self.parse_period()
        if period is not None:
            return period
        if self.at_word("within") or (self.at_word("in") and self.at_word("last", ahead=1)):
            self.advance()
            if self.at_word("last"):
                self.advance()
            duration = self.parse_duration()
            return ast.WindowWithin(duration, span=self.span_from(start))
        if self.at_word("between"):
            self.advance()
            first = self.parse_expr()
            self.expect_word("and")
            last = self.parse_expr()
            return ast.WindowRange(first, last, span=self.span_from(start))
        if self.at_word("since", "after"):
            self.advance()
            return ast.WindowRange(self.parse_expr(), None, span=self.span_from(start))
        if self.at_word("before"):
            self.advance()
            return ast.WindowRange(None, self.parse_expr(), span=self.span_from(start))
        return None

    # --- expressions -------------------------------------------------------------------

    @_packrat
    def parse_expr(self) -> ast.Expr:
        start = self.peek()
        left = self.parse_term()
        while self.at_op("+", "-"):
            op = self.advance().value
            right = self.parse_term()
            left = ast.Arithmetic(op, left, right, span=self.span_from(start))  # type: ignore[arg-type]
        return left

    def parse_term(self) -> ast.Expr:
        start = self.peek()
        left = self.parse_unary()
        while self.at_op("*", "/"):
            op = self.advance().value
            right = self.parse_unary()
            left = ast.Arithmetic(op, left, right, span=self.span_from(start))  # type: ignore[arg-type]
        return left

    def parse_unary(self) -> ast.Expr:
        if not self.at_op("-"):
            return self.parse_primary()
        start = self.advance()
        number = self.peek()
        unit_follows = self.peek(1).kind == "IDENT" and self.peek(1).value.lower() in WORD_UNITS
        if number.kind == "NUMBER" and not unit_follows:
            self.advance()
            return ast.Number(_number(number, negative=True), span=self.span_from(start))
        with self.nested():
            operand = self.parse_unary()
        return ast.Negate(operand, span=self.span_from(start))

    def parse_duration(self) -> ast.Duration:
        token = self.peek()
        if token.kind == "DURATION":
            self.advance()
            amount, unit = token.value.split(" ")
            return ast.Duration(int(amount), unit, span=token.span)  # type: ignore[arg-type]
        unit_token = self.peek(1)
        if (
            token.kind == "NUMBER"
            and unit_token.kind == "IDENT"
            and not unit_token.quoted
            and unit_token.value.lower() in WORD_UNITS
        ):
            if not token.value.isdigit():
                raise SegqlSyntaxError(
                    "a duration takes a whole number", token.span,
                    help="write 36 hours rather than 1.5 days",
                )  # fmt: skip
            self.advance()
            self.advance()
            unit = WORD_UNITS[unit_token.value.lower()]
            return ast.Duration(int(token.value), unit, span=token.span.to(unit_token.span))  # type: ignore[arg-type]
        if token.kind == "NUMBER" and unit_token.kind == "IDENT" and not unit_token.quoted:
            guess = did_you_mean(unit_token.value.lower(), WORD_UNITS)
            if guess and token.value != "1" and f"{guess}s" in WORD_UNITS:
                guess = f"{guess}s"
            if guess:
                raise self.error(
                    "a duration such as 30 days",
                    unit_token,
                    help=f"did you mean '{token.value} {guess}'?",
                )
        raise self.error("a duration such as 30 days")

    def parse_primary(self) -> ast.Expr:
        token = self.peek()
        if token.kind == "DURATION" or (
            token.kind == "NUMBER"
            and self.peek(1).kind == "IDENT"
            and not self.peek(1).quoted
            and self.peek(1).value.lower() in WORD_UNITS
        ):
            duration = self.parse_duration()
            if self.at_word("ago"):
                self.advance()
                return ast.Ago(duration, span=self.span_from(token))
            return duration
        if token.kind == "NUMBER":
            self.advance()
            return ast.Number(_number(token), span=token.span)
        if token.kind == "STRING":
            self.advance()
            return ast.String(token.value, span=token.span)
        if token.is_word("true", "false"):
            self.advance()
            return ast.Boolean(token.value.lower() == "true", span=token.span)
        if token.is_word("null"):
            self.advance()
            return ast.Null(span=token.span)
        if token.is_word("now"):
            self.advance()
            return ast.Now(span=token.span)
        if self.at_op("("):
            self.advance()
            expr = self.parse_expr()
            self.expect_op(")", "')' to close the parenthesis")
            return expr
        if token.is_word("case") and self.at_word("when", ahead=1):
            return self.parse_case_when()
        if token.kind == "IDENT":
            if self.at_op("(", ahead=1) and not token.quoted:
                return self.parse_call()
            if token.is_word("person") and self.at_op(".", ahead=1):
                self.advance()
                self.advance()
                name, _ = self.parse_name("a property name after 'person.'")
                return ast.PersonProperty(name, span=self.span_from(token))
            name, _ = self.parse_name("an expression")
            return ast.Name(name, span=token.span)
        raise self.error("an expression")

    def parse_call(self) -> ast.Expr:
        token = self.advance()
        func = token.value.lower()
        self.advance()  # "("
        if func in ast.AGGREGATES:
            return self.parse_aggregate(func, token)
        if func not in ast.FUNCTIONS:
            suggestion = did_you_mean(func, [*ast.FUNCTIONS, *ast.AGGREGATES])
            raise SegqlSyntaxError(
                f"unknown function '{token.value}'"
                + (f": did you mean '{suggestion}'?" if suggestion else ""),
                token.span,
                help="functions: " + ", ".join(sorted([*ast.FUNCTIONS, *ast.AGGREGATES])),
            )
        args: list[ast.Expr] = []
        if not self.at_op(")"):
            args.append(self.parse_expr())
            while self.at_op(","):
                self.advance()
                args.append(self.parse_expr())
        self.expect_op(")", "',' or ')' in the arguments")
        span = self.span_from(token)
        fewest, most = ast.FUNCTIONS[func]
        if len(args) < fewest or (most is not None and len(args) > most):
            wanted = str(fewest) if fewest == most else f"{fewest} or more"
            if most is not None and most != fewest:
                wanted = f"{fewest} to {most}"
            raise SegqlSyntaxError(
                f"{func}() takes {wanted} argument{'s' if wanted != '1' else ''}, "
                f"found {len(args)}",
                span,
            )
        return ast.Call(func, tuple(args), span=span)

    def parse_aggregate(self, func: str, token: Token) -> ast.Aggregate:
        spec_start = self.peek()
        ref = self.parse_ref()
        prop = None
        if func in ast.PROPERTY_AGGREGATES:
            if not self.at_op("."):
                raise self.error(
                    f"'.' and a property: {func}(event.property ...)",
                    help=f"for example {func}(purchase.amount within 30 days)",
                )
            self.advance()
            prop, _ = self.parse_name("a property name")
        elif self.at_op("."):
            raise SegqlSyntaxError(
                f"{func}() counts rows and takes no property",
                self.peek().span,
                help="count_distinct(event.property) counts distinct values",
            )
        where = None
        if self.at_word("where"):
            self.advance()
            where = self.parse_condition()
        window, last = self.parse_window_and_last()
        spec = ast.EventSpec(ref, where, window, span=self.span_from(spec_start), last=last)
        if func == "streak":
            return self.parse_streak_unit(spec, token)
        self.expect_op(")", "a window or ')' to close the aggregate")
        return ast.Aggregate(func, spec, prop, span=self.span_from(token))  # type: ignore[arg-type]

    # --- v2: lang2 (language.md 9.6, 9.8) ----------------------------------------------

    def at_segment_name(self, ahead: int) -> bool:
        token = self.peek(ahead)
        if token.kind != "IDENT":
            return False
        return token.quoted or token.value.lower() not in RESERVED

    def parse_history_test(self) -> ast.HistoryTest | None:
        """``entered X within D``, ``exited X within D``, ``member of X for D``, ``ever in
        X`` (None when the tokens are none of these: then they are an expression)."""
        start = self.peek()
        if self.at_word("entered", "exited") and self.at_segment_name(1):
            word = self.advance().value.lower()
            segment, _ = self.parse_name("a segment name")
            if not self.at_word("within"):
                raise self.error(
                    f"'within' and a duration after '{word} {segment}'",
                    help=f"for example `{word} {segment} within 7 days`",
                )
            self.advance()
            duration = self.parse_duration()
            return ast.HistoryTest(word, segment, duration, span=self.span_from(start))  # type: ignore[arg-type]
        if self.at_word("member") and self.at_word("of", ahead=1):
            self.advance()
            self.advance()
            segment, _ = self.parse_name("a segment name after 'member of'")
            if not self.at_word("for"):
                raise self.error(
                    f"'for' and a duration after 'member of {segment}'",
                    help=f"for example `member of {segment} for 30 days`",
                )
            self.advance()
            duration = self.parse_duration()
            return ast.HistoryTest("member_for", segment, duration, span=self.span_from(start))
        if (
            self.at_word("ever")
            and self.at_word("in", ahead=1)
            and self.at_segment_name(2)
            and not self.at_word("last", ahead=2)
        ):
            self.advance()
            self.advance()
            segment, _ = self.parse_name("a segment name after 'ever in'")
            return ast.HistoryTest("ever", segment, span=self.span_from(start))
        return None

    def parse_case_when(self) -> ast.CaseWhen:
        """``case when C then A ... [else E] end``."""
        start = self.advance()  # "case"
        branches: list[tuple[ast.Condition, ast.Expr]] = []
        with self.nested():
            while self.at_word("when"):
                self.advance()
                condition = self.parse_branch_condition()
                branches.append((condition, self.parse_expr()))
            default = None
            if self.at_word("else"):
                self.advance()
                default = self.parse_expr()
            if not self.at_word("end"):
                expected = "'else' or 'end'" if default is None else "'end'"
                raise self.error(f"'when', {expected} in the case expression")
            self.advance()
        return ast.CaseWhen(tuple(branches), default, span=self.span_from(start))

    def parse_branch_condition(self) -> ast.Condition:
        """A branch's condition, up to the first ``then`` outside parentheses and inner
        ``case``s: that one is the branch's, even after ``did x`` (a sequence there is
        written in parentheses). While the condition is parsed, that ``then`` is an
        operator no rule takes."""
        depth, inner_cases, end = 0, 0, self.pos
        while self.tokens[end].kind != "EOF":
            token = self.tokens[end]
            if token.kind == "OP" and token.value in "()":
                depth += 1 if token.value == "(" else -1
            elif token.is_word("case") and self.tokens[end + 1].is_word("when"):
                inner_cases += 1  # a case inside the condition has thens of its own
            elif token.is_word("end") and inner_cases > 0:
                inner_cases -= 1
            elif depth == 0 and inner_cases == 0 and token.is_word("then"):
                break
            end += 1
        then = self.tokens[end]
        if then.kind == "EOF":
            raise self.error("a condition and 'then' after 'when'", then)
        self.tokens[end] = Token("OP", then.value, then.span)
        try:
            condition = self.parse_condition()
        finally:
            self.tokens[end] = then
        if self.pos != end:
            raise self.error("'then' and a value after the condition")
        self.advance()
        return condition
    def parse_streak_unit(self, spec: ast.EventSpec, token: Token) -> ast.Aggregate:
        """``streak(spec, day|week|month)``: the rest after the spec."""
        self.expect_op(",", "',' and a period after the event: streak(quiz_completed, day)")
        unit_token = self.peek()
        unit = unit_token.value.lower() if unit_token.kind == "IDENT" else ""
        if unit_token.quoted or unit not in ast.STREAK_UNITS:
            suggestion = did_you_mean(unit.rstrip("s"), ast.STREAK_UNITS) if unit else None
            raise self.error(
                "day, week or month",
                help=f"did you mean '{suggestion}'?" if suggestion else
                "a streak counts consecutive days, weeks or months: streak(login, week)",
            )  # fmt: skip
        self.advance()
        self.expect_op(")", "')' to close streak()")
        return ast.Aggregate(
            "streak", spec, None, span=self.span_from(token), period=unit  # type: ignore[arg-type]
        )


def _number_value(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


def _number(token: Token, negative: bool = False) -> int | float:
    """A number literal's value; one too large for a float is an error, not infinity."""
    value = _number_value(token.value)
    if isinstance(value, float) and not math.isfinite(value):
        raise SegqlSyntaxError("number too large", token.span)
    return -value if negative else value
