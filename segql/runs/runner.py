"""A run (runtime.md section 4): evaluate, diff against current members, record.

Membership is computed in the warehouse into a temporary table and diffed there; no
member list passes through Python. One transaction appends the history, applies it to
``segql_members`` and marks the run committed with the next ``commit_seq``, so a crash
at any point leaves either the whole run or nothing but a ``running``/``failed`` row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlglot import exp

from segql.compile.compiler import table_ref
from segql.engines import EngineAdapter as Warehouse
from segql.errors import SegqlError, SegqlWarehouseError
from segql.language import ast
from segql.language.checker import walk
from segql.language.printer import format_definition
from segql.project import Project
from segql.runs.incremental import StateStep, describe_membership, describe_mode
from segql.runs.incremental.summary import EventCounts
from segql.runs.overrides import add_included, mark_manual, remove_excluded
from segql.runs.store import HISTORY, MEMBERS, OVERRIDES, RUNS, VERSIONS, Store
from segql.runs.swap_commit import SwapCommit
from segql.timeutil import format_timestamp, utc_now

NEW_MEMBERS = "segql_new_members"
CHANGES = "segql_changes"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SegmentSummary:
    segment: str
    members: int
    entered: int
    exited: int
    version: int | None = None
    reason: str = "rules"


@dataclass(frozen=True)
class RunResult:
    """What a run did, as ``segql run`` prints it."""

    run_id: str
    as_of: datetime
    commit_seq: int | None
    segments: list[SegmentSummary]
    seconds: float
    data: dict[str, int] = field(default_factory=dict)
    mode: str = "full"  # or "incremental" (segql.runs.incremental)
    mode_reason: str | None = None  # why a full run recomputed everybody
    recomputed: int | None = None  # people an incremental run recomputed
    by_deltas: bool = False  # ... or updated by deltas (segql.runs.incremental.deltas)
    # Segments an incremental run evaluated only for the people whose values, entity row
    # or overrides changed (the rest kept their members), and how many people that was.
    carried: tuple[str, ...] = ()
    evaluated: int | None = None

    @property
    def changes(self) -> int:
        return sum(s.entered + s.exited for s in self.segments)


def definition_hash(project: Project, name: str) -> tuple[str, str]:
    """A segment's canonical text with everything it depends on, and that text's hash.

    A change to a trait or a referenced segment changes the hash: the meaning changed; so
    does a change to the segment's priority list or to a segment before it there.
    """
    definitions = project.definitions
    seen: dict[str, str] = {}
    pending: list[ast.Definition] = [definitions.segments[name]]
    while pending:
        definition = pending.pop()
        key = ("segment " if isinstance(definition, ast.Segment) else "trait ") + definition.name
        if key in seen:
            continue
        seen[key] = format_definition(definition)
        for node in walk(definition):
            if isinstance(node, ast.InSegment) and node.segment in definitions.segments:
                pending.append(definitions.segments[node.segment])
            elif isinstance(node, ast.Name) and node.name in definitions.traits:
                pending.append(definitions.traits[node.name])
        if isinstance(definition, ast.Segment) and definition.name == name:
            pending.extend(definitions.segments[e] for e in definitions.priority_over(name))
    for priority in definitions.priorities:
        if name in priority.segments:
            seen["priority"] = "priority " + ", ".join(priority.segments)
    own = seen.pop("segment " + name)
    text = "\n\n".join([own, *(seen[k] for k in sorted(seen))])
    return text, hashlib.sha256(text.encode()).hexdigest()


class Runner:
    """Runs a project's segments against one warehouse session."""

    def __init__(
        self,
        project: Project,
        warehouse: Warehouse,
        progress: Progress | None = None,
        full: bool = False,
    ):
        self.project = project
        self.full = full  # recompute everybody (``segql run --full``)
        self.warehouse = warehouse
        self.store = Store(project.config.warehouse.schema)
        self.progress = progress or (lambda message: None)
        # Engines without transactions (Spark) commit by swapping a head row instead.
        self.swap = SwapCommit(self) if warehouse.COMMIT_PROTOCOL == "swap" else None

    def run(
        self,
        segments: Sequence[str] | None = None,
        as_of: datetime | None = None,
        prune: bool = False,
        wait: float = 0.0,
    ) -> RunResult:
        started = time.monotonic()
        dialect = self.warehouse.dialect
        if not self.warehouse.RUNS:
            raise SegqlError(
                f"segql run needs transactions (BEGIN/COMMIT) or a commit protocol, which "
                f"{dialect.name} has not through this connection: use segql compile "
                f"--dialect {dialect.name} or the dbt models",
                help="see docs/warehouses.md",
            )
        self.progress("checking segments against the warehouse")
        self.project.read_catalog(self.warehouse)
        self.project.check()
        # A paused segment is not evaluated: its members stay as they are.
        paused = set(self.project.paused_segments)
        names = [name for name in self.project.select(segments) if name not in paused]
        with self.run_lock(wait):
            # Inside the lock: two first runs creating the tables at once collide on
            # PostgreSQL's catalog, and would both record the layout version.
            self.store.ensure_tables(self.warehouse)
            return self.locked_run(names, as_of, prune or not segments, started)

    def locked_run(
        self, names: list[str], as_of: datetime | None, prune: bool, started: float
    ) -> RunResult:
        as_of = as_of or utc_now()
        self.fail_interrupted_runs()
        last = self.last_committed_as_of()
        if last is not None and as_of < last:
            raise SegqlError(
                f"as-of {format_timestamp(as_of)} is earlier than the last committed run's "
                f"({format_timestamp(last)})",
                help="history only moves forward: run at that time or later",
            )
        run_id = uuid.uuid4().hex
        self.insert_run(run_id, as_of, names)
        try:
            return self.evaluate_and_commit(run_id, names, as_of, prune, started)
        except BaseException as error:
            self.mark_failed(run_id, error)
            raise

    def evaluate_and_commit(
        self, run_id: str, names: list[str], as_of: datetime, prune: bool, started: float
    ) -> RunResult:
        store, warehouse = self.store, self.warehouse
        self.progress(f"computing {len(names)} segments")
        step = StateStep(self, names, as_of, run_id, self.full)
        if names:
            query = step.membership_query()
            self.progress(describe_mode(step.mode, step.reason, step.recomputed, step.by_deltas))
            if step.carried:
                self.progress(describe_membership(step.carried, step.evaluated, len(names)))
        else:  # every segment paused (an empty selection would mean every segment)
            query = exp.select(
                exp.alias_(exp.cast(exp.null(), "VARCHAR"), "segment", quoted=True),
                exp.alias_(exp.cast(exp.null(), "VARCHAR"), "person_id", quoted=True),
            ).where(exp.false())
        self.create_temp(NEW_MEMBERS, _as_text_ids(query))
        # Overrides read the whole membership (0.5 s at 1M members): only when there are any.
        if warehouse.run(exp.select(exp.Literal.number(1)).from_(store.table(OVERRIDES)).limit(1)):
            warehouse.run(remove_excluded(store, NEW_MEMBERS))
            warehouse.run(add_included(store, NEW_MEMBERS, names))
        data = self.data_summary(as_of, step)
        warehouse.keep_locks()
        _crash_point("before_diff")

        self.progress("comparing with current members")
        if self.swap is not None:  # one read of the versions view, not two
            versions, highest = self.swap.versions()
        else:
            versions, highest = self.current_versions(), self.highest_versions()
        changed: dict[str, tuple[int, str, str]] = {}  # segment -> (new version, text, hash)
        for name in names:
            text, digest = definition_hash(self.project, name)
            current = versions.get(name)
            if current is None or current[1] != digest:
                # From the highest ever recorded: a segment removed (or renamed) and added
                # back has retired versions, and a version number names one definition.
                changed[name] = (highest.get(name, 0) + 1, text, digest)
        deleted = sorted(set(versions) - set(self.project.segment_names)) if prune else []
        redefined = [n for n in changed if n in versions]
        self.create_temp(CHANGES, self.diff_select(names, deleted, redefined))
        warehouse.run(mark_manual(store, CHANGES))
        version_of = {n: changed[n][0] if n in changed else versions[n][0] for n in names}
        version_of.update({n: versions[n][0] for n in deleted})

        self.progress("recording changes")
        if self.swap is not None:
            commit_seq = self.swap.record(
                run_id, as_of, names, deleted, changed, versions, version_of, data,
                (step.mode, step.reason),
            )  # fmt: skip
        else:
            commit_seq = self.commit_in_transaction(
                run_id, as_of, deleted, changed, versions, version_of, data, step
            )
        _crash_point("after_commit")
        step.after_commit()
        summaries = self.summaries(names, deleted, version_of, redefined)
        self.drop_temp(NEW_MEMBERS)
        self.drop_temp(CHANGES)
        seconds = time.monotonic() - started
        return RunResult(
            run_id, as_of, commit_seq, summaries, seconds, data,
            step.mode, step.reason, step.recomputed, step.by_deltas,
            tuple(step.carried), step.evaluated,
        )  # fmt: skip

    def commit_in_transaction(
        self,
        run_id: str,
        as_of: datetime,
        deleted: list[str],
        changed: dict[str, tuple[int, str, str]],
        versions: dict[str, tuple[int, str]],
        version_of: dict[str, int],
        data: dict[str, int],
        step: StateStep,
    ) -> int:
        """Step 5 in one transaction: versions, history, members, the run committed, and
        the incremental state."""
        warehouse = self.warehouse
        with warehouse.commit():
            # Taken inside the commit: two runs that both read the highest commit_seq
            # before either committed would otherwise take the same one.
            commit_seq = self.next_commit_seq()
            now = utc_now()
            for name in deleted:
                warehouse.run(self.retire_version(name, now))
            for name, (version, text, digest) in changed.items():
                if name in versions:
                    warehouse.run(self.retire_version(name, now))
                warehouse.run(self.insert_version(name, version, digest, text, now))
            warehouse.run(self.insert_history(run_id, as_of, commit_seq, version_of))
            _crash_point("after_history_insert")
            warehouse.run(self.delete_exits())
            warehouse.run(self.insert_enters(run_id, as_of))
            warehouse.run(self.commit_run(run_id, commit_seq, data))
            for statement in step.commit_statements():
                warehouse.run(statement)
        return commit_seq

    # --- the lock ----------------------------------------------------------------------

    def run_lock(self, wait: float) -> AbstractContextManager[Any]:
        """One writer per project schema, as the engine provides it (``RUN_LOCK``)."""
        return self.warehouse.lock(
            f"segql:{self.store.schema}",
            wait,
            busy="another segql run holds this project's lock",
            help="wait for it to finish, or pass --wait SECONDS to wait for it",
            schema=self.store.schema,
        )

    # --- run rows ----------------------------------------------------------------------

    def fail_interrupted_runs(self) -> None:
        """Runs left ``running`` by a process that died: record that they failed."""
        if self.swap is not None:  # the swap's views derive it; the head is read here
            self.swap.begin()
            return
        update = exp.update(
            self.store.table(RUNS),
            {
                "status": exp.Literal.string("failed"),
                "error": exp.Literal.string("interrupted before it committed"),
            },
            where=exp.column("status").eq(exp.Literal.string("running")),
        )
        self.warehouse.run(update)

    def last_committed_as_of(self) -> datetime | None:
        select = (
            exp.select(exp.Max(this=exp.column("as_of")))
            .from_(self.store.table(RUNS))
            .where(exp.column("status").eq(exp.Literal.string("committed")))
        )
        value = self.warehouse.run(select)[0][0]
        return _as_datetime(value)

    def insert_run(self, run_id: str, as_of: datetime, names: list[str]) -> None:
        values = {
            "run_id": exp.Literal.string(run_id),
            "as_of": _timestamp(as_of),
            "started_at": _timestamp(utc_now()),
            "status": exp.Literal.string("running"),
            "segments": exp.Literal.string(json.dumps(names)),
        }
        if self.swap is not None:
            self.swap.append_run_row(values)
            return
        self.warehouse.run(_insert_row(self.store.table(RUNS), values))

    def mark_failed(self, run_id: str, error: BaseException) -> None:
        message = error.message if isinstance(error, SegqlError) else repr(error)
        if self.swap is not None:
            with contextlib.suppress(SegqlWarehouseError):
                self.swap.mark_failed(run_id, message)
            return
        update = exp.update(
            self.store.table(RUNS),
            {
                "status": exp.Literal.string("failed"),
                "error": exp.Literal.string(message[:2000]),
                "finished_at": _timestamp(utc_now()),
            },
            where=exp.and_(
                exp.column("run_id").eq(exp.Literal.string(run_id)),
                exp.column("status").eq(exp.Literal.string("running")),
            ),
        )
        # If the warehouse is gone, the row stays "running" and the next run marks it failed.
        with contextlib.suppress(SegqlWarehouseError):
            self.warehouse.run(update)

    def next_commit_seq(self) -> int:
        select = exp.select(exp.Max(this=exp.column("commit_seq"))).from_(self.store.table(RUNS))
        value = self.warehouse.run(select)[0][0]
        return int(value or 0) + 1

    def commit_run(self, run_id: str, commit_seq: int, data: dict[str, int]) -> exp.Update:
        return exp.update(
            self.store.table(RUNS),
            {
                "status": exp.Literal.string("committed"),
                "commit_seq": exp.Literal.number(commit_seq),
                "finished_at": _timestamp(utc_now()),
                "summary": exp.Literal.string(json.dumps(data)),
            },
            where=exp.column("run_id").eq(exp.Literal.string(run_id)),
        )

    # --- versions ----------------------------------------------------------------------

    def current_versions(self) -> dict[str, tuple[int, str]]:
        """Segment -> (version, definition hash) of every version not retired."""
        select = (
            exp.select("segment", "version", "definition_hash")
            .from_(self.store.table(VERSIONS))
            .where(exp.column("retired_at").is_(exp.null()))
        )
        return {row[0]: (int(row[1]), row[2]) for row in self.warehouse.run(select)}

    def highest_versions(self) -> dict[str, int]:
        """Segment -> the highest version ever recorded, retired ones included."""
        select = (
            exp.select("segment", exp.Max(this=exp.column("version")))
            .from_(self.store.table(VERSIONS))
            .group_by("segment")
        )
        return {row[0]: int(row[1]) for row in self.warehouse.run(select)}

    def retire_version(self, segment: str, now: datetime) -> exp.Update:
        return exp.update(
            self.store.table(VERSIONS),
            {"retired_at": _timestamp(now)},
            where=exp.and_(
                exp.column("segment").eq(exp.Literal.string(segment)),
                exp.column("retired_at").is_(exp.null()),
            ),
        )

    def insert_version(
        self, segment: str, version: int, digest: str, text: str, now: datetime
    ) -> exp.Insert:
        values = {
            "segment": exp.Literal.string(segment),
            "version": exp.Literal.number(version),
            "definition_hash": exp.Literal.string(digest),
            "source_text": exp.Literal.string(text),
            "created_at": _timestamp(now),
        }
        return _insert_row(self.store.table(VERSIONS), values)

    # --- the diff ----------------------------------------------------------------------

    def diff_select(self, names: list[str], deleted: list[str], redefined: list[str]) -> exp.Query:
        """Changes in one pass: new members who were not members enter; members who are no
        longer (every member of a deleted segment among them) exit."""
        column = exp.column

        def segment_in(table: str, segments: list[str]) -> exp.Expr:
            if not segments:  # every segment paused: IN () is not SQL everywhere
                return exp.false()
            return column("segment", table=table, quoted=True).isin(
                *(exp.Literal.string(n) for n in segments)
            )

        reason: exp.Expr = exp.Literal.string("rules")
        for segments, why in ((redefined, "definition_changed"), (deleted, "segment_deleted")):
            if segments:
                reason = exp.Case(
                    ifs=[exp.If(this=segment_in("m", segments), true=exp.Literal.string(why))],
                    default=reason,
                )
        was_member = column("person_id", table="m", quoted=True).is_(exp.null()).not_()
        is_member = column("person_id", table="n", quoted=True).is_(exp.null()).not_()
        members = (
            exp.select(column("segment", quoted=True), column("person_id", quoted=True))
            .from_(self.store.table(MEMBERS))
            .where(segment_in(MEMBERS, [*names, *deleted]))
        )
        both = exp.and_(
            column("segment", table="n", quoted=True).eq(column("segment", table="m", quoted=True)),
            column("person_id", table="n", quoted=True).eq(
                column("person_id", table="m", quoted=True)
            ),
        )

        def either(name: str) -> exp.Expr:
            return exp.Coalesce(
                this=column(name, table="n", quoted=True),
                expressions=[column(name, table="m", quoted=True)],
            )

        return (
            exp.select(
                exp.alias_(either("segment"), "segment", quoted=True),
                exp.alias_(either("person_id"), "person_id", quoted=True),
                exp.alias_(
                    exp.Case(
                        ifs=[exp.If(this=was_member, true=exp.Literal.string("exit"))],
                        default=exp.Literal.string("enter"),
                    ),
                    "change",
                    quoted=True,
                ),
                exp.alias_(
                    exp.Case(
                        ifs=[exp.If(this=was_member, true=reason)],
                        default=exp.Literal.string("rules"),
                    ),
                    "reason",
                    quoted=True,
                ),
            )
            .from_(
                exp.Table(
                    this=exp.to_identifier(NEW_MEMBERS, quoted=True),
                    alias=exp.TableAlias(this=exp.to_identifier("n")),
                )
            )
            .join(members.subquery("m"), on=both, join_type="full")
            .where(exp.not_(exp.and_(was_member.copy(), is_member)))
        )

    def insert_history(
        self, run_id: str, as_of: datetime, commit_seq: int, version_of: dict[str, int]
    ) -> exp.Insert:
        column = exp.column
        version: exp.Expr = exp.Case(
            this=column("segment", quoted=True),
            ifs=[
                exp.If(this=exp.Literal.string(name), true=exp.Literal.number(number))
                for name, number in version_of.items()
            ],
        )
        if not version_of:  # every segment paused: no rows, and CASE needs a branch
            version = exp.cast(exp.null(), "INTEGER")
        select = exp.select(
            exp.alias_(event_id(run_id, column("change", quoted=True)), "event_id", quoted=True),
            column("segment", quoted=True),
            column("person_id", quoted=True),
            column("change", quoted=True),
            exp.alias_(_timestamp(as_of), "as_of", quoted=True),
            exp.alias_(exp.Literal.string(run_id), "run_id", quoted=True),
            exp.alias_(exp.Literal.number(commit_seq), "commit_seq", quoted=True),
            exp.alias_(version, "version", quoted=True),
            column("reason", quoted=True),
        ).from_(exp.to_identifier(CHANGES, quoted=True))
        columns = [
            "event_id", "segment", "person_id", "change", "as_of", "run_id", "commit_seq",
            "version", "reason",
        ]  # fmt: skip
        return _insert_select(self.store.table(HISTORY), columns, select)

    def delete_exits(self) -> exp.Delete:
        members = self.store.table(MEMBERS)
        target = exp.column
        gone = (
            exp.select(exp.Literal.number(1))
            .from_(
                exp.Table(
                    this=exp.to_identifier(CHANGES, quoted=True),
                    alias=exp.TableAlias(this=exp.to_identifier("c")),
                )
            )
            .where(
                exp.and_(
                    target("segment", table="c", quoted=True).eq(
                        exp.column("segment", table=MEMBERS, quoted=True)
                    ),
                    target("person_id", table="c", quoted=True).eq(
                        exp.column("person_id", table=MEMBERS, quoted=True)
                    ),
                    target("change", table="c", quoted=True).eq(exp.Literal.string("exit")),
                )
            )
        )
        return exp.delete(members, where=exp.Exists(this=gone))

    def insert_enters(self, run_id: str, as_of: datetime) -> exp.Insert:
        select = (
            exp.select(
                exp.column("segment", quoted=True),
                exp.column("person_id", quoted=True),
                exp.alias_(_timestamp(as_of), "entered_at", quoted=True),
                exp.alias_(exp.Literal.string(run_id), "entered_run_id", quoted=True),
            )
            .from_(exp.to_identifier(CHANGES, quoted=True))
            .where(exp.column("change", quoted=True).eq(exp.Literal.string("enter")))
        )
        columns = ["segment", "person_id", "entered_at", "entered_run_id"]
        return _insert_select(self.store.table(MEMBERS), columns, select)

    # --- summaries ---------------------------------------------------------------------

    def summaries(
        self,
        names: list[str],
        deleted: list[str],
        version_of: dict[str, int],
        redefined: list[str],
    ) -> list[SegmentSummary]:
        sizes = self.warehouse.run(
            exp.select("segment", exp.Count(this=exp.Star()))
            .from_(exp.to_identifier(NEW_MEMBERS, quoted=True))
            .group_by("segment")
        )
        counts = self.warehouse.run(
            exp.select("segment", "change", exp.Count(this=exp.Star()))
            .from_(exp.to_identifier(CHANGES, quoted=True))
            .group_by("segment", "change")
        )
        size = {row[0]: int(row[1]) for row in sizes}
        changed = {(row[0], row[1]): int(row[2]) for row in counts}
        result = []
        for name in [*names, *deleted]:
            reason = (
                "segment_deleted"
                if name in deleted
                else "definition_changed"
                if name in redefined
                else "rules"
            )
            result.append(
                SegmentSummary(
                    name,
                    size.get(name, 0),
                    changed.get((name, "enter"), 0),
                    changed.get((name, "exit"), 0),
                    version_of.get(name),
                    reason,
                )
            )
        return result

    def data_summary(self, as_of: datetime, step: StateStep | None = None) -> dict[str, int]:
        """Rows the run had to leave out: null and duplicate ids, rows after the as-of
        time, rows of people who are not in the entity table."""
        config = self.project.config
        entity_id = exp.column(config.entity.id, quoted=True)
        people = exp.select(
            exp.alias_(exp.Count(this=exp.Star()), "rows"),
            exp.alias_(exp.Count(this=entity_id.copy()), "with_id"),
            exp.alias_(exp.Count(this=exp.Distinct(expressions=[entity_id.copy()])), "distinct"),
        ).from_(table_ref(config.entity.table))
        rows, with_id, distinct = self.warehouse.run(people)[0]
        summary = {
            "people": int(distinct),
            "null_ids": int(rows) - int(with_id),
            "duplicate_ids": int(with_id) - int(distinct),
        }
        if config.events is not None:
            events = config.events
            assert events.time is not None  # [events] time is always set (occurred_at)
            time_column = exp.column(events.time, table="e", quoted=True)
            person = exp.column(events.person, table="e", quoted=True)
            # An anti-join (LEFT JOIN the ids, then IS NULL), not NOT EXISTS: PostgreSQL ran
            # the correlated form as a subplan per event row where the people id has no
            # index (424 s for 20k people). Where the first query saw duplicate ids, the
            # DISTINCT ids, so an event is not counted twice; else the table itself, which
            # PostgreSQL hashes once for all its workers (about 20% faster).
            ids = exp.select(exp.alias_(entity_id.copy(), "id", quoted=True)).from_(
                table_ref(config.entity.table)
            )
            if summary["duplicate_ids"]:
                ids = ids.distinct()
            known_id = exp.column("id", table="p", quoted=True)
            unknown = exp.Sum(
                this=exp.Case(
                    ifs=[
                        exp.If(
                            this=exp.and_(
                                person.copy().is_(exp.null()).not_(),
                                known_id.copy().is_(exp.null()),
                            ),
                            true=exp.Literal.number(1),
                        )
                    ],
                    default=exp.Literal.number(0),
                )
            )
            # Grouped by whether a row is after the as-of (true, false, or a null time):
            # an incremental run keeps the counts of the rows at or before it and counts
            # only the rows its ``summary_rows`` filter keeps (segql.runs.incremental.summary).
            flag = exp.GT(this=time_column.copy(), expression=_timestamp(as_of))
            select = (
                exp.select(
                    exp.alias_(flag, "after", quoted=True),
                    exp.Count(this=exp.Star()),
                    unknown,
                    exp.Count(this=exp.Star()) - exp.Count(this=person.copy()),
                )
                .from_(table_ref(events.table, "e"))
                .join(
                    exp.alias_(exp.Subquery(this=ids), "p"),
                    on=known_id.eq(person.copy()),
                    join_type="LEFT",
                )
                .group_by(flag.copy())
            )
            if step is not None and step.summary_rows is not None:
                select = select.where(step.summary_rows("e"), copy=False)
            malformed = self.malformed_properties(events.table, events.properties, "e")
            if malformed is not None:
                select = select.select(malformed, copy=False)
            groups = self.warehouse.run(select)
            counts = EventCounts.of_groups(groups, step.summary_base if step else None)
            if step is not None:
                step.keep_summary(counts.upto_as_of)
            total, later, strangers, no_person, *bad_json = counts.totals(malformed is not None)
            summary.update(
                events=total,
                events_after_as_of=later,
                events_of_unknown_people=strangers,
                events_without_person=no_person,
            )
            if events.properties is not None:
                bad = int(bad_json[0] or 0) if bad_json else 0
                summary["events_with_malformed_properties"] = bad
        return summary

    def malformed_properties(
        self, table: str, properties: str | None, alias: str
    ) -> exp.Expr | None:
        """``SUM(1 for rows whose text properties are not well-formed JSON)``; None where
        the column is typed JSON (always well-formed) or the dialect reads such a value as
        null by itself. Those rows are read with no properties (docs/semantics.md)."""
        if properties is None or self.project.catalog.column_type(table, properties) != "string":
            return None
        value = exp.column(properties, table=alias, quoted=True)
        valid = self.warehouse.dialect.valid_json(value)
        if valid is None:
            return None
        bad = exp.and_(value.copy().is_(exp.null()).not_(), exp.Not(this=exp.Paren(this=valid)))
        return exp.Sum(
            this=exp.Case(
                ifs=[exp.If(this=bad, true=exp.Literal.number(1))], default=exp.Literal.number(0)
            )
        )

    # --- temporary tables --------------------------------------------------------------

    def create_temp(self, name: str, query: exp.Query) -> None:
        self.drop_temp(name)
        create = exp.Create(
            this=_temp_table(name),
            kind="TABLE",
            expression=query,
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
        self.warehouse.run(create)

    def drop_temp(self, name: str) -> None:
        self.warehouse.run(exp.Drop(tables=[_temp_table(name)], kind="TABLE", exists=True))


def event_id(run_id: str, change: exp.Expr) -> exp.Expr:
    """A history row's id: ``md5(segment|person_id|run_id|change)``, the same for the
    same change of the same run, so a row written twice is seen as one."""
    separator = exp.Literal.string("|")
    key: exp.Expr = exp.column("segment", quoted=True)
    for part in (
        separator,
        exp.column("person_id", quoted=True),
        separator,
        exp.Literal.string(run_id),
        separator,
        change,
    ):
        key = exp.DPipe(this=key, expression=part, safe=True)
    return exp.MD5(this=key)


def _crash_point(name: str) -> None:
    """Fault injection for the crash and lock tests: ``SEGQL_FAULT=name:kill`` kills the
    process at this step, ``SEGQL_FAULT=name:sleep=SECONDS`` holds it there, and
    ``SEGQL_FAULT=name:until=PATH`` holds it until the file PATH exists (at most 10 min)."""
    step, _, action = os.environ.get("SEGQL_FAULT", "").partition(":")
    if step != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep="):
        time.sleep(float(action.removeprefix("sleep=")))
    elif action.startswith("until="):
        release, deadline = Path(action.removeprefix("until=")), time.monotonic() + 600
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _as_text_ids(query: exp.Query) -> exp.Select:
    """The membership query with person ids as text, as segql's tables keep them."""
    return exp.select(
        exp.column("segment", quoted=True),
        exp.alias_(
            exp.cast(exp.column("person_id", quoted=True), "VARCHAR"), "person_id", quoted=True
        ),
    ).from_(query.subquery("membership"))


def _temp_table(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name, quoted=True))


def _timestamp(value: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(format_timestamp(value)), "TIMESTAMP")


def _as_datetime(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _insert_row(table: exp.Table, values: dict[str, exp.Expr]) -> exp.Insert:
    columns = exp.Schema(
        this=table, expressions=[exp.to_identifier(c, quoted=True) for c in values]
    )
    row = exp.Values(expressions=[exp.Tuple(expressions=list(values.values()))])
    return exp.Insert(this=columns, expression=row)


def _insert_select(table: exp.Table, columns: list[str], select: exp.Query) -> exp.Insert:
    target = exp.Schema(
        this=table, expressions=[exp.to_identifier(c, quoted=True) for c in columns]
    )
    return exp.Insert(this=target, expression=select)
