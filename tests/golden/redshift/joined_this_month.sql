-- Golden SQL: segment joined_this_month of tests/golden/segments.segql, dialect redshift,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id",
    MAX("signup_at") AS "p_signup_at"
  FROM "people"
  WHERE
    NOT "person_id" IS NULL
  GROUP BY
    "person_id"
), "segql_rows_events" AS (
  SELECT
    "source_rows"."person_id" AS "person_id",
    "source_rows"."occurred_at" AS "event_time",
    "source_rows"."event_type" AS "event_name"
  FROM "events" AS "source_rows"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
    AND "source_rows"."event_type" IN ('login')
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    COUNT(
      CASE
        WHEN "event_name" = 'login'
        AND (
          DATE_TRUNC('WEEK', "event_time") >= DATE_TRUNC('WEEK', (
            CAST('2026-03-15 12:00:00' AS TIMESTAMP)
          ) - INTERVAL '14 DAY')
          AND DATE_TRUNC('WEEK', "event_time") < DATE_TRUNC('WEEK', CAST('2026-03-15 12:00:00' AS TIMESTAMP))
        )
        THEN 1
      END
    ) AS "count__login__prev2_week_34beb5"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'login'
    AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '22 DAY'
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    "segql_people"."p_signup_at",
    COALESCE("segql_aggs_events"."count__login__prev2_week_34beb5", 0) AS "count__login__prev2_week_34beb5"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
)
SELECT
  'joined_this_month' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  (
    DATE_TRUNC('MONTH', "p_signup_at") = DATE_TRUNC('MONTH', CAST('2026-03-15 12:00:00' AS TIMESTAMP))
    AND "p_signup_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
  )
  AND "count__login__prev2_week_34beb5" >= 1;
