"""Consumers of the changes feed (runtime.md section 5): history rows in commit order,
read after a cursor that a named consumer keeps in ``segql_cursors``.

A cursor is a ``commit_seq``: every change with ``commit_seq <= cursor`` has been handled.
A run commits all of its changes under one ``commit_seq`` in one transaction, and runs
commit in order, so once a ``commit_seq`` is visible all of its changes are, and a cursor
never skips a change. A consumer commits only whole commits; ``consume()`` commits one
when the caller comes back for the change after it, so a crash in the caller's handling
means those changes come again (at least once), never that they are lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlglot import exp

from segql.errors import SegqlError
from segql.reports import CHANGE_COLUMNS, Change
from segql.store import CURSORS, DELIVERIES, HISTORY, META, RUNS, Store
from segql.timeutil import format_timestamp, utc_now
from segql.warehouse import Warehouse

PAGE = 10_000
Progress = Callable[[str], None]


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def latest_commit_seq(warehouse: Warehouse, store: Store) -> int:
    """The ``commit_seq`` of the last committed run (0 before any)."""
    select = (
        exp.select(exp.Max(this=_col("commit_seq")))
        .from_(store.table(RUNS))
        .where(_col("status").eq(exp.Literal.string("committed")))
    )
    value = warehouse.run(select)[0][0]
    return int(value or 0)


def select_changes(
    store: Store,
    after: tuple[int, str],
    upto: int | None,
    limit: int,
    segment: str | None = None,
    change: str | None = None,
    undelivered_to: str | None = None,
) -> exp.Select:
    """History rows after ``(commit_seq, event_id)`` up to ``commit_seq <= upto``, in
    commit order; optionally of one segment and kind of change, and without the changes
    ``segql_deliveries`` already records (delivered or parked) for a destination."""
    seq, event_id = after
    h = "h"
    where: list[exp.Expression] = []
    if event_id:
        where.append(
            exp.or_(
                _col("commit_seq", h) > exp.Literal.number(seq),
                exp.and_(
                    _col("commit_seq", h).eq(exp.Literal.number(seq)),
                    _col("event_id", h) > exp.Literal.string(event_id),
                ),
            )
        )
    else:
        where.append(_col("commit_seq", h) > exp.Literal.number(seq))
    if upto is not None:
        where.append(_col("commit_seq", h) <= exp.Literal.number(upto))
    if segment is not None:
        where.append(_col("segment", h).eq(exp.Literal.string(segment)))
    if change is not None:
        where.append(_col("change", h).eq(exp.Literal.string(change)))
    select = exp.select(*(_col(c, h) for c in CHANGE_COLUMNS)).from_(store.table(HISTORY, h))
    if undelivered_to is not None:
        d = "d"
        select = select.join(
            store.table(DELIVERIES, d),
            on=exp.and_(
                _col("event_id", d).eq(_col("event_id", h)),
                _col("destination", d).eq(exp.Literal.string(undelivered_to)),
            ),
            join_type="left",
        )
        where.append(_col("event_id", d).is_(exp.null()))
    return (
        select.where(exp.and_(*where))
        .order_by(_col("commit_seq", h), _col("event_id", h))
        .limit(limit)
    )


def change_from_row(row: Sequence[Any]) -> Change:
    """A ``Change`` from a row of ``CHANGE_COLUMNS``."""
    return Change(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6],
        None if row[7] is None else int(row[7]), row[8],
    )  # fmt: skip


def iter_changes(
    warehouse: Warehouse,
    store: Store,
    since: int,
    upto: int | None = None,
    page: int = PAGE,
    **filters: Any,
) -> Iterator[Change]:
    """Every change with ``since < commit_seq <= upto`` (and the filters), read in pages."""
    after = (since, "")
    while True:
        rows = warehouse.run(select_changes(store, after, upto, page, **filters))
        for row in rows:
            yield change_from_row(row)
        if len(rows) < page:
            return
        after = (int(rows[-1][0]), rows[-1][1])


def read_cursor(warehouse: Warehouse, store: Store, name: str) -> int | None:
    """The stored cursor of a consumer, None if it never committed one."""
    select = (
        exp.select(_col("commit_seq"))
        .from_(store.table(CURSORS))
        .where(_col("consumer").eq(exp.Literal.string(name)))
    )
    rows = warehouse.run(select)
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def write_cursor_statements(store: Store, name: str, seq: int) -> list[exp.Expression]:
    """Statements that set a consumer's cursor (delete then insert: portable upsert)."""
    delete = exp.delete(store.table(CURSORS), where=_col("consumer").eq(exp.Literal.string(name)))
    insert = exp.Insert(
        this=exp.Schema(
            this=store.table(CURSORS),
            expressions=[
                exp.to_identifier(c, quoted=True) for c in ("consumer", "commit_seq", "updated_at")
            ],
        ),
        expression=exp.Values(
            expressions=[
                exp.Tuple(
                    expressions=[
                        exp.Literal.string(name),
                        exp.Literal.number(seq),
                        exp.cast(exp.Literal.string(format_timestamp(utc_now())), "TIMESTAMP"),
                    ]
                )
            ]
        ),
    )
    return [delete, insert]


def require_tables(warehouse: Warehouse, schema: str) -> None:
    """Refuse to read a schema where segql never ran, with a message saying so."""
    if warehouse.table_columns(f"{schema}.{META}") is None:
        raise SegqlError(
            f"segql has not run in this warehouse yet (no tables in schema '{schema}')",
            help="run `segql run` first",
        )


