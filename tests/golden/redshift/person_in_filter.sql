-- Golden SQL: segment person_in_filter of tests/golden/segments.segql, dialect redshift,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id",
    MAX("country") AS "p_country"
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
    "segql_people"."p_country" AS "person_country"
  FROM "events" AS "source_rows"
  INNER JOIN "segql_people"
    ON "segql_people"."person_id" = "source_rows"."person_id"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
    AND "source_rows"."event_type" IN ('purchase')
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    COUNT(
      CASE
        WHEN CASE WHEN "event_name" = 'purchase' THEN "person_country" = 'FR' END
        THEN 1
      END
    ) AS "count__purchase_fce180"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'purchase'
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    "segql_people"."p_country",
    COALESCE("segql_aggs_events"."count__purchase_fce180", 0) AS "count__purchase_fce180"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
)
SELECT
  'person_in_filter' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  "count__purchase_fce180" >= 2;
