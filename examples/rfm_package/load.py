"""Load the R package rfm's sample orders (``rfm_data_orders``) into a DuckDB warehouse.

    python examples/rfm_package/load.py PATH/rfm_pkg_rfm_data_orders_2018.csv

The CSV is not part of this repository. Each row is one order of a customer (named by
``customer_id``, text) on ``order_date`` (a date, read as midnight UTC) for ``revenue``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent

STATEMENTS = [
    """
    CREATE OR REPLACE TABLE orders AS
    SELECT customer_id, CAST(order_date AS TIMESTAMP) AS order_date, revenue
    FROM read_csv($csv, header = true, columns = {
        'customer_id': 'VARCHAR', 'order_date': 'DATE', 'revenue': 'DOUBLE'})
    """,
    "CREATE OR REPLACE TABLE customers AS SELECT DISTINCT customer_id FROM orders",
]


def load(csv: Path, database: Path) -> dict[str, int]:
    """Create ``customers`` and ``orders`` in ``database``; returns their row counts."""
    connection = duckdb.connect(str(database))
    try:
        for statement in STATEMENTS:
            parameters = {"csv": str(csv)} if "$csv" in statement else {}
            connection.execute(statement, parameters)
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("customers", "orders")
        }
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--database", type=Path, default=HERE / "warehouse.duckdb")
    args = parser.parse_args(argv)
    counts = load(args.csv, args.database)
    print(", ".join(f"{count} {table}" for table, count in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
