-- Golden SQL: segment activity of tests/golden/segments.segql, dialect bigquery,
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
), `segql_distinct_active_days__any__30day` AS (
  SELECT
    `person_id`,
    COUNT(DISTINCT CAST(`event_time` AS DATE)) AS `active_days__any__30day`
  FROM `segql_rows_events`
  WHERE
    `event_time` > DATE_SUB(CAST('2026-03-15 12:00:00' AS DATETIME), INTERVAL 30 DAY)
  GROUP BY
    `person_id`
), `segql_distinct_active_weeks__any` AS (
  SELECT
    `person_id`,
    COUNT(DISTINCT TIMESTAMP_TRUNC(`event_time`, ISOWEEK)) AS `active_weeks__any`
  FROM `segql_rows_events`
  GROUP BY
    `person_id`
), `segql_stage_0` AS (
  SELECT
    `segql_people`.`person_id`,
    COALESCE(`segql_distinct_active_days__any__30day`.`active_days__any__30day`, 0) AS `active_days__any__30day`,
    COALESCE(`segql_distinct_active_weeks__any`.`active_weeks__any`, 0) AS `active_weeks__any`
  FROM `segql_people`
  LEFT JOIN `segql_distinct_active_days__any__30day`
    ON `segql_distinct_active_days__any__30day`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_distinct_active_weeks__any`
    ON `segql_distinct_active_weeks__any`.`person_id` = `segql_people`.`person_id`
)
SELECT
  'activity' AS `segment`,
  `person_id`
FROM `segql_stage_0`
WHERE
  `active_days__any__30day` >= 5 AND `active_weeks__any` >= 2;
