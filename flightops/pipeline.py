"""Run the main job headless (the README's run command) and summarise the warehouse.

The weather API is a source system of its own; when nothing answers at its URL,
the run starts one in this process for its duration, so one command does it all.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlparse

import dagster as dg
import requests
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets import groups
from flightops import warehouse_connections
from flightops.settings import Settings
from flightops.simulated_sources.weather_api import start_weather_api


@contextlib.contextmanager
def weather_api_running(settings: Settings) -> Iterator[str]:
    """Yield the API's URL, starting a server there for the block if none answers."""
    try:
        requests.get(f"{settings.weather_api_url}/health", timeout=2).raise_for_status()
    except requests.RequestException:
        url = urlparse(settings.weather_api_url)
        with start_weather_api(settings.source_state_dir, host=url.hostname, port=url.port) as server:
            yield server.url
        return
    yield settings.weather_api_url


# The asset groups of the data platform proper (everything but training and deployment).
DATA_LAYERS = (groups.INGESTION, groups.VALIDATION, groups.TRANSFORM, groups.FEATURES)


def keys_in_groups(*groups: str) -> list[dg.AssetKey]:
    """The asset keys of the code location's groups, e.g. the data layers without the models."""
    from flightops.definitions import defs

    graph = defs.resolve_asset_graph()
    return sorted((k for k in graph.get_all_asset_keys() if graph.get(k).group_name in groups), key=str)


def materialize(
    first: date,
    last: date,
    instance: dg.DagsterInstance,
    selection: list[dg.AssetKey] | None = None,
    run_config: dict | None = None,
    job_name: str = "main_job",
) -> dg.ExecuteInProcessResult:
    """A job (the main job by default), or a selection of its assets, over first..last as one run."""
    from flightops.definitions import defs  # loads the dbt manifest: only once it is parsed

    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first.isoformat(), ASSET_PARTITION_RANGE_END_TAG: last.isoformat()},
        asset_selection=selection,
        run_config=run_config,
        raise_on_error=False,
    )


@dataclass(frozen=True)
class LayerCount:
    layer: str
    table: str
    rows: int


SUMMARY_TABLES = (
    ("raw", "raw.flights_opdb"),
    ("raw", "raw.flights_exports"),
    ("raw", "raw.weather"),
    ("clean", "clean.flights"),
    ("clean", "clean.weather"),
    ("quarantine", "quarantine.flights"),
    ("quarantine", "quarantine.weather"),
    ("transform", "marts.fct_flights"),
    ("transform", "marts.mart_daily_delays"),
    ("features", "features.flight_features"),
    ("features", "features.flight_labels"),
    ("deployment", "predictions.flight_delay"),
)


