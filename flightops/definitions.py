"""The code location: every asset, check, job, sensor and resource of the platform.

Assets get every setting through the resources below, which read environment variables
(`EnvVar`) when a run starts; the defaults come from the repository's `.env`, loaded here
(without overriding the environment) so the code location needs nothing else, whoever starts it.
"""

from __future__ import annotations

# ruff: noqa: E402  (the environment is loaded before the imports that read it)
from flightops.process_memory import fix_mmap_threshold, freeze_loaded_objects
from flightops.settings import load_environment

# Before the imports below: MLflow reads its telemetry switch at import.
load_environment()
# Every process that runs steps loads this module: freed large buffers go back to the system.
fix_mmap_threshold()

import dagster as dg

from assets import groups
from assets.cleaning import clean_assets
from assets.features import flight_features
from assets.ingestion import raw_assets
from assets.models import model_assets
from assets.monitoring import REALIZED_PERFORMANCE, monitoring_assets
from assets.transform import dbt_daily_models, dbt_project, dbt_warehouse_models, monitoring_models
from flightops.jobs import daily_job, main_job, retraining_job
from flightops.monitoring.policy import MonitoringPolicy
from flightops.resources import (
    DbtResource,
    FeatureStoreResource,
    LandingZoneResource,
    MlflowResource,
    MonitoringResource,
    SourceDatabaseResource,
    WarehouseResource,
    WeatherApiResource,
)
from sensors.alerts import build_monitoring_lag_sensor, run_failure_alert_sensor
from sensors.corrections import opdb_corrections_sensor
from sensors.landing import landing_zone_sensor
from sensors.retraining import retraining_sensor


# The newest ingested day is the newest day of validated flights; monitoring should follow within a day.
CLEAN_FLIGHTS = dg.AssetKey(["clean", "flights"])

# Who answers for an asset (the UI's owner, Dagster's `team:` format): the team of its layer's group.
DATA_ENGINEERING = "team:data-engineering"
ML_ENGINEERING = "team:ml-engineering"
OWNERS = {
    groups.INGESTION: DATA_ENGINEERING,
    groups.VALIDATION: DATA_ENGINEERING,
    groups.TRANSFORM: DATA_ENGINEERING,
    groups.FEATURES: ML_ENGINEERING,
    groups.MODELS: ML_ENGINEERING,
    groups.DEPLOYMENT: ML_ENGINEERING,
    groups.MONITORING: ML_ENGINEERING,
}


def with_owner(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The spec owned by its group's team: owners are set once here, not on each asset.

    An asset that names its own owners keeps them; one in a group without a team gets none
    (tests/test_transform_metadata.py fails on it).
    """
    if spec.owners or spec.group_name not in OWNERS:
        return spec
    return spec.replace_attributes(owners=[OWNERS[spec.group_name]])


def resources() -> dict[str, dg.ConfigurableResource]:
    warehouse = WarehouseResource(
        path=dg.EnvVar("FLIGHTOPS_WAREHOUSE"),
        lock_timeout_seconds=dg.EnvVar.int("FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS"),
        memory_limit=dg.EnvVar("FLIGHTOPS_DUCKDB_MEMORY_LIMIT"),
    )
    return {
        "warehouse": warehouse,
        # The project's own MLflow handle, not dagster-mlflow's `mlflow_tracking` (which starts an MLflow
        # run, and may create the experiment, before the asset runs): one tracked run per model.
        "mlflow_store": MlflowResource(
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"),
            artifact_location=dg.EnvVar("FLIGHTOPS_MLFLOW_ARTIFACTS"),
            ui_url=dg.EnvVar("FLIGHTOPS_MLFLOW_UI_URL"),
        ),
        "feature_store": FeatureStoreResource(
            prediction_lead_minutes=dg.EnvVar.int("FLIGHTOPS_PREDICTION_LEAD_MINUTES"),
            data_dir=dg.EnvVar("FLIGHTOPS_DATA_DIR"),
            online_days=dg.EnvVar.int("FLIGHTOPS_ONLINE_FEATURE_DAYS"),
        ),
        "monitoring": MonitoringResource(
            data_dir=dg.EnvVar("FLIGHTOPS_DATA_DIR"),
            webhook_url=dg.EnvVar("FLIGHTOPS_ALERT_WEBHOOK_URL"),
        ),
        "source_db": SourceDatabaseResource(url=dg.EnvVar("FLIGHTOPS_SOURCE_DB_URL")),
        "landing_zone": LandingZoneResource(path=dg.EnvVar("FLIGHTOPS_LANDING_DIR")),
        "weather_api": WeatherApiResource(base_url=dg.EnvVar("FLIGHTOPS_WEATHER_API_URL")),
        "dbt": DbtResource(project_dir=str(dbt_project.project_dir), profiles_dir=str(dbt_project.profiles_dir),
                           data_dir=dg.EnvVar("FLIGHTOPS_DATA_DIR"), warehouse=warehouse),
        # Thresholds, windows, label delay, cool-down: defaults in flightops/monitoring/policy.py.
        "monitoring_policy": MonitoringPolicy(
            retrain_tuning_trials=dg.EnvVar.int("FLIGHTOPS_RETRAIN_TUNING_TRIALS")),
    }


defs = dg.Definitions(
    assets=dg.map_asset_specs(with_owner, [
        *raw_assets, *clean_assets, dbt_warehouse_models, dbt_daily_models, monitoring_models, flight_features,
        *model_assets, *monitoring_assets]),
    jobs=[main_job, daily_job, retraining_job],
    sensors=[landing_zone_sensor, opdb_corrections_sensor, retraining_sensor, run_failure_alert_sensor,
             build_monitoring_lag_sensor(ingested_key=CLEAN_FLIGHTS, monitored_key=REALIZED_PERFORMANCE)],
    resources=resources(),
)
# Loaded: what the code location holds lives as long as the process, so the collector can leave it alone.
freeze_loaded_objects()
