"""``bucket(n[, 'salt'])`` as SQL (language.md 9.5): the same number on every warehouse.

The bucket is ``int(first 8 hex digits of md5(salt || ':' || id_text), 16) mod n``. Every
warehouse has ``MD5`` (sqlglot writes BigQuery's and Trino's as the hex of the digest), but
each reads hex digits into a number its own way (``'x'||h::bit(32)`` on PostgreSQL, ``CONV``
on Spark, ``TO_NUMBER(h, 'XXXXXXXX')`` on Snowflake, ``FROM_BASE`` on Trino), some of them
signed. So the digits are read here one at a time, with the position of each in
``'0123456789abcdef'``: one expression, the same on every dialect, that cannot overflow
(it stays below 2^32 in a BIGINT). A dialect may say it has an exact cast of hex text to
an unsigned number (``hex_digits = "hex_cast"``: DuckDB), which is faster.
"""

from __future__ import annotations

import hashlib

from sqlglot import exp

from segql.compile.dialect import TYPE

HEX_DIGITS = "0123456789abcdef"
DIGITS_READ = 8


def bucket_of(person_id: object, salt: str, buckets: int) -> int:
    """The bucket in Python, as the reference evaluator and the tests compute it."""
    digest = hashlib.md5(f"{salt}:{id_text(person_id)}".encode()).hexdigest()
    return int(digest[:DIGITS_READ], 16) % buckets


def id_text(person_id: object) -> str:
    """An id as text: an integer in decimal (with its sign when negative), text as stored."""
    return str(person_id)


def digest_hex(person: exp.Expr, salt: str) -> exp.Expr:
    """``LOWER(MD5(salt || ':' || CAST(person AS VARCHAR)))``."""
    text = exp.cast(person, TYPE.VARCHAR, copy=False)
    keyed = exp.Concat(expressions=[exp.Literal.string(f"{salt}:"), text])
    return exp.Lower(this=exp.MD5(this=keyed))


def bucket_from_hex(digest: exp.Expr, buckets: int, hex_digits: str = "positions") -> exp.Expr:
    """The first eight hex digits of ``digest`` as a number, ``mod buckets``; ``hex_digits``
    is the dialect's way to read them (``Dialect.hex_digits``)."""
    count = exp.Literal.number(buckets)
    if hex_digits == "hex_cast":
        first = exp.Substring(
            this=digest, start=exp.Literal.number(1), length=exp.Literal.number(DIGITS_READ)
        )
        hex_text = exp.Concat(expressions=[exp.Literal.string("0x"), first])
        number = exp.cast(hex_text, TYPE.UBIGINT, copy=False)
        return exp.Mod(this=number, expression=count)
    total: exp.Expr | None = None
    for index in range(DIGITS_READ):
        digit = exp.Substring(
            this=digest.copy(),
            start=exp.Literal.number(index + 1),
            length=exp.Literal.number(1),
        )
        position = exp.StrPosition(this=exp.Literal.string(HEX_DIGITS), substr=digit)
        value = exp.cast(
            exp.Sub(this=position, expression=exp.Literal.number(1)), TYPE.BIGINT, copy=False
        )
        weight = 16 ** (DIGITS_READ - 1 - index)
        term: exp.Expr = (
            value if weight == 1 else exp.Mul(this=value, expression=exp.Literal.number(weight))
        )
        total = term if total is None else exp.Add(this=total, expression=term)
    assert total is not None
    return exp.Mod(this=exp.Paren(this=total), expression=count)
