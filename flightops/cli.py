"""The `flightops` command line.

One subcommand group per area (`flightops sources ...` for the simulated source
systems); each command is one function taking the parsed arguments and the
settings, returning the exit code. Heavy modules (pandas, Dagster, MLflow) are
imported inside the commands, so `flightops --help` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from datetime import date

from flightops.settings import FIRST_DAY, LAST_DAY, Settings, load_environment

DEFAULT_UNTIL = "2013-03-31"  # the Makefile's UNTIL: what `make run` replays
HOW_TO_TRAIN = (
    "run `make run` (the first run trains and promotes a champion), or "
    f"`.venv/bin/flightops run --until {DEFAULT_UNTIL} --retrain` to train again"
)
# The fault injector's constants, known here without importing it (it imports pandas);
# tests/test_cli.py checks they match flightops.simulated_sources.faults.
FAULT_TARGETS = ("opdb", "export", "weather")
SLOW_FAULT_SECONDS = 2.0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from exc


class FaultNames:
    """The fault names as argparse choices, read from the fault injector only when needed."""

    def _names(self) -> list[str]:
        from flightops.simulated_sources.faults import FAULTS

        return list(FAULTS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions to the terminal; keeps an epilog of examples line by line, as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _command(commands: argparse._SubParsersAction, name: str, summary: str, details: str = "",
             examples: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (in its parent's list), a description and examples."""
    epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples) if examples else None
    return commands.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {details}".strip(),
                               epilog=epilog, formatter_class=HelpFormatter)


# Source systems ------------------------------------------------------------------------------------