@dataclass(frozen=True)
class ChangeBatch:
    """Changes read for a consumer, and the cursor to commit once they are handled."""

    changes: list[Change]
    next_cursor: int

    @property
    def columns(self) -> tuple[str, ...]:
        return CHANGE_COLUMNS

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        return [tuple(getattr(c, name) for name in CHANGE_COLUMNS) for c in self.changes]


class Consumer:
    """A named reader of the changes feed whose position is kept in ``segql_cursors``.

    ``Consumer(warehouse, schema, "crm_sync")``: ``changes()`` reads after the stored
    cursor, ``commit(seq)`` records that everything up to ``seq`` was handled.
    """

    def __init__(self, warehouse: Warehouse, schema: str, name: str):
        if not name or not name.strip():
            raise SegqlError("a consumer needs a non-empty name")
        require_tables(warehouse, schema)
        self.warehouse = warehouse
        self.store = Store(schema)
        self.name = name

    @property
    def position(self) -> int:
        """The stored cursor: changes with a larger ``commit_seq`` are still to handle."""
        return read_cursor(self.warehouse, self.store, self.name) or 0

    def changes(self, limit: int | None = None) -> Iterator[Change]:
        """Changes after the stored cursor, in commit order; nothing is committed."""
        for count, change in enumerate(iter_changes(self.warehouse, self.store, self.position)):
            if limit is not None and count >= limit:
                return
            yield change

    def read(self, limit: int | None = None) -> ChangeBatch:
        """Whole commits after the cursor, at most ``limit`` changes unless the first
        commit alone has more (a cursor moves by whole commits, and must move); and the
        cursor to commit once they are handled. Runs without changes are skipped over."""
        start = self.position
        upto = latest_commit_seq(self.warehouse, self.store)
        taken: list[Change] = []
        next_cursor = upto
        for change in iter_changes(self.warehouse, self.store, start, upto):
            if limit is not None and taken and len(taken) >= limit:
                last = taken[-1].commit_seq
                if change.commit_seq != last:
                    next_cursor = last  # the limit falls on a commit boundary
                    break
                if taken[0].commit_seq != last:
                    # the limit cuts a later commit: leave all of it for the next read
                    taken = [c for c in taken if c.commit_seq != last]
                    next_cursor = taken[-1].commit_seq
                    break
            taken.append(change)
        return ChangeBatch(taken, max(next_cursor, start))

    def commit(self, seq: int) -> None:
        """Record that every change with ``commit_seq <= seq`` was handled.

        A cursor only moves forward; use ``rewind`` to read changes again."""
        current = self.position
        if seq < current:
            raise SegqlError(
                f"consumer '{self.name}' is at commit {current}; committing {seq} would move it "
                "back",
                help="use rewind() to read changes again",
            )
        self._store(seq)

    def rewind(self, seq: int = 0) -> None:
        """Move the cursor to ``seq`` (back or forward) so later changes are read again."""
        self._store(seq)

    def _store(self, seq: int) -> None:
        with self.warehouse.transaction():
            for statement in write_cursor_statements(self.store, self.name, seq):
                self.warehouse.run(statement)

    def consume(self) -> Iterator[Change]:
        """Changes after the cursor; each commit is committed when the caller asks for the
        first change after it, or when the iteration ends, so the caller's work on every
        change of that commit has finished. Stopping early commits nothing unfinished."""
        start = self.position
        upto = latest_commit_seq(self.warehouse, self.store)
        current: int | None = None
        for change in iter_changes(self.warehouse, self.store, start, upto):
            if current is not None and change.commit_seq != current:
                self.commit(current)
            current = change.commit_seq
            yield change
        if upto > start:
            self.commit(upto)


def changes(
    project: str | Path | Any = ".",
    since: int | None = None,
    consumer: str | None = None,
    limit: int | None = None,
) -> Iterator[Change]:
    """The changes of a project (a folder or a loaded ``Project``), in commit order.

    With ``since``: the changes after that ``commit_seq``. With ``consumer``: the changes
    after that consumer's cursor, which moves past each commit once its changes were
    handled (``Consumer.consume``). The warehouse stays open while iterating."""
    from segql.project import Project, load_project
    from segql.warehouse import connect

    loaded = project if isinstance(project, Project) else load_project(project)
    if consumer is not None and since is not None:
        raise SegqlError("give either since or consumer, not both")
    warehouse = connect(loaded.config, read_only=consumer is None)
    try:
        schema = loaded.config.warehouse.schema
        if consumer is not None:
            stream = Consumer(warehouse, schema, consumer).consume()
        else:
            require_tables(warehouse, schema)
            stream = iter_changes(warehouse, Store(schema), since or 0)
        for count, change in enumerate(stream):
            if limit is not None and count >= limit:
                return
            yield change
    finally:
        warehouse.close()


def read_for_consumer(
    warehouse: Warehouse, schema: str, name: str, limit: int | None = None
) -> ChangeBatch:
    """For ``segql changes --consumer NAME``: the changes after the consumer's cursor
    (whole commits, see ``Consumer.read``). Print ``batch.columns``/``batch.rows``, then
    call ``commit_consumer(warehouse, schema, name, batch.next_cursor)``."""
    return Consumer(warehouse, schema, name).read(limit)


def commit_consumer(warehouse: Warehouse, schema: str, name: str, seq: int) -> None:
    """Move a named consumer's cursor to ``seq`` (forward only)."""
    Consumer(warehouse, schema, name).commit(seq)
