-- Business rule: a cancelled flight never departed, so it has no departure, no arrival delay, is
-- not diverted, and is never counted as delayed (is_delayed_15 NULL, not false).
-- Also: is_delayed_15 is exactly "arr_delay > 15", NULL when arr_delay is NULL.
select flight_id, is_cancelled, is_diverted, actual_departure_at, arr_delay, is_delayed_15
from {{ ref('fct_flights') }}
where {{ date_window_predicate('flight_date') }}
  and (
    (is_cancelled and (
        actual_departure_at is not null
        or arr_delay is not null
        or is_diverted
        or is_delayed_15 is not null
    ))
    or (is_delayed_15 is distinct from (arr_delay > 15))
  )
