-- Golden SQL: segment text_tests of tests/golden/segments.segql, dialect trino,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH "segql_people" AS (
  SELECT
    "person_id" AS "person_id",
    MAX("email") AS "p_email"
  FROM "people"
  WHERE
    NOT "person_id" IS NULL
  GROUP BY
    "person_id"
), "segql_stage_0" AS (
  SELECT
    "segql_people"."person_id",
    "segql_people"."p_email"
  FROM "segql_people"
)
SELECT
  'text_tests' AS "segment",
  "person_id"
FROM "segql_stage_0"
WHERE
  STRPOS(LOWER("p_email"), LOWER('50%_off')) > 0
  AND SUBSTR(LOWER("p_email"), LENGTH(LOWER("p_email")) - (
    LENGTH(LOWER('.io')) - 1
  )) = LOWER('.io')
  AND REGEXP_LIKE("p_email", '^[a-z]+@');
