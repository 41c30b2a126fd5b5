"""The canonical text of an AST, as ``segql fmt`` writes it.

For every AST, ``parse(format_module(tree)) == tree``. Parentheses are added only where
the grammar needs them; ``count(x) >= 1`` and ``count(x) = 0`` are written back as
``did x`` and ``did not x``.
"""

from __future__ import annotations

import re

from typing_extensions import assert_never

from segql.errors import Source, Span
from segql.language import ast
from segql.language.lexer import WORD_UNITS, tokenize
from segql.language.parser import CONTEXTUAL, LANG2_WORDS, RESERVED, Parser

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NEEDS_BACKTICKS = RESERVED | CONTEXTUAL | frozenset(WORD_UNITS) | LANG2_WORDS
_LINE = 88

# Precedence of conditions and of arithmetic: a child looser than its place is parenthesized.
_OR, _AND, _NOT, _PREDICATE = 1, 2, 3, 4
_ADD, _MUL, _UNARY, _PRIMARY = 1, 2, 3, 4


def format_module(module: ast.Module) -> str:
    """All definitions of a module, separated by blank lines, ending with a newline."""
    parts = [format_definition(d) for d in module.definitions]
    parts += ["priority " + ", ".join(name(s) for s in p.segments) for p in module.priorities]
    return "\n\n".join(parts) + "\n"


def format_definition(definition: ast.Definition) -> str:
    lines: list[str] = []
    if isinstance(definition, ast.Trait):
        labels = _labels(definition.title, definition.description, sep=" ")
        return f"trait {name(definition.name)}{labels} = {format_expr(definition.expr)}"
    lines.append(f"segment {name(definition.name)}")
    if definition.title is not None:
        lines.append(f"  title {_double_quoted(definition.title)}")
    if definition.description is not None:
        lines.append(f"  description {_double_quoted(definition.description)}")
    if definition.tags:
        lines.append("  tags " + ", ".join(string(tag) for tag in definition.tags))
    if definition.owner is not None:
        lines.append(f"  owner {string(definition.owner)}")
    if definition.paused:
        lines.append("  paused")
    if isinstance(definition.where, ast.IdList):
        lines.append("  " + _condition(definition.where, _OR))
    elif definition.where is not None:
        lines.append(_clause("where", definition.where))
    else:
        assert definition.enter is not None and definition.exit is not None
        lines.append(_clause("enter when", definition.enter))
        lines.append(_clause("exit when", definition.exit))
    return "\n".join(lines)


def _clause(keyword: str, condition: ast.Condition) -> str:
    """``  where A and B``, broken over lines at the top-level ``and``/``or`` when long."""
    one_line = f"  {keyword} {format_condition(condition)}"
    if len(one_line) <= _LINE or not isinstance(condition, (ast.And, ast.Or)):
        return one_line
    word, level = ("and", _AND) if isinstance(condition, ast.And) else ("or", _OR)
    items = [_condition(item, level + 1) for item in condition.items]
    return f"  {keyword} " + f"\n    {word} ".join(items)


def _labels(title: str | None, description: str | None, sep: str) -> str:
    text = ""
    if title is not None:
        text += f"{sep}title {_double_quoted(title)}"
    if description is not None:
        text += f"{sep}description {_double_quoted(description)}"
    return text


def name(identifier: str) -> str:
    """An identifier as written in segql: bare, or in backticks when it must be."""
    if _IDENTIFIER.match(identifier) and identifier.lower() not in _NEEDS_BACKTICKS:
        return identifier
    return "`" + identifier.replace("`", "``") + "`"


def string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _double_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ref(event: str | None) -> str:
    """An event or source reference: ``any``, a bare name, or a quoted name."""
    if event is None:
        return "any"
    if _IDENTIFIER.match(event) and event.lower() not in RESERVED | CONTEXTUAL:
        return event
    return string(event)


# --- conditions ----------------------------------------------------------------------------


def format_condition(condition: ast.Condition) -> str:
    return _condition(condition, _OR)


def _condition(condition: ast.Condition, place: int, in_filter: bool = False) -> str:
    """``in_filter``: inside an event filter, where a ``did`` or a sequence at the end
    would take the window or ``then`` that follows as its own, so neither is written."""
    if isinstance(condition, (ast.Or, ast.And)):
        level = _OR if isinstance(condition, ast.Or) else _AND
        word = " or " if level == _OR else " and "
        # A nested group of the same kind keeps its parentheses, so the tree survives.
        text = word.join(_condition(item, level + 1, in_filter) for item in condition.items)
        return f"({text})" if place > level else text
    if isinstance(condition, ast.Not):
        text = "not " + _condition(condition.operand, _NOT, in_filter)
        return f"({text})" if place > _NOT else text
    if in_filter and isinstance(condition, ast.Funnel):
        return f"({_predicate(condition)})"
    if in_filter and isinstance(condition, ast.Sequence):
        return f"({_predicate(condition)})"
    return _predicate(condition, sugar=not in_filter)


