"""A run's commit where there is no multi-statement transaction (Spark on Iceberg).

Each Iceberg statement commits atomically on its own, but a run writes several tables.
So a run writes its rows into append-only logs, each row tagged with the run's id and the
``commit_seq`` it means to take, and then makes ONE atomic step that publishes them: a
compare-and-swap of the one-row ``segql_head`` table,

    MERGE INTO segql_head ... ON commit_seq = <expected> WHEN MATCHED THEN UPDATE
        SET commit_seq = <expected + 1>, run_id = <this run>

which only one run can make (a second MERGE of the same row fails Iceberg's commit
check; ``WHEN NOT MATCHED THEN INSERT`` alone would not be a compare-and-swap). The
names readers use (``segql_runs``, ``segql_history``, ``segql_members``,
``segql_segment_versions``) are views that show published runs only: history and
versions rows of runs in ``segql_commits``, the membership snapshot of the head's run.

``complete_published`` is the bookkeeping after the swap, and the first step of every
run, so a run interrupted after its swap is completed by the next one: the head's run
gets its ``committed`` row; superseded membership snapshots and the rows of runs that
lost the swap or crashed (tagged with a ``commit_seq`` the head has reached without
them) are deleted. Rows of a run that may still win (tagged past the head) are left.
"""

from __future__ import annotations

import contextlib
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
RUNS_LOG = "segql_runs_log"
HISTORY_LOG = "segql_history_log"
MEMBERS_LOG = "segql_members_log"
VERSIONS_LOG = "segql_segment_versions_log"
# The tables readers know, each a view of its log.
VIEWED = (RUNS, HISTORY, MEMBERS, VERSIONS)
_TAGS = (("run_id", "VARCHAR"), ("commit_seq", "BIGINT"))
LOGS: dict[str, tuple[tuple[str, str], ...]] = {
    HEAD: (("head", "VARCHAR"), ("commit_seq", "BIGINT"), ("run_id", "VARCHAR")),
    # One row per status a run reached (running, ready, failed, committed): appends only,
    # so two runs never conflict on it.
    RUNS_LOG: (*TABLES[RUNS], ("recorded_at", "TIMESTAMP")),
    HISTORY_LOG: TABLES[HISTORY],
    # A full membership snapshot per run; partitioned by run, so dropping a superseded
    # one removes whole files.
    MEMBERS_LOG: (*TABLES[MEMBERS], *_TAGS),
    # A created version (retired_at null) or a retirement (retired_at set).
    VERSIONS_LOG: (*TABLES[VERSIONS], *_TAGS),
}
PARTITIONS = {MEMBERS_LOG: "run_id"}
HEAD_KEY = "head"

_VIEWS = {
    COMMITS: """
        SELECT run_id, commit_seq FROM :runs_log WHERE status = 'committed'
        UNION
        SELECT run_id, commit_seq FROM :head WHERE run_id IS NOT NULL
    """,
    RUNS: """
        SELECT r.run_id AS run_id, MAX(r.as_of) AS as_of, MIN(r.started_at) AS started_at,
          MAX(r.finished_at) AS finished_at,
          CASE WHEN MAX(c.run_id) IS NOT NULL THEN 'committed'
               WHEN MAX(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END) = 1 THEN 'failed'
               ELSE 'running' END AS status,
          MAX(c.commit_seq) AS commit_seq,
          CASE WHEN MAX(c.run_id) IS NULL THEN MAX(r.error) END AS error,
          MAX(r.segments) AS segments, MAX(r.summary) AS summary, MAX(r.mode) AS mode,
          MAX(r.full_reason) AS full_reason
        FROM :runs_log AS r LEFT JOIN :commits AS c ON c.run_id = r.run_id
        GROUP BY r.run_id
    """,
    HISTORY: """
        SELECT h.event_id, h.segment, h.person_id, h.change, h.as_of, h.run_id,
          h.commit_seq, h.version, h.reason
        FROM :history_log AS h
        JOIN :commits AS c ON c.run_id = h.run_id AND c.commit_seq = h.commit_seq
    """,
    MEMBERS: """
        SELECT m.segment, m.person_id, m.entered_at, m.entered_run_id
        FROM :members_log AS m
        JOIN (SELECT DISTINCT run_id, commit_seq FROM :head) AS h
          ON h.run_id = m.run_id AND h.commit_seq = m.commit_seq
    """,
    VERSIONS: """
        SELECT v.segment, v.version, v.definition_hash, v.source_text, v.created_at,
          r.retired_at
        FROM :versions_log AS v
        JOIN :commits AS c ON c.run_id = v.run_id AND c.commit_seq = v.commit_seq
        LEFT JOIN (
          SELECT g.segment, g.version, MIN(g.retired_at) AS retired_at
          FROM :versions_log AS g
          JOIN :commits AS k ON k.run_id = g.run_id AND k.commit_seq = g.commit_seq
          WHERE g.retired_at IS NOT NULL
          GROUP BY g.segment, g.version
        ) AS r ON r.segment = v.segment AND r.version = v.version
        WHERE v.retired_at IS NULL
    """,
}
_SWAP = """
    MERGE INTO :head AS t USING (SELECT :key AS head) AS s
    ON t.head = s.head AND t.commit_seq = :expected
    WHEN MATCHED THEN UPDATE SET commit_seq = :seq, run_id = :run_id
"""
_COMPLETE = """
    INSERT INTO :runs_log (run_id, as_of, started_at, finished_at, status, commit_seq, error,
      segments, summary, mode, full_reason, recorded_at)
    SELECT run_id, as_of, started_at, finished_at, 'committed', commit_seq, error, segments,
      summary, mode, full_reason, :now
    FROM :runs_log WHERE run_id = :run_id AND status = 'ready'
"""
# Runs that readied a commit_seq the head has reached without them: they lost or crashed.
_LOSERS = """
    SELECT DISTINCT r.run_id FROM :runs_log AS r
    WHERE r.status = 'ready' AND r.commit_seq <= :seq
      AND r.run_id NOT IN (SELECT run_id FROM :commits)
      AND r.run_id NOT IN (SELECT run_id FROM :runs_log WHERE status = 'failed')
"""
_LEFT_OVER = "commit_seq <= :seq AND run_id NOT IN (SELECT run_id FROM :commits)"


