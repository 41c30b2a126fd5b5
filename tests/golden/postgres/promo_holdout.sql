-- Golden SQL: segment promo_holdout of tests/golden/segments.segql, dialect postgres,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id"
  FROM "people"
  WHERE
    NOT "person_id" IS NULL
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
      "c_status" = 'active') AS "count__subscriptions_7d658b"
  FROM "segql_rows_subscriptions"
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    COALESCE("segql_aggs_subscriptions"."count__subscriptions_7d658b", 0) AS "count__subscriptions_7d658b"
  FROM "segql_people"
  LEFT JOIN "segql_aggs_subscriptions"
    ON "segql_aggs_subscriptions"."person_id" = "segql_people"."person_id"
), "segql_stage_1" AS (
  SELECT
    *,
    COALESCE("count__subscriptions_7d658b" >= 1, FALSE) AS "in__subscribers",
    LOWER(MD5('spring_promo:' || CAST("person_id" AS VARCHAR))) AS "bucket_md5_10f284"
  FROM "segql_stage_0"
)
SELECT
  'promo_holdout' AS "segment",
  "person_id"
FROM "segql_stage_1"
WHERE
  "in__subscribers"
  AND (
    CAST(POSITION(SUBSTRING("bucket_md5_10f284" FROM 1 FOR 1) IN '0123456789abcdef') - 1 AS BIGINT) * 268435456 + CAST(POSITION(SUBSTRING("bucket_md5_10f284" FROM 2 FOR 1) IN '0123456789abcdef') - 1 AS BIGINT) * 16777216 + CAST(POSITION(SUBSTRING("bucket_md5_10f284" FROM 3 FOR 1) IN '0123456789abcdef') - 1 AS BIGINT) * 1048576 + CAST(POSITION(SUBSTRING("bucket_md5_10f284" FROM 4 FOR 1) IN '0123456789abcdef') - 1 AS BIGINT) * 65536 + CAST(POSITION(SUBSTRING("bucket_md5_10f284" FROM 5 FOR 1) IN '0123456789abcdef') - 1 AS BIGINT) * 4096 + CAST(POSITION(SUBSTRING("bucket_md5_10f284" FROM 6 FOR 1) IN '0123456789abcdef') - 1 AS BIGINT) * 256 + CAST(POSITION(SUBSTRING("bucket_md5_10f284" FROM 7 FOR 1) IN '0123456789abcdef') - 1 AS BIGINT) * 16 + CAST(POSITION(SUBSTRING("bucket_md5_10f284" FROM 8 FOR 1) IN '0123456789abcdef') - 1 AS BIGINT)
  ) % 100 < 10;
