-- Golden SQL: segment rfm_champions of tests/golden/segments.segql, dialect snowflake,
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
    CASE
      WHEN "source_rows"."amount" = CAST('NaN' AS DOUBLE)
      THEN NULL
      ELSE "source_rows"."amount"
    END AS "c_amount"
  FROM "events" AS "source_rows"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMPNTZ)
    AND "source_rows"."event_type" IN ('purchase')
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    MAX("event_time") AS "last_time__purchase",
    SUM("c_amount") AS "sum__purchase__amount"
  FROM "segql_rows_events"
  WHERE
    "event_name" = 'purchase'
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    "segql_aggs_events"."last_time__purchase" AS "last_time__purchase",
    COALESCE("segql_aggs_events"."sum__purchase__amount", 0) AS "sum__purchase__amount"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
), "segql_edges_qcut_5_5e3360" AS (
  SELECT
    PERCENTILE_CONT(0.2) WITHIN GROUP (ORDER BY
      "sum__purchase__amount") AS "edge_1__qcut_5_5e3360",
    PERCENTILE_CONT(0.4) WITHIN GROUP (ORDER BY
      "sum__purchase__amount") AS "edge_2__qcut_5_5e3360",
    PERCENTILE_CONT(0.6) WITHIN GROUP (ORDER BY
      "sum__purchase__amount") AS "edge_3__qcut_5_5e3360",
    PERCENTILE_CONT(0.8) WITHIN GROUP (ORDER BY
      "sum__purchase__amount") AS "edge_4__qcut_5_5e3360"
  FROM "segql_stage_0"
), "segql_stage_1" AS (
  SELECT
    *,
    -CAST(FLOOR(
      (
        DATE_PART(EPOCH_MICROSECOND, CAST('2026-03-15 12:00:00' AS TIMESTAMPNTZ)) / 1000000 - DATE_PART(EPOCH_MICROSECOND, "last_time__purchase") / 1000000
      ) / 86400
    ) AS BIGINT) AS "input__ntile_5_233de2",
    CASE
      WHEN "sum__purchase__amount" IS NULL
      THEN NULL
      ELSE 1 + CASE
        WHEN "segql_edges_qcut_5_5e3360"."edge_1__qcut_5_5e3360" < "sum__purchase__amount"
        THEN 1
        ELSE 0
      END + CASE
        WHEN "segql_edges_qcut_5_5e3360"."edge_2__qcut_5_5e3360" < "sum__purchase__amount"
        THEN 1
        ELSE 0
      END + CASE
        WHEN "segql_edges_qcut_5_5e3360"."edge_3__qcut_5_5e3360" < "sum__purchase__amount"
        THEN 1
        ELSE 0
      END + CASE
        WHEN "segql_edges_qcut_5_5e3360"."edge_4__qcut_5_5e3360" < "sum__purchase__amount"
        THEN 1
        ELSE 0
      END
    END AS "qcut_5_5e3360"
  FROM "segql_stage_0"
  CROSS JOIN "segql_edges_qcut_5_5e3360"
), "segql_stage_2" AS (
  SELECT
    *,
    CASE
      WHEN "input__ntile_5_233de2" IS NULL
      THEN NULL
      ELSE CAST(CEIL(
        CAST(5 * COUNT("input__ntile_5_233de2") OVER (ORDER BY "input__ntile_5_233de2") AS DOUBLE) / COUNT("input__ntile_5_233de2") OVER ()
      ) AS BIGINT)
    END AS "ntile_5_233de2"
  FROM "segql_stage_1"
)
SELECT
  'rfm_champions' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "ntile_5_233de2" >= 4 AND "qcut_5_5e3360" = 5;
