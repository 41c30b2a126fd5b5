"""Trait values of some people at an as-of time, with the compiler's own query.

The compiler builds person columns for every trait a segment reads; this asks it for
the traits alone and selects them, for the people named, instead of a membership.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlglot import exp

from segql.compile import compiler
from segql.compile.dialect import get_dialect


def trait_values_query(
    project: Any,
    dialect: str,
    traits: Sequence[str],
    as_of: datetime | None,
    people: Sequence[str],
) -> exp.Select:
    """``SELECT person_id, <trait>...`` at ``as_of`` (now when None) for ``people``."""
    from segql.timeutil import utc_now

    project.check()
    builder = compiler.QueryBuilder(  # the compiler's stages, without a segment on top
        project.analyzer, get_dialect(dialect), as_of or utc_now(), compiler.QueryOptions()
    )
    columns = [builder.trait_column(name) for name in traits]
    ctes = builder.base_ctes()
    last = builder.stage_ctes(ctes)
    person = exp.column(compiler.PERSON_ID, quoted=True)
    select = exp.select(
        exp.cast(person, "VARCHAR"),
        *(
            exp.alias_(exp.column(c, quoted=True), n, quoted=True)
            for c, n in zip(columns, traits, strict=True)
        ),
    ).from_(exp.to_identifier(last, quoted=True))
    select = select.where(
        exp.In(
            this=exp.cast(person.copy(), "VARCHAR"),
            expressions=[exp.Literal.string(p) for p in people],
        )
    )
    select.set("with_", exp.With(expressions=ctes))
    return select
