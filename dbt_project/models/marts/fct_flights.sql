-- One row per flight. With vars start_date/end_date it replaces exactly the flights of that
-- window (delete by date, then insert: idempotent, and flights removed upstream disappear);
-- without them it rebuilds every date (a full refresh: macros/date_window.sql).
{{ config(
    materialized='incremental',
    incremental_strategy='replace_where',
    meta={'date_window_column': 'flight_date'},
    on_schema_change='fail',
    tags=['daily'],
) }}

select
    flight_id,
    flight_date,
    carrier,
    flight_number,
    tailnum,
    origin,
    dest,
    route,
    scheduled_departure_at,
    scheduled_hour_utc,
    sched_dep_time,
    sched_arr_time,
    dep_time,
    arr_time,
    actual_departure_at,
    dep_delay,
    arr_delay,
    air_time,
    distance,
    is_cancelled,
    is_diverted,
    arr_delay > 15 as is_delayed_15,
    has_weather,
    temp_f,
    dewpoint_f,
    humidity_pct,
    wind_dir_deg,
    wind_speed_mph,
    wind_gust_mph,
    precip_in,
    pressure_mb,
    visibility_mi,
    has_plane,
    plane_year_built,
    plane_age_years,
    plane_aircraft_type,
    plane_manufacturer,
    plane_model,
    plane_engine_count,
    plane_seat_count,
    plane_engine_type,
    source_channel,
    batch_id,
    updated_at
from {{ ref('int_flights_enriched') }}
{% if is_incremental() %}
where {{ date_window_predicate('flight_date') }}
{% endif %}
