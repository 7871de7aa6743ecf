{{ config(meta={'dagster': {'ref': {'name': 'mart_daily_delays'}}}) }}
-- The daily mart's counts equal the fact table's counts for the same date x carrier x origin,
-- and neither has a key the other lacks (within the run's date window, or everywhere).
with fact as (
    select
        flight_date,
        carrier,
        origin,
        count(*) as flights,
        count(*) filter (where is_cancelled) as cancelled,
        count(*) filter (where is_diverted) as diverted,
        count(*) filter (where is_delayed_15) as delayed_15
    from {{ ref('fct_flights') }}
    where {{ date_window_predicate('flight_date') }}
    group by flight_date, carrier, origin
),

mart as (
    select flight_date, carrier, origin, flights, cancelled, diverted, delayed_15
    from {{ ref('mart_daily_delays') }}
    where {{ date_window_predicate('flight_date') }}
)

select
    coalesce(fact.flight_date, mart.flight_date) as flight_date,
    coalesce(fact.carrier, mart.carrier) as carrier,
    coalesce(fact.origin, mart.origin) as origin,
    fact.flights as fact_flights,
    mart.flights as mart_flights,
    fact.cancelled as fact_cancelled,
    mart.cancelled as mart_cancelled,
    fact.diverted as fact_diverted,
    mart.diverted as mart_diverted,
    fact.delayed_15 as fact_delayed_15,
    mart.delayed_15 as mart_delayed_15
from fact
full outer join mart
    on fact.flight_date = mart.flight_date
    and fact.carrier = mart.carrier
    and fact.origin = mart.origin
where fact.flights is distinct from mart.flights
   or fact.cancelled is distinct from mart.cancelled
   or fact.diverted is distinct from mart.diverted
   or fact.delayed_15 is distinct from mart.delayed_15
