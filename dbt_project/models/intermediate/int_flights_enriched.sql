-- Every flight with the weather at its origin in its scheduled departure hour and the plane that
-- flew it. Left joins: a flight without a weather row or a known plane is kept, with NULLs and a
-- false has_weather / has_plane. A view, so the date filter of an incremental run on fct_flights
-- reaches the scan of clean.flights.
select
    flights.flight_id,
    flights.flight_date,
    flights.carrier,
    flights.flight_number,
    flights.tailnum,
    flights.origin,
    flights.dest,
    flights.route,
    flights.scheduled_departure_at,
    flights.scheduled_hour_utc,
    flights.sched_dep_time,
    flights.sched_arr_time,
    flights.dep_time,
    flights.arr_time,
    flights.actual_departure_at,
    flights.dep_delay,
    flights.arr_delay,
    flights.air_time,
    flights.distance,
    flights.is_cancelled,
    flights.is_diverted,
    weather.origin is not null as has_weather,
    weather.temp_f,
    weather.dewpoint_f,
    weather.humidity_pct,
    weather.wind_dir_deg,
    weather.wind_speed_mph,
    weather.wind_gust_mph,
    weather.precip_in,
    weather.pressure_mb,
    weather.visibility_mi,
    planes.tailnum is not null as has_plane,
    planes.year_built as plane_year_built,
    year(flights.flight_date) - planes.year_built as plane_age_years,
    planes.aircraft_type as plane_aircraft_type,
    planes.manufacturer as plane_manufacturer,
    planes.model as plane_model,
    planes.engine_count as plane_engine_count,
    planes.seat_count as plane_seat_count,
    planes.engine_type as plane_engine_type,
    flights.source_channel,
    flights.batch_id,
    flights.updated_at
from {{ ref('stg_flights') }} as flights
left join {{ ref('stg_weather') }} as weather
    on weather.origin = flights.origin
    and weather.observed_hour_utc = flights.scheduled_hour_utc
left join {{ ref('stg_planes') }} as planes
    on planes.tailnum = flights.tailnum
