-- Golden SQL: segment high_ltv of tests/golden/segments.segql, dialect trino,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id",
    MAX("status") AS "p_status"
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
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
    AND "source_rows"."event_type" IN ('purchase', 'video_rendered')
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    SUM("c_amount") FILTER(WHERE
      "event_name" = 'purchase') AS "sum__purchase__amount",
    COUNT(*) FILTER(WHERE
      "event_name" = 'video_rendered'
      AND "event_time" > DATE_ADD('DAY', 30 * -1, CAST('2026-03-15 12:00:00' AS TIMESTAMP))) AS "count__video_rendered__30day"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'purchase'
    OR (
      "event_name" = 'video_rendered'
      AND "event_time" > DATE_ADD('DAY', 30 * -1, CAST('2026-03-15 12:00:00' AS TIMESTAMP))
    )
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    "segql_people"."p_status",
    COALESCE("segql_aggs_events"."sum__purchase__amount", 0) AS "sum__purchase__amount",
    COALESCE("segql_aggs_events"."count__video_rendered__30day", 0) AS "count__video_rendered__30day"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
), "segql_stage_1" AS (
  SELECT
    *,
    COALESCE("count__video_rendered__30day" >= 10 AND "p_status" = 'paid', FALSE) AS "in__power_users"
  FROM "segql_stage_0"
)
SELECT
  'high_ltv' AS "segment",
  "person_id"
FROM "segql_stage_1"
WHERE
  "sum__purchase__amount" >= 500 AND NOT "in__power_users";
