-- The aircraft reference. Flights whose tail number is missing here (mostly AA and MQ, which
-- report fleet numbers) keep has_plane false in fct_flights; they get no placeholder row.
select
    tailnum,
    year_built,
    aircraft_type,
    manufacturer,
    model,
    engine_count,
    seat_count,
    cruise_speed_mph,
    engine_type
from {{ ref('stg_planes') }}
