"""Layer 5's feature definitions: each flight's model inputs as they were known at its prediction time.

A prediction for a flight is made `lead` minutes before its scheduled departure (the setting
FLIGHTOPS_PREDICTION_LEAD_MINUTES, 0 to 1440). Every feature uses only facts known at that
moment, by these rules:

- the schedule (carrier, route, tail number, scheduled departure, distance) and the planes
  reference are known in advance;
- a departure and its delay are known from the moment the aircraft left, but never before the
  start of the flight's own scheduled day: a flight of a later day cannot reach an earlier day's
  features, even when it left a few minutes early across midnight;
- an arrival and its delay (the label) are known ARRIVAL_REPORT_MINUTES after departure plus air
  time (taxiing in and reporting); cumulative delay rates count only arrivals known by then;
- a weather observation is known from its observation hour: the latest one at or before the
  prediction time is used.

`build_features` is the one definition: the features asset runs it over the warehouse, the
leakage property test over synthetic flights, and the prediction service reads the rows it wrote
(the online snapshot), so training and serving cannot disagree. Running counts ("how many
departures before moment x") are window sums joined as of a moment (ASOF), so a day's build reads
the recent days and the label history once, never a pair of flights per flight.
"""

from __future__ import annotations

from datetime import date

import duckdb

MAX_LEAD_MINUTES = 1440
ARRIVAL_REPORT_MINUTES = 60  # after departure + air time, an arrival (and its delay) is known
RECENT_HOURS = 3  # the window of recent departures at the origin
# Departures of the RECENT_DAYS days before a build's first day are enough for every window above
# (the longest reaches back lead + RECENT_HOURS, at most 27 hours, or to the prediction's day start).
RECENT_DAYS = 3
DELAYED_DEPARTURE_MINUTES = 15  # a departure counts as delayed from this delay, as the label's arrival does

FEATURES_TEMP_TABLE = "_features"
# The final join of the as-of lookups builds this many target rows at a time: its hash tables are a
# slice's. The year's build, alone: 490-525 MB at the peak in slices of 100-120k rows against 678-690 in
# one (170k: 605), for 0.4 s more (2.85 against 2.45 s); the same rows.
FEATURE_SLICE_ROWS = 100_000


def check_lead(lead_minutes: int) -> int:
    """The lead if it is a whole number of minutes in [0, MAX_LEAD_MINUTES], else a ValueError saying so."""
    if isinstance(lead_minutes, bool) or not isinstance(lead_minutes, int) or not 0 <= lead_minutes <= MAX_LEAD_MINUTES:
        raise ValueError(
            f"Prediction lead {lead_minutes!r} is not a whole number of minutes between 0 and {MAX_LEAD_MINUTES} "
            "(24 hours); set FLIGHTOPS_PREDICTION_LEAD_MINUTES (.env or environment), e.g. 60."
        )
    return lead_minutes


def _running(name: str, keys: str, moment: str, where: str, measures: dict[str, str]) -> str:
    """A table of running totals per `keys` at each `moment` (facts up to and including it).

    Joined `ASOF ... ON keys AND x > moment`, it gives the totals of the facts strictly before x;
    the difference of two such joins counts a window [a, x).
    """
    sums = ", ".join(f"sum({alias}) OVER w AS {alias}" for alias in measures)
    per_moment = ", ".join(f"{expression} AS {alias}" for alias, expression in measures.items())
    return f"""
    CREATE OR REPLACE TEMP TABLE _running_{name} AS
    WITH per_moment AS (
        SELECT {keys}, {moment} AS known_at, {per_moment} FROM _known WHERE {moment} IS NOT NULL AND ({where}) GROUP BY ALL)
    SELECT {keys}, known_at, {sums} FROM per_moment
    WINDOW w AS (PARTITION BY {keys} ORDER BY known_at ROWS UNBOUNDED PRECEDING)
    """


_DEPARTURES = {
    "n": "count(*)",
    "delay_sum": "sum(dep_delay)",
    "delayed": f"count(*) FILTER (WHERE dep_delay > {DELAYED_DEPARTURE_MINUTES})",
}
_ARRIVALS = {"n": "count(*)", "delayed": "count(*) FILTER (WHERE is_delayed_15)"}
_RECENT = "departed_at >= CAST($first AS TIMESTAMP) - INTERVAL " + str(RECENT_DAYS) + " DAY"

