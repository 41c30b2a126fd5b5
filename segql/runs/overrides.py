"""Manual overrides (runtime.md 8.3): people excluded from or included in a segment by hand.

Overrides live in ``segql_overrides``, one row per (segment, person); the segment ``*``
stands for every segment, which makes a global suppression list. A run applies them to the
membership it computed before diffing: an exclusion removes the person, an inclusion adds
them, and an exclusion wins over an inclusion. The changes an override causes are recorded
with the history reason ``manual``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlglot import exp

from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlError
from segql.runs.store import EVERY_SEGMENT, OVERRIDES, Store
from segql.timeutil import format_timestamp, utc_now

Kind = Literal["exclude", "include"]
COLUMNS = ("segment", "person_id", "kind", "reason", "created_at")


@dataclass(frozen=True)
class Overrides:
    """Reads and writes ``segql_overrides`` of one project schema."""

    warehouse: Warehouse
    store: Store

    def add(self, segment: str, people: Sequence[str], kind: Kind, reason: str) -> int:
        """Record the override for each person, replacing one they had for that segment."""
        if kind == "include" and segment == EVERY_SEGMENT:
            raise SegqlError(
                "an inclusion names one segment; '*' (every segment) is for exclusions",
                help="write `segql include SEGMENT PERSON...`",
            )
        if not people:
            return 0
        now = exp.cast(exp.Literal.string(format_timestamp(utc_now())), "TIMESTAMP")
        rows = [
            exp.Tuple(
                expressions=[
                    exp.Literal.string(segment),
                    exp.Literal.string(person),
                    exp.Literal.string(kind),
                    exp.Literal.string(reason),
                    now.copy(),
                ]
            )
            for person in dict.fromkeys(people)
        ]
        target = exp.Schema(
            this=self.store.table(OVERRIDES),
            expressions=[exp.to_identifier(c, quoted=True) for c in COLUMNS],
        )
        with self.warehouse.transaction():
            self.warehouse.run(self._delete(segment, people))
            self.warehouse.run(exp.Insert(this=target, expression=exp.Values(expressions=rows)))
        return len(rows)

    def clear(self, segment: str, people: Sequence[str]) -> int:
        """Remove the overrides of these people for that segment (or ``*``); how many went."""
        before = len(self.list(segment))
        with self.warehouse.transaction():
            self.warehouse.run(self._delete(segment, people))
        return before - len(self.list(segment))

    def list(self, segment: str | None = None) -> list[tuple[object, ...]]:
        """Overrides in force, of one segment (with the ``*`` ones) or of all."""
        select = exp.select(*(exp.column(c, quoted=True) for c in COLUMNS)).from_(
            self.store.table(OVERRIDES)
        )
        if segment is not None:
            select = select.where(
                exp.column("segment", quoted=True).isin(
                    exp.Literal.string(segment), exp.Literal.string(EVERY_SEGMENT)
                )
            )
        select = select.order_by(
            exp.column("segment", quoted=True), exp.column("person_id", quoted=True)
        )
        return self.warehouse.run(select)

    def _delete(self, segment: str, people: Sequence[str]) -> exp.Delete:
        return exp.delete(
            self.store.table(OVERRIDES),
            where=exp.and_(
                exp.column("segment", quoted=True).eq(exp.Literal.string(segment)),
                exp.column("person_id", quoted=True).isin(*(exp.Literal.string(p) for p in people)),
            ),
        )


def _override_of(store: Store, table: str, kinds: Sequence[Kind]) -> exp.Exists:
    """EXISTS an override of one of ``kinds`` for ``table``'s (segment, person) row; a
    ``*`` exclusion counts for every segment."""
    column = exp.column
    same_person = column("person_id", table="o", quoted=True).eq(
        column("person_id", table=table, quoted=True)
    )
    kind_in = column("kind", table="o", quoted=True).isin(*(exp.Literal.string(k) for k in kinds))
    segment_matches: exp.Expr = column("segment", table="o", quoted=True).eq(
        column("segment", table=table, quoted=True)
    )
    if "exclude" in kinds:
        every = exp.and_(
            column("segment", table="o", quoted=True).eq(exp.Literal.string(EVERY_SEGMENT)),
            column("kind", table="o", quoted=True).eq(exp.Literal.string("exclude")),
        )
        segment_matches = exp.or_(segment_matches, every)
    return exp.Exists(
        this=exp.select(exp.Literal.number(1))
        .from_(store.table(OVERRIDES, alias="o"))
        .where(exp.and_(same_person, kind_in, segment_matches))
    )


def remove_excluded(store: Store, new_members: str) -> exp.Delete:
    """Delete the excluded people from the run's new membership table."""
    table = exp.Table(this=exp.to_identifier(new_members, quoted=True))
    return exp.delete(table, where=_override_of(store, new_members, ["exclude"]))


def add_included(store: Store, new_members: str, segments: Sequence[str]) -> exp.Insert:
    """Insert the included people of the run's segments who are not already in and who
    have no exclusion."""
    column = exp.column
    already = (
        exp.select(exp.Literal.number(1))
        .from_(exp.Table(this=exp.to_identifier(new_members, quoted=True)))
        .where(
            exp.and_(
                column("segment", table=new_members, quoted=True).eq(
                    column("segment", table="i", quoted=True)
                ),
                column("person_id", table=new_members, quoted=True).eq(
                    column("person_id", table="i", quoted=True)
                ),
            )
        )
    )
    excluded = _override_of(store, "i", ["exclude"])
    select = (
        exp.select(
            column("segment", table="i", quoted=True), column("person_id", table="i", quoted=True)
        )
        .from_(store.table(OVERRIDES, alias="i"))
        .where(
            exp.and_(
                column("kind", table="i", quoted=True).eq(exp.Literal.string("include")),
                column("segment", table="i", quoted=True).isin(
                    *(exp.Literal.string(s) for s in segments)
                )
                if segments
                else exp.false(),
                exp.not_(exp.Exists(this=already)),
                exp.not_(excluded),
            )
        )
    )
    target = exp.Schema(
        this=exp.Table(this=exp.to_identifier(new_members, quoted=True)),
        expressions=[exp.to_identifier(c, quoted=True) for c in ("segment", "person_id")],
    )
    return exp.Insert(this=target, expression=select)


def mark_manual(store: Store, changes: str) -> exp.Update:
    """The changes of people with an override for that segment have the reason ``manual``."""
    return exp.update(
        exp.Table(this=exp.to_identifier(changes, quoted=True)),
        {"reason": exp.Literal.string("manual")},
        where=_override_of(store, changes, ["exclude", "include"]),
    )
