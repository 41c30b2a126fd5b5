"""Questions asked of segql's tables: members, history, stats, overlap, the changes feed.

Each answer is aggregated by SQL in the warehouse; only the rows asked for come back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlglot import exp

from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlError
from segql.runs.store import HISTORY, MEMBERS, META, RUNS, VERSIONS, Store

CHANGE_COLUMNS = (
    "commit_seq", "event_id", "segment", "person_id", "change", "as_of", "reason", "version",
    "run_id",
)  # fmt: skip


@dataclass(frozen=True)
class Change:
    """One row of ``segql_history``: a person entered or exited a segment at a run."""

    commit_seq: int
    event_id: str
    segment: str
    person_id: str
    change: str
    as_of: datetime | None  # None: a resync before any run (no run to date it)
    reason: str
    version: int | None
    run_id: str


@dataclass(frozen=True)
class Rows:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class Reports:
    """Read-only questions about one project's recorded membership."""

    def __init__(self, warehouse: Warehouse, schema: str):
        self.warehouse = warehouse
        self.store = Store(schema)
        if warehouse.table_columns(f"{schema}.{META}") is None:
            raise SegqlError(
                f"segql has not run in this warehouse yet (no tables in schema '{schema}')",
                help="run `segql run` first",
            )

    def _segment(self, name: str) -> exp.Expr:
        return exp.column("segment", quoted=True).eq(exp.Literal.string(name))

    def members(self, segment: str, limit: int | None) -> Rows:
        select = (
            exp.select(
                exp.column("person_id", quoted=True),
                exp.column("entered_at", quoted=True),
                exp.column("entered_run_id", quoted=True),
            )
            .from_(self.store.table(MEMBERS))
            .where(self._segment(segment))
            .order_by(exp.column("person_id", quoted=True))
        )
        if limit is not None:
            select = select.limit(limit)
        return Rows(("person_id", "entered_at", "run_id"), self.warehouse.run(select))

    def history(
        self,
        segment: str,
        person: str | None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> Rows:
        """The segment's changes in commit order: from runs at or after ``since``, at most
        ``limit`` of them."""
        where: exp.Expr = self._segment(segment)
        if person is not None:
            where = exp.and_(
                where, exp.column("person_id", quoted=True).eq(exp.Literal.string(person))
            )
        if since is not None:
            start = exp.cast(exp.Literal.string(since.isoformat(sep=" ")), "TIMESTAMP")
            where = exp.and_(where, exp.column("as_of", quoted=True) >= start)
        columns = ("commit_seq", "as_of", "person_id", "change", "reason", "version", "event_id")
        select = (
            exp.select(*(exp.column(c, quoted=True) for c in columns))
            .from_(self.store.table(HISTORY))
            .where(where)
            .order_by(
                exp.column("commit_seq", quoted=True),
                exp.column("person_id", quoted=True),
                exp.column("change", quoted=True),
            )
        )
        if limit is not None:
            select = select.limit(limit)
        return Rows(columns, self.warehouse.run(select))

    def changes(self, since: int, limit: int | None = None) -> Iterator[Change]:
        """History rows with ``commit_seq > since``, in commit order, read in pages."""
        page = 10_000 if limit is None else min(limit, 10_000)
        after: tuple[int, str] = (since, "")
        returned = 0
        while limit is None or returned < limit:
            seq, event_id = after
            later = exp.or_(
                exp.column("commit_seq", quoted=True) > exp.Literal.number(seq),
                exp.and_(
                    exp.column("commit_seq", quoted=True).eq(exp.Literal.number(seq)),
                    exp.column("event_id", quoted=True) > exp.Literal.string(event_id),
                ),
            )
            if not event_id:
                later = exp.column("commit_seq", quoted=True) > exp.Literal.number(seq)
            select = (
                exp.select(*(exp.column(c, quoted=True) for c in CHANGE_COLUMNS))
                .from_(self.store.table(HISTORY))
                .where(later)
                .order_by(
                    exp.column("commit_seq", quoted=True), exp.column("event_id", quoted=True)
                )
                .limit(page)
            )
            rows = self.warehouse.run(select)
            for row in rows:
                change = Change(
                    int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6],
                    None if row[7] is None else int(row[7]), row[8],
                )  # fmt: skip
                yield change
                returned += 1
                if limit is not None and returned >= limit:
                    return
            if len(rows) < page:
                return
            after = (int(rows[-1][0]), rows[-1][1])

    def last_as_of(self) -> datetime | None:
        select = (
            exp.select(exp.Max(this=exp.column("as_of", quoted=True)))
            .from_(self.store.table(RUNS))
            .where(exp.column("status", quoted=True).eq(exp.Literal.string("committed")))
        )
        return cast("datetime | None", self.warehouse.run(select)[0][0])

    def sizes(self) -> dict[str, int]:
        """Members of each segment as of the last run."""
        segment = exp.column("segment", quoted=True)
        select = exp.select(segment, exp.Count(this=exp.Star())).from_(self.store.table(MEMBERS))
        return {name: int(n) for name, n in self.warehouse.run(select.group_by(segment.copy()))}

    def versions(self) -> dict[str, int]:
        """The current (not retired) definition version of each recorded segment."""
        segment = exp.column("segment", quoted=True)
        select = (
            exp.select(segment, exp.Max(this=exp.column("version", quoted=True)))
            .from_(self.store.table(VERSIONS))
            .where(exp.column("retired_at", quoted=True).is_(exp.null()))
            .group_by(segment.copy())
        )
        return {name: int(v) for name, v in self.warehouse.run(select) if v is not None}

    def first_as_of(self) -> datetime | None:
        """The as-of of the first committed run (its changes are the initial load)."""
        select = (
            exp.select(exp.Min(this=exp.column("as_of", quoted=True)))
            .from_(self.store.table(RUNS))
            .where(exp.column("status", quoted=True).eq(exp.Literal.string("committed")))
        )
        return cast("datetime | None", self.warehouse.run(select)[0][0])

    def stats_period(self, days: int) -> str:
        """What ``stats`` covers, in words: the period and whether the initial load is in it."""
        last, first = self.last_as_of(), self.first_as_of()
        if last is None or first is None:
            return "no committed run yet"
        since = last - timedelta(days=days)
        text = f"period: after {since:%Y-%m-%d %H:%M:%S} up to {last:%Y-%m-%d %H:%M:%S}"
        if first > since:
            return f"{text}; 'entered' includes the first run's initial load ({first:%Y-%m-%d})"
        return f"{text}; the first run ({first:%Y-%m-%d}) is before it and not counted"

    def stats(self, segments: Sequence[str], days: int) -> Rows:
        """Size now, entered and exited in the last ``days`` days before the last run,
        and the growth over the period."""
        last = self.last_as_of()
        since = (last or datetime(1970, 1, 1)) - timedelta(days=days)
        sizes = dict(
            self.warehouse.run(
                exp.select(exp.column("segment", quoted=True), exp.Count(this=exp.Star()))
                .from_(self.store.table(MEMBERS))
                .group_by(exp.column("segment", quoted=True))
            )
        )
        moves = self.warehouse.run(
            exp.select(
                exp.column("segment", quoted=True),
                exp.column("change", quoted=True),
                exp.Count(this=exp.Star()),
            )
            .from_(self.store.table(HISTORY))
            .where(
                exp.column("as_of", quoted=True)
                > exp.cast(exp.Literal.string(since.isoformat(sep=" ")), "TIMESTAMP")
            )
            .group_by(exp.column("segment", quoted=True), exp.column("change", quoted=True))
        )
        moved = {(row[0], row[1]): int(row[2]) for row in moves}
        rows = []
        for name in segments:
            size = int(sizes.get(name, 0))
            entered, exited = moved.get((name, "enter"), 0), moved.get((name, "exit"), 0)
            start = size - entered + exited
            growth = None if start == 0 else round(100.0 * (size - start) / start, 2)
            rows.append((name, size, entered, exited, growth))
        columns = ("segment", "members", "entered", "exited", "growth_pct")
        return Rows(columns, rows)

    def overlap(self, segments: Sequence[str]) -> Rows:
        """For each pair: both sizes, the people in both, and that as a share of each."""
        if len(segments) < 2:
            raise SegqlError("overlap needs at least two segments")
        members = self.store.table(MEMBERS, "a")
        other = self.store.table(MEMBERS, "b")
        names = [exp.Literal.string(n) for n in segments]
        both = (
            exp.select(
                exp.column("segment", table="a", quoted=True),
                exp.column("segment", table="b", quoted=True),
                exp.Count(this=exp.Star()),
            )
            .from_(members)
            .join(
                other,
                on=exp.column("person_id", table="a", quoted=True).eq(
                    exp.column("person_id", table="b", quoted=True)
                ),
            )
            .where(
                exp.and_(
                    exp.column("segment", table="a", quoted=True).isin(*names),
                    exp.column("segment", table="b", quoted=True).isin(*(n.copy() for n in names)),
                )
            )
            .group_by(
                exp.column("segment", table="a", quoted=True),
                exp.column("segment", table="b", quoted=True),
            )
        )
        shared = {(row[0], row[1]): int(row[2]) for row in self.warehouse.run(both)}
        rows = []
        for i, a in enumerate(segments):
            for b in segments[i + 1 :]:
                size_a, size_b = shared.get((a, a), 0), shared.get((b, b), 0)
                common = shared.get((a, b), 0)
                rows.append(
                    (
                        a,
                        b,
                        size_a,
                        size_b,
                        common,
                        _percent(common, size_a),
                        _percent(common, size_b),
                    )
                )
        columns = ("segment_a", "segment_b", "size_a", "size_b", "both", "pct_of_a", "pct_of_b")
        return Rows(columns, rows)


def _percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 2)
