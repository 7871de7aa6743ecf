"""Run the main job headless (the README's run command) and summarise the warehouse.

The weather API is a source system of its own; when nothing answers at its URL,
the run starts one in this process for its duration, so one command does it all.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlparse

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets import groups
from flightops import warehouse_connections
from flightops.run_guard import (
    EXIT_CODES, SUBSET_PLANNED_EVENTS, RunGuard, clean_dead_runs, clean_run, exported, interrupted,
    mark_unwritten_days_failed, process_tags,
)
from flightops.settings import Settings
from flightops.simulated_sources.clock import check_in_calendar
from flightops.simulated_sources.weather_api import start_weather_api
from flightops.weather_client import WHAT_TO_DO, ForeignWeatherApi, probe, require_own_source

if TYPE_CHECKING:
    from flightops.run_output import RunOutput


@contextlib.contextmanager
def weather_api_running(settings: Settings) -> Iterator[str]:
    """Yield the URL of this platform's weather API, starting one there for the block if nothing answers.

    Whatever else answers there (another checkout's API, an older one, another service) is refused
    with ForeignWeatherApi, a RuntimeError whose one line says what answered and what to do; it is
    not worked around on another port, because the configured URL is what every process reads (the
    runs `make ui` launches, an API started by hand): the user fixes it once, where it is set.
    """
    health = probe(settings.weather_api_url)
    if health is not None:
        require_own_source(settings.weather_api_url, health, settings.source_state_dir)
        yield settings.weather_api_url
        return
    url = urlparse(settings.weather_api_url)
    try:
        server = start_weather_api(settings.source_state_dir, host=url.hostname, port=url.port)
    except OSError as exc:
        raise ForeignWeatherApi(
            f"Cannot serve the weather API at {settings.weather_api_url} ({exc}): something holds the port "
            f"without answering /health. {WHAT_TO_DO}"
        ) from exc
    with server:
        yield server.url


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
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """A job (the main job by default), or a selection of its assets, over first..last as one run.

    `run_id` is for a caller that listens to the run's events (`instance.add_event_listener`) and so
    needs the id before the run starts; `tags` are added to the run's (e.g. `process_tags()`).
    """
    from flightops.definitions import defs  # loads the dbt manifest: only once it is parsed

    job = defs.resolve_job_def(job_name)
    with exported({SUBSET_PLANNED_EVENTS: "true"}):
        result = job.execute_in_process(
            instance=instance,
            tags={ASSET_PARTITION_RANGE_START_TAG: first.isoformat(), ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
                  **(tags or {})},
            asset_selection=selection,
            run_config=run_config,
            raise_on_error=False,
            run_id=run_id,
        )
    if not result.success:
        mark_unwritten_days_failed(instance, result.run_id)
    return result


def raw_load_config(job_name: str, **config) -> dict:
    """Run config giving every raw asset of the job the same `RawLoadConfig` fields."""
    from assets.ingestion import raw_assets
    from flightops.definitions import defs

    nodes = defs.resolve_job_def(job_name).graph.node_dict
    ops = [asset.op.name for asset in raw_assets if asset.op.name in nodes]
    return {"ops": {op: {"config": config} for op in ops}}


def step_count(job_name: str) -> int:
    """Steps of a whole-job run: one per op (the in-process executor runs each once)."""
    from flightops.definitions import defs

    return len(defs.resolve_job_def(job_name).graph.node_dict)


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


# The jobs `flightops run` chooses between, and why (the first line after loading says which).
JOB_REASONS = {
    "main_job": "trains a model (no champion yet, or --retrain)",
    "daily_job": "no training: a champion exists (the retraining sensor under `make ui` decides, or --retrain)",
}


def choose_job(settings: Settings, retrain: bool) -> str:
    """main_job (with training) for the first run or on request, daily_job once a champion exists."""
    return "main_job" if retrain or not has_champion(settings) else "daily_job"


# The repository's dagster.yaml keeps the instance's storage (SQLite, artifacts, compute logs) here.
REPO_DAGSTER_STORAGE = "data/dagster"


def instance_config_with_storage_in(storage: Path) -> str:
    """The repository's dagster.yaml (pools, telemetry, ...) with its storage moved to `storage`.

    For private instances (tests, benchmarks) configured like the one `make ui` shows.
    """
    from flightops.settings import REPO_ROOT

    config = (REPO_ROOT / "dagster.yaml").read_text()
    if REPO_DAGSTER_STORAGE not in config:
        raise ValueError(f"{REPO_ROOT / 'dagster.yaml'} no longer keeps its storage in {REPO_DAGSTER_STORAGE}: "
                         "update REPO_DAGSTER_STORAGE in flightops/pipeline.py to the new folder.")
    return config.replace(REPO_DAGSTER_STORAGE, str(storage.resolve()))


@contextlib.contextmanager
def repository_instance() -> Iterator[dg.DagsterInstance]:
    """The instance of dagster.yaml (SQLite under data/dagster), the one `make ui` shows, unless DAGSTER_HOME says otherwise."""
    from flightops.settings import REPO_ROOT

    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT))
    with dg.DagsterInstance.get() as instance:
        yield instance


def run_main_job(settings: Settings, first: date, last: date, retrain: bool = False,
                 terminal: TextIO | None = None, pool_wait_seconds: float | None = None,
                 accept_smaller_delivery: bool = False) -> int:
    """Replay the sources to `last`, materialize first..last on the repository's instance, print a summary.

    The first run trains (main_job); once a champion exists, runs are daily_job (no training):
    retraining is the retraining sensor's decision, or the user's (`retrain=True`). The terminal (or
    `terminal`) gets one line per step and the summary; everything Dagster, dbt and MLflow print goes
    to a log file under the data folder (flightops/run_output.py). SIGINT and SIGTERM stop the run
    (exit 130 / 143), and a step waiting `pool_wait_seconds` (default: the setting FLIGHTOPS_POOL_WAIT_SECONDS)
    for the warehouse pool fails it (exit 1).
    """
    from flightops.run_output import log_file_under, run_output
    from flightops.settings import DBT_PROJECT_DIR, REPO_ROOT

    check_in_calendar(first, "--from")
    check_in_calendar(last, "--until")
    if first > last:
        raise ValueError(f"--from {first} is after --until {last}; pick a window inside 2013.")
    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    if not manifest.exists():
        raise RuntimeError(f"The dbt manifest {manifest} is missing. Run `make setup` (it runs `dbt parse`) first.")
    os.chdir(REPO_ROOT)
    with run_output(log_file_under(settings.data_dir), terminal) as out, repository_instance() as instance:
        return _replay_and_run(settings, first, last, retrain, out, instance, pool_wait_seconds, accept_smaller_delivery)


def _replay_and_run(settings: Settings, first: date, last: date, retrain: bool, out: RunOutput,
                    instance: dg.DagsterInstance, pool_wait_seconds: float | None, accept_smaller_delivery: bool) -> int:
    from flightops.simulated_sources.replay import replay

    out.line(f"flightops run {first}..{last}")
    for line in clean_dead_runs(instance):
        out.line(line)
    run_id = str(uuid.uuid4())  # Dagster's run ids are UUID4 strings; known here so the listeners can follow it
    guard = RunGuard(instance, run_id, out, settings.pool_wait_seconds if pool_wait_seconds is None else pool_wait_seconds)
    with guard.watching():
        try:
            # The weather API first: a URL the run cannot serve on fails in one line before any work.
            with weather_api_running(settings):
                with out.phase("replay the sources") as details:
                    details.append(replay(settings, last).describe())
                with out.phase("load the code location") as details:
                    job_name = choose_job(settings, retrain)
                    out.expect_steps(step_count(job_name))
                    details.append(f"{job_name} ({out.steps.total} steps) {JOB_REASONS[job_name]}")
                out.starting("start the run (Dagster plans each asset)")
                instance.add_event_listener(run_id, out.on_event)
                instance.add_event_listener(run_id, guard.on_event)
                run_config = raw_load_config(job_name, accept_smaller_delivery=True) if accept_smaller_delivery else None
                result = materialize(first, last, instance, run_config=run_config, job_name=job_name, run_id=run_id,
                                     tags=process_tags())
        except BaseException as exc:  # noqa: BLE001 - a stop by the guard ends here, with its message
            if guard.reason is None:
                raise
            result = exc
    out.end_progress()
    if guard.reason is None and isinstance(result, dg.ExecuteInProcessResult) and interrupted(result):
        guard.reason, guard.exit_code = "stopped by SIGINT or SIGTERM (Ctrl-C)", EXIT_CODES[signal.SIGINT]
    if guard.reason is not None:
        return _stopped(instance, run_id, guard, out)
    for line in summary_lines(settings, result, f"{first}..{last}", out):
        out.line(line)
    return 0 if result.success else 1


def _stopped(instance: dg.DagsterInstance, run_id: str, guard: RunGuard, out: RunOutput) -> int:
    """The run was stopped: make sure nothing of it is left (an unfinished status, slots) and say so."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        out.line(f"flightops run {guard.reason} before the run started; nothing was materialized.")
    else:
        clean_run(instance, run, guard.reason)
        out.line(f"Run {run_id} {guard.reason}; marked failed, its pool slots freed.")
    return guard.exit_code


def summary_lines(settings: Settings, result: dg.ExecuteInProcessResult, window: str, out: RunOutput) -> list[str]:
    """What a run leaves behind, what went wrong, and what to try next."""
    steps = out.steps
    outcome = "succeeded" if result.success else "FAILED"
    lines = ["", f"Run {result.run_id} ({result.job_def.name}) {outcome} for {window} in {out.elapsed()}: "
                 f"{steps.done - len(steps.failed) - steps.skipped} of {steps.total} steps done"
                 + (f", {len(steps.failed)} failed" if steps.failed else "")
                 + (f", {steps.skipped} skipped" if steps.skipped else "")]
    lines += row_lines(settings)
    lines += champion_lines(result)
    lines += monitoring_lines(result)
    lines += check_lines(result)
    lines += [f"failed step {message}" for message in failure_messages(result)]
    lines += next_steps(settings)
    return lines


def row_lines(settings: Settings) -> list[str]:
    """Rows per layer, one line each, under the warehouse's path; duplicates removed with quarantine."""
    from flightops.run_output import shown

    if not settings.warehouse.exists():
        return [f"warehouse: {shown(settings.warehouse)} was not created"]
    counts, duplicates = summarise(settings)
    by_layer: dict[str, list[str]] = {}
    for count in counts:
        by_layer.setdefault(count.layer, []).append(
            f"{count.table.split('.', 1)[1]} {count.rows if count.rows >= 0 else 'missing'}")
    notes = {"quarantine": f"; duplicates removed: {duplicates}"}
    return [f"rows in {shown(settings.warehouse)}:"] + [
        f"  {layer:<11} {', '.join(items)}{notes.get(layer, '')}" for layer, items in by_layer.items()
    ]


def _materialization_metadata(result: dg.ExecuteInProcessResult, path: list[str]) -> dict | None:
    """The metadata of the run's (last) materialization of the asset at `path`, if any."""
    found = None
    for event in result.get_asset_materialization_events():
        if event.asset_key.path == path:
            found = event.materialization.metadata
    return found


def champion_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """The model trained in the run (test metrics, MLflow run) and the champion after it."""
    lines = []
    trained = _materialization_metadata(result, ["models", "flight_delay_model"])
    if trained is not None:
        scores = ", ".join(f"{name.removeprefix('test_')}={value.value}" for name, value in trained.items()
                           if name.startswith("test_") and name.endswith(("roc_auc", "log_loss")))
        where = trained.get("mlflow_run") or trained["mlflow_run_id"]
        lines.append(f"trained version {trained['model_version'].value}, test window: {scores}")
        lines.append(f"  MLflow run {where.value}")
    champion = _materialization_metadata(result, ["models", "champion"])
    if champion is not None:
        lines.append(f"champion: version {champion['champion_version'].value} (challenger "
                     f"{champion['challenger_version'].value} {'promoted' if champion['promoted'].value else 'not promoted'}: "
                     f"{champion['reasons'].value})")
    return lines


def monitoring_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """The newest monitored day's figures and the monitoring checks that failed on some day."""
    from assets.monitoring import DAILY_SUMMARIES, SUMMARY_KEY

    metadata = _materialization_metadata(result, SUMMARY_KEY.path)
    if metadata is None:
        return []
    summaries = metadata[DAILY_SUMMARIES].value
    if not summaries:
        return ["monitoring: no day after the champion's reference window in this run"]
    newest = max(summaries)
    figures = {k: v for k, v in summaries[newest].items() if k not in ("checks", "drifted_stable")}
    failing = sorted({name for s in summaries.values() for name, failed in s["checks"].items() if failed})
    return [f"monitoring: {len(summaries)} day(s); newest {newest}: {figures}",
            f"  monitoring checks failing on some day: {', '.join(failing) or 'none'}"]


def check_evaluations(result: dg.ExecuteInProcessResult) -> list:
    """Every asset check evaluated in the run (AssetCheckEvaluation), in order."""
    return [event.event_specific_data for event in result.all_events
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]


def check_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """How many asset checks ran, and each failed one: asset, check, severity, what it found."""
    evaluations = check_evaluations(result)
    failed = [e for e in evaluations if not e.passed]
    if not failed:
        return [f"asset checks: {len(evaluations)} evaluated, all passed"]
    return [f"asset checks: {len(failed)} of {len(evaluations)} FAILED:"] + [
        f"  {describe_failed_check(result, e)}" for e in failed
    ]


def describe_failed_check(result: dg.ExecuteInProcessResult, evaluation) -> str:
    """One line: asset, check, severity (blocking?), the result's description or the spec's, its metadata."""
    severity = evaluation.severity.value + (", blocking" if evaluation.blocking else "")
    partition = f" [{evaluation.partition}]" if evaluation.partition else ""
    said = (evaluation.description or _spec_description(result, evaluation) or "").rstrip(". ")
    facts = metadata_text(evaluation.metadata)
    text = "; ".join(part for part in (said, facts) if part)
    return f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}{partition} ({severity}): {text or 'no details'}"


