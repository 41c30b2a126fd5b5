-- Golden SQL: segment aws_focus of tests/golden/segments.segql, dialect redshift,
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
    "source_rows"."url" AS "c_url"
  FROM "events" AS "source_rows"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
    AND "source_rows"."event_type" IN ('quiz_completed')
), "segql_last_count__quiz_completed__last100_4ae0da" AS (
  SELECT
    "ranked"."person_id",
    COUNT(*) AS "count__quiz_completed__last100_4ae0da"
  FROM (
    SELECT
      *,
      RANK() OVER (PARTITION BY "person_id" ORDER BY "event_time" DESC NULLS LAST) AS "segql_rank"
    FROM "segql_rows_events"
    WHERE
      "event_name" = 'quiz_completed'
  ) AS "ranked"
  WHERE
    "ranked"."segql_rank" <= 100 AND "ranked"."c_url" = 'aws'
  GROUP BY
    "ranked"."person_id"
), "segql_last_count__quiz_completed__last100" AS (
  SELECT
    "ranked"."person_id",
    COUNT(*) AS "count__quiz_completed__last100"
  FROM (
    SELECT
      *,
      RANK() OVER (PARTITION BY "person_id" ORDER BY "event_time" DESC NULLS LAST) AS "segql_rank"
    FROM "segql_rows_events"
    WHERE
      "event_name" = 'quiz_completed'
  ) AS "ranked"
  WHERE
    "ranked"."segql_rank" <= 100
  GROUP BY
    "ranked"."person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    COALESCE(
      "segql_last_count__quiz_completed__last100_4ae0da"."count__quiz_completed__last100_4ae0da",
      0
    ) AS "count__quiz_completed__last100_4ae0da",
    COALESCE("segql_last_count__quiz_completed__last100"."count__quiz_completed__last100", 0) AS "count__quiz_completed__last100"
  FROM "segql_people"
  LEFT JOIN "segql_last_count__quiz_completed__last100_4ae0da"
    ON "segql_last_count__quiz_completed__last100_4ae0da"."person_id" = "segql_people"."person_id"
  LEFT JOIN "segql_last_count__quiz_completed__last100"
    ON "segql_last_count__quiz_completed__last100"."person_id" = "segql_people"."person_id"
)
SELECT
  'aws_focus' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  CAST("count__quiz_completed__last100_4ae0da" AS DOUBLE PRECISION) / NULLIF("count__quiz_completed__last100", 0) > 0.6;
