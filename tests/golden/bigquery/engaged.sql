-- Golden SQL: segment engaged of tests/golden/segments.segql, dialect bigquery,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH `segql_people` AS (
  SELECT
    `person_id` AS `person_id`
  FROM `people`
  WHERE
    NOT `person_id` IS NULL
  GROUP BY
    `person_id`
), `segql_rows_events` AS (
  SELECT
    `source_rows`.`person_id` AS `person_id`,
    `source_rows`.`occurred_at` AS `event_time`,
    `source_rows`.`event_type` AS `event_name`
  FROM `events` AS `source_rows`
  WHERE
    `source_rows`.`occurred_at` <= CAST('2026-03-15 12:00:00' AS DATETIME)
), `segql_aggs_events` AS (
  SELECT
    `person_id`,
    COUNT(*) AS `count__any__7day`
  FROM `segql_rows_events`
  WHERE
    `event_time` > DATE_SUB(CAST('2026-03-15 12:00:00' AS DATETIME), INTERVAL 7 DAY)
  GROUP BY
    `person_id`
), `segql_stage_0` AS (
  SELECT
    `segql_people`.`person_id`,
    COALESCE(`segql_aggs_events`.`count__any__7day`, 0) AS `count__any__7day`
  FROM `segql_people`
  LEFT JOIN `segql_aggs_events`
    ON `segql_aggs_events`.`person_id` = `segql_people`.`person_id`
)
SELECT
  'engaged' AS `segment`,
  `person_id`
FROM `segql_stage_0`
WHERE
  COALESCE(`count__any__7day` >= 20, FALSE);
