"""Layer 4, transform: the dbt project in dbt_project/, run by dagster-dbt, in the warehouse file.

Every dbt model is an asset keyed `<schema>/<model>` like every other table of the
warehouse (`staging/stg_flights`, `marts/fct_flights`), in the `transform` group,
downstream of the tables it reads
(dbt sources `clean.*` map to the `clean/*` assets), and every dbt test is an asset
check. Models tagged `daily` are partitioned like the sources and rebuilt for the
run's date window (`--vars start_date/end_date`); the rest are rebuilt whole. Models
tagged `monitoring` read the monitoring tables (sources `monitoring.*`, mapped to the
Layer 8 assets that write them) and sit in the `monitoring` group. All run in the
`duckdb_warehouse` pool, so dbt never races another writer for the file. dbt opens the
`warehouse` resource's file: its absolute path is the dbt var `flightops_warehouse`, which
dbt_project/profiles.yml prefers to FLIGHTOPS_WAREHOUSE (the process environment is not touched).
"""


import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from assets import groups
from flightops.partitions import DAILY, SINGLE_RUN, day_range
from flightops.resources import WarehouseResource
from flightops.settings import DBT_PROJECT_DIR
from flightops.warehouse_connections import DUCKDB_POOL

DAILY_SELECTOR = "tag:daily"
MONITORING_TAG = "monitoring"
MONITORING_SELECTOR = f"tag:{MONITORING_TAG}"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class TransformTranslator(DagsterDbtTranslator):
    """dbt sources are the assets that write them; a dbt model's key is its schema and name.

    A source is `<source>/<table>` (the `clean/*` assets) unless its `config.meta.dagster.asset_key`
    in _sources.yml names the writer (dagster-dbt's default rule): `monitoring.figures` is written by
    the one step whose last asset is `monitoring/realized_performance`.
    """

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return groups.MONITORING if MONITORING_TAG in dbt_resource_props["tags"] else groups.TRANSFORM


TRANSLATOR = TransformTranslator()


# The dbt var profiles.yml takes the warehouse file from (before FLIGHTOPS_WAREHOUSE, then the default).
WAREHOUSE_VAR = "flightops_warehouse"


def dbt_vars(warehouse: WarehouseResource, **run_vars: str) -> list[str]:
    """`--vars` of a dbt invocation: the resource's warehouse file (absolute), and the run's own vars."""
    return ["--vars", json.dumps({WAREHOUSE_VAR: str(warehouse.file), **run_vars})]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=DAILY_SELECTOR,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    name="dbt_daily_models",
)
def dbt_daily_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    first, last = day_range(context)
    window = dbt_vars(warehouse, start_date=first.isoformat(), end_date=last.isoformat())
    yield from dbt.cli(["build", *window], context=context).stream()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=f"{DAILY_SELECTOR} {MONITORING_SELECTOR}",
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    name="dbt_models",
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    yield from dbt.cli(["build", *dbt_vars(warehouse)], context=context).stream()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=MONITORING_SELECTOR,
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    name="monitoring_models",
)
def monitoring_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """mart_model_health and its staging views, rebuilt whole from the monitoring tables."""
    yield from dbt.cli(["build", *dbt_vars(warehouse)], context=context).stream()
