"""Erasure and retention (runtime.md 8.3): ``segql forget`` and ``segql prune``.

``forget`` removes a person from every segql table that names them (members, history,
overrides, the deliveries of their history rows, their row of the incremental state) in
one transaction, and records a tombstone without the id: a salted hash of it, the time,
and how many rows went.
``prune`` drops old history while keeping every membership interval that reaches the cut
(the enter rows of current members among them) whole.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from segql.engines import EngineAdapter as Warehouse
from segql.runs.incremental.state import forget_record, read_record
from segql.runs.store import (
    DELIVERIES,
    HISTORY,
    INTERVALS,
    MEMBERS,
    META,
    OVERRIDES,
    TOMBSTONES,
    Store,
)
from segql.runs.swap_commit import require_transactions
from segql.timeutil import format_timestamp, utc_now

SALT_KEY = "tombstone_salt"
PERSON_TABLES = (MEMBERS, HISTORY, OVERRIDES)  # tables with a person_id column


@dataclass(frozen=True)
class Erasure:
    """Forgets people and prunes history in one project schema."""

    warehouse: Warehouse
    store: Store

    def forget(self, people: Sequence[str]) -> dict[str, int]:
        """Remove each person everywhere; person id -> rows removed."""
        require_transactions(self.warehouse, "segql forget")
        removed: dict[str, int] = {}
        state = read_record(self.warehouse, self.store)
        with self.warehouse.transaction():
            salt = self._salt()
            now = _timestamp(utc_now())
            if state is not None:  # the next run recomputes everybody (runs.md)
                self.warehouse.run(forget_record(self.store))
            for person in dict.fromkeys(people):
                count = self._count(DELIVERIES, self._deliveries_of(person))
                if state is not None:  # the values, and the entity row and overrides kept
                    for table in (state.table, state.people, state.overrides):
                        if table is not None:
                            count += self._forget_state(table, person)
                self.warehouse.run(
                    exp.delete(self.store.table(DELIVERIES), where=self._deliveries_of(person))
                )
                for table in PERSON_TABLES:
                    where = _person_is(person)
                    count += self._count(table, where)
                    self.warehouse.run(exp.delete(self.store.table(table), where=where))
                digest = hashlib.sha256((salt + person).encode()).hexdigest()
                row = exp.Tuple(
                    expressions=[exp.Literal.string(digest), now.copy(), exp.Literal.number(count)]
                )
                target = exp.Schema(
                    this=self.store.table(TOMBSTONES),
                    expressions=[
                        exp.to_identifier(c, quoted=True)
                        for c in ("person_hash", "forgotten_at", "rows_removed")
                    ],
                )
                self.warehouse.run(
                    exp.Insert(this=target, expression=exp.Values(expressions=[row]))
                )
                removed[person] = count
        return removed

    def prune(self, before: datetime) -> int:
        """Drop history rows older than ``before``, except the enter rows of intervals that
        are still open or end at ``before`` or later; how many rows went."""
        require_transactions(self.warehouse, "segql prune")
        cut = _timestamp(before)
        column = exp.column
        kept_interval = (
            exp.select(exp.Literal.number(1))
            .from_(self.store.table(INTERVALS, alias="i"))
            .where(
                exp.and_(
                    column("segment", table="i", quoted=True).eq(
                        column("segment", table=HISTORY, quoted=True)
                    ),
                    column("person_id", table="i", quoted=True).eq(
                        column("person_id", table=HISTORY, quoted=True)
                    ),
                    column("valid_from", table="i", quoted=True).eq(
                        column("as_of", table=HISTORY, quoted=True)
                    ),
                    exp.or_(
                        column("valid_to", table="i", quoted=True).is_(exp.null()),
                        column("valid_to", table="i", quoted=True) >= cut.copy(),
                    ),
                )
            )
        )
        keep = exp.and_(
            column("change", table=HISTORY, quoted=True).eq(exp.Literal.string("enter")),
            exp.Exists(this=kept_interval),
        )
        where = exp.and_(column("as_of", table=HISTORY, quoted=True) < cut, exp.not_(keep))
        with self.warehouse.transaction():
            count = self._count(HISTORY, where)
            self.warehouse.run(exp.delete(self.store.table(HISTORY), where=where))
        return count

    def _forget_state(self, table: str, person: str) -> int:
        """Remove the person's rows from a table of the incremental state."""
        where = exp.cast(exp.column("person_id", quoted=True), "VARCHAR").eq(
            exp.Literal.string(person)
        )
        count = self._count(table, where)
        self.warehouse.run(exp.delete(self.store.table(table), where=where))
        return count

    def _count(self, table: str, where: exp.Expr) -> int:
        select = (
            exp.select(exp.Count(this=exp.Star()))
            .from_(self.store.table(table))
            .where(where.copy())
        )
        return int(self.warehouse.run(select)[0][0])

    def _deliveries_of(self, person: str) -> exp.Expr:
        events = (
            exp.select(exp.column("event_id", quoted=True))
            .from_(self.store.table(HISTORY))
            .where(_person_is(person))
        )
        return exp.column("event_id", quoted=True).isin(query=events)

    def _salt(self) -> str:
        """The project's tombstone salt, made on first use and kept in ``segql_meta``."""
        key = exp.column("key", quoted=True).eq(exp.Literal.string(SALT_KEY))
        rows = self.warehouse.run(
            exp.select(exp.column("value", quoted=True)).from_(self.store.table(META)).where(key)
        )
        if rows:
            return str(rows[0][0])
        salt = secrets.token_hex(16)
        row = exp.Tuple(expressions=[exp.Literal.string(SALT_KEY), exp.Literal.string(salt)])
        self.warehouse.run(exp.insert(exp.Values(expressions=[row]), self.store.table(META)))
        return salt


def _person_is(person: str) -> exp.Expr:
    return exp.column("person_id", quoted=True).eq(exp.Literal.string(person))


def _timestamp(value: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(format_timestamp(value)), "TIMESTAMP")