_KNOWN = """
CREATE OR REPLACE TEMP TABLE _known AS
SELECT flight_id, flight_date, carrier, origin, route, tailnum, scheduled_departure_at, dep_delay,
       CASE WHEN actual_departure_at IS NOT NULL
            THEN greatest(actual_departure_at, CAST(flight_date AS TIMESTAMP)) END AS departed_at,
       actual_departure_at + to_minutes(CAST(round(air_time) AS BIGINT) + {arrival_minutes}) AS arrival_known_at,
       arr_delay, is_delayed_15
FROM {flights} WHERE flight_date <= $last
"""

# Only the columns read below: every as-of lookup sorts this table, so its width costs time.
_TARGETS = """
CREATE OR REPLACE TEMP TABLE _targets AS
SELECT flight_id, flight_date, carrier, origin, dest, route, tailnum, scheduled_departure_at, distance,
       plane_age_years, plane_seat_count,
       scheduled_departure_at - to_minutes($lead) AS prediction_at,
       scheduled_departure_at - to_minutes($lead) - INTERVAL {recent_hours} HOUR AS recent_from,
       date_trunc('day', scheduled_departure_at - to_minutes($lead)) AS prediction_day,
       CAST(date_trunc('day', scheduled_departure_at - to_minutes($lead)) AS DATE) AS prediction_date
FROM {flights} WHERE flight_date BETWEEN $first AND $last AND NOT is_cancelled
"""

# One row per aircraft and scheduled departure: two legs of one tail scheduled at the same minute
# (a data quirk) would make the as-of join's choice arbitrary; the one that left (else the lowest
# id) is the previous leg.
_LEGS = """
CREATE OR REPLACE TEMP TABLE _legs AS
SELECT * FROM _known
WHERE tailnum IS NOT NULL AND flight_date BETWEEN $first AND $last
QUALIFY row_number() OVER (PARTITION BY tailnum, scheduled_departure_at ORDER BY departed_at NULLS LAST, flight_id) = 1
"""

# One observation per airport and local hour: when clocks fall back, two observations share a
# local hour; their mean stands for it (an as-of join would otherwise pick either).
_OBSERVATIONS = """
CREATE OR REPLACE TEMP TABLE _observations AS
SELECT origin, observed_at, {means}
FROM {weather} WHERE observed_at < CAST($last AS TIMESTAMP) + INTERVAL 1 DAY GROUP BY origin, observed_at
"""
WEATHER_MEASURES = ("temp_f", "dewpoint_f", "humidity_pct", "wind_dir_deg", "wind_speed_mph", "wind_gust_mph",
                    "precip_in", "pressure_mb", "visibility_mi")

_SCHEDULED_IN_HOUR = """
CREATE OR REPLACE TEMP TABLE _scheduled_in_hour AS
SELECT origin, date_trunc('hour', scheduled_departure_at) AS hour, count(*) AS n
FROM _known WHERE flight_date BETWEEN $first AND $last GROUP BY ALL
"""

