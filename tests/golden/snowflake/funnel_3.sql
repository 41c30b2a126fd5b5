-- Golden SQL: segment funnel_3 of tests/golden/segments.segql, dialect snowflake,
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
    AND "source_rows"."event_type" IN ('purchase', 'signup', 'trial_started')
), "segql_seq_funnel__signup__trial_started__purchas_85f691" AS (
  SELECT DISTINCT
    "a"."person_id"
  FROM (
    SELECT DISTINCT
      "b"."person_id",
      "b"."event_time"
    FROM "segql_rows_events" AS "b"
    INNER JOIN (
      SELECT DISTINCT
        "b"."person_id",
        "b"."event_time"
      FROM "segql_rows_events" AS "b"
      INNER JOIN (
        SELECT DISTINCT
          "a"."person_id",
          "a"."event_time"
        FROM "segql_rows_events" AS "a"
        WHERE
          "a"."event_name" = 'signup'
      ) AS "a"
        ON "b"."person_id" = "a"."person_id"
        AND "b"."event_time" > "a"."event_time"
        AND "b"."event_time" <= DATEADD(DAY, 7, "a"."event_time")
      WHERE
        "b"."event_name" = 'trial_started'
    ) AS "a"
      ON "b"."person_id" = "a"."person_id"
      AND "b"."event_time" > "a"."event_time"
      AND "b"."event_time" <= DATEADD(DAY, 14, "a"."event_time")
    WHERE
      "b"."event_name" = 'purchase'
  ) AS "a"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    NOT "segql_seq_funnel__signup__trial_started__purchas_85f691"."person_id" IS NULL AS "funnel__signup__trial_started__purchas_85f691"
  FROM "segql_people"
  LEFT JOIN "segql_seq_funnel__signup__trial_started__purchas_85f691"
    ON "segql_seq_funnel__signup__trial_started__purchas_85f691"."person_id" = "segql_people"."person_id"
)
SELECT
  'funnel_3' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  "funnel__signup__trial_started__purchas_85f691";
