-- Every airport of the FAA reference, plus one row for each airport that flights use but the
-- reference lacks (BQN, SJU, STT, PSE in 2013: Puerto Rico and the US Virgin Islands), with
-- is_in_reference false and NULL attributes. So every flight's origin and dest has a row here.
-- Tagged daily because its rows depend on the flights loaded so far.
{{ config(tags=['daily']) }}

with reference as (
    select * from {{ ref('stg_airports') }}
),

flight_airports as (
    select origin as airport_code from {{ ref('stg_flights') }}
    union
    select dest as airport_code from {{ ref('stg_flights') }}
)

select
    airport_code,
    airport_name,
    latitude,
    longitude,
    altitude_ft,
    utc_offset_hours,
    dst_rule,
    time_zone,
    true as is_in_reference
from reference

union all

select
    flight_airports.airport_code,
    null as airport_name,
    null as latitude,
    null as longitude,
    null as altitude_ft,
    null as utc_offset_hours,
    null as dst_rule,
    null as time_zone,
    false as is_in_reference
from flight_airports
anti join reference
    on reference.airport_code = flight_airports.airport_code