def _parse(template: str, **values: exp.Expr) -> exp.Expr:
    return exp.replace_placeholders(sqlglot.parse_one(template, read="spark"), **values)


def _timestamp(value: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(format_timestamp(value)), "TIMESTAMP")


class SwapTables:
    """The logs, the head and the views of one project schema."""

    def __init__(self, store: Store):
        self.store = store

    def names(self) -> dict[str, exp.Expr]:
        tables = {
            "head": HEAD, "runs_log": RUNS_LOG, "history_log": HISTORY_LOG,
            "members_log": MEMBERS_LOG, "versions_log": VERSIONS_LOG, "commits": COMMITS,
        }  # fmt: skip
        return {key: self.store.table(name) for key, name in tables.items()}

    def parse(self, template: str, **values: exp.Expr) -> exp.Expr:
        return _parse(template, **self.names(), **values)

    def ensure(self, warehouse: Warehouse) -> None:
        for name, columns in LOGS.items():
            create = self.store.create_table(name, columns, primary_key=False)
            properties = warehouse.table_properties()
            if name in PARTITIONS:
                partition = exp.Schema(expressions=[exp.to_identifier(PARTITIONS[name])])
                properties = [*properties, exp.PartitionedByProperty(this=partition)]
            if properties:
                create.set("properties", exp.Properties(expressions=properties))
            warehouse.run(create)
        head_rows = warehouse.run(exp.select(exp.Count(this=exp.Star())).from_(self.table(HEAD)))
        if not head_rows[0][0]:
            # Two first runs at once may both insert it: the rows are alike, every reader
            # reads them as one, and the swap updates them together.
            row = exp.Tuple(
                expressions=[exp.Literal.string(HEAD_KEY), exp.Literal.number(0), exp.null()]
            )
            warehouse.run(exp.insert(exp.Values(expressions=[row]), self.table(HEAD)))
        for name, template in _VIEWS.items():
            view = exp.Create(
                this=self.table(name), kind="VIEW", expression=self.parse(template), exists=True
            )
            warehouse.run(view)
        intervals = self.store.intervals_view()
        intervals.set("replace", False)
        intervals.set("exists", True)  # two runs replacing it at once would conflict
        warehouse.run(intervals)

    def table(self, name: str) -> exp.Table:
        return self.store.table(name)


def ensure_swap_tables(store: Store, warehouse: Warehouse) -> None:
    SwapTables(store).ensure(warehouse)


