-- Delay figures per local date x carrier x origin airport: the analysts' daily mart.
-- Same date-window behaviour as fct_flights, which it is computed from.
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    meta={'date_window_column': 'flight_date'},
    on_schema_change='fail',
    tags=['daily'],
) }}

select
    flight_date,
    carrier,
    origin,
    count(*) as flights,
    count(*) filter (where is_cancelled) as cancelled,
    count(*) filter (where is_diverted) as diverted,
    count(arr_delay) as arrived,
    count(*) filter (where is_delayed_15) as delayed_15,
    count(*) filter (where is_delayed_15) / nullif(count(arr_delay), 0) as share_delayed_15,
    avg(arr_delay) as avg_arr_delay,
    median(arr_delay) as median_arr_delay,
    quantile_cont(arr_delay, 0.9) as p90_arr_delay,
    avg(dep_delay) as avg_dep_delay
from {{ ref('fct_flights') }}
{% if is_incremental() %}
where {{ date_window_predicate('flight_date') }}
{% endif %}
group by flight_date, carrier, origin