_FEATURES = """
SELECT t.flight_id, t.flight_date, t.prediction_at, CAST($lead AS INTEGER) AS prediction_lead_minutes,
       CAST(month(t.flight_date) AS INTEGER) AS month,
       CAST(isodow(t.flight_date) AS INTEGER) AS day_of_week,
       CAST(hour(t.scheduled_departure_at) AS INTEGER) AS dep_hour,
       CAST(hour(t.scheduled_departure_at) * 60 + minute(t.scheduled_departure_at) AS INTEGER) AS dep_minute_of_day,
       CAST(isodow(t.flight_date) >= 6 AS INTEGER) AS is_weekend,
       t.carrier, t.origin, t.dest, t.route,
       CAST(t.distance AS DOUBLE) AS distance,
       w.temp_f AS temp, w.dewpoint_f AS dewp, w.humidity_pct AS humid, w.wind_dir_deg AS wind_dir,
       w.wind_speed_mph AS wind_speed, w.wind_gust_mph AS wind_gust, w.precip_in AS precip,
       w.pressure_mb AS pressure, w.visibility_mi AS visib,
       CAST(t.plane_age_years AS DOUBLE) AS plane_age,
       CAST(t.plane_seat_count AS DOUBLE) AS plane_seats,
       CAST(coalesce(r.n, 0) AS INTEGER) AS route_prior_flights,
       r.delayed / r.n AS route_prior_delay_rate,
       CAST(coalesce(c.n, 0) AS INTEGER) AS carrier_prior_flights,
       c.delayed / c.n AS carrier_prior_delay_rate,
       CAST(coalesce(o_now.n, 0) - coalesce(o_then.n, 0) AS INTEGER) AS origin_recent_departures,
       (coalesce(o_now.delay_sum, 0) - coalesce(o_then.delay_sum, 0))
           / nullif(coalesce(o_now.n, 0) - coalesce(o_then.n, 0), 0) AS origin_recent_mean_dep_delay,
       (coalesce(o_now.delayed, 0) - coalesce(o_then.delayed, 0))
           / nullif(coalesce(o_now.n, 0) - coalesce(o_then.n, 0), 0) AS origin_recent_delayed_share,
       CAST(coalesce(s.n, 0) - coalesce(g.n, 0) AS INTEGER) AS origin_backlog,
       CAST(coalesce(h.n, 0) AS INTEGER) AS origin_flights_in_hour,
       CAST(coalesce(co_now.n, 0) - coalesce(co_then.n, 0) AS INTEGER) AS carrier_origin_departures_today,
       (coalesce(co_now.delayed, 0) - coalesce(co_then.delayed, 0))
           / nullif(coalesce(co_now.n, 0) - coalesce(co_then.n, 0), 0) AS carrier_origin_delayed_share_today,
       CAST(date_diff('minute', p.scheduled_departure_at, t.scheduled_departure_at) AS DOUBLE) AS tail_prev_gap_minutes,
       CASE WHEN p.departed_at < t.prediction_at THEN CAST(p.dep_delay AS DOUBLE) END AS tail_prev_dep_delay,
       CASE WHEN p.arrival_known_at < t.prediction_at THEN CAST(p.arr_delay AS DOUBLE) END AS tail_prev_arr_delay
FROM {targets} AS t
{as_of_joins}
LEFT JOIN _scheduled_in_hour AS h
    ON h.origin = t.origin AND h.hour = date_trunc('hour', t.scheduled_departure_at)
"""

# The as-of lookups of _FEATURES: (alias, relation, columns read, condition), each the relation's
# latest row matching the target flight `t`. One query chaining the ten ASOF joins held every
# join's state to its end (2 GB for a year); run one at a time, each into a narrow table by target
# row, then hash-joined, they take about a third of that memory and less time.
_AS_OF = (
    ("w", "_observations", WEATHER_MEASURES, "w.origin = t.origin AND t.prediction_at >= w.observed_at"),
    ("r", "_running_route", tuple(_ARRIVALS), "r.route = t.route AND t.prediction_at > r.known_at"),
    ("c", "_running_carrier", tuple(_ARRIVALS), "c.carrier = t.carrier AND t.prediction_at > c.known_at"),
    ("o_now", "_running_origin", tuple(_DEPARTURES), "o_now.origin = t.origin AND t.prediction_at > o_now.known_at"),
    ("o_then", "_running_origin", tuple(_DEPARTURES), "o_then.origin = t.origin AND t.recent_from > o_then.known_at"),
    ("s", "_running_scheduled", ("n",),
     "s.origin = t.origin AND s.flight_date = t.prediction_date AND t.prediction_at > s.known_at"),
    ("g", "_running_gone", ("n",), "g.origin = t.origin AND g.flight_date = t.prediction_date AND t.prediction_at > g.known_at"),
    ("co_now", "_running_carrier_origin", tuple(_DEPARTURES),
     "co_now.origin = t.origin AND co_now.carrier = t.carrier AND t.prediction_at > co_now.known_at"),
    ("co_then", "_running_carrier_origin", tuple(_DEPARTURES),
     "co_then.origin = t.origin AND co_then.carrier = t.carrier AND t.prediction_day > co_then.known_at"),
    ("p", "_legs", ("scheduled_departure_at", "departed_at", "dep_delay", "arrival_known_at", "arr_delay"),
     "p.tailnum = t.tailnum AND p.flight_date = t.flight_date AND t.scheduled_departure_at > p.scheduled_departure_at"),
)


def _lookups_dropping_their_relations() -> list[str]:
    """The as-of lookups in order, each relation dropped after the last lookup that reads it.

    The year's build, alone: 798 MB at the peak, against 829 when all of them were dropped after the last lookup.
    """
    statements = []
    for position, (alias, relation, *rest) in enumerate(_AS_OF):
        statements.append(_as_of(alias, relation, *rest))
        if all(later != relation for _, later, *_ in _AS_OF[position + 1:]):
            statements.append(f"DROP TABLE {relation}")
    return statements


