-- Golden SQL: segment converted of tests/golden/segments.segql, dialect trino,
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
    AND "source_rows"."event_type" IN ('purchase', 'trial_started')
), "segql_seq_did__trial_started__then__purchase__wi_79225c" AS (
  SELECT DISTINCT
    "a"."person_id"
  FROM (
    SELECT DISTINCT
      "a"."person_id",
      "a"."event_time"
    FROM "segql_rows_events" AS "a"
    WHERE
      "a"."event_name" = 'trial_started'
  ) AS "a"
  WHERE
    EXISTS(
      SELECT
        1
      FROM "segql_rows_events" AS "b"
      WHERE
        "b"."person_id" = "a"."person_id"
        AND "b"."event_time" > "a"."event_time"
        AND "b"."event_time" <= DATE_ADD('DAY', 7, "a"."event_time")
        AND "b"."event_name" = 'purchase'
    )
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    NOT "segql_seq_did__trial_started__then__purchase__wi_79225c"."person_id" IS NULL AS "did__trial_started__then__purchase__wi_79225c"
  FROM "segql_people"
  LEFT JOIN "segql_seq_did__trial_started__then__purchase__wi_79225c"
    ON "segql_seq_did__trial_started__then__purchase__wi_79225c"."person_id" = "segql_people"."person_id"
)
SELECT
  'converted' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  "did__trial_started__then__purchase__wi_79225c";
