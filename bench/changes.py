"""Reading the changes feed: time and peak memory against the number of changes (issue 23).

    python bench/changes.py [--changes 200000] [--factor 4]

A project whose history holds N changes (commits of 10,000), then F x N. For each: the
wall time and peak RSS of ``segql changes --format csv > /dev/null`` and of a Python
consumer reading the whole feed (``segql.downstream.consumers.changes(..., consumer=...)``), and of
DuckDB alone reading the same rows in pages (no segql code: the engine's own floor), each
in its own process. The figures are ratios measured in the same run: time(FN) / time(N)
(linear: about F; quadratic: about F squared) and RSS(FN) / RSS(N) (flat: about 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
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
PER_COMMIT = 10_000
CONSUMER = (
    "import segql.downstream.consumers as c, sys\n"
    "for _ in c.changes(sys.argv[1], consumer='b'): pass\n"
)
# The floor: DuckDB alone streaming the same rows (a plain scan, fetched 10,000 at a time), with
# no segql code. Its RSS growth from N to FN is the engine's (its buffer pool), not segql's.
DUCKDB_ALONE = (
    "import duckdb, sys\n"
    "c = duckdb.connect(sys.argv[1], read_only=True)\n"
    "c.execute('SELECT * FROM segql.segql_history')\n"
    "while rows := c.fetchmany(10000):\n"
    "    sys.stdout.write(''.join(f'{r}\\n' for r in rows))\n"
)


def make_project(folder: Path, changes: int) -> Path:
    """A project whose segql_history holds ``changes`` rows after one real run."""
    (folder / "segments").mkdir(parents=True)
    (folder / "segql.toml").write_text(CONFIG)
    (folder / "segments" / "s.segql").write_text("segment members where flag = 1\n")
    connection = duckdb.connect(str(folder / "w.duckdb"))
    connection.execute("CREATE TABLE people AS SELECT 1 AS person_id, 1 AS flag")
    connection.close()
    project = load_project(folder)
    warehouse = connect(project.config)
    try:
        Runner(project, warehouse).run(None, datetime(2026, 1, 1))
    finally:
        warehouse.close()
    connection = duckdb.connect(str(folder / "w.duckdb"))
    commits = (changes + PER_COMMIT - 1) // PER_COMMIT
    connection.execute(
        """
        INSERT INTO segql.segql_history
        SELECT md5(range::VARCHAR), 'members', (range + 2)::VARCHAR,
               CASE WHEN range % 2 = 0 THEN 'enter' ELSE 'exit' END,
               TIMESTAMP '2026-01-02', 'bench', 2 + range // $per, 1, 'rules'
        FROM range($n)
        """,
        {"n": changes, "per": PER_COMMIT},
    )
    connection.execute(
        "INSERT INTO segql.segql_runs SELECT 'bench-' || range, TIMESTAMP '2026-01-02', NULL, "
        "NULL, 'committed', 2 + range, NULL, NULL, NULL FROM range($c)",
        {"c": commits},
    )
    connection.close()
    return folder


def measure(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one process, its output thrown away."""
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        process = subprocess.Popen(command, stdout=devnull)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{command} failed with status {status}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--factor", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="segql-changes-"))
    try:
        results: dict[str, list[tuple[float, float]]] = {"cli": [], "python": [], "duckdb": []}
        for n in (args.changes, args.changes * args.factor):
            folder = make_project(root / str(n), n)
            cli = [sys.executable, "-m", "segql.cli", "--project", str(folder)]
            results["cli"].append(measure([*cli, "changes", "--format", "csv"]))
            results["python"].append(measure([sys.executable, "-c", CONSUMER, str(folder)]))
            duck = [sys.executable, "-c", DUCKDB_ALONE, str(folder / "w.duckdb")]
            results["duckdb"].append(measure(duck))
        print(f"{'reader':8} {'N':>10} {'s':>8} {'MB':>8} {'FN':>10} {'s':>8} {'MB':>8}"
              f" {'time ratio':>11} {'RSS ratio':>10}")  # fmt: skip
        for reader, ((t1, m1), (t2, m2)) in results.items():
            n1, n2 = args.changes, args.changes * args.factor
            print(f"{reader:8} {n1:>10,} {t1:>8.2f} {m1:>8.0f} {n2:>10,} {t2:>8.2f} {m2:>8.0f}"
                  f" {t2 / t1:>10.2f}x {m2 / m1:>9.2f}x")  # fmt: skip
        print(f"goal: time ratio about {args.factor} (linear), RSS ratio about 1 (flat)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
