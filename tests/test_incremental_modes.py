"""When a run is incremental and when it recomputes, and what it records (runtime.md 8.1):
the mode and reason in ``segql_runs``, the state's layout, ``--full``, late rows with and
without ``loaded_at``, a crash in the middle of an incremental run."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from segql import project_from_text
from segql.engines import EngineAdapter, open_duckdb
from segql.runs.overrides import Overrides
from segql.runs.runner import Runner, RunResult
from segql.runs.store import Store
from tests.support.engines import DuckDBEngine
from tests.support.runtime import RuntimeProject
from tests.support.scenario import event, make_tables, person
from tests.test_incremental import _config

T0 = datetime(2026, 3, 10)
RULES = """
segment buyers where count(purchase) >= 2
segment recent where did login within 3 days
"""


class Harness:
    def __init__(self, loaded_at: bool = False):
        self.warehouse: EngineAdapter = open_duckdb(":memory:")
        self.loader = DuckDBEngine.__new__(DuckDBEngine)
        self.loader._con = self.warehouse.connection  # type: ignore[attr-defined]
        self.loaded_at = loaded_at
        self.events: list[tuple[Any, ...]] = []
        self.rules = RULES
        self.statuses = {1: "paid", 2: "paid", 3: "paid"}

    def add(self, who: int, name: str, at: datetime, loaded: datetime) -> None:
        self.events.append(event(who, name, at, url=loaded.isoformat()))

    def run(self, as_of: datetime, full: bool = False) -> RunResult:
        people = [person(p, status=s) for p, s in self.statuses.items()]
        self.loader.load(make_tables(people=people, events=self.events))
        project = project_from_text(_config("segql", self.loaded_at), self.rules)
        return Runner(project, self.warehouse, full=full).run(None, as_of)

    def runs(self) -> list[tuple[str, str | None]]:
        rows = self.warehouse.query(
            'SELECT "mode", "full_reason" FROM "segql"."segql_runs" ORDER BY "commit_seq"'
        )
        return [(r[0], r[1]) for r in rows]


def test_a_run_after_appended_rows_is_incremental_and_recomputes_only_their_people() -> None:
    h = Harness()
    h.add(1, "purchase", T0 - timedelta(days=5), T0)
    h.add(2, "login", T0 - timedelta(days=1), T0)
    first = h.run(T0)
    assert (first.mode, first.mode_reason) == ("full", "no state yet")
    h.add(3, "purchase", T0 + timedelta(hours=2), T0 + timedelta(days=1))
    h.add(3, "purchase", T0 + timedelta(hours=3), T0 + timedelta(days=1))
    second = h.run(T0 + timedelta(days=1))
    assert second.mode == "incremental" and second.mode_reason is None
    # person 3 (new rows) and person 2 (their login crossed the 3-day edge? not yet: 2 days)
    assert second.recomputed == 1
    assert {s.segment: s.entered for s in second.segments}["buyers"] == 1
    third = h.run(T0 + timedelta(days=3))  # person 2's login leaves `within 3 days`
    assert third.mode == "incremental" and third.recomputed == 1
    assert {s.segment: s.exited for s in third.segments}["recent"] == 1
    assert h.runs() == [("full", "no state yet"), ("incremental", None), ("incremental", None)]


def test_full_always_recomputes_and_says_why() -> None:
    h = Harness()
    h.add(1, "purchase", T0 - timedelta(days=5), T0)
    h.run(T0)
    result = h.run(T0 + timedelta(days=1), full=True)
    assert (result.mode, result.mode_reason) == ("full", "--full")
    assert h.runs()[-1] == ("full", "--full")


def test_a_late_row_without_loaded_at_forces_a_full_run() -> None:
    h = Harness()
    h.add(1, "purchase", T0 - timedelta(days=5), T0)
    h.run(T0)
    h.add(1, "purchase", T0 - timedelta(days=2), T0 + timedelta(days=1))  # late
    result = h.run(T0 + timedelta(days=1))
    assert result.mode == "full"
    assert result.mode_reason is not None and "at or before the last run's as-of" in (
        result.mode_reason
    )
    assert {s.segment: s.entered for s in result.segments}["buyers"] == 1


def test_a_late_row_with_loaded_at_is_read_incrementally() -> None:
    h = Harness(loaded_at=True)
    h.add(1, "purchase", T0 - timedelta(days=5), T0)
    h.run(T0)
    h.add(1, "purchase", T0 - timedelta(days=2), T0 + timedelta(days=1))  # late, loaded now
    result = h.run(T0 + timedelta(days=1))
    assert result.mode == "incremental" and result.recomputed == 1
    assert {s.segment: s.entered for s in result.segments}["buyers"] == 1


def test_a_new_value_or_an_old_state_layout_recomputes() -> None:
    h = Harness()
    h.add(1, "purchase", T0 - timedelta(days=5), T0)
    h.run(T0)
    h.rules = RULES.replace("count(purchase) >= 2", "count(purchase) >= 1")  # same values
    assert h.run(T0 + timedelta(hours=1)).mode == "incremental"
    h.rules = RULES + "segment big where max(purchase.amount) > 3\n"
    changed = h.run(T0 + timedelta(hours=2))
    assert changed.mode_reason == "the state's values or their sources are defined differently"
    h.warehouse.query(
        'UPDATE "segql"."segql_meta" SET "value" = \'0\' WHERE "key" = \'state.layout\''
    )
    old = h.run(T0 + timedelta(hours=3))
    assert old.mode == "full" and "layout (0)" in (old.mode_reason or "")


def test_the_state_holds_one_row_of_values_per_person_and_no_rows_of_events() -> None:
    h = Harness()
    for day in range(3):
        h.add(1, "purchase", T0 - timedelta(days=day), T0)
    h.add(2, "login", T0 - timedelta(days=1), T0)
    h.run(T0)
    (table,) = h.warehouse.query(
        'SELECT "value" FROM "segql"."segql_meta" WHERE "key" = \'state.table\''
    )[0]
    rows = h.warehouse.query(f'SELECT * FROM "segql"."{table}" ORDER BY 1')
    columns = [c for c, _ in h.warehouse.table_columns(f"segql.{table}") or []]
    assert columns[0] == "person_id" and "occurred_at" not in columns
    assert [r[0] for r in rows] == [1, 2]
    assert rows[0][1] == 3 and rows[1][1] in (0, None)  # purchases (none: read as 0)


def test_segql_runs_of_an_older_layout_gains_mode_and_reason(tmp_path: Path) -> None:
    warehouse = open_duckdb(str(tmp_path / "w.duckdb"))
    warehouse.query('CREATE SCHEMA "segql"')
    warehouse.query(
        'CREATE TABLE "segql"."segql_runs" ("run_id" VARCHAR, "as_of" TIMESTAMP, '
        '"started_at" TIMESTAMP, "finished_at" TIMESTAMP, "status" VARCHAR, '
        '"commit_seq" BIGINT, "error" VARCHAR, "segments" VARCHAR, "summary" VARCHAR)'
    )
    loader = DuckDBEngine.__new__(DuckDBEngine)
    loader._con = warehouse.connection  # type: ignore[attr-defined]
    loader.load(make_tables(people=[person(1)], events=[event(1, "purchase", T0)]))
    project = project_from_text(_config("segql", False), RULES)
    Runner(project, warehouse).run(None, T0)
    assert warehouse.query('SELECT "mode", "full_reason" FROM "segql"."segql_runs"') == [
        ("full", "no state yet")
    ]
    warehouse.close()


def test_a_crash_in_an_incremental_run_leaves_the_old_state(tmp_path: Path) -> None:
    runtime = RuntimeProject(tmp_path / "project", "duckdb")
    runtime.write_rules(RULES)
    rows = [event(1, "purchase", T0 - timedelta(days=1))]
    tables = make_tables(people=[person(1), person(2)], events=rows)
    runtime.load(tables)
    assert runtime.cli("run", "--as-of", "2026-03-10").returncode == 0
    state_before = runtime.query(
        'SELECT "value" FROM {s}."segql_meta" WHERE "key" = \'state.as_of\''
    )
    rows.append(event(1, "purchase", T0 + timedelta(hours=5)))
    runtime.load(make_tables(people=[person(1), person(2)], events=rows))
    killed = runtime.cli(
        "run", "--as-of", "2026-03-11", env={"SEGQL_FAULT": "after_history_insert:kill"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert (
        runtime.query('SELECT "value" FROM {s}."segql_meta" WHERE "key" = \'state.as_of\'')
        == state_before
    )
    again = runtime.cli("run", "--as-of", "2026-03-11")
    assert again.returncode == 0, again.stderr
    assert "incremental: 1 people updated by deltas" in again.stdout
    assert ("buyers", "1") in runtime.members()
    full = runtime.cli("run", "--as-of", "2026-03-12", "--full")
    assert "full recompute: --full" in full.stdout


def test_forget_removes_the_persons_values_and_the_next_run_recomputes() -> None:
    from segql.runs.erasure import Erasure
    from segql.runs.store import Store

    h = Harness()
    h.add(1, "purchase", T0 - timedelta(days=2), T0)
    h.add(2, "purchase", T0 - timedelta(days=2), T0)
    h.run(T0)
    (table,) = h.warehouse.query(
        'SELECT "value" FROM "segql"."segql_meta" WHERE "key" = \'state.table\''
    )[0]
    removed = Erasure(h.warehouse, Store("segql")).forget(["1"])
    assert removed["1"] >= 1
    assert h.warehouse.query(f'SELECT "person_id" FROM "segql"."{table}"') == [(2,)]
    after = h.run(T0 + timedelta(days=1))
    assert (after.mode, after.mode_reason) == ("full", "no state yet")


def test_after_retire_run_the_next_run_recomputes_at_the_earlier_as_of() -> None:
    from segql.runs.retire import retire_run

    h = Harness()
    h.add(1, "purchase", T0 - timedelta(days=2), T0)
    h.add(1, "purchase", T0 + timedelta(days=2), T0)
    h.run(T0)
    wrong = h.run(T0 + timedelta(days=5))  # a run at a wrong as-of, then retired
    assert wrong.mode == "incremental"
    project = project_from_text(_config("segql", False), h.rules)
    retire_run(project, h.warehouse, wrong.run_id)
    again = h.run(T0 + timedelta(days=1))
    assert again.mode == "full"
    assert again.mode_reason == "the state is later than the as-of time"


def test_a_source_without_a_time_column_always_recomputes() -> None:
    h = Harness()
    h.rules = RULES + "segment gold where count(accounts where tier = 'gold') >= 1\n"
    config = _config("segql", False)
    import dataclasses

    from segql.config import SourceConfig

    accounts = SourceConfig(name="accounts", table="accounts", person="person_id")
    config = dataclasses.replace(config, sources={"accounts": accounts})
    h.add(1, "purchase", T0 - timedelta(days=2), T0)
    people = [person(p, status="paid") for p in (1, 2, 3)]
    h.loader.load(make_tables(people=people, events=h.events))
    for at in (T0, T0 + timedelta(days=1)):
        result = Runner(project_from_text(config, h.rules), h.warehouse).run(None, at)
    assert (result.mode, result.mode_reason) == ("full", "source accounts has no time column")


def test_switching_loaded_at_on_or_off_recomputes() -> None:
    h = Harness(loaded_at=True)
    h.add(1, "purchase", T0 - timedelta(days=2), T0)
    h.run(T0)
    h.loaded_at = False
    result = h.run(T0 + timedelta(days=1))
    assert result.mode_reason == "the state's values or their sources are defined differently"


def test_values_without_deltas_are_recomputed_for_the_people_they_concern() -> None:
    h = Harness()
    h.rules = RULES + "segment varied where count_distinct(purchase.amount) >= 1\n"
    h.add(1, "purchase", T0 - timedelta(days=5), T0)  # on no window edge
    h.add(3, "login", T0 - timedelta(hours=60), T0)  # leaves `within 3 days`: a delta
    h.add(1, "login", T0 - timedelta(hours=61), T0)  # so does this one
    first = h.run(T0)
    assert first.mode == "full"
    h.add(2, "purchase", T0 + timedelta(hours=1), T0 + timedelta(days=1))
    result = h.run(T0 + timedelta(days=1))
    # person 2 is recomputed (a new row of a distinct count), 1 and 3 updated by deltas
    assert (result.mode, result.by_deltas, result.recomputed) == ("incremental", True, 3)
    members = {
        (r[0], str(r[1]))
        for r in h.warehouse.query('SELECT "segment", "person_id" FROM "segql"."segql_members"')
    }
    assert not {("recent", "1"), ("recent", "2"), ("recent", "3")} & members


def test_without_a_value_deltas_update_people_are_recomputed() -> None:
    h = Harness()
    h.rules = "segment varied where count_distinct(purchase.amount) >= 1\n"
    h.add(1, "purchase", T0 - timedelta(days=5), T0)
    h.run(T0)
    h.add(2, "purchase", T0 + timedelta(hours=1), T0 + timedelta(days=1))
    result = h.run(T0 + timedelta(days=1))
    assert (result.mode, result.by_deltas, result.recomputed) == ("incremental", False, 1)


V2_RULES = {
    # a day without rows ends a streak: no new row, yet the value moves
    "streak": "segment streaky where streak(login, day) >= 2",
    # a month turns: the rows of `in this month` change with no new row
    "calendar": "segment this_month where count(login in this month) >= 1",
    # a 3-step funnel whose `then not` step's time runs out
    "funnel": "segment stalled where did signup then login within 2 days "
    "then not purchase within 3 days",
    # a new row pushes an old one out of the last 2
    "among_last": "segment mostly_logins where count(login among last 2) >= 2",
}


def test_v2_values_give_a_full_runs_answer_in_every_incremental_run() -> None:
    """Values that move with the as-of time by themselves (streaks, calendar periods, a
    funnel's `then not`) or whose rows a new row pushes out (`among last N`) are never
    updated by deltas; each run's members equal a full run's at the same as-of."""
    days = [T0 + timedelta(days=d) for d in (0, 1, 2, 3, 5, 9, 25, 40)]
    for rules in V2_RULES.values():
        incremental, full = Harness(), Harness()
        for h in (incremental, full):
            h.rules = rules
            for who in (1, 2):
                h.add(who, "signup", T0 - timedelta(days=3), T0)
                h.add(who, "login", T0 - timedelta(days=2), T0)
                h.add(who, "login", T0 - timedelta(days=1), T0)
                h.add(who, "login", T0 - timedelta(hours=1), T0)
        for number, as_of in enumerate(days):
            if number == 3:  # person 2 buys, then logs in no more
                for h in (incremental, full):
                    h.add(2, "purchase", as_of - timedelta(hours=1), as_of)
                    h.add(2, "view", as_of - timedelta(minutes=30), as_of)
            incremental.run(as_of)
            full.run(as_of, full=True)
            query = 'SELECT "segment", "person_id" FROM "segql"."segql_members" ORDER BY 1, 2'
            assert incremental.warehouse.query(query) == full.warehouse.query(query), (
                rules,
                as_of,
            )


# --- members kept for the people nothing changed for ------------------------------------

KEPT_RULES = """
segment buyers where count(purchase) >= 1
segment paid_buyers where in buyers and status = 'paid'
segment first_buy_recent where first_time(purchase) within 2 days
segment above_median where count(purchase) > median(count(purchase))
"""


def _members(h: Harness) -> set[tuple[str, str]]:
    rows = h.warehouse.query('SELECT "segment", "person_id" FROM "segql"."segql_members"')
    return {(str(r[0]), str(r[1])) for r in rows}


def _kept_harness() -> Harness:
    h = Harness()
    h.rules = KEPT_RULES
    for who in (1, 2, 3):
        h.add(who, "purchase", T0 - timedelta(days=1), T0)
    h.add(3, "purchase", T0 - timedelta(hours=5), T0)
    h.run(T0)
    return h


def test_a_changed_entity_row_without_new_rows_changes_the_kept_segments() -> None:
    h = _kept_harness()
    h.statuses[2] = "free"  # no new rows for person 2: only the entity row changed
    result = h.run(T0 + timedelta(days=1))
    assert result.mode == "incremental" and result.recomputed == 0
    assert set(result.carried) == {"buyers", "paid_buyers"}  # the others read T or everybody
    assert ("paid_buyers", "2") not in _members(h)
    assert ("paid_buyers", "1") in _members(h)


def test_a_cleared_override_is_undone_for_a_person_whose_values_did_not_change() -> None:
    h = _kept_harness()
    overrides = Overrides(h.warehouse, Store("segql"))
    overrides.add("buyers", ["2"], "exclude", "test")
    h.run(T0 + timedelta(hours=1))
    assert ("buyers", "2") not in _members(h)
    overrides.clear("buyers", ["2"])
    result = h.run(T0 + timedelta(hours=2))
    assert "buyers" in result.carried
    assert ("buyers", "2") in _members(h)


def test_time_and_population_segments_are_evaluated_for_everybody() -> None:
    h = _kept_harness()
    assert ("first_buy_recent", "1") in _members(h)
    h.add(1, "purchase", T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    h.add(1, "purchase", T0 + timedelta(hours=2), T0 + timedelta(hours=2))
    result = h.run(T0 + timedelta(days=2))  # person 2's first purchase is 3 days old
    assert "first_buy_recent" not in result.carried and "above_median" not in result.carried
    members = _members(h)
    assert ("first_buy_recent", "2") not in members  # no new rows: the edge passed by itself
    assert ("above_median", "1") in members and ("above_median", "3") not in members


def test_a_person_removed_from_the_entity_table_exits_and_is_counted_as_unknown() -> None:
    h = _kept_harness()
    h.add(9, "purchase", T0 - timedelta(days=3), T0)  # a person the entity table lacks
    first = h.run(T0 + timedelta(hours=1))
    del h.statuses[3]
    result = h.run(T0 + timedelta(hours=2))
    assert result.mode == "incremental"
    assert ("buyers", "3") not in _members(h)
    assert result.data["events_of_unknown_people"] == first.data["events_of_unknown_people"] + 2
    assert result.data["events"] == first.data["events"] == 5
