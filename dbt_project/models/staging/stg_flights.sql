-- One row per flight with analyst-facing names and timestamps. Local timestamps are New York time
-- (all origins are NYC airports); the UTC hour is the join key to weather.
select
    flight_id,
    flight_date,
    carrier,
    flight as flight_number,
    tailnum,
    origin,
    dest,
    origin || '-' || dest as route,
    flight_date + make_time(hour, minute, 0) as scheduled_departure_at,
    time_hour as scheduled_hour_utc,
    sched_dep_time,
    sched_arr_time,
    dep_time,
    arr_time,
    flight_date + make_time(hour, minute, 0) + to_minutes(cast(dep_delay as bigint)) as actual_departure_at,
    dep_delay,
    arr_delay,
    air_time,
    distance,
    is_cancelled,
    is_diverted,
    source_channel,
    updated_at,
    _batch_id as batch_id,
    _loaded_at as loaded_at
from {{ source('clean', 'flights') }}
