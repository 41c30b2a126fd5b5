-- Golden SQL: every segment in one query of tests/golden/segments.segql, dialect spark,
-- as of 2026-03-15 12:00:00. Rewrite: pytest tests/test_golden.py --update-golden
WITH `segql_people` AS (
  SELECT
    `person_id` AS `person_id`,
    MAX(`country`) AS `p_country`,
    MAX(`email`) AS `p_email`,
    MAX(`signup_at`) AS `p_signup_at`,
    MAX(`status`) AS `p_status`
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
      WHEN `source_rows`.`amount` = CAST('NaN' AS DOUBLE)
      THEN NULL
      ELSE `source_rows`.`amount`
    END AS `c_amount`,
    `source_rows`.`url` AS `c_url`,
    `source_rows`.`properties` AS `properties`,
    `segql_people`.`p_country` AS `person_country`
  FROM `events` AS `source_rows`
  INNER JOIN `segql_people`
    ON `segql_people`.`person_id` = `source_rows`.`person_id`
  WHERE
    `source_rows`.`occurred_at` <= CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
), `segql_aggs_events` AS (
  SELECT
    `person_id`,
    COUNT(*) FILTER(WHERE
      `event_name` = 'video_rendered'
      AND `event_time` > TIMESTAMPADD(DAY, -30, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))) AS `count__video_rendered__30day`,
    SUM(`c_amount`) FILTER(WHERE
      `event_name` = 'purchase') AS `sum__purchase__amount`,
    COUNT(*) FILTER(WHERE
      CASE
        WHEN `event_name` = 'purchase'
        AND `event_time` > TIMESTAMPADD(YEAR, -1, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
        THEN FROM_JSON(`properties`, 'struct<`currency`: string>').`currency` = 'USD'
        AND `c_amount` > 10
      END) AS `count__purchase__1year_96bb71`,
    COUNT(*) FILTER(WHERE
      CASE WHEN `event_name` = 'purchase' THEN `person_country` = 'FR' END) AS `count__purchase_fce180`,
    COUNT(*) FILTER(WHERE
      `event_name` = 'login'
      AND (
        `event_time` > TIMESTAMPADD(DAY, -90, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
        AND `event_time` <= TIMESTAMPADD(DAY, -30, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
      )) AS `count__login_614455`,
    COUNT(*) FILTER(WHERE
      `event_name` = 'login'
      AND (
        `event_time` >= CAST('2026-01-01 00:00:00' AS TIMESTAMP_NTZ)
        AND `event_time` < CAST('2026-02-01 00:00:00' AS TIMESTAMP_NTZ)
      )) AS `count__login_bee0a5`,
    MAX(`event_time`) FILTER(WHERE
      `event_name` = 'purchase') AS `last_time__purchase`,
    COUNT(*) FILTER(WHERE
      `event_time` > TIMESTAMPADD(DAY, -7, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))) AS `count__any__7day`,
    COUNT(*) FILTER(WHERE
      `event_name` = 'purchase'
      AND `event_time` > TIMESTAMPADD(DAY, -90, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))) AS `count__purchase__90day`,
    COUNT(*) FILTER(WHERE
      `event_name` = 'login'
      AND (
        DATE_TRUNC('WEEK', `event_time`) >= DATE_TRUNC('WEEK', TIMESTAMPADD(DAY, -14, (
          CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
        )))
        AND DATE_TRUNC('WEEK', `event_time`) < DATE_TRUNC('WEEK', CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
      )) AS `count__login__prev2_week_34beb5`
  FROM `segql_rows_events`
  WHERE
    (
      `event_name` = 'video_rendered'
      AND `event_time` > TIMESTAMPADD(DAY, -30, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
    )
    OR `event_name` = 'purchase'
    OR (
      `event_name` = 'login'
      AND `event_time` > TIMESTAMPADD(DAY, -90, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
    )
    OR (
      `event_name` = 'login'
      AND (
        `event_time` >= CAST('2026-01-01 00:00:00' AS TIMESTAMP_NTZ)
        AND `event_time` < CAST('2026-02-01 00:00:00' AS TIMESTAMP_NTZ)
      )
    )
    OR `event_time` > TIMESTAMPADD(DAY, -7, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
  GROUP BY
    `person_id`
), `segql_distinct_active_days__any__30day` AS (
  SELECT
    `person_id`,
    COUNT(DISTINCT CAST(`event_time` AS DATE)) AS `active_days__any__30day`
  FROM `segql_rows_events`
  WHERE
    `event_time` > TIMESTAMPADD(DAY, -30, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
  GROUP BY
    `person_id`
), `segql_distinct_active_weeks__any` AS (
  SELECT
    `person_id`,
    COUNT(DISTINCT DATE_TRUNC('WEEK', `event_time`)) AS `active_weeks__any`
  FROM `segql_rows_events`
  GROUP BY
    `person_id`
), `segql_streak_streak__quiz_completed__day` AS (
  SELECT
    `person_id`,
    CAST(CASE
      WHEN MAX(`segql_period`) = DATE_TRUNC('DAY', CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
      OR MAX(`segql_period`) = DATE_TRUNC('DAY', TIMESTAMPADD(DAY, -1, (
        CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
      )))
      THEN SUM(CASE WHEN `segql_run` = 1 THEN 1 ELSE 0 END)
      ELSE 0
    END AS BIGINT) AS `streak__quiz_completed__day`
  FROM (
    SELECT
      `person_id`,
      `segql_period`,
      SUM(CASE WHEN `segql_newer` = TIMESTAMPADD(DAY, 1, `segql_period`) THEN 0 ELSE 1 END) OVER (
        PARTITION BY `person_id`
        ORDER BY `segql_period` DESC
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS `segql_run`
    FROM (
      SELECT
        `person_id`,
        `segql_period`,
        LAG(`segql_period`) OVER (PARTITION BY `person_id` ORDER BY `segql_period` DESC) AS `segql_newer`
      FROM (
        SELECT DISTINCT
          `person_id`,
          DATE_TRUNC('DAY', `event_time`) AS `segql_period`
        FROM `segql_rows_events`
        WHERE
          `event_name` = 'quiz_completed'
      ) AS `segql_periods`
    ) AS `segql_flagged`
  ) AS `segql_runs`
  GROUP BY
    `person_id`
), `segql_last_count__quiz_completed__last100_4ae0da` AS (
  SELECT
    `ranked`.`person_id`,
    COUNT(*) AS `count__quiz_completed__last100_4ae0da`
  FROM (
    SELECT
      *,
      RANK() OVER (PARTITION BY `person_id` ORDER BY `event_time` DESC) AS `segql_rank`
    FROM `segql_rows_events`
    WHERE
      `event_name` = 'quiz_completed'
  ) AS `ranked`
  WHERE
    `ranked`.`segql_rank` <= 100 AND `ranked`.`c_url` = 'aws'
  GROUP BY
    `ranked`.`person_id`
), `segql_last_count__quiz_completed__last100` AS (
  SELECT
    `ranked`.`person_id`,
    COUNT(*) AS `count__quiz_completed__last100`
  FROM (
    SELECT
      *,
      RANK() OVER (PARTITION BY `person_id` ORDER BY `event_time` DESC) AS `segql_rank`
    FROM `segql_rows_events`
    WHERE
      `event_name` = 'quiz_completed'
  ) AS `ranked`
  WHERE
    `ranked`.`segql_rank` <= 100
  GROUP BY
    `ranked`.`person_id`
), `segql_rows_subscriptions` AS (
  SELECT
    `source_rows`.`person_id` AS `person_id`,
    `source_rows`.`created_at` AS `event_time`,
    `source_rows`.`status` AS `c_status`
  FROM `subscriptions` AS `source_rows`
  WHERE
    `source_rows`.`created_at` <= CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
), `segql_aggs_subscriptions` AS (
  SELECT
    `person_id`,
    COUNT(*) FILTER(WHERE
      `c_status` = 'active') AS `count__subscriptions_7d658b`
  FROM `segql_rows_subscriptions`
  GROUP BY
    `person_id`
), `segql_seq_did__trial_started__then__purchase__wi_79225c` AS (
  SELECT DISTINCT
    `a`.`person_id`
  FROM (
    SELECT DISTINCT
      `a`.`person_id`,
      `a`.`event_time`
    FROM `segql_rows_events` AS `a`
    WHERE
      `a`.`event_name` = 'trial_started'
  ) AS `a`
  WHERE
    EXISTS(
      SELECT
        1
      FROM `segql_rows_events` AS `b`
      WHERE
        `b`.`person_id` = `a`.`person_id`
        AND `b`.`event_time` > `a`.`event_time`
        AND `b`.`event_time` <= TIMESTAMPADD(DAY, 7, `a`.`event_time`)
        AND `b`.`event_name` = 'purchase'
    )
), `segql_seq_did_not__cart__then__order__within__1d_8049b6` AS (
  SELECT DISTINCT
    `a`.`person_id`
  FROM (
    SELECT DISTINCT
      `a`.`person_id`,
      `a`.`event_time`
    FROM `segql_rows_events` AS `a`
    WHERE
      `a`.`event_name` = 'cart'
      AND `a`.`event_time` > TIMESTAMPADD(DAY, -30, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
  ) AS `a`
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM `segql_rows_events` AS `b`
      WHERE
        `b`.`person_id` = `a`.`person_id`
        AND `b`.`event_time` > `a`.`event_time`
        AND `b`.`event_time` <= TIMESTAMPADD(DAY, 1, `a`.`event_time`)
        AND `b`.`event_name` = 'order'
    )
    AND TIMESTAMPADD(DAY, 1, `a`.`event_time`) <= CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
), `segql_seq_funnel__signup__trial_started__purchas_85f691` AS (
  SELECT DISTINCT
    `a`.`person_id`
  FROM (
    SELECT DISTINCT
      `b`.`person_id`,
      `b`.`event_time`
    FROM `segql_rows_events` AS `b`
    INNER JOIN (
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
          `a`.`event_name` = 'signup'
      ) AS `a`
        ON `b`.`person_id` = `a`.`person_id`
        AND `b`.`event_time` > `a`.`event_time`
        AND `b`.`event_time` <= TIMESTAMPADD(DAY, 7, `a`.`event_time`)
      WHERE
        `b`.`event_name` = 'trial_started'
    ) AS `a`
      ON `b`.`person_id` = `a`.`person_id`
      AND `b`.`event_time` > `a`.`event_time`
      AND `b`.`event_time` <= TIMESTAMPADD(DAY, 14, `a`.`event_time`)
    WHERE
      `b`.`event_name` = 'purchase'
  ) AS `a`
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
        AND `a`.`event_time` > TIMESTAMPADD(DAY, -30, CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
    ) AS `a`
      ON `b`.`person_id` = `a`.`person_id`
      AND `b`.`event_time` > `a`.`event_time`
      AND `b`.`event_time` <= TIMESTAMPADD(HOUR, 1, `a`.`event_time`)
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
        AND `b`.`event_time` <= TIMESTAMPADD(DAY, 1, `a`.`event_time`)
        AND `b`.`event_name` = 'order_completed'
    )
    AND TIMESTAMPADD(DAY, 1, `a`.`event_time`) <= CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
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
    `segql_people`.`p_country`,
    `segql_people`.`p_email`,
    `segql_people`.`p_signup_at`,
    `segql_people`.`p_status`,
    COALESCE(`segql_aggs_events`.`count__video_rendered__30day`, 0) AS `count__video_rendered__30day`,
    COALESCE(`segql_aggs_events`.`sum__purchase__amount`, 0) AS `sum__purchase__amount`,
    COALESCE(`segql_aggs_events`.`count__purchase__1year_96bb71`, 0) AS `count__purchase__1year_96bb71`,
    COALESCE(`segql_aggs_events`.`count__purchase_fce180`, 0) AS `count__purchase_fce180`,
    COALESCE(`segql_aggs_events`.`count__login_614455`, 0) AS `count__login_614455`,
    COALESCE(`segql_aggs_events`.`count__login_bee0a5`, 0) AS `count__login_bee0a5`,
    COALESCE(`segql_distinct_active_days__any__30day`.`active_days__any__30day`, 0) AS `active_days__any__30day`,
    COALESCE(`segql_distinct_active_weeks__any`.`active_weeks__any`, 0) AS `active_weeks__any`,
    `segql_aggs_events`.`last_time__purchase` AS `last_time__purchase`,
    COALESCE(`segql_aggs_events`.`count__any__7day`, 0) AS `count__any__7day`,
    COALESCE(`segql_aggs_events`.`count__purchase__90day`, 0) AS `count__purchase__90day`,
    COALESCE(`segql_aggs_events`.`count__login__prev2_week_34beb5`, 0) AS `count__login__prev2_week_34beb5`,
    COALESCE(`segql_streak_streak__quiz_completed__day`.`streak__quiz_completed__day`, 0) AS `streak__quiz_completed__day`,
    COALESCE(
      `segql_last_count__quiz_completed__last100_4ae0da`.`count__quiz_completed__last100_4ae0da`,
      0
    ) AS `count__quiz_completed__last100_4ae0da`,
    COALESCE(`segql_last_count__quiz_completed__last100`.`count__quiz_completed__last100`, 0) AS `count__quiz_completed__last100`,
    COALESCE(`segql_aggs_subscriptions`.`count__subscriptions_7d658b`, 0) AS `count__subscriptions_7d658b`,
    NOT `segql_seq_did__trial_started__then__purchase__wi_79225c`.`person_id` IS NULL AS `did__trial_started__then__purchase__wi_79225c`,
    NOT `segql_seq_did_not__cart__then__order__within__1d_8049b6`.`person_id` IS NULL AS `did_not__cart__then__order__within__1d_8049b6`,
    NOT `segql_seq_funnel__signup__trial_started__purchas_85f691`.`person_id` IS NULL AS `funnel__signup__trial_started__purchas_85f691`,
    NOT `segql_seq_funnel_not__cart_created__checkout_sta_481a2a`.`person_id` IS NULL AS `funnel_not__cart_created__checkout_sta_481a2a`,
    NOT `segql_hist_member_for__subscribers__30day`.`person_id` IS NULL AS `member_for__subscribers__30day`,
    NOT `segql_hist_entered__high_ltv__7day`.`person_id` IS NULL AS `entered__high_ltv__7day`,
    NOT `segql_hist_exited__loyal_payers__1day`.`person_id` IS NULL AS `exited__loyal_payers__1day`,
    NOT `segql_hist_ever__loyal_payers`.`person_id` IS NULL AS `ever__loyal_payers`
  FROM `segql_people`
  LEFT JOIN `segql_aggs_events`
    ON `segql_aggs_events`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_distinct_active_days__any__30day`
    ON `segql_distinct_active_days__any__30day`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_distinct_active_weeks__any`
    ON `segql_distinct_active_weeks__any`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_streak_streak__quiz_completed__day`
    ON `segql_streak_streak__quiz_completed__day`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_last_count__quiz_completed__last100_4ae0da`
    ON `segql_last_count__quiz_completed__last100_4ae0da`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_last_count__quiz_completed__last100`
    ON `segql_last_count__quiz_completed__last100`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_aggs_subscriptions`
    ON `segql_aggs_subscriptions`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_seq_did__trial_started__then__purchase__wi_79225c`
    ON `segql_seq_did__trial_started__then__purchase__wi_79225c`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_seq_did_not__cart__then__order__within__1d_8049b6`
    ON `segql_seq_did_not__cart__then__order__within__1d_8049b6`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_seq_funnel__signup__trial_started__purchas_85f691`
    ON `segql_seq_funnel__signup__trial_started__purchas_85f691`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_seq_funnel_not__cart_created__checkout_sta_481a2a`
    ON `segql_seq_funnel_not__cart_created__checkout_sta_481a2a`.`person_id` = `segql_people`.`person_id`
  LEFT JOIN `segql_hist_member_for__subscribers__30day`
    ON `segql_hist_member_for__subscribers__30day`.`person_id` = CAST(`segql_people`.`person_id` AS STRING)
  LEFT JOIN `segql_hist_entered__high_ltv__7day`
    ON `segql_hist_entered__high_ltv__7day`.`person_id` = CAST(`segql_people`.`person_id` AS STRING)
  LEFT JOIN `segql_hist_exited__loyal_payers__1day`
    ON `segql_hist_exited__loyal_payers__1day`.`person_id` = CAST(`segql_people`.`person_id` AS STRING)
  LEFT JOIN `segql_hist_ever__loyal_payers`
    ON `segql_hist_ever__loyal_payers`.`person_id` = CAST(`segql_people`.`person_id` AS STRING)
), `segql_edges_qcut_5_5e3360` AS (
  SELECT
    PERCENTILE_CONT(0.2) WITHIN GROUP (ORDER BY
      `sum__purchase__amount` NULLS LAST) AS `edge_1__qcut_5_5e3360`,
    PERCENTILE_CONT(0.4) WITHIN GROUP (ORDER BY
      `sum__purchase__amount` NULLS LAST) AS `edge_2__qcut_5_5e3360`,
    PERCENTILE_CONT(0.6) WITHIN GROUP (ORDER BY
      `sum__purchase__amount` NULLS LAST) AS `edge_3__qcut_5_5e3360`,
    PERCENTILE_CONT(0.8) WITHIN GROUP (ORDER BY
      `sum__purchase__amount` NULLS LAST) AS `edge_4__qcut_5_5e3360`
  FROM `segql_stage_0`
), `segql_stat_quantile_2f1d90` AS (
  SELECT
    PERCENTILE_CONT(0.8) WITHIN GROUP (ORDER BY
      CAST(`sum__purchase__amount` AS DOUBLE) NULLS LAST) AS `value__quantile_2f1d90`
  FROM `segql_stage_0`
), `segql_stat_population_avg_90c9af` AS (
  SELECT
    AVG(CAST(`count__purchase__90day` AS DOUBLE)) AS `value__population_avg_90c9af`
  FROM `segql_stage_0`
), `segql_stat_median_1418d1` AS (
  SELECT
    PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY
      CAST(`sum__purchase__amount` AS DOUBLE) NULLS LAST) AS `value__median_1418d1`
  FROM `segql_stage_0`
), `segql_stage_1` AS (
  SELECT
    *,
    COALESCE(`count__video_rendered__30day` >= 10 AND `p_status` = 'paid', FALSE) AS `in__power_users`,
    -CAST(FLOOR(
      (
        TIMESTAMPDIFF(
          MICROSECOND,
          CAST('1970-01-01 00:00:00' AS TIMESTAMP_NTZ),
          CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
        ) / 1000000.0 - TIMESTAMPDIFF(MICROSECOND, CAST('1970-01-01 00:00:00' AS TIMESTAMP_NTZ), `last_time__purchase`) / 1000000.0
      ) / 86400
    ) AS BIGINT) AS `input__ntile_5_233de2`,
    CASE
      WHEN `sum__purchase__amount` IS NULL
      THEN NULL
      ELSE 1 + CASE
        WHEN `segql_edges_qcut_5_5e3360`.`edge_1__qcut_5_5e3360` < `sum__purchase__amount`
        THEN 1
        ELSE 0
      END + CASE
        WHEN `segql_edges_qcut_5_5e3360`.`edge_2__qcut_5_5e3360` < `sum__purchase__amount`
        THEN 1
        ELSE 0
      END + CASE
        WHEN `segql_edges_qcut_5_5e3360`.`edge_3__qcut_5_5e3360` < `sum__purchase__amount`
        THEN 1
        ELSE 0
      END + CASE
        WHEN `segql_edges_qcut_5_5e3360`.`edge_4__qcut_5_5e3360` < `sum__purchase__amount`
        THEN 1
        ELSE 0
      END
    END AS `qcut_5_5e3360`,
    COALESCE(`count__subscriptions_7d658b` >= 1, FALSE) AS `in__subscribers`,
    LOWER(MD5(CONCAT('spring_promo:', CAST(`person_id` AS STRING)))) AS `bucket_md5_10f284`,
    `segql_stat_quantile_2f1d90`.`value__quantile_2f1d90` AS `quantile_2f1d90`,
    `segql_stat_population_avg_90c9af`.`value__population_avg_90c9af` AS `population_avg_90c9af`,
    CASE
      WHEN `sum__purchase__amount` >= 1000
      THEN 'gold'
      WHEN `sum__purchase__amount` >= 250
      THEN 'silver'
      ELSE 'bronze'
    END AS `trait__tier`,
    `segql_stat_median_1418d1`.`value__median_1418d1` AS `median_1418d1`
  FROM `segql_stage_0`
  CROSS JOIN `segql_edges_qcut_5_5e3360`
  CROSS JOIN `segql_stat_quantile_2f1d90`
  CROSS JOIN `segql_stat_population_avg_90c9af`
  CROSS JOIN `segql_stat_median_1418d1`
), `segql_stage_2` AS (
  SELECT
    *,
    CASE
      WHEN `input__ntile_5_233de2` IS NULL
      THEN NULL
      ELSE CAST(CEIL(
        CAST(5 * COUNT(`input__ntile_5_233de2`) OVER (ORDER BY `input__ntile_5_233de2`) AS DOUBLE) / COUNT(`input__ntile_5_233de2`) OVER ()
      ) AS BIGINT)
    END AS `ntile_5_233de2`,
    COALESCE(
      `in__subscribers`
      AND (
        CAST(LOCATE(SUBSTRING(`bucket_md5_10f284`, 1, 1), '0123456789abcdef') - 1 AS BIGINT) * 268435456 + CAST(LOCATE(SUBSTRING(`bucket_md5_10f284`, 2, 1), '0123456789abcdef') - 1 AS BIGINT) * 16777216 + CAST(LOCATE(SUBSTRING(`bucket_md5_10f284`, 3, 1), '0123456789abcdef') - 1 AS BIGINT) * 1048576 + CAST(LOCATE(SUBSTRING(`bucket_md5_10f284`, 4, 1), '0123456789abcdef') - 1 AS BIGINT) * 65536 + CAST(LOCATE(SUBSTRING(`bucket_md5_10f284`, 5, 1), '0123456789abcdef') - 1 AS BIGINT) * 4096 + CAST(LOCATE(SUBSTRING(`bucket_md5_10f284`, 6, 1), '0123456789abcdef') - 1 AS BIGINT) * 256 + CAST(LOCATE(SUBSTRING(`bucket_md5_10f284`, 7, 1), '0123456789abcdef') - 1 AS BIGINT) * 16 + CAST(LOCATE(SUBSTRING(`bucket_md5_10f284`, 8, 1), '0123456789abcdef') - 1 AS BIGINT)
      ) % 100 < 10,
      FALSE
    ) AS `in__promo_holdout`
  FROM `segql_stage_1`
)
SELECT
  'power_users' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `in__power_users`
UNION ALL
SELECT
  'high_ltv' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `sum__purchase__amount` >= 500 AND NOT `in__power_users`
UNION ALL
SELECT
  'negation' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  NOT COALESCE(`p_status` = 'paid', FALSE) AND NOT `p_country` IN ('US', 'CA')
UNION ALL
SELECT
  'text_tests' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  LOCATE(LOWER('50%_off'), LOWER(`p_email`)) > 0
  AND RIGHT(LOWER(`p_email`), LENGTH(LOWER('.io'))) = LOWER('.io')
  AND `p_email` RLIKE '^[a-z]+@'
UNION ALL
SELECT
  'json_filter' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `count__purchase__1year_96bb71` >= 1
UNION ALL
SELECT
  'person_in_filter' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `count__purchase_fce180` >= 2
UNION ALL
SELECT
  'windows' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `count__login_614455` >= 1 AND `count__login_bee0a5` >= 1
UNION ALL
SELECT
  'activity' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `active_days__any__30day` >= 5 AND `active_weeks__any` >= 2
UNION ALL
SELECT
  'converted' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `did__trial_started__then__purchase__wi_79225c`
UNION ALL
SELECT
  'stalled' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `did_not__cart__then__order__within__1d_8049b6`
UNION ALL
SELECT
  'subscribers' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `in__subscribers`
UNION ALL
SELECT
  'rfm_champions' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `ntile_5_233de2` >= 4 AND `qcut_5_5e3360` = 5
UNION ALL
SELECT
  'engaged' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  COALESCE(`count__any__7day` >= 20, FALSE)
UNION ALL
SELECT
  'promo_holdout' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `in__promo_holdout`
UNION ALL
SELECT
  'promo_send' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `in__subscribers` AND NOT `in__promo_holdout`
UNION ALL
SELECT
  'top_spenders' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `sum__purchase__amount` >= `quantile_2f1d90`
UNION ALL
SELECT
  'above_average' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `count__purchase__90day` > 2 * `population_avg_90c9af`
UNION ALL
SELECT
  'gold_tier' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `trait__tier` = 'gold' AND `sum__purchase__amount` > `median_1418d1`
UNION ALL
SELECT
  'loyal_payers' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `member_for__subscribers__30day`
  OR `entered__high_ltv__7day`
  OR `exited__loyal_payers__1day`
  OR `ever__loyal_payers`
UNION ALL
SELECT
  'funnel_3' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `funnel__signup__trial_started__purchas_85f691`
UNION ALL
SELECT
  'abandoned_checkout' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `funnel_not__cart_created__checkout_sta_481a2a`
UNION ALL
SELECT
  'joined_this_month' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  (
    DATE_TRUNC('MONTH', `p_signup_at`) = DATE_TRUNC('MONTH', CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ))
    AND `p_signup_at` <= CAST('2026-03-15 12:00:00' AS TIMESTAMP_NTZ)
  )
  AND `count__login__prev2_week_34beb5` >= 1
UNION ALL
SELECT
  'seven_day_streak' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  `streak__quiz_completed__day` >= 7
UNION ALL
SELECT
  'aws_focus' AS `segment`,
  `person_id`
FROM `segql_stage_2`
WHERE
  CAST(`count__quiz_completed__last100_4ae0da` AS DOUBLE) / NULLIF(`count__quiz_completed__last100`, 0) > 0.6;
