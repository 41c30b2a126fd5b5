"""segql benchmark: compile speed and the fused query's cost against a floor.

Run ``python bench/run.py --scale 100k`` (quick) or ``--scale 1m`` (the goal's scale);
``--only compile`` or ``--only fused`` runs one figure. Every figure is a function
``figure_<name>(ctx) -> list[Row]``; add a new one to ``FIGURES``.

Query figures are ratios against a baseline measured in the same run, on the same
connection, the same way: each query is run once as a warm-up, then three times as
``CREATE OR REPLACE TEMP TABLE bench_out AS <query>``, and the best (minimum) time counts.

The data is generated inside DuckDB with SQL (``range()`` plus ``hash()`` with fixed
salts: deterministic) and cached in ``bench/.cache/`` under a name keyed by scale, data
version and DuckDB version. Results go to stdout (a table) and ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segql import project_from_text  # noqa: E402
from segql.compile.compiler import compile_membership_query  # noqa: E402
from segql.compile.dialect import get_dialect  # noqa: E402
from segql.config import ProjectConfig, config_from_dict  # noqa: E402
from segql.language.catalog import Catalog  # noqa: E402
from segql.language.parser import parse  # noqa: E402
from segql.project import Project  # noqa: E402

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results.json"

DATA_VERSION = "v2"  # v2: people.person_id is a PRIMARY KEY
SEED = "segql-bench-1"
AS_OF = datetime(2025, 1, 1)
SCALES = {"100k": 100_000, "1m": 1_000_000}
EVENTS_PER_PERSON = 20
RUNS = 3

# --- the warehouse: config, catalog, generated data ---------------------------------------

PEOPLE_COLUMNS = (
    ("person_id", "BIGINT"),
    ("status", "VARCHAR"),
    ("plan", "VARCHAR"),
    ("country", "VARCHAR"),
    ("signup_at", "TIMESTAMP"),
)
EVENT_COLUMNS = (
    ("person_id", "BIGINT"),
    ("event_type", "VARCHAR"),
    ("occurred_at", "TIMESTAMP"),
    ("amount", "DOUBLE"),
    ("url", "VARCHAR"),
    ("properties", "JSON"),
)
# (event name, share in per-mille); 12 names, the common ones first.
EVENT_MIX = (
    ("page_view", 340),
    ("click", 140),
    ("screen_view", 100),
    ("login", 90),
    ("search", 80),
    ("video_rendered", 60),
    ("add_to_cart", 50),
    ("cart_created", 40),
    ("purchase", 40),
    ("support_ticket", 20),
    ("trial_started", 20),
    ("signup", 20),
)
URLS = (
    "/",
    "/pricing",
    "/docs/start",
    "/docs/api",
    "/docs/faq",
    "/blog/launch",
    "/blog/rfm",
    "/features",
    "/about",
    "/pricing/enterprise",
)
COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "CA", "NL", "ES", "IT", "BR", "IN")


# segql.toml of the benchmark's project, without the warehouse's url (the figures open the
# data file themselves; `rss` adds the url of its copy).
BENCH_TOML = """\
[warehouse]
timezone = "UTC"

[entity]
table = "people"
id = "person_id"

