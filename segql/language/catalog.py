"""What the warehouse holds: tables, their columns, and each column's kind of value.

segql needs only five kinds of value (``number``, ``string``, ``boolean``, ``time``,
``json``); every warehouse type maps to one of them, or to ``any`` when it is unfamiliar.
A catalog can be ``unknown`` (no warehouse reachable): then every name is taken on trust.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

ValueType = Literal["number", "string", "boolean", "time", "json", "duration", "null", "any"]

_TYPE_PATTERNS: tuple[tuple[str, ValueType], ...] = (
    (r"^(timestamp|datetime|date|time with|timestamptz)", "time"),
    (r"^(json|jsonb|variant|object|struct|map)", "json"),
    (r"^(bool|boolean|logical)", "boolean"),
    (
        r"^(tinyint|smallint|int|integer|bigint|hugeint|ubigint|uinteger|usmallint|utinyint|"
        r"uhugeint|int2|int4|int8|float|float4|float8|double|real|decimal|numeric|number|"
        r"serial|bigserial|smallserial|money|fixed)",
        "number",
    ),
    (r"^(varchar|char|character|text|string|bpchar|nvarchar|nchar|clob|uuid|enum|name)", "string"),
)


# Time types that hold an instant (a point on the UTC time line) rather than a naive wall
# clock: compared with instants, never with naive values (which the engine would read in
# the session's time zone). Spark's plain TIMESTAMP is one too (TIMESTAMP_NTZ is naive).
_INSTANT_TYPES = (
    r"^(timestamp\s*(\(\d+\))?\s*with\s+(local\s+)?time\s+zone|timestamptz|"
    r"timestamp_?ltz|timestamp_?tz|time\s+with)"
)
_INSTANT_ALONE = {"spark": r"^timestamp\s*$"}


def holds_instants(sql_type: str, dialect: str | None = None) -> bool:
    """Whether a warehouse time type holds instants (``TIMESTAMPTZ``, ``TIMESTAMP_LTZ``,
    ``TIMESTAMP_TZ``, Spark's ``TIMESTAMP``) rather than naive UTC times."""
    text = sql_type.strip().lower()
    alone = _INSTANT_ALONE.get(dialect or "")
    return bool(re.match(_INSTANT_TYPES, text) or (alone and re.match(alone, text)))


def value_type(sql_type: str) -> ValueType:
    """The kind of value of a warehouse column type (``BIGINT``, ``TIMESTAMP WITH TIME ZONE``)."""
    text = sql_type.strip().lower()
    for pattern, kind in _TYPE_PATTERNS:
        if re.match(pattern, text):
            return kind
    return "any"


@dataclass(frozen=True)
class Catalog:
    """Columns of the tables segql reads, keyed by the table name as segql.toml writes it.

    ``unique``: per table, the columns the warehouse guarantees unique on their own (an
    enforced PRIMARY KEY or UNIQUE constraint); the compiler then skips merging duplicates.
    ``instants``: per table, the time columns whose type holds instants (``TIMESTAMPTZ``);
    the other time columns hold naive UTC times.
    """

    tables: Mapping[str, Mapping[str, ValueType]] | None = field(default_factory=dict)
    unique: Mapping[str, frozenset[str]] = field(default_factory=dict)
    instants: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def unknown(cls) -> Catalog:
        return cls(tables=None)

    @classmethod
    def from_columns(
        cls,
        tables: Mapping[str, Iterable[tuple[str, str]]],
        unique: Mapping[str, Iterable[str]] | None = None,
        dialect: str | None = None,
    ) -> Catalog:
        """Build from ``{table: [(column, sql_type), ...]}`` and ``{table: unique columns}``;
        ``dialect``: the warehouse that named the types (Spark's ``TIMESTAMP`` is an instant)."""
        tables = {t: list(cols) for t, cols in tables.items()}
        return cls(
            {t: {c: value_type(sql) for c, sql in cols} for t, cols in tables.items()},
            {t: frozenset(cols) for t, cols in (unique or {}).items()},
            {
                t: frozenset(c for c, sql in cols if holds_instants(sql, dialect))
                for t, cols in tables.items()
            },
        )

    @property
    def is_known(self) -> bool:
        return self.tables is not None

    def has_table(self, table: str) -> bool:
        return self.tables is None or table in self.tables

    def columns(self, table: str) -> Mapping[str, ValueType] | None:
        """The columns of a table, or None when the catalog is unknown."""
        if self.tables is None:
            return None
        return self.tables.get(table, {})

    def without_keys(self) -> Catalog:
        """The same columns, no unique keys assumed."""
        return Catalog(self.tables, instants=self.instants)

    def holds_instants(self, table: str, column: str) -> bool:
        """Whether a time column holds instants (False: naive UTC, or not known)."""
        return column in self.instants.get(table, ())

    def is_unique(self, table: str, column: str) -> bool:
        """Whether the warehouse guarantees no two rows share a value of the column."""
        return column in self.unique.get(table, ())

    def column_type(self, table: str, column: str) -> ValueType | None:
        """The column's kind, ``any`` on an unknown catalog, None when it does not exist."""
        columns = self.columns(table)
        if columns is None:
            return "any"
        return columns.get(column)
