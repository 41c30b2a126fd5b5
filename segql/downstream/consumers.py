"""Consumers of the changes feed (runtime.md section 5): history rows in commit order,
read after a cursor that a named consumer keeps in ``segql_cursors``.

A cursor is a position ``(commit_seq, event_id)``: every change before it in feed order
(``commit_seq``, then ``event_id``) was handed over; an empty ``event_id`` means the whole
commit was. A run commits all of its changes under one ``commit_seq`` in one transaction,
and runs commit in order, so once a ``commit_seq`` is visible all of its changes are, and
a cursor never skips a change. ``consume()`` counts a change as handled when the caller
comes back for the next one, so a crash in the caller's handling means changes come
again (at least once, resumable), never that they are lost. The feed is read page by
page from the position (keyset pagination): memory stays one page, time linear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlglot import exp

from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlError
from segql.reading.reports import CHANGE_COLUMNS, Change
from segql.runs.store import CURSORS, DELIVERIES, HISTORY, META, RUNS, Store
from segql.timeutil import format_timestamp, utc_now

PAGE = 10_000
Progress = Callable[[str], None]
# Where a reader stands in the feed: every change up to and including (commit_seq,
# event_id) was handed over; event_id '' means the whole of commit_seq was.
Position = tuple[int, str]


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


def after_position(position: Position, table: str | None = None) -> exp.Expr:
    """Rows after ``(commit_seq, event_id)`` in feed order; ``event_id`` '' means after
    the whole commit. The leading ``commit_seq >=`` lets an engine skip earlier blocks
    (DuckDB's min/max zone maps), so a page reads what it returns, not the history."""
    seq, event_id = position
    if not event_id:
        return _col("commit_seq", table) > exp.Literal.number(seq)
    return exp.and_(
        _col("commit_seq", table) >= exp.Literal.number(seq),
        exp.or_(
            _col("commit_seq", table) > exp.Literal.number(seq),
            _col("event_id", table) > exp.Literal.string(event_id),
        ),
    )


def _changes_from(
    store: Store,
    after: Position,
    upto: int | None,
    segment: str | None = None,
    change: str | None = None,
    undelivered_to: str | None = None,
) -> tuple[exp.Select, exp.Expr]:
    """The history (joined to the deliveries when asked) and the condition of the rows
    after ``after`` up to ``upto`` with the filters; selects nothing yet."""
    h = "h"
    where: list[exp.Expr] = [after_position(after, h)]
    if upto is not None:
        where.append(_col("commit_seq", h) <= exp.Literal.number(upto))
    if segment is not None:
        where.append(_col("segment", h).eq(exp.Literal.string(segment)))
    if change is not None:
        where.append(_col("change", h).eq(exp.Literal.string(change)))
    select = exp.select().from_(store.table(HISTORY, h))
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
    return select, exp.and_(*where)


def select_changes(
    store: Store,
    after: Position,
    upto: int | None,
    limit: int,
    segment: str | None = None,
    change: str | None = None,
    undelivered_to: str | None = None,
) -> exp.Select:
    """History rows after ``(commit_seq, event_id)`` up to ``commit_seq <= upto``, in
    commit order; optionally of one segment and kind of change, and without the changes
    ``segql_deliveries`` already records (delivered or parked) for a destination."""
    select, where = _changes_from(store, after, upto, segment, change, undelivered_to)
    return (
        select.select(*(_col(c, "h") for c in CHANGE_COLUMNS))
        .where(where)
        .order_by(_col("commit_seq", "h"), _col("event_id", "h"))
        .limit(limit)
    )


def select_commit_sizes(
    store: Store, after: Position, upto: int | None, **filters: Any
) -> exp.Select:
    """``(commit_seq, changes)`` of each commit after ``after`` with changes, in order."""
    select, where = _changes_from(store, after, upto, **filters)
    seq = _col("commit_seq", "h")
    return select.select(seq, exp.Count(this=exp.Star())).where(where).group_by(seq).order_by(seq)


def commit_windows(
    sizes: Sequence[tuple[int, int]], after: Position, page: int
) -> Iterator[tuple[Position, int]]:
    """Consecutive commits grouped into windows of about ``page`` changes: ``(start,
    last commit_seq)``. A window is one commit, or commits that together fit a page."""
    start, count, last = after, 0, None
    for seq, size in sizes:
        if last is not None and count + size > page:
            yield start, last
            start, count = (last, ""), 0
        count += size
        last = seq
    if last is not None:
        yield start, last


def change_from_row(row: Sequence[Any]) -> Change:
    """A ``Change`` from a row of ``CHANGE_COLUMNS``."""
    return Change(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6],
        None if row[7] is None else int(row[7]), row[8],
    )  # fmt: skip


