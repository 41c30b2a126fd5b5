"""segql benchmark: a funnel of three steps against the query an analyst would write.

``python bench/funnels.py [--scale 100k] [--runs 3]`` opens the benchmark's data file (see
``bench/run.py``: 100k people, 2M events) and times, interleaved in one run (one warm-up
each, then the best of ``--runs`` rounds):

* segql's query for ``did page_view where url contains 'pricing' within 30 days then
  trial_started within 7 days then purchase within 14 days`` (one segment), and
* a hand-written query for the same people: two range joins (``b.t > a.t and b.t <= a.t
  + INTERVAL ...``) of subqueries of each step's rows, with ``DISTINCT`` after each; and,
  for context, the same with each step's rows a CTE.

All must find the same people. The figure is the ratio segql / hand-written (joins). Results are
printed and merged into ``bench/results.json`` under ``funnel_3``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    AS_OF,
    RESULTS,
    SCALES,
    bench_catalog,
    bench_config,
    data_file,
    time_interleaved,
)
from segql import project_from_text  # noqa: E402

FUNNEL = (
    "did page_view where url contains 'pricing' within 30 days"
    " then trial_started within 7 days then purchase within 14 days"
)


def segql_sql() -> str:
    project = project_from_text(
        bench_config(), f"segment funnel_3 where {FUNNEL}\n", bench_catalog()
    )
    return project.compile("duckdb", as_of=AS_OF)


def hand_written_sql() -> str:
    """The funnel as range joins of subqueries, ``DISTINCT`` after each (the faster of the
    two hand-written forms here)."""
    as_of = f"TIMESTAMP '{AS_OF:%Y-%m-%d %H:%M:%S}'"
    return f"""
SELECT DISTINCT 'funnel_3' AS segment, c.person_id
FROM events c
JOIN (
  SELECT DISTINCT b.person_id, b.occurred_at AS t
  FROM events b
  JOIN (
    SELECT DISTINCT person_id, occurred_at AS t FROM events
    WHERE event_type = 'page_view' AND url ILIKE '%pricing%'
      AND occurred_at > {as_of} - INTERVAL 30 DAY AND occurred_at <= {as_of}
  ) a ON b.person_id = a.person_id
     AND b.occurred_at > a.t AND b.occurred_at <= a.t + INTERVAL 7 DAY
  WHERE b.event_type = 'trial_started' AND b.occurred_at <= {as_of}
) ab ON c.person_id = ab.person_id
    AND c.occurred_at > ab.t AND c.occurred_at <= ab.t + INTERVAL 14 DAY
JOIN people p ON p.person_id = c.person_id
WHERE c.event_type = 'purchase' AND c.occurred_at <= {as_of}
"""


def hand_written_cte_sql() -> str:
    """The same with each step's rows a CTE (context: DuckDB reads it much slower)."""
    as_of = f"TIMESTAMP '{AS_OF:%Y-%m-%d %H:%M:%S}'"
    return f"""
WITH pricing AS (
  SELECT DISTINCT person_id, occurred_at AS t FROM events
  WHERE event_type = 'page_view' AND url ILIKE '%pricing%'
    AND occurred_at > {as_of} - INTERVAL 30 DAY AND occurred_at <= {as_of}
), trial AS (
  SELECT DISTINCT person_id, occurred_at AS t FROM events
  WHERE event_type = 'trial_started' AND occurred_at <= {as_of}
), purchase AS (
  SELECT DISTINCT person_id, occurred_at AS t FROM events
  WHERE event_type = 'purchase' AND occurred_at <= {as_of}
), after_pricing AS (
  SELECT DISTINCT trial.person_id, trial.t FROM trial JOIN pricing
    ON trial.person_id = pricing.person_id
   AND trial.t > pricing.t AND trial.t <= pricing.t + INTERVAL 7 DAY
)
SELECT DISTINCT 'funnel_3' AS segment, purchase.person_id
FROM purchase JOIN after_pricing
  ON purchase.person_id = after_pricing.person_id
 AND purchase.t > after_pricing.t AND purchase.t <= after_pricing.t + INTERVAL 14 DAY
JOIN people ON people.person_id = purchase.person_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="100k")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import duckdb

    con = duckdb.connect(str(data_file(args.scale)))
    queries = {
        "segql": segql_sql(),
        "hand_written": hand_written_sql(),
        "hand_written_cte": hand_written_cte_sql(),
    }
    found = {label: set(con.execute(sql).fetchall()) for label, sql in queries.items()}
    assert len({frozenset(f) for f in found.values()}) == 1, "the queries disagree"
    best = time_interleaved(con, queries, args.runs)
    row = {
        "scale": args.scale,
        "members": len(found["segql"]),
        **{f"{label}_ms": round(seconds * 1000, 1) for label, seconds in best.items()},
        "ratio": round(best["segql"] / best["hand_written"], 2),
        "ratio_to_cte": round(best["segql"] / best["hand_written_cte"], 2),
    }
    print(json.dumps(row))
    data = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    data["funnel_3"] = row
    RESULTS.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