[events]
table = "events"
person = "person_id"
name = "event_type"
time = "occurred_at"
properties = "properties"
"""


def bench_config() -> ProjectConfig:
    return config_from_dict(tomllib.loads(BENCH_TOML), BENCH)


def bench_catalog() -> Catalog:
    """What ``segql run`` reads from the data file: the columns, and the primary key."""
    columns = {"people": PEOPLE_COLUMNS, "events": EVENT_COLUMNS}
    return Catalog.from_columns(columns, unique={"people": ["person_id"]})


def _pick(values: tuple[str, ...], u: str) -> str:
    """SQL choosing one of ``values`` (equal odds) from a uniform [0, 1) expression."""
    items = ", ".join(f"'{v}'" for v in values)
    return f"([{items}])[1 + floor({u} * {len(values)})::INTEGER]"


def _mix(u: str) -> str:
    """SQL picking an event name by EVENT_MIX from a uniform [0, 1) expression."""
    cases, edge = [], 0
    for name, share in EVENT_MIX[:-1]:
        edge += share
        cases.append(f"WHEN {u} < {edge / 1000} THEN '{name}'")
    return f"CASE {' '.join(cases)} ELSE '{EVENT_MIX[-1][0]}' END"


def generation_sql(people: int) -> list[str]:
    """Statements that build ``people`` and ``events`` in the open database."""
    events = people * EVENTS_PER_PERSON
    start_us = 1_704_067_200_000_000  # 2024-01-01 00:00:00 UTC
    span_us = (366 + 3) * 86_400_000_000  # a year, and 3 days past AS_OF (rows after T)
    return [
        f"CREATE OR REPLACE TEMP MACRO rnd(i, salt) AS "
        f"(hash(i, salt || '{SEED}') % 1000000007)::DOUBLE / 1000000007",
        f"""
        CREATE TABLE people AS
        SELECT
          i AS person_id,
          CASE WHEN u_s < 0.03 THEN NULL WHEN u_s < 0.30 THEN 'paid' WHEN u_s < 0.70 THEN 'free'
               WHEN u_s < 0.85 THEN 'trial' ELSE 'churned' END AS status,
          CASE WHEN u_p < 0.10 THEN NULL WHEN u_p < 0.60 THEN 'basic' WHEN u_p < 0.92 THEN 'pro'
               ELSE 'enterprise' END AS plan,
          {_pick(COUNTRIES, "u_c")} AS country,
          make_timestamp(({start_us} - 366 * 86400000000 + u_t * 2 * 366 * 86400000000)::BIGINT)
            AS signup_at
        FROM (
          SELECT i, rnd(i, 's') AS u_s, rnd(i, 'p') AS u_p, rnd(i, 'c') AS u_c,
                 rnd(i, 't') AS u_t
          FROM range({people}) r(i)
        )
        """,
        # An entity table has a key, and segql reads it: no merging of duplicate ids.
        "ALTER TABLE people ADD PRIMARY KEY (person_id)",
        f"""
        CREATE TABLE events AS
        SELECT
          person_id,
          event_type,
          occurred_at,
          CASE WHEN event_type = 'purchase' THEN round(5 + u_a * u_a * 495, 2) END AS amount,
          CASE WHEN event_type = 'page_view' THEN {_pick(URLS, "u_u")} END AS url,
          json_object(
            'device', {_pick(("desktop", "desktop", "mobile", "tablet"), "u_d")},
            'source', {_pick(("organic", "ads", "email", "referral"), "u_r")}
          ) AS properties
        FROM (
          SELECT
            CASE WHEN u_n0 < 0.001 THEN NULL
                 WHEN u_m < 0.5 THEN floor(u_p * {people})
                 ELSE floor(u_p * u_p * {people}) END::BIGINT AS person_id,
            {_mix("u_n")} AS event_type,
            make_timestamp({start_us}
              + (i * ({span_us} // {events}))
              + (u_t * 3600000000)::BIGINT) AS occurred_at,
            u_a, u_u, u_d, u_r
          FROM (
            SELECT i, rnd(i, 'pp') AS u_p, rnd(i, 'm') AS u_m, rnd(i, 'n') AS u_n,
                   rnd(i, 'n0') AS u_n0, rnd(i, 'tt') AS u_t, rnd(i, 'a') AS u_a,
                   rnd(i, 'u') AS u_u, rnd(i, 'd') AS u_d, rnd(i, 'r') AS u_r
            FROM range({events}) r(i)
          )
        )
        """,
    ]


def data_file(scale: str) -> Path:
    """The cached DuckDB file for a scale, generated on first use."""
    name = f"bench-{scale}-{DATA_VERSION}-duckdb{duckdb.__version__}.duckdb"
    path = CACHE / name
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    print(f"generating {path.name} ...", flush=True)
    started = time.perf_counter()
    con = duckdb.connect(str(partial))
    try:
        for statement in generation_sql(SCALES[scale]):
            con.execute(statement)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    partial.rename(path)
    print(f"generated in {time.perf_counter() - started:.1f} s", flush=True)
    return path


# --- rule text ------------------------------------------------------------------------------

SUITE_TRAITS = """
trait ltv = sum(purchase.amount)
trait recency_score = ntile(5, -days_since(last_time(purchase)))
trait frequency_score = ntile(5, count(purchase))
trait monetary_score = ntile(5, ltv)
"""

# (name, condition, uses a sequence)
SUITE: tuple[tuple[str, str, bool], ...] = (
    ("power_viewers", "count(page_view within 30 days) >= 4 and status = 'paid'", False),
    ("pricing_visitors", "did page_view where url contains 'pricing' within 7 days", False),
    ("active_month", "active_days(any within 30 days) >= 8", False),
    ("mobile_heavy", "count(page_view where device = 'mobile' within 30 days) >= 2", False),
    ("big_spenders", "sum(purchase.amount within 90 days) >= 500", False),
    ("high_ltv", "ltv >= 1000", False),
    ("champions", "recency_score >= 4 and frequency_score >= 4 and monetary_score >= 4", False),
    ("trial_converters", "did trial_started then purchase within 14 days", True),
    ("abandoned_carts", "did cart_created within 30 days then not purchase within 1 day", True),
    (
        "lapsed_buyers",
        "did purchase between 180 days ago and 90 days ago and did not purchase within 90 days",
        False,
    ),
    ("new_signups", "signup_at within 30 days and country in ('US', 'CA', 'GB')", False),
    ("enterprise_eu", "plan = 'enterprise' and country in ('DE', 'FR', 'NL', 'ES', 'IT')", False),
    ("engaged_paid", "in power_viewers or (in active_month and status = 'paid')", False),
    ("at_risk", "in high_ltv and not in active_month", False),
    ("churn_risk", "status = 'paid' and count(login within 14 days) = 0", False),
    ("video_creators", "did video_rendered within 30 days at least 2 times", False),
    ("support_heavy", "count(support_ticket within 90 days) >= 2 and not in champions", False),
    ("weekly_regulars", "active_weeks(any within 90 days) >= 8", False),
    (
        "docs_readers",
        "count_distinct(page_view.url where url starts with '/docs' within 30 days) >= 2",
        False,
    ),
    (
        "organic_new",
        "signup_at within 90 days and did any where source = 'organic' within 7 days",
        False,
    ),
)


NTILE_SEGMENTS = ("champions", "support_heavy")  # read ntile traits


def suite_text() -> str:
    body = "\n".join(f"segment {name}\n  where {cond}\n" for name, cond, _ in SUITE)
    return SUITE_TRAITS + "\n" + body


def generated_project_text(segments: int = 1000, seed: int = 7) -> str:
    """A varied project of ``segments`` segments (plus traits), deterministic by ``seed``."""
    rng = random.Random(seed)
    names = [name for name, _ in EVENT_MIX]
    lines: list[str] = []
    traits: list[str] = []

    def event() -> str:
        return rng.choice(names)

    def window() -> str:
        return rng.choice(
            [
                f"within {rng.choice([1, 7, 14, 30, 60, 90, 180, 365])} days",
                f"between {rng.choice([60, 90, 180])} days ago "
                f"and {rng.choice([7, 14, 30])} days ago",
                "since '2024-06-01'",
                f"within {rng.choice([2, 4, 12])} weeks",
                "",
            ]
        )

    def row_filter() -> str:
        return rng.choice(
            [
                f"device = '{rng.choice(['mobile', 'desktop', 'tablet'])}'",
                f"source in ('{rng.choice(['ads', 'organic'])}', 'email')",
                f"url contains '{rng.choice(['pricing', 'docs', 'blog'])}'",
                f"url starts with '/{rng.choice(['docs', 'blog', 'pricing'])}'",
                f"amount > {rng.choice([10, 50, 100, 250])}",
                f"person.plan = '{rng.choice(['pro', 'basic'])}'",
            ]
        )

    def person_filter() -> str:
        return rng.choice(
            [
                f"status = '{rng.choice(['paid', 'free', 'trial', 'churned'])}'",
                f"plan in ('{rng.choice(['pro', 'basic'])}', 'enterprise')",
                f"country = '{rng.choice(COUNTRIES)}'",
                f"signup_at within {rng.choice([30, 90, 365])} days",
                "status is set",
                f"country not in ('{rng.choice(COUNTRIES)}', 'BR')",
                f"days_since(signup_at) > {rng.choice([30, 100, 400])}",
            ]
        )

    def behaviour(previous: list[str]) -> str:
        kind = rng.randrange(10)
        if kind == 0:
            return f"count({event()} {window()}) >= {rng.randint(1, 20)}"
        if kind == 1:
            return f"did {event()} where {row_filter()} {window()}"
        if kind == 2:
            return f"sum(purchase.amount {window()}) >= {rng.choice([50, 200, 1000])}"
        if kind == 3:
            period = rng.choice(["active_days", "active_weeks", "active_months"])
            return f"{period}(any {window()}) >= {rng.randint(2, 10)}"
        if kind == 4:
            a, b = event(), event()
            neg = rng.choice(["", "not "])
            days = rng.choice([1, 3, 7, 14])
            return f"did {a} {window()} then {neg}{b} within {days} days"
        if kind == 5 and previous:
            neg = rng.choice(["", "not "])
            return f"{neg}in {rng.choice(previous[-50:])}"
        if kind == 6 and traits:
            return f"{rng.choice(traits)} >= {rng.randint(1, 5)}"
        if kind == 7:
            return f"ntile({rng.choice([4, 5, 10])}, count({event()} {window()})) >= 3"
        if kind == 8:
            return f"count_distinct(page_view.url {window()}) >= {rng.randint(2, 5)}"
        return f"days_since(last_time({event()})) <= {rng.choice([7, 30, 90])}"

    for t in range(max(1, segments // 20)):
        name = f"trait_{t}"
        lines.append(
            rng.choice(
                [
                    f"trait {name} = ntile(5, count({event()} {window()}))",
                    f"trait {name} = ntile(10, sum(purchase.amount {window()}))",
                    f"trait {name} = ntile(5, -days_since(last_time({event()})))",
                    f"trait {name} = active_days(any {window()})",
                ]
            )
        )
        traits.append(name)
    previous: list[str] = []
    for s in range(segments):
        name = f"seg_{s}"
        parts = [behaviour(previous) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.5:
            parts.append(person_filter())
        joiner = rng.choice([" and ", " and ", " or "])
        lines.append(f"segment {name}\n  where {joiner.join(parts)}")
        previous.append(name)
    return "\n".join(lines) + "\n"


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    value: float
    unit: str  # "ratio", "ms" or "GB"
    goal: float | None = None  # None: context only
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    at_least: bool = False  # the goal is a lower bound (value >= goal), not an upper one

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.value >= self.goal if self.at_least else self.value <= self.goal


@dataclass
class Context:
    scale: str
    runs: int = RUNS
    con: duckdb.DuckDBPyConnection | None = None

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            path = data_file(self.scale)
            self.con = duckdb.connect(str(path))
        return self.con


def measure(fn: Callable[[], Any], runs: int, slow_s: float = 5.0) -> tuple[float, Any]:
    """Best wall time (s) of up to ``runs`` calls, and the last result; a call slower than
    ``slow_s`` is not repeated (there is no warm-up for compiling: pure Python). Each call
    starts after a full garbage collection, so that it does not pay for collecting the
    trees an earlier call left (sqlglot's nodes are cycles, freed only by the collector)."""
    times, result = [], None
    for _ in range(runs):
        result = None
        gc.collect()
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
        if times[-1] > slow_s:
            break
    return min(times), result


def run_into_table(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    """Seconds to run ``CREATE OR REPLACE TEMP TABLE bench_out AS <sql>``."""
    started = time.perf_counter()
    con.execute(f"CREATE OR REPLACE TEMP TABLE bench_out AS\n{sql}")
    return time.perf_counter() - started


def time_interleaved(
    con: duckdb.DuckDBPyConnection,
    queries: dict[str, str],
    runs: int,
    warmups: dict[str, Callable[[], object]] | None = None,
) -> dict[str, float]:
    """Best time (s) per query: one warm-up each, then ``runs`` rounds that take the queries
    in turn, so that drift in the machine's load hits every query alike."""
    for label, sql in queries.items():
        warm = (warmups or {}).get(label)
        if warm is not None:
            warm()
        else:
            run_into_table(con, sql)
    best = dict.fromkeys(queries, float("inf"))
    for _ in range(runs):
        for label, sql in queries.items():
            best[label] = min(best[label], run_into_table(con, sql))
    return best


# --- figures --------------------------------------------------------------------------------


def figure_compile(ctx: Context) -> list[Row]:
    """(a) compile time per segment for a generated 1,000-segment project."""
    config, catalog = bench_config(), bench_catalog()
    text = generated_project_text(1000)
    parse_s, _ = measure(lambda: parse(text, "<bench>"), ctx.runs)

    module = parse(text, "<bench>")  # frozen AST: each fresh Project reuses it

    def fused() -> str:
        project = Project(config, [module], catalog)
        return project.compile(dialect="duckdb", as_of=AS_OF)

    total_s, sql = measure(fused, ctx.runs)
    check_s, _ = measure(lambda: Project(config, [module], catalog).check(), ctx.runs)

    project = Project(config, [module], catalog)
    names = project.segment_names
    project.compile(dialect="duckdb", as_of=AS_OF, segments=names[:1])  # warm caches
    started = time.perf_counter()
    for name in names:
        project.compile(dialect="duckdb", as_of=AS_OF, segments=[name])
    single_s = time.perf_counter() - started

    per_fused_ms = total_s * 1000 / len(names)
    per_single_ms = single_s * 1000 / len(names)
    context = {
        "segments": len(names),
        "rule_chars": len(text),
        "sql_chars": len(sql),
        "parse_ms": round(parse_s * 1000, 2),
        "fused_compile_ms": round(total_s * 1000, 2),
        "check_ms": round(check_s * 1000, 2),
    }
    return [
        Row(
            "compile_ms_per_segment_fused",
            per_fused_ms,
            "ms",
            1.0,
            f"{len(names)} segments in one query: {total_s * 1000:.0f} ms (parse excluded)",
            context,
        ),
        Row(
            "compile_fused_over_parse",
            total_s / parse_s,
            "ratio",
            None,
            f"parse of the whole project: {parse_s * 1000:.1f} ms",
        ),
        Row(
            "compile_ms_per_segment_single",
            per_single_ms,
            "ms",
            None,
            f"each segment compiled alone on a parsed project ({single_s:.1f} s for all); "
            f"includes project.check() per call ({check_s * 1000:.1f} ms each)",
        ),
        Row(
            "compile_check_over_parse",
            check_s / parse_s,
            "ratio",
            None,
            "project.check() alone (fresh project), the share of every compile call",
        ),
    ]


def figure_fused(ctx: Context) -> list[Row]:
    """(b) the fused 20-segment query against ``SELECT person_id, count(*) ... GROUP BY``."""
    con = ctx.connection()
    config, catalog = bench_config(), bench_catalog()
    project = project_from_text(config, suite_text(), catalog)
    no_seq = [name for name, _, seq in SUITE if not seq]
    only_seq = [name for name, _, seq in SUITE if seq]
    sql = project.compile(dialect="duckdb", as_of=AS_OF)
    (CACHE / "fused.sql").write_text(sql + "\n", encoding="utf-8")

    floor_sql = "SELECT person_id, count(*) FROM events GROUP BY 1"
    # The fused query's warm-up run is profiled (JSON) to say where its time goes.
    operators: list[dict[str, Any]] = []

    def profiled() -> None:
        operators.extend(profile_operators(con, sql))

    best = time_interleaved(
        con, {"floor": floor_sql, "fused": sql}, ctx.runs, warmups={"fused": profiled}
    )
    floor_s, fused_s = best["floor"], best["fused"]
    (fused_rows,) = con.execute("SELECT count(*) FROM bench_out").fetchone()  # type: ignore[misc]
    per_segment = dict(
        con.execute("SELECT segment, count(*) FROM bench_out GROUP BY 1 ORDER BY 1").fetchall()
    )
    (floor_rows,) = con.execute(f"SELECT count(*) FROM ({floor_sql})").fetchone()  # type: ignore[misc]

    # Variants, to see where the time goes: one timed run each (the data is warm by now).
    variants = {
        "no_sequences": no_seq,
        "sequences_only": only_seq,
        "aggregates_no_ntile": [n for n in no_seq if n not in NTILE_SEGMENTS],
        **{f"seq:{name}": [name] for name in only_seq},
    }
    variant_s: dict[str, float] = {}
    for label, names in variants.items():
        variant_sql = project.compile(dialect="duckdb", as_of=AS_OF, segments=names)
        variant_s[label] = run_into_table(con, variant_sql)
    con.execute("DROP TABLE IF EXISTS bench_out")
    explain_analyze(con, sql)

    context = {
        "floor_ms": round(floor_s * 1000, 1),
        "fused_ms": round(fused_s * 1000, 1),
        "floor_rows": floor_rows,
        "fused_rows": fused_rows,
        "variants_ms": {k: round(v * 1000, 1) for k, v in variant_s.items()},
        "members": per_segment,
        "top_operators": operators,
    }
    rows = [
        Row(
            "fused_20_over_floor",
            fused_s / floor_s,
            "ratio",
            1.5,
            f"floor {floor_s * 1000:.0f} ms, fused {fused_s * 1000:.0f} ms",
            context,
        ),
    ]
    for label, seconds in variant_s.items():
        rows.append(
            Row(
                f"fused_{label}_over_floor",
                seconds / floor_s,
                "ratio",
                None,
                f"{seconds * 1000:.0f} ms",
            )
        )
    return rows


def explain_analyze(con: duckdb.DuckDBPyConnection, sql: str) -> Path:
    """Write the fused query's ``EXPLAIN ANALYZE`` to .cache/explain.txt."""
    rows = con.execute(f"EXPLAIN ANALYZE {sql}").fetchall()
    path = CACHE / "explain.txt"
    path.write_text("\n".join(str(r[-1]) for r in rows) + "\n", encoding="utf-8")
    return path


def profile_operators(
    con: duckdb.DuckDBPyConnection, sql: str, top: int = 12
) -> list[dict[str, Any]]:
    """Run the query once with JSON profiling (.cache/profile.json); the costliest operators.

    ``share`` is an operator's time over the query's total. DuckDB's CTE operator reports
    the time of the whole pipeline that fills it, so its share can exceed 1.
    """
    profile = CACHE / "profile.json"
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{profile}'")
    con.execute("SET profiling_mode = 'detailed'")
    try:
        run_into_table(con, sql)
    finally:
        con.execute("PRAGMA disable_profiling")
    tree = json.loads(profile.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = []

    def visit(node: dict[str, Any], depth: int) -> None:
        # DuckDB 1.x names keys operator_*, 2.x plain ones (type, timing, ...).
        name = node.get("operator_type") or node.get("type") or node.get("operator_name")
        seconds = node.get("operator_timing", node.get("timing"))
        if name and seconds is not None:
            found.append(
                {
                    "operator": str(name).strip(),
                    "ms": round(float(seconds) * 1000, 1),
                    "rows": node.get("operator_cardinality", node.get("intermediate_rows")),
                    "depth": depth,
                    "info": _short_info(node.get("extra_info") or {}),
                }
            )
        for child in node.get("children", []):
            visit(child, depth + 1)

    roots = tree.get("operator") or tree.get("children") or []
    for root in roots if isinstance(roots, list) else [roots]:
        visit(root, 0)
    query = tree.get("query") if isinstance(tree.get("query"), dict) else tree
    total = float(query.get("total_time") or query.get("latency") or 0) * 1000
    total = total or sum(f["ms"] for f in found) or 1.0
    for f in found:
        f["share"] = round(f["ms"] / total, 3)
    return sorted(found, key=lambda f: -f["ms"])[:top]


def _short_info(info: Any, limit: int = 160) -> str:
    if isinstance(info, dict):
        parts = []
        for key in (
            "Table",
            "Conditions",
            "Join Type",
            "CTE Name",
            "Table Index",
            "Groups",
            "Aggregates",
            "Filters",
            "Projections",
            "Function",
        ):
            if key in info:
                value = info[key]
                value = " ".join(value) if isinstance(value, list) else str(value)
                parts.append(f"{key}: {value}")
        text = "; ".join(parts)
    else:
        text = str(info)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Segments whose aggregates need rows of two guards: all of one event's history, and a
# recent window of another. One pass must read the whole table for them; a pass per guard
# lets the window's scan skip old row groups.
MIXED_GUARDS = """
segment quiet_buyers where sum(purchase.amount) >= 100 and count(login within 7 days) = 0
segment viewers_no_ticket where count(page_view within 14 days) >= 3
  and count(support_ticket) = 0
"""


def figure_passes(ctx: Context) -> list[Row]:
    """DuckDB's pass per guard (``pass_per_guard``) against one pass over all their rows,
    the same query otherwise: the suite, and two one-segment queries with mixed guards."""
    con = ctx.connection()
    split = get_dialect("duckdb")
    one_pass = replace(split, pass_per_guard=False)
    cases = [("suite", suite_text(), None), *((n, MIXED_GUARDS, [n]) for n in _names(MIXED_GUARDS))]
    rows = []
    for label, text, segments in cases:
        project = project_from_text(bench_config(), text, bench_catalog())
        names = segments or list(project.definitions.segments)
        sql = {
            name: compile_membership_query(project.analyzer, names, dialect, as_of=AS_OF).sql
            for name, dialect in (("split", split), ("one", one_pass))
        }
        best = time_interleaved(con, sql, ctx.runs)
        rows.append(
            Row(
                f"passes_{label}_split_over_one",
                best["split"] / best["one"],
                "ratio",
                note=f"a pass per guard {best['split'] * 1e3:.0f} ms, "
                f"one pass {best['one'] * 1e3:.0f} ms",
            )
        )
    return rows


def _names(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.startswith("segment ")]


FIGURES: dict[str, Callable[[Context], list[Row]]] = {
    "compile": figure_compile,
    "fused": figure_fused,
    "passes": figure_passes,
}


# --- output ---------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    header = ("figure", "value", "goal", "met", "note")
    cells = []
    for row in rows:
        unit = {"ratio": "x"}.get(row.unit, f" {row.unit}")
        bound = ">=" if row.at_least else "<="
        goal = "-" if row.goal is None else f"{bound} {row.goal:g}{unit}"
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        cells.append((row.figure, f"{row.value:.3f}{unit}", goal, met, row.note))
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header[:-1])]
    line = "  ".join(h.ljust(w) for h, w in zip(header[:-1], widths, strict=True)) + "  note"
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c[:-1], widths, strict=True)) + "  " + c[-1])


