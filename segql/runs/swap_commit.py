"""A run's commit where there is no multi-statement transaction (Spark on Iceberg).

Each Iceberg statement commits atomically on its own, but a run writes several kinds of
rows. So a run writes ALL its rows (history, a membership snapshot, versions, its
``ready`` row) in ONE ``INSERT`` into the log table ``segql_log``, each row tagged with
its ``kind``, the run's id and the ``commit_seq`` it means to take, and then makes ONE
atomic step that publishes them: a compare-and-swap of the one-row ``segql_head`` table,

    MERGE INTO segql_head ... ON commit_seq = <expected> WHEN MATCHED THEN UPDATE
        SET commit_seq = <expected + 1>, run_id = <this run>

which only one run can make (a second MERGE of the same row fails Iceberg's commit
check; ``WHEN NOT MATCHED THEN INSERT`` alone would not be a compare-and-swap). Nothing is
written after the swap: the names readers use (``segql_runs``, ``segql_history``,
``segql_members``, ``segql_segment_versions``) are views that derive what a published run
is. Every run's row records the head it read (``parent_run_id``), and a swap only succeeds
from that head, so the runs published are the head's and the parents named by the rows
of ``commit_seq`` up to head + 1 (``segql_commits``). A run is ``failed`` once the head has
passed its ``commit_seq`` without it (it lost, or was killed), without anybody writing so.

What losing or killed runs left, and the membership snapshot a newer run superseded, are
removed when the next run starts (``SwapCommit.begin``), and only if the log's partition
metadata lists such rows: the log is partitioned by (kind, commit_seq, run_id), so the
check reads no data file and the delete drops whole files. Rows of a run that may still
win (tagged past the head) are never touched.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

from segql.errors import SegqlError, SegqlWarehouseError
from segql.runs.store import HISTORY, MEMBERS, RUNS, TABLES, VERSIONS, Store
from segql.timeutil import format_timestamp, utc_now

if TYPE_CHECKING:
    from segql.engines import EngineAdapter as Warehouse
    from segql.runs.runner import Runner

HEAD = "segql_head"
COMMITS = "segql_commits"  # view: (run_id, commit_seq) of every published run
LOG = "segql_log"
# The tables readers know, each a view of the log.
VIEWED = (RUNS, HISTORY, MEMBERS, VERSIONS)
# Kinds of log rows: a run's status (running, ready, failed), a history event, a member
# of the run's membership snapshot, a created version (retired_at null) or a retirement.
RUN, EVENT, MEMBER, VERSION = "run", "history", "member", "version"
HEAD_COLUMNS = (("head", "VARCHAR"), ("commit_seq", "BIGINT"), ("run_id", "VARCHAR"))


def _log_columns() -> tuple[tuple[str, str], ...]:
    """The union of the four kinds' columns, after the tags."""
    columns: dict[str, str] = {
        "kind": "VARCHAR", "run_id": "VARCHAR", "commit_seq": "BIGINT",
        "parent_run_id": "VARCHAR",
    }  # fmt: skip
    for table in (HISTORY, MEMBERS, VERSIONS, RUNS):
        for column, kind in TABLES[table]:
            columns.setdefault(column, kind)
    columns["recorded_at"] = "TIMESTAMP"
    return tuple(columns.items())


LOG_COLUMNS = _log_columns()
LOG_TYPES = dict(LOG_COLUMNS)
PARTITION = ("kind", "commit_seq", "run_id")
LOG_WRITES = {"write.distribution-mode": "none", "write.spark.fanout.enabled": "true"}
HEAD_KEY = "head"
LOST = "interrupted, or another run committed first: it recorded nothing"

