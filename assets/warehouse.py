"""Layer 4, the warehouse: the dbt project in dbt_project/, run by dagster-dbt.

Every dbt model is an asset (key prefix `warehouse`) downstream of the clean tables
(dbt sources `clean.*` map to the `clean/*` assets), and every dbt test is an asset
check. Models tagged `daily` are partitioned like the sources and rebuilt for the
run's date window (`--vars start_date/end_date`); the rest are rebuilt whole. Both
run in the `duckdb_warehouse` pool, so dbt never races another writer for the file.
"""


import json
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from flightops.partitions import DAILY, SINGLE_RUN, day_range
from flightops.resources import WarehouseResource
from flightops.settings import DBT_PROJECT_DIR
from flightops.warehouse import DUCKDB_POOL

DAILY_SELECTOR = "tag:daily"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class WarehouseTranslator(DagsterDbtTranslator):
    """dbt sources are the `clean/*` assets; dbt models live under `warehouse/`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey(["warehouse", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "warehouse"


TRANSLATOR = WarehouseTranslator()


def _point_dbt_at(warehouse: WarehouseResource) -> None:
    """dbt reads FLIGHTOPS_WAREHOUSE from its profile; hand it the resource's absolute path."""
    os.environ["FLIGHTOPS_WAREHOUSE"] = str(warehouse.file)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=DAILY_SELECTOR,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    name="warehouse_daily_models",
)
def warehouse_daily_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    first, last = day_range(context)
    _point_dbt_at(warehouse)
    window = json.dumps({"start_date": first.isoformat(), "end_date": last.isoformat()})
    yield from dbt.cli(["build", "--vars", window], context=context).stream()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=DAILY_SELECTOR,
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    name="warehouse_models",
)
def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    _point_dbt_at(warehouse)
    yield from dbt.cli(["build"], context=context).stream()
