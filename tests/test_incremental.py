"""Incremental runs (runtime.md 8.1): every incremental run records exactly what a full run
at the same as-of records, members and history, on DuckDB, PostgreSQL and Snowflake
(fakesnow), and the members are the reference evaluator's.

Two projects share one warehouse and its data: ``inc`` runs as ``segql run`` does, ``full``
with ``--full``. Hypothesis draws sequences of runs: appends, late rows, days without
events, jumps of several days, people whose status changes, definition edits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segql import project_from_text
from segql.config import config_from_dict
from segql.engines import EngineAdapter, open_dbapi, open_duckdb
from segql.runs.overrides import Overrides
from segql.runs.runner import Runner, RunResult
from segql.runs.store import Store
from tests.support.engines import DuckDBEngine, PostgresEngine, SnowflakeEngine, Table, in_ci
from tests.support.scenario import event, make_tables, person, run_reference, subscription

START = datetime(2026, 3, 1)
RULES = """
trait spend = sum(purchase.amount)
segment buyers where count(purchase) >= 2
segment recent where did login within 3 days
segment spenders where spend >= 30 and status = 'paid'
segment window_sum where sum(purchase.amount within 5 days) >= 20
segment old_news where did login between 6 days ago and 2 days ago
segment first_timer where first_time(purchase) within 4 days
segment biggest where max(purchase.amount) >= 15
segment varied where count_distinct(purchase.amount) >= 2
segment busy where active_days(any within 7 days) >= 2
segment login_then_buy where did login then purchase within 2 days
segment login_no_buy where did login within 5 days then not purchase within 1 day
segment top_half where ntile(2, spend) = 2
segment subscribed where count(subscriptions within 4 days) >= 1 or sum(subscriptions.mrr) >= 25
segment sticky
  enter when count(login within 5 days) >= 2
  exit when count(login within 5 days) = 0
"""
# An edit of a threshold (the same values) and one that adds a value.
EDITS = (
    RULES.replace("count(purchase) >= 2", "count(purchase) >= 3"),
    RULES + "segment avg_buyer where avg(purchase.amount) > 10\n",
)
# Only values that deltas update (counts, sums, unwindowed min/max/first/last).
DELTA_RULES = """
trait spend = sum(purchase.amount)
segment buyers where count(purchase) >= 2
segment recent where did login within 3 days
segment spenders where spend >= 30 and status = 'paid'
segment window_sum where sum(purchase.amount within 5 days) >= 20
segment old_news where did login between 6 days ago and 2 days ago
segment first_timer where first_time(purchase) within 4 days
segment biggest where max(purchase.amount) >= 15 and min(purchase.amount) < 5
segment lapsing where last_time(login) before 2 days ago
segment top_half where ntile(2, spend) = 2
segment subscribed where count(subscriptions within 4 days) >= 1 or sum(subscriptions.mrr) >= 25
segment sticky
  enter when count(login within 5 days) >= 2
  exit when count(login within 5 days) = 0
"""
STATEFUL = {"sticky"}  # hysteresis: the reference has no current members
PEOPLE = (1, 2, 3, 4, 5)
CARRIED: list[str] = []  # segments incremental runs evaluated only for some people


def _examples(default: int) -> int:
    """Modest by default (CI has two cores); SEGQL_LONG=1 runs ten times as many."""
    if os.environ.get("SEGQL_LONG", "").strip() in ("1", "true", "yes"):
        return default * 10
    return int(os.environ.get("SEGQL_INCREMENTAL_EXAMPLES", default))


def _config(schema: str, loaded_at: bool) -> Any:
    events: dict[str, str] = {
        "table": "events",
        "person": "person_id",
        "name": "event_type",
        "time": "occurred_at",
        "properties": "properties",
    }
    subscriptions = {"table": "subscriptions", "person": "person_id", "time": "created_at"}
    if loaded_at:
        events["loaded_at"] = "url"  # the tests' ingestion mark: an ISO time as text
        subscriptions["loaded_at"] = "status"
    return config_from_dict(
        {
            "warehouse": {"timezone": "UTC", "schema": schema},
            "entity": {"table": "people", "id": "person_id"},
            "events": events,
            "sources": {"subscriptions": subscriptions},
        },
        Path("."),
    )


@dataclass
class World:
    """The data as it grows, and the rules as they are edited."""

    statuses: dict[int, str] = field(default_factory=lambda: dict.fromkeys(PEOPLE, "paid"))
    events: list[tuple[Any, ...]] = field(default_factory=list)
    subscriptions: list[tuple[Any, ...]] = field(default_factory=list)
    rules: str = RULES
    edits: tuple[str, ...] = EDITS
    as_of: datetime = START
    runs: int = 0

    def tables(self) -> dict[str, Table]:
        people = [person(p, status=s) for p, s in self.statuses.items()]
        return make_tables(people=people, events=self.events, subscriptions=self.subscriptions)


NAMES = ("login", "purchase", "page_view", "subscription")


@st.composite
def steps(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A sequence of runs: each moves the as-of on and changes the data or the rules."""
    found = []
    for _ in range(draw(st.integers(2, 5))):
        hours = draw(st.sampled_from([0, 6, 24, 24, 48, 24 * 4, 24 * 9]))
        new = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(PEOPLE),
                    st.sampled_from(NAMES),
                    st.integers(0, max(hours, 1)),  # hours back from the new as-of
                    st.integers(1, 20),
                ),
                max_size=8,
            )
        )
        late = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(PEOPLE),
                    st.sampled_from(NAMES),
                    st.integers(1, 96),  # hours before the last run's as-of
                    st.integers(1, 20),
                ),
                max_size=draw(st.sampled_from([0, 0, 0, 2])),
            )
        )
        status = draw(
            st.none() | st.tuples(st.sampled_from(PEOPLE), st.sampled_from(["paid", "free"]))
        )
        edit = draw(st.sampled_from([None, None, None, None, 0, 1]))
        found.append({"hours": hours, "new": new, "late": late, "status": status, "edit": edit})
    return found