_VIEWS = {
    # The head's run, and the head each ready run read (it can only have won from it).
    COMMITS: """
        SELECT parent_run_id AS run_id, commit_seq - 1 AS commit_seq FROM :log
        WHERE kind = 'run' AND status = 'ready' AND parent_run_id IS NOT NULL
        UNION
        SELECT run_id, commit_seq FROM :head WHERE run_id IS NOT NULL
    """,
    RUNS: """
        SELECT r.run_id AS run_id, MAX(r.as_of) AS as_of, MIN(r.started_at) AS started_at,
          MAX(r.finished_at) AS finished_at,
          CASE WHEN MAX(c.run_id) IS NOT NULL THEN 'committed'
               WHEN MAX(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END) = 1 THEN 'failed'
               WHEN MAX(r.commit_seq) <= MAX(h.commit_seq) THEN 'failed'
               ELSE 'running' END AS status,
          MAX(c.commit_seq) AS commit_seq,
          CASE WHEN MAX(c.run_id) IS NULL THEN COALESCE(MAX(r.error),
            CASE WHEN MAX(r.commit_seq) <= MAX(h.commit_seq) THEN :lost END) END AS error,
          MAX(r.segments) AS segments, MAX(r.summary) AS summary, MAX(r.mode) AS mode,
          MAX(r.full_reason) AS full_reason
        FROM :log AS r
        CROSS JOIN (SELECT MAX(commit_seq) AS commit_seq FROM :head) AS h
        LEFT JOIN :commits AS c ON c.run_id = r.run_id
        WHERE r.kind = 'run'
        GROUP BY r.run_id
    """,
    HISTORY: """
        SELECT h.event_id, h.segment, h.person_id, h.change, h.as_of, h.run_id,
          h.commit_seq, h.version, h.reason
        FROM :log AS h
        JOIN :commits AS c ON c.run_id = h.run_id AND c.commit_seq = h.commit_seq
        WHERE h.kind = 'history'
    """,
    MEMBERS: """
        SELECT m.segment, m.person_id, m.entered_at, m.entered_run_id
        FROM :log AS m
        JOIN (SELECT DISTINCT run_id, commit_seq FROM :head) AS h
          ON h.run_id = m.run_id AND h.commit_seq = m.commit_seq
        WHERE m.kind = 'member'
    """,
    VERSIONS: """
        SELECT v.segment, v.version, v.definition_hash, v.source_text, v.created_at,
          r.retired_at
        FROM :log AS v
        JOIN :commits AS c ON c.run_id = v.run_id AND c.commit_seq = v.commit_seq
        LEFT JOIN (
          SELECT g.segment, g.version, MIN(g.retired_at) AS retired_at
          FROM :log AS g
          JOIN :commits AS k ON k.run_id = g.run_id AND k.commit_seq = g.commit_seq
          WHERE g.kind = 'version' AND g.retired_at IS NOT NULL
          GROUP BY g.segment, g.version
        ) AS r ON r.segment = v.segment AND r.version = v.version
        WHERE v.kind = 'version' AND v.retired_at IS NULL
    """,
}
# The head, with the log's partitions nobody will read: snapshots the head superseded, and
# rows of runs the head passed without them (a row per partition, or one with nulls).
_BEGIN = """
    SELECT h.commit_seq, h.run_id, t.kind, t.commit_seq, t.run_id
    FROM (SELECT MAX(commit_seq) AS commit_seq, MAX(run_id) AS run_id FROM :head) AS h
    LEFT JOIN (
      SELECT p.`partition`.kind AS kind, p.`partition`.commit_seq AS commit_seq,
        p.`partition`.run_id AS run_id
      FROM :partitions AS p
      LEFT JOIN :commits AS c
        ON c.run_id = p.`partition`.run_id AND c.commit_seq = p.`partition`.commit_seq
      WHERE p.`partition`.kind <> 'run'
        AND (c.run_id IS NULL OR p.`partition`.kind = 'member')
    ) AS t ON t.commit_seq < h.commit_seq OR (t.commit_seq = h.commit_seq AND t.run_id <> h.run_id)
"""
_SWAP = """
    MERGE INTO :head AS t USING (SELECT :key AS head) AS s
    ON t.head = s.head AND t.commit_seq = :expected
    WHEN MATCHED THEN UPDATE SET commit_seq = :seq, run_id = :run_id
"""


def parse_template(template: str, **values: exp.Expr) -> exp.Expr:
    """A Spark SQL template of this module, its ``:name`` placeholders replaced by
    ``values`` (tables and literals as expressions, never text)."""
    return exp.replace_placeholders(sqlglot.parse_one(template, read="spark"), **values)


def _timestamp(value: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(format_timestamp(value)), "TIMESTAMP")


def _text(value: str | None) -> exp.Expr:
    return exp.Literal.string(value) if value is not None else exp.null()


