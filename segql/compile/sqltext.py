"""sqlglot expressions to SQL text, failing on anything the dialect cannot express.

sqlglot's default is to warn and write its best guess when a dialect lacks a construct (a
clause dropped, a function left as is). segql only writes SQL here, with the
unsupported-translation level raised to an error: a query that would silently mean
something else on an unverified warehouse is refused instead.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from segql.errors import SegqlError


def generate_sql(
    expression: exp.Expr, dialect: str, pretty: bool = False, copy: bool = True
) -> str:
    """The expression as SQL for one sqlglot dialect; a :class:`SegqlError` when the
    dialect cannot express part of it."""
    try:
        return expression.sql(
            dialect=dialect, pretty=pretty, copy=copy, unsupported_level=ErrorLevel.RAISE
        )
    except UnsupportedError as error:
        raise SegqlError(f"the {dialect} dialect cannot express this query: {error}") from error
