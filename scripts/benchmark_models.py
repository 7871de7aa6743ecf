"""Cost of the model layer on a replayed window: training wall time and peak memory, serving latency.

Each part runs in its own subprocess, so a peak RSS is that process's own:
  1. prepare (not measured): replay the sources through --until, materialize the data layers
     (ingestion, validation, warehouse, features) as one run, create the MLflow store;
  2. train, twice: `read_labelled_features` + `train_and_register` as the training asset calls them,
     (a) with tuning off and (b) with the asset's default budget (`TrainingRunConfig()`);
  3. promote: the tuning-off version becomes champion through `decide_promotion` on the recent
     labelled days (as the champion asset does), and request bodies are drawn from real feature rows;
  4. serve: `python -m flightops.serving` on a free 127.0.0.1 port, warm-up requests, then
     --requests sequential POST /predict on one keep-alive session, then --batches sequential
     POST /predict/flights of MAX_BATCH_FLIGHTS ids each (the same flights, by id). Round trip is
     timed here; server-side latency is what the service logs per request (latency_ms in its
     prediction log); throughput is flights answered per second of round trips, single against batch.
The machine is shared and noisy: read the load averages printed with the numbers.

    python scripts/benchmark_models.py --until 2013-12-31 --requests 500 --out /tmp/bench-models.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import requests

from benchmark import (
    LOG_TAIL_LINES,
    _exit_on_sigterm,
    free_port,
    load_averages,
    mb,
    own_peak_kb,
    rss_mb,
    run_child,
    scratch_environment,
)
from flightops.serving.prediction_log import REQUEST_LOG_TABLE, prediction_log_path
from flightops.serving.schema import MAX_BATCH_FLIGHTS
from flightops.settings import FIRST_DAY, LAST_DAY, Settings, load_environment

# Overrides of the training asset's run config per measured budget; {} is the asset's default budget.
BUDGETS = {"tuning-off": {"tuning_trials": 0}, "default": {}}
CHAMPION_BUDGET = "tuning-off"  # the version promoted and served
WARMUP_REQUESTS = 20
MIN_REQUESTS = 100  # below this, p99 is just the maximum
MIN_BATCHES = 10
REQUEST_SAMPLE_SEED = 2013
SERVICE_START_TIMEOUT_SECONDS = 180  # imports, registry lookup and model load
SERVICE_STOP_TIMEOUT_SECONDS = 15
REQUEST_TIMEOUT_SECONDS = 30


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


# --- children ----------------------------------------------------------------------------------

def prepare(until: date) -> dict:
    """The platform the measurements need: sources replayed, data layers materialized, MLflow store created."""
    load_environment()
    settings = Settings.current()
    import dagster as dg

    from flightops.modeling.tracking import configure_mlflow
    from flightops.pipeline import DATA_LAYERS, failure_messages, keys_in_groups, materialize, summarise, weather_api_running
    from flightops.simulated_sources.replay import replay

    replayed = replay(settings, until)
    selection = keys_in_groups(*DATA_LAYERS)
    with weather_api_running(settings), dg.DagsterInstance.ephemeral() as instance:
        result = materialize(date.fromisoformat(FIRST_DAY), until, instance, selection=selection)
    if not result.success:
        raise SystemExit(f"Materializing the data layers {', '.join(DATA_LAYERS)} for {FIRST_DAY}..{until} failed: "
                         + " | ".join(failure_messages(result)))
    # The store exists before training in the platform too; its first-use migrations are not training's cost.
    configure_mlflow(settings)
    counts = {row.table: row.rows for row in summarise(settings)[0] if row.layer == "features"}
    return {"replay": replayed.describe(), "assets": len(selection), "counts": counts}


def train(budget: str) -> dict:
    """One training run as the asset does it; seconds per stage and this process's peak RSS."""
    started = time.perf_counter()
    load_environment()
    from assets.models import TrainingRunConfig
    from flightops import warehouse_connections
    from flightops.modeling.data import read_labelled_features
    from flightops.modeling.training import train_and_register

    imports_seconds = time.perf_counter() - started
    rss_after_imports = rss_mb()
    settings = Settings.current()
    run = TrainingRunConfig(**BUDGETS[budget])

    started = time.perf_counter()
    with warehouse_connections.connect(settings.warehouse, read_only=True, timeout_seconds=settings.duckdb_lock_timeout_seconds) as con:
        frame = read_labelled_features(con, _day(run.first_day), _day(run.last_day))
    read_seconds = time.perf_counter() - started
    if frame.empty:
        raise SystemExit(f"No labelled features in {settings.warehouse}; the prepare step should have built them.")
    rss_after_read = rss_mb()

    started = time.perf_counter()
    result = train_and_register(frame, settings, run.training_config(), run_name=f"benchmark-{budget}")
    train_seconds = time.perf_counter() - started
    return {
        "budget": budget,
        "run_config": run.model_dump(),
        "seconds": {"imports": round(imports_seconds, 2), "read_labelled_features": round(read_seconds, 2),
                    "train_and_register": round(train_seconds, 2), "fit (tuning + 3 fits)": round(result.fit_seconds, 2)},
        "rss_mb": {"after imports": rss_after_imports, "after read": rss_after_read, "peak (getrusage)": mb(own_peak_kb())},
        "rows": {"labelled": len(frame), **result.row_counts},
        # the whole training asset's work (tuning, refits, baseline, registry) per 100k rows it trained on
        "train_seconds_per_100k_train_rows": round(train_seconds / result.row_counts["rows_train"] * 100_000, 2),
        "trials_completed": result.tuning.trials_completed,
        "best_valid_log_loss": result.tuning.best_valid_log_loss,
        "chosen_catboost": result.tuning.config.as_params(),
        "test": {kind: {name: metrics[name] for name in ("roc_auc", "log_loss")}
                 for kind, metrics in result.test_metrics.items()},
        "model_version": result.model_version,
        "mlflow_run_id": result.run_id,
    }


