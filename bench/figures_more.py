"""Five more benchmark figures: segql against the other ways of answering the same question.

- ``naive``: one query per segment (what a compiler without fusion runs) over the fused query.
- ``expert``: five single segments, segql's SQL over the SQL an expert would write by hand.
- ``app``: evaluating the rules in Python person by person, in batches of 500 as
  application-side engines do, over the fused query.
- ``rss``: peak memory of ``segql run`` on 1M people and 20M events.
- ``churn``: diff and apply of a run with 5% of 1M members changed, over writing them once.

``run.py`` imports this module at its bottom, after registering itself in ``sys.modules``
as ``run`` (also when it runs as ``__main__``), so the names imported below are the ones
``run.py`` defines, and neither module is loaded twice.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import churn
import duckdb
from run import (
    AS_OF,
    BENCH_TOML,
    NTILE_SEGMENTS,
    SUITE,
    Context,
    Row,
    bench_catalog,
    bench_config,
    data_file,
    suite_text,
    time_interleaved,
)

from segql import project_from_text
from segql.project import Project
from segql.reference import evaluate

FUSED = "<fused>"  # a label no segment can have


def suite_project() -> Project:
    return project_from_text(bench_config(), suite_text(), bench_catalog())


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# --- (2) one query per segment --------------------------------------------------------------


def figure_naive(ctx: Context) -> list[Row]:
    """One query per segment, as a compiler without fusion would run them, over the fused query.

    Each of the 20 suite segments is compiled alone (``segments=[name]``: the query also
    computes what the segment references, as a stand-alone query must) and run as
    ``CREATE TEMP TABLE ... AS``. All 21 queries (the fused one included) get one warm-up,
    then ``ctx.runs`` interleaved rounds; the sum of the per-segment bests is divided by the
    fused query's best. Goal: at least 8.
    """
    con = ctx.connection()
    project = suite_project()
    names = project.segment_names
    queries = {FUSED: project.compile(dialect="duckdb", as_of=AS_OF)}
    for name in names:
        queries[name] = project.compile(dialect="duckdb", as_of=AS_OF, segments=[name])
    best = time_interleaved(con, queries, ctx.runs)
    fused_s = best.pop(FUSED)
    naive_s = sum(best.values())
    extra = {
        "fused_ms": ms(fused_s),
        "naive_total_ms": ms(naive_s),
        "per_segment_ms": {name: ms(seconds) for name, seconds in best.items()},
    }
    note = (
        f"{len(names)} queries {naive_s * 1000:.0f} ms in all, fused {fused_s * 1000:.0f} ms; "
        f"slowest alone: {max(best, key=best.__getitem__)}"
    )
    return [Row("naive_20_queries_over_fused", naive_s / fused_s, "ratio", 8, note, extra, True)]


# --- (3) segql's SQL against an expert's ---------------------------------------------------

T = f"TIMESTAMP '{AS_OF:%Y-%m-%d %H:%M:%S}'"

# What a DuckDB expert writes for each segment: members' ids, one row each, rows after T
# ignored, only ids present in people. person_id is the people table's primary key, so
# neither the hand queries nor segql (which reads the key from the catalog) merge duplicates.
EXPERT_SQL: dict[str, str] = {
    "power_viewers": f"""
SELECT p.person_id
FROM people AS p
JOIN (
  SELECT person_id
  FROM events
  WHERE event_type = 'page_view'
    AND occurred_at > {T} - INTERVAL 30 DAY AND occurred_at <= {T}
  GROUP BY person_id
  HAVING count(*) >= 4
) AS e ON e.person_id = p.person_id
WHERE p.status = 'paid'
""",
    "active_month": f"""
SELECT person_id
FROM events
WHERE occurred_at > {T} - INTERVAL 30 DAY AND occurred_at <= {T}
  AND person_id IN (SELECT person_id FROM people)
GROUP BY person_id
HAVING count(DISTINCT CAST(occurred_at AS DATE)) >= 8
""",
    "big_spenders": f"""
SELECT person_id
FROM events
WHERE event_type = 'purchase'
  AND occurred_at > {T} - INTERVAL 90 DAY AND occurred_at <= {T}
  AND person_id IN (SELECT person_id FROM people)
GROUP BY person_id
HAVING sum(amount) >= 500
""",
    "trial_converters": f"""
SELECT DISTINCT a.person_id
FROM events AS a
WHERE a.event_type = 'trial_started' AND a.occurred_at <= {T}
  AND a.person_id IN (SELECT person_id FROM people)
  AND EXISTS (
    SELECT 1
    FROM events AS b
    WHERE b.person_id = a.person_id
      AND b.event_type = 'purchase'
      AND b.occurred_at > a.occurred_at
      AND b.occurred_at <= a.occurred_at + INTERVAL 14 DAY
      AND b.occurred_at <= {T}
  )
