"""``segql init``: a new project with a demo warehouse of believable SaaS data.

The data is generated inside DuckDB from a seed, so a million people take seconds and
the same seed, size and anchor date always give the same rows. Its statements are fixed
text with bound parameters (sizes, seed, dates); no rule text ever reaches them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

from segql.errors import SegqlError

CONFIG = """\
# segql project: where the data is and what the tables mean.
[warehouse]
url = "duckdb:///warehouse.duckdb"   # relative to this file
schema = "segql"                      # segql's own tables (runs, members, history)
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

[sources.subscriptions]
table = "subscriptions"
person = "person_id"
time = "created_at"
"""

SEGMENTS = {
    "engagement.segql": """\
# Who uses the product, and how much.
segment power_users
  title "Power Users"
  description "10+ renders in the last 30 days on a paid plan"
  where count(video_rendered within 30 days) >= 10 and status = 'paid'

segment churn_risk
  title "Churn Risk"
  description "Paying, but not seen for 14 days"
  where status = 'paid' and did not any within 14 days

segment engaged
  title "Engaged"
  description "Enter at 20 events a week, leave below 10 (no flapping)"
  enter when count(any within 7 days) >= 20
  exit when count(any within 7 days) < 10
""",
    "revenue.segql": """\
# Money: trials, conversions and lifetime value.
trait lifetime_value = sum(purchase.amount)

segment trial_users
  title "Free Trial"
  where status = 'trial' and did trial_started within 30 days

segment trial_converted
  title "Trial to Paid"
  where did trial_started then purchase within 14 days

segment high_ltv
  title "High LTV"
  where lifetime_value >= 500

segment pricing_curious
  title "Viewed pricing, did not buy"
  where did pricing_viewed within 7 days and did not purchase within 30 days
""",
    "rfm_scores.segql": """\
# RFM scores (1 to 5) and the champions they define. `segql templates use rfm` adds the
# full set of named RFM segments.
trait r_score = ntile(5, -days_since(last_time(purchase)))
trait f_score = ntile(5, count(purchase))
trait m_score = ntile(5, sum(purchase.amount))

segment rfm_champions
  title "RFM Champions"
  where r_score >= 4 and f_score >= 4 and m_score >= 4