def promote(version: str, bodies: int, bodies_path: Path) -> dict:
    """Promote `version` as the champion asset would (its default PromotionConfig), and draw
    `bodies` request bodies from the feature rows of the same recent days."""
    load_environment()
    from assets.models import PromotionConfig
    from flightops import warehouse_connections
    from flightops.modeling import promotion
    from flightops.modeling.data import FEATURES_TABLE, recent_labelled_days
    from flightops.modeling.schema import FEATURE_COLUMNS  # what /predict takes: the model's inputs

    settings = Settings.current()
    config = PromotionConfig()
    with warehouse_connections.connect(settings.warehouse, read_only=True, timeout_seconds=settings.duckdb_lock_timeout_seconds) as con:
        window = recent_labelled_days(con, config.recent_days)
    first_day = window["flight_date"].min()
    decision = promotion.decide_promotion(version, window, settings, config.policy())
    if not decision.promoted:
        raise SystemExit(f"Version {version} was not promoted ({'; '.join(decision.reasons)}); "
                         "the service would have no champion to serve.")

    columns = ", ".join(("flight_id", *FEATURE_COLUMNS))
    with warehouse_connections.connect(settings.warehouse, read_only=True, timeout_seconds=settings.duckdb_lock_timeout_seconds) as con:
        rows = con.execute(f"SELECT {columns} FROM {FEATURES_TABLE} WHERE flight_date >= ? ORDER BY flight_id",
                           [first_day]).df()
    drawn = rows.sample(bodies, replace=bodies > len(rows), random_state=REQUEST_SAMPLE_SEED)
    bodies_path.write_text(drawn.to_json(orient="records"))  # NaN becomes null, as the service expects
    return {"version": version, "promoted": decision.promoted, "reasons": list(decision.reasons),
            "window": decision.window, f"window_{decision.metric}": decision.challenger_score,
            "request_rows": {"drawn": bodies, "from": len(rows)}}


# --- the service -------------------------------------------------------------------------------

