"""Warehouse dialects: the data in ``dialects/*.toml`` and the few rewrites it names.

The compiler emits sqlglot expressions and asks the dialect only where warehouses
disagree on meaning (not spelling, which sqlglot handles): how to read seconds since the
epoch, how to cast text that may not convert, how to search with a regular expression,
how to round. A new warehouse is a new TOML file; a new rewrite is a new entry in one of
the small tables below.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import ClassVar

from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.generators.spark import SparkGenerator

from segql.errors import SegqlError
from segql.timeutil import format_timestamp, parse_sql_timestamp, shift_time

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Builder = Callable[[exp.Expr], exp.Expr]
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
    # The unit that truncates a time to its ISO week (Monday first): BigQuery's WEEK starts
    # on Sunday, its ISOWEEK on Monday.
    iso_week_unit: str = "WEEK"
    # One GROUP BY pass per merged guard of a source's aggregates (the last 90 days; every
    # purchase), each joined to the people, instead of one pass over the rows of them all.
    pass_per_guard: bool = False
    # How a naive UTC time becomes an instant and back, whatever the session's time zone
    # (``_INSTANT``/``_NAIVE`` below): ``AT TIME ZONE 'UTC'``, or through epoch numbers.
    instants: str = "at_time_zone"
    # How a JSON key is named: "jsonpath" ($."key", written by sqlglot for each warehouse),
    # "pointer" (RFC 6901 '/key', ~ and / escaped): DuckDB reads a quote or a backslash
    # in a JSONPath key as another key, or refuses it; a pointer names any key exactly; or
    # "struct" (Spark: FROM_JSON(p, 'struct<`key`: string>').`key`): Spark's JSONPath has no
    # escape, so '$['a'b']' and '$['*']' read nothing; a struct field names any key, and
    # reads the last of a key written twice, as PostgreSQL and the reference do.
    json_key: str = "jsonpath"
    # How a text properties column is checked to hold JSON before a key is read from it
    # (``_JSON_GUARDS`` below): a malformed value is null for its row instead of failing
    # the run. "none" where the engine's own extraction already gives null.
    json_guard: str = "none"
    # Whether a key written twice in one JSON object must be looked up as the last one:
    # DuckDB's extraction reads the first, PostgreSQL (json and jsonb) and the reference the
    # last. Only rows whose text holds the quoted key twice take the slower lookup.
    json_last_duplicate: bool = False
    # How bucket() reads the first eight hex digits of the md5 as a number: "positions" (each
    # digit's place in '0123456789abcdef', summed: the same SQL everywhere) or "hex_cast"
    # (DuckDB's CAST('0x' || digits AS UBIGINT): the same number, 2.5x faster there).
    hex_digits: str = "positions"

    def epoch_seconds(self, time: exp.Expr, instant: bool = True) -> exp.Expr:
        """Seconds since 1970 as a number with fractions (a naive time read as UTC)."""
        if not instant and self.instants == "spark":  # UNIX_MICROS takes an instant only
            return exp.Div(this=_spark_naive_micros(time), expression=exp.Literal.number(1e6))
        return _EPOCH[self.epoch](time)

    # --- times: naive UTC values, and instants (TIMESTAMPTZ, _LTZ, _TZ) ---------------------

    def naive_time(self, value: exp.Expr) -> exp.Expr:
        """Text (or a bind parameter) of a UTC wall-clock time as a naive timestamp:
        ``TIMESTAMP_NTZ`` where ``TIMESTAMP`` alone is an instant or follows a setting."""
        return exp.cast(value, TYPE.TIMESTAMPNTZ, copy=False)

    def time_literal(self, moment: datetime, instant: bool = False) -> exp.Expr:
        """A UTC time as a literal: naive, or an instant with its ``+00:00`` offset."""
        if instant:
            text = exp.Literal.string(format_timestamp(moment) + "+00:00")
            return exp.cast(text, TYPE.TIMESTAMPTZ, copy=False)
        return self.naive_time(exp.Literal.string(format_timestamp(moment)))

    def as_instant(self, naive: exp.Expr) -> exp.Expr:
        """A naive UTC time as the same instant. A literal (or a literal shifted by a
        duration) folds to an instant literal; anything else converts in SQL, never
        through the session's time zone."""
        moment = _folded(naive)
        if moment is not None:
            return self.time_literal(moment, instant=True)
        return _INSTANT[self.instants](naive)

    def as_naive(self, instant: exp.Expr) -> exp.Expr:
        """An instant as its naive UTC wall-clock time."""
        return _NAIVE[self.instants](instant)

    def wall_time(self, time: exp.Expr, instant: bool, zone: str) -> exp.Expr:
        """A time as the naive wall-clock time in ``zone``, for calendar days, weeks and
        months taken there (never in the session's zone)."""
        if instant and self.instants == "at_time_zone":
            return _at_time_zone(time, zone)
        naive = self.as_naive(time) if instant else time
        if zone == "UTC":
            return naive
        return exp.ConvertTimezone(
            source_tz=exp.Literal.string("UTC"), target_tz=exp.Literal.string(zone), timestamp=naive
        )

    def try_cast(self, value: exp.Expr, to: str) -> exp.Expr:
        """Text to ``DOUBLE``/``BOOLEAN``/``TIMESTAMP``, null where it does not convert.

        Booleans are ``true`` and ``false`` alone (any case, spaces around), the same on
        every warehouse: their casts disagree on ``'yes'``, ``'on'`` or ``'1'``."""
        if to == "BOOLEAN":
            return _boolean_text(value)
        if to == "TIMESTAMP":  # a naive UTC time; Spark's TIMESTAMP is an instant
            return _SAFE_CAST[self.safe_cast](value, "TIMESTAMPNTZ")
        return _SAFE_CAST[self.safe_cast](value, to)

    def nan_as_null(self, number: exp.Expr) -> exp.Expr:
        """A numeric column's value with NaN read as null: NaN sorts above every number on
        DuckDB and PostgreSQL, so ``> 100``, max() and ntile() would pick it. Every engine
        here takes NaN as equal to itself; the CASE keeps the column's own type."""
        nan = exp.cast(exp.Literal.string("NaN"), TYPE.DOUBLE, copy=False)
        is_nan = exp.EQ(this=number.copy(), expression=nan)
        return exp.Case(ifs=[exp.If(this=is_nan, true=exp.null())], default=number)

    def json_text(self, document: exp.Expr, key: str) -> exp.Expr:
        """The value of ``key`` in a JSON object as text (strings unquoted); null if absent."""
        if self.json_key == "struct":
            return _struct_field(document, key)
        path: exp.Expr
        if self.json_key == "pointer":
            path = exp.Literal.string("/" + key.replace("~", "~0").replace("/", "~1"))
        else:
            path = exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this=key)])
        value = exp.JSONExtractScalar(this=document, expression=path, only_json_types=True)
        if self.json_last_duplicate:
            return _last_duplicate(document, key, value)
        return value

    def valid_json(self, text: exp.Expr) -> exp.Expr | None:
        """True where a text value is a well-formed JSON object (false where it is malformed,
        an array or a scalar); None where the dialect has no test for it."""
        guard = _JSON_GUARDS.get(self.json_guard)
        return guard(text.copy()) if guard else None

    def json_or_null(self, text: exp.Expr) -> exp.Expr:
        """A text properties value, or null where it is not a well-formed JSON object."""
        valid = self.valid_json(text)
        if valid is None:
            return text
        if self.json_guard == "is_json":  # ->> reads json or jsonb, not text
            text = exp.cast(text, TYPE.JSONB, copy=False)
        return exp.Case(ifs=[exp.If(this=valid, true=text)])

    def regex_search(self, value: exp.Expr, pattern: exp.Expr) -> exp.Expr:
        """True where the pattern is found anywhere in the value."""
        if self.regex == "instr":
            position = exp.Anonymous(this="REGEXP_INSTR", expressions=[value, pattern])
            return exp.GT(this=position, expression=exp.Literal.number(0))
        return exp.RegexpLike(this=value, expression=pattern)

    def round_half_away(self, value: exp.Expr, digits: exp.Expr) -> exp.Expr:
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