""",
    "docs_readers": f"""
SELECT person_id
FROM events
WHERE event_type = 'page_view'
  AND occurred_at > {T} - INTERVAL 30 DAY AND occurred_at <= {T}
  AND starts_with(lower(url), '/docs')
  AND person_id IN (SELECT person_id FROM people)
GROUP BY person_id
HAVING count(DISTINCT url) >= 2
""",
}


def member_ids(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    return [person for (person,) in con.execute(sql).fetchall()]


def check_same_members(con: duckdb.DuckDBPyConnection, name: str, segql_sql: str) -> int:
    """Fail unless the hand query returns exactly segql's members, once each; their count."""
    ours = member_ids(con, f"SELECT person_id FROM ({segql_sql}) WHERE segment = '{name}'")
    hand = member_ids(con, EXPERT_SQL[name])
    if len(hand) != len(set(hand)) or set(hand) != set(ours):
        raise RuntimeError(
            f"expert query for {name} disagrees with segql: {len(set(ours))} members in "
            f"segql, {len(hand)} rows ({len(set(hand))} distinct) by hand; "
            f"only segql: {sorted(set(ours) - set(hand))[:5]}, "
            f"only hand: {sorted(set(hand) - set(ours))[:5]}"
        )
    return len(ours)


def figure_expert(ctx: Context) -> list[Row]:
    """Five single segments of different kinds: segql's SQL over an expert's hand-written SQL.

    Both return the members' ids (segql's query also carries the segment name). Each hand
    query is first checked to return exactly segql's members. Then all ten queries get one
    warm-up and ``max(ctx.runs, 5)`` interleaved rounds (they take milliseconds at 100k, so
    a few more rounds steady the minimum). Headline: the worst of the five. Goal: at most 1.1.
    """
    con = ctx.connection()
    project = suite_project()
    queries: dict[str, str] = {}
    members: dict[str, int] = {}
    for name in EXPERT_SQL:
        segql_sql = project.compile(dialect="duckdb", as_of=AS_OF, segments=[name])
        members[name] = check_same_members(con, name, segql_sql)
        queries[f"segql:{name}"] = segql_sql
        queries[f"hand:{name}"] = EXPERT_SQL[name]
    best = time_interleaved(con, queries, max(ctx.runs, 5))
    ratios = {name: best[f"segql:{name}"] / best[f"hand:{name}"] for name in EXPERT_SQL}
    worst = max(ratios, key=ratios.__getitem__)
    extra = {
        "ratios": {name: round(r, 3) for name, r in ratios.items()},
        "ms": {label: ms(seconds) for label, seconds in best.items()},
        "members": members,
    }
    rows = [
        Row(
            "expert_max_segql_over_hand",
            ratios[worst],
            "ratio",
            1.1,
            f"worst of {len(ratios)}: {worst}; members checked equal",
            extra,
        )
    ]
    for name, ratio in ratios.items():
        note = (
            f"segql {best[f'segql:{name}'] * 1000:.1f} ms, "
            f"hand {best[f'hand:{name}'] * 1000:.1f} ms, {members[name]} members"
        )
        rows.append(Row(f"expert_{name}_segql_over_hand", ratio, "ratio", None, note))
    return rows


# --- (4) application-side evaluation --------------------------------------------------------

BATCH = 500
SAMPLE_SECONDS = 15.0  # how much application-side work to time before extrapolating
MIN_BATCHES = 4


