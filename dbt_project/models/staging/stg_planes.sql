select
    tailnum,
    cast(year as integer) as year_built,
    type as aircraft_type,
    manufacturer,
    model,
    cast(engines as integer) as engine_count,
    cast(seats as integer) as seat_count,
    cast(speed as integer) as cruise_speed_mph,
    engine as engine_type
from {{ source('clean', 'planes') }}