_UTC = exp.Literal.string("UTC")
_SPARK_EPOCH = "1970-01-01 00:00:00"


def _spark_utc_wall_clock(instant: exp.Expr) -> exp.Expr:
    """The ``TIMESTAMP_NTZ`` of an instant's UTC wall clock: its epoch microseconds added
    to 1970-01-01. Spark 3.5's TIMESTAMPADD takes an INT quantity (epoch microseconds
    overflowed it), so whole minutes are added first, then the microseconds left over."""
    per_minute = exp.Literal.number(60_000_000)
    micros = exp.Anonymous(this="UNIX_MICROS", expressions=[instant])
    left_over = exp.Anonymous(this="PMOD", expressions=[micros, per_minute])
    whole_micros = exp.Paren(this=micros.copy() - left_over.copy())
    minutes = exp.cast(exp.Div(this=whole_micros, expression=per_minute.copy()), "INT")
    epoch = exp.cast(exp.Literal.string(_SPARK_EPOCH), TYPE.TIMESTAMPNTZ, copy=False)
    whole = exp.Anonymous(this="TIMESTAMPADD", expressions=[exp.var("MINUTE"), minutes, epoch])
    return exp.Anonymous(
        this="TIMESTAMPADD", expressions=[exp.var("MICROSECOND"), left_over.copy(), whole]
    )


