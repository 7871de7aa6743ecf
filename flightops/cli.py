"""The `flightops` command line.

One subcommand group per area (`flightops sources ...` for the simulated source
systems); each command is one function taking the parsed arguments and the
settings, returning the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from urllib.parse import urlsplit

from flightops.settings import FIRST_DAY, LAST_DAY, Settings, load_environment
from flightops.simulated_sources import admin, faults
from flightops.simulated_sources.replay import replay
from flightops.simulated_sources.weather_api import serve_forever


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from exc


def cmd_sources_replay(args: argparse.Namespace, settings: Settings) -> int:
    print(replay(settings, args.until).describe())
    return 0


def cmd_sources_status(args: argparse.Namespace, settings: Settings) -> int:
    for name, value in admin.status(settings).items():
        print(f"{name}: {value}")
    return 0


def cmd_sources_reset(args: argparse.Namespace, settings: Settings) -> int:
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
    default = urlsplit(settings.weather_api_url)
    host = args.host or default.hostname or "127.0.0.1"
    port = args.port if args.port is not None else default.port
    if port is None:
        raise ValueError(f"FLIGHTOPS_WEATHER_API_URL {settings.weather_api_url} has no port; give --port or add one to the URL.")
    serve_forever(settings.source_state_dir, host, port)
    return 0


def cmd_sources_inject(args: argparse.Namespace, settings: Settings) -> int:
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
    sources = commands.add_parser("sources", help="the simulated source systems (replay, status, reset, API, faults)")
    sub = sources.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")

    replay_parser = sub.add_parser("replay", help="replay days into the source systems up to a date")
    replay_parser.add_argument("--until", type=_iso_date, required=True, help=f"last day to replay ({FIRST_DAY}..{LAST_DAY})")
    replay_parser.set_defaults(handler=cmd_sources_replay)

    sub.add_parser("status", help="replay clock and rows per source system").set_defaults(handler=cmd_sources_status)
    sub.add_parser("reset", help="remove all source system data (prints what it removes)").set_defaults(handler=cmd_sources_reset)

    api = sub.add_parser("api", help="serve the weather API in the foreground until Ctrl-C / SIGTERM")
    api.add_argument("--host", help="default: the host of FLIGHTOPS_WEATHER_API_URL")
    api.add_argument("--port", type=int, help="default: the port of FLIGHTOPS_WEATHER_API_URL")
    api.set_defaults(handler=cmd_sources_api)

    inject = sub.add_parser("inject", help="inject a fault into already replayed data")
    inject.add_argument("fault", choices=list(faults.FAULTS))
    inject.add_argument("--date", type=_iso_date, help="replayed day to corrupt (default: the last replayed day)")
    inject.add_argument("--count", type=int, default=5, help="rows to change / API requests to affect (default 5)")
    inject.add_argument(
        "--target", choices=faults.TARGETS, help="default: opdb for row faults, export for file faults, weather for API faults"
    )
    inject.add_argument("--column", help="column for null-required, rename-column, drop-column")
    inject.add_argument("--seconds", type=float, default=faults.DEFAULT_SECONDS, help="delay of the slow fault")
    inject.set_defaults(handler=cmd_sources_inject)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.pipeline import run_main_job

    if args.first > args.until:
        raise ValueError(f"--from {args.first} is after --until {args.until}; pick a window inside 2013.")
    return run_main_job(settings, args.first, args.until, retrain=args.retrain)


def cmd_model_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.modeling.promotion import rollback

    print(rollback(args.version, store=settings).describe())
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: MLflow reads its telemetry switch at import, after load_environment().
    from flightops.serving.app import serve

    serve(args.host, args.port)
    return 0


def cmd_mlflow_ui(args: argparse.Namespace, settings: Settings) -> int:
    """The MLflow UI over the platform's own tracking store (the MLFLOW_TRACKING_URI setting)."""
    import os
    import shutil

    mlflow = shutil.which("mlflow") or os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow, "ui", "--backend-store-uri", settings.mlflow_tracking_uri,
               "--host", args.host, "--port", str(args.port)]
    os.execv(mlflow, command)


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    """`dagster dev` over the repository's instance, with the weather API the runs it launches read.

    The sensors run by default, so after `flightops sources replay --until DAY` in another terminal,
    ingestion, monitoring and (when warranted) retraining follow with no further command.
    """
    import os
    import subprocess

    from flightops.pipeline import weather_api_running
    from flightops.settings import REPO_ROOT

    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    command = [dagster, "dev", "-h", args.host, "-p", str(args.port)]
    with weather_api_running(settings) as api:
        print(f"weather API: {api}; Dagster UI: http://{args.host}:{args.port} (Ctrl-C stops both)", flush=True)
        child = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, "DAGSTER_HOME": str(REPO_ROOT)})
        try:
            return child.wait()
        except KeyboardInterrupt:  # the terminal's Ctrl-C reached dagster dev too: let it shut down
            return child.wait()


def cmd_contracts(args: argparse.Namespace, settings: Settings) -> int:
    from flightops.contracts import ALL_CONTRACTS, as_markdown

    print(as_markdown(ALL_CONTRACTS))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flightops", description="Local-first MLOps platform on the NYC flights 2013 data.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_sources_commands(commands)
    run = commands.add_parser(
        "run", help="replay the sources and materialize the whole asset graph for a window of days (headless)"
    )
    run.add_argument("--until", type=_iso_date, required=True, help=f"last day to replay and materialize (<= {LAST_DAY})")
    run.add_argument("--from", dest="first", type=_iso_date, default=date.fromisoformat(FIRST_DAY), help="first day")
    run.add_argument("--retrain", action="store_true",
                     help="train and promote even though a champion exists (default: only the first run trains)")
    run.set_defaults(handler=cmd_run)
    model = commands.add_parser("model", help="the registered model (MLflow registry)")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    rollback = model_commands.add_parser("rollback", help="point the champion alias back at the previous (or a given) version")
    rollback.add_argument("--version", help="the version to make champion (default: the previous champion)")
    rollback.set_defaults(handler=cmd_model_rollback)
    serve = commands.add_parser("serve", help="serve the champion over HTTP (POST /predict, /health, /metrics)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=cmd_serve)
    commands.add_parser("contracts", help="print every source's data contract (the rules validation applies)").set_defaults(
        handler=cmd_contracts
    )
    dagster_ui = commands.add_parser("ui", help="the Dagster UI and daemon (sensors on) with the weather API running")
    dagster_ui.add_argument("--host", default="127.0.0.1")
    dagster_ui.add_argument("--port", type=int, default=3000)
    dagster_ui.set_defaults(handler=cmd_ui)
    ui = commands.add_parser("mlflow-ui", help="the MLflow UI over the platform's tracking store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=cmd_mlflow_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    load_environment()
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, Settings.current())
    except (ValueError, RuntimeError) as exc:
        print(f"flightops {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
