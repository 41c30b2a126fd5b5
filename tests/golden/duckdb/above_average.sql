-- Golden SQL: segment above_average of tests/golden/segments.segql, dialect duckdb,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id"
  FROM "people"
  WHERE
    NOT "person_id" IS NULL
  GROUP BY
    "person_id"
), "segql_rows_events" AS NOT MATERIALIZED (
  SELECT
    "source_rows"."person_id" AS "person_id",
    "source_rows"."occurred_at" AS "event_time",
    "source_rows"."event_type" AS "event_name"
  FROM "events" AS "source_rows"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
    AND "source_rows"."event_type" IN ('purchase')
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    COUNT(*) AS "count__purchase__90day"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'purchase'
    AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL 90 DAY
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    COALESCE("segql_aggs_events"."count__purchase__90day", 0) AS "count__purchase__90day"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
), "segql_stat_population_avg_90c9af" AS (
  SELECT
    AVG(CAST("count__purchase__90day" AS DOUBLE)) AS "value__population_avg_90c9af"
  FROM "segql_stage_0"
), "segql_stage_1" AS (
  SELECT
    *,
    "segql_stat_population_avg_90c9af"."value__population_avg_90c9af" AS "population_avg_90c9af"
  FROM "segql_stage_0"
  CROSS JOIN "segql_stat_population_avg_90c9af"
)
SELECT
  'above_average' AS "segment",
  "person_id"
FROM "segql_stage_1"
WHERE
  "count__purchase__90day" > 2 * "population_avg_90c9af";
