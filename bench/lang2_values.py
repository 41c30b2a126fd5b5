"""segql benchmark: what ``bucket()`` and ``quantile()`` cost on DuckDB (language.md 9.5, 9.7).

``python bench/lang2_values.py [--people 1000000]`` fills an in-memory DuckDB table of
people (an integer id, a number) and times, the same way (one warm-up, the best of three):

* ``bucket(100, 'promo') < 10`` as segql compiles it (md5, then its first eight hex digits
  read one at a time: the same expression on every warehouse), against DuckDB's own hex
  cast of the same digits (``('0x' || ...)::UBIGINT``), hand-written;
* ``ltv >= quantile(0.8, ltv)`` as segql compiles it (one row of ``PERCENTILE_CONT`` over
  everybody, joined to each person), against ``ltv >= 80`` (the floor: a plain filter).

The figures are the ratios segql / hand-written; they are printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segql import project_from_text  # noqa: E402
from segql.config import config_from_dict  # noqa: E402
from segql.language.catalog import Catalog  # noqa: E402

AS_OF = datetime(2026, 3, 15)


def best_of_three(connection: duckdb.DuckDBPyConnection, sql: str) -> float:
    connection.execute(sql).fetchall()
    times = []
    for _ in range(3):
        started = time.perf_counter()
        connection.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    return min(times)


def compiled(rules: str) -> str:
    config = config_from_dict(
        {
            "entity": {"table": "people", "id": "person_id"},
            "sources": {"orders": {"table": "orders", "person": "person_id"}},
        },
        ROOT,
    )
    catalog = Catalog.from_columns(
        {
            "people": [("person_id", "BIGINT"), ("ltv", "DOUBLE")],
            "orders": [("person_id", "BIGINT")],
        }
    )
    return project_from_text(config, rules, catalog).compile("duckdb", AS_OF)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    people = parser.parse_args().people
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE people AS SELECT i AS person_id, (i * 7919 % 1000) / 10.0 AS ltv "
        f"FROM range({people}) t(i)"
    )
    connection.execute("CREATE TABLE orders (person_id BIGINT)")
    cases = {
        "bucket": (
            compiled("segment h where bucket(100, 'promo') < 10"),
            "SELECT 'h' AS segment, person_id FROM people WHERE CAST('0x' || "
            "substr(md5('promo:' || CAST(person_id AS VARCHAR)), 1, 8) AS UBIGINT) % 100 < 10",
        ),
        "quantile": (
            compiled("segment t where ltv >= quantile(0.8, ltv)"),
            "SELECT 't' AS segment, person_id FROM people WHERE ltv >= 80",
        ),
    }
    for name, (segql_sql, hand_sql) in cases.items():
        same = sorted(connection.execute(segql_sql).fetchall()) == sorted(
            connection.execute(hand_sql).fetchall()
        )
        ours, theirs = best_of_three(connection, segql_sql), best_of_three(connection, hand_sql)
        print(
            f"{name}: segql {ours * 1000:.0f} ms / hand-written {theirs * 1000:.0f} ms = "
            f"{ours / theirs:.2f}x ({people:,} people; same members: {same})"
        )


if __name__ == "__main__":
    main()
