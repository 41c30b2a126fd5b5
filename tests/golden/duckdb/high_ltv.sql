-- Golden SQL: segment high_ltv of tests/golden/segments.segql, dialect duckdb,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id",
    MAX("status") AS "p_status"
  FROM "people"
  WHERE
    NOT "person_id" IS NULL
  GROUP BY
    "person_id"
), "segql_rows_events" AS NOT MATERIALIZED (
  SELECT
    "source_rows"."person_id" AS "person_id",
    "source_rows"."occurred_at" AS "event_time",
    "source_rows"."event_type" AS "event_name",
    CASE
      WHEN "source_rows"."amount" = CAST('NaN' AS DOUBLE)
      THEN NULL
      ELSE "source_rows"."amount"
    END AS "c_amount"
  FROM "events" AS "source_rows"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
    AND "source_rows"."event_type" IN ('purchase', 'video_rendered')
), "segql_pass_1_events" AS (
  SELECT
    "person_id",
    SUM("c_amount") AS "sum__purchase__amount"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'purchase'
  GROUP BY
    "person_id"
), "segql_pass_2_events" AS (
  SELECT
    "person_id",
    COUNT(*) AS "count__video_rendered__30day"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'video_rendered'
    AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL 30 DAY
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    "segql_people"."p_status",
    COALESCE("segql_pass_1_events"."sum__purchase__amount", 0) AS "sum__purchase__amount",
    COALESCE("segql_pass_2_events"."count__video_rendered__30day", 0) AS "count__video_rendered__30day"
  FROM "segql_people"
  LEFT JOIN "segql_pass_1_events"
    ON "segql_pass_1_events"."person_id" = "segql_people"."person_id"
  LEFT JOIN "segql_pass_2_events"
    ON "segql_pass_2_events"."person_id" = "segql_people"."person_id"
), "segql_stage_1" AS (
  SELECT
    *,
    COALESCE("count__video_rendered__30day" >= 10 AND "p_status" = 'paid', FALSE) AS "in__power_users"
  FROM "segql_stage_0"
)
SELECT
  'high_ltv' AS "segment",
  "person_id"
FROM "segql_stage_1"
WHERE
  "sum__purchase__amount" >= 500 AND NOT "in__power_users";
