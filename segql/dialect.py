"""Warehouse dialects: the data in ``dialects/*.toml`` and the few rewrites it names.

The compiler emits sqlglot expressions and asks the dialect only where warehouses
disagree on meaning (not spelling, which sqlglot handles): how to read seconds since the
epoch, how to cast text that may not convert, how to search with a regular expression,
how to round. A new warehouse is a new TOML file; a new rewrite is a new entry in one of
the small tables below.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator

from segql.errors import SegqlError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Builder = Callable[[exp.Expression], exp.Expression]
# sqlglot type names as enums: a type given as text is parsed on every use
TYPE = exp.DataType.Type


@dataclass(frozen=True)
class Dialect:
    """What segql needs to know about one warehouse's SQL."""

    name: str
    sqlglot: str
    description: str = ""
    aggregate_filter: bool = True
    materialize_ctes: bool = False
    epoch: str = "function"
    safe_cast: str = "try_cast"
    regex: str = "search"
    round: str = "native"
    inline_source_rows: bool = False
    # active_days/weeks/months over a short window as BIT_COUNT(BIT_OR(1 << period)) in
    # the shared aggregate pass, instead of a COUNT(DISTINCT ...) of its own.
    distinct_bitmap: bool = False
    # ntile from the values where the buckets step up (a sorted list of everybody's value)
    # instead of COUNT(...) OVER (ORDER BY ...), a window that sorts every person's row.
    ntile_edges: bool = False
    # One GROUP BY pass per merged guard of a source's aggregates (the last 90 days; every
    # purchase), each joined to the people, instead of one pass over the rows of them all.
    pass_per_guard: bool = False

    def epoch_seconds(self, time: exp.Expression) -> exp.Expression:
        """Seconds since 1970 as a number with fractions."""
        return _EPOCH[self.epoch](time)

    def try_cast(self, value: exp.Expression, to: str) -> exp.Expression:
        """Text to ``DOUBLE``/``BOOLEAN``/``TIMESTAMP``, null where it does not convert.

        Booleans are ``true`` and ``false`` alone (any case, spaces around), the same on
        every warehouse: their casts disagree on ``'yes'``, ``'on'`` or ``'1'``."""
        if to == "BOOLEAN":
            return _boolean_text(value)
        return _SAFE_CAST[self.safe_cast](value, to)

    def regex_search(self, value: exp.Expression, pattern: exp.Expression) -> exp.Expression:
        """True where the pattern is found anywhere in the value."""
        if self.regex == "instr":
            position = exp.Anonymous(this="REGEXP_INSTR", expressions=[value, pattern])
            return exp.GT(this=position, expression=exp.Literal.number(0))
        return exp.RegexpLike(this=value, expression=pattern)

    def round_half_away(self, value: exp.Expression, digits: exp.Expression) -> exp.Expression:
        if self.round == "numeric":
            value = exp.cast(value, TYPE.DECIMAL, copy=False)
            return exp.cast(exp.Round(this=value, decimals=digits), TYPE.DOUBLE, copy=False)
        return exp.Round(this=value, decimals=digits)


_EPOCH: dict[str, Builder] = {
    "function": lambda t: exp.Anonymous(this="EPOCH", expressions=[t]),
    "extract": lambda t: exp.Extract(this=exp.var("EPOCH"), expression=t),
    "microseconds": lambda t: exp.Div(
        this=exp.Anonymous(this="DATE_PART", expressions=[exp.var("EPOCH_MICROSECOND"), t]),
        expression=exp.Literal.number(1_000_000),
    ),
    # Spark, Databricks: UNIX_TIMESTAMP(t) drops the fraction; UNIX_MICROS(t) keeps it.
    "unix_micros": lambda t: exp.Div(
        this=exp.Anonymous(this="UNIX_MICROS", expressions=[t]),
        expression=exp.Literal.number(1_000_000),
    ),
    # BigQuery: UNIX_MICROS takes a TIMESTAMP; the compiled times are DATETIME values.
    "bigquery_micros": lambda t: exp.Div(
        this=exp.Anonymous(
            this="UNIX_MICROS", expressions=[exp.Anonymous(this="TIMESTAMP", expressions=[t])]
        ),
        expression=exp.Literal.number(1_000_000),
    ),
    # Trino: TO_UNIXTIME(t) is seconds with fractions, for a TIMESTAMP read as UTC.
    "to_unixtime": lambda t: exp.Anonymous(
        this="TO_UNIXTIME",
        expressions=[
            exp.Anonymous(this="WITH_TIMEZONE", expressions=[t, exp.Literal.string("UTC")])
        ],
    ),
}

