"""A Spark run's commit against writing the membership once, on the same Spark (issue 21).

    python bench/spark_commit.py [--people 200000]

One local SparkSession with an Iceberg JDBC catalog on a local PostgreSQL (the tests' own,
tests/support/iceberg.py: segql's views need a catalog with views, which Iceberg's
``hadoop`` catalog is not), a project
of two segments over N people (about half of them members of each), a first run at
day 1 and a second at day 2 (a few percent of the members change). For the second run:

- commit: everything after the membership query (the diff, the tagged history and
  snapshot writes, the swap, the bookkeeping), timed from the run's "comparing with
  current members" step to its end;
- baseline: ``INSERT INTO`` an Iceberg table of the same membership (segment, person,
  entered_at, run id) once, from the same cached membership, right after the run.

It prints both times and their ratio (goal: at most 1.5x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from segql.engines.spark import SparkSessionAdapter, SparkSqlSession, local_jars
from segql.project import load_project
from segql.runs.runner import NEW_MEMBERS, Runner

CONFIG = """\
[warehouse]
url = "spark://local"
schema = "segql_bench"

[entity]
table = "bench.people"
id = "person_id"

[sources.accounts]
table = "bench.people"
person = "person_id"
"""
RULES = """
segment high where score >= 50
segment recent where signup_at within 30 days
"""


def session(work: Path) -> Any:
    from pyspark.sql import SparkSession

    from tests.support.iceberg import start_catalog

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    catalog = start_catalog(work)
    settings = {
        "spark.jars": ",".join(local_jars()),
        **catalog.settings(),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }
    builder = SparkSession.builder.master("local[2]").appName("segql-bench")
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument(
        "--profile", action="store_true", help="print each statement of the commit and its time"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segql-spark-bench-"))
    spark = session(work)
    spark.sql("CREATE NAMESPACE IF NOT EXISTS bench")
    # Day 2's scores move for one person in 25: a few percent of members change.
    spark.sql(
        "CREATE OR REPLACE TABLE bench.people USING iceberg AS SELECT CAST(id AS BIGINT) AS "
        "person_id, CAST(id * 7919 % 100 AS BIGINT) AS score, "
        "TIMESTAMP '2026-01-01 00:00:00' - make_interval(0, 0, 0, CAST(id % 60 AS INT)) "
        f"AS signup_at FROM range({args.people})"
    )
    (work / "project" / "segments").mkdir(parents=True)
    (work / "project" / "segql.toml").write_text(CONFIG)
    (work / "project" / "segments" / "rules.segql").write_text(RULES)
    project = load_project(work / "project")
    warehouse = SparkSessionAdapter(SparkSqlSession(spark))
    Runner(project, warehouse).run(None, datetime(2026, 1, 1))
    spark.sql(
        "CREATE OR REPLACE TABLE bench.people USING iceberg AS SELECT person_id, "
        "CASE WHEN person_id % 25 = 0 THEN 99 - score ELSE score END AS score, signup_at "
        "FROM bench.people"
    )

    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        marks.setdefault(message, time.perf_counter())

    statements: list[tuple[float, str]] = []
    if args.profile:
        profile(warehouse.session, marks, statements)
    keep = Runner(project, warehouse, progress)
    drop_temp = keep.drop_temp
    keep.drop_temp = lambda name: None  # type: ignore[method-assign]  # keep the membership
    result = keep.run(None, datetime(2026, 1, 2))
    end = time.perf_counter()
    commit = end - marks["comparing with current members"]

    spark.sql(
        "CREATE TABLE IF NOT EXISTS segql_bench.membership_once (segment STRING, "
        "person_id STRING, entered_at TIMESTAMP, run_id STRING) USING iceberg"
    )
    members = warehouse.temps.current(NEW_MEMBERS).sql("spark")
    start = time.perf_counter()
    spark.sql(
        "INSERT INTO segql_bench.membership_once SELECT segment, person_id, "
        f"TIMESTAMP '2026-01-02 00:00:00', '{result.run_id}' FROM {members}"
    )
    once = time.perf_counter() - start
    floor = least_commit(spark, members, result.changes)
    drop_temp(NEW_MEMBERS)
    size = sum(s.members for s in result.segments)
    print(f"people {args.people}, members {size}, changes {result.changes}")
    print(f"commit (after the membership query): {commit:.2f} s")
    print(f"writing the membership once:         {once:.2f} s")
    print(f"ratio: {commit / once:.2f}x (goal <= 1.5x)")
    swap, changes, join = floor
    print(f"least commit: the swap alone (MERGE of a one-row table): {swap:.2f} s")
    print(f"              writing only the {result.changes} changes:   {changes:.2f} s")
    print(f"              both / writing the membership once: {(swap + changes) / once:.2f}x")
    print(f"              the diff's join alone (counted):     {join:.2f} s")
    least = swap + changes + join
    print(f"              all three / writing the membership once: {least / once:.2f}x")
    if args.profile:
        print(f"{len(statements)} Spark statements in the commit:")
        for seconds, sql in statements:
            print(f"  {seconds:6.2f} s  {' '.join(sql.split())[:150]}")


def least_commit(spark: Any, members: str, changes: int) -> tuple[float, float, float]:
    """What any commit with a compare-and-swap costs at least, on this Spark: one MERGE of
    a one-row Iceberg table (the swap), one INSERT of only the changes' rows (no snapshot),
    and the diff's join alone (the new membership against the membership written once,
    standing for the last run's, counted). All on tables of the bench's own, so segql's
    stay untouched."""
    spark.sql(
        "CREATE OR REPLACE TABLE segql_bench.head_once USING iceberg AS "
        "SELECT CAST(1 AS BIGINT) AS commit_seq, 'a' AS run_id"
    )
    start = time.perf_counter()
    spark.sql(
        "MERGE INTO segql_bench.head_once AS h USING (SELECT CAST(1 AS BIGINT) AS seq) AS s "
        "ON h.commit_seq = s.seq WHEN MATCHED THEN UPDATE SET commit_seq = 2, run_id = 'b'"
    )
    swap = time.perf_counter() - start
    spark.sql(
        "CREATE TABLE IF NOT EXISTS segql_bench.changes_once (segment STRING, "
        "person_id STRING, entered_at TIMESTAMP) USING iceberg"
    )
    start = time.perf_counter()
    spark.sql(
        "INSERT INTO segql_bench.changes_once SELECT segment, person_id, "
        f"TIMESTAMP '2026-01-02 00:00:00' FROM {members} LIMIT {int(changes)}"
    )
    written = time.perf_counter() - start
    start = time.perf_counter()
    spark.sql(
        f"SELECT count(*) FROM {members} AS n FULL OUTER JOIN segql_bench.membership_once AS m "
        "ON n.segment = m.segment AND n.person_id = m.person_id "
        "WHERE n.person_id IS NULL OR m.person_id IS NULL"
    ).collect()
    return swap, written, time.perf_counter() - start


def profile(session: Any, marks: dict[str, float], statements: list[tuple[float, str]]) -> None:
    """Time each statement the session runs once the commit started (after the mark)."""
    for name in ("execute", "materialize"):
        plain = getattr(session, name)

        def timed(*args: Any, _plain: Any = plain, name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _plain(*args, **kwargs)
            finally:
                if "comparing with current members" in marks:
                    text = args[1] if name == "materialize" else args[0]
                    statements.append((time.perf_counter() - start, str(text)))

        setattr(session, name, timed)


if __name__ == "__main__":
    main()
