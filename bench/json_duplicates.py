"""segql benchmark: reading JSON keys on DuckDB with the last-of-duplicate-keys lookup.

``python bench/json_duplicates.py [--rows 2000000]`` fills an in-memory DuckDB table with
JSON properties (four keys, no duplicates, as trackers write them) and times, the same way
(one warm-up, the best of three), a count filtered on two keys read

* as ``properties ->> '/key'`` alone (the baseline: DuckDB reads the first duplicate), and
* as segql reads them (``Dialect.json_text``: the same, unless the text holds the quoted
  key twice).

The figure is the ratio segql / baseline. Results are printed and merged into
``bench/results.json`` under ``json_duplicates``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import duckdb
from sqlglot import exp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segql.compile.dialect import get_dialect  # noqa: E402


def best_of_three(connection: duckdb.DuckDBPyConnection, sql: str) -> float:
    connection.execute(sql).fetchall()
    times = []
    for _ in range(3):
        started = time.perf_counter()
        connection.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    return min(times)


def query(last_duplicate: bool) -> str:
    dialect = dataclasses.replace(get_dialect("duckdb"), json_last_duplicate=last_duplicate)
    document = exp.column("properties", quoted=True)
    plan = dialect.json_text(document, "plan")
    amount = dialect.try_cast(dialect.json_text(document, "amount"), "DOUBLE")
    where = exp.and_(plan.eq(exp.Literal.string("p3")), amount > exp.Literal.number(50))
    select = exp.select(exp.Count(this=exp.Star())).from_("events").where(where)
    return select.sql("duckdb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    rows = parser.parse_args().rows
    connection = duckdb.connect()
    connection.execute(
        'CREATE TABLE events AS SELECT (\'{"plan": "p\' || (i % 7) || \'", "amount": \' '
        '|| (i % 100) || \', "url": "https://example.com/\' || i || \'", "ref": "ad"}\')'
        f"::JSON AS properties FROM range({rows}) AS r(i)"
    )
    baseline = best_of_three(connection, query(False))
    segql = best_of_three(connection, query(True))
    row = {"rows": rows, "baseline_s": round(baseline, 3), "ratio": round(segql / baseline, 2)}
    print(json.dumps(row))
    results = Path(__file__).with_name("results.json")
    data = json.loads(results.read_text(encoding="utf-8")) if results.exists() else {}
    data["json_duplicates"] = row
    results.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
