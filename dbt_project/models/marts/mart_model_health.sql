-- Model health per monitored day and model version: the key figures over all flights (slice 'all')
-- side by side, the figures in alert that day, and whether that day's figures triggered a retraining.
-- One row per day: small, so rebuilt whole on every run (a table, like every mart).
{{ config(tags=['monitoring']) }}

with figures as (
    select * from {{ ref('stg_monitoring_figures') }}
    where slice = 'all'
),

retraining_days as (
    select distinct trigger_day
    from {{ ref('stg_monitoring_retrain_decisions') }}
    where trigger_day is not null
),

health as (
    select
        day,
        model_version,

        min(window_start) filter (where report = 'feature_drift') as drift_window_start,
        max(window_end) filter (where report = 'feature_drift') as drift_window_end,
        max(value) filter (where report = 'feature_drift' and feature_group = 'stable' and metric = 'weighted_drifted_share')
            as stable_features_weighted_drifted_share,
        max(value) filter (where report = 'feature_drift' and feature_group = 'stable' and metric = 'drifted_share')
            as stable_features_drifted_share,
        max(value) filter (where report = 'feature_drift' and feature_group = 'calendar' and metric = 'drifted_share')
            as calendar_features_drifted_share,
        max(value) filter (where report = 'feature_drift' and feature_group = 'weather' and metric = 'drifted_share')
            as weather_features_drifted_share,
        max(value) filter (where report = 'feature_drift' and feature_group = 'cumulative' and metric = 'drifted_share')
            as cumulative_features_drifted_share,
        max(value) filter (where report = 'feature_drift' and feature_group = 'operations' and metric = 'drifted_share')
            as operations_features_drifted_share,

        max(value) filter (where report = 'prediction_health' and metric = 'estimated_roc_auc') as estimated_roc_auc,
        max(value) filter (where report = 'prediction_health' and metric = 'estimated_roc_auc_drop') as estimated_roc_auc_drop,
        max(value) filter (where report = 'prediction_health' and metric = 'estimated_log_loss') as estimated_log_loss,
        max(value) filter (where report = 'prediction_health' and metric = 'mean_probability') as mean_predicted_probability,
        cast(max(value) filter (where report = 'prediction_health' and metric = 'flights') as integer) as scored_flights,
        max(value) filter (where report = 'prediction_health' and metric = 'flights_weekday_norm') as weekday_median_flights,
        max(value) filter (where report = 'prediction_health' and metric = 'flights_vs_weekday_norm')
            as flights_vs_weekday_median,

        min(window_start) filter (where report = 'realized_performance') as realized_window_start,
        max(window_end) filter (where report = 'realized_performance') as realized_window_end,
        cast(max(value) filter (where report = 'realized_performance' and metric = 'rows') as integer)
            as realized_labelled_flights,
        max(value) filter (where report = 'realized_performance' and metric = 'base_rate') as realized_delay_rate,
        max(value) filter (where report = 'realized_performance' and metric = 'roc_auc') as realized_roc_auc,
        max(value) filter (where report = 'realized_performance' and metric = 'log_loss') as realized_log_loss,
        max(value) filter (where report = 'realized_performance' and metric = 'brier') as realized_brier_score,
        max(value) filter (where report = 'realized_performance' and metric = 'ece')
            as realized_expected_calibration_error,
        max(value) filter (where report = 'realized_performance' and metric = 'calibration_gap') as realized_calibration_gap,
        max(value) filter (where report = 'realized_performance' and metric = 'log_loss_rise') as realized_log_loss_rise,
        max(value) filter (where report = 'realized_performance' and metric = 'roc_auc_drop') as realized_roc_auc_drop,
        cast(max(value) filter (where report = 'realized_performance' and metric = 'days_past_log_loss_threshold') as integer)
            as realized_days_past_log_loss_threshold,

        count(*) filter (where status = 'alert') as alert_count,
        coalesce(string_agg(report || '.' || metric, ', ' order by report, metric) filter (where status = 'alert'), '')
            as alerts
    from figures
    group by day, model_version
)

select
    health.*,
    retraining_days.trigger_day is not null as retrained_on_day
from health
left join retraining_days
    on health.day = retraining_days.trigger_day
