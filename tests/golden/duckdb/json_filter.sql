-- Golden SQL: segment json_filter of tests/golden/segments.segql, dialect duckdb,
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
    "source_rows"."event_type" AS "event_name",
    CASE
      WHEN "source_rows"."amount" = CAST('NaN' AS DOUBLE)
      THEN NULL
      ELSE "source_rows"."amount"
    END AS "c_amount",
    "source_rows"."properties" AS "properties"
  FROM "events" AS "source_rows"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
    AND "source_rows"."event_type" IN ('purchase')
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    COUNT(
      CASE
        WHEN CASE
          WHEN "event_name" = 'purchase'
          AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL 1 YEAR
          THEN CASE
            WHEN CAST("properties" AS TEXT) LIKE '%"currency"%"currency"%' ESCAPE '\'
            THEN LIST_EXTRACT(
              JSON_EXTRACT_STRING("properties", '$.*'),
              LEN(JSON_KEYS("properties")) + 1 - LIST_POSITION(LIST_REVERSE(JSON_KEYS("properties")), 'currency')
            )
            ELSE "properties" ->> '/currency'
          END = 'USD'
          AND "c_amount" > 10
        END
        THEN 1
      END
    ) AS "count__purchase__1year_96bb71"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'purchase'
    AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL 1 YEAR
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    COALESCE("segql_aggs_events"."count__purchase__1year_96bb71", 0) AS "count__purchase__1year_96bb71"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
)
SELECT
  'json_filter' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  "count__purchase__1year_96bb71" >= 1;