def summarise(settings: Settings) -> tuple[list[LayerCount], int]:
    """Rows per layer's tables, and duplicates removed according to the load ledger."""
    with warehouse_connections.connect(settings.warehouse, read_only=True, timeout_seconds=settings.duckdb_lock_timeout_seconds) as con:
        existing = {f"{s}.{t}" for s, t in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
        counts = [
            LayerCount(layer, table, con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if table in existing else -1)
            for layer, table in SUMMARY_TABLES
        ]
        duplicates = con.execute("SELECT coalesce(sum(duplicates_removed), 0) FROM audit.load_ledger").fetchone()[0] if "audit.load_ledger" in existing else 0
    return counts, int(duplicates)


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Each failed step's error with its causes, as a user would read them in the UI."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure:
            error, parts = event.step_failure_data.error, []
            while error is not None:
                parts.append(error.message.strip())
                error = error.cause
            messages.append(f"{event.step_key}: " + " <- ".join(parts))
    return messages


def has_champion(settings: Settings) -> bool:
    from flightops.modeling import promotion, tracking

    return promotion.alias_version(tracking.mlflow_client(settings), promotion.CHAMPION_ALIAS) is not None


def run_main_job(settings: Settings, first: date, last: date, retrain: bool = False) -> int:
    """Replay the sources to `last`, materialize first..last on the repository's instance, print a summary.

    The first run trains (main_job); once a champion exists, runs are daily_job (no training):
    retraining is the retraining sensor's decision, or the user's (`retrain=True`).
    """
    from flightops.settings import DBT_PROJECT_DIR, REPO_ROOT
    from flightops.simulated_sources.replay import replay

    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    if not manifest.exists():
        raise RuntimeError(f"The dbt manifest {manifest} is missing. Run `make setup` (it runs `dbt parse`) first.")
    # The instance of dagster.yaml (SQLite under data/dagster) is the one `make ui` shows.
    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT))
    os.chdir(REPO_ROOT)
    print(replay(settings, last).describe())
    job_name = "main_job" if retrain or not has_champion(settings) else "daily_job"
    print(f"{job_name}: " + ("training a model (no champion yet, or --retrain)" if job_name == "main_job" else
                             "a champion exists, so no training; the retraining sensor (make ui) or --retrain decides"))
    with weather_api_running(settings), dg.DagsterInstance.get() as instance:
        result = materialize(first, last, instance, job_name=job_name)
    counts, duplicates = summarise(settings)
    print(f"\nDagster run {result.run_id}: {'succeeded' if result.success else 'FAILED'} for {first}..{last}")
    print(f"{'layer':<11} {'table':<28} {'rows':>9}")
    for count in counts:
        print(f"{count.layer:<11} {count.table:<28} {count.rows if count.rows >= 0 else 'missing':>9}")
    quarantined = sum(c.rows for c in counts if c.layer == "quarantine" and c.rows > 0)
    print(f"quarantined rows: {quarantined}; duplicates removed: {duplicates}")
    print(f"warehouse: {settings.warehouse}")
    _print_champion(result)
    _print_monitoring(result)
    if not result.success:
        for message in failure_messages(result):
            print(f"failed: {message}", file=sys.stderr)
        return 1
    return 0


def _print_champion(result: dg.ExecuteInProcessResult) -> None:
    """The champion after the run and the test metrics of the model trained in it."""
    trained = champion = None
    for event in result.get_asset_materialization_events():
        path = event.asset_key.path
        if path == ["models", "flight_delay_model"]:
            trained = event.materialization.metadata
        elif path == ["models", "champion"]:
            champion = event.materialization.metadata
    if champion is not None:
        print(f"champion: {champion['champion_version'].value} (challenger {champion['challenger_version'].value} "
              f"{'promoted' if champion['promoted'].value else 'not promoted'}: {champion['reasons'].value})")
    if trained is not None:
        scores = ", ".join(f"{name.removeprefix('test_')}={value.value}" for name, value in trained.items()
                           if name.startswith("test_") and name.endswith(("roc_auc", "log_loss")))
        print(f"trained version {trained['model_version'].value}, test window: {scores}")
        print(f"MLflow run {trained['mlflow_run_id'].value}; open the UI with `make mlflow-ui`")


def _print_monitoring(result: dg.ExecuteInProcessResult) -> None:
    """The newest monitored day's figures and the checks that failed in the run."""
    from assets.monitoring import DAILY_SUMMARIES, SUMMARY_KEY

    for event in result.get_asset_materialization_events():
        if event.asset_key == SUMMARY_KEY:
            summaries = event.materialization.metadata[DAILY_SUMMARIES].value
            if not summaries:
                print("monitoring: no day after the champion's reference window in this run")
                return
            newest = max(summaries)
            figures = {k: v for k, v in summaries[newest].items() if k not in ("checks", "drifted_stable")}
            failing = sorted({name for s in summaries.values() for name, failed in s["checks"].items() if failed})
            print(f"monitoring: {len(summaries)} day(s); newest {newest}: {figures}")
            print(f"checks failing on some day: {', '.join(failing) or 'none'}")
            return
