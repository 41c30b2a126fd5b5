-- Golden SQL: every segment in one query of tests/golden/segments.segql, dialect postgres,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id",
    MAX("country") AS "p_country",
    MAX("email") AS "p_email",
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
      WHEN "source_rows"."amount" = CAST('NaN' AS DOUBLE PRECISION)
      THEN NULL
      ELSE "source_rows"."amount"
    END AS "c_amount",
    "source_rows"."properties" AS "properties",
    "segql_people"."p_country" AS "person_country"
  FROM "events" AS "source_rows"
  INNER JOIN "segql_people"
    ON "segql_people"."person_id" = "source_rows"."person_id"
  WHERE
    "source_rows"."occurred_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
), "segql_aggs_events" AS (
  SELECT
    "person_id",
    COUNT(*) FILTER(WHERE
      "event_name" = 'video_rendered'
      AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '30 DAY') AS "agg_1",
    SUM("c_amount") FILTER(WHERE
      "event_name" = 'purchase') AS "agg_2",
    COUNT(*) FILTER(WHERE
      CASE
        WHEN "event_name" = 'purchase'
        AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '1 YEAR'
        THEN "properties" ->> 'currency' = 'USD' AND "c_amount" > 10
      END) AS "agg_3",
    COUNT(*) FILTER(WHERE
      CASE WHEN "event_name" = 'purchase' THEN "person_country" = 'FR' END) AS "agg_4",
    COUNT(*) FILTER(WHERE
      "event_name" = 'login'
      AND (
        "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '90 DAY'
        AND "event_time" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '30 DAY'
      )) AS "agg_5",
    COUNT(*) FILTER(WHERE
      "event_name" = 'login'
      AND (
        "event_time" >= CAST('2026-01-01 00:00:00' AS TIMESTAMP)
        AND "event_time" < CAST('2026-02-01 00:00:00' AS TIMESTAMP)
      )) AS "agg_6",
    MAX("event_time") FILTER(WHERE
      "event_name" = 'purchase') AS "agg_10",
    COUNT(*) FILTER(WHERE
      "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '7 DAY') AS "agg_11"
  FROM "segql_rows_events"
  WHERE
    (
      "event_name" = 'video_rendered'
      AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '30 DAY'
    )
    OR "event_name" = 'purchase'
    OR (
      "event_name" = 'login'
      AND "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '90 DAY'
    )
    OR (
      "event_name" = 'login'
      AND (
        "event_time" >= CAST('2026-01-01 00:00:00' AS TIMESTAMP)
        AND "event_time" < CAST('2026-02-01 00:00:00' AS TIMESTAMP)
      )
    )
    OR "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '7 DAY'
  GROUP BY
    "person_id"
), "segql_distinct_agg_7" AS (
  SELECT
    "person_id",
    COUNT(DISTINCT CAST("event_time" AS DATE)) AS "agg_7"
  FROM "segql_rows_events"
  WHERE
    "event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '30 DAY'
  GROUP BY
    "person_id"
), "segql_distinct_agg_8" AS (
  SELECT
    "person_id",
    COUNT(DISTINCT DATE_TRUNC('WEEK', "event_time")) AS "agg_8"
  FROM "segql_rows_events"
  GROUP BY
    "person_id"
), "segql_rows_subscriptions" AS (
  SELECT
    "source_rows"."person_id" AS "person_id",
    "source_rows"."created_at" AS "event_time",
    "source_rows"."status" AS "c_status"
  FROM "subscriptions" AS "source_rows"
  WHERE
    "source_rows"."created_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
), "segql_aggs_subscriptions" AS (
  SELECT
    "person_id",
    COUNT(*) FILTER(WHERE
      "c_status" = 'active') AS "agg_9"
  FROM "segql_rows_subscriptions"
  GROUP BY
    "person_id"
), "segql_seq_did_1" AS (
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
        AND "b"."event_time" <= "a"."event_time" + INTERVAL '7 DAY'
        AND "b"."event_name" = 'purchase'
    )
), "segql_seq_did_2" AS (
  SELECT DISTINCT
    "a"."person_id"
  FROM (
    SELECT DISTINCT
      "a"."person_id",
      "a"."event_time"
    FROM "segql_rows_events" AS "a"
    WHERE
      "a"."event_name" = 'cart'
      AND "a"."event_time" > CAST('2026-03-15 12:00:00' AS TIMESTAMP) - INTERVAL '30 DAY'
  ) AS "a"
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM "segql_rows_events" AS "b"
      WHERE
        "b"."person_id" = "a"."person_id"
        AND "b"."event_time" > "a"."event_time"
        AND "b"."event_time" <= "a"."event_time" + INTERVAL '1 DAY'
        AND "b"."event_name" = 'order'
    )
    AND "a"."event_time" + INTERVAL '1 DAY' <= CAST('2026-03-15 12:00:00' AS TIMESTAMP)
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    "segql_people"."p_country",
    "segql_people"."p_email",
    "segql_people"."p_status",
    COALESCE("segql_aggs_events"."agg_1", 0) AS "agg_1",
    COALESCE("segql_aggs_events"."agg_2", 0) AS "agg_2",
    COALESCE("segql_aggs_events"."agg_3", 0) AS "agg_3",
    COALESCE("segql_aggs_events"."agg_4", 0) AS "agg_4",
    COALESCE("segql_aggs_events"."agg_5", 0) AS "agg_5",
    COALESCE("segql_aggs_events"."agg_6", 0) AS "agg_6",
    COALESCE("segql_distinct_agg_7"."agg_7", 0) AS "agg_7",
    COALESCE("segql_distinct_agg_8"."agg_8", 0) AS "agg_8",
    "segql_aggs_events"."agg_10" AS "agg_10",
    COALESCE("segql_aggs_events"."agg_11", 0) AS "agg_11",
    COALESCE("segql_aggs_subscriptions"."agg_9", 0) AS "agg_9",
    NOT "segql_seq_did_1"."person_id" IS NULL AS "did_1",
    NOT "segql_seq_did_2"."person_id" IS NULL AS "did_2"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_events"
    ON "segql_aggs_events"."person_id" = "segql_people"."person_id"
  LEFT JOIN "segql_distinct_agg_7"
    ON "segql_distinct_agg_7"."person_id" = "segql_people"."person_id"
  LEFT JOIN "segql_distinct_agg_8"
    ON "segql_distinct_agg_8"."person_id" = "segql_people"."person_id"
  LEFT JOIN "segql_aggs_subscriptions"
    ON "segql_aggs_subscriptions"."person_id" = "segql_people"."person_id"
  LEFT JOIN "segql_seq_did_1"
    ON "segql_seq_did_1"."person_id" = "segql_people"."person_id"
  LEFT JOIN "segql_seq_did_2"
    ON "segql_seq_did_2"."person_id" = "segql_people"."person_id"
), "segql_edges_2" AS (
  SELECT
    PERCENTILE_CONT(0.2) WITHIN GROUP (ORDER BY
      "agg_2") AS "edge_2_1",
    PERCENTILE_CONT(0.4) WITHIN GROUP (ORDER BY
      "agg_2") AS "edge_2_2",
    PERCENTILE_CONT(0.6) WITHIN GROUP (ORDER BY
      "agg_2") AS "edge_2_3",
    PERCENTILE_CONT(0.8) WITHIN GROUP (ORDER BY
      "agg_2") AS "edge_2_4"
  FROM "segql_stage_0"
), "segql_stage_1" AS (
  SELECT
    *,
    COALESCE("agg_1" >= 10 AND "p_status" = 'paid', FALSE) AS "in_1",
    -CAST(FLOOR(
      CAST((
        EXTRACT(EPOCH FROM CAST('2026-03-15 12:00:00' AS TIMESTAMP)) - EXTRACT(EPOCH FROM "agg_10")
      ) AS DOUBLE PRECISION) / 86400
    ) AS BIGINT) AS "rank_input_1",
    CASE
      WHEN "agg_2" IS NULL
      THEN NULL
      ELSE 1 + CASE WHEN "segql_edges_2"."edge_2_1" < "agg_2" THEN 1 ELSE 0 END + CASE WHEN "segql_edges_2"."edge_2_2" < "agg_2" THEN 1 ELSE 0 END + CASE WHEN "segql_edges_2"."edge_2_3" < "agg_2" THEN 1 ELSE 0 END + CASE WHEN "segql_edges_2"."edge_2_4" < "agg_2" THEN 1 ELSE 0 END
    END AS "rank_2"
  FROM "segql_stage_0"
  CROSS JOIN "segql_edges_2"
), "segql_stage_2" AS MATERIALIZED (
  SELECT
    *,
    CASE
      WHEN "rank_input_1" IS NULL
      THEN NULL
      ELSE CAST(CEIL(
        CAST(5 * COUNT("rank_input_1") OVER (ORDER BY "rank_input_1") AS DOUBLE PRECISION) / COUNT("rank_input_1") OVER ()
      ) AS BIGINT)
    END AS "rank_1"
  FROM "segql_stage_1"
)
SELECT
  'power_users' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "in_1"
