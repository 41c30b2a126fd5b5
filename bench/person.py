"""One person's evaluation against a full run's (issue 18's figure).

    python bench/person.py [--people 1000000] [--runs 3]

On the benchmark's data (bench/run.py: people, 20 events each), the suite's segments are
computed for everyone (the membership query of a run) and for one person (``segql eval
--person``: the same query with ``person_id IN (...)`` in every read), and the second
time is divided by the first. Segments that read a population function (``ntile``: the
RFM scores) rank everybody, so their filter is on the result only; they are measured
apart. Both queries run in turn in the same process on the same DuckDB file, best of
``--runs``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))

from run import (
    AS_OF,
    NTILE_SEGMENTS,
    SUITE,
    bench_catalog,
    bench_config,
    generation_sql,
    suite_text,
    time_interleaved,
)

from segql.compile.compiler import QueryOptions, compile_membership_query
from segql.compile.dialect import get_dialect
from segql.project import project_from_text
from segql.reading.evaluate import person_queries


def queries(segments: list[str], person: str) -> dict[str, str]:
    """The full query, and the one person's as ``segql eval`` runs them (``one_1``, ...:
    the segments that take the filter in their reads, then those that rank everybody)."""
    project = project_from_text(bench_config(), suite_text(), bench_catalog())
    project.check()
    full = compile_membership_query(project.analyzer, segments, get_dialect("duckdb"), AS_OF)
    one = person_queries(
        project, get_dialect("duckdb"), segments, AS_OF, QueryOptions(person_ids=(person,))
    )
    return {"full": full.sql, **{f"one_{k}": q.sql for k, q in enumerate(one, 1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="segql-person-"))
    try:
        con = duckdb.connect(str(folder / "bench.duckdb"))
        started = time.perf_counter()
        for statement in generation_sql(args.people):
            con.execute(statement)
        print(f"{args.people} people generated in {time.perf_counter() - started:.0f} s")
        person = str(args.people // 3)
        plain = [name for name, _, _ in SUITE if name not in NTILE_SEGMENTS]
        for label, segments in (
            (f"{len(plain)} segments without a population function", plain),
            (f"all {len(SUITE)} suite segments (ntile ranks everybody)", [n for n, _, _ in SUITE]),
        ):
            best = time_interleaved(con, queries(segments, person), args.runs)
            one = sum(t for name, t in best.items() if name.startswith("one_"))
            parts = len(best) - 1
            print(
                f"{label}: one person {one:.3f} s ({parts} queries) / full"
                f" {best['full']:.3f} s = {one / best['full']:.3f}x"
            )
        con.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
