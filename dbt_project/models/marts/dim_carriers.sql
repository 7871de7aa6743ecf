select
    carrier,
    carrier_name
from {{ ref('stg_carriers') }}