def iter_changes(
    warehouse: Warehouse,
    store: Store,
    since: int | Position,
    upto: int | None = None,
    page: int = PAGE,
    **filters: Any,
) -> Iterator[Change]:
    """Every change after ``since`` (a ``commit_seq`` or a position) up to ``upto`` (and
    the filters), in feed order, a page at a time: memory is one page.

    One query counts the changes of each commit; the feed is then read in windows of
    consecutive commits of about a page (``commit_seq`` bounded on both sides, so an
    engine reads only that stretch of the history), a commit larger than a page by
    position within it. The history is read a bounded number of times: linear time."""
    after = since if isinstance(since, tuple) else (since, "")
    sizes = [
        (int(seq), int(count))
        for seq, count in warehouse.run(select_commit_sizes(store, after, upto, **filters))
    ]
    for start, last in commit_windows(sizes, after, page):
        position = start
        while True:
            rows = warehouse.run(select_changes(store, position, last, page, **filters))
            for row in rows:
                yield change_from_row(row)
            if len(rows) < page:
                break
            position = (int(rows[-1][0]), rows[-1][1])


def read_position(warehouse: Warehouse, store: Store, name: str) -> Position | None:
    """The stored position of a consumer, None if it never committed one."""
    select = (
        exp.select(_col("commit_seq"), _col("event_id"))
        .from_(store.table(CURSORS))
        .where(_col("consumer").eq(exp.Literal.string(name)))
    )
    rows = warehouse.run(select)
    if not rows or rows[0][0] is None:
        return None
    return int(rows[0][0]), rows[0][1] or ""


def read_cursor(warehouse: Warehouse, store: Store, name: str) -> int | None:
    """The last ``commit_seq`` a consumer finished whole, None if it never committed."""
    position = read_position(warehouse, store, name)
    if position is None:
        return None
    seq, event_id = position
    return seq - 1 if event_id else seq