def fetch_batch(
    con: duckdb.DuckDBPyConnection, low: Any, high: Any
) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The people with ids in [low, high] and their events up to the as-of time."""
    tables = {}
    for table, extra in (("people", ""), ("events", " AND occurred_at <= $as_of")):
        params = {"low": low, "high": high} | ({"as_of": AS_OF} if extra else {})
        cursor = con.execute(
            f"SELECT * FROM {table} WHERE person_id BETWEEN $low AND $high{extra}", params
        )
        tables[table] = ([d[0] for d in cursor.description], cursor.fetchall())
    return tables


def sample_indices(batches: int, wanted: int) -> list[int]:
    """``wanted`` batch numbers spread evenly over ``range(batches)`` (systematic sample):
    the heavy users have low ids, so the sample must cover the whole id range."""
    wanted = min(wanted, batches)
    return sorted({int((j + 0.5) * batches / wanted) for j in range(wanted)})


def figure_app(ctx: Context) -> list[Row]:
    """Evaluating the rules application-side, in Python, over segql's fused query.

    The application loops over people in id order, 500 at a time: it fetches the batch's
    people and events (up to the as-of time) from DuckDB into Python and evaluates the rules
    for each person there, with segql's plain-Python reference evaluator
    (``segql.reference.evaluate`` on the batch's rows). A sample of batches spread over the
    id range is timed (about ``SAMPLE_SECONDS`` of work, at least ``MIN_BATCHES``) and
    extrapolated linearly to all people; it is divided by the fused query's best time.

    ntile() ranks a person against everybody, so it cannot be evaluated batch by batch: the
    segments reading ntile traits (``NTILE_SEGMENTS``) are left out on both sides. Every
    sampled batch's members are checked against the fused query's. Goal: at least 1000.
    """
    con = ctx.connection()
    project = suite_project()
    names = [name for name, _, _ in SUITE if name not in NTILE_SEGMENTS]
    definitions = [*project.definitions.segments.values(), *project.definitions.traits.values()]
    fused_sql = project.compile(dialect="duckdb", as_of=AS_OF, segments=names)
    # The last timed run leaves the fused query's members in bench_out, to check against.
    fused_s = time_interleaved(con, {FUSED: fused_sql}, ctx.runs)[FUSED]

    ids_sql = "SELECT DISTINCT person_id FROM people WHERE person_id NOT NULL ORDER BY 1"
    ids = member_ids(con, ids_sql)
    batches = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
    (total_events,) = con.execute(  # type: ignore[misc]
        "SELECT count(*) FROM events WHERE occurred_at <= $as_of "
        "AND person_id IN (SELECT person_id FROM people)",
        {"as_of": AS_OF},
    ).fetchone()

    def evaluate_batch(batch: list[Any]) -> tuple[float, float, int, dict[str, set[Any]]]:
        started = time.perf_counter()
        tables = fetch_batch(con, batch[0], batch[-1])
        fetched = time.perf_counter()
        found = evaluate(definitions, project.config, tables, AS_OF, segments=names)
        return fetched - started, time.perf_counter() - fetched, len(tables["events"][1]), found

    # One batch from the middle, untimed for the figure, warms up and sets the sample size.
    fetch_s, eval_s, _, _ = evaluate_batch(batches[len(batches) // 2])
    wanted = max(MIN_BATCHES, math.ceil(SAMPLE_SECONDS / (fetch_s + eval_s)))
    sample = sample_indices(len(batches), wanted)

    fetch_total = eval_total = 0.0
    people = events = 0
    for index in sample:
        batch = batches[index]
        fetch_s, eval_s, batch_events, found = evaluate_batch(batch)
        fetch_total, eval_total = fetch_total + fetch_s, eval_total + eval_s
        people, events = people + len(batch), events + batch_events
        check_batch_members(con, batch, names, found)

    sampled_s = fetch_total + eval_total
    app_s = sampled_s * len(ids) / people
    by_events_s = sampled_s * total_events / events
    extra = {
        "people": len(ids),
        "sampled_people": people,
        "sampled_batches": len(sample),
        "batches": len(batches),
        "sampled_events": events,
        "events": total_events,
        "sample_fetch_s": round(fetch_total, 2),
        "sample_evaluate_s": round(eval_total, 2),
        "extrapolated_s": round(app_s, 1),
        "extrapolated_by_events_s": round(by_events_s, 1),
        "ratio_by_events": round(by_events_s / fused_s, 1),
        "fused_ms": ms(fused_s),
        "segments": names,
    }
    note = (
        f"extrapolated from {people:,} of {len(ids):,} people ({len(sample)} batches of "
        f"{BATCH} spread over the ids; {sampled_s:.1f} s, of which fetching "
        f"{fetch_total:.1f} s): {app_s:.0f} s against fused {fused_s * 1000:.0f} ms; "
        f"{len(names)} segments (without the ntile ones, on both sides)"
    )
    return [Row("app_side_over_segql", app_s / fused_s, "ratio", 1000, note, extra, True)]


def check_batch_members(
    con: duckdb.DuckDBPyConnection, batch: list[Any], names: list[str], found: dict[str, set[Any]]
) -> None:
    """Fail unless the evaluator's members of a batch are the fused query's (in bench_out)."""
    rows = con.execute(
        "SELECT segment, person_id FROM bench_out WHERE person_id BETWEEN $low AND $high",
        {"low": batch[0], "high": batch[-1]},
    ).fetchall()
    expected: dict[str, set[Any]] = {name: set() for name in names}
    for segment, person in rows:
        expected[segment].add(person)
    for name in names:
        if found[name] != expected[name]:
            raise RuntimeError(
                f"application-side members of {name} for ids {batch[0]}..{batch[-1]} differ "
                f"from segql's: only in Python {sorted(found[name] - expected[name])[:5]}, "
                f"only in SQL {sorted(expected[name] - found[name])[:5]}"
            )


# --- (7) peak memory of segql run -----------------------------------------------------------

RSS_SCALE = "1m"
RSS_CONFIG = BENCH_TOML.replace(
    "[warehouse]\n", '[warehouse]\nurl = "duckdb:///warehouse.duckdb"\n'
)
SEGQL_MAIN = "import sys; from segql.cli import main; sys.exit(main(prog_name='segql'))"
PROGRESS_LINE = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")


def make_rss_project(folder: Path) -> None:
    """A segql project in ``folder`` with the suite, on a copy of the 1m data file."""
    shutil.copyfile(data_file(RSS_SCALE), folder / "warehouse.duckdb")
    (folder / "segql.toml").write_text(RSS_CONFIG, encoding="utf-8")
    (folder / "segments").mkdir()
    (folder / "segments" / "suite.segql").write_text(suite_text(), encoding="utf-8")


def run_measured(command: list[str], folder: Path) -> tuple[int, float, int, str, str]:
    """Run ``command`` to its end: exit status, wall seconds, peak RSS in bytes, stdout and
    stderr. The RSS is the child's own (``os.wait4``), not the largest of all children."""
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    started = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=folder)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # interrupted: do not leave the run behind
            process.kill()
            process.wait()
            raise
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped: tell Popen
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    text = (out.read_text(encoding="utf-8"), err.read_text(encoding="utf-8"))
    return process.returncode, wall, usage.ru_maxrss * unit, *text


