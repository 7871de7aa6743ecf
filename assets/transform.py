"""Layer 4, transform: the dbt project in dbt_project/, defined by dagster-dbt, in the warehouse file.

Every dbt model is an asset keyed `<schema>/<model>` like every other table of the
warehouse (`staging/stg_flights`, `marts/fct_flights`), in the `transform` group,
downstream of the tables it reads
(dbt sources `clean.*` map to the `clean/*` assets), and every dbt test is an asset
check. The warehouse models are two steps of every run, each one `dbt build` inside the step's
process (flightops.dbt_runner). Models tagged `daily` (`dbt_daily_models`: the fact table, the
daily mart, the airport dimension whose placeholders follow the flights) are partitioned like the
sources and rebuilt for the run's date window (environment variables
FLIGHTOPS_DBT_START_DATE/END_DATE, read by the `date_window` macro like the vars start_date/end_date
an analyst passes, only when dbt executes: a changed --vars would make dbt re-parse the whole project
every run, a window read while parsing the files that read it). The rest (`dbt_warehouse_models`:
the staging and intermediate views, the carrier and plane dimensions) are rebuilt whole each run
and are not partitioned: a catch-up of a year records one materialization each, not one per day
(2,912 fewer events to store). While dbt was a process per step they were part of the daily step, to
save a process (3.5-5.5 s) per run; in the step's process a second invocation costs a fraction of a
second. Models
tagged `monitoring` read the monitoring tables (sources `monitoring.*`, mapped to the
Layer 8 assets that write them) and sit in the `monitoring` group. All run in the
`duckdb_warehouse` pool, so dbt never races another writer for the file, and wait as the Python
steps do while a process outside Dagster holds it (`build_when_unlocked`). dbt opens the
`warehouse` resource's file (the `dbt` resource holds it): its absolute path is the dbt var `flightops_warehouse`, which
dbt_project/profiles.yml prefers to FLIGHTOPS_WAREHOUSE (the process environment is not touched).

Each model's materialization carries its row count (`dagster/row_count`) and its columns with
the warehouse's types and the yml's descriptions (`dagster/column_schema`, of a range run on its
last day's materialization), read once dbt has closed the file (see `build`).
"""


from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets

from assets import groups
from flightops.partitions import DAILY, SINGLE_RUN, day_range, once_per_range
from flightops.dbt_runner import DbtInvocation
from flightops.resources import DbtResource, WarehouseResource
from flightops.run_guard import exported
from flightops.settings import DBT_PROJECT_DIR
from flightops.warehouse_connections import DUCKDB_POOL, LockWait, WarehouseLockTimeout, lock_conflict

MONITORING_TAG = "monitoring"
MONITORING_SELECTOR = f"tag:{MONITORING_TAG}"
DAILY_SELECTOR = "tag:daily"

# The dbt resource runs this project. The @dbt_assets below are not given it (`project=`): dagster-dbt
# would only store it in every asset's metadata, where the UI shows "[DbtProject] (unserializable)".
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


# What the `date_window` macro reads when no var start_date/end_date is given.
WINDOW_VARIABLES = ("FLIGHTOPS_DBT_START_DATE", "FLIGHTOPS_DBT_END_DATE")


# A step's dbt command. dbt's unit tests check a model's SQL on fixed rows, not the day's data: they run in
# development and CI (tests/test_dbt_unit_tests.py, an analyst's plain `dbt build`), not in every run, as
# dbt's documentation advises. In a run they were 0.5 s of the daily step's 2.0 s of dbt work.
BUILD_COMMAND = ["build", "--exclude-resource-type", "unit_test"]

# dbt nodes that leave a relation in the warehouse (tests and sources do not).
BUILT_RESOURCE_TYPES = frozenset({"model", "seed", "snapshot"})

COLUMNS_SQL = """
    SELECT column_name, data_type FROM information_schema.columns
    WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?
    ORDER BY ordinal_position
"""


def build(context: dg.AssetExecutionContext, dbt: DbtResource, warehouse: WarehouseResource,
          window: tuple[str, str] = ("", "")) -> Iterator[Any]:
    """`dbt build` of the step's selection; its events, a built model's with its table's figures.

    dbt holds the warehouse file until its invocation ends, so the figures are read after it has,
    still in this step and so still inside the `duckdb_warehouse` pool, through the `warehouse`
    resource (which waits for a lock held outside Dagster). dagster-dbt's `fetch_row_counts()` and
    `fetch_column_metadata()` would skip views, report dbt's types (`character varying(256)` for
    VARCHAR) and drop the yml's descriptions. A failed build still reports what it built before
    the step fails with dbt's error. `window` is the first and last ISO day of a partitioned step
    (empty: every date).
    """
    with exported(dict(zip(WINDOW_VARIABLES, window))):
        invocation = build_when_unlocked(context, dbt, warehouse, BUILD_COMMAND)
    with warehouse.connect(read_only=True) as con:
        events = [with_table_metadata(context, con, invocation.manifest, event) for event in invocation.events]
    yield from events
    if invocation.error is not None:
        raise invocation.error