def write_cursor_statements(
    store: Store, name: str, seq: int, event_id: str = ""
) -> list[exp.Expr]:
    """Statements that set a consumer's position (delete then insert: portable upsert)."""
    delete = exp.delete(store.table(CURSORS), where=_col("consumer").eq(exp.Literal.string(name)))
    columns = ("consumer", "commit_seq", "updated_at", "event_id")
    insert = exp.Insert(
        this=exp.Schema(
            this=store.table(CURSORS),
            expressions=[exp.to_identifier(c, quoted=True) for c in columns],
        ),
        expression=exp.Values(
            expressions=[
                exp.Tuple(
                    expressions=[
                        exp.Literal.string(name),
                        exp.Literal.number(seq),
                        exp.cast(exp.Literal.string(format_timestamp(utc_now())), "TIMESTAMP"),
                        exp.Literal.string(event_id),
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
    """Changes read for a consumer, and the position to commit once they are handled."""

    changes: list[Change]
    next_cursor: Position

    @property
    def columns(self) -> tuple[str, ...]:
        return CHANGE_COLUMNS

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        return [change_row(c) for c in self.changes]


def change_row(change: Change) -> tuple[Any, ...]:
    """A change as a row of ``CHANGE_COLUMNS``."""
    return tuple(getattr(change, name) for name in CHANGE_COLUMNS)


def feed_order(position: Position) -> tuple[int, bool, str]:
    """A key that sorts positions in feed order: the whole of a commit (event_id '')
    comes after any change inside it."""
    seq, event_id = position
    return seq, not event_id, event_id


def _as_position(value: int | Position) -> Position:
    return value if isinstance(value, tuple) else (int(value), "")


class Consumer:
    """A named reader of the changes feed whose position is kept in ``segql_cursors``.

    ``Consumer(warehouse, schema, "crm_sync")``: ``changes()`` reads after the stored
    position, ``commit(position)`` records that everything up to it was handled.

    The guarantee is at least once, resumable: the position moves only past changes that
    were handed over completely, so a crash, an exception or an interrupted pipe means
    some changes come again, never that one is skipped. A position is a ``commit_seq``
    and the last ``event_id`` handed over within it, so a reader can stop in the middle
    of a commit and resume at the next change.
    """

    def __init__(self, warehouse: Warehouse, schema: str, name: str):
        if not name or not name.strip():
            raise SegqlError("a consumer needs a non-empty name")
        require_tables(warehouse, schema)
        self.warehouse = warehouse
        self.store = Store(schema)
        self.name = name
        self.store.add_missing_columns(warehouse, (CURSORS,))

    @property
    def cursor(self) -> Position:
        """The stored position: changes after it are still to handle."""
        return read_position(self.warehouse, self.store, self.name) or (0, "")

    @property
    def position(self) -> int:
        """The last ``commit_seq`` whose changes were all handled."""
        seq, event_id = self.cursor
        return seq - 1 if event_id else seq

    def changes(self, limit: int | None = None) -> Iterator[Change]:
        """Changes after the stored position, in commit order; nothing is committed."""
        for count, change in enumerate(iter_changes(self.warehouse, self.store, self.cursor)):
            if limit is not None and count >= limit:
                return
            yield change

    def read(self, limit: int | None = None) -> ChangeBatch:
        """Exactly ``limit`` changes after the position (fewer at the end of the feed),
        and the position to commit once they are handled. Reading to the end moves the
        position past the runs without changes too."""
        start = self.cursor
        upto = latest_commit_seq(self.warehouse, self.store)
        taken = list(self.changes_upto(start, upto, limit))
        if limit is not None and len(taken) == limit and taken:
            return ChangeBatch(taken, (taken[-1].commit_seq, taken[-1].event_id))
        return ChangeBatch(taken, max((upto, ""), start, key=feed_order))

    def changes_upto(
        self, start: Position, upto: int, limit: int | None = None
    ) -> Iterator[Change]:
        """Changes after ``start`` up to ``commit_seq <= upto``, at most ``limit``."""
        if limit is not None and limit <= 0:
            return
        page = PAGE if limit is None else min(PAGE, limit)
        for count, change in enumerate(
            iter_changes(self.warehouse, self.store, start, upto, page), start=1
        ):
            yield change
            if limit is not None and count >= limit:
                return

    def commit(self, position: int | Position) -> None:
        """Record that every change up to ``position`` (a ``commit_seq``: all of it; or
        ``(commit_seq, event_id)``) was handled. A position only moves forward; use
        ``rewind`` to read changes again."""
        target = _as_position(position)
        current = self.cursor
        if feed_order(target) < feed_order(current):
            raise SegqlError(
                f"consumer '{self.name}' is at commit {current[0]}; committing {target[0]} "
                "would move it back",
                help="use rewind() to read changes again",
            )
        self._store(target)

    def rewind(self, position: int | Position = 0) -> None:
        """Move the position (back or forward) so later changes are read again."""
        self._store(_as_position(position))

    def _store(self, position: Position) -> None:
        with self.warehouse.transaction():
            for statement in write_cursor_statements(self.store, self.name, *position):
                self.warehouse.run(statement)

    def consume(self, limit: int | None = None, commit_every: int = PAGE) -> Iterator[Change]:
        """Changes after the position. A change counts as handled when the caller asks
        for the next one (or the iteration ends); the position is committed at each
        commit boundary, every ``commit_every`` handled changes, and at the end. An
        exception or ``break`` in the caller's loop commits nothing further: the change
        being handled, and those since the last commit, come again (at least once).
        With ``limit``: at most that many; when the caller comes back after the last one,
        the position is committed right after it and the next read resumes there."""
        start = self.cursor
        upto = latest_commit_seq(self.warehouse, self.store)
        done: Position | None = None
        pending = total = 0
        for change in self.changes_upto(start, upto, limit):
            if done is not None and (change.commit_seq != done[0] or pending >= commit_every):
                self.commit(done)
                pending = 0
            yield change
            done = (change.commit_seq, change.event_id)
            pending += 1
            total += 1
        if done is not None and limit is not None and total == limit:
            self.commit(done)  # exactly limit: the next read starts right after it
        elif feed_order((upto, "")) > feed_order(start):
            self.commit((upto, ""))


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
    from segql.engines import connect
    from segql.project import Project, load_project

    loaded = project if isinstance(project, Project) else load_project(project)
    if consumer is not None and since is not None:
        raise SegqlError("give either since or consumer, not both")
    warehouse = connect(loaded.config, read_only=consumer is None)
    try:
        schema = loaded.config.warehouse.schema
        if consumer is not None:
            yield from Consumer(warehouse, schema, consumer).consume(limit)
            return
        require_tables(warehouse, schema)
        for count, change in enumerate(iter_changes(warehouse, Store(schema), since or 0)):
            if limit is not None and count >= limit:
                return
            yield change
    finally:
        warehouse.close()


def read_for_consumer(
    warehouse: Warehouse, schema: str, name: str, limit: int | None = None
) -> ChangeBatch:
    """The changes after the consumer's position (exactly ``limit``, see
    ``Consumer.read``) in memory. Hand ``batch.rows`` over, then call
    ``commit_consumer(warehouse, schema, name, batch.next_cursor)``."""
    return Consumer(warehouse, schema, name).read(limit)


def commit_consumer(warehouse: Warehouse, schema: str, name: str, position: int | Position) -> None:
    """Move a named consumer's position forward to ``position``."""
    Consumer(warehouse, schema, name).commit(position)
