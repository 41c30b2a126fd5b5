-- Golden SQL: segment seven_day_streak of tests/golden/segments.segql, dialect redshift,
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
    "source_rows"."event_type" AS "event_name"
  FROM "events" AS "source_rows"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
    AND "source_rows"."event_type" IN ('quiz_completed')
), "segql_streak_streak__quiz_completed__day" AS (
  SELECT
    "person_id",
    CAST(CASE
      WHEN MAX("segql_period") = DATE_TRUNC('DAY', CAST('2026-03-15 12:00:00' AS TIMESTAMP))
      OR MAX("segql_period") = DATE_TRUNC('DAY', (
        CAST('2026-03-15 12:00:00' AS TIMESTAMP)
      ) - INTERVAL '1 DAY')
      THEN SUM(CASE WHEN "segql_run" = 1 THEN 1 ELSE 0 END)
      ELSE 0
    END AS BIGINT) AS "streak__quiz_completed__day"
  FROM (
    SELECT
      "person_id",
      "segql_period",
      SUM(CASE WHEN "segql_newer" = DATEADD(DAY, 1, "segql_period") THEN 0 ELSE 1 END) OVER (
        PARTITION BY "person_id"
        ORDER BY "segql_period" DESC NULLS LAST
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS "segql_run"
    FROM (
      SELECT
        "person_id",
        "segql_period",
        LAG("segql_period") OVER (PARTITION BY "person_id" ORDER BY "segql_period" DESC NULLS LAST) AS "segql_newer"
      FROM (
        SELECT DISTINCT
          "person_id",
          DATE_TRUNC('DAY', "event_time") AS "segql_period"
        FROM "segql_rows_events"
        WHERE
          "event_name" = 'quiz_completed'
      ) AS "segql_periods"
    ) AS "segql_flagged"
  ) AS "segql_runs"
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    COALESCE("segql_streak_streak__quiz_completed__day"."streak__quiz_completed__day", 0) AS "streak__quiz_completed__day"
  FROM "segql_people"
  LEFT JOIN "segql_streak_streak__quiz_completed__day"
    ON "segql_streak_streak__quiz_completed__day"."person_id" = "segql_people"."person_id"
)
SELECT
  'seven_day_streak' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  "streak__quiz_completed__day" >= 7;
