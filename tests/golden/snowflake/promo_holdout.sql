-- Golden SQL: segment promo_holdout of tests/golden/segments.segql, dialect snowflake,
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
    "source_rows"."created_at" <= CAST('2026-03-15 12:00:00' AS TIMESTAMPNTZ)
), "segql_aggs_subscriptions" AS (
  SELECT
    "person_id",
    COUNT(CASE WHEN "c_status" = 'active' THEN 1 END) AS "count__subscriptions_7d658b"
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
    LOWER(MD5(CONCAT('spring_promo:', CAST("person_id" AS VARCHAR)))) AS "bucket_md5_10f284"
  FROM "segql_stage_0"
)
SELECT
  'promo_holdout' AS "segment",
  "person_id"
FROM "segql_stage_1"
WHERE
  "in__subscribers"
  AND (
    CAST(CHARINDEX(SUBSTRING("bucket_md5_10f284", 1, 1), '0123456789abcdef') - 1 AS BIGINT) * 268435456 + CAST(CHARINDEX(SUBSTRING("bucket_md5_10f284", 2, 1), '0123456789abcdef') - 1 AS BIGINT) * 16777216 + CAST(CHARINDEX(SUBSTRING("bucket_md5_10f284", 3, 1), '0123456789abcdef') - 1 AS BIGINT) * 1048576 + CAST(CHARINDEX(SUBSTRING("bucket_md5_10f284", 4, 1), '0123456789abcdef') - 1 AS BIGINT) * 65536 + CAST(CHARINDEX(SUBSTRING("bucket_md5_10f284", 5, 1), '0123456789abcdef') - 1 AS BIGINT) * 4096 + CAST(CHARINDEX(SUBSTRING("bucket_md5_10f284", 6, 1), '0123456789abcdef') - 1 AS BIGINT) * 256 + CAST(CHARINDEX(SUBSTRING("bucket_md5_10f284", 7, 1), '0123456789abcdef') - 1 AS BIGINT) * 16 + CAST(CHARINDEX(SUBSTRING("bucket_md5_10f284", 8, 1), '0123456789abcdef') - 1 AS BIGINT)
  ) % 100 < 10;