""",
}

_STATEMENTS = [
    """
    CREATE OR REPLACE TABLE people AS
    WITH base AS (
      SELECT i AS person_id,
             (hash(i, $seed, 1) % 1000000) / 1000000.0 AS u1,
             (hash(i, $seed, 2) % 1000000) / 1000000.0 AS u2,
             (hash(i, $seed, 3) % 1000000) / 1000000.0 AS u3,
             (hash(i, $seed, 4) % 1000000) / 1000000.0 AS u4
      FROM range(1, $people + 1) AS t(i)
    )
    SELECT person_id,
           CASE WHEN u1 < 0.08 THEN NULL ELSE 'user' || person_id || '@example.com' END AS email,
           CASE WHEN u2 < 0.55 THEN NULL
                ELSE '+1-555-' || lpad(CAST(person_id % 10000 AS VARCHAR), 4, '0') END AS phone,
           ['US', 'US', 'US', 'GB', 'DE', 'FR', 'IN', 'BR', 'CA', 'AU'][1 + CAST(u3 * 10 AS INT)]
             AS country,
           CASE WHEN u4 < 0.45 THEN 'free' WHEN u4 < 0.60 THEN 'trial'
                WHEN u4 < 0.90 THEN 'paid' ELSE 'churned' END AS status,
           CASE WHEN u4 < 0.60 THEN 'free' WHEN u4 < 0.75 THEN 'starter'
                WHEN u4 < 0.95 THEN 'pro' ELSE 'team' END AS plan,
           CAST($anchor AS TIMESTAMP) - to_seconds(CAST(u1 * u2 * 365 * 86400 AS BIGINT))
             - INTERVAL 1 HOUR AS signup_at,
           -- how active this person is: most are light users, a few are very heavy
           CASE WHEN u4 >= 0.90 THEN 0.05 ELSE pow(u2, 3) * 2.5 + 0.1 END AS activity
    FROM base
    """,
    """
    CREATE OR REPLACE TABLE events AS
    WITH slots AS (
      SELECT person_id, signup_at, status, activity,
             unnest(range(CAST(1 + activity * 48 AS INT))) AS k
      FROM people
    ), drawn AS (
      SELECT person_id, signup_at, status, k,
             (hash(person_id, k, $seed, 11) % 1000000) / 1000000.0 AS v1,
             (hash(person_id, k, $seed, 12) % 1000000) / 1000000.0 AS v2,
             (hash(person_id, k, $seed, 13) % 1000000) / 1000000.0 AS v3
      FROM slots
    )
    SELECT person_id,
           CASE
             WHEN k = 0 THEN 'signup'
             WHEN v1 < 0.30 THEN 'login'
             WHEN v1 < 0.48 THEN 'feature_used'
             WHEN v1 < 0.62 THEN 'video_rendered'
             WHEN v1 < 0.70 THEN 'email_opened'
             WHEN v1 < 0.74 THEN 'email_clicked'
             WHEN v1 < 0.80 THEN 'pricing_viewed'
             WHEN v1 < 0.86 AND status IN ('paid', 'churned') THEN 'purchase'
             WHEN v1 < 0.90 THEN 'trial_started'
             WHEN v1 < 0.92 THEN 'subscription_changed'
             ELSE 'page_view'
           END AS event_type,
           CASE WHEN k = 0 THEN signup_at
                ELSE signup_at + to_seconds(CAST(
                  pow(v2, CASE WHEN status = 'churned' THEN 2.5 ELSE 0.5 END)
                  * (epoch(CAST($anchor AS TIMESTAMP)) - epoch(signup_at)) AS BIGINT))
           END AS occurred_at,
           CASE WHEN v1 >= 0.80 AND v1 < 0.86 AND status IN ('paid', 'churned')
                THEN round(9 + v3 * v3 * 290, 2) END AS amount,
           CAST(CASE
             WHEN v1 >= 0.80 AND v1 < 0.86 THEN
               '{"currency": "' || CASE WHEN v3 < 0.7 THEN 'USD' ELSE 'EUR' END || '"}'
             WHEN v1 >= 0.92 THEN
               '{"url": "/' || ['home', 'docs', 'pricing', 'blog'][1 + CAST(v3 * 4 AS INT)]
               || '", "device": "' || CASE WHEN v2 < 0.4 THEN 'mobile' ELSE 'desktop' END
               || '"}'
           END AS JSON) AS properties
    FROM drawn
    """,
    """
    CREATE OR REPLACE TABLE subscriptions AS
    SELECT person_id,
           CASE status WHEN 'trial' THEN 'trialing' WHEN 'paid' THEN 'active'
                ELSE 'canceled' END AS status,
           plan,
           CASE plan WHEN 'starter' THEN 900 WHEN 'pro' THEN 2900 WHEN 'team' THEN 9900
                ELSE 0 END AS mrr,
           signup_at + INTERVAL 2 DAY AS created_at
    FROM people
    WHERE status IN ('trial', 'paid', 'churned')
    """,
]


def generate_demo_warehouse(
    path: Path,
    people: int = 10_000,
    seed: int = 42,
    anchor: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write the demo tables into a DuckDB file; returns the row count of each table."""
    import duckdb

    if people < 1:
        raise SegqlError("--people must be at least 1")
    show = progress or (lambda message: None)
    today = datetime.now(timezone.utc).date()
    anchor_time = datetime.combine(anchor or today, datetime.min.time())
    connection = duckdb.connect(str(path))
    try:
        connection.execute("SET TimeZone = 'UTC'")
        parameters = {"people": people, "seed": seed, "anchor": anchor_time}
        for table, statement in zip(
            ("people", "events", "subscriptions"), _STATEMENTS, strict=True
        ):
            show(f"generating {table}")
            used = {k: v for k, v in parameters.items() if f"${k}" in statement}
            connection.execute(statement, used)
        counts = {
            table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # type: ignore[index]
            for table in ("people", "events", "subscriptions")
        }
        connection.execute("ALTER TABLE people DROP COLUMN activity")
    finally:
        connection.close()
    return counts


def init_project(
    folder: Path,
    people: int = 10_000,
    seed: int = 42,
    anchor: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write segql.toml, example segments and the demo warehouse into ``folder``."""
    if (folder / "segql.toml").exists():
        raise SegqlError(
            f"{folder / 'segql.toml'} already exists", help="choose an empty or new folder"
        )
    (folder / "segments").mkdir(parents=True, exist_ok=True)
    (folder / "segql.toml").write_text(CONFIG, encoding="utf-8")
    for name, text in SEGMENTS.items():
        (folder / "segments" / name).write_text(text, encoding="utf-8")
    return generate_demo_warehouse(folder / "warehouse.duckdb", people, seed, anchor, progress)


def anchor_from(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SegqlError(f"--anchor '{text}' is not a date such as 2026-11-01") from None
