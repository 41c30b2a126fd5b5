"""The dispatcher: reads each action's changes after its cursor and records outcomes.

How a change is never lost, for each action:

- its cursor (``segql_cursors``, consumer ``dispatch:<action name>``) is a ``commit_seq``
  below which every change of the action was delivered, skipped or parked;
- changes are read after the cursor in commit order, in batches of ``batch_size``,
  leaving out those ``segql_deliveries`` already records for the action (a batch half
  done before a crash), and only from runs whose ``as_of + delay`` has passed;
- a batch is sent, then one transaction records every change of it as ``delivered``,
  ``skipped`` or ``failed`` (parked) in ``segql_deliveries`` and moves the cursor past
  the commits the batch finished.

A crash between sending and recording sends that batch again: receivers deduplicate by
``event_id``. ``retry_failed`` sends parked changes again. ``on = "member"`` sends every
current member once per run, each with an event id made of the action, person and run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlglot import exp

from segql.compile.sqltext import generate_sql
from segql.config import ProjectConfig
from segql.downstream.consumers import (
    change_from_row,
    latest_commit_seq,
    read_cursor,
    require_tables,
    select_changes,
    write_cursor_statements,
)
from segql.downstream.dispatch.actions import AUDIENCE_FIELDS, Action, parse_actions
from segql.downstream.dispatch.destinations import make_destination
from segql.downstream.dispatch.payloads import PropertyReader, Record, payload
from segql.downstream.dispatch.senders import FileWriter, Outcome, Sender, WebhookSender
from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlConfigError, SegqlError, did_you_mean
from segql.reading.reports import CHANGE_COLUMNS, Change, Rows
from segql.runs.store import DELIVERIES, HISTORY, MEMBERS, RUNS, VERSIONS, Store
from segql.timeutil import format_timestamp, utc_now

Progress = Callable[[str], None]
DELIVERED = "delivered"
FAILED = "failed"
SKIPPED = "skipped"


# A batch as read: after this key, up to that key, up to this commit, of this change.
_Span = tuple[tuple[int, str], tuple[int, str], int, "str | None"]


@dataclass
class _Tally:
    delivered: int = 0
    parked: int = 0
    skipped: int = 0
    sent: int = 0

    def add(self, outcomes: Sequence[Outcome]) -> None:
        self.delivered += sum(o.delivered and not o.skipped for o in outcomes)
        self.skipped += sum(o.skipped for o in outcomes)
        self.parked += sum(not o.delivered for o in outcomes)
        self.sent += len(outcomes)


def _status(outcome: Outcome) -> str:
    if outcome.skipped:
        return SKIPPED
    return DELIVERED if outcome.delivered else FAILED


class Dispatcher:
    """Runs the project's actions against one warehouse session."""

    def __init__(
        self,
        project: Any,
        warehouse: Warehouse,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wait: float = 0.0,
    ):
        self.project = project
        self.config: ProjectConfig = project.config
        self.warehouse = warehouse
        self.store = Store(self.config.warehouse.schema)
        self.progress = progress or (lambda message: None)
        self.sleep = sleep
        self.wait = wait
        self.actions = parse_actions(self.config)
        self.readers: dict[str, PropertyReader] = {}

    # -- choosing actions

    def select(self, names: Sequence[str] | None = None) -> list[Action]:
        """The named actions (all when none are named), checked against the project."""
        if not self.actions:
            raise SegqlConfigError(
                "segql.toml has no [[actions]] to dispatch",
                help='add one: [[actions]] segment = "..." on = "enter" webhook = { url = "..." }',
            )
        chosen = self.actions
        if names:
            by_name = {a.name: a for a in self.actions}
            for name in names:
                if name not in by_name:
                    guess = did_you_mean(name, by_name)
                    raise SegqlError(
                        f"no action named '{name}'"
                        + (f": did you mean '{guess}'?" if guess else ""),
                        help="actions: " + ", ".join(by_name),
                    )
            chosen = [by_name[n] for n in dict.fromkeys(names)]
        require_tables(self.warehouse, self.store.schema)
        known = set(self.project.segment_names) | self._recorded_segments()
        columns: list[str] | None = None
        traits = self.project.definitions.traits
        for action in chosen:
            if action.segment not in known:
                guess = did_you_mean(action.segment, known)
                raise SegqlConfigError(
                    f"{action.where()}: segment '{action.segment}' is not a segment of this project"
                    + (f": did you mean '{guess}'?" if guess else ""),
                )
            if columns is None and action.properties:
                found = self.warehouse.table_columns(self.config.entity.table) or []
                columns = [c for c, _ in found]
            for name in action.properties:
                if name not in (columns or []) and name not in traits:
                    guess = did_you_mean(name, [*(columns or []), *traits])
                    what = "a column of " + self.config.entity.table
                    if action.service is not None and action.service.kind in AUDIENCE_FIELDS:
                        help = (
                            f"name a column or trait {name}: {action.service.kind} reads that field"
                        )
                    else:
                        help = (
                            "columns: "
                            + ", ".join(columns or [])
                            + ("; traits: " + ", ".join(traits) if traits else "")
                        )
                    raise SegqlConfigError(
                        f"{action.where()}: properties: '{name}' is not {what} or a trait"
                        + (f": did you mean '{guess}'?" if guess else ""),
                        help=help,
                    )
            if any(p in traits for p in action.properties):
                self.project.read_catalog(self.warehouse)
        return chosen

    def _recorded_segments(self) -> set[str]:
        select = (
            exp.select(exp.column("segment", quoted=True))
            .distinct()
            .from_(self.store.table(VERSIONS))
        )
        return {row[0] for row in self.warehouse.run(select)}

    # -- dispatching

    def _unpaused(self, actions: Sequence[Action]) -> Iterator[Action]:
        """The actions whose segment is not paused: a paused one sends nothing, and its
        cursor waits until the segment is unpaused."""
        paused = set(self.project.paused_segments)
        for action in actions:
            if action.segment in paused:
                self.progress(f"{action.name}: segment {action.segment} is paused")
                continue
            yield action

    def dispatch(self, names: Sequence[str] | None = None) -> Rows:
        """Deliver every due change after each action's cursor; a summary row per action."""
        actions = self.select(names)
        rows = []
        with self._lock():
            for action in self._unpaused(actions):
                started = time.monotonic()
                if not action.enabled:
                    self.progress(f"{action.name}: disabled (enabled = false)")
                    cursor = read_cursor(self.warehouse, self.store, action.cursor_name)
                    rows.append((action.name, action.segment, action.on, action.kind, 0, 0,
                                 cursor, 0.0, 0))  # fmt: skip
                    continue
                if action.on == "member":
                    tally, cursor = self._dispatch_members(action)
                else:
                    tally, cursor = self._dispatch_action(action)
                seconds = round(time.monotonic() - started, 2)
                rows.append((action.name, action.segment, action.on, action.kind,
                             tally.delivered, tally.parked, cursor, seconds,
                             tally.skipped))  # fmt: skip
        columns = ("action", "segment", "on", "destination", "delivered", "parked", "cursor",
                   "seconds", "skipped")  # fmt: skip
        return Rows(columns, rows)

    def _due_commit_seq(self, action: Action) -> int:
        """The last committed run whose ``as_of + delay`` has passed."""
        if not action.delay:
            return latest_commit_seq(self.warehouse, self.store)
        due = utc_now() - timedelta(seconds=action.delay)
        column = exp.column
        select = (
            exp.select(exp.Max(this=column("commit_seq", quoted=True)))
            .from_(self.store.table(RUNS))
            .where(
                exp.and_(
                    column("status", quoted=True).eq(exp.Literal.string("committed")),
                    column("as_of", quoted=True)
                    <= exp.cast(exp.Literal.string(format_timestamp(due)), "TIMESTAMP"),
                )
            )
        )
        value = self.warehouse.run(select)[0][0]
        return int(value or 0)

    def _start_cursor(self, action: Action, upto: int) -> int:
        cursor = read_cursor(self.warehouse, self.store, action.cursor_name)
        if cursor is None:
            cursor = latest_commit_seq(self.warehouse, self.store) if action.start == "now" else 0
            self._record(action, [], cursor)
        return cursor

    def _dispatch_action(self, action: Action) -> tuple[_Tally, int]:
        upto = self._due_commit_seq(action)
        cursor = self._start_cursor(action, upto)
        change = None if action.mirror else action.on
        pending = self._count_pending(action, cursor, upto)
        tally = _Tally()
        if pending == 0:
            if upto > cursor:
                self._record(action, [], upto)
            self.progress(f"{action.name}: nothing to send")
            return tally, max(cursor, upto)
        self.progress(f"{action.name}: {pending} changes to send ({action.kind} {action.target})")
        sender = self._sender(action)
        started = last_report = time.monotonic()
        after = (cursor, "")
        try:
            while True:
                rows = self.warehouse.run(
                    select_changes(
                        self.store,
                        after,
                        upto,
                        action.batch_size,
                        segment=action.segment,
                        change=change,
                        undelivered_to=action.name,
                    )
                )
                changes = [change_from_row(r) for r in rows]
                if not changes:
                    cursor = max(cursor, upto)
                    self._record(action, [], cursor)
                    break
                outcomes = self._send(action, sender, changes)
                _crash_point("after_send")
                done = len(changes) < action.batch_size
                # Every change of a commit before the batch's last commit is now recorded.
                new_cursor = upto if done else max(cursor, changes[-1].commit_seq - 1)
                span = (after, (changes[-1].commit_seq, changes[-1].event_id), upto, change)
                self._record(action, outcomes, new_cursor, span=span)
                cursor = new_cursor
                tally.add(outcomes)
                now = time.monotonic()
                if done or now - last_report >= 1.0:
                    last_report = now
                    rate = tally.sent / max(now - started, 1e-9)
                    self.progress(
                        f"{action.name}: {tally.sent}/{pending} ({tally.delivered} delivered, "
                        f"{tally.parked} parked) {rate:,.0f}/s"
                    )
                if done:
                    break
                after = (changes[-1].commit_seq, changes[-1].event_id)
        finally:
            sender.close()
        return tally, cursor

    def _dispatch_members(self, action: Action) -> tuple[_Tally, int]:
        """``on = "member"``: every current member, once for the latest due run."""
        upto = self._due_commit_seq(action)
        cursor = self._start_cursor(action, upto)
        tally = _Tally()
        latest = latest_commit_seq(self.warehouse, self.store)
        if upto <= cursor or upto < latest:  # nothing new, or the latest run is not due yet
            self.progress(f"{action.name}: nothing to send")
            return tally, cursor
        as_of = self._run_as_of(upto)
        members = [
            Change(upto, member_event_id(action, person, upto), action.segment, person,
                   "member", as_of, "member", None, "")
            for person, _ in self._members(action.segment)
        ]  # fmt: skip
        self.progress(f"{action.name}: {len(members)} members to send ({action.kind})")
        sender = self._sender(action)
        try:
            for start in range(0, len(members), action.batch_size):
                chunk = members[start : start + action.batch_size]
                recorded = self._recorded_ids(action, [c.event_id for c in chunk])
                chunk = [c for c in chunk if c.event_id not in recorded]
                if not chunk:
                    continue
                outcomes = self._send(action, sender, chunk)
                _crash_point("after_send")
                self._record(action, outcomes, None)
                tally.add(outcomes)
        finally:
            sender.close()
        self._record(action, [], upto)
        return tally, upto

    def _sender(self, action: Action) -> Sender:
        if action.service is not None:
            return make_destination(action, self.warehouse, self.sleep)
        if action.webhook is not None:
            return WebhookSender(action, self.sleep)
        return FileWriter(action, self.config.root, self.sleep)

    def _reader(self, action: Action) -> PropertyReader:
        if action.name not in self.readers:
            self.readers[action.name] = PropertyReader(
                self.project, self.warehouse, action.properties
            )
        return self.readers[action.name]

    def records(self, action: Action, changes: Sequence[Change]) -> list[Record]:
        """The records of these changes, with their properties at each run's as-of."""
        properties = self._reader(action).read((c.person_id, c.as_of) for c in changes)
        return [payload(c, properties.get((c.person_id, c.as_of), {})) for c in changes]

    def _send(self, action: Action, sender: Sender, changes: Sequence[Change]) -> list[Outcome]:
        return sender.send_batch(self.records(action, changes))

    def _record(
        self,
        action: Action,
        outcomes: Sequence[Outcome],
        cursor: int | None,
        previous_attempts: Mapping[str, int] | None = None,
        span: _Span | None = None,
    ) -> None:
        """In one transaction: each outcome in ``segql_deliveries``, and the cursor.

        New outcomes are inserted (the changes were picked because no row existed);
        outcomes of a retry (``previous_attempts`` given) replace their rows. When every
        outcome of a batch read as ``span`` is alike (all delivered at the first try, say),
        one ``INSERT ... SELECT`` over the history rows of the span records them: the
        same rows, without a list of their ids to build and bind."""
        now = utc_now()
        alike = {(_status(o), o.attempts, o.error) for o in outcomes}
        if span is not None and previous_attempts is None and len(alike) == 1:
            ((status, attempts, error),) = alike
            with self.warehouse.transaction():
                self.warehouse.run(self._insert_span(action, span, status, attempts, error, now))
                if cursor is not None:
                    for statement in write_cursor_statements(
                        self.store, action.cursor_name, cursor
                    ):
                        self.warehouse.run(statement)
            return
        name = exp.Literal.string(action.name)
        # Outcomes alike but for their event id go in one INSERT ... SELECT over a
        # one-column VALUES list: far cheaper to generate and to bind than full rows.
        groups: dict[tuple[str, int, str | None], list[str]] = {}
        for o in outcomes:
            attempts = o.attempts + (previous_attempts or {}).get(o.event_id, 0)
            error = None if o.delivered and not o.skipped else o.error
            groups.setdefault((_status(o), attempts, error), []).append(o.event_id)
        with self.warehouse.transaction():
            for (status, attempts, error), ids in groups.items():
                for chunk in _chunks(ids, 1000):
                    if previous_attempts is not None:
                        self.warehouse.run(self._delete_deliveries(action, chunk))
                    self._run_uncopied(
                        self._insert_deliveries(name, chunk, status, attempts, error, now)
                    )
            if cursor is not None:
                for statement in write_cursor_statements(self.store, action.cursor_name, cursor):
                    self.warehouse.run(statement)

    def _insert_span(
        self,
        action: Action,
        span: _Span,
        status: str,
        attempts: int,
        error: str | None,
        now: datetime,
    ) -> exp.Insert:
        """Deliveries for every change a batch read: those after ``span``'s first key up
        to its last, of the action's segment and change, not yet recorded."""
        after, (last_seq, last_id), upto, change = span
        inner = select_changes(
            self.store, after, upto, 1, segment=action.segment, change=change,
            undelivered_to=action.name,
        )  # fmt: skip
        inner.set("limit", None)
        inner.set("order", None)
        seq, event_id = (exp.column(c, table="h", quoted=True) for c in ("commit_seq", "event_id"))
        inner = inner.where(
            exp.or_(
                seq < exp.Literal.number(last_seq),
                exp.and_(seq.copy().eq(exp.Literal.number(last_seq)),
                         event_id <= exp.Literal.string(last_id)),
            )
        )  # fmt: skip
        columns = ("destination", "event_id", "status", "attempts", "last_error",
                   "delivered_at")  # fmt: skip
        select = exp.select(
            exp.Literal.string(action.name),
            exp.column("event_id", table="batch", quoted=True),
            exp.Literal.string(status),
            exp.Literal.number(attempts),
            exp.cast(exp.Null() if error is None else exp.Literal.string(error[:1000]), "VARCHAR"),
            exp.cast(
                exp.Literal.string(format_timestamp(now)) if status != FAILED else exp.Null(),
                "TIMESTAMP",
            ),
        ).from_(inner.subquery("batch"))
        target = exp.Schema(
            this=self.store.table(DELIVERIES),
            expressions=[exp.to_identifier(c, quoted=True) for c in columns],
        )
        return exp.Insert(this=target, expression=select)

    def _delete_deliveries(self, action: Action, ids: Sequence[str]) -> exp.Delete:
        where = exp.and_(
            exp.column("destination", quoted=True).eq(exp.Literal.string(action.name)),
            exp.In(
                this=exp.column("event_id", quoted=True),
                expressions=[exp.Literal.string(i) for i in ids],
            ),
            copy=False,
        )
        return exp.delete(self.store.table(DELIVERIES), where=where)

    def _insert_deliveries(
        self,
        name: exp.Literal,
        ids: Sequence[str],
        status: str,
        attempts: int,
        error: str | None,
        now: datetime,
    ) -> exp.Insert:
        columns = ("destination", "event_id", "status", "attempts", "last_error",
                   "delivered_at")  # fmt: skip
        values = exp.Values(
            expressions=[exp.Tuple(expressions=[exp.Literal.string(i)]) for i in ids],
            alias=exp.TableAlias(
                this=exp.to_identifier("v"), columns=[exp.to_identifier("event_id", quoted=True)]
            ),
        )
        select = exp.select(
            name.copy(),
            exp.column("event_id", table="v", quoted=True),
            exp.Literal.string(status),
            exp.Literal.number(attempts),
            exp.cast(exp.Null() if error is None else exp.Literal.string(error[:1000]), "VARCHAR"),
            exp.cast(
                exp.Literal.string(format_timestamp(now)) if status != FAILED else exp.Null(),
                "TIMESTAMP",
            ),
            copy=False,
        ).from_(values, copy=False)
        target = exp.Schema(
            this=self.store.table(DELIVERIES),
            expressions=[exp.to_identifier(c, quoted=True) for c in columns],
        )
        return exp.Insert(this=target, expression=select)

    def _run_uncopied(self, statement: exp.Expr) -> None:
        """Run a large statement built here without the defensive copy ``run`` makes."""
        self.warehouse.query(generate_sql(statement, self.warehouse.dialect.sqlglot, copy=False))

    def _recorded_ids(self, action: Action, ids: Sequence[str]) -> set[str]:
        select = (
            exp.select(exp.column("event_id", quoted=True))
            .from_(self.store.table(DELIVERIES))
            .where(
                exp.and_(
                    exp.column("destination", quoted=True).eq(exp.Literal.string(action.name)),
                    exp.In(
                        this=exp.column("event_id", quoted=True),
                        expressions=[exp.Literal.string(i) for i in ids],
                    ),
                )
            )
        )
        return {row[0] for row in self.warehouse.run(select)}

    def _members(self, segment: str) -> list[tuple[str, datetime]]:
        select = (
            exp.select(exp.column("person_id", quoted=True), exp.column("entered_at", quoted=True))
            .from_(self.store.table(MEMBERS))
            .where(exp.column("segment", quoted=True).eq(exp.Literal.string(segment)))
            .order_by(exp.column("person_id", quoted=True))
        )
        return [(str(r[0]), r[1]) for r in self.warehouse.run(select)]

    def _run_as_of(self, commit_seq: int) -> datetime | None:
        select = (
            exp.select(exp.column("as_of", quoted=True))
            .from_(self.store.table(RUNS))
            .where(exp.column("commit_seq", quoted=True).eq(exp.Literal.number(commit_seq)))
        )
        rows = self.warehouse.run(select)
        return rows[0][0] if rows else None

    # -- a full reconciliation

    def resync(self, name: str) -> Rows:
        """``--resync ACTION``: make a mirrored destination hold exactly the segment's
        current members, then move the action's cursor to the latest run."""
        (action,) = self.select([name])
        if action.service is None:
            raise SegqlError(
                f"{action.where()} '{action.name}' sends to a {action.kind}: --resync is for "
                "built-in destinations (resend, meta_custom_audience, table)",
            )
        started = time.monotonic()
        with self._lock():
            upto = latest_commit_seq(self.warehouse, self.store)
            as_of = self._run_as_of(upto)
            members = self._members(action.segment)
            current = {p for p, _ in members}
            member_changes = [
                Change(upto, "", action.segment, p, "enter", as_of, "resync", None, "")
                for p, _ in members
            ]
            gone = [
                Change(upto, "", action.segment, p, "exit", as_of, "resync", None, "")
                for p in self._people_who_left(action.segment)
                if p not in current
            ]
            self.progress(f"{action.name}: {len(members)} members, {len(gone)} who left")
            records = self.records(action, member_changes)
            entered = dict(members)
            for record in records:
                record["entered_at"] = entered[record["person_id"]]
            gone_records = self.records(action, gone)
            sender = self._sender(action)
            try:
                added, removed, failed = sender.resync(records, gone_records)  # type: ignore[attr-defined]
            finally:
                sender.close()
            if failed:
                raise SegqlError(
                    f"{action.name}: {failed} of the resync's requests failed; the cursor "
                    "stays: run --resync again"
                )
            self._record(action, [], upto)
        seconds = round(time.monotonic() - started, 2)
        columns = ("action", "members", "added", "removed", "cursor", "seconds")
        return Rows(columns, [(action.name, len(members), added, removed, upto, seconds)])

    def _people_who_left(self, segment: str) -> list[str]:
        select = (
            exp.select(exp.column("person_id", quoted=True))
            .distinct()
            .from_(self.store.table(HISTORY))
            .where(
                exp.and_(
                    exp.column("segment", quoted=True).eq(exp.Literal.string(segment)),
                    exp.column("change", quoted=True).eq(exp.Literal.string("exit")),
                )
            )
        )
        return sorted(str(r[0]) for r in self.warehouse.run(select))

    # -- parked changes

    def retry_failed(self, names: Sequence[str] | None = None) -> Rows:
        """Send the parked changes of each action again; one summary row per action."""
        actions = self.select(names)
        rows = []
        with self._lock():
            for action in self._unpaused(actions):
                started = time.monotonic()
                failed = self._failed_changes(action)
                tally = _Tally()
                if action.mirror and failed:
                    failed = self._drop_superseded(action, failed)
                if failed:
                    self.progress(f"{action.name}: retrying {len(failed)} parked changes")
                    sender = self._sender(action)
                    try:
                        for chunk in _chunks(failed, action.batch_size):
                            changes = [c for c, _ in chunk]
                            outcomes = self._send(action, sender, changes)
                            previous = {c.event_id: n for c, n in chunk}
                            cursor = read_cursor(self.warehouse, self.store, action.cursor_name)
                            self._record(action, outcomes, cursor, previous)
                            tally.add(outcomes)
                            self.progress(
                                f"{action.name}: {tally.sent}/{len(failed)} retried "
                                f"({tally.delivered} delivered, {tally.parked} still failing)"
                            )
                    finally:
                        sender.close()
                seconds = round(time.monotonic() - started, 2)
                rows.append((action.name, len(failed), tally.delivered, tally.parked, seconds))
        return Rows(("action", "retried", "delivered", "still_failed", "seconds"), rows)

    def _drop_superseded(
        self, action: Action, failed: list[tuple[Change, int]]
    ) -> list[tuple[Change, int]]:
        """A mirror's parked changes that a later change of the same person made moot
        (a parked add before a delivered remove) are recorded as skipped, not resent:
        sending them now would undo the later change."""
        people = sorted({c.person_id for c, _ in failed})
        latest: dict[str, str] = {}
        for chunk in _chunks(people, 1000):
            select = (
                exp.select(*(exp.column(c, quoted=True) for c in ("person_id", "event_id")))
                .from_(self.store.table(HISTORY))
                .where(
                    exp.and_(
                        exp.column("segment", quoted=True).eq(exp.Literal.string(action.segment)),
                        exp.In(
                            this=exp.column("person_id", quoted=True),
                            expressions=[exp.Literal.string(p) for p in chunk],
                        ),
                    )
                )
                .order_by(
                    exp.column("commit_seq", quoted=True), exp.column("event_id", quoted=True)
                )
            )
            for person, event_id in self.warehouse.run(select):
                latest[str(person)] = event_id
        keep = [(c, n) for c, n in failed if latest.get(c.person_id) == c.event_id]
        moot = [
            Outcome(c.event_id, True, 0, "superseded by a later change", skipped=True)
            for c, n in failed
            if latest.get(c.person_id) != c.event_id
        ]
        if moot:
            previous = {c.event_id: n for c, n in failed}
            cursor = read_cursor(self.warehouse, self.store, action.cursor_name)
            self._record(action, moot, cursor, previous)
        return keep

    def _failed_changes(self, action: Action) -> list[tuple[Change, int]]:
        h, d = "h", "d"
        select = (
            exp.select(
                *(exp.column(c, table=h, quoted=True) for c in CHANGE_COLUMNS),
                exp.column("attempts", table=d, quoted=True),
            )
            .from_(self.store.table(DELIVERIES, d))
            .join(
                self.store.table(HISTORY, h),
                on=exp.column("event_id", table=h, quoted=True).eq(
                    exp.column("event_id", table=d, quoted=True)
                ),
            )
            .where(
                exp.and_(
                    exp.column("destination", table=d, quoted=True).eq(
                        exp.Literal.string(action.name)
                    ),
                    exp.column("status", table=d, quoted=True).eq(exp.Literal.string(FAILED)),
                )
            )
            .order_by(
                exp.column("commit_seq", table=h, quoted=True),
                exp.column("event_id", table=h, quoted=True),
            )
        )
        return [(change_from_row(r[:-1]), int(r[-1] or 0)) for r in self.warehouse.run(select)]

    # -- status

    def status(self) -> Rows:
        """Per action: cursor, latest commit, changes still to send, delivered, parked."""
        actions = self.select()
        upto = latest_commit_seq(self.warehouse, self.store)
        rows = []
        for action in actions:
            stored = read_cursor(self.warehouse, self.store, action.cursor_name)
            cursor = stored if stored is not None else (upto if action.start == "now" else 0)
            counts = self._delivery_counts(action)
            pending = 0 if action.on == "member" else self._count_pending(action, cursor, upto)
            rows.append(
                (action.name, action.segment, action.on, action.kind, action.target,
                 stored, upto, pending, counts.get(DELIVERED, 0), counts.get(FAILED, 0),
                 counts.get(SKIPPED, 0), "yes" if action.enabled else "no")
            )  # fmt: skip
        columns = ("action", "segment", "on", "destination", "target", "cursor", "latest",
                   "pending", "delivered", "failed", "skipped", "enabled")  # fmt: skip
        return Rows(columns, rows)

    def failed(self, limit: int | None = None) -> Rows:
        """The parked changes of every action, oldest first, with their last error."""
        rows = []
        for action in self.select():
            for change, attempts in self._failed_changes(action):
                error = self._last_error(action, change.event_id)
                rows.append((action.name, change.commit_seq, change.event_id, change.segment,
                             change.person_id, change.change, attempts, error))  # fmt: skip
        rows = rows[:limit] if limit is not None else rows
        columns = ("action", "commit_seq", "event_id", "segment", "person_id", "change",
                   "attempts", "last_error")  # fmt: skip
        return Rows(columns, rows)

    def _last_error(self, action: Action, event_id: str) -> str | None:
        select = (
            exp.select(exp.column("last_error", quoted=True))
            .from_(self.store.table(DELIVERIES))
            .where(
                exp.and_(
                    exp.column("destination", quoted=True).eq(exp.Literal.string(action.name)),
                    exp.column("event_id", quoted=True).eq(exp.Literal.string(event_id)),
                )
            )
        )
        rows = self.warehouse.run(select)
        return rows[0][0] if rows else None

    def _delivery_counts(self, action: Action) -> dict[str, int]:
        select = (
            exp.select(exp.column("status", quoted=True), exp.Count(this=exp.Star()))
            .from_(self.store.table(DELIVERIES))
            .where(exp.column("destination", quoted=True).eq(exp.Literal.string(action.name)))
            .group_by(exp.column("status", quoted=True))
        )
        return {row[0]: int(row[1]) for row in self.warehouse.run(select)}

    def _count_pending(self, action: Action, cursor: int, upto: int) -> int:
        change = None if action.mirror else action.on
        inner = select_changes(
            self.store, (cursor, ""), upto, 1, segment=action.segment, change=change,
            undelivered_to=action.name,
        )  # fmt: skip
        inner.set("limit", None)
        inner.set("order", None)
        select = exp.select(exp.Count(this=exp.Star())).from_(inner.subquery("pending"))
        return int(self.warehouse.run(select)[0][0])

    @contextlib.contextmanager
    def _lock(self) -> Any:
        """One dispatcher per project schema (the engine's lock), waited for up to ``wait``
        seconds; then a clear error."""
        name = f"segql-dispatch:{self.store.schema}"
        if self.wait:
            self.progress(f"waiting up to {self.wait:g} s for the dispatch lock")
        with self.warehouse.lock(
            name,
            self.wait,
            busy="another segql dispatch is running for this project",
            help="wait for it to finish, or pass --wait SECONDS to wait for it",
            schema=self.store.schema,
        ):
            yield


def member_event_id(action: Action, person: str, commit_seq: int) -> str:
    """The idempotency key of one member sent for one run by one action."""
    text = f"member\x00{action.name}\x00{person}\x00{commit_seq}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_fault_counts: dict[str, int] = {}


def _crash_point(name: str) -> None:
    """Fault injection for the crash tests: ``SEGQL_DISPATCH_FAULT=after_send:3`` kills the
    process with SIGKILL after the third batch was sent and before it was recorded."""
    step, _, nth = os.environ.get("SEGQL_DISPATCH_FAULT", "").partition(":")
    if step != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
