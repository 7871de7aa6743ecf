"""The code location: every asset, check, job, sensor and resource of the platform.

Resources read their settings from environment variables (`EnvVar`) when a run
starts; defaults come from the repository's `.env`, which `dagster dev` loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from assets.cleaning import clean_assets
from assets.features import flight_features
from assets.ingestion import raw_assets
from assets.models import model_assets
from assets.warehouse import dbt_project, warehouse_daily_models, warehouse_models
from flightops.jobs import daily_job, main_job
from flightops.resources import LandingZoneResource, SourceDatabaseResource, WarehouseResource, WeatherApiResource
from sensors.landing import landing_zone_sensor


def resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(
            path=dg.EnvVar("FLIGHTOPS_WAREHOUSE"),
            lock_timeout_seconds=dg.EnvVar.int("FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS"),
        ),
        "source_db": SourceDatabaseResource(url=dg.EnvVar("FLIGHTOPS_SOURCE_DB_URL")),
        "landing_zone": LandingZoneResource(path=dg.EnvVar("FLIGHTOPS_LANDING_DIR")),
        "weather_api": WeatherApiResource(base_url=dg.EnvVar("FLIGHTOPS_WEATHER_API_URL")),
        # The dbt installed beside this interpreter: the venv need not be on PATH.
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt")),
    }


defs = dg.Definitions(
    assets=[*raw_assets, *clean_assets, warehouse_models, warehouse_daily_models, flight_features, *model_assets],
    jobs=[main_job, daily_job],
    sensors=[landing_zone_sensor],
    resources=resources(),
)