def _spark_naive_micros(naive: exp.Expr) -> exp.Expr:
    """Microseconds since 1970 of a Spark ``TIMESTAMP_NTZ`` read as UTC."""
    epoch = exp.cast(exp.Literal.string(_SPARK_EPOCH), TYPE.TIMESTAMPNTZ, copy=False)
    return exp.TimestampDiff(this=naive, expression=epoch, unit=exp.var("MICROSECOND"))


def _folded(naive: exp.Expr) -> datetime | None:
    """The time of a naive literal, or of one shifted by a literal duration; else None."""
    if isinstance(naive, exp.Cast) and isinstance(naive.this, exp.Literal):
        return parse_sql_timestamp(naive.this.name)
    if isinstance(naive, (exp.DateAdd, exp.DateSub)) and isinstance(naive.expression, exp.Literal):
        start = _folded(naive.this)
        if start is None:
            return None
        sign = -1 if isinstance(naive, exp.DateSub) else 1
        amount = int(naive.expression.to_py())
        return shift_time(start, amount, naive.text("unit").lower() or "day", sign)
    return None


def _at_time_zone(time: exp.Expr, zone: str) -> exp.Expr:
    """``(time AT TIME ZONE 'zone')``, parenthesized both ways: the operator binds looser
    than ``+ INTERVAL`` on either side of it."""
    if not isinstance(time, (exp.Column, exp.Cast, exp.Paren, exp.Anonymous)):
        time = exp.Paren(this=time)
    return exp.Paren(this=exp.AtTimeZone(this=time, zone=exp.Literal.string(zone)))


_INSTANT: dict[str, Builder] = {
    # A naive TIMESTAMP AT TIME ZONE 'UTC' is the TIMESTAMPTZ of that UTC wall clock.
    "at_time_zone": lambda t: _at_time_zone(t, "UTC"),
    # Snowflake: an NTZ would become an instant in the session's zone; from epoch
    # microseconds, TO_TIMESTAMP_TZ is that instant (in UTC).
    "snowflake": lambda t: exp.Anonymous(
        this="TO_TIMESTAMP_TZ",
        expressions=[
            exp.Anonymous(this="DATE_PART", expressions=[exp.var("EPOCH_MICROSECOND"), t]),
            exp.Literal.number(6),
        ],
    ),
    "spark": lambda t: exp.Anonymous(this="TIMESTAMP_MICROS", expressions=[_spark_naive_micros(t)]),
    "trino": lambda t: exp.Anonymous(this="WITH_TIMEZONE", expressions=[t, _UTC.copy()]),
    "bigquery": lambda t: exp.Anonymous(this="TIMESTAMP", expressions=[t, _UTC.copy()]),
}

_NAIVE: dict[str, Builder] = {
    "at_time_zone": lambda t: _at_time_zone(t, "UTC"),
    # CONVERT_TIMEZONE('UTC', t) is a TIMESTAMP_TZ at +00:00: as NTZ, its UTC wall clock.
    "snowflake": lambda t: exp.cast(
        exp.Anonymous(this="CONVERT_TIMEZONE", expressions=[_UTC.copy(), t]),
        TYPE.TIMESTAMPNTZ,
        copy=False,
    ),
    # TIMESTAMP -> TIMESTAMP_NTZ casts in the session's zone: add the epoch micros instead.
    "spark": lambda t: _spark_utc_wall_clock(t),
    "trino": lambda t: exp.cast(
        exp.AtTimeZone(this=t, zone=_UTC.copy()), TYPE.TIMESTAMP, copy=False
    ),
    "bigquery": lambda t: exp.Anonymous(this="DATETIME", expressions=[t, _UTC.copy()]),
}