class SwapTables:
    """The log, the head and the views of one project schema."""

    def __init__(self, store: Store):
        self.store = store

    def names(self) -> dict[str, exp.Expr]:
        tables = {"head": HEAD, "log": LOG, "commits": COMMITS}
        names: dict[str, exp.Expr] = {key: self.table(name) for key, name in tables.items()}
        names["partitions"] = exp.Table(
            this=exp.to_identifier("partitions"),
            db=exp.to_identifier(LOG, quoted=True),
            catalog=exp.to_identifier(self.store.schema, quoted=True),
        )
        names["lost"] = exp.Literal.string(LOST)
        return names

    def parse(self, template: str, **values: exp.Expr) -> exp.Expr:
        return parse_template(template, **self.names(), **values)

    def table(self, name: str) -> exp.Table:
        return self.store.table(name)

    def ensure(self, warehouse: Warehouse) -> None:
        from segql.runs.swap_layout import migrate_if_old

        properties = warehouse.table_properties()
        head = self.store.create_table(HEAD, HEAD_COLUMNS, primary_key=False)
        if properties:
            head.set("properties", exp.Properties(expressions=list(properties)))
        warehouse.run(head)
        log = self.store.create_table(LOG, LOG_COLUMNS, primary_key=False)
        partition = exp.Schema(expressions=[exp.to_identifier(c) for c in PARTITION])
        # A run writes a few partitions: each task writes them as its rows come (fanout),
        # instead of a shuffle of every row by partition before the write.
        writes = [
            exp.Property(this=exp.Literal.string(key), value=exp.Literal.string(value))
            for key, value in LOG_WRITES.items()
        ]
        log.set(
            "properties",
            exp.Properties(
                expressions=[*properties, exp.PartitionedByProperty(this=partition), *writes]
            ),
        )
        warehouse.run(log)
        head_rows = warehouse.run(exp.select(exp.Count(this=exp.Star())).from_(self.table(HEAD)))
        if not head_rows[0][0]:
            # Two first runs at once may both insert it: the rows are alike, every reader
            # reads them as one, and the swap updates them together.
            row = exp.Tuple(
                expressions=[exp.Literal.string(HEAD_KEY), exp.Literal.number(0), exp.null()]
            )
            warehouse.run(exp.insert(exp.Values(expressions=[row]), self.table(HEAD)))
        migrated = migrate_if_old(self, warehouse)
        for name, template in _VIEWS.items():
            view = exp.Create(this=self.table(name), kind="VIEW", expression=self.parse(template))
            # Replaced only by a migration: two runs replacing a view at once would conflict.
            view.set("replace" if migrated is not None else "exists", True)
            warehouse.run(view)
        intervals = self.store.intervals_view()
        intervals.set("replace", migrated is not None)
        intervals.set("exists", migrated is None)
        warehouse.run(intervals)
        if migrated:
            migrated.drop_old(warehouse)


def ensure_swap_tables(store: Store, warehouse: Warehouse) -> None:
    SwapTables(store).ensure(warehouse)


def log_row(values: dict[str, exp.Expr]) -> list[exp.Expr]:
    """One row of the log as a SELECT list: every column, the missing ones typed nulls."""
    return [
        exp.alias_(values.get(column, exp.cast(exp.null(), kind)), column, quoted=True)
        for column, kind in LOG_COLUMNS
    ]


def log_insert(table: exp.Table, query: exp.Query) -> exp.Insert:
    target = exp.Schema(
        this=table, expressions=[exp.to_identifier(c, quoted=True) for c, _ in LOG_COLUMNS]
    )
    return exp.Insert(this=target, expression=query)


