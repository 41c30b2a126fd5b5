"""Retiring the latest committed run: the way out of a run made by mistake (such as
``--as-of 9999-12-31``, which would refuse every later run as earlier than it).

History stays append-only. Retiring run R appends, under a new commit number, the opposite
of each change R recorded (reason ``run_retired``, at R's as-of time, so the stretch R
opened or closed has no length), puts the members back as they were before R, marks R
``retired`` and records the retirement as a committed row of ``segql_runs`` at the as-of
time of the run before R. All of it is one transaction under the run lock. Only the latest
committed run can be retired; retire again to go further back.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlError
from segql.project import Project
from segql.runs.runner import (
    Runner,
    _as_datetime,
    _insert_row,
    _insert_select,
    _timestamp,
    event_id,
)
from segql.runs.store import HISTORY, MEMBERS, RUNS
from segql.runs.swap_commit import require_transactions
from segql.timeutil import format_timestamp, utc_now

RETIRED = "retired"
# The as-of time recorded for the retirement of a project's first run: not null (reports
# order runs by it) and earlier than any run.
NO_RUN_BEFORE = datetime(1970, 1, 1)
REASON = "run_retired"


@dataclass(frozen=True)
class Retirement:
    """What retiring a run did."""

    run_id: str
    retired_run_id: str
    commit_seq: int
    changes: int
    as_of: datetime | None  # the as-of time later runs are checked against now


@dataclass(frozen=True)
class _Run:
    run_id: str
    as_of: datetime
    commit_seq: int


def retire_run(
    project: Project, warehouse: Warehouse, run_id: str, wait: float = 0.0
) -> Retirement:
    """Retire the latest committed run, named by its id or a prefix of it (12 characters
    are printed by ``segql run``)."""
    if not re.fullmatch(r"[0-9a-f]{4,32}", run_id):
        raise SegqlError(
            f"'{run_id}' is not a run id", help="run ids are hexadecimal, as segql run prints"
        )
    require_transactions(warehouse, "segql retire-run")
    runner = Runner(project, warehouse)
    runner.store.ensure_tables(warehouse)
    with runner.run_lock(wait):
        runner.fail_interrupted_runs()
        target = _latest_run(runner)
        if target is None or not target.run_id.startswith(run_id):
            raise SegqlError(_not_latest(runner, run_id, target))
        return _retire(runner, target)


def _committed(runner: Runner) -> list[tuple[str, datetime, int, str | None]]:
    """Committed rows of ``segql_runs``, latest first: (id, as_of, commit_seq, summary)."""
    column = exp.column
    select = (
        exp.select("run_id", "as_of", "commit_seq", "summary")
        .from_(runner.store.table(RUNS))
        .where(column("status").eq(exp.Literal.string("committed")))
        .order_by(exp.Ordered(this=column("commit_seq"), desc=True))
    )
    return [(r[0], r[1], int(r[2]), r[3]) for r in runner.warehouse.run(select)]


def _is_retirement(summary: str | None) -> bool:
    try:
        return "retired_run" in json.loads(summary or "{}")
    except ValueError:
        return False


def _latest_run(runner: Runner) -> _Run | None:
    """The latest committed run that is not itself a retirement."""
    for run_id, as_of, commit_seq, summary in _committed(runner):
        if not _is_retirement(summary):
            moment = _as_datetime(as_of)
            assert moment is not None
            return _Run(run_id, moment, commit_seq)
    return None


def _not_latest(runner: Runner, run_id: str, latest: _Run | None) -> str:
    # The prefix is matched here, not with LIKE: a '%' in SQL text is a placeholder to
    # some drivers (psycopg).
    select = exp.select("run_id", "status").from_(runner.store.table(RUNS))
    found = [row for row in runner.warehouse.run(select) if row[0].startswith(run_id)]
    if not found:
        return f"no run '{run_id}'"
    status = found[0][1]
    if status != "committed":
        return f"run {found[0][0][:12]} is {status}: only the latest committed run can be retired"
    assert latest is not None
    return (
        f"run {found[0][0][:12]} is not the latest committed run ({latest.run_id[:12]}, as-of "
        f"{format_timestamp(latest.as_of)}): only the latest can be retired; retire that first"
    )


def _retire(runner: Runner, target: _Run) -> Retirement:
    store, warehouse = runner.store, runner.warehouse
    retirement_id = uuid.uuid4().hex
    commit_seq = runner.next_commit_seq()
    before = _as_of_before(runner, target)
    of_target = exp.column("run_id", quoted=True).eq(exp.Literal.string(target.run_id))
    with warehouse.transaction():
        count = warehouse.run(
            exp.select(exp.Count(this=exp.Star())).from_(store.table(HISTORY)).where(of_target)
        )[0][0]
        warehouse.run(_insert_opposites(runner, target, retirement_id, commit_seq))
        entered = exp.column("entered_run_id", quoted=True).eq(exp.Literal.string(target.run_id))
        warehouse.run(exp.delete(store.table(MEMBERS), where=entered))
        warehouse.run(_restore_exited(runner, target))
        retired = exp.update(
            store.table(RUNS), {"status": exp.Literal.string(RETIRED)}, where=of_target.copy()
        )
        warehouse.run(retired)
        now = _timestamp(utc_now())
        values = {
            "run_id": exp.Literal.string(retirement_id),
            "as_of": _timestamp(before or NO_RUN_BEFORE),
            "started_at": now,
            "finished_at": now.copy(),
            "status": exp.Literal.string("committed"),
            "commit_seq": exp.Literal.number(commit_seq),
            "segments": exp.Literal.string("[]"),
            "summary": exp.Literal.string(json.dumps({"retired_run": target.run_id})),
        }
        warehouse.run(_insert_row(store.table(RUNS), values))
    return Retirement(retirement_id, target.run_id, commit_seq, int(count), before)


def _as_of_before(runner: Runner, target: _Run) -> datetime | None:
    """The as-of time of the latest committed run before ``target`` (None if there is none)."""
    for run_id, as_of, _, summary in _committed(runner):
        if run_id != target.run_id and not _is_retirement(summary):
            return _as_datetime(as_of)
    return None


def _insert_opposites(
    runner: Runner, target: _Run, retirement_id: str, commit_seq: int
) -> exp.Insert:
    """The opposite of each change of ``target``, at its as-of time, reason ``run_retired``."""
    column = exp.column
    opposite = exp.Case(
        this=column("change", quoted=True),
        ifs=[exp.If(this=exp.Literal.string("enter"), true=exp.Literal.string("exit"))],
        default=exp.Literal.string("enter"),
    )
    select = (
        exp.select(
            exp.alias_(event_id(retirement_id, opposite.copy()), "event_id", quoted=True),
            column("segment", quoted=True),
            column("person_id", quoted=True),
            exp.alias_(opposite, "change", quoted=True),
            exp.alias_(_timestamp(target.as_of), "as_of", quoted=True),
            exp.alias_(exp.Literal.string(retirement_id), "run_id", quoted=True),
            exp.alias_(exp.Literal.number(commit_seq), "commit_seq", quoted=True),
            column("version", quoted=True),
            exp.alias_(exp.Literal.string(REASON), "reason", quoted=True),
        )
        .from_(runner.store.table(HISTORY))
        .where(column("run_id", quoted=True).eq(exp.Literal.string(target.run_id)))
    )
    columns = [
        "event_id", "segment", "person_id", "change", "as_of", "run_id", "commit_seq",
        "version", "reason",
    ]  # fmt: skip
    return _insert_select(runner.store.table(HISTORY), columns, select)


def _restore_exited(runner: Runner, target: _Run) -> exp.Insert:
    """Members ``target`` exited, back with the time and run of the enter that made them
    members (their latest enter before it that no retirement wrote)."""
    column = exp.column
    history = runner.store.table(HISTORY, "h")
    exits = (
        exp.select(column("segment", quoted=True), column("person_id", quoted=True))
        .from_(runner.store.table(HISTORY))
        .where(
            exp.and_(
                column("run_id", quoted=True).eq(exp.Literal.string(target.run_id)),
                column("change", quoted=True).eq(exp.Literal.string("exit")),
            )
        )
    )
    latest_first = exp.Window(
        this=exp.RowNumber(),
        partition_by=[
            column("segment", table="h", quoted=True),
            column("person_id", table="h", quoted=True),
        ],
        order=exp.Order(
            expressions=[exp.Ordered(this=column("commit_seq", table="h", quoted=True), desc=True)]
        ),
    )
    enters = (
        exp.select(
            column("segment", table="h", quoted=True),
            column("person_id", table="h", quoted=True),
            exp.alias_(column("as_of", table="h", quoted=True), "entered_at", quoted=True),
            exp.alias_(column("run_id", table="h", quoted=True), "entered_run_id", quoted=True),
            exp.alias_(latest_first, "latest", quoted=True),
        )
        .from_(history)
        .join(
            exp.alias_(exp.Subquery(this=exits), "x"),
            on=exp.and_(
                column("segment", table="x", quoted=True).eq(
                    column("segment", table="h", quoted=True)
                ),
                column("person_id", table="x", quoted=True).eq(
                    column("person_id", table="h", quoted=True)
                ),
            ),
        )
        .where(
            exp.and_(
                column("change", table="h", quoted=True).eq(exp.Literal.string("enter")),
                column("reason", table="h", quoted=True).neq(exp.Literal.string(REASON)),
                column("commit_seq", table="h", quoted=True)
                < exp.Literal.number(target.commit_seq),
            )
        )
    )
    names = ["segment", "person_id", "entered_at", "entered_run_id"]
    select = (
        exp.select(*(column(n, quoted=True) for n in names))
        .from_(exp.alias_(exp.Subquery(this=enters), "e"))
        .where(column("latest", quoted=True).eq(exp.Literal.number(1)))
    )
    return _insert_select(runner.store.table(MEMBERS), names, select)