_JSON_GUARDS: dict[str, Builder] = {
    # DuckDB: JSON_VALID(x) parses without failing; JSON_TYPE only once it is valid.
    "json_valid": lambda t: exp.Case(
        ifs=[
            exp.If(
                this=exp.Anonymous(this="JSON_VALID", expressions=[t]),
                true=exp.EQ(
                    this=exp.Anonymous(this="JSON_TYPE", expressions=[t.copy()]),
                    expression=exp.Literal.string("OBJECT"),
                ),
            )
        ],
        default=exp.false(),
    ),
    # PostgreSQL 16+: the SQL/JSON predicate.
    "is_json": lambda t: exp.Is(this=t, expression=exp.JSON(this=exp.var("OBJECT"))),
    # Snowflake: TRY_PARSE_JSON is null for malformed text.
    # Snowflake: TRY_PARSE_JSON is null for malformed text (an array or a scalar passes:
    # JSON_EXTRACT_PATH_TEXT reads no key from it).
    "try_parse_json": lambda t: exp.Not(
        this=exp.Is(this=exp.ParseJSON(this=t, safe=True), expression=exp.null())
    ),
}


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _struct_field(document: exp.Expr, key: str) -> exp.Expr:
    """Spark: ``FROM_JSON(p, 'struct<`key`: string>').`key```, the key's value as text
    (objects and arrays as their JSON text, numbers as written, JSON null as null); null
    where the text is not a JSON object."""
    field = "`" + key.replace("`", "``") + "`"
    schema = exp.Literal.string(f"struct<{field}: string>")
    parsed = _call("FROM_JSON", document, schema)
    return exp.Dot(this=parsed, expression=exp.to_identifier(key, quoted=True))


def _like_literal(text: str) -> str:
    """``text`` matched literally by LIKE ... ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _last_duplicate(document: exp.Expr, key: str, first: exp.Expr) -> exp.Expr:
    """DuckDB: the value of the last ``key`` where the document's text holds the quoted key
    again after its first place (a key written with other escapes is not seen as one),
    found among ``JSON_KEYS`` and the values ``$.*`` in the same order; else ``first``.
    ``CASE WHEN CAST(p AS TEXT) LIKE '%"k"%"k"%' THEN ... ELSE p ->> '/k' END``."""
    quoted = json.dumps(key, ensure_ascii=False)
    pattern = "%" + _like_literal(quoted) + "%" + _like_literal(quoted) + "%"
    text = exp.cast(document.copy(), TYPE.VARCHAR, copy=False)
    again = exp.Escape(
        this=exp.Like(this=text, expression=exp.Literal.string(pattern)),
        expression=exp.Literal.string("\\"),
    )
    keys = _call("JSON_KEYS", document.copy())
    from_end = _call("LIST_POSITION", _call("LIST_REVERSE", keys), exp.Literal.string(key))
    index = exp.Sub(
        this=exp.Add(this=_call("LEN", keys.copy()), expression=exp.Literal.number(1)),
        expression=from_end,
    )
    values = _call("JSON_EXTRACT_STRING", document.copy(), exp.Literal.string("$.*"))
    last = _call("LIST_EXTRACT", values, index)
    return exp.Case(ifs=[exp.If(this=again, true=last)], default=first)


_NUMBER_TEXT = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_TIME_TEXT = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?\s*$"
_GUARDS = {"DOUBLE": _NUMBER_TEXT, "TIMESTAMPNTZ": _TIME_TEXT}


def _boolean_text(value: exp.Expr) -> exp.Expr:
    """``CASE LOWER(TRIM(value)) WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END``."""
    word = exp.Lower(this=exp.Trim(this=exp.cast(value, TYPE.VARCHAR, copy=False)))
    ifs = [
        exp.If(this=exp.Literal.string(text), true=exp.Boolean(this=text == "true"))
        for text in ("true", "false")
    ]
    return exp.Case(this=word, ifs=ifs)


def _guarded_cast(value: exp.Expr, to: str) -> exp.Expr:
    """``CASE WHEN value ~* pattern THEN CAST(value AS to) END`` for warehouses without TRY_CAST."""
    looks_right = exp.RegexpILike(this=value, expression=exp.Literal.string(_GUARDS[to]))
    return exp.Case(ifs=[exp.If(this=looks_right, true=exp.cast(value, to))])


_SAFE_CAST: dict[str, Callable[[exp.Expr, str], exp.Expr]] = {
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
            number = amount.to_py()
            assert not isinstance(number, str), number  # a number literal
            amount = exp.Literal.number(-number)
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

    TRANSFORMS: ClassVar[dict[type[exp.Expr], Callable[..., str]]] = {
        **{k: v for k, v in SparkGenerator.TRANSFORMS.items() if k is not exp.WithinGroup},
        exp.DateAdd: _timestamp_add,
        exp.DateSub: _timestamp_add,
    }


class SegqlSpark(Spark):
    """The sqlglot dialect of segql's ``spark`` (registered by sqlglot as ``segqlspark``)."""

    Generator = SegqlSparkGenerator


def dialect_dirs() -> list[Path]:
    """Where dialect files live: inside the installed package, or the source tree."""
    package = Path(__file__).resolve().parents[1]
    return [package / "_data" / "dialects", package.parent / "dialects"]


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