UNION ALL
SELECT
  'high_ltv' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "agg_2" >= 500 AND NOT "in_1"
UNION ALL
SELECT
  'negation' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  NOT COALESCE("p_status" = 'paid', FALSE) AND NOT "p_country" IN ('US', 'CA')
UNION ALL
SELECT
  'text_tests' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  POSITION(LOWER('50%_off') IN LOWER("p_email")) > 0
  AND RIGHT(LOWER("p_email"), LENGTH(LOWER('.io'))) = LOWER('.io')
  AND "p_email" ~ '^[a-z]+@'
UNION ALL
SELECT
  'json_filter' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "agg_3" >= 1
UNION ALL
SELECT
  'person_in_filter' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "agg_4" >= 2
UNION ALL
SELECT
  'windows' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "agg_5" >= 1 AND "agg_6" >= 1
UNION ALL
SELECT
  'activity' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "agg_7" >= 5 AND "agg_8" >= 2
UNION ALL
SELECT
  'converted' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "did_1"
UNION ALL
SELECT
  'stalled' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "did_2"
UNION ALL
SELECT
  'subscribers' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "agg_9" >= 1
UNION ALL
SELECT
  'rfm_champions' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  "rank_1" >= 4 AND "rank_2" = 5
UNION ALL
SELECT
  'engaged' AS "segment",
  "person_id"
FROM "segql_stage_2"
WHERE
  COALESCE("agg_11" >= 20, FALSE);
