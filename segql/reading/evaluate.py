"""``segql eval --person ID...``: every segment's membership for a few people at an as-of,
computed with the person filter in every read (runtime.md 8.2); nothing is written.

The membership is the one a run at that as-of would record: the rules (a hysteresis
segment stays with its current members), then the overrides, and a paused segment keeps
its current members.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlglot import exp

from segql.compile.compiler import (
    MembershipQuery,
    QueryOptions,
    collector_paused,
    compile_membership_query,
)
from segql.compile.dialect import Dialect, get_dialect
from segql.compile.history_sql import no_history
from segql.engines import EngineAdapter as Warehouse
from segql.project import Project
from segql.runs.overrides import Overrides
from segql.runs.store import EVERY_SEGMENT, MEMBERS, OVERRIDES, Store
from segql.timeutil import utc_now

Membership = dict[str, list[str]]  # person id -> the segments they are in, sorted


def evaluate_people(
    project: Project,
    warehouse: Warehouse,
    person_ids: Sequence[str],
    as_of: datetime | None = None,
    segments: Sequence[str] | None = None,
) -> Membership:
    """Each person's segments at ``as_of`` (now), among ``segments`` (every one)."""
    people = tuple(dict.fromkeys(str(p) for p in person_ids))
    project.read_catalog(warehouse)
    project.check()
    names = project.select(segments)
    store = Store(project.config.warehouse.schema)
    recorded = _has_table(warehouse, store, MEMBERS)
    paused = set(project.paused_segments)
    found: set[tuple[str, str]] = set()
    rules = [name for name in names if name not in paused]
    if rules and people:
        options = QueryOptions(
            members_table=store.table(MEMBERS) if recorded else None,
            person_ids=people,
            history=None if recorded else no_history(),  # no runs: no recorded membership
        )
        dialect = get_dialect(warehouse.dialect.name)
        for query in person_queries(project, dialect, rules, as_of or utc_now(), options):
            found |= {(str(p), segment) for segment, p in warehouse.run(query.expression)}
    if recorded and paused and people:
        found |= _current_members(warehouse, store, [n for n in names if n in paused], people)
    if _has_table(warehouse, store, OVERRIDES):
        found = _apply_overrides(warehouse, store, found, set(rules), people)
    return {person: sorted(s for p, s in found if p == person) for person in people}


def person_queries(
    project: Project,
    dialect: Dialect,
    segments: list[str],
    as_of: datetime,
    options: QueryOptions,
) -> list[MembershipQuery]:
    """One query for the segments whose reads take the person filter, one for those that
    rank everybody (a population function): one such segment must not cost the others
    their filter."""

    def compiled(names: list[str]) -> MembershipQuery:
        return compile_membership_query(project.analyzer, names, dialect, as_of, options=options)

    with collector_paused():
        together = compiled(segments)
        if together.pushed or len(segments) == 1:
            return [together]
        pushed = [name for name in segments if compiled([name]).pushed]
        ranked = [name for name in segments if name not in pushed]
        return [compiled(names) for names in (pushed, ranked) if names]


def _current_members(
    warehouse: Warehouse, store: Store, segments: list[str], people: tuple[str, ...]
) -> set[tuple[str, str]]:
    person, segment = exp.column("person_id", quoted=True), exp.column("segment", quoted=True)
    select = (
        exp.select(person, segment)
        .from_(store.table(MEMBERS))
        .where(segment.copy().isin(*(exp.Literal.string(s) for s in segments)))
        .where(person.copy().isin(*(exp.Literal.string(p) for p in people)))
    )
    return {(str(p), str(s)) for p, s in warehouse.run(select)}


def _apply_overrides(
    warehouse: Warehouse,
    store: Store,
    found: set[tuple[str, str]],
    evaluated: set[str],
    people: tuple[str, ...],
) -> set[tuple[str, str]]:
    """As a run applies them: an inclusion adds, an exclusion (of the segment or of ``*``)
    removes and wins. Only evaluated segments change (a paused one keeps its members)."""
    wanted = set(people)
    rows = [r for r in Overrides(warehouse, store).list() if str(r[1]) in wanted]
    excluded = {(str(r[1]), str(r[0])) for r in rows if r[2] == "exclude"}
    everywhere = {person for person, segment in excluded if segment == EVERY_SEGMENT}
    result = set(found)
    for segment, person, kind, *_ in rows:
        if kind == "include" and segment in evaluated:
            result.add((str(person), str(segment)))
    return {
        (person, segment)
        for person, segment in result
        if segment not in evaluated
        or ((person, segment) not in excluded and person not in everywhere)
    }


def _has_table(warehouse: Warehouse, store: Store, name: str) -> bool:
    return warehouse.table_columns(f"{store.schema}.{name}") is not None
