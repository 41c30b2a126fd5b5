"""segql benchmark: the run's data-summary query against the membership query, on PostgreSQL.

``python bench/summary_postgres.py [--people 20000]`` makes the demo warehouse, copies its
tables into a PostgreSQL started from ``pgserver`` with no index on the people id (the
case where the correlated NOT EXISTS ran a subplan per event: 424 s for 20k people), and
times, on the same connection and the same way (one warm-up, the best of three):

* the membership query of every demo segment (the baseline), and
* the data summary ``segql run`` makes before the diff.

The figure is the ratio summary / membership; the goal is at most 0.1x. Results are
printed and merged into ``bench/results.json`` under ``summary_postgres``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segql.engines import connect  # noqa: E402
from segql.project import load_project  # noqa: E402
from segql.runs.runner import Runner  # noqa: E402
from segql.starters.demo import init_project  # noqa: E402
from tests.support.engines import start_postgres  # noqa: E402

GOAL = 0.1


def best_of_three(work: Callable[[], Any]) -> float:
    work()  # warm-up
    times = []
    for _ in range(3):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def copy_tables(duck: Path, conninfo: str) -> None:
    """The demo's tables into PostgreSQL's public schema, with no index at all."""
    import psycopg

    source = duckdb.connect(str(duck), read_only=True)
    with psycopg.connect(conninfo, autocommit=True) as pg:
        for table in ("people", "events", "subscriptions"):
            columns = source.execute(f'DESCRIBE "{table}"').fetchall()
            types = {"VARCHAR": "TEXT", "JSON": "JSONB", "DOUBLE": "DOUBLE PRECISION"}
            spec = ", ".join(f'"{c[0]}" {types.get(c[1], c[1])}' for c in columns)
            pg.execute(f'DROP TABLE IF EXISTS "{table}"')
            pg.execute(f'CREATE TABLE "{table}" ({spec})')
            names = ", ".join(f'"{c[0]}"' for c in columns)
            with pg.cursor().copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in source.execute(f'SELECT {names} FROM "{table}"').fetchall():
                    copy.write_row(row)
            pg.execute(f'ANALYZE "{table}"')
    source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "demo"
        init_project(root, people=args.people)
        server = start_postgres(folder)
        try:
            copy_tables(root / "warehouse.duckdb", server.uri)
            toml = root / "segql.toml"
            url = server.uri.replace("postgresql://", "postgresql+psycopg://", 1)
            text = toml.read_text(encoding="utf-8")
            toml.write_text(text.replace("duckdb:///warehouse.duckdb", url), encoding="utf-8")
            project = load_project(root)
            warehouse = connect(project.config)
            as_of = datetime.now().replace(microsecond=0)
            sql = project.compile(dialect="postgres", as_of=as_of)
            membership = best_of_three(lambda: warehouse.query(sql))
            runner = Runner(project, warehouse)
            summary = best_of_three(lambda: runner.data_summary(as_of))
            warehouse.close()
        finally:
            server.stop()
    ratio = summary / membership
    row = {
        "people": args.people,
        "membership_s": round(membership, 3),
        "summary_s": round(summary, 3),
        "ratio": round(ratio, 4),
        "goal": GOAL,
        "met": ratio <= GOAL,
    }
    print(f"summary / membership on PostgreSQL, {args.people} people, no index: {ratio:.3f}x")
    print(f"(membership {membership:.2f} s, summary {summary:.3f} s; goal <= {GOAL}x)")
    results = Path(__file__).with_name("results.json")
    data = json.loads(results.read_text(encoding="utf-8")) if results.exists() else {}
    data["summary_postgres"] = row
    results.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
