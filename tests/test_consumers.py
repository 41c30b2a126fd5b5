"""The changes feed from Python: changes after a cursor in commit order, and named
consumers whose cursor in ``segql_cursors`` moves only past commits they finished."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

import segql.consumers as consumers
from segql.consumers import Consumer, commit_consumer, read_for_consumer
from segql.errors import SegqlError
from segql.project import load_project
from segql.reports import Reports
from segql.warehouse import Warehouse, connect
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


def test_read_takes_whole_commits(warehouse: Warehouse, project: RuntimeProject) -> None:
    schema = load_project(project.root).config.warehouse.schema
    # A limit that cuts commit 2 leaves all of it for the next read.
    batch = read_for_consumer(warehouse, schema, "cli", limit=4)
    assert (by_commit(seqs(batch.changes)), batch.next_cursor) == (ALL[:3], 1)
    commit_consumer(warehouse, schema, "cli", batch.next_cursor)
    # The first commit is taken whole even when it is larger than the limit.
    first = read_for_consumer(warehouse, schema, "big", limit=1)
    assert (len(first.changes), first.next_cursor) == (3, 1)
    # Commit 3 has no changes; reading to the end moves the cursor past it.
    batch = read_for_consumer(warehouse, schema, "cli", limit=2)
    assert (by_commit(seqs(batch.changes)), batch.next_cursor) == (ALL[3:5], 2)
    commit_consumer(warehouse, schema, "cli", batch.next_cursor)
    batch = read_for_consumer(warehouse, schema, "cli")
    assert (by_commit(seqs(batch.changes)), batch.next_cursor) == (ALL[5:], 4)
    assert batch.columns[:2] == ("commit_seq", "event_id")
    assert [row[0] for row in batch.rows] == [4, 4]
    commit_consumer(warehouse, schema, "cli", batch.next_cursor)
    assert read_for_consumer(warehouse, schema, "cli").changes == []


def test_consumer_before_any_run(tmp_path: Path) -> None:
    runtime = RuntimeProject(tmp_path / "fresh", "duckdb")
    runtime.write_rules(RULES)
    with pytest.raises(SegqlError, match="segql has not run in this warehouse yet"):
        list(consumers.changes(runtime.root, consumer="x"))
    with pytest.raises(SegqlError, match="either since or consumer"):
        list(consumers.changes(runtime.root, since=1, consumer="x"))
