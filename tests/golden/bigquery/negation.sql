-- Golden SQL: segment negation of tests/golden/segments.segql, dialect bigquery,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH `segql_people` AS (
  SELECT
    `person_id` AS `person_id`,
    MAX(`country`) AS `p_country`,
    MAX(`status`) AS `p_status`
  FROM `people`
  WHERE
    NOT `person_id` IS NULL
  GROUP BY
    `person_id`
), `segql_stage_0` AS (
  SELECT
    `segql_people`.`person_id`,
    `segql_people`.`p_country`,
    `segql_people`.`p_status`
  FROM `segql_people`
)
SELECT
  'negation' AS `segment`,
  `person_id`
FROM `segql_stage_0`
WHERE
  NOT COALESCE(`p_status` = 'paid', FALSE) AND NOT `p_country` IN ('US', 'CA');
