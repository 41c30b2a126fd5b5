"""A run lock for warehouses without session locks (Snowflake): a lease row.

``segql_locks`` holds one row per lock name: the holder's token, who it is, and when the
lease ends (epoch seconds, by the warehouse's clock). Taking the lock is one ``MERGE``
(a MERGE locks the table, so two at once are serialised: the second sees the first's
row); the holder is read back to know who won. A process that dies keeps the lock until
the lease ends. The commit re-reads the row inside its transaction (``confirm``), so a run
whose lease ran out and was taken over fails cleanly instead of committing over the other.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from segql.errors import SegqlError

if TYPE_CHECKING:
    from segql.engines.base import EngineAdapter

LOCKS = "segql_locks"
COLUMNS = (
    ("name", "VARCHAR"),
    ("holder", "VARCHAR"),
    ("owner", "VARCHAR"),
    ("expires_at", "BIGINT"),
)

_ACQUIRE = """
MERGE INTO :locks AS l USING (SELECT :name AS name) AS s ON l.name = s.name
WHEN MATCHED AND (l.holder IS NULL OR l.expires_at <= :now) THEN
  UPDATE SET holder = :holder, owner = :owner, expires_at = :now + :lease
WHEN NOT MATCHED THEN
  INSERT (name, holder, owner, expires_at) VALUES (:name, :holder, :owner, :now + :lease)
"""


def _now() -> exp.Expr:
    """Epoch seconds by the warehouse's clock (every client compares against the same)."""
    return exp.cast(exp.TimeToUnix(this=exp.CurrentTimestamp()), "BIGINT")


class LeaseLock:
    def __init__(
        self,
        adapter: EngineAdapter,
        schema: str,
        name: str,
        wait: float,
        busy: str,
        help: str | None,
        lease: int,
    ):
        self.adapter, self.schema, self.name = adapter, schema, name
        self.wait, self.busy, self.help, self.lease = wait, busy, help, lease
        self.token = uuid.uuid4().hex
        self.owner = f"pid {os.getpid()} on {socket.gethostname()}"

    def table(self) -> exp.Table:
        return exp.Table(
            this=exp.to_identifier(LOCKS, quoted=True),
            db=exp.to_identifier(self.schema, quoted=True),
        )

    def _where(self, *more: exp.Expr) -> exp.Expr:
        return exp.and_(exp.column("name", quoted=True).eq(exp.Literal.string(self.name)), *more)

    def holder(self) -> tuple[str | None, str | None, int | None]:
        select = (
            exp.select("holder", "owner", exp.column("expires_at") - _now())
            .from_(self.table())
            .where(self._where())
        )
        rows = self.adapter.run(select)
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else (None, None, None)

    def try_acquire(self) -> bool:
        values = {
            "locks": self.table(),
            "name": exp.Literal.string(self.name),
            "holder": exp.Literal.string(self.token),
            "owner": exp.Literal.string(self.owner),
            "now": _now(),
            "lease": exp.Literal.number(self.lease),
        }
        merge = exp.replace_placeholders(sqlglot.parse_one(_ACQUIRE, read="snowflake"), **values)
        self.adapter.run(merge)
        return self.holder()[0] == self.token

    def __enter__(self) -> LeaseLock:
        self.adapter.create_schema(self.schema)
        columns = [
            exp.ColumnDef(this=exp.to_identifier(c, quoted=False), kind=exp.DataType.build(t))
            for c, t in COLUMNS
        ]
        table = exp.Schema(this=self.table(), expressions=columns)
        self.adapter.run(exp.Create(this=table, kind="TABLE", exists=True))
        deadline = time.monotonic() + self.wait
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                _, owner, left = self.holder()
                raise SegqlError(
                    f"{self.busy} ({owner}; its lease ends in {max(int(left or 0), 0)} s "
                    "if it stopped)",
                    help=self.help,
                )
            time.sleep(0.2)
        self.adapter.held_leases.append(self)
        return self

    def renew(self) -> None:
        """Push the end of the lease out again (called at each step of a run)."""
        update = exp.update(
            self.table(),
            {"expires_at": _now() + exp.Literal.number(self.lease)},
            where=self._where(exp.column("holder").eq(exp.Literal.string(self.token))),
        )
        self.adapter.run(update)

    def confirm(self) -> None:
        """Inside the commit: the lease is still this run's (the UPDATE also locks the
        table until COMMIT, so commits are serialised)."""
        self.renew()
        if self.holder()[0] != self.token:
            raise SegqlError(
                "this run's lock was taken over by another run (its lease ran out): "
                "nothing was recorded",
                help="run again; a lease is renewed at each step of a run",
            )

    def __exit__(self, *exc: object) -> None:
        self.adapter.held_leases.remove(self)
        release = exp.update(
            self.table(),
            {"holder": exp.null(), "owner": exp.null(), "expires_at": exp.null()},
            where=self._where(exp.column("holder").eq(exp.Literal.string(self.token))),
        )
        self.adapter.run(release)
