"""The state half of a run: decide full or incremental, bring the state to ``T``, and hand
the runner the membership query over it.

A run is incremental only when segql can prove the answer equals a full run's:

- there is a state, of this layout, for exactly these values (a fingerprint of their
  definitions, the sources and the time zone), written by a run still committed, at an
  as-of at or before ``T``;
- every value is bounded by time slices (``segql.compile.updates``), no row filter reads
  a person's properties, every source read has a time column;
- no row at or before the state's as-of changed: with ``loaded_at``, rows loaded since the
  state's high-water mark are read whatever their time; without it, the rows per day up
  to the state's as-of must be the ones recorded then (``segql_state_days``).

Then the people with a row that is new or crossed a window boundary are recomputed over
all their rows; everybody else keeps their values. Otherwise the run recomputes everybody
and says why. Either way, the membership is computed over the state by the same query.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sqlglot import exp

from segql.compile.compiler import (
    PERSON_ID,
    QueryBuilder,
    QueryOptions,
    collector_paused,
    table_ref,
)
from segql.compile.updates import (
    Offsets,
    aggregate_offsets,
    aggregate_update,
    sequence_offsets,
    union,
)
from segql.config import SourceConfig
from segql.language import ast
from segql.runs.incremental.builder import StateBuilder
from segql.runs.incremental.deltas import Deltas, deltas_apply, present_at, some_deltas_apply
from segql.runs.incremental.state import (
    STATE_LAYOUT,
    StateRecord,
    read_record,
    write_record,
    write_summary,
)
from segql.runs.store import MEMBERS, OVERRIDES, RUNS, STATE_DAYS
from segql.timeutil import format_timestamp

if TYPE_CHECKING:
    from segql.runs.runner import Runner

Mode = Literal["full", "incremental"]
AFFECTED = "segql_affected"
RECOMPUTED = "segql_recomputed"
DAYS_NOW = "segql_days_now"
PEOPLE_CHANGED = "segql_people_changed"
RECOMPUTE_PEOPLE = "segql_recompute_people"
MIXED = "segql_mixed"
EVALUATED = "segql_evaluated"


@dataclass
class StateStep:
    """One run's state work; ``membership_query`` first, then the commit's statements."""

    runner: Runner
    names: list[str]
    as_of: datetime
    run_id: str
    full: bool = False
    mode: Mode = "full"
    reason: str | None = None
    recomputed: int | None = None  # people recomputed by an incremental run
    commit: list[exp.Expr] = field(default_factory=list)
    old_table: str | None = None
    by_deltas: bool = False  # the incremental run added deltas instead of recomputing
    temps: list[str] = field(default_factory=list)
    old_people: str | None = None  # a replaced snapshot of the entity columns
    old_overrides: str | None = None  # the state's run's table of people with overrides
    digests: dict[str, str | None] | None = None  # segment -> its query's digest
    carried: list[str] = field(default_factory=list)  # segments evaluated for few people
    evaluated: int | None = None  # the people those segments were evaluated for
    ids_changed: bool = True  # the entity table's ids differ from the snapshot's
    summary_base: list[int] | None = None  # the kept data summary counts, when read
    summary_rows: Callable[[str], exp.Expr] | None = None

    # --- the plan of the run ------------------------------------------------------------

    def membership_query(self) -> exp.Query:
        warehouse = self.runner.warehouse
        if self.runner.swap is not None:
            # A state is written in the run's own commit; a swap commit (Spark) publishes
            # the run's logs only, so its runs recompute until the state is one of them.
            self.reason = "runs without transactions (Spark) keep no incremental state yet"
            return self.plain_query()
        builder = self.builder()
        with collector_paused():
            builder.build(self.names)
        values = builder.value_columns()
        unknown = builder.unknown_stage_columns()
        if not values or unknown:
            self.reason = (
                "the segments read no events"
                if not values
                else f"values incremental runs do not keep yet ({', '.join(unknown)})"
            )
            return self.plain_query()
        self.sources = [builder.sources[name].source for name in builder.sources]
        self.fingerprint = self.fingerprint_of(builder)
        why_not = self.cannot_update(builder)
        record = read_record(warehouse, self.runner.store)
        self.days = self.count_days()
        if why_not is None:
            why_not = self.stale(record)
        if why_not is None:
            assert record is not None
            why_not = self.late_rows(record)
        if why_not is not None or record is None:
            self.reason = "--full" if self.full else why_not
            return self.recompute_everybody()
        self.mode = "incremental"
        return self.update(record, builder)

    def plain_query(self) -> exp.Query:
        """The membership query over the rows, with no state read or written."""
        return self.runner.project.membership_query(
            self.runner.warehouse.dialect.name,
            self.as_of,
            self.names,
            members_table=self.runner.store.table("segql_members"),
        ).expression

    def builder(self, **extra: object) -> StateBuilder:
        project = self.runner.project
        options = QueryOptions(members_table=self.runner.store.table("segql_members"))
        return StateBuilder(
            project.analyzer,
            self.runner.warehouse.dialect,
            self.as_of,
            options,
            **extra,  # type: ignore[arg-type]
        )

    def fingerprint_of(self, builder: StateBuilder) -> str:
        config = self.runner.project.config
        described = {
            "values": builder.definitions_of(),
            "sources": [
                [s.name, s.table, s.person, s.time, s.properties, s.event_name, s.loaded_at]
                for s in self.sources
            ],
            "timezone": config.warehouse.timezone,
            "dialect": self.runner.warehouse.dialect.name,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def cannot_update(self, builder: StateBuilder) -> str | None:
        """Why no incremental run can be proven for this plan (None: one can)."""
        if self.full:
            return "--full"
        found: list[Offsets] = []
        for column, node in builder.nodes().items():
            offsets = (
                aggregate_offsets(node)
                if isinstance(node, ast.Aggregate)
                else sequence_offsets(node)
            )
            if offsets is None:
                return f"{column} moves with the as-of time in a way time slices do not bound"
            found.append(offsets)
        self.offsets = union(found)
        for name, needs in builder.sources.items():
            if needs.person_columns:
                return f"a filter over {name} reads a person's properties"
            if needs.source.time is None:
                return f"source {name} has no time column"
        return None

    def stale(self, record: StateRecord | None) -> str | None:
        if record is None:
            return "no state yet"
        if record.layout != STATE_LAYOUT:
            return f"the state's layout ({record.layout}) is not this segql's ({STATE_LAYOUT})"
        if record.fingerprint != self.fingerprint:
            return "the state's values or their sources are defined differently"
        if record.as_of > self.as_of:
            return "the state is later than the as-of time"
        status = self.runner.warehouse.run(
            exp.select("status")
            .from_(self.runner.store.table(RUNS))
            .where(exp.column("run_id").eq(exp.Literal.string(record.run_id)))
        )
        if not status or status[0][0] != "committed":
            return "the run that wrote the state is no longer committed"
        return None

    # --- late rows ---------------------------------------------------------------------

    def count_days(self) -> dict[str, bool]:
        """Rows per day (up to T) of each source without ``loaded_at``, into a temp table;
        source -> True where counted."""
        counted: dict[str, bool] = {}
        selects = []
        for source in self.sources:
            if source.loaded_at is not None or source.time is None:
                continue
            time = exp.column(source.time, quoted=True)
            upto = self.time_bound(self.as_of, source)
            selects.append(
                exp.select(
                    exp.alias_(exp.Literal.string(source.name), "source", quoted=True),
                    exp.alias_(exp.cast(time.copy(), "DATE"), "day", quoted=True),
                    exp.alias_(exp.Count(this=exp.Star()), "rows", quoted=True),
                )
                .from_(table_ref(source.table))
                .where(exp.LTE(this=time.copy(), expression=upto))
                .group_by(exp.cast(time.copy(), "DATE"))
            )
            counted[source.name] = True
        if selects:
            union_all: exp.Query = selects[0]
            for select in selects[1:]:
                union_all = exp.union(union_all, select, distinct=False)
            self.create_temp(DAYS_NOW, union_all)
        return counted

    def late_rows(self, record: StateRecord) -> str | None:
        """Whether a row at or before the state's as-of is not the one it read."""
        warehouse, store = self.runner.warehouse, self.runner.store
        for source in self.sources:
            if not self.days.get(source.name) or source.time is None:
                continue
            time = exp.column(source.time, quoted=True)
            upto = self.time_bound(record.as_of, source)
            now = (
                exp.select(
                    exp.alias_(exp.cast(time.copy(), "DATE"), "day", quoted=True),
                    exp.alias_(exp.Count(this=exp.Star()), "rows", quoted=True),
                )
                .from_(table_ref(source.table))
                .where(exp.LTE(this=time.copy(), expression=upto))
                .group_by(exp.cast(time.copy(), "DATE"))
            )
            then = (
                exp.select("day", "rows")
                .from_(store.table(STATE_DAYS))
                .where(exp.column("source").eq(exp.Literal.string(source.name)))
            )
            day = exp.Coalesce(
                this=exp.column("day", table="n", quoted=True),
                expressions=[exp.column("day", table="t", quoted=True)],
            )
            differs = exp.NEQ(
                this=exp.func("COALESCE", exp.column("rows", table="n", quoted=True), 0),
                expression=exp.func("COALESCE", exp.column("rows", table="t", quoted=True), 0),
            )
            both = exp.column("day", table="n", quoted=True).eq(
                exp.column("day", table="t", quoted=True)
            )
            compare = (
                exp.select(exp.Count(this=exp.Star()), exp.Min(this=day))
                .from_(now.subquery("n"))
                .join(then.subquery("t"), on=both, join_type="full")
                .where(differs)
            )
            changed, first = warehouse.run(compare)[0]
            if changed:
                return (
                    f"rows of {source.name} at or before the last run's as-of changed "
                    f"({changed} day(s), from {first}); set loaded_at to read late rows"
                )
        return None

    # --- full: every person ------------------------------------------------------------

    def recompute_everybody(self) -> exp.Query:
        warehouse, store = self.runner.warehouse, self.runner.store
        record = read_record(warehouse, store)
        self.old_table = record.table if record is not None else None
        high_water = self.high_water(None)
        table = f"segql_state_{self.run_id[:12]}"
        query = self.builder().state_query(self.names)
        create = exp.Create(this=store.table(table), kind="TABLE", expression=query)
        warehouse.run(exp.Drop(tables=[store.table(table)], kind="TABLE", exists=True))
        warehouse.run(create)
        return self.finish(table, store.table(table), high_water, None)

    # --- incremental: the people whose values can have changed -------------------------

    def update(self, record: StateRecord, builder: StateBuilder) -> exp.Query:
        warehouse, store = self.runner.warehouse, self.runner.store
        high_water = self.high_water(record)
        state = store.table(record.table)
        if deltas_apply(builder):
            self.by_deltas = True
            self.delta_values(record, state)
        elif some_deltas_apply(builder) and self.few_recomputed(record, builder):
            self.by_deltas = True
            self.mixed_values(record, state, builder)
        else:
            if AFFECTED not in self.temps:
                self.create_temp(AFFECTED, self.people_with_changed_rows(record, builder))
            only = self.builder(only=_temp(AFFECTED))
            self.create_temp(RECOMPUTED, only.state_query(self.names))
        self.recomputed = int(
            warehouse.run(exp.select(exp.Count(this=exp.Star())).from_(_temp(AFFECTED)))[0][0]
        )
        columns = [PERSON_ID, *builder.value_columns()]
        kept = (
            exp.select(*(exp.column(c, quoted=True) for c in columns))
            .from_(state.copy())
            .where(
                exp.column(PERSON_ID, quoted=True)
                .isin(query=exp.select(PERSON_ID).from_(_temp(AFFECTED)))
                .not_()
            )
        )
        fresh = exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(_temp(RECOMPUTED))
        self.commit += [
            exp.delete(
                state.copy(),
                where=exp.column(PERSON_ID, quoted=True).isin(
                    query=exp.select(PERSON_ID).from_(_temp(AFFECTED))
                ),
            ),
            exp.Insert(
                this=exp.Schema(
                    this=state.copy(),
                    expressions=[exp.to_identifier(c, quoted=True) for c in columns],
                ),
                expression=fresh.copy(),
            ),
        ]
        return self.finish(record.table, exp.union(kept, fresh, distinct=False), high_water, record)

    def people_with_changed_rows(self, record: StateRecord, builder: StateBuilder) -> exp.Query:
        """The ids of the people with a row in one of ``self.offsets``' slices, or late."""
        changed = [self.changed_people(source, builder, record) for source in self.sources]
        people: exp.Query = changed[0]
        for select in changed[1:]:
            people = exp.union(people, select, distinct=True)
        return exp.select(PERSON_ID).distinct().from_(people.subquery("c"))

    def few_recomputed(self, record: StateRecord, builder: StateBuilder) -> bool:
        """Whether deltas beside a recompute pay: fewer than half the people with a row
        read (AFFECTED) have a row that concerns a value deltas cannot update
        (RECOMPUTE_PEOPLE). Otherwise the recompute reads nearly the same rows and the
        deltas are work on top; either way the values are exact."""
        self.create_temp(AFFECTED, self.people_with_changed_rows(record, builder))
        every = self.offsets
        self.offsets = union(
            offsets
            for node in builder.nodes().values()
            if (offsets := _recompute_offsets(node)) is not None
        )
        self.create_temp(RECOMPUTE_PEOPLE, self.people_with_changed_rows(record, builder))
        self.offsets = every
        warehouse = self.runner.warehouse
        counts = [
            int(warehouse.run(exp.select(exp.Count(this=exp.Star())).from_(_temp(name)))[0][0])
            for name in (RECOMPUTE_PEOPLE, AFFECTED)
        ]
        return 2 * counts[0] < counts[1]

    def mixed_values(self, record: StateRecord, state: exp.Table, builder: StateBuilder) -> None:
        """Deltas beside recomputed values: the people with a row that is new or crossed an
        edge of a value deltas cannot update (RECOMPUTE_PEOPLE) are recomputed over all
        their rows; the other people with a row read are updated by deltas, keeping the
        values none of their rows concern. AFFECTED holds both, RECOMPUTED their values."""
        only = self.builder(only=_temp(RECOMPUTE_PEOPLE))
        recomputed = only.state_query(self.names)
        self.delta_values(record, state)  # AFFECTED: everybody with a row read
        columns = [PERSON_ID, *builder.value_columns()]
        by_deltas = (
            exp.select(*(exp.column(c, quoted=True) for c in columns))
            .from_(_temp(RECOMPUTED))
            .where(
                exp.column(PERSON_ID, quoted=True)
                .isin(query=exp.select(PERSON_ID).from_(_temp(RECOMPUTE_PEOPLE)))
                .not_()
            )
        )
        fresh = exp.select(*(exp.column(c, quoted=True) for c in columns)).from_(
            recomputed.subquery("r")
        )
        self.create_temp(MIXED, exp.union(fresh, by_deltas, distinct=False))
        self.create_temp(
            AFFECTED,
            exp.union(
                exp.select(PERSON_ID).from_(_temp(MIXED)),
                exp.select(PERSON_ID).from_(_temp(RECOMPUTE_PEOPLE)),
                distinct=True,
            ),
        )
        self.create_temp(RECOMPUTED, exp.select("*").from_(_temp(MIXED)))

    def delta_values(self, record: StateRecord, state: exp.Table) -> None:
        """Every value by its delta (``segql.runs.incremental.deltas``): AFFECTED holds the people
        with a row read, RECOMPUTED their new values."""
        project = self.runner.project
        deltas = Deltas(
            project.analyzer,
            self.runner.warehouse.dialect,
            self.names,
            record.as_of,
            self.as_of,
            self.runner.store.table("segql_members"),
        )
        tables: dict[str, exp.Table] = {}
        for number, source in enumerate(self.sources):
            mark = record.high_water.get(source.name)
            present = present_at(
                source,
                self.time_bound(record.as_of, source),
                None if mark is None else self.loaded_literal(source, mark),
            )
            name = f"segql_delta_{number}"
            changed = self.changed_rows(source, record)
            self.create_temp(name, deltas.source_delta(source, changed, present))
            tables[source.name] = _temp(name)
        ids = [
            exp.select(PERSON_ID).from_(table).where(exp.column(PERSON_ID).is_(exp.null()).not_())
            for table in tables.values()
        ]
        people: exp.Query = ids[0]
        for select in ids[1:]:
            people = exp.union(people, select, distinct=True)
        self.create_temp(AFFECTED, exp.select(PERSON_ID).distinct().from_(people.subquery("c")))
        self.create_temp(RECOMPUTED, deltas.merged(state, _temp(AFFECTED), tables))

    def changed_people(
        self, source: SourceConfig, builder: StateBuilder, record: StateRecord
    ) -> exp.Select:
        """The people of ``source`` with a row that is new since the state's as-of (or
        loaded since its high-water mark), or that crossed a window boundary."""
        person = exp.column(source.person, quoted=True)
        where = exp.and_(person.is_(exp.null()).not_(), self.changed_rows(source, record))
        needs = builder.sources[source.name]
        if source.event_name is not None and not needs.any_event:
            names = [exp.Literal.string(n) for n in sorted(needs.event_names)]
            where = exp.and_(where, exp.column(source.event_name, quoted=True).isin(*names))
        return (
            exp.select(exp.alias_(person, PERSON_ID, quoted=True))
            .from_(table_ref(source.table))
            .where(where)
        )

    def changed_rows(self, source: SourceConfig, record: StateRecord) -> exp.Expr:
        """Rows that are new since the state's as-of (or loaded since its high-water mark),
        or that crossed a window boundary, over the source's own columns."""
        assert source.time is not None
        time = exp.column(source.time, quoted=True)
        slices: list[exp.Expr] = []
        for offset in self.offsets:
            low = self.time_bound(record.as_of, source, offset)
            high = self.time_bound(self.as_of, source, offset)
            slices.append(
                exp.and_(
                    exp.GT(this=time.copy(), expression=low),
                    exp.LTE(this=time.copy(), expression=high),
                )
            )
        if source.loaded_at is not None:
            loaded = exp.column(source.loaded_at, quoted=True)
            mark = record.high_water.get(source.name)
            late = (
                loaded.is_(exp.null()).not_()
                if mark is None
                else exp.GT(this=loaded, expression=self.loaded_literal(source, mark))
            )
            slices.append(late)
        return exp.or_(*slices)

    # --- the membership: recomputed where it can have changed -------------------------

    def finish(
        self,
        table: str,
        state: exp.Query | exp.Table,
        high_water: dict[str, str],
        record: StateRecord | None,
    ) -> exp.Query:
        """Record the state, its people and its segments, and return the membership query:
        for the segments whose query over the state is the state's run's (carried), only
        the people whose values, entity row or overrides can have changed are evaluated,
        everybody else keeps their members; the others are evaluated for everybody."""
        builder = self.builder(state=state)
        with collector_paused():
            builder.build(self.names)
        columns = sorted(builder.entity_columns)
        people_now = builder.people_select()
        self.digests = {name: self.segment_digest(name) for name in self.names}
        carried: list[str] = []
        if (
            record is not None
            and record.people is not None
            and record.people_columns == columns
            and self.latest_committed_run() == record.run_id
        ):
            people = record.people
            self.entity_changes(self.runner.store.table(people), people_now)
            carried = [
                name
                for name in self.names
                if self.digests[name] is not None
                and record.segments.get(name) == self.digests[name]
            ]
            if self.events_read() and record.summary is not None and not self.ids_changed:
                self.summary_base = record.summary
                self.summary_rows = lambda alias: self.summary_filter(record, alias)
        else:
            people = f"segql_state_people_{self.run_id[:12]}"
            target = self.runner.store.table(people)
            warehouse = self.runner.warehouse
            warehouse.run(exp.Drop(tables=[target], kind="TABLE", exists=True))
            warehouse.run(exp.Create(this=target, kind="TABLE", expression=people_now))
            if record is not None and record.people is not None:
                self.old_people = record.people
        overrides = self.keep_overrides(record)
        self.record_state(table, high_water, people, columns, overrides)
        self.carried = carried
        everybody = [name for name in self.names if name not in carried]
        if not carried:
            return self.over_state(state)
        self.create_temp(EVALUATED, self.evaluated_people())
        self.evaluated = int(
            self.runner.warehouse.run(
                exp.select(exp.Count(this=exp.Star())).from_(_temp(EVALUATED))
            )[0][0]
        )
        restricted = self.builder(state=state, people_in=_temp(EVALUATED))
        with collector_paused():
            parts: list[exp.Query] = [_text_ids(restricted.build(carried))]
        kept = (
            exp.select(exp.column("segment", quoted=True), exp.column(PERSON_ID, quoted=True))
            .from_(self.runner.store.table(MEMBERS))
            .where(
                exp.and_(
                    exp.column("segment", quoted=True).isin(
                        *(exp.Literal.string(name) for name in carried)
                    ),
                    exp.column(PERSON_ID, quoted=True)
                    .isin(query=exp.select(PERSON_ID).from_(_temp(EVALUATED)))
                    .not_(),
                )
            )
        )
        parts.append(kept)
        if everybody:
            parts.append(_text_ids(self.over_state(state, everybody)))
        query = parts[0]
        for part in parts[1:]:
            query = exp.union(query, part, distinct=False)
        return query

    def segment_digest(self, name: str) -> str | None:
        """A digest of the segment's membership query over a state (None: the segment
        reads everybody's values, a population function, or a table of the warehouse
        other than the entity table, whose rows can change without the state knowing).
        Equal digests at two as-of times: the same membership from the same values, entity
        columns and current members."""
        builder = self.builder(state=exp.Table(this=exp.to_identifier("segql_state")))
        with collector_paused():
            query = builder.build([name])
        if builder.plan.population or builder.plan.statistics or builder.plan.edges:
            return None
        ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
        entity = self.runner.project.config.entity.table
        members = self.runner.store.table(MEMBERS)
        for table in query.find_all(exp.Table):
            name_of = table.name
            if name_of in ctes or name_of == "segql_state":
                continue
            if table.name == members.name and table.db == members.db:
                continue
            if ".".join(part for part in (table.db, table.name) if part) == entity:
                continue
            return None
        text = query.sql(dialect=self.runner.warehouse.dialect.sqlglot)
        return hashlib.sha256(text.encode()).hexdigest()

    def latest_committed_run(self) -> str | None:
        found = self.runner.warehouse.run(
            exp.select("run_id")
            .from_(self.runner.store.table(RUNS))
            .where(exp.column("status").eq(exp.Literal.string("committed")))
            .order_by(exp.column("commit_seq").desc())
            .limit(1)
        )
        return str(found[0][0]) if found else None

    def entity_changes(self, snapshot: exp.Table, people_now: exp.Select) -> None:
        """PEOPLE_CHANGED: the ids whose entity row differs from the snapshot's (``now``: the
        row as it is, ``then``: as it was); the commit brings the snapshot up to date."""
        now_only = exp.except_(people_now.copy(), exp.select("*").from_(snapshot.copy()))
        then_only = exp.except_(exp.select("*").from_(snapshot.copy()), people_now.copy())
        sides = exp.union(
            exp.select(
                exp.column(PERSON_ID, quoted=True),
                exp.alias_(exp.Literal.string("now"), "side", quoted=True),
            ).from_(now_only.subquery("n")),
            exp.select(
                exp.column(PERSON_ID, quoted=True),
                exp.alias_(exp.Literal.string("then"), "side", quoted=True),
            ).from_(then_only.subquery("t")),
            distinct=False,
        )
        self.create_temp(PEOPLE_CHANGED, sides)
        once = (
            exp.select(exp.column(PERSON_ID, quoted=True))
            .from_(_temp(PEOPLE_CHANGED))
            .group_by(exp.column(PERSON_ID, quoted=True))
            .having(exp.EQ(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
        )
        count = exp.select(exp.Count(this=exp.Star())).from_(once.subquery("o"))
        self.ids_changed = int(self.runner.warehouse.run(count)[0][0]) > 0
        changed = exp.select(PERSON_ID).from_(_temp(PEOPLE_CHANGED))
        fresh = people_now.copy().where(
            exp.column(PERSON_ID, quoted=True).isin(
                query=changed.copy().where(
                    exp.column("side", quoted=True).eq(exp.Literal.string("now"))
                )
            )
        )
        fresh = exp.select("*").from_(fresh.subquery("p"))
        self.commit += [
            exp.delete(
                snapshot.copy(), where=exp.column(PERSON_ID, quoted=True).isin(query=changed)
            ),
            exp.insert(fresh, snapshot.copy()),
        ]

    def keep_overrides(self, record: StateRecord | None) -> str:
        """A table of the people with an override now (as text), recorded with the state:
        the next run evaluates them again, and so an override cleared in between is undone."""
        table = f"segql_state_overrides_{self.run_id[:12]}"
        target = self.runner.store.table(table)
        text = exp.DataType.build("VARCHAR")
        people = (
            exp.select(exp.alias_(exp.cast(exp.column(PERSON_ID, quoted=True), text), PERSON_ID))
            .distinct()
            .from_(self.runner.store.table(OVERRIDES))
            .where(exp.column(PERSON_ID, quoted=True).is_(exp.null()).not_())
        )
        warehouse = self.runner.warehouse
        warehouse.run(exp.Drop(tables=[target], kind="TABLE", exists=True))
        warehouse.run(exp.Create(this=target, kind="TABLE", expression=people))
        if record is not None and record.overrides is not None:
            self.old_overrides = record.overrides
        return table

    def evaluated_people(self) -> exp.Query:
        """The people (as text) whose carried segments are evaluated again: values updated
        (AFFECTED), entity row changed, or an override recorded for them now or at the
        state's run."""
        text = exp.DataType.build("VARCHAR")
        parts = [
            exp.select(exp.alias_(exp.cast(exp.column(PERSON_ID, quoted=True), text), PERSON_ID))
            .from_(_temp(name))
            .where(exp.column(PERSON_ID, quoted=True).is_(exp.null()).not_())
            for name in (AFFECTED, PEOPLE_CHANGED)
            if name in self.temps
        ]
        parts.append(
            exp.select(exp.alias_(exp.cast(exp.column(PERSON_ID, quoted=True), text), PERSON_ID))
            .from_(self.runner.store.table(OVERRIDES))
            .where(exp.column(PERSON_ID, quoted=True).is_(exp.null()).not_())
        )
        if self.old_overrides is not None:
            parts.append(
                exp.select(exp.column(PERSON_ID, quoted=True)).from_(
                    self.runner.store.table(self.old_overrides)
                )
            )
        query: exp.Query = parts[0]
        for part in parts[1:]:
            query = exp.union(query, part, distinct=True)
        if len(parts) == 1:
            query = exp.select(PERSON_ID).distinct().from_(query.subquery("e"))
        return query

    # --- the data summary (segql.runs.incremental.summary) -----------------------------------

    def events_read(self) -> bool:
        """Whether the state reads ``[events]`` (its late rows are then noticed)."""
        events = self.runner.project.config.events
        return events is not None and any(s.name == events.name for s in self.sources)

    def summary_filter(self, record: StateRecord, alias: str) -> exp.Expr:
        """The events the summary reads beside the kept counts: after the state's as-of,
        without a time, or loaded since its high-water mark."""
        events = self.runner.project.config.events
        assert events is not None and events.time is not None
        time = exp.column(events.time, table=alias, quoted=True)
        last = exp.cast(exp.Literal.string(format_timestamp(record.as_of)), "TIMESTAMP")
        parts: list[exp.Expr] = [
            exp.GT(this=time.copy(), expression=last),
            time.copy().is_(exp.null()),
        ]
        if events.loaded_at is not None:
            loaded = exp.column(events.loaded_at, table=alias, quoted=True)
            mark = record.high_water.get(events.name)
            parts.append(
                loaded.is_(exp.null()).not_()
                if mark is None
                else exp.GT(this=loaded, expression=self.loaded_literal(events, mark))
            )
        return exp.or_(*parts)

    def keep_summary(self, counts: tuple[int, ...]) -> None:
        """Keep the summary's counts up to the as-of with the state (in the run's commit)."""
        if self.digests is not None:  # a state is written
            self.commit.append(write_summary(self.runner.store, counts))

    # --- shared ------------------------------------------------------------------------

    def over_state(self, state: exp.Query | exp.Table, names: list[str] | None = None) -> exp.Query:
        """The membership query, reading stage 0 from ``state``."""
        builder = self.builder(state=state)
        with collector_paused():
            return builder.build(names or self.names)

    def high_water(self, record: StateRecord | None) -> dict[str, str]:
        """source -> the highest ``loaded_at`` now, for the sources that have one."""
        found: dict[str, str] = {}
        for source in self.sources:
            if source.loaded_at is None:
                continue
            loaded = exp.column(source.loaded_at, quoted=True)
            value = self.runner.warehouse.run(
                exp.select(exp.Max(this=loaded)).from_(table_ref(source.table))
            )[0][0]
            if value is not None:
                found[source.name] = (
                    format_timestamp(value) if isinstance(value, datetime) else str(value)
                )
            elif record is not None and source.name in record.high_water:
                found[source.name] = record.high_water[source.name]
        return found

    def record_state(
        self,
        table: str,
        high_water: dict[str, str],
        people: str,
        columns: list[str],
        overrides: str,
    ) -> None:
        store = self.runner.store
        record = StateRecord(
            table,
            self.run_id,
            self.as_of,
            self.fingerprint,
            STATE_LAYOUT,
            high_water,
            people,
            columns,
            {name: digest for name, digest in (self.digests or {}).items() if digest is not None},
            overrides=overrides,
        )
        self.commit += write_record(store, record)
        if self.days:
            self.commit.append(exp.delete(store.table(STATE_DAYS)))
            self.commit.append(
                exp.Insert(
                    this=exp.Schema(
                        this=store.table(STATE_DAYS),
                        expressions=[
                            exp.to_identifier(c, quoted=True) for c in ("source", "day", "rows")
                        ],
                    ),
                    expression=exp.select("source", "day", "rows").from_(_temp(DAYS_NOW)),
                )
            )
        self.commit.append(
            exp.update(
                store.table(RUNS),
                {
                    "mode": exp.Literal.string(self.mode),
                    "full_reason": exp.Literal.string(self.reason) if self.reason else exp.null(),
                },
                where=exp.column("run_id").eq(exp.Literal.string(self.run_id)),
            )
        )

    def commit_statements(self) -> list[exp.Expr]:
        """What the run's commit writes: the state, its record, the run's mode."""
        if not self.commit:  # a run without a state: only the mode
            self.commit.append(
                exp.update(
                    self.runner.store.table(RUNS),
                    {
                        "mode": exp.Literal.string(self.mode),
                        "full_reason": exp.Literal.string(self.reason or "full"),
                    },
                    where=exp.column("run_id").eq(exp.Literal.string(self.run_id)),
                )
            )
        return self.commit

    def after_commit(self) -> None:
        """Drop what the committed run no longer needs: temp tables, a replaced state."""
        warehouse, store = self.runner.warehouse, self.runner.store
        for name in self.temps:
            warehouse.run(exp.Drop(tables=[_temp(name)], kind="TABLE", exists=True))
        record = read_record(warehouse, store)
        if self.old_table and record is not None and record.table != self.old_table:
            warehouse.run(exp.Drop(tables=[store.table(self.old_table)], kind="TABLE", exists=True))
        for old, now in (
            (self.old_people, record.people if record else None),
            (self.old_overrides, record.overrides if record else None),
        ):
            if old and record is not None and now != old:
                warehouse.run(exp.Drop(tables=[store.table(old)], kind="TABLE", exists=True))

    def time_bound(
        self, at: datetime, source: SourceConfig, offset: ast.Duration | None = None
    ) -> exp.Expr:
        """``at - offset`` typed to meet the source's time column."""
        builder = QueryBuilder(
            self.runner.project.analyzer, self.runner.warehouse.dialect, at, QueryOptions()
        )
        point = builder.now() if offset is None else builder.shift(builder.now(), offset, -1)
        if builder.source_instant(source):
            point = builder.dialect.as_instant(point)
        return point

    def loaded_literal(self, source: SourceConfig, mark: str) -> exp.Expr:
        assert source.loaded_at is not None
        catalog = self.runner.project.analyzer.catalog
        if catalog.column_type(source.table, source.loaded_at) == "time":
            builder = QueryBuilder(
                self.runner.project.analyzer,
                self.runner.warehouse.dialect,
                datetime.fromisoformat(mark),
                QueryOptions(),
            )
            value = builder.now()
            if catalog.holds_instants(source.table, source.loaded_at):
                value = builder.dialect.as_instant(value)
            return value
        if catalog.column_type(source.table, source.loaded_at) == "number":
            return exp.Literal.number(mark)
        return exp.Literal.string(mark)

    def create_temp(self, name: str, query: exp.Query) -> None:
        self.runner.create_temp(name, query)
        self.temps.append(name)


def _recompute_offsets(node: ast.Aggregate | ast.Sequence | ast.Funnel) -> Offsets | None:
    """The offsets of a value deltas cannot update (None: deltas update it)."""
    if isinstance(node, ast.Aggregate):
        if aggregate_update(node) != "recompute":
            return None
        return aggregate_offsets(node)
    return sequence_offsets(node)


def _text_ids(query: exp.Query) -> exp.Select:
    """``(segment, person_id)`` with the id as text, as ``segql_members`` keeps it."""
    return exp.select(
        exp.column("segment", quoted=True),
        exp.alias_(exp.cast(exp.column(PERSON_ID, quoted=True), "VARCHAR"), PERSON_ID, quoted=True),
    ).from_(query.subquery("m"))


def _temp(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name, quoted=True))


def describe_mode(
    mode: str, reason: str | None, recomputed: int | None, by_deltas: bool = False
) -> str:
    """The run summary's line on how the state was brought to the as-of."""
    if mode == "incremental":
        how = "updated by deltas" if by_deltas else "recomputed"
        return f"incremental: {recomputed or 0} people {how}, everybody else from the state"
    return f"full recompute: {reason or 'full'}"


def describe_membership(carried: Sequence[str], evaluated: int | None, segments: int) -> str:
    """The run summary's line on the segments that kept most of their members."""
    return (
        f"membership: {len(carried)} of {segments} segments evaluated for {evaluated or 0} "
        "people (values, entity row or overrides changed), everybody else kept their members"
    )