class SwapCommit:
    """The commit protocol of one run (``Runner`` calls it where it would use a
    transaction)."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.warehouse = runner.warehouse
        self.tables = SwapTables(runner.store)
        self.expected: int | None = None  # the head this run's diff was made against

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

    # --- run rows ----------------------------------------------------------------------

    def append_run_row(self, values: dict[str, exp.Expr]) -> None:
        from segql.runs.runner import _insert_row

        given = {**values, "recorded_at": _timestamp(utc_now())}
        # Every column named: Spark does not fill the missing ones of an Iceberg table.
        row = {
            column: given.get(column, exp.cast(exp.null(), kind)) for column, kind in LOGS[RUNS_LOG]
        }
        self.run(_insert_row(self.tables.table(RUNS_LOG), row))

    def mark_failed(self, run_id: str, message: str) -> None:
        self.append_run_row(
            {
                "run_id": exp.Literal.string(run_id),
                "status": exp.Literal.string("failed"),
                "error": exp.Literal.string(message[:2000]),
                "finished_at": _timestamp(utc_now()),
            }
        )

    # --- bookkeeping -------------------------------------------------------------------

    def complete_published(self) -> int:
        """Finish what the head's run may have left undone, remove what losing and crashed
        runs left; the head's ``commit_seq``, which this run's diff is made against."""
        seq, head_run = self.head()
        self.expected = seq
        if head_run is None:
            return seq
        run_id = exp.Literal.string(head_run)
        tables = self.tables
        committed = (
            exp.select(exp.Count(this=exp.Star()))
            .from_(tables.table(RUNS_LOG))
            .where(
                exp.and_(
                    exp.column("run_id").eq(run_id.copy()),
                    exp.column("status").eq(exp.Literal.string("committed")),
                )
            )
        )
        if not self.run(committed)[0][0]:
            self.run(tables.parse(_COMPLETE, run_id=run_id, now=_timestamp(utc_now())))
        superseded = exp.and_(
            exp.column("commit_seq") <= exp.Literal.number(seq),
            exp.column("run_id").neq(run_id.copy()),
        )
        self.delete_if_any(MEMBERS_LOG, superseded)
        left_over = tables.parse("SELECT 1 WHERE " + _LEFT_OVER, seq=exp.Literal.number(seq))
        condition = left_over.args["where"].this
        for log in (HISTORY_LOG, VERSIONS_LOG):
            self.delete_if_any(log, condition.copy())
        for (loser,) in self.run(tables.parse(_LOSERS, seq=exp.Literal.number(seq))):
            self.mark_failed(str(loser), "another run committed first: nothing was recorded")
        return seq

    def delete_if_any(self, log: str, condition: exp.Expr) -> None:
        """DELETE only when rows match: a delete that finds nothing still costs a job."""
        table = self.tables.table(log)
        count = exp.select(exp.Count(this=exp.Star())).from_(table).where(condition)
        if self.run(count)[0][0]:
            self.run(exp.delete(table.copy(), where=condition.copy()))

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
        """Write the run's rows tagged with it, then swap the head; its ``commit_seq``.
        ``mode``: the run's mode and why it recomputed, as ``segql_runs`` records them."""
        from segql.runs.runner import _crash_point

        expected = self.expected if self.expected is not None else self.head()[0]
        seq = expected + 1
        now = utc_now()
        self.insert_versions(run_id, seq, now, deleted, changed, versions)
        history = self.runner.insert_history(run_id, as_of, seq, version_of)
        history.this.set("this", self.tables.table(HISTORY_LOG))
        self.run(history)
        _crash_point("after_history_insert")
        self.run(self.snapshot(run_id, seq, as_of, [*names, *deleted]))
        ready = self.ready_row(run_id, as_of, seq, names, data)
        ready["mode"] = exp.Literal.string(mode[0])
        ready["full_reason"] = exp.Literal.string(mode[1]) if mode[1] else exp.null()
        self.append_run_row(ready)
        _crash_point("before_swap")
        if not self.swap(expected, seq, run_id):
            self.remove_own_rows(run_id)
            raise SegqlError(
                f"another segql run committed first (commit_seq {seq}) while this one ran: "
                "this run recorded nothing",
                help="run again: it will start from the other run's result",
            )
        _crash_point("after_swap")
        try:
            self.complete_published()
        except SegqlWarehouseError as error:  # published: the next run completes it
            self.runner.progress(f"the run is committed; its bookkeeping is left: {error}")
        return seq

    def ready_row(
        self, run_id: str, as_of: datetime, seq: int, names: Sequence[str], data: dict[str, int]
    ) -> dict[str, exp.Expr]:
        import json

        return {
            "run_id": exp.Literal.string(run_id),
            "as_of": _timestamp(as_of),
            "status": exp.Literal.string("ready"),
            "commit_seq": exp.Literal.number(seq),
            "finished_at": _timestamp(utc_now()),
            "segments": exp.Literal.string(json.dumps(list(names))),
            "summary": exp.Literal.string(json.dumps(data)),
        }

    def insert_versions(
        self,
        run_id: str,
        seq: int,
        now: datetime,
        deleted: Sequence[str],
        changed: dict[str, tuple[int, str, str]],
        versions: dict[str, tuple[int, str]],
    ) -> None:
        """Retirements (of deleted and redefined segments) and new versions, in one INSERT."""
        null = exp.null
        rows: list[list[exp.Expr]] = []
        retired = [*deleted, *(name for name in changed if name in versions)]
        for name in retired:
            number = versions[name][0]
            rows.append([exp.Literal.string(name), exp.Literal.number(number), null(), null(),
                         null(), _timestamp(now)])  # fmt: skip
        for name, (number, text, digest) in changed.items():
            rows.append([exp.Literal.string(name), exp.Literal.number(number),
                         exp.Literal.string(digest), exp.Literal.string(text), _timestamp(now),
                         null()])  # fmt: skip
        if not rows:
            return
        tags = [exp.Literal.string(run_id), exp.Literal.number(seq)]
        values = exp.Values(
            expressions=[exp.Tuple(expressions=[*row, *(t.copy() for t in tags)]) for row in rows]
        )
        columns = [c for c, _ in LOGS[VERSIONS_LOG]]
        target = exp.Schema(
            this=self.tables.table(VERSIONS_LOG),
            expressions=[exp.to_identifier(c, quoted=True) for c in columns],
        )
        self.run(exp.Insert(this=target, expression=values))

    def snapshot(self, run_id: str, seq: int, as_of: datetime, evaluated: list[str]) -> exp.Insert:
        """The membership after this run: the new members of the evaluated segments (who
        keep their ``entered_at`` if they were in), and the other segments' members."""
        from segql.runs.runner import NEW_MEMBERS, _insert_select

        store = self.runner.store
        column = exp.column
        tags = [
            exp.alias_(exp.Literal.string(run_id), "run_id", quoted=True),
            exp.alias_(exp.Literal.number(seq), "commit_seq", quoted=True),
        ]
        same = exp.and_(
            column("segment", table="m", quoted=True).eq(column("segment", table="n", quoted=True)),
            column("person_id", table="m", quoted=True).eq(
                column("person_id", table="n", quoted=True)
            ),
        )
        new = (
            exp.select(
                column("segment", table="n", quoted=True),
                column("person_id", table="n", quoted=True),
                exp.alias_(
                    exp.Coalesce(
                        this=column("entered_at", table="m", quoted=True),
                        expressions=[_timestamp(as_of)],
                    ),
                    "entered_at",
                    quoted=True,
                ),
                exp.alias_(
                    exp.Coalesce(
                        this=column("entered_run_id", table="m", quoted=True),
                        expressions=[exp.Literal.string(run_id)],
                    ),
                    "entered_run_id",
                    quoted=True,
                ),
                *tags,
            )
            .from_(
                exp.Table(
                    this=exp.to_identifier(NEW_MEMBERS, quoted=True),
                    alias=exp.TableAlias(this=exp.to_identifier("n")),
                )
            )
            .join(store.table(MEMBERS, alias="m"), on=same, join_type="left")
        )
        others = exp.select(
            column("segment", quoted=True),
            column("person_id", quoted=True),
            column("entered_at", quoted=True),
            column("entered_run_id", quoted=True),
            *(t.copy() for t in tags),
        ).from_(store.table(MEMBERS))
        if evaluated:
            others = others.where(
                exp.not_(
                    column("segment", quoted=True).isin(*(exp.Literal.string(n) for n in evaluated))
                )
            )
        columns = [c for c, _ in LOGS[MEMBERS_LOG]]
        return _insert_select(
            self.tables.table(MEMBERS_LOG), columns, exp.union(new, others, distinct=False)
        )

    def remove_own_rows(self, run_id: str) -> None:
        """A losing run's rows are invisible; remove them now if it can (else the next
        run does)."""
        mine = exp.column("run_id").eq(exp.Literal.string(run_id))
        for log in (HISTORY_LOG, MEMBERS_LOG, VERSIONS_LOG):
            with contextlib.suppress(SegqlWarehouseError):
                self.run(exp.delete(self.tables.table(log), where=mine.copy()))


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
