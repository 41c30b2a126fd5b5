-- Golden SQL: segment abandoned_checkout of tests/golden/segments.segql, dialect bigquery,
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
    AND `source_rows`.`event_type` IN ('cart_created', 'checkout_started', 'order_completed')
), `segql_seq_funnel_not__cart_created__checkout_sta_481a2a` AS (
  SELECT DISTINCT
    `a`.`person_id`
  FROM (
    SELECT DISTINCT
      `b`.`person_id`,
      `b`.`event_time`
    FROM `segql_rows_events` AS `b`
    INNER JOIN (
      SELECT DISTINCT
        `a`.`person_id`,
        `a`.`event_time`
      FROM `segql_rows_events` AS `a`
      WHERE
        `a`.`event_name` = 'cart_created'
        AND `a`.`event_time` > DATE_SUB(CAST('2026-03-15 12:00:00' AS DATETIME), INTERVAL 30 DAY)
    ) AS `a`
      ON `b`.`person_id` = `a`.`person_id`
      AND `b`.`event_time` > `a`.`event_time`
      AND `b`.`event_time` <= DATE_ADD(`a`.`event_time`, INTERVAL 1 HOUR)
    WHERE
      `b`.`event_name` = 'checkout_started'
  ) AS `a`
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM `segql_rows_events` AS `b`
      WHERE
        `b`.`person_id` = `a`.`person_id`
        AND `b`.`event_time` > `a`.`event_time`
        AND `b`.`event_time` <= DATE_ADD(`a`.`event_time`, INTERVAL 1 DAY)
        AND `b`.`event_name` = 'order_completed'
    )
    AND DATE_ADD(`a`.`event_time`, INTERVAL 1 DAY) <= CAST('2026-03-15 12:00:00' AS DATETIME)
), `segql_stage_0` AS (
  SELECT
    `segql_people`.`person_id`,
    NOT `segql_seq_funnel_not__cart_created__checkout_sta_481a2a`.`person_id` IS NULL AS `funnel_not__cart_created__checkout_sta_481a2a`
  FROM `segql_people`
  LEFT JOIN `segql_seq_funnel_not__cart_created__checkout_sta_481a2a`
    ON `segql_seq_funnel_not__cart_created__checkout_sta_481a2a`.`person_id` = `segql_people`.`person_id`
)
SELECT
  'abandoned_checkout' AS `segment`,
  `person_id`
FROM `segql_stage_0`
WHERE
  `funnel_not__cart_created__checkout_sta_481a2a`;
