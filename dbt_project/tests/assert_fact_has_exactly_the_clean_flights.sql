{{ config(meta={'dagster': {'ref': {'name': 'fct_flights'}}}) }}
-- The fact table holds exactly the flights of clean.flights: none dropped by the weather and plane
-- joins, none left over after a flight is removed upstream (duplicates are caught by the unique
-- test on fct_flights.flight_id). Checked within the run's date window, or everywhere without one:
-- dates outside a window may legitimately lag until their own run.
with clean_flights as (
    select flight_id from {{ source('clean', 'flights') }}
    where {{ date_window_predicate('flight_date') }}
),

fact_flights as (
    select flight_id from {{ ref('fct_flights') }}
    where {{ date_window_predicate('flight_date') }}
)

select
    coalesce(clean_flights.flight_id, fact_flights.flight_id) as flight_id,
    case
        when fact_flights.flight_id is null then 'in clean.flights, missing from fct_flights'
        else 'in fct_flights, no longer in clean.flights'
    end as problem
from clean_flights
full outer join fact_flights
    on clean_flights.flight_id = fact_flights.flight_id
where clean_flights.flight_id is null
   or fact_flights.flight_id is null
