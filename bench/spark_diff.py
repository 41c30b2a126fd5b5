"""The cheapest diff of two memberships on Spark, against writing one of them once.

    python bench/spark_diff.py [--people 1000000]

A run's commit must compare its new membership with the last run's (the run prints who
entered and exited, and history needs the changes). This measures that comparison alone,
four ways, on the local Spark with Iceberg of ``bench/spark_commit.py``: the new
membership (half of N people in each of two segments, one in 25 gone and N/25 new) held
in memory as the runner holds it, the last one an Iceberg table. Best of three each:

- writing the new membership once (``INSERT INTO`` an Iceberg table: the goal's baseline);
- the full outer join on (segment, person_id), counting the rows on one side only;
- the same as one ``UNION ALL`` and a ``GROUP BY ... HAVING count(*) = 1``;
- ``EXCEPT ALL`` both ways;
- the join with broadcasts allowed up to 512 MB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.spark_commit import session  # noqa: E402

JOIN = (
    "SELECT count(*) FROM new AS n FULL OUTER JOIN b.prev AS m "
    "ON n.segment = m.segment AND n.person_id = m.person_id "
    "WHERE n.person_id IS NULL OR m.person_id IS NULL"
)
GROUPED = (
    "SELECT count(*) FROM (SELECT segment, person_id FROM (SELECT segment, person_id FROM new "
    "UNION ALL SELECT segment, person_id FROM b.prev) GROUP BY segment, person_id "
    "HAVING count(*) = 1)"
)
EXCEPTED = (
    "SELECT count(*) FROM ((SELECT * FROM new EXCEPT ALL SELECT * FROM b.prev) "
    "UNION ALL (SELECT * FROM b.prev EXCEPT ALL SELECT * FROM new))"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    people = parser.parse_args().people
    spark = session(Path(tempfile.mkdtemp(prefix="segql-spark-diff-")))
    spark.sql("CREATE NAMESPACE IF NOT EXISTS b")
    member = "IF(id % 2 = 0, 'high', 'recent') AS segment, CAST(id AS STRING) AS person_id"
    spark.sql(
        f"CREATE OR REPLACE TABLE b.prev USING iceberg AS SELECT {member} FROM range({people})"
    )
    new = spark.sql(
        f"SELECT {member} FROM range({people}) WHERE id % 25 <> 0 UNION ALL "
        f"SELECT 'high', CAST(id + {people} AS STRING) FROM range({people // 25})"
    )
    new.localCheckpoint(eager=True).createOrReplaceTempView("new")
    spark.sql("CREATE TABLE IF NOT EXISTS b.once (segment STRING, person_id STRING) USING iceberg")

    def best(label: str, sql: str) -> float:
        seconds = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            spark.sql(sql).collect()
            seconds = min(seconds, time.perf_counter() - start)
        print(f"{label:28} {seconds:6.2f} s", flush=True)
        return seconds

    once = best("write once (baseline)", "INSERT INTO b.once SELECT * FROM new")
    figures: dict[str, Callable[[], float]] = {
        "full outer join": lambda: best("full outer join", JOIN),
        "union + group by": lambda: best("union + group by", GROUPED),
        "except all, both ways": lambda: best("except all, both ways", EXCEPTED),
    }
    ratios = {label: measure() / once for label, measure in figures.items()}
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", str(512 * 1024 * 1024))
    ratios["join, broadcast allowed"] = best("join, broadcast allowed", JOIN) / once
    for label, ratio in ratios.items():
        print(f"{label} / write once: {ratio:.2f}x")


if __name__ == "__main__":
    main()
