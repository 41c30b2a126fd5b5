"""Names of the plan's columns, derived from what each computes.

``count__video_rendered__30day`` is the count of ``video_rendered`` in the last 30 days,
whatever else the rules hold: a new rule elsewhere does not rename it (numbers taken in
traversal order renamed every later column of every golden file). Where the readable part
cannot say it all (a filter, a date range, a long or non-identifier name), a short hash of
the definition follows, so two different computations never share a name. Names stay
short enough for every warehouse's identifiers (PostgreSQL: 63 bytes) with a CTE prefix.
"""

from __future__ import annotations

import hashlib
import re

from segql.language import ast

_LONGEST = 38  # readable part; with the hash, a clash suffix and segql_distinct_, <= 63
_UNSAFE = re.compile(r"[^a-z0-9_]+")


def column_name(parts: list[str], definition: object, exact: bool = True) -> str:
    """``parts`` joined by ``__``; a hash of ``definition`` (its repr: spans are left out of
    the AST's repr) follows unless the parts say exactly what it computes."""
    slugs = [_UNSAFE.sub("_", part.lower()).strip("_") or "x" for part in parts]
    lossy = not exact or slugs != parts
    text = "__".join(slugs)
    if len(text) > _LONGEST:
        text, lossy = text[:_LONGEST].rstrip("_"), True
    if not lossy:
        return text
    digest = hashlib.sha1(repr(definition).encode()).hexdigest()[:6]
    return f"{text}_{digest}"


def aggregate_name(aggregate: ast.Aggregate) -> str:
    """``count__purchase__90day``, ``sum__purchase__amount``, ``max__any__price_1a2b3c``."""
    spec = aggregate.spec
    parts = [aggregate.func, spec.ref or "any"]
    if aggregate.prop is not None:
        parts.append(aggregate.prop)
    exact = spec.where is None
    if isinstance(spec.window, ast.WindowWithin):
        parts.append(duration_name(spec.window.duration))
    elif spec.window is not None:
        exact = False
    parts += v2_name_parts(aggregate)
    return column_name(parts, aggregate, exact)


def v2_name_parts(aggregate: ast.Aggregate) -> list[str]:
    """What the repr leaves out of a v2 aggregate: ``among last N``, a streak's period,
    a calendar window (``this_month``, ``prev3_month``)."""
    parts = []
    window = aggregate.spec.window
    if isinstance(window, ast.WindowPeriod):
        parts.append(f"this_{window.unit}" if window.previous == 0 else
                     f"prev{window.previous}_{window.unit}")  # fmt: skip
    if aggregate.spec.last is not None:
        parts.append(f"last{aggregate.spec.last}")
    if aggregate.period is not None:
        parts.append(aggregate.period)
    return parts


def funnel_name(funnel: ast.Funnel) -> str:
    """``funnel__signup__trial__purchase_1a2b3c`` (always hashed: the steps' windows)."""
    refs = [funnel.first.ref or "any", *(step.spec.ref or "any" for step in funnel.steps)]
    head = "funnel_not" if funnel.negated else "funnel"
    return column_name([head, *refs], funnel, exact=False)


def sequence_name(sequence: ast.Sequence) -> str:
    """``did__trial_started__then__purchase`` (hashed: filters, windows, ``within``)."""
    parts = ["did_not" if sequence.negated else "did", sequence.first.ref or "any"]
    parts += ["then", sequence.then.ref or "any"]
    exact = all(s.where is None and s.window is None for s in (sequence.first, sequence.then))
    if sequence.within is not None:
        parts += ["within", duration_name(sequence.within)]
    return column_name(parts, sequence, exact)


def population_name(call: ast.Call) -> str:
    """``ntile_5_3f2a1b``: the function, its bucket count, a hash of its argument."""
    head = call.func
    if call.func in ("ntile", "qcut") and isinstance(call.args[0], ast.Number):
        head = f"{call.func}_{call.args[0].value}"
    return column_name([head], call, exact=False)


def duration_name(duration: ast.Duration) -> str:
    return f"{duration.amount}{duration.unit}"