def cmd_sources_replay(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.simulated_sources.replay import replay

    print(replay(settings, args.until).describe())
    return 0


def cmd_sources_status(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.simulated_sources import admin

    for name, value in admin.status(settings).items():
        print(f"{name}: {value}")
    return 0


def cmd_sources_reset(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.simulated_sources import admin

    plan = admin.reset_plan(settings)
    if not plan:
        print("Nothing to remove: the source systems hold no data.")
        return 0
    print("Removing:")
    for item in plan:
        print(f"  - {item}")
    admin.reset(settings)
    print("Source systems reset.")
    return 0


def cmd_sources_api(args: argparse.Namespace, settings: Settings) -> int:
    from urllib.parse import urlsplit

    from flightops.simulated_sources.weather_api import serve_forever

    default = urlsplit(settings.weather_api_url)
    host = args.host or default.hostname or "127.0.0.1"
    port = args.port if args.port is not None else default.port
    if port is None:
        raise ValueError(f"FLIGHTOPS_WEATHER_API_URL {settings.weather_api_url} has no port; give --port or add one to the URL.")
    serve_forever(settings.source_state_dir, host, port)
    return 0


def cmd_sources_inject(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from flightops.simulated_sources import faults

    described = faults.inject(
        settings,
        args.fault,
        day=args.date,
        count=args.count,
        target=args.target,
        column=args.column,
        seconds=args.seconds,
    )
    print(json.dumps(described, indent=2, default=str))
    return 0


def add_sources_commands(commands: argparse._SubParsersAction) -> None:
    sources = _command(
        commands, "sources", "the simulated source systems (replay, status, reset, API, faults)",
        "The operational database, the daily export files and the weather API the platform reads, with a "
        "replay clock: days of 2013 arrive when replayed.",
        ("flightops sources replay --until 2013-01-31", "flightops sources status"),
    )
    sub = sources.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")

    replay_parser = _command(
        sub, "replay", "replay days into the source systems up to a date",
        "Idempotent: days already replayed are skipped. New export files land in the landing folder, "
        "where the landing sensor (make ui) picks them up.",
        ("flightops sources replay --until 2013-02-28",),
    )
    replay_parser.add_argument("--until", type=_iso_date, required=True, help=f"last day to replay ({FIRST_DAY}..{LAST_DAY})")
    replay_parser.set_defaults(handler=cmd_sources_replay)

    _command(sub, "status", "replay clock and rows per source system").set_defaults(handler=cmd_sources_status)
    _command(sub, "reset", "remove all source system data (prints what it removes)",
             "The warehouse, Dagster's instance and MLflow are left alone.").set_defaults(handler=cmd_sources_reset)

    api = _command(
        sub, "api", "serve the weather API in the foreground until Ctrl-C / SIGTERM",
        "Needed by runs launched from the UI when `make ui` is not the one serving it; `make run` and "
        "`make ui` start one themselves.",
        ("flightops sources api", "flightops sources api --port 8766"),
    )
    api.add_argument("--host", help="default: the host of FLIGHTOPS_WEATHER_API_URL")
    api.add_argument("--port", type=int, help="default: the port of FLIGHTOPS_WEATHER_API_URL")
    api.set_defaults(handler=cmd_sources_api)

    inject = _command(
        sub, "inject", "inject a fault into already replayed data",
        "Then materialize the day (flightops run --from DAY --until DAY) and look at quarantine.* and the checks.",
        ("flightops sources inject duplicates --date 2013-01-02 --count 5 --target opdb",
         "flightops sources inject rename-column --date 2013-01-02 --column dep_delay",
         "flightops sources inject http-500 --count 3"),
    )
    inject.add_argument("fault", choices=FaultNames(), metavar="FAULT", help="one of: %(choices)s")
    inject.add_argument("--date", type=_iso_date, help="replayed day to corrupt (default: the last replayed day)")
    inject.add_argument("--count", type=int, default=5, help="rows to change / API requests to affect (default 5)")
    inject.add_argument(
        "--target", choices=FAULT_TARGETS, help="default: opdb for row faults, export for file faults, weather for API faults"
    )
    inject.add_argument("--column", help="column for null-required, rename-column, drop-column")
    inject.add_argument("--seconds", type=float, default=SLOW_FAULT_SECONDS,
                        help=f"delay of the slow fault (default {SLOW_FAULT_SECONDS:g})")
    inject.set_defaults(handler=cmd_sources_inject)


# Runs and the model ----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.pipeline import run_main_job

    return run_main_job(settings, args.first, args.until, retrain=args.retrain,
                        accept_smaller_delivery=args.accept_smaller_delivery)


def cmd_runs_clean(args: argparse.Namespace, settings: Settings) -> int:
    """Clean the given runs, or every unfinished run whose `flightops run` process is gone."""
    from flightops.pipeline import repository_instance
    from flightops.run_guard import PID_TAG, clean_dead_runs, clean_run, run_process_gone

    with repository_instance() as instance:
        if not args.run_ids:
            print("\n".join(clean_dead_runs(instance)) or "No unfinished run whose process is gone: nothing to clean.")
            return 0
        for run_id in args.run_ids:
            run = instance.get_run_by_id(run_id)
            if run is None:
                raise ValueError(f"No run {run_id} in the Dagster instance under {instance.root_directory}; "
                                 "copy the id from the run's message or the UI's Runs page.")
            if PID_TAG in run.tags and not run_process_gone(run):
                raise RuntimeError(f"Run {run_id} is still alive as process {run.tags[PID_TAG]}: stop it "
                                   f"(Ctrl-C, or `kill {run.tags[PID_TAG]}`), which frees its slots.")
            print(clean_run(instance, run, "cleaned by `flightops runs clean`"))
    return 0


def _registry_missing(settings: Settings) -> str | None:
    """Why there is no model registry to read yet (its SQLite file is absent), or None."""
    prefix = "sqlite:///"
    uri = settings.mlflow_tracking_uri
    if uri.startswith(prefix) and not os.path.exists(uri[len(prefix):]):
        return f"No MLflow store at {uri[len(prefix):]} yet"
    return None


def cmd_model_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.modeling.promotion import rollback

    missing = _registry_missing(settings)
    if missing:
        raise RuntimeError(f"{missing}: nothing to roll back; {HOW_TO_TRAIN}.")
    print(rollback(args.version, store=settings).describe())
    return 0


def cmd_model_status(args: argparse.Namespace, settings: Settings) -> int:
    missing = _registry_missing(settings)
    if missing:
        print(f"{missing}: no model is registered. To train one, {HOW_TO_TRAIN}.")
        return 0
    from flightops.model_status import registry_status

    for line in registry_status(settings):
        print(line)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: MLflow reads its telemetry switch at import, after load_environment().
    from flightops.serving.app import serve

    if _registry_missing(settings) or not _has_champion(settings):
        print(f"flightops serve: no champion model yet, so /predict answers 503 until one is promoted "
              f"(the service follows the alias, no restart needed). To get one, {HOW_TO_TRAIN}.", file=sys.stderr)
    serve(args.host, args.port)
    return 0


def _has_champion(settings: Settings) -> bool:
    from flightops.modeling import promotion, tracking

    return promotion.alias_version(tracking.mlflow_client(settings), promotion.CHAMPION_ALIAS) is not None


def add_run_and_model_commands(commands: argparse._SubParsersAction) -> None:
    run = _command(
        commands, "run", "replay the sources and materialize the whole asset graph for a window of days (headless)",
        "The first run trains and promotes a model (main_job); later runs score and monitor with the champion "
        "(daily_job). Prints one line per step and a summary; the full log goes to data/logs/.",
        (f"flightops run --until {DEFAULT_UNTIL}", "flightops run --from 2013-04-01 --until 2013-04-30",
         "flightops run --from 2013-04-01 --until 2013-04-30 --retrain"),
    )
    run.add_argument("--until", type=_iso_date, required=True, help=f"last day to replay and materialize (<= {LAST_DAY})")
    run.add_argument("--from", dest="first", type=_iso_date, default=date.fromisoformat(FIRST_DAY),
                     help=f"first day (default {FIRST_DAY})")
    run.add_argument("--retrain", action="store_true",
                     help="train and promote even though a champion exists (default: only the first run trains)")
    run.add_argument("--accept-smaller-delivery", action="store_true",
                     help="load deliveries with fewer than half the rows already loaded for their day (the source "
                     "really has fewer rows now); without it such a redelivery fails and the loaded day stays")
    run.set_defaults(handler=cmd_run)

    runs = _command(commands, "runs", "Dagster runs of `flightops run` (clean up after a killed one)",
                    examples=("flightops runs clean",))
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")
    clean = _command(
        runs_commands, "clean", "mark dead runs failed, free their warehouse pool slots",
        "Without RUN_ID: every unfinished run whose `flightops run` process is gone (each run does this at its "
        "start). With RUN_ID: that run, e.g. one launched from the UI that a waiting run names.",
        ("flightops runs clean", "flightops runs clean 1f0c2a7e-4b6d-4c55-9a8e-3f1d2b7c9e10"),
    )
    clean.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="the runs to clean (default: every dead run)")
    clean.set_defaults(handler=cmd_runs_clean)

    model = _command(commands, "model", "the registered model (MLflow registry)",
                     examples=("flightops model status", "flightops model rollback"))
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    _command(
        model_commands, "status", "list the registered versions, their aliases and test metrics",
        "champion serves (make serve, batch predictions); challenger is the latest candidate.",
        ("flightops model status",),
    ).set_defaults(handler=cmd_model_status)
    rollback = _command(
        model_commands, "rollback", "point the champion alias back at the previous (or a given) version",
        "The prediction service follows the alias within FLIGHTOPS_SERVING_MODEL_REFRESH_SECONDS.",
        ("flightops model rollback", "flightops model rollback --version 2"),
    )
    rollback.add_argument("--version", help="the version to make champion (default: the previous champion)")
    rollback.set_defaults(handler=cmd_model_rollback)


# Servers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def interruptible_children() -> Iterator[None]:
    """Children started in the block get SIGINT's default action, even when this process ignores it.

    A background job of a non-interactive shell starts with SIGINT ignored, and an ignored signal
    stays ignored across exec. `dagster dev` maps SIGTERM onto its SIGINT handler, so started that way
    it would ignore SIGTERM too, and only SIGKILL (which leaves its webserver and daemon behind) stops it.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a handler, unlike SIG_IGN, resets at exec
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_until_stopped(command: list[str], **popen) -> int:
    """Run a server in the foreground; Ctrl-C or SIGTERM to this process stops it the way it shuts down cleanly.

    Ctrl-C in a terminal reaches the child too, which then shuts down; SIGTERM sent to this process is
    passed on to the child. Either way this waits for the child and returns its exit code.
    """
    import subprocess

    with interruptible_children():
        child = subprocess.Popen(command, **popen)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # the child got it as well and is shutting down: wait for it
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    """`dagster dev` over the repository's instance, with the weather API the runs it launches read.

    The sensors run by default, so after `flightops sources replay --until DAY` in another terminal,
    ingestion, monitoring and (when warranted) retraining follow with no further command.
    """
    from flightops.pipeline import weather_api_running
    from flightops.settings import REPO_ROOT

    if not settings.warehouse.exists():
        print(f"Nothing is materialized yet ({settings.warehouse} does not exist): the asset graph will be empty. "
              f"Run `make run` first (replays {FIRST_DAY}..{DEFAULT_UNTIL}, materializes every asset, trains the "
              "first model), or keep this running and replay days in another terminal "
              "(`.venv/bin/flightops sources replay --until 2013-01-31`: the landing sensor ingests them).", flush=True)
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    command = [dagster, "dev", "-h", args.host, "-p", str(args.port)]
    with weather_api_running(settings) as api:
        print(f"weather API: {api}; Dagster UI: http://{args.host}:{args.port} "
              f"(Ctrl-C, or SIGTERM to pid {os.getpid()}, stops both)", flush=True)
        return run_until_stopped(command, cwd=REPO_ROOT, env={**os.environ, "DAGSTER_HOME": str(REPO_ROOT)})


def cmd_mlflow_ui(args: argparse.Namespace, settings: Settings) -> int:
    """The MLflow UI over the platform's own tracking store (the MLFLOW_TRACKING_URI setting)."""
    import shutil

    missing = _registry_missing(settings)
    if missing:
        print(f"{missing}: the MLflow UI will be empty. To fill it, {HOW_TO_TRAIN}.", flush=True)
    mlflow = shutil.which("mlflow") or os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow, "ui", "--backend-store-uri", settings.mlflow_tracking_uri,
               "--host", args.host, "--port", str(args.port)]
    os.execv(mlflow, command)


def cmd_contracts(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.contracts import ALL_CONTRACTS, as_markdown

    print(as_markdown(ALL_CONTRACTS))
    return 0


def add_server_commands(commands: argparse._SubParsersAction) -> None:
    serve = _command(
        commands, "serve", "serve the champion over HTTP (POST /predict, /predict/flight, /health, /metrics)",
        "Loads models:/flight_delay_classifier@champion and follows the alias without restart.",
        ("flightops serve --port 8000",
         "curl -s -X POST 127.0.0.1:8000/predict/flight -H 'content-type: application/json' "
         "-d '{\"flight_id\": \"2013-03-05_UA421_EWR\"}'"),
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="default %(default)s (make serve PORT=...)")
    serve.set_defaults(handler=cmd_serve)
    _command(
        commands, "contracts", "print every source's data contract (the rules validation applies)",
        "Markdown: columns, types, required, ranges, allowed values, foreign keys, keys.",
        ("flightops contracts | less",),
    ).set_defaults(handler=cmd_contracts)
    dagster_ui = _command(
        commands, "ui", "the Dagster UI and daemon (sensors on) with the weather API running",
        "`dagster dev` over the instance `flightops run` writes (data/dagster). Stop it with Ctrl-C, or SIGTERM "
        "to this process (passed on to dagster dev, which stops its webserver, daemon and code servers).",
        ("flightops ui", "flightops ui --port 3001"),
    )
    dagster_ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    dagster_ui.add_argument("--port", type=int, default=3000, help="default %(default)s (make ui PORT=...)")
    dagster_ui.set_defaults(handler=cmd_ui)
    ui = _command(
        commands, "mlflow-ui", "the MLflow UI over the platform's tracking store",
        "Links in Dagster's metadata point at FLIGHTOPS_MLFLOW_UI_URL: set it when you change the port.",
        ("flightops mlflow-ui", "flightops mlflow-ui --port 5001"),
    )
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    ui.add_argument("--port", type=int, default=5000, help="default %(default)s (make mlflow-ui PORT=...)")
    ui.set_defaults(handler=cmd_mlflow_ui)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flightops", description="Local-first MLOps platform on the NYC flights 2013 data.",
        epilog="examples:\n  flightops run --until 2013-03-31\n  flightops model status\n"
               "  flightops sources replay --until 2013-04-30\n\n`flightops COMMAND --help` describes each command.",
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_sources_commands(commands)
    add_run_and_model_commands(commands)
    add_server_commands(commands)
    return parser


def _stdout_closed() -> int:
    """The reader of our stdout went away (`flightops contracts | head`): stop quietly.

    Python would otherwise print a traceback, and a second one when it flushes stdout at exit;
    pointing stdout at /dev/null prevents the second.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def main(argv: list[str] | None = None) -> int:
    load_environment()
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(args, Settings.current())
        sys.stdout.flush()  # a reader gone by now must raise here, not at exit (Python's "Exception ignored")
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        print(f"flightops {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError) as exc:
        print(f"flightops {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
