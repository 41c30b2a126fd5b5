-- Golden SQL: segment rfm_champions of tests/golden/segments.segql, dialect bigquery,
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
    MAX(`event_time`) AS `agg_1`,
    SUM(`c_amount`) AS `agg_2`
  FROM `segql_rows_events`
  WHERE
    `event_name` = 'purchase'
  GROUP BY
    `person_id`
), `segql_stage_0` AS (
  SELECT
    `segql_people`.`person_id`,
    `segql_aggs_events`.`agg_1` AS `agg_1`,
    COALESCE(`segql_aggs_events`.`agg_2`, 0) AS `agg_2`
  FROM `segql_people`
  LEFT JOIN `segql_aggs_events`
    ON `segql_aggs_events`.`person_id` = `segql_people`.`person_id`
), `segql_edges_2` AS (
  SELECT
    PERCENTILE_CONT(0.2) WITHIN GROUP (ORDER BY
      `agg_2` NULLS LAST) AS `edge_2_1`,
    PERCENTILE_CONT(0.4) WITHIN GROUP (ORDER BY
      `agg_2` NULLS LAST) AS `edge_2_2`,
    PERCENTILE_CONT(0.6) WITHIN GROUP (ORDER BY
      `agg_2` NULLS LAST) AS `edge_2_3`,
    PERCENTILE_CONT(0.8) WITHIN GROUP (ORDER BY
      `agg_2` NULLS LAST) AS `edge_2_4`
  FROM `segql_stage_0`
), `segql_stage_1` AS (
  SELECT
    *,
    -CAST(FLOOR(
      (
        UNIX_MICROS(TIMESTAMP(CAST('2026-03-15 12:00:00' AS DATETIME))) / 1000000 - UNIX_MICROS(TIMESTAMP(`agg_1`)) / 1000000
      ) / 86400
    ) AS INT64) AS `rank_input_1`,
    CASE
      WHEN `agg_2` IS NULL
      THEN NULL
      ELSE 1 + CASE WHEN `segql_edges_2`.`edge_2_1` < `agg_2` THEN 1 ELSE 0 END + CASE WHEN `segql_edges_2`.`edge_2_2` < `agg_2` THEN 1 ELSE 0 END + CASE WHEN `segql_edges_2`.`edge_2_3` < `agg_2` THEN 1 ELSE 0 END + CASE WHEN `segql_edges_2`.`edge_2_4` < `agg_2` THEN 1 ELSE 0 END
    END AS `rank_2`
  FROM `segql_stage_0`
  CROSS JOIN `segql_edges_2`
), `segql_stage_2` AS (
  SELECT
    *,
    CASE
      WHEN `rank_input_1` IS NULL
      THEN NULL
      ELSE CAST(CEIL(
        CAST(5 * COUNT(`rank_input_1`) OVER (ORDER BY `rank_input_1`) AS FLOAT64) / COUNT(`rank_input_1`) OVER ()
      ) AS INT64)
    END AS `rank_1`
  FROM `segql_stage_1`
)
SELECT
  'rfm_champions' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `rank_1` >= 4 AND `rank_2` = 5;