_NUMBER_TEXT = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_TIME_TEXT = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?\s*$"
_GUARDS = {"DOUBLE": _NUMBER_TEXT, "TIMESTAMP": _TIME_TEXT}


def _boolean_text(value: exp.Expression) -> exp.Expression:
    """``CASE LOWER(TRIM(value)) WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END``."""
    word = exp.Lower(this=exp.Trim(this=exp.cast(value, TYPE.VARCHAR, copy=False)))
    ifs = [
        exp.If(this=exp.Literal.string(text), true=exp.Boolean(this=text == "true"))
        for text in ("true", "false")
    ]
    return exp.Case(this=word, ifs=ifs)


def _guarded_cast(value: exp.Expression, to: str) -> exp.Expression:
    """``CASE WHEN value ~* pattern THEN CAST(value AS to) END`` for warehouses without TRY_CAST."""
    looks_right = exp.RegexpILike(this=value, expression=exp.Literal.string(_GUARDS[to]))
    return exp.Case(ifs=[exp.If(this=looks_right, true=exp.cast(value, to))])


_SAFE_CAST: dict[str, Callable[[exp.Expression, str], exp.Expression]] = {
    # The operand is cast to text first: sqlglot writes a TRY_CAST whose operand it cannot
    # type as text as a plain CAST for Snowflake, which then fails on 'n/a' instead of null.
    # safe=True: without it sqlglot writes Spark's TRY_CAST as CAST, which fails in ANSI mode.
    "try_cast": lambda value, to: exp.TryCast(
        this=exp.cast(value, TYPE.VARCHAR, copy=False), to=exp.DataType.build(to), safe=True
    ),
    "guarded": _guarded_cast,
}


def _timestamp_add(generator: SparkGenerator, expression: exp.DateAdd | exp.DateSub) -> str:
    """``TIMESTAMPADD(unit, n, t)``: keeps the time of day and the timestamp type."""
    amount = expression.expression
    if isinstance(expression, exp.DateSub):
        if isinstance(amount, exp.Literal) and amount.is_number:
            amount = exp.Literal.number(-amount.to_py())
        else:
            amount = exp.Neg(this=exp.Paren(this=amount.copy()))
    unit = exp.var(expression.text("unit").upper() or "DAY")
    return generator.func("TIMESTAMPADD", unit, amount, expression.this)


class SegqlSparkGenerator(SparkGenerator):
    """sqlglot's Spark spelling, except where it changes the meaning of segql's SQL.

    * ``DateAdd``/``DateSub`` of a timestamp: sqlglot writes ``DATE_ADD(t, n)`` and
      ``ADD_MONTHS(t, n)``, which return a ``DATE`` (the time of day is lost);
      ``TIMESTAMPADD(unit, n, t)`` (Spark 3.3+, Databricks) keeps the timestamp.
    * ``PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x)``: sqlglot rewrites it to
      ``PERCENTILE_APPROX``, an approximation; Spark 3.3+ has the exact function.
    """

    TRANSFORMS: ClassVar[dict[type[exp.Expression], Callable[..., str]]] = {
        **{k: v for k, v in SparkGenerator.TRANSFORMS.items() if k is not exp.WithinGroup},
        exp.DateAdd: _timestamp_add,
        exp.DateSub: _timestamp_add,
    }


class SegqlSpark(Spark):
    """The sqlglot dialect of segql's ``spark`` (registered by sqlglot as ``segqlspark``)."""

    Generator = SegqlSparkGenerator


def dialect_dirs() -> list[Path]:
    """Where dialect files live: inside the installed package, or the source tree."""
    here = Path(__file__).resolve().parent
    return [here / "_data" / "dialects", here.parent / "dialects"]


@cache
def available_dialects() -> dict[str, Dialect]:
    """Every dialect file found, by name."""
    found: dict[str, Dialect] = {}
    for folder in dialect_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            found.setdefault(data["name"], Dialect(**data))
    return found


def get_dialect(name: str) -> Dialect:
    dialects = available_dialects()
    if name not in dialects:
        raise SegqlError(
            f"unknown dialect '{name}'", help="dialects: " + ", ".join(sorted(dialects))
        )
    return dialects[name]
