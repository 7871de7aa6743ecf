{{ config(tags=['monitoring'], meta={'dagster': {'ref': {'name': 'stg_monitoring_figures'}}}) }}
-- A figure in alert was judged against a threshold, and that threshold is stored with it: an
-- alert without one could not be explained months later.
select day, model_version, report, feature_group, slice, metric, value, status
from {{ ref('stg_monitoring_figures') }}
where status = 'alert'
  and threshold is null
