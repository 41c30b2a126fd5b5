"""Diff and apply against writing the membership once (issue 3's figure).

    python bench/churn.py [--people 1000000] [--churn 0.05]

A segment of N members; 5% of them leave and as many others join; the second run's
diff-and-apply (from the diff to the committed transaction) is divided by the time to
write that membership once (``CREATE TABLE ... AS`` of the same members). Both are
measured in the same process on the same DuckDB file.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb

from segql.engines import connect
from segql.project import load_project
from segql.runs.runner import Runner

CONFIG = """\
[warehouse]
url = "duckdb:///w.duckdb"
[entity]
table = "people"
id = "person_id"
[sources.none]
table = "people"
person = "person_id"
"""


def measure(people: int = 1_000_000, churn: float = 0.05) -> tuple[float, float]:
    """Seconds to write the membership once, and to diff and apply a run with ``churn``
    of it changed (half leaving, half joining), on a fresh DuckDB file."""
    folder = Path(tempfile.mkdtemp(prefix="segql-churn-"))
    try:
        return _measure(folder, people, churn)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _measure(folder: Path, n: int, churn: float) -> tuple[float, float]:
    (folder / "segments").mkdir()
    (folder / "segql.toml").write_text(CONFIG)
    (folder / "segments" / "s.segql").write_text("segment members where flag = 1\n")
    half = int(n * churn / 2)
    connection = duckdb.connect(str(folder / "w.duckdb"))
    # Members are ids below n; the pool is 2n so that others can join.
    connection.execute(
        "CREATE TABLE people AS SELECT range AS person_id, "
        "CASE WHEN range < $n THEN 1 ELSE 0 END AS flag FROM range(2 * $n)",
        {"n": n},
    )
    connection.close()

    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        marks[message.split()[0]] = time.perf_counter()

    def run(as_of: datetime) -> float:
        project = load_project(folder)
        warehouse = connect(project.config)
        try:
            Runner(project, warehouse, progress).run(None, as_of)
            return time.perf_counter()
        finally:
            warehouse.close()

    run(datetime(2026, 1, 1))
    connection = duckdb.connect(str(folder / "w.duckdb"))
    connection.execute("UPDATE people SET flag = 0 WHERE person_id < $h", {"h": half})
    connection.execute(
        "UPDATE people SET flag = 1 WHERE person_id >= $n AND person_id < $n + $h",
        {"n": n, "h": half},
    )
    start = time.perf_counter()
    connection.execute(
        "CREATE TABLE written_once AS SELECT 'members' AS segment, "
        "CAST(person_id AS VARCHAR) AS person_id FROM people WHERE flag = 1"
    )
    write_once = time.perf_counter() - start
    connection.close()
    end = run(datetime(2026, 1, 2))
    return write_once, end - marks["comparing"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--churn", type=float, default=0.05)
    args = parser.parse_args()
    write_once, diff_apply = measure(args.people, args.churn)
    changes = 2 * int(args.people * args.churn / 2)
    print(f"{args.people:,} members, {changes:,} changes ({args.churn:.0%} churn)")
    print(f"write the membership once: {write_once * 1000:.0f} ms")
    print(f"diff and apply:            {diff_apply * 1000:.0f} ms")
    print(f"ratio: {diff_apply / write_once:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
