-- Golden SQL: segment loyal_payers of tests/golden/segments.segql, dialect spark,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH `segql_people` AS (
  SELECT
    `person_id` AS `person_id`
  FROM `people`
  WHERE
    NOT `person_id` IS NULL
  GROUP BY
    `person_id`
), `segql_recorded` AS (
  SELECT
    `segment`,
    `person_id`,
    `change`,
    `as_of`,
    `commit_seq`
  FROM `segql`.`segql_history`
  WHERE
    `segment` IN ('high_ltv', 'loyal_payers', 'subscribers')
    AND `as_of` < CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
    AND `run_id` IN (
      SELECT
        `run_id`
      FROM `segql`.`segql_runs`
      WHERE
        `status` = 'committed'
    )
), `segql_hist_member_for__subscribers__30day` AS (
  SELECT
    `person_id`
  FROM `segql_recorded`
  WHERE
    `segment` = 'subscribers'
  GROUP BY
    `person_id`
  HAVING
    MAX(CASE WHEN `change` = 'enter' THEN `commit_seq` END) > COALESCE(MAX(CASE WHEN `change` = 'exit' THEN `commit_seq` END), -1)
    AND MAX(CASE WHEN `change` = 'enter' THEN `as_of` END) <= TIMESTAMPADD(DAY, -30, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
), `segql_hist_entered__high_ltv__7day` AS (
  SELECT DISTINCT
    `person_id`
  FROM `segql_recorded`
  WHERE
    `segment` = 'high_ltv'
    AND `change` = 'enter'
    AND `as_of` > TIMESTAMPADD(DAY, -7, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
), `segql_hist_exited__loyal_payers__1day` AS (
  SELECT DISTINCT
    `person_id`
  FROM `segql_recorded`
  WHERE
    `segment` = 'loyal_payers'
    AND `change` = 'exit'
    AND `as_of` > TIMESTAMPADD(DAY, -1, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
), `segql_hist_ever__loyal_payers` AS (
  SELECT DISTINCT
    `person_id`
  FROM `segql_recorded`
  WHERE
    `segment` = 'loyal_payers' AND `change` = 'enter'
), `segql_stage_0` AS (
  SELECT
    `segql_people`.`person_id`,
    NOT `segql_hist_member_for__subscribers__30day`.`person_id` IS NULL AS `member_for__subscribers__30day`,
    NOT `segql_hist_entered__high_ltv__7day`.`person_id` IS NULL AS `entered__high_ltv__7day`,
    NOT `segql_hist_exited__loyal_payers__1day`.`person_id` IS NULL AS `exited__loyal_payers__1day`,
    NOT `segql_hist_ever__loyal_payers`.`person_id` IS NULL AS `ever__loyal_payers`
  FROM `segql_people`
  LEFT JOIN `segql_hist_member_for__subscribers__30day`
    ON `segql_hist_member_for__subscribers__30day`.`person_id` = CAST(`segql_people`.`person_id` AS STRING)
  LEFT JOIN `segql_hist_entered__high_ltv__7day`
    ON `segql_hist_entered__high_ltv__7day`.`person_id` = CAST(`segql_people`.`person_id` AS STRING)
  LEFT JOIN `segql_hist_exited__loyal_payers__1day`
    ON `segql_hist_exited__loyal_payers__1day`.`person_id` = CAST(`segql_people`.`person_id` AS STRING)
  LEFT JOIN `segql_hist_ever__loyal_payers`
    ON `segql_hist_ever__loyal_payers`.`person_id` = CAST(`segql_people`.`person_id` AS STRING)
)
SELECT
  'loyal_payers' AS `segment`,
  `person_id`
FROM `segql_stage_0`
WHERE
  `member_for__subscribers__30day`
  OR `entered__high_ltv__7day`
  OR `exited__loyal_payers__1day`
  OR `ever__loyal_payers`;
