"""The sqlglot pieces every part of the lowering shares: names, small builders, helpers.

Column and CTE names of the query (``person_id``, ``segql_people``, ``segql_stage_0``), the
row a row-scope expression is lowered against (``_Row``), and builders that make sqlglot
nodes without its defensive copies (``_and``, ``_alias``, ``_join``): compile time is linear
in the rules. No module here decides anything; the planner does, the lowering writes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlglot import exp

from segql.config import SourceConfig
from segql.language import ast

PERSON_ID = "person_id"
_PEOPLE = "segql_people"
_STAGE_0 = "segql_stage_0"
_RECORDED = "segql_recorded"  # the recorded changes history conditions read (9.6)
EVENT_TIME = "event_time"
EVENT_NAME = "event_name"
PROPERTIES = "properties"
_COUNT_LIKE = frozenset(
    {"count", "count_distinct", "sum", "active_days", "active_weeks", "active_months"}
) | {"streak"}
COUNT_LIKE = _COUNT_LIKE  # 0, not null, for a person without rows (segql.runs.incremental)
_SECONDS = {"day": 86400, "hour": 3600}
_PERIODS: dict[str, str] = {"active_days": "day", "active_weeks": "week", "active_months": "month"}


@dataclass
class _Row:
    """Where a row-scope expression is compiled: a source, read under a table alias."""

    source: SourceConfig
    alias: str | None = None

    def column(self, name: str) -> exp.Column:
        return exp.column(name, table=self.alias, quoted=True)


def _statistics(column: str) -> str:
    """The CTE of one population value."""
    return f"segql_stat_{column}"


def _statistic(column: str) -> str:
    return f"value__{column}"


_COMPARISONS = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a query is checked, built or written. Every sqlglot node
    points back to its parent, so each is in a cycle; a large query's hundred thousand new
    nodes set the collector off again and again, over every node made so far (a third of
    the time for 1,000 segments). Whatever becomes garbage is collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")


def _and(*parts: exp.Expr) -> exp.Expr:
    """``AND`` of fresh subtrees, as sqlglot's ``and_`` writes it (a connector operand in
    parentheses), without its defensive copies and parsing (compile time is linear)."""
    return _connect(exp.And, parts)


def _or(*parts: exp.Expr) -> exp.Expr:
    return _connect(exp.Or, parts)


def _not(part: exp.Expr) -> exp.Expr:
    return exp.Not(this=_grouped(part))


def _connect(connector: type[exp.And] | type[exp.Or], parts: Sequence[exp.Expr]) -> exp.Expr:
    if len(parts) == 1:
        return parts[0]
    result = _grouped(parts[0])
    for part in parts[1:]:
        result = connector(this=result, expression=_grouped(part))
    return result


def _grouped(part: exp.Expr) -> exp.Expr:
    return exp.Paren(this=part) if isinstance(part, exp.Connector) else part


def _union_all(selects: list[exp.Select]) -> exp.Query:
    """``UNION ALL`` of the selects as a balanced tree: a chain a thousand deep would be
    as deep to generate (and slow to build, since sqlglot's builder copies)."""
    if len(selects) == 1:
        return selects[0]
    middle = len(selects) // 2
    return exp.Union(
        this=_union_all(selects[:middle]), expression=_union_all(selects[middle:]), distinct=False
    )


def _two_valued(condition: exp.Expr) -> exp.Expr:
    return exp.Coalesce(this=condition, expressions=[exp.false()])


def _wrap(expression: exp.Expr) -> exp.Expr:
    """Parenthesize a compound operand so the generated SQL keeps the tree's grouping."""
    if isinstance(expression, (exp.Binary, exp.Neg)) and not isinstance(expression, exp.Dot):
        return exp.Paren(this=expression)
    return expression


def _never_null(expr: object) -> bool:
    if isinstance(expr, (ast.Number, ast.String, ast.Boolean, ast.Now, ast.Ago, ast.Duration)):
        return True
    if isinstance(expr, ast.Aggregate):
        return expr.func in _COUNT_LIKE
    return False


def _cte(name: str, select: exp.Expr) -> exp.CTE:
    return exp.CTE(this=select, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=True)))


def table_ref(name: str, alias: str | None = None, cte: bool = False) -> exp.Table:
    """A table by the name segql.toml gives (``schema.table`` allowed), or a CTE by name."""
    parts = [name] if cte else name.split(".")
    table = exp.Table(
        this=exp.to_identifier(parts[-1], quoted=True),
        db=exp.to_identifier(parts[-2], quoted=True) if len(parts) > 1 else None,
        catalog=exp.to_identifier(parts[-3], quoted=True) if len(parts) > 2 else None,
    )
    if alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    return table


def _edges(rank: str) -> str:
    """The CTE of one population function's bucket edges."""
    return f"segql_edges_{rank}"


def _edge(rank: str, k: int) -> str:
    """An edge column, named by population function: edges CTEs of one stage are joined
    together, so their columns need distinct names."""
    return f"edge_{k}__{rank}"


def _alias(expression: exp.Expr, name: str) -> exp.Alias:
    """``expression AS "name"``, without sqlglot's defensive copy of the expression."""
    return exp.Alias(this=expression, alias=exp.Identifier(this=name, quoted=True))


def _join(
    select: exp.Select,
    table: exp.Expr,
    on: exp.Expr | None = None,
    side: str | None = None,
    kind: str | None = None,
) -> exp.Select:
    """Append a join (sqlglot's builder parses its join type from text on every call)."""
    select.append("joins", exp.Join(this=table, on=on, side=side, kind=kind))
    return select


def _entity_alias(column: str) -> str:
    return f"p_{column}"


def _row_alias(column: str) -> str:
    return f"c_{column}"


def _person_alias(column: str) -> str:
    return f"person_{column}"