class Service:
    """`python -m flightops.serving` in its own process group, its output into a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flightops.serving", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def _failure(self, what: str) -> RuntimeError:
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        return RuntimeError(f"The service at {self.url} {what}. The end of its output ({self.log}):\n{tail}")

    def wait_until_loaded(self, session: requests.Session) -> tuple[float, int]:
        """Seconds from start until /health reports a loaded model, and that model's version."""
        started = time.perf_counter()
        while time.perf_counter() - started < SERVICE_START_TIMEOUT_SECONDS:
            if self.process.poll() is not None:
                raise self._failure(f"exited with code {self.process.returncode} before loading a model")
            try:
                health = session.get(f"{self.url}/health", timeout=2).json()
            except requests.ConnectionError:
                health = {}  # not listening yet
            if health.get("model_loaded"):
                return time.perf_counter() - started, int(health["model_version"])
            time.sleep(0.2)
        raise self._failure(f"reported no loaded model within {SERVICE_START_TIMEOUT_SECONDS} s")

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # the group start_new_session created: only the service
        try:
            self.process.wait(SERVICE_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def latency_summary(milliseconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(milliseconds, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p99": round(cuts[98], 2),
            "mean": round(statistics.fmean(milliseconds), 2), "max": round(max(milliseconds), 2)}


def _post(session: requests.Session, url: str, body: dict, version: int) -> float:
    """One prediction; its round trip in ms. Anything but an answer by `version` stops the benchmark."""
    started = time.perf_counter()
    response = session.post(url, json=body, timeout=REQUEST_TIMEOUT_SECONDS)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or response.json()["model_version"] != version:
        raise RuntimeError(f"POST {url} for flight {body.get('flight_id')} answered {response.status_code}: "
                           f"{response.text[:500]} (expected 200 from model version {version}); see the service log.")
    return elapsed


def _post_batch(session: requests.Session, url: str, flight_ids: list[str], version: int) -> float:
    """One POST /predict/flights; its round trip in ms. Anything but every flight answered by `version` stops the benchmark."""
    started = time.perf_counter()
    response = session.post(url, json={"flight_ids": flight_ids}, timeout=REQUEST_TIMEOUT_SECONDS)
    elapsed = (time.perf_counter() - started) * 1000
    answered = response.json().get("predictions", []) if response.status_code == 200 else []
    if len(answered) != len(flight_ids) or {p["model_version"] for p in answered} != {version}:
        raise RuntimeError(f"POST {url} with {len(flight_ids)} flight ids answered {response.status_code}: "
                           f"{response.text[:500]} (expected every flight scored by model version {version}).")
    return elapsed


def logged_latencies(data_dir: Path) -> list[tuple[float, int]]:
    """(latency_ms, status_code) of every logged single /predict request, in the order they were written."""
    with sqlite3.connect(prediction_log_path(data_dir)) as con:
        rows = con.execute(f"SELECT latency_ms, status_code FROM {REQUEST_LOG_TABLE} WHERE batch_id IS NULL "
                           "ORDER BY rowid").fetchall()
    con.close()
    return rows


def flights_per_second(flights: int, round_trips_ms: list[float]) -> float:
    return round(flights / (sum(round_trips_ms) / 1000), 1)


def measure_serving(env: dict[str, str], data_dir: Path, bodies: list[dict], batches: int, log: Path) -> dict:
    """Warm-up, then the measured requests, one at a time on one keep-alive session: single flights,
    then batches of MAX_BATCH_FLIGHTS of the same flights by id (drawn in turn, wrapping around)."""
    service = Service(env, log)
    ids = [body["flight_id"] for body in bodies]
    batch_ids = [[ids[(n * MAX_BATCH_FLIGHTS + i) % len(ids)] for i in range(MAX_BATCH_FLIGHTS)] for n in range(batches + 1)]
    try:
        with requests.Session() as session:
            load_seconds, version = service.wait_until_loaded(session)
            url = f"{service.url}/predict"
            for body in bodies[:WARMUP_REQUESTS]:
                _post(session, url, body, version)
            round_trips = [_post(session, url, body, version) for body in bodies[WARMUP_REQUESTS:]]
            _post_batch(session, f"{url}/flights", batch_ids[0], version)  # warm-up
            batch_round_trips = [_post_batch(session, f"{url}/flights", chunk, version) for chunk in batch_ids[1:]]
        service_rss = service.rss_mb()
    finally:
        service.stop()
    logged = logged_latencies(data_dir)
    if len(logged) != len(bodies) or any(status != 200 for _, status in logged):
        raise RuntimeError(f"The prediction log {prediction_log_path(data_dir)} holds {len(logged)} requests "
                           f"(statuses {sorted({s for _, s in logged})}); {len(bodies)} answered 200 were sent.")
    return {
        "model_version": version,
        "start_to_model_loaded_seconds": round(load_seconds, 2),
        "warmup_requests": WARMUP_REQUESTS,
        "requests": len(round_trips),
        "round_trip_ms": latency_summary(round_trips),
        "server_side_ms": latency_summary([latency for latency, _ in logged[WARMUP_REQUESTS:]]),
        "single_flights_per_second": flights_per_second(len(round_trips), round_trips),
        "batch": {
            "flights_per_request": MAX_BATCH_FLIGHTS,
            "requests": len(batch_round_trips),
            "round_trip_ms": latency_summary(batch_round_trips),
            "flights_per_second": flights_per_second(MAX_BATCH_FLIGHTS * len(batch_round_trips), batch_round_trips),
        },
        "service_rss_mb_after_requests": service_rss,
    }


# --- the parent: spawn, wait, report ------------------------------------------------------------

def print_report(report: dict) -> None:
    w, t, s, p = report["window"], report["training"], report["serving"], report["promotion"]
    loads = load_averages(report)
    line = "-" * 100
    print(f"\nModel benchmark {w['first']}..{w['until']} on {report['machine']['cpus']} CPUs; "
          f"load average 1/5/15 min: start {loads[0]}, end {loads[1]}")
    print(f"prepare (not measured): {report['preparation']['process']['wall_seconds']:.1f} s; "
          f"{report['preparation']['counts']}")
    print(line)
    print(f"{'training (own process each)':<34}{'process':>9}{'read':>7}{'train':>8}{'fit':>8}"
          f"{'peak RSS':>10}{'rows train/valid/test':>24}")
    print(f"{'':<34}{'wall s':>9}{'s':>7}{'s':>8}{'s':>8}{'MB':>10}")
    for name, run in t.items():
        c, sec, rows = run["run_config"], run["seconds"], run["rows"]
        label = f"{name}: {run['trials_completed']}/{c['tuning_trials']} trials"
        split = f"{rows['rows_train']}/{rows['rows_valid']}/{rows['rows_test']}"
        print(f"{label:<34}{run['process']['wall_seconds']:>9.1f}{sec['read_labelled_features']:>7.1f}"
              f"{sec['train_and_register']:>8.1f}{sec['fit (tuning + 3 fits)']:>8.1f}"
              f"{run['rss_mb']['peak (getrusage)']:>10.1f}{split:>24}")
    for name, run in t.items():
        c = run["run_config"]
        print(f"  {name}: {run['train_seconds_per_100k_train_rows']:.1f} s of train_and_register per 100k training rows")
        print(f"  {name}: TrainingRunConfig(tuning_trials={c['tuning_trials']}, tuning_timeout_seconds="
              f"{c['tuning_timeout_seconds']}, catboost_iterations={c['catboost_iterations']}); "
              f"{run['rows']['labelled']} labelled rows")
    print(f"{'test window: ROC AUC / log loss':<34}{'catboost':>20}{'baseline':>20}{'constant':>20}")
    for name, run in t.items():
        cells = [f"{run['test'][k]['roc_auc']:.4f} / {run['test'][k]['log_loss']:.4f}" for k in ("catboost", "baseline", "constant")]
        print(f"{name:<34}{cells[0]:>20}{cells[1]:>20}{cells[2]:>20}")
    print(line)
    print(f"serving version {s['model_version']} (promoted: {'; '.join(p['reasons'])}; window {p['window']})")
    print(f"  start to model loaded {s['start_to_model_loaded_seconds']:.1f} s, service RSS after the requests "
          f"{s['service_rss_mb_after_requests']:.1f} MB; {s['requests']} sequential requests after {s['warmup_requests']} warm-up")
    print(f"{'':<34}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'max ms':>10}")
    for label, key in (("  round trip (client)", "round_trip_ms"), ("  server side (logged latency_ms)", "server_side_ms")):
        q = s[key]
        print(f"{label:<34}{q['p50']:>10.2f}{q['p99']:>10.2f}{q['mean']:>10.2f}{q['max']:>10.2f}")
    b = s["batch"]
    q = b["round_trip_ms"]
    print(f"{'  batch round trip (client)':<34}{q['p50']:>10.2f}{q['p99']:>10.2f}{q['mean']:>10.2f}{q['max']:>10.2f}"
          f"   {b['requests']} requests of {b['flights_per_request']} flight ids")
    print(f"  throughput, flights answered per second: single {s['single_flights_per_second']:.1f}, "
          f"batch {b['flights_per_second']:.1f} ({b['flights_per_second'] / s['single_flights_per_second']:.1f}x)")


def benchmark(until: date, requests_count: int, batches: int, out: Path | None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    base = Path(tempfile.mkdtemp(prefix="flightops-bench-models-"))
    platform = base / "platform"
    load_environment()  # .env's defaults and telemetry switches, passed on to the children
    env = {**os.environ, **scratch_environment(platform, free_port())}
    me = str(Path(__file__).resolve())

    def child(name: str, *args: str) -> tuple[dict, dict]:
        result = base / f"{name}.json"
        run = run_child([me, "--child", *args, "--result", str(result)], env, name, base / f"{name}.log")
        return json.loads(result.read_text()), asdict(run)

    load_start = os.getloadavg()
    try:
        print(f"Scratch folder {base}", flush=True)
        preparation, process = child("prepare", "prepare", "--until", until.isoformat())
        preparation["process"] = process
        training = {}
        for budget in BUDGETS:
            training[budget], process = child(f"train-{budget}", "train", "--budget", budget)
            training[budget]["process"] = process
        bodies_path = base / "request_bodies.json"
        promotion, _ = child("promote", "promote", "--version", training[CHAMPION_BUDGET]["model_version"],
                             "--bodies", str(WARMUP_REQUESTS + requests_count), "--bodies-path", str(bodies_path))
        serving = measure_serving(env, platform, json.loads(bodies_path.read_text()), batches, base / "service.log")
        print("  serving: done", flush=True)
        report = {
            "window": {"first": FIRST_DAY, "until": until.isoformat()},
            "machine": {"cpus": os.cpu_count(), "load_average_start": load_start, "load_average_end": os.getloadavg()},
            "preparation": preparation,
            "training": training,
            "promotion": promotion,
            "serving": serving,
        }
    finally:
        shutil.rmtree(base)
    print_report(report)
    if out is not None:
        out.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nReport written to {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--until", type=date.fromisoformat, default=date.fromisoformat(LAST_DAY),
                        help=f"last day of the window, from {FIRST_DAY} (default {LAST_DAY})")
    parser.add_argument("--requests", type=int, default=500, help="measured POST /predict requests (default 500)")
    parser.add_argument("--batches", type=int, default=25,
                        help=f"measured POST /predict/flights of {MAX_BATCH_FLIGHTS} ids each (default 25)")
    parser.add_argument("--out", type=Path, help="write the report as JSON to this file")
    parser.add_argument("--child", choices=("prepare", "train", "promote"), help=argparse.SUPPRESS)
    parser.add_argument("--budget", choices=tuple(BUDGETS), help=argparse.SUPPRESS)
    parser.add_argument("--version", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bodies-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not FIRST_DAY <= args.until.isoformat() <= LAST_DAY:
        parser.error(f"--until {args.until} is outside the data set's calendar {FIRST_DAY}..{LAST_DAY}; pick a day inside it.")
    if args.batches < MIN_BATCHES:
        parser.error(f"--batches {args.batches} is below {MIN_BATCHES}: too few batches for a p99 worth reading.")
    if args.requests < MIN_REQUESTS:
        parser.error(f"--requests {args.requests} is below {MIN_REQUESTS}: a p99 of fewer requests is just the maximum.")
    if args.child is None:
        return benchmark(args.until, args.requests, args.batches, args.out)
    if args.child == "prepare":
        result = prepare(args.until)
    elif args.child == "train":
        result = train(args.budget)
    else:
        result = promote(args.version, args.bodies, args.bodies_path)
    args.result.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