def apply(world: World, step: dict[str, Any]) -> None:
    last = world.as_of
    world.as_of = last + timedelta(hours=step["hours"])
    loaded = (world.as_of + timedelta(minutes=world.runs)).isoformat()
    rows = [(who, name, world.as_of - timedelta(hours=back), amount)
            for who, name, back, amount in step["new"]]  # fmt: skip
    rows += [(who, name, last - timedelta(hours=back), amount)
             for who, name, back, amount in step["late"]]  # fmt: skip
    for who, name, at, amount in rows:
        if name == "subscription":
            world.subscriptions.append(subscription(who, at, mrr=float(amount), status=loaded))
        else:
            world.events.append(_event(who, name, at, amount, loaded))
    if step["status"] is not None:
        world.statuses[step["status"][0]] = step["status"][1]
    if step["edit"] is not None:
        world.rules = world.edits[step["edit"]]
    world.runs += 1


def _event(who: int, name: str, at: datetime, amount: int, loaded: str) -> tuple[Any, ...]:
    value = float(amount) if name == "purchase" else None
    return event(who, name, at, amount=value, url=loaded)


class Pair:
    """An incremental and a full project over one warehouse."""

    def __init__(self, warehouse: EngineAdapter, loader: Any, loaded_at: bool, tag: str):
        self.warehouse, self.loader = warehouse, loader
        self.schemas = {"inc": f"inc_{tag}", "full": f"full_{tag}"}
        self.loaded_at = loaded_at

    def run(self, world: World) -> dict[str, RunResult]:
        self.loader.load(world.tables())
        results = {}
        for kind, schema in self.schemas.items():
            project = project_from_text(_config(schema, self.loaded_at), world.rules)
            runner = Runner(project, self.warehouse, full=kind == "full")
            results[kind] = runner.run(None, world.as_of, prune=True)
        return results

    def history(self, kind: str) -> list[tuple[Any, ...]]:
        rows = self.warehouse.query(
            'SELECT "segment", "person_id", "change", "reason", "as_of", "version" FROM '
            f'"{self.schemas[kind]}"."segql_history" '
            'ORDER BY "commit_seq", "segment", "person_id", "change"'
        )
        return [(r[0], r[1], r[2], r[3], _naive(r[4]), int(r[5])) for r in rows]

    def members(self, kind: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        rows = self.warehouse.query(
            f'SELECT "segment", "person_id" FROM "{self.schemas[kind]}"."segql_members"'
        )
        for segment, person_id in rows:
            found.setdefault(segment, set()).add(str(person_id))
        return found


def _naive(value: Any) -> Any:
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


def check_sequence(pair: Pair, sequence: list[dict[str, Any]], rules: str = RULES) -> list[str]:
    """Run the sequence; every run's history and members must be the full run's."""
    edits = (
        EDITS
        if rules == RULES
        else (
            rules.replace("count(purchase) >= 2", "count(purchase) >= 3"),
            rules + "segment many where count(page_view within 2 days) >= 2\n",
        )
    )
    world = World(rules=rules, edits=edits)
    modes = []
    for step in [{"hours": 0, "new": [], "late": [], "status": None, "edit": None}, *sequence]:
        apply(world, step)
        results = pair.run(world)
        modes.append(results["inc"].mode)
        CARRIED.extend(results["inc"].carried)
        assert results["full"].mode == "full"
        # The data summary (events counted, ...) is the full run's, kept or not.
        assert results["inc"].data == results["full"].data, step
        assert pair.history("inc") == pair.history("full"), (step, results["inc"].mode_reason)
        members = pair.members("inc")
        assert members == pair.members("full")
        project = project_from_text(_config("x", False), world.rules)
        names = [n for n in project.segment_names if n not in STATEFUL]
        expected = run_reference(project, world.tables(), world.as_of, names)
        for name in names:
            assert members.get(name, set()) == {str(p) for p in expected[name]}, name
    return modes


PROFILE = settings(
    deadline=None,
    derandomize=in_ci(),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# --- DuckDB ---------------------------------------------------------------------------------


@pytest.fixture
def duckdb_pair() -> Iterator[Any]:
    made: list[EngineAdapter] = []

    def make(loaded_at: bool) -> Pair:
        warehouse = open_duckdb(":memory:")
        made.append(warehouse)
        loader = DuckDBEngine.__new__(DuckDBEngine)
        loader._con = warehouse.connection  # type: ignore[attr-defined]
        return Pair(warehouse, loader, loaded_at, "d")

    yield make
    for warehouse in made:
        warehouse.close()


@settings(PROFILE, max_examples=_examples(6))
@given(sequence=steps(), loaded_at=st.booleans())
def test_incremental_runs_equal_full_runs_on_duckdb(
    duckdb_pair: Any, sequence: list[dict[str, Any]], loaded_at: bool
) -> None:
    check_sequence(duckdb_pair(loaded_at), sequence)


@settings(PROFILE, max_examples=_examples(6))
@given(sequence=steps(), loaded_at=st.booleans())
def test_runs_updated_by_deltas_equal_full_runs_on_duckdb(
    duckdb_pair: Any, sequence: list[dict[str, Any]], loaded_at: bool
) -> None:
    check_sequence(duckdb_pair(loaded_at), sequence, DELTA_RULES)


# --- PostgreSQL and Snowflake ----------------------------------------------------------------


@settings(PROFILE, max_examples=_examples(3))
@given(sequence=steps(), loaded_at=st.booleans())
@pytest.mark.parametrize("rules", [RULES, DELTA_RULES], ids=["recompute", "deltas"])
def test_incremental_runs_equal_full_runs_on_postgres(
    rules: str, postgres_server: Any, sequence: list[dict[str, Any]], loaded_at: bool
) -> None:
    engine = PostgresEngine(postgres_server.uri)
    warehouse = open_dbapi(engine._conn, "postgres")
    try:
        check_sequence(Pair(warehouse, engine, loaded_at, engine.schema[-8:]), sequence, rules)
    finally:
        for schema in ("inc", "full"):
            engine.query(f'DROP SCHEMA IF EXISTS "{schema}_{engine.schema[-8:]}" CASCADE')
        engine.close()


@settings(PROFILE, max_examples=_examples(2))
@given(sequence=steps(), loaded_at=st.booleans())
@pytest.mark.parametrize("rules", [RULES, DELTA_RULES], ids=["recompute", "deltas"])
def test_incremental_runs_equal_full_runs_on_snowflake(
    rules: str, sequence: list[dict[str, Any]], loaded_at: bool
) -> None:
    engine = SnowflakeEngine()
    try:
        warehouse = open_dbapi(engine._conn, "snowflake")
        check_sequence(Pair(warehouse, engine, loaded_at, "s"), sequence, rules)
    finally:
        engine.close()


# --- membership kept for the people nothing changed for -------------------------------------

# Segments an incremental run evaluates only for the people whose values, entity row or
# overrides changed (``buyers``, ``tiers``, references, hysteresis), beside segments whose
# membership moves with the as-of by itself (a value or a property compared with ``now``)
# or reads everybody (``median``, ``ntile``): those are evaluated for everybody.
MEMBERSHIP_RULES = """
trait spend = sum(purchase.amount)
segment buyers where count(purchase) >= 2
segment gold where spend >= 30
segment silver where spend >= 10
priority gold, silver
segment loyal where in buyers and not in gold and status = 'paid'
segment fresh_buyer where first_time(purchase) within 3 days
segment lapsing where last_time(login) before 2 days ago and in buyers
segment new_people where signup_at within 4 days
segment new_and_loyal where in new_people or in loyal
segment above_median where spend > median(spend)
segment top_half where ntile(2, spend) = 2 and not in loyal
segment sticky
  enter when count(login) >= 2
  exit when count(login) = 0 or status = 'free'
"""


@st.composite
def membership_steps(draw: st.DrawFn) -> list[dict[str, Any]]:
    """``steps`` and, between runs: people added to or removed from the entity table, events
    of people it does not know, overrides added or cleared."""
    found = draw(steps())
    for step in found:
        step["edit"] = None
        step["people"] = draw(st.none() | st.tuples(st.sampled_from([6, 7]), st.booleans()))
        step["stranger"] = draw(st.booleans())
        step["override"] = draw(
            st.none()
            | st.tuples(
                st.sampled_from(["buyers", "gold", "sticky", "*"]),
                st.sampled_from(PEOPLE),
                st.sampled_from(["include", "exclude", "clear"]),
            )
        )
    return found


def check_membership_sequence(pair: Pair, sequence: list[dict[str, Any]]) -> None:
    world = World(rules=MEMBERSHIP_RULES, edits=())
    signups = {p: START - timedelta(days=p) for p in (*PEOPLE, 6, 7)}
    present = set(PEOPLE)
    for step in [{"hours": 0, "new": [], "late": [], "status": None, "edit": None}, *sequence]:
        apply(world, step)
        if step.get("people"):
            who, joins = step["people"]
            (present.add if joins else present.discard)(who)
            world.statuses = {p: world.statuses.get(p, "paid") for p in sorted(present)}
        if step.get("stranger"):
            world.events.append(_event(9, "purchase", world.as_of, 12, world.as_of.isoformat()))
        override = step.get("override")
        if override and not (override[0] == "*" and override[2] == "include"):
            segment, who, kind = override
            for schema in pair.schemas.values():
                overrides = Overrides(pair.warehouse, Store(schema))
                Store(schema).ensure_tables(pair.warehouse)
                if kind == "clear":
                    overrides.clear(segment, [str(who)])
                else:
                    overrides.add(segment, [str(who)], kind, "test")
        tables = world.tables()
        people = [person(p, status=world.statuses[p], signup_at=signups[p]) for p in present]
        tables.update(make_tables(people=people))
        pair.loader.load(tables)
        results = {}
        for kind, schema in pair.schemas.items():
            project = project_from_text(_config(schema, pair.loaded_at), world.rules)
            runner = Runner(project, pair.warehouse, full=kind == "full")
            results[kind] = runner.run(None, world.as_of, prune=True)
        CARRIED.extend(results["inc"].carried)
        assert results["inc"].data == results["full"].data, step
        assert pair.history("inc") == pair.history("full"), (step, results["inc"].mode_reason)
        assert pair.members("inc") == pair.members("full"), step


@settings(PROFILE, max_examples=_examples(4))
@given(sequence=membership_steps(), loaded_at=st.booleans())
def test_kept_members_equal_full_runs_on_duckdb(
    duckdb_pair: Any, sequence: list[dict[str, Any]], loaded_at: bool
) -> None:
    check_membership_sequence(duckdb_pair(loaded_at), sequence)


@settings(PROFILE, max_examples=_examples(1))
@given(sequence=membership_steps(), loaded_at=st.booleans())
def test_kept_members_equal_full_runs_on_postgres(
    postgres_server: Any, sequence: list[dict[str, Any]], loaded_at: bool
) -> None:
    engine = PostgresEngine(postgres_server.uri)
    warehouse = open_dbapi(engine._conn, "postgres")
    try:
        check_membership_sequence(Pair(warehouse, engine, loaded_at, engine.schema[-8:]), sequence)
    finally:
        for schema in ("inc", "full"):
            engine.query(f'DROP SCHEMA IF EXISTS "{schema}_{engine.schema[-8:]}" CASCADE')
        engine.close()


@settings(PROFILE, max_examples=_examples(1))
@given(sequence=membership_steps(), loaded_at=st.booleans())
def test_kept_members_equal_full_runs_on_snowflake(
    sequence: list[dict[str, Any]], loaded_at: bool
) -> None:
    engine = SnowflakeEngine()
    try:
        warehouse = open_dbapi(engine._conn, "snowflake")
        check_membership_sequence(Pair(warehouse, engine, loaded_at, "s"), sequence)
    finally:
        engine.close()