class SwapCommit:
    """The commit protocol of one run (``Runner`` calls it where it would use a
    transaction)."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.warehouse = runner.warehouse
        self.tables = SwapTables(runner.store)
        self.expected: int | None = None  # the head this run's diff was made against
        self.parent: str | None = None  # ... and its run

    def run(self, statement: exp.Expr) -> list[tuple[Any, ...]]:
        return self.warehouse.run(statement)

    # --- the head ----------------------------------------------------------------------

    def head(self) -> tuple[int, str | None]:
        select = exp.select(
            exp.Max(this=exp.column("commit_seq")), exp.Max(this=exp.column("run_id"))
        ).from_(self.tables.table(HEAD))
        seq, run_id = self.run(select)[0]
        return int(seq or 0), (str(run_id) if run_id is not None else None)

    def swap(self, expected: int, seq: int, run_id: str) -> bool:
        """The compare-and-swap: True if this run now is the head."""
        merge = self.tables.parse(
            _SWAP,
            key=exp.Literal.string(HEAD_KEY),
            expected=exp.Literal.number(expected),
            seq=exp.Literal.number(seq),
            run_id=exp.Literal.string(run_id),
        )
        with contextlib.suppress(SegqlWarehouseError):  # a conflict: the head says who won
            self.run(merge)
        return self.head() == (seq, run_id)

    def begin(self) -> int:
        """Read the head this run's diff is made against (its ``commit_seq``), and drop
        the partitions nobody will read again, if the log's metadata lists any."""
        rows = self.run(self.tables.parse(_BEGIN))
        seq, head_run = int(rows[0][0] or 0), rows[0][1]
        self.expected, self.parent = seq, (str(head_run) if head_run is not None else None)
        left = [(kind, int(at), str(run)) for _, _, kind, at, run in rows if kind is not None]
        if left:
            self.delete_partitions(left)
        return seq

    def delete_partitions(self, partitions: Sequence[tuple[str, int, str]]) -> None:
        """One DELETE of whole partitions: Iceberg drops their files (no data is read)."""
        column = exp.column
        conditions = [
            exp.and_(
                column("kind").eq(exp.Literal.string(kind)),
                column("commit_seq").eq(exp.Literal.number(seq)),
                column("run_id").eq(exp.Literal.string(run)),
            )
            for kind, seq, run in partitions
        ]
        self.run(exp.delete(self.tables.table(LOG), where=exp.or_(*conditions)))

    # --- run rows ----------------------------------------------------------------------

    def run_row(self, values: dict[str, exp.Expr]) -> dict[str, exp.Expr]:
        """A run's row: tagged with the commit_seq it means to take and the head it read."""
        seq = (self.expected or 0) + 1
        return {
            "kind": exp.Literal.string(RUN),
            "commit_seq": exp.Literal.number(seq),
            "parent_run_id": _text(self.parent),
            **values,
            "recorded_at": _timestamp(utc_now()),
        }

    def append_run_row(self, values: dict[str, exp.Expr]) -> None:
        row = exp.select(*log_row(self.run_row(values)))
        self.run(log_insert(self.tables.table(LOG), row))

    def mark_failed(self, run_id: str, message: str) -> None:
        self.append_run_row(
            {
                "run_id": exp.Literal.string(run_id),
                "status": exp.Literal.string("failed"),
                "error": exp.Literal.string(message[:2000]),
                "finished_at": _timestamp(utc_now()),
            }
        )

    def versions(self) -> tuple[dict[str, tuple[int, str]], dict[str, int]]:
        """The versions not retired (segment -> (version, hash)) and the highest version
        of each segment ever recorded, from one read."""
        select = exp.select("segment", "version", "definition_hash", "retired_at").from_(
            self.tables.table(VERSIONS)
        )
        current: dict[str, tuple[int, str]] = {}
        highest: dict[str, int] = {}
        for segment, version, digest, retired_at in self.run(select):
            highest[segment] = max(highest.get(segment, 0), int(version))
            if retired_at is None:
                current[segment] = (int(version), digest)
        return current, highest

    # --- the commit --------------------------------------------------------------------

    def record(
        self,
        run_id: str,
        as_of: datetime,
        names: Sequence[str],
        deleted: Sequence[str],
        changed: dict[str, tuple[int, str, str]],
        versions: dict[str, tuple[int, str]],
        version_of: dict[str, int],
        data: dict[str, int],
        mode: tuple[str, str | None] = ("full", None),
    ) -> int:
        """Write the run's rows tagged with it in one INSERT, then swap the head; its
        ``commit_seq``. ``mode``: the run's mode and why it recomputed, as ``segql_runs``
        records them."""
        from segql.runs.runner import _crash_point

        if self.expected is None:
            self.begin()
        expected = self.expected or 0
        seq = expected + 1
        now = utc_now()
        ready = self.ready_row(run_id, as_of, names, data)
        ready["mode"] = exp.Literal.string(mode[0])
        ready["full_reason"] = _text(mode[1])
        parts: list[exp.Query] = [
            self.history(run_id, as_of, seq, version_of),
            *self.snapshot(run_id, seq, as_of, [*names, *deleted]),
            *self.version_rows(run_id, seq, now, deleted, changed, versions),
            exp.select(*log_row(self.run_row(ready))),
        ]
        self.run(log_insert(self.tables.table(LOG), exp.union(*parts, distinct=False)))
        _crash_point("before_swap")
        if not self.swap(expected, seq, run_id):
            self.remove_own_rows(run_id)
            raise SegqlError(
                f"another segql run committed first (commit_seq {seq}) while this one ran: "
                "this run recorded nothing",
                help="run again: it will start from the other run's result",
            )
        _crash_point("after_swap")
        return seq

    def ready_row(
        self, run_id: str, as_of: datetime, names: Sequence[str], data: dict[str, int]
    ) -> dict[str, exp.Expr]:
        return {
            "run_id": exp.Literal.string(run_id),
            "as_of": _timestamp(as_of),
            "status": exp.Literal.string("ready"),
            "finished_at": _timestamp(utc_now()),
            "segments": exp.Literal.string(json.dumps(list(names))),
            "summary": exp.Literal.string(json.dumps(data)),
        }

    def tags(self, kind: str, run_id: str, seq: int) -> dict[str, exp.Expr]:
        return {
            "kind": exp.Literal.string(kind),
            "run_id": exp.Literal.string(run_id),
            "commit_seq": exp.Literal.number(seq),
        }

    def history(
        self, run_id: str, as_of: datetime, seq: int, version_of: dict[str, int]
    ) -> exp.Select:
        """The run's changes as history rows (the runner's history select, tagged)."""
        insert = self.runner.insert_history(run_id, as_of, seq, version_of)
        select = insert.expression
        assert isinstance(select, exp.Select)
        given = {e.alias_or_name: e.unalias() for e in select.expressions}
        return exp.select(*log_row({**given, **self.tags(EVENT, run_id, seq)})).from_(
            select.args["from_"].copy()
        )

    def version_rows(
        self,
        run_id: str,
        seq: int,
        now: datetime,
        deleted: Sequence[str],
        changed: dict[str, tuple[int, str, str]],
        versions: dict[str, tuple[int, str]],
    ) -> list[exp.Select]:
        """Retirements (of deleted and redefined segments) and new versions."""
        tags = self.tags(VERSION, run_id, seq)
        rows: list[exp.Select] = []
        for name in [*deleted, *(name for name in changed if name in versions)]:
            number = versions[name][0]
            row = {"segment": exp.Literal.string(name), "version": exp.Literal.number(number),
                   "retired_at": _timestamp(now)}  # fmt: skip
            rows.append(exp.select(*log_row({**tags, **row})))
        for name, (number, text, digest) in changed.items():
            row = {
                "segment": exp.Literal.string(name),
                "version": exp.Literal.number(number),
                "definition_hash": exp.Literal.string(digest),
                "source_text": exp.Literal.string(text),
                "created_at": _timestamp(now),
            }
            rows.append(exp.select(*log_row({**tags, **row})))
        return rows

    def snapshot(
        self, run_id: str, seq: int, as_of: datetime, evaluated: list[str]
    ) -> list[exp.Select]:
        """The membership after this run: the new members of the evaluated segments (who
        keep their ``entered_at`` if they were in), and the other segments' members."""
        from segql.runs.runner import NEW_MEMBERS

        store = self.runner.store
        tags = self.tags(MEMBER, run_id, seq)

        def column(name: str, table: str | None = None) -> exp.Column:
            return exp.column(name, table=table, quoted=True)

        same = exp.and_(
            column("segment", "m").eq(column("segment", "n")),
            column("person_id", "m").eq(column("person_id", "n")),
        )
        kept = {
            "segment": column("segment", "n"),
            "person_id": column("person_id", "n"),
            "entered_at": exp.Coalesce(
                this=column("entered_at", "m"), expressions=[_timestamp(as_of)]
            ),
            "entered_run_id": exp.Coalesce(
                this=column("entered_run_id", "m"), expressions=[exp.Literal.string(run_id)]
            ),
        }
        new = (
            exp.select(*log_row({**kept, **tags}))
            .from_(
                exp.Table(
                    this=exp.to_identifier(NEW_MEMBERS, quoted=True),
                    alias=exp.TableAlias(this=exp.to_identifier("n")),
                )
            )
            .join(store.table(MEMBERS, alias="m"), on=same, join_type="left")
        )
        same_columns = {c: column(c) for c in ("segment", "person_id", "entered_at",
                                               "entered_run_id")}  # fmt: skip
        others = exp.select(*log_row({**same_columns, **tags})).from_(store.table(MEMBERS))
        if evaluated:
            others = others.where(
                exp.not_(column("segment").isin(*(exp.Literal.string(n) for n in evaluated)))
            )
        return [new, others]

    def remove_own_rows(self, run_id: str) -> None:
        """A losing run's rows are invisible; remove them now if it can (else the next
        run does). Its run rows stay: they say it failed."""
        mine = exp.and_(
            exp.column("run_id").eq(exp.Literal.string(run_id)),
            exp.column("kind").neq(exp.Literal.string(RUN)),
        )
        with contextlib.suppress(SegqlWarehouseError):
            self.run(exp.delete(self.tables.table(LOG), where=mine))


def require_transactions(warehouse: Warehouse, what: str) -> None:
    """A clear error for a command that rewrites published runs (``retire-run``,
    ``forget``, ``prune``) on an engine whose runs commit by a swap: not built there yet."""
    if warehouse.COMMIT_PROTOCOL == "swap":
        raise SegqlError(
            f"{what} is not supported on {warehouse.dialect.name} yet: its runs are published "
            "by a compare-and-swap, and this command would rewrite published runs",
            help="run it on a project whose warehouse has transactions (DuckDB, PostgreSQL,"
            " Snowflake)",
        )