def duckdb_defaults() -> dict[str, str]:
    """DuckDB's default memory limit and threads on this machine (what segql run gets)."""
    con = duckdb.connect()
    try:
        row = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return {"memory_limit": str(row[0]), "threads": str(row[1])}


def figure_rss(ctx: Context) -> list[Row]:
    """Peak resident memory of ``segql run`` of the 20-segment suite on 1M people and 20M
    events (always the 1m data, whatever ``--scale`` says), as a fresh process.

    The project is made in a temporary folder on a copy of the cached 1m file (the run
    writes segql's tables into it); ``segql run --as-of 2025-01-01`` runs as a child
    process whose own peak RSS is read with ``os.wait4``. One run, not repeated.
    Goal: at most 1.5 GB (10^9 bytes).
    """
    folder = Path(tempfile.mkdtemp(prefix="segql-rss-"))
    try:
        make_rss_project(folder)
        command = [sys.executable, "-c", SEGQL_MAIN, "--project", str(folder), "run"]
        command += ["--as-of", f"{AS_OF:%Y-%m-%d}", "--format", "json"]
        status, wall, rss, stdout, stderr = run_measured(command, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if status != 0:
        raise RuntimeError(f"segql run failed ({status}):\n{stderr[-2000:]}")
    report = json.loads(stdout)  # nothing else on stdout (DuckDB's progress bar once was)
    members = {row["segment"]: row["members"] for row in report}
    phases = [
        {"at_s": float(m.group(1)), "step": m.group(2)}
        for m in map(PROGRESS_LINE.match, stderr.splitlines())
        if m
    ]
    extra = {
        "rss_bytes": rss,
        "wall_s": round(wall, 1),
        "members": members,
        "progress": phases,
        "duckdb_defaults": duckdb_defaults(),
    }
    gb = rss / 1e9
    note = f"1m data whatever --scale; one run of {wall:.0f} s; peak RSS {gb:.2f} GB"
    return [Row("rss_segql_run_1m_gb", gb, "GB", 1.5, note, extra)]


# --- (6) diff and apply -------------------------------------------------------------------

CHURN_REPEATS = 3


def figure_churn(ctx: Context) -> list[Row]:
    """Diff and apply of a run where 5% of 1M members change (half leave, half join), over
    writing that membership once (``CREATE TABLE ... AS``), on the same DuckDB file
    (``bench/churn.py``; 1M members whatever ``--scale`` says). Each repeat builds its own
    file; the median ratio of ``CHURN_REPEATS`` counts. Goal: at most 1.5."""
    measured = [churn.measure(1_000_000, 0.05) for _ in range(CHURN_REPEATS)]
    ratios = sorted(diff / once for once, diff in measured)
    median = ratios[len(ratios) // 2]
    extra = {"ms": [(ms(once), ms(diff)) for once, diff in measured], "ratios": ratios}
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
    note = f"1M members, 50,000 changes; median of {CHURN_REPEATS} ({spread})"
    return [Row("churn_diff_apply_over_write", median, "ratio", 1.5, note, extra)]