def _spec_description(result: dg.ExecuteInProcessResult, evaluation) -> str | None:
    """The check's own description (what it checks), when the result gives none."""
    key = dg.AssetCheckKey(evaluation.asset_key, evaluation.check_name)
    try:
        return result.job_def.asset_layer.asset_graph.get_check_spec(key).description
    except Exception:  # noqa: BLE001 - a check outside the job's graph: the metadata must do
        return None


def metadata_text(metadata: dict, limit: int = 240) -> str:
    """Plain metadata values (text, numbers, flags) as `name=value`, cut to `limit` characters."""
    parts = [f"{name}={entry.value}" for name, entry in metadata.items()
             if isinstance(getattr(entry, "value", None), (str, int, float, bool))]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sample_flight(settings: Settings) -> str:
    """The newest flight of the online store (what `POST /predict/flight` looks up), or a made-up id."""
    import sqlite3

    from flightops.online_features import TABLE

    try:
        with contextlib.closing(sqlite3.connect(f"{settings.online_features.as_uri()}?mode=ro", uri=True)) as con:
            row = con.execute(f"SELECT max(flight_id) FROM {TABLE}").fetchone()
    except sqlite3.Error:
        row = None
    return row[0] if row and row[0] else "2013-03-31_UA1234_EWR"


def next_steps(settings: Settings) -> list[str]:
    """The commands to try next: the UIs, the prediction service with a request, the registry, dbt."""
    body = json.dumps({"flight_id": sample_flight(settings)})
    return [
        "next:",
        "  make ui          the Dagster UI on http://127.0.0.1:3000: assets, runs, checks (PORT=3001 for another port)",
        f"  make mlflow-ui   the MLflow UI on {settings.mlflow_ui_url}: runs, metrics, plots, the registered model",
        "  make serve       the champion over HTTP on 127.0.0.1:8000; then, in another terminal:",
        f"    curl -s -X POST 127.0.0.1:8000/predict/flight -H 'content-type: application/json' -d '{body}'",
        "  .venv/bin/flightops model status   the registered versions, their aliases and test metrics",
        "  cd dbt_project && ../.venv/bin/dbt test --select marts   the marts' dbt tests (README: dbt for analysts)",
    ]