def print_context(rows: list[Row]) -> None:
    for row in rows:
        operators = row.extra.get("top_operators")
        if operators:
            print(f"\ncostliest operators of the fused query (profiled; {CACHE / 'explain.txt'}):")
            for op in operators:
                print(
                    f"  {op['ms']:>9.1f} ms {op['share']:>6.1%}  {op['operator']:<22} "
                    f"rows={op['rows']}  {op['info']}"
                )
        members = row.extra.get("members")
        if members:
            print("\nmembers per segment:", ", ".join(f"{k}={v}" for k, v in members.items()))


def write_results(scale: str, rows: list[Row]) -> None:
    data: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            data = json.loads(RESULTS.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            data = {}
    entry = data.setdefault("scales", {}).setdefault(scale, {})
    entry["run_at"] = datetime.now().isoformat(timespec="seconds")
    entry["machine"] = {
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "platform": platform.platform(),
    }
    figures = entry.setdefault("figures", {})
    for row in rows:
        record = asdict(row)
        record["met"] = row.met
        figures[row.figure] = record
    data["data_version"] = DATA_VERSION
    data["timing"] = (
        "queries: best of --runs (default 3) after 1 warm-up, floor and fused interleaved; "
        "variants: 1 run; each as CREATE OR REPLACE TEMP TABLE bench_out AS <query>"
    )
    RESULTS.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="100k")
    parser.add_argument("--only", choices=sorted(FIGURES), action="append")
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs per query (best)")
    args = parser.parse_args(argv)
    ctx = Context(args.scale, runs=args.runs)
    rows: list[Row] = []
    for name in args.only or list(FIGURES):
        started = time.perf_counter()
        print(f"== {name} (scale {args.scale})", flush=True)
        rows.extend(FIGURES[name](ctx))
        print(f"   done in {time.perf_counter() - started:.1f} s", flush=True)
    if ctx.con is not None:
        ctx.con.close()
    print()
    print_table(rows)
    print_context(rows)
    write_results(args.scale, rows)
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    unmet = [r.figure for r in rows if r.met is False]
    if unmet:
        print("goals not met: " + ", ".join(unmet))
    return 0


# The figures in figures_more.py import from this module by name ("run"): register it under
# that name first, so that running it as a script does not load a second copy.
sys.modules.setdefault("run", sys.modules[__name__])
from figures_more import (  # noqa: E402
    figure_app,
    figure_churn,
    figure_expert,
    figure_naive,
    figure_rss,
)

FIGURES.update(
    naive=figure_naive, expert=figure_expert, app=figure_app, churn=figure_churn, rss=figure_rss
)


if __name__ == "__main__":
    sys.exit(main())
