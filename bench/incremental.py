"""Incremental runs against full runs and the floor, on DuckDB (issue 17's goals).

``python bench/incremental.py --scale 100k`` (or ``1m``: 1M people, 20M events over a
year). The data is ``bench/run.py``'s, stored in time order as it would be appended, with
a ``loaded_at`` column. Then, for each order on disk (``time``: as appended; ``random``:
the same rows shuffled):

1. a full ``segql run`` of the 20-segment suite at T0 = 2024-12-31 (it writes the state);
2. one day of new events is appended (2% of them late by up to three days), loaded at T1;
   Before that, timed: an incremental run one second after T0 with no new rows (the
   least an incremental run costs: ``nochange``);
3. timed, each in a process of its own (for its peak RSS): the incremental run at
   T1 = 2025-01-01, a full run (``--full``, in another schema) at T1, and the floor
   ``SELECT person_id, count(*) FROM events GROUP BY 1`` (best of three after a warm-up).

Printed: incremental / full, incremental / floor, each run's peak RSS, and the state's
size per person (the state table alone, checkpointed into a file of its own).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import BENCH_TOML, SCALES, SUITE, SUITE_TRAITS, data_file  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
T0 = datetime(2024, 12, 31)
T1 = datetime(2025, 1, 1)
# The lower bound of an incremental run: one a second after the last, with no new rows.
NO_CHANGE = timedelta(seconds=1)
# The suite's segments whose values deltas update (counts, sums, unwindowed min/max/first/
# last): without active_days/weeks, count_distinct, sequences and the segments naming them.
NOT_BY_DELTAS = {
    "active_month", "weekly_regulars", "docs_readers", "trial_converters", "abandoned_carts",
    "engaged_paid", "at_risk",
}  # fmt: skip


def suite_text(suite: str) -> str:
    kept = [(n, c) for n, c, _ in SUITE if suite == "all" or n not in NOT_BY_DELTAS]
    return SUITE_TRAITS + "\n" + "\n".join(f"segment {n}\n  where {c}\n" for n, c in kept)


def prepare(scale: str, order: str, suite: str) -> Path:
    """A copy of the data: events up to T0 (loaded when they happened), in ``order``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    source = data_file(scale)
    path = CACHE / f"incremental-{scale}-{order}.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        con.execute("CREATE TABLE people AS SELECT * FROM src.people")
        con.execute("ALTER TABLE people ADD PRIMARY KEY (person_id)")
        ordering = "occurred_at" if order == "time" else "hash(occurred_at, person_id, url)"
        con.execute(
            "CREATE TABLE events AS SELECT *, occurred_at AS loaded_at FROM src.events "
            f"WHERE occurred_at <= TIMESTAMP '{T0}' ORDER BY {ordering}"
        )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    for schema in ("segql", "segql_full"):
        root = CACHE / f"project-{scale}-{order}-{schema}"
        shutil.rmtree(root, ignore_errors=True)
        (root / "segments").mkdir(parents=True)
        url = f'[warehouse]\nurl = "duckdb:///{path}"\nschema = "{schema}"\n'
        toml = BENCH_TOML.replace("[warehouse]\n", url).replace(
            'properties = "properties"\n', 'properties = "properties"\nloaded_at = "loaded_at"\n'
        )
        (root / "segql.toml").write_text(toml)
        (root / "segments" / "suite.segql").write_text(suite_text(suite))
    return path


def append_day(scale: str, path: Path) -> int:
    """One day of new events after T0; 2% of them dated up to three days earlier."""
    con = duckdb.connect(str(path))
    try:
        con.execute(f"ATTACH '{data_file(scale)}' AS src (READ_ONLY)")
        late = "(hash(person_id, occurred_at, 'late') % 100) < 2"
        back = "INTERVAL 1 SECOND * (hash(person_id, occurred_at, 'back') % (3 * 86400))"
        con.execute(
            f"INSERT INTO events SELECT person_id, event_type, "
            f"CASE WHEN {late} THEN occurred_at - INTERVAL 1 DAY - {back} ELSE occurred_at END, "
            f"amount, url, properties, TIMESTAMP '{T1}' FROM src.events "
            f"WHERE occurred_at > TIMESTAMP '{T0}' AND occurred_at <= TIMESTAMP '{T1}' "
            "ORDER BY occurred_at"
        )
        count = con.execute(f"SELECT count(*) FROM events WHERE loaded_at = TIMESTAMP '{T1}'")
        added = int(count.fetchone()[0])  # type: ignore[index]
        con.execute("CHECKPOINT")
        return added
    finally:
        con.close()