def _as_of(alias: str, relation: str, columns: tuple[str, ...], condition: str) -> str:
    """Table _as_of_{alias}: per row of _targets (`target_row`, its rowid), the lookup's `columns` (NULL without a match)."""
    selected = ", ".join(f"{alias}.{column}" for column in columns)
    return f"""
    CREATE OR REPLACE TEMP TABLE _as_of_{alias} AS
    SELECT t.rowid AS target_row, {selected} FROM _targets AS t ASOF LEFT JOIN {relation} AS {alias} ON {condition}
    """


def build_features(
    con: duckdb.DuckDBPyConnection, *, flights: str, weather: str, first: date, last: date, lead_minutes: int
) -> str:
    """Create the temp table of the feature rows of flights dated first..last; returns its name.

    `flights` names a relation with the columns of the warehouse's marts.fct_flights that are
    read here, `weather` one with staging.stg_weather's (origin, observed_at and the measures).
    Cancelled flights get no row (nothing to predict once cancelled is known; counted by the
    asset). Rows depend only on facts known at each flight's prediction time, so rebuilding a
    day after later days were loaded gives the same rows.
    """
    lead = check_lead(lead_minutes)
    if first > last:
        raise ValueError(f"Feature build window {first}..{last} is empty: the first day is after the last.")
    parameters = {"first": first, "last": last, "lead": lead}
    statements = [
        _KNOWN.format(flights=flights, arrival_minutes=ARRIVAL_REPORT_MINUTES),
        _TARGETS.format(flights=flights, recent_hours=RECENT_HOURS),
        _running("route", "route", "arrival_known_at", "arr_delay IS NOT NULL", _ARRIVALS),
        _running("carrier", "carrier", "arrival_known_at", "arr_delay IS NOT NULL", _ARRIVALS),
        _running("origin", "origin", "departed_at", _RECENT, _DEPARTURES),
        _running("carrier_origin", "origin, carrier", "departed_at", _RECENT, _DEPARTURES),
        # The origin's backlog: flights of the prediction's day scheduled before prediction time
        # minus those of them that had left by then (a flight is gone once scheduled and departed).
        _running("scheduled", "origin, flight_date", "scheduled_departure_at",
                 f"flight_date >= $first - INTERVAL {RECENT_DAYS} DAY", {"n": "count(*)"}),
        _running("gone", "origin, flight_date", "CASE WHEN departed_at IS NOT NULL THEN greatest(scheduled_departure_at, departed_at) END",
                 f"flight_date >= $first - INTERVAL {RECENT_DAYS} DAY", {"n": "count(*)"}),
        _LEGS,
        _OBSERVATIONS.format(weather=weather, means=", ".join(f"avg({m}) AS {m}" for m in WEATHER_MEASURES)),
        _SCHEDULED_IN_HOUR,
        # Each temp table is dropped once read for the last time: the memory goes to the next query.
        "DROP TABLE _known",
        *_lookups_dropping_their_relations(),
    ]
    for statement in statements:
        con.execute(statement, {name: value for name, value in parameters.items() if f"${name}" in statement})
    (targets,) = con.execute("SELECT count(*) FROM _targets").fetchone()
    for start in range(0, max(targets, 1), FEATURE_SLICE_ROWS):
        con.execute(_feature_slice(start, start + FEATURE_SLICE_ROWS, first_slice=start == 0), {"lead": lead})
    for table in ("_targets", "_scheduled_in_hour", *(f"_as_of_{alias}" for alias, *_ in _AS_OF)):
        con.execute(f"DROP TABLE {table}")
    return FEATURES_TEMP_TABLE


def _feature_slice(start: int, stop: int, *, first_slice: bool) -> str:
    """The feature rows of the targets numbered [start, stop) (their rowid), into FEATURES_TEMP_TABLE
    (created by the first slice): each lookup's table is read for those rows only."""
    targets = f"(SELECT *, rowid AS target_row FROM _targets WHERE rowid >= {start} AND rowid < {stop})"
    as_of_joins = "\n".join(
        f"LEFT JOIN _as_of_{alias} AS {alias} ON {alias}.target_row = t.target_row "
        f"AND {alias}.target_row >= {start} AND {alias}.target_row < {stop}" for alias, *_ in _AS_OF)
    into = f"CREATE OR REPLACE TEMP TABLE {FEATURES_TEMP_TABLE} AS" if first_slice else f"INSERT INTO {FEATURES_TEMP_TABLE}"
    return f"{into} {_FEATURES.format(targets=targets, as_of_joins=as_of_joins)}"
