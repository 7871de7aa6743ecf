select
    carrier,
    name as carrier_name
from {{ source('clean', 'airlines') }}
