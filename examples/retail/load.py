"""Load the UCI Online Retail transactions into a DuckDB warehouse for segql.

    python examples/retail/load.py ../shared/data/online_retail_uci_2010_2011.csv

The CSV is not part of this repository (see its PROVENANCE file beside it). Each invoice
becomes one event of its customer: ``purchase`` with the invoice total as ``amount``, or
``cancellation`` for invoices numbered C... (their totals are negative). Rows without a
CustomerID cannot be tied to a person and are left out, as RFM analyses of this data do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent

STATEMENTS = [
    """
    CREATE OR REPLACE TABLE transactions AS
    SELECT * FROM read_csv($csv, header = true, columns = {
        'InvoiceNo': 'VARCHAR', 'StockCode': 'VARCHAR', 'Description': 'VARCHAR',
        'Quantity': 'BIGINT', 'InvoiceDate': 'TIMESTAMP', 'UnitPrice': 'DOUBLE',
        'CustomerID': 'DOUBLE', 'Country': 'VARCHAR'})
    """,
    """
    CREATE OR REPLACE TABLE customers AS
    SELECT CAST(CustomerID AS BIGINT) AS customer_id, max(Country) AS country
    FROM transactions WHERE CustomerID IS NOT NULL GROUP BY 1
    """,
    """
    CREATE OR REPLACE TABLE invoices AS
    SELECT CAST(CustomerID AS BIGINT) AS customer_id,
           InvoiceNo AS invoice_no,
           CASE WHEN InvoiceNo LIKE 'C%' THEN 'cancellation' ELSE 'purchase' END AS event_type,
           min(InvoiceDate) AS invoiced_at,
           round(sum(Quantity * UnitPrice), 2) AS amount,
           count(*) AS lines
    FROM transactions
    WHERE CustomerID IS NOT NULL
    GROUP BY 1, 2, 3
    """,
    "DROP TABLE transactions",
]


def load(csv: Path, warehouse: Path) -> dict[str, int]:
    """Build the warehouse; returns the row count of each table."""
    connection = duckdb.connect(str(warehouse))
    try:
        for statement in STATEMENTS:
            connection.execute(statement, {"csv": str(csv)} if "$csv" in statement else None)
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("customers", "invoices")
        }
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="online_retail_uci_2010_2011.csv")
    parser.add_argument("--warehouse", type=Path, default=HERE / "warehouse.duckdb")
    args = parser.parse_args()
    if not args.csv.is_file():
        sys.exit(f"error: {args.csv} does not exist")
    counts = load(args.csv, args.warehouse)
    print(f"loaded {counts['customers']:,} customers and {counts['invoices']:,} invoices "
          f"into {args.warehouse}")


if __name__ == "__main__":
    main()
