select
    faa as airport_code,
    name as airport_name,
    cast(lat as double) as latitude,
    cast(lon as double) as longitude,
    cast(alt as integer) as altitude_ft,
    cast(tz as double) as utc_offset_hours,
    dst as dst_rule,
    tzone as time_zone
from {{ source('clean', 'airports') }}
