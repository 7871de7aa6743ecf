"""Layer 5, features: one row per flight, point-in-time correct, label kept apart.

Historical delay rates of a flight's route and carrier use only flights of earlier
dates (an as-of join on cumulative daily counts), so adding later days never changes
an earlier flight's features. Cancelled flights are excluded (counted in metadata);
diverted flights have features but no label (arrival delay unknown).
"""


import dagster as dg
from dagster_dbt import get_asset_key_for_model

from assets import groups
from assets.transform import dbt_daily_models
from flightops.partitions import DAILY, SINGLE_RUN, day_range
from flightops.resources import WarehouseResource
from flightops.warehouse_connections import DUCKDB_POOL

GROUP = groups.FEATURES
FEATURES = dg.AssetKey(["features", "flight_features"])
LABELS = dg.AssetKey(["features", "flight_labels"])
FACT = get_asset_key_for_model([dbt_daily_models], "fct_flights")

_HISTORY = """
CREATE OR REPLACE TEMP TABLE _history_{name} AS
WITH daily AS (
    SELECT {key} AS k, flight_date AS d, count(*) AS n, count(*) FILTER (WHERE is_delayed) AS delayed
    FROM _labelled WHERE flight_date < $last GROUP BY ALL)
SELECT k, d, sum(n) OVER w AS n, sum(delayed) OVER w AS delayed
FROM daily WINDOW w AS (PARTITION BY k ORDER BY d ROWS UNBOUNDED PRECEDING)
"""

_FEATURES = """
CREATE OR REPLACE TEMP TABLE _features AS
SELECT f.flight_id, f.flight_date,
       CAST(month(f.flight_date) AS INTEGER) AS month,
       CAST(isodow(f.flight_date) AS INTEGER) AS day_of_week,
       CAST(hour(f.scheduled_departure_at) AS INTEGER) AS dep_hour,
       CAST(hour(f.scheduled_departure_at) * 60 + minute(f.scheduled_departure_at) AS INTEGER) AS dep_minute_of_day,
       CAST(isodow(f.flight_date) >= 6 AS INTEGER) AS is_weekend,
       f.carrier, f.origin, f.dest, f.route,
       CAST(f.distance AS DOUBLE) AS distance,
       f.temp_f AS temp, f.dewpoint_f AS dewp, f.humidity_pct AS humid, f.wind_dir_deg AS wind_dir,
       f.wind_speed_mph AS wind_speed, f.wind_gust_mph AS wind_gust, f.precip_in AS precip,
       f.pressure_mb AS pressure, f.visibility_mi AS visib,
       CAST(f.plane_age_years AS DOUBLE) AS plane_age,
       CAST(f.plane_seat_count AS DOUBLE) AS plane_seats,
       CAST(coalesce(r.n, 0) AS INTEGER) AS route_prior_flights,
       r.delayed / r.n AS route_prior_delay_rate,
       CAST(coalesce(c.n, 0) AS INTEGER) AS carrier_prior_flights,
       c.delayed / c.n AS carrier_prior_delay_rate
FROM (SELECT * FROM marts.fct_flights WHERE flight_date BETWEEN $first AND $last AND NOT is_cancelled) AS f
ASOF LEFT JOIN _history_route AS r ON f.route = r.k AND f.flight_date > r.d
ASOF LEFT JOIN _history_carrier AS c ON f.carrier = c.k AND f.flight_date > c.d
"""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(FEATURES, deps=[FACT], group_name=GROUP, kinds={"duckdb"},
                     description="Model inputs, one row per non-cancelled flight (features.flight_features)."),
        dg.AssetSpec(LABELS, deps=[FACT], group_name=GROUP, kinds={"duckdb"},
                     description="Label per flight with a known arrival: fct_flights.is_delayed_15 "
                     "(arrival delay > 15 min, defined once in the warehouse)."),
    ],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    pool=DUCKDB_POOL,
)
def flight_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    first, last = day_range(context)
    window = {"first": first, "last": last}
    with warehouse.connect() as con:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _labelled AS SELECT flight_id, flight_date, carrier, route, arr_delay, "
            "is_delayed_15 AS is_delayed FROM marts.fct_flights "
            "WHERE arr_delay IS NOT NULL AND flight_date <= $last",
            {"last": last},
        )
        for name, key in (("route", "route"), ("carrier", "carrier")):
            con.execute(_HISTORY.format(name=name, key=key), {"last": last})
        con.execute(_FEATURES, window)
        con.execute("CREATE SCHEMA IF NOT EXISTS features")
        con.execute("CREATE TABLE IF NOT EXISTS features.flight_features AS SELECT * FROM _features LIMIT 0")
        con.execute(
            "CREATE TABLE IF NOT EXISTS features.flight_labels "
            "(flight_id VARCHAR, flight_date DATE, arr_delay DOUBLE, is_delayed BOOLEAN)"
        )
        con.execute("BEGIN TRANSACTION")
        for table in ("flight_features", "flight_labels"):
            con.execute(f"DELETE FROM features.{table} WHERE flight_date BETWEEN $first AND $last", window)
        con.execute("INSERT INTO features.flight_features BY NAME SELECT * FROM _features")
        con.execute(
            "INSERT INTO features.flight_labels SELECT flight_id, flight_date, arr_delay, is_delayed "
            "FROM _labelled WHERE flight_date BETWEEN $first AND $last",
            window,
        )
        con.execute("COMMIT")
        flights, cancelled, features, labels, positives = con.execute(
            """
            SELECT (SELECT count(*) FROM marts.fct_flights WHERE flight_date BETWEEN $first AND $last),
                   (SELECT count(*) FROM marts.fct_flights WHERE flight_date BETWEEN $first AND $last AND is_cancelled),
                   (SELECT count(*) FROM _features),
                   (SELECT count(*) FROM features.flight_labels WHERE flight_date BETWEEN $first AND $last),
                   (SELECT count(*) FROM features.flight_labels WHERE flight_date BETWEEN $first AND $last AND is_delayed)
            """,
            window,
        ).fetchone()
    yield dg.MaterializeResult(
        asset_key=FEATURES,
        metadata={"flights": flights, "rows": features, "cancelled_excluded": cancelled,
                  "without_label": features - labels, "first_day": first.isoformat(), "last_day": last.isoformat()},
    )
    yield dg.MaterializeResult(
        asset_key=LABELS,
        metadata={"rows": labels, "delayed": positives, "delayed_share": round(positives / labels, 4) if labels else 0.0},
    )
