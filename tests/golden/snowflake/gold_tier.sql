-- Golden SQL: segment gold_tier of tests/golden/segments.segql, dialect snowflake,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id"
  FROM "people"
  WHERE
    NOT "person_id" IS NULL
  GROUP BY
    "person_id"
), "segql_rows_events" AS (
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
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMPNTZ)
    AND "source_rows"."event_type" IN ('purchase')
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    SUM("c_amount") AS "sum__purchase__amount"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'purchase'
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    COALESCE("segql_aggs_events"."sum__purchase__amount", 0) AS "sum__purchase__amount"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
), "segql_stat_median_1418d1" AS (
  SELECT
    PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY
      CAST("sum__purchase__amount" AS DOUBLE)) AS "value__median_1418d1"
  FROM "segql_stage_0"
), "segql_stage_1" AS (
  SELECT
    *,
    CASE
      WHEN "sum__purchase__amount" >= 1000
      THEN 'gold'
      WHEN "sum__purchase__amount" >= 250
      THEN 'silver'
      ELSE 'bronze'
    END AS "trait__tier",
    "segql_stat_median_1418d1"."value__median_1418d1" AS "median_1418d1"
  FROM "segql_stage_0"
  CROSS JOIN "segql_stat_median_1418d1"
)
SELECT
  'gold_tier' AS "segment",
  "person_id"
FROM "segql_stage_1"
WHERE
  "trait__tier" = 'gold' AND "sum__purchase__amount" > "median_1418d1";
