"""The changes feed from Python: changes after a cursor in commit order, and named
consumers whose cursor in ``segql_cursors`` moves only past commits they finished."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

import segql.downstream.consumers as consumers
from segql.downstream.consumers import Consumer, commit_consumer, read_for_consumer
from segql.engines import EngineAdapter as Warehouse
from segql.engines import connect
from segql.errors import SegqlError
from segql.project import load_project
from segql.reading.reports import Reports
from tests.support.runtime import RuntimeProject
from tests.support.scenario import make_tables, person

D = datetime
RULES = "segment paid where status = 'paid'\n"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[RuntimeProject]:
    """Commits 1..4: 3 enters, then 1 exit + 1 enter, then nothing, then 2 exits."""
    runtime = RuntimeProject(tmp_path / "project", "duckdb")
    runtime.write_rules(RULES)
    statuses = [
        ("paid", "paid", "paid", "free"),
        ("free", "paid", "paid", "paid"),
        ("free", "paid", "paid", "paid"),
        ("free", "free", "free", "paid"),
    ]
    for day, row in enumerate(statuses, start=1):
        runtime.load(make_tables(people=[person(i + 1, status=s) for i, s in enumerate(row)]))
        runtime.run(D(2026, 1, day))
    yield runtime
    runtime.close()


@pytest.fixture
def warehouse(project: RuntimeProject) -> Iterator[Warehouse]:
    session = connect(load_project(project.root).config)
    yield session
    session.close()


def seqs(changes: list[consumers.Change]) -> list[tuple[int, str, str]]:
    return [(c.commit_seq, c.person_id, c.change) for c in changes]


ALL = [
    (1, "1", "enter"), (1, "2", "enter"), (1, "3", "enter"),
    (2, "1", "exit"), (2, "4", "enter"),
    (4, "2", "exit"), (4, "3", "exit"),
]  # fmt: skip


def by_commit(rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    return sorted(rows)


def test_changes_after_since_in_commit_order(project: RuntimeProject) -> None:
    every = list(consumers.changes(project.root))
    assert by_commit(seqs(every)) == ALL
    assert [c.commit_seq for c in every] == sorted(c.commit_seq for c in every)
    assert by_commit(seqs(list(consumers.changes(project.root, since=2)))) == ALL[5:]
    assert list(consumers.changes(project.root, since=4)) == []
    # The same rows as `segql changes --since`.
    warehouse = connect(load_project(project.root).config, read_only=True)
    try:
        schema = load_project(project.root).config.warehouse.schema
        assert list(Reports(warehouse, schema).changes(1)) == list(
            consumers.iter_changes(warehouse, consumers.Store(schema), 1)
        )
    finally:
        warehouse.close()


def test_named_consumer_resumes_where_it_stopped(project: RuntimeProject) -> None:
    seen = []
    for change in consumers.changes(project.root, consumer="crm"):
        seen.append(change)
        if change.commit_seq == 2:
            break  # stopped (a crash) in the middle of commit 2
    assert by_commit(seqs(seen))[:3] == ALL[:3]
    # Commit 1 was finished, commit 2 was not: it comes again, whole.
    again = list(consumers.changes(project.root, consumer="crm"))
    assert by_commit(seqs(again)) == ALL[3:]
    assert list(consumers.changes(project.root, consumer="crm")) == []
    # Another consumer has its own cursor.
    assert by_commit(seqs(list(consumers.changes(project.root, consumer="other")))) == ALL
    rows = project.query('SELECT "consumer", "commit_seq" FROM {s}."segql_cursors" ORDER BY 1')
    assert rows == [("crm", 4), ("other", 4)]


def test_consumer_commit_and_rewind(warehouse: Warehouse, project: RuntimeProject) -> None:
    schema = load_project(project.root).config.warehouse.schema
    consumer = Consumer(warehouse, schema, "sync")
    assert consumer.position == 0
    assert by_commit(seqs(list(consumer.changes()))) == ALL
    consumer.commit(2)
    assert consumer.position == 2
    assert by_commit(seqs(list(consumer.changes()))) == ALL[5:]
    assert len(list(consumer.changes(limit=1))) == 1
    with pytest.raises(SegqlError, match="would move it back"):
        consumer.commit(1)
    consumer.rewind(1)
    assert by_commit(seqs(list(consumer.changes()))) == ALL[3:]


def test_read_takes_exactly_limit_and_resumes_inside_a_commit(
    warehouse: Warehouse, project: RuntimeProject
) -> None:
    schema = load_project(project.root).config.warehouse.schema
    feed = seqs(list(read_for_consumer(warehouse, schema, "peek").changes))
    taken: list[tuple[int, str, str]] = []
    # A limit of 2 cuts commit 1 (3 changes): the cursor stands inside it.
    for expected in (2, 2, 2, 1, 0):
        batch = read_for_consumer(warehouse, schema, "cli", limit=2)
        assert len(batch.changes) == expected
        taken += seqs(batch.changes)
        commit_consumer(warehouse, schema, "cli", batch.next_cursor)
    assert taken == feed and by_commit(taken) == ALL
    assert Consumer(warehouse, schema, "cli").cursor == (4, "")
    batch = read_for_consumer(warehouse, schema, "cli")
    assert batch.changes == [] and batch.columns[:2] == ("commit_seq", "event_id")


def test_exception_inside_the_loop_moves_nothing_past_it(project: RuntimeProject) -> None:
    handled = []
    with pytest.raises(RuntimeError):
        for change in consumers.changes(project.root, consumer="crm"):
            if len(handled) == 4:
                raise RuntimeError("the handler failed on the fifth change")
            handled.append(change)
    again = list(consumers.changes(project.root, consumer="crm"))
    # Nothing lost: every change not handled comes again (at least once).
    assert set(seqs(handled)) | set(seqs(again)) == set(ALL)
    assert not set(seqs(handled)) >= set(seqs(again))
    # The python limit: exactly N, the next call resumes after them.
    first = list(consumers.changes(project.root, consumer="lim", limit=2))
    rest = list(consumers.changes(project.root, consumer="lim"))
    assert len(first) == 2 and seqs(first) + seqs(rest) == seqs(
        list(consumers.changes(project.root))
    )


def test_cursor_table_of_an_older_segql_is_upgraded(
    warehouse: Warehouse, project: RuntimeProject
) -> None:
    schema = load_project(project.root).config.warehouse.schema
    warehouse.query(f'DROP TABLE "{schema}"."segql_cursors"')
    warehouse.query(
        f'CREATE TABLE "{schema}"."segql_cursors" '
        '("consumer" VARCHAR PRIMARY KEY, "commit_seq" BIGINT, "updated_at" TIMESTAMP)'
    )
    warehouse.query(f'INSERT INTO "{schema}"."segql_cursors" VALUES (\'old\', 2, NULL)')
    consumer = Consumer(warehouse, schema, "old")
    assert consumer.cursor == (2, "")
    assert by_commit(seqs(list(consumer.changes()))) == ALL[5:]


def test_cli_head_moves_no_cursor_and_limit_is_exact(tmp_path: Path) -> None:
    runtime = RuntimeProject(tmp_path / "many", "duckdb")
    runtime.write_rules(RULES)
    runtime.load(make_tables(people=[person(i + 1, status="paid") for i in range(3000)]))
    runtime.run(D(2026, 1, 1))
    command = [sys.executable, "-m", "segql.cli", "--project", str(runtime.root)]
    # `| head -1`: the reader takes one line and goes away.
    piped = subprocess.run(
        " ".join(shlex.quote(part) for part in command)
        + " changes --consumer c --format csv | head -1",
        shell=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert piped.stdout.startswith("commit_seq,event_id")
    assert runtime.query('SELECT count(*) FROM {s}."segql_cursors"') == [(0,)]
    lines = runtime.cli("changes", "--consumer", "c", "--limit", "2", "--format", "csv")
    assert lines.returncode == 0, lines.stderr
    first = lines.stdout.strip().split("\n")[1:]
    assert len(first) == 2
    rest = runtime.cli("changes", "--consumer", "c", "--format", "csv").stdout.strip()
    every = runtime.cli("changes", "--format", "csv").stdout.strip().split("\n")[1:]
    assert first + rest.split("\n")[1:] == every and len(every) == 3000
    runtime.close()


def test_consumer_before_any_run(tmp_path: Path) -> None:
    runtime = RuntimeProject(tmp_path / "fresh", "duckdb")
    runtime.write_rules(RULES)
    with pytest.raises(SegqlError, match="segql has not run in this warehouse yet"):
        list(consumers.changes(runtime.root, consumer="x"))
    with pytest.raises(SegqlError, match="either since or consumer"):
        list(consumers.changes(runtime.root, since=1, consumer="x"))
