-- Golden SQL: segment top_spenders of tests/golden/segments.segql, dialect bigquery,
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
    `source_rows`.`event_type` AS `event_name`,
    CASE
      WHEN `source_rows`.`amount` = CAST('NaN' AS FLOAT64)
      THEN NULL
      ELSE `source_rows`.`amount`
    END AS `c_amount`
  FROM `events` AS `source_rows`
  WHERE
    `source_rows`.`occurred_at` <= CAST('2026-03-15 12:00:00' AS DATETIME)
    AND `source_rows`.`event_type` IN ('purchase')
), `segql_aggs_events` AS (
  SELECT
    `person_id`,
    SUM(`c_amount`) AS `sum__purchase__amount`
  FROM `segql_rows_events`
  WHERE
    `event_name` = 'purchase'
  GROUP BY
    `person_id`
), `segql_stage_0` AS (
  SELECT
    `segql_people`.`person_id`,
    COALESCE(`segql_aggs_events`.`sum__purchase__amount`, 0) AS `sum__purchase__amount`
  FROM `segql_people`
  LEFT JOIN `segql_aggs_events`
    ON `segql_aggs_events`.`person_id` = `segql_people`.`person_id`
), `segql_stat_quantile_2f1d90` AS (
  SELECT
    PERCENTILE_CONT(0.8) WITHIN GROUP (ORDER BY
      CAST(`sum__purchase__amount` AS FLOAT64) NULLS LAST) AS `value__quantile_2f1d90`
  FROM `segql_stage_0`
), `segql_stage_1` AS (
  SELECT
    *,
    `segql_stat_quantile_2f1d90`.`value__quantile_2f1d90` AS `quantile_2f1d90`
  FROM `segql_stage_0`
  CROSS JOIN `segql_stat_quantile_2f1d90`
)
SELECT
  'top_spenders' AS `segment`,
  `person_id`
FROM `segql_stage_1`
WHERE
  `sum__purchase__amount` >= `quantile_2f1d90`;
