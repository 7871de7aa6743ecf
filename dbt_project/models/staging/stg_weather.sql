-- One row per airport and UTC hour, with units in the column names.
select
    origin,
    time_hour as observed_hour_utc,
    obs_date + make_time(hour, 0, 0) as observed_at,
    obs_date,
    temp as temp_f,
    dewp as dewpoint_f,
    humid as humidity_pct,
    wind_dir as wind_dir_deg,
    wind_speed as wind_speed_mph,
    wind_gust as wind_gust_mph,
    precip as precip_in,
    pressure as pressure_mb,
    visib as visibility_mi,
    updated_at,
    _batch_id as batch_id,
    _loaded_at as loaded_at
from {{ source('clean', 'weather') }}
