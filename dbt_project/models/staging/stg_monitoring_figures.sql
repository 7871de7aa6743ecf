-- One row per monitoring figure: day, model version, report, feature group, slice, metric
-- (the grain is tested), with the method and threshold that judged it and the verdict.
{{ config(tags=['monitoring']) }}

select
    day,
    model_version,
    report,
    window_start,
    window_end,
    feature_group,
    slice,
    metric,
    method,
    threshold,
    value,
    status,
    computed_at
from {{ source('monitoring', 'figures') }}