def _predicate(condition: ast.Condition, sugar: bool = True) -> str:
    match condition:
        case ast.Compare():
            did = _did_sugar(condition) if sugar else None
            if did is not None:
                return did
            return f"{format_expr(condition.left)} {condition.op} {format_expr(condition.right)}"
        case ast.InList():
            values = ", ".join(format_expr(v) for v in condition.values)
            negation = "not " if condition.negated else ""
            return f"{format_expr(condition.expr)} {negation}in ({values})"
        case ast.Between():
            negation = "not " if condition.negated else ""
            return (
                f"{format_expr(condition.expr)} {negation}between "
                f"{format_expr(condition.low)} and {format_expr(condition.high)}"
            )
        case ast.TextTest():
            op = condition.op.replace("_", " ")
            return f"{format_expr(condition.expr)} {op} {string(condition.pattern.value)}"
        case ast.IsSet():
            return f"{format_expr(condition.expr)} is {'not ' if condition.negated else ''}set"
        case ast.TimeTest():
            return f"{format_expr(condition.expr)} {condition.op} {format_expr(condition.arg)}"
        case ast.InSegment():
            return f"in {name(condition.segment)}"
        case ast.IdList():
            if condition.kind == "list":
                return f"from list {string(condition.name)}"
            return "from table " + ".".join(name(part) for part in condition.name.split("."))
        case ast.Sequence():
            text = f"did {_spec(condition.first, reach=_NOT)} then "
            text += ("not " if condition.negated else "") + _spec(condition.then, reach=_NOT)
            if condition.within is not None:
                text += f" within {format_expr(condition.within)}"
            return text
        case ast.HistoryTest():
            return _history_test(condition)
        case ast.Funnel() | ast.PeriodTest():
            return _v2_predicate(condition)
        case ast.And() | ast.Or() | ast.Not():
            return _condition(condition, _OR)
        case _:
            assert_never(condition)


def _v2_predicate(condition: ast.Funnel | ast.PeriodTest) -> str:
    """Funnels of three steps or more, and calendar tests on a time (language v2)."""
    if isinstance(condition, ast.PeriodTest):
        return f"{format_expr(condition.expr)} {_period(condition.period, aliases=False)}"
    text = f"did {_spec(condition.first, reach=_NOT)}"
    for number, step in enumerate(condition.steps, 1):
        negated = condition.negated and number == len(condition.steps)
        text += " then " + ("not " if negated else "") + _spec(step.spec, reach=_NOT)
        if step.within is not None:
            text += f" within {format_expr(step.within)}"
    return text


def _period(window: ast.WindowPeriod, aliases: bool = True) -> str:
    """``in this month``, ``in previous 3 months``; ``today``/``yesterday`` as windows."""
    if aliases and window.unit == "day" and window.previous <= 1:
        return "today" if window.previous == 0 else "yesterday"
    if window.previous == 0:
        return f"in this {window.unit}"
    if window.previous == 1:
        return f"in previous {window.unit}"
    return f"in previous {window.previous} {window.unit}s"


def _did_sugar(compare: ast.Compare) -> str | None:
    """``did x`` for ``count(x) >= 1`` and ``did not x`` for ``count(x) = 0``."""
    left, right = compare.left, compare.right
    if not (isinstance(left, ast.Aggregate) and left.func == "count"):
        return None
    if not (isinstance(right, ast.Number) and isinstance(right.value, int)):
        return None
    if compare.op == ">=" and right.value == 1:
        return f"did {_spec(left.spec, reach=_NOT)}"
    if compare.op == "=" and right.value == 0:
        return f"did not {_spec(left.spec, reach=_NOT)}"
    return None


def _spec(spec: ast.EventSpec, prop: str | None = None, reach: int = _OR) -> str:
    """An event spec. Inside an aggregate the filter reaches to the window (``reach`` is
    ``_OR``); in ``did`` it is one predicate (``_NOT``), so a longer one is parenthesized."""
    text = ref(spec.ref) + (f".{name(prop)}" if prop is not None else "")
    if spec.where is not None:
        text += " where " + _condition(spec.where, reach, in_filter=True)
    if spec.window is not None:
        text += " " + _window(spec.window)
    if spec.last is not None:
        text += f" among last {spec.last}"
    return text