def build_when_unlocked(context: dg.AssetExecutionContext, dbt: DbtResource, warehouse: WarehouseResource,
                        command: list[str]) -> DbtInvocation:
    """dbt's invocation, started once no other process holds the warehouse file.

    dbt opens the file itself and fails at once on a lock, so the wait the `warehouse` resource
    gives Python steps happens here: before each try, and again when dbt still met a lock (another
    process took the file in between), with one backoff and the resource's deadline
    (FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS). Past it the step fails naming the file, the holding
    process and what to do, not dbt's error. A locked try's events are dropped: it built nothing,
    the next try builds everything.
    """
    wait = LockWait(warehouse.file, warehouse.lock_timeout_seconds)
    logged = None
    while True:
        conflict = wait.conflict()
        if conflict is None:
            context.log.info(f"Running dbt {' '.join(command)} in this process on {warehouse.file}")
            invocation = dbt.invoke(context, command)
            conflict = lock_conflict(str(invocation.error)) if invocation.error is not None else None
            if conflict is None:
                return invocation
        if conflict != logged:
            context.log.warning(f"dbt waits for the warehouse {warehouse.file} (up to {wait.timeout_seconds} s "
                                f"in all, FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS): {conflict}")
            logged = conflict
        try:
            wait.retry(conflict)
        except WarehouseLockTimeout as timeout:
            raise dg.Failure(f"dbt did not run: {timeout}") from None  # the message is all of it


def with_table_metadata(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, manifest: Mapping[str, Any],
                        event: Any) -> Any:
    """The event, with its table's row count and column schema if it reports a built model (of a range run's
    output, the schema on the last day's materialization only)."""
    node = built_node(manifest, event)
    if node is None:
        return event
    figures = table_metadata(con, node)
    if isinstance(event, dg.Output):
        figures = once_per_range(context, figures, context.asset_key_for_output(event.output_name))
    return event.with_metadata({**event.metadata, **figures})


def built_node(manifest: Mapping[str, Any], event: Any) -> Mapping[str, Any] | None:
    """The manifest node a materialization reports, if it is one that builds a relation."""
    if not isinstance(event, (dg.Output, dg.AssetMaterialization)) or "unique_id" not in event.metadata:
        return None
    node = manifest["nodes"].get(event.metadata["unique_id"].value)
    return node if node and node["resource_type"] in BUILT_RESOURCE_TYPES else None


def table_metadata(con: duckdb.DuckDBPyConnection, node: Mapping[str, Any]) -> dict[str, dg.MetadataValue]:
    """Row count and columns as the warehouse has them (views too), described as the yml describes them."""
    schema, table = node["schema"], node["alias"]
    described = {name.lower(): column.get("description") or None for name, column in node["columns"].items()}
    columns = [
        dg.TableColumn(name, data_type, description=described.get(name.lower()))
        for name, data_type in con.execute(COLUMNS_SQL, [schema, table]).fetchall()
    ]
    (rows,) = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "dagster/column_schema": dg.MetadataValue.table_schema(dg.TableSchema(columns=columns)),
    }


# Models only, so no dbt test of the sources alone (not-null / unique on clean.*): their tables are the
# Python clean assets, which assert the same rules as blocking checks (key_unique, the contracts), and
# dagster-dbt can only log them as observations of assets outside the step. `dbt build` run by hand still
# runs them. A test of a model and a source (fct_flights against clean.flights) is kept.
@dbt_assets(
    manifest=dbt_project.manifest_path,
    select="resource_type:model",
    exclude=f"{MONITORING_SELECTOR} {DAILY_SELECTOR}",
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    name="dbt_warehouse_models",
)
def dbt_warehouse_models(context: dg.AssetExecutionContext, dbt: DbtResource, warehouse: WarehouseResource):
    """The views and the dimensions rebuilt whole each run, with their tests. A test that also reads a
    daily model (the fact table's relationships to the dimensions) is excluded with that model (dbt's
    default, `eager`, selection): it runs in the daily step, once the fact table is rebuilt."""
    yield from build(context, dbt, warehouse)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    select=f"resource_type:model,{DAILY_SELECTOR}",
    exclude=MONITORING_SELECTOR,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    name="dbt_daily_models",
)
def dbt_daily_models(context: dg.AssetExecutionContext, dbt: DbtResource, warehouse: WarehouseResource):
    first, last = day_range(context)
    yield from build(context, dbt, warehouse, window=(first.isoformat(), last.isoformat()))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    select=MONITORING_SELECTOR,
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    name="monitoring_models",
)
def monitoring_models(context: dg.AssetExecutionContext, dbt: DbtResource, warehouse: WarehouseResource):
    """mart_model_health and its staging views, rebuilt whole from the monitoring tables."""
    yield from build(context, dbt, warehouse)