def child(root: Path, what: str) -> None:
    """One measured step, in this process: prints {"seconds", "rss_mb", ...} as JSON."""
    from segql.engines import connect
    from segql.project import load_project
    from segql.runs.runner import Runner

    project = load_project(root)
    result: dict[str, object] = {}
    if what == "floor":
        warehouse = connect(project.config)
        sql = (
            "CREATE OR REPLACE TEMP TABLE bench_out AS "
            "SELECT person_id, count(*) FROM events GROUP BY 1"
        )
        warehouse.query(sql)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            warehouse.query(sql)
            best = min(best, time.perf_counter() - started)
        result["seconds"] = best
        warehouse.close()
    else:
        as_of = {"full_t0": T0, "nochange": T0 + NO_CHANGE}.get(what, T1)
        warehouse = connect(project.config)
        steps: list[tuple[float, str]] = []
        started = time.perf_counter()

        def progress(message: str) -> None:
            steps.append((time.perf_counter() - started, message))

        runner = Runner(project, warehouse, full=what == "full_t1", progress=progress)
        run = runner.run(None, as_of)
        seconds = time.perf_counter() - started
        ends = [at for at, _ in steps[1:]] + [seconds]
        result.update(
            seconds=seconds,
            steps=[
                (message, round(end - at, 3))
                for (at, message), end in zip(steps, ends, strict=False)
            ],
            mode=run.mode,
            reason=run.mode_reason,
            recomputed=run.recomputed,
            by_deltas=run.by_deltas,
            changes=run.changes,
        )
        warehouse.close()
    result["rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec (ru_maxrss carries the
    parent's peak at fork over into a child)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(root: Path, what: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def state_bytes(path: Path, scale: str, order: str) -> tuple[float, int]:
    alone = CACHE / f"state-{scale}-{order}.duckdb"
    alone.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        (table,) = con.execute(
            "SELECT value FROM segql.segql_meta WHERE key = 'state.table'"
        ).fetchone()  # type: ignore[misc]
        rows = int(con.execute(f'SELECT count(*) FROM segql."{table}"').fetchone()[0])  # type: ignore[index]
        con.execute(f"ATTACH '{alone}' AS alone")
        con.execute(f'CREATE TABLE alone.state AS SELECT * FROM segql."{table}"')
        con.execute("CHECKPOINT alone")
        con.execute("DETACH alone")
    finally:
        con.close()
    return alone.stat().st_size / max(rows, 1), rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="100k", choices=sorted(SCALES))
    parser.add_argument("--child")
    parser.add_argument("--root")
    parser.add_argument("--orders", default="time,random")
    parser.add_argument(
        "--suite", default="all", choices=["all", "deltas"], help="deltas: 13 of the 20"
    )
    args = parser.parse_args()
    if args.child:
        child(Path(args.root), args.child)
        return
    figures = {}
    for order in args.orders.split(","):
        path = prepare(args.scale, order, args.suite)
        root = CACHE / f"project-{args.scale}-{order}-segql"
        full_t0 = measure(root, "full_t0")
        nochange = measure(root, "nochange")
        added = append_day(args.scale, path)
        incremental = measure(root, "incremental")
        full_t1 = measure(CACHE / f"project-{args.scale}-{order}-segql_full", "full_t1")
        floor = measure(root, "floor")
        per_person, people = state_bytes(path, args.scale, order)
        row = {
            "order": order,
            "suite": args.suite,
            "new_rows": added,
            "full_t0_s": full_t0["seconds"],
            "nochange_s": nochange["seconds"],
            "nochange/floor": nochange["seconds"] / floor["seconds"],  # type: ignore[operator]
            "nochange_steps": nochange["steps"],
            "incremental_steps": incremental["steps"],
            "incremental_s": incremental["seconds"],
            "full_s": full_t1["seconds"],
            "floor_s": floor["seconds"],
            "incremental/full": incremental["seconds"] / full_t1["seconds"],  # type: ignore[operator]
            "incremental/floor": incremental["seconds"] / floor["seconds"],  # type: ignore[operator]
            "mode": incremental["mode"],
            "reason": incremental["reason"],
            "recomputed_people": incremental["recomputed"],
            "by_deltas": incremental["by_deltas"],
            "state_people": people,
            "state_bytes_per_person": per_person,
            "rss_mb": {"incremental": incremental["rss_mb"], "full": full_t1["rss_mb"]},
        }
        figures[order] = row
        print(json.dumps(row, indent=2), flush=True)
    out = CACHE / f"incremental-{args.scale}-{args.suite}.json"
    out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