def _window(window: ast.Window) -> str:
    if isinstance(window, ast.WindowPeriod):
        return _period(window)
    if isinstance(window, ast.WindowWithin):
        return f"within {format_expr(window.duration)}"
    if window.start is not None and window.end is not None:
        return f"between {format_expr(window.start)} and {format_expr(window.end)}"
    if window.start is not None:
        return f"since {format_expr(window.start)}"
    assert window.end is not None
    return f"before {format_expr(window.end)}"


# --- expressions ---------------------------------------------------------------------------


def format_expr(expr: ast.Expr) -> str:
    return _expr(expr, _ADD)


def _expr(expr: ast.Expr, place: int) -> str:
    match expr:
        case ast.Arithmetic():
            level = _ADD if expr.op in "+-" else _MUL
            # Left-associative: the right operand of the same level needs parentheses.
            text = f"{_expr(expr.left, level)} {expr.op} {_expr(expr.right, level + 1)}"
            return f"({text})" if place > level else text
        case ast.Negate():
            operand = _expr(expr.operand, _UNARY)
            if operand.startswith("-") or isinstance(expr.operand, ast.Number):
                operand = f"({operand})"
            return f"-{operand}"
        case ast.Number():
            if isinstance(expr.value, bool):
                raise TypeError("a Number holds an int or a float")
            text = repr(expr.value)
            return f"({text})" if expr.value < 0 and place > _UNARY else text
        case ast.String():
            return string(expr.value)
        case ast.Boolean():
            return "true" if expr.value else "false"
        case ast.Null():
            return "null"
        case ast.Now():
            return "now"
        case ast.Duration():
            unit = expr.unit if expr.amount == 1 else expr.unit + "s"
            return f"{expr.amount} {unit}"
        case ast.Ago():
            return f"{format_expr(expr.duration)} ago"
        case ast.Name():
            return name(expr.name)
        case ast.PersonProperty():
            return f"person.{name(expr.name)}"
        case ast.Call():
            return f"{expr.func}({', '.join(format_expr(a) for a in expr.args)})"
        case ast.Aggregate() if expr.func == "streak":
            return f"streak({_spec(expr.spec)}, {expr.period})"
        case ast.Aggregate():
            return f"{expr.func}({_spec(expr.spec, expr.prop)})"
        case ast.CaseWhen():
            return _case_when(expr)
        case _:
            assert_never(expr)


# --- v2: lang2 (language.md 9.6, 9.8) -----------------------------------------------------


def _history_test(test: ast.HistoryTest) -> str:
    segment = name(test.segment)
    if test.kind == "ever":
        return f"ever in {segment}"
    assert test.duration is not None
    duration = format_expr(test.duration)
    if test.kind == "member_for":
        return f"member of {segment} for {duration}"
    return f"{test.kind} {segment} within {duration}"


def _case_when(case: ast.CaseWhen) -> str:
    """A condition of a branch is written as in an event filter (``did`` as a count, a
    sequence in parentheses): a ``did`` there would take the branch's ``then`` as its own."""
    parts = ["case"]
    for condition, value in case.branches:
        parts += ["when", _condition(condition, _OR, in_filter=True), "then", format_expr(value)]
    if case.default is not None:
        parts += ["else", format_expr(case.default)]
    parts.append("end")
    return " ".join(parts)


def format_source(text: str, path: str = "<input>") -> str:
    """Canonical text of a whole file, keeping its comments.

    A comment stays with the definition it stands before, inside or at the end of the
    last line of (one inside moves up above it); comments after the last definition stay
    at the end.
    """
    source = Source(path, text)
    comments: list[Span] = []
    tokenize(source, comments)
    module = Parser(source).parse_module()
    blocks: list[str] = []
    pending = list(comments)
    for definition in module.definitions:
        assert definition.span is not None
        last_line = source.line_col(max(definition.span.end - 1, 0))[0]
        own = [c for c in pending if c.start < definition.span.end or c.line == last_line]
        pending = pending[len(own) :]
        blocks.append("".join(c.text.strip() + "\n" for c in own) + format_definition(definition))
    if pending:
        blocks.append("".join(c.text.strip() + "\n" for c in pending).rstrip("\n"))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def format_window(window: ast.Window) -> str:
    """A window as the language writes it (``within 30 days``, ``since ...``)."""
    return _window(window)
