"""Layer 5, features: one row per flight as known at its prediction time, label kept apart.

The feature definitions are flightops/feature_engineering.py (SQL run here over the warehouse):
every value is known `prediction_lead_minutes` before the scheduled departure, so adding or
correcting later facts never changes an earlier flight's features. The same rows go to the
online store (flightops/online_features.py) the prediction service reads, for its serving window
of recent days. Cancelled flights
are excluded (counted in metadata); diverted flights have features but no label (arrival
delay unknown).
"""


import dagster as dg
from dagster_dbt import get_asset_key_for_model

from assets import groups
from assets.transform import dbt_daily_models, dbt_warehouse_models
from flightops.feature_engineering import build_features
from flightops.online_features import write_days
from flightops.partitions import DAILY, SINGLE_RUN, day_range
from flightops.resources import FeatureStoreResource, WarehouseResource
from flightops.warehouse_connections import DUCKDB_POOL

GROUP = groups.FEATURES
FEATURES = dg.AssetKey(["features", "flight_features"])
LABELS = dg.AssetKey(["features", "flight_labels"])
ONLINE = dg.AssetKey(["features", "online_flight_features"])
FACT = get_asset_key_for_model([dbt_daily_models], "fct_flights")
WEATHER = get_asset_key_for_model([dbt_warehouse_models], "stg_weather")
FEATURES_TABLE = "features.flight_features"

@dg.multi_asset(
    specs=[
        dg.AssetSpec(FEATURES, deps=[FACT, WEATHER], group_name=GROUP, kinds={"duckdb"},
                     description=f"Model inputs, one row per non-cancelled flight, as known at its prediction time "
                     f"({FEATURES_TABLE}; definitions in flightops/feature_engineering.py)."),
        dg.AssetSpec(LABELS, deps=[FACT], group_name=GROUP, kinds={"duckdb"},
                     description="Label per flight with a known arrival: fct_flights.is_delayed_15 "
                     "(arrival delay > 15 min, defined once in the warehouse)."),
        dg.AssetSpec(ONLINE, deps=[FEATURES], group_name=GROUP, kinds={"sqlite"},
                     description="The online store: the same rows by flight id, for the prediction service's "
                     "POST /predict/flight (data/online/flight_features.sqlite), for the flights of its newest "
                     "FLIGHTOPS_ONLINE_FEATURE_DAYS days."),
    ],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    pool=DUCKDB_POOL,
)
def flight_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    feature_store: FeatureStoreResource):
    first, last = day_range(context)
    window = {"first": first, "last": last}
    with warehouse.connect() as con:
        built = build_features(con, flights=f"marts.{FACT.path[-1]}", weather=f"staging.{WEATHER.path[-1]}",
                               first=first, last=last, lead_minutes=feature_store.lead_minutes)
        con.execute("CREATE SCHEMA IF NOT EXISTS features")
        rebuilt = _replace_if_definition_changed(con, built)
        if rebuilt:
            context.log.warning(
                f"{FEATURES_TABLE} was built by another feature definition (columns differ); it now holds only "
                f"{first}..{last}. Rematerialize features/flight_features for the other days before training."
            )
        con.execute(f"CREATE TABLE IF NOT EXISTS {FEATURES_TABLE} AS SELECT * FROM {built} LIMIT 0")
        con.execute(
            "CREATE TABLE IF NOT EXISTS features.flight_labels "
            "(flight_id VARCHAR, flight_date DATE, arr_delay DOUBLE, is_delayed BOOLEAN)"
        )
        con.execute("BEGIN TRANSACTION")
        for table in (FEATURES_TABLE, "features.flight_labels"):
            con.execute(f"DELETE FROM {table} WHERE flight_date BETWEEN $first AND $last", window)
        con.execute(f"INSERT INTO {FEATURES_TABLE} BY NAME SELECT * FROM {built}")
        con.execute(
            "INSERT INTO features.flight_labels SELECT flight_id, flight_date, arr_delay, is_delayed_15 "
            "FROM marts.fct_flights WHERE arr_delay IS NOT NULL AND flight_date BETWEEN $first AND $last",
            window,
        )
        con.execute("COMMIT")
        online = write_days(feature_store.online_file, con, FEATURES_TABLE, first, last, feature_store.online_days)
        flights, cancelled, features, labels, positives = con.execute(
            f"""
            SELECT (SELECT count(*) FROM marts.fct_flights WHERE flight_date BETWEEN $first AND $last),
                   (SELECT count(*) FROM marts.fct_flights WHERE flight_date BETWEEN $first AND $last AND is_cancelled),
                   (SELECT count(*) FROM {built}),
                   (SELECT count(*) FROM features.flight_labels WHERE flight_date BETWEEN $first AND $last),
                   (SELECT count(*) FROM features.flight_labels WHERE flight_date BETWEEN $first AND $last AND is_delayed)
            """,
            window,
        ).fetchone()
    yield dg.MaterializeResult(
        asset_key=FEATURES,
        metadata={"flights": flights, "rows": features, "cancelled_excluded": cancelled,
                  "without_label": features - labels, "prediction_lead_minutes": feature_store.lead_minutes,
                  "rebuilt_for_new_definition": rebuilt, "first_day": first.isoformat(), "last_day": last.isoformat()},
    )
    yield dg.MaterializeResult(
        asset_key=LABELS,
        metadata={"rows": labels, "delayed": positives, "delayed_share": round(positives / labels, 4) if labels else 0.0},
    )
    yield dg.MaterializeResult(
        asset_key=ONLINE,
        metadata={"rows": online.rows, "oldest_day": str(online.oldest_day), "newest_day": str(online.newest_day),
                  "keeps_days": feature_store.online_days, "path": dg.MetadataValue.path(str(feature_store.online_file))},
    )


def _replace_if_definition_changed(con, built: str) -> bool:
    """Drop the features table when its columns are not the build's (a new feature definition); True if dropped."""
    def columns(relation: str) -> list[tuple[str, str]]:
        return [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {relation}").fetchall()]

    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'features' AND table_name = 'flight_features'"
    ).fetchone()[0]
    if exists and columns(FEATURES_TABLE) != columns(built):
        con.execute(f"DROP TABLE {FEATURES_TABLE}")
        return True
    return False
