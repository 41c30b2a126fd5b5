-- Golden SQL: segment windows of tests/golden/segments.segql, dialect snowflake,
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
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMPNTZ)
    AND "source_rows"."event_type" IN ('login')
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    COUNT(
      CASE
        WHEN "event_name" = 'login'
        AND (
          "event_time" > DATEADD(DAY, 90 * -1, CAST('2026-03-15 12:00:00' AS TIMESTAMPNTZ))
          AND "event_time" <= DATEADD(DAY, 30 * -1, CAST('2026-03-15 12:00:00' AS TIMESTAMPNTZ))
        )
        THEN 1
      END
    ) AS "count__login_614455",
    COUNT(
      CASE
        WHEN "event_name" = 'login'
        AND (
          "event_time" >= CAST('2026-01-01 00:00:00' AS TIMESTAMPNTZ)
          AND "event_time" < CAST('2026-02-01 00:00:00' AS TIMESTAMPNTZ)
        )
        THEN 1
      END
    ) AS "count__login_bee0a5"
  FROM "segql_rows_events"
  WHERE
    (
      "event_name" = 'login'
      AND "event_time" > DATEADD(DAY, 90 * -1, CAST('2026-03-15 12:00:00' AS TIMESTAMPNTZ))
    )
    OR (
      "event_name" = 'login'
      AND (
        "event_time" >= CAST('2026-01-01 00:00:00' AS TIMESTAMPNTZ)
        AND "event_time" < CAST('2026-02-01 00:00:00' AS TIMESTAMPNTZ)
      )
    )
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    COALESCE("segql_aggs_events"."count__login_614455", 0) AS "count__login_614455",
    COALESCE("segql_aggs_events"."count__login_bee0a5", 0) AS "count__login_bee0a5"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
)
SELECT
  'windows' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  "count__login_614455" >= 1 AND "count__login_bee0a5" >= 1;
