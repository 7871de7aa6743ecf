"""How the platform scales with the data: the same window at 1x, 3x and 10x the flights, in one run.

For each scale k (FLIGHTOPS_SOURCE_SCALE, `flightops.simulated_sources.dataset.replicated`: every flight
delivered k times, copies with their own flight_id, made on the fly by the replay and never stored
anywhere but the scratch folder), in a fresh scratch platform:
  1. replay the sources through --until (its own process; reported apart, as in scripts/benchmark.py);
  2. materialize the data layers (ingestion, validation, warehouse, features) over FIRST_DAY..--until
     as one run (--all-layers: main_job, training with tuning off, deployment and monitoring too), in its
     own process: wall, CPU, peak RSS (its own and with its child processes), per-layer step times.
The calendar is the data set's year, so more data means more flights per day, not more days (how the
platform scales with days is the year against one new day, in scripts/benchmark.py).
Row counts are checked: every flight table holds k times its 1x rows, weather and the daily mart the
same rows; a mismatch exits 1. Compare the ratios measured within one run (the machine is shared).

    python scripts/benchmark_scaling.py                      # the year; bench/results/<date>-<machine>-scaling.{json,md}
    python scripts/benchmark_scaling.py --until 2013-01-31 --scales 1 10 --out /tmp/scaling.json   # January, 2 min
    python scripts/benchmark_scaling.py --all-layers --scales 1 10     # the year through training
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict
from datetime import date
from pathlib import Path

from benchmark import MemorySampler, _exit_on_sigterm, _layers, default_report_path, free_port, load_averages, measure_platform, \
    measure_replay, run_child, scratch_environment, with_steps
from flightops.pipeline import DATA_LAYERS
from flightops.settings import FIRST_DAY, LAST_DAY, load_environment

DEFAULT_SCALES = (1, 3, 10)
# Tables with one row per delivered flight (k times the 1x rows at scale k) and tables without (the same rows).
FLIGHT_TABLES = ("raw.flights_opdb", "raw.flights_exports", "clean.flights", "quarantine.flights", "marts.fct_flights",
                 "features.flight_features", "features.flight_labels", "features.flight_labels delayed")
UNSCALED_TABLES = ("raw.weather", "clean.weather", "quarantine.weather", "marts.mart_daily_delays")
# Issue 10's targets at the largest scale, against 1x: wall at most the scale, peak memory at most twice.
PEAK_RSS_TARGET_RATIO = 2.0


def measure_scale(base: Path, scale: int, until: date, all_layers: bool) -> dict:
    """Replay and the data layers (or every layer) at one scale, each in its own process, in a scratch platform under `base`."""
    base.mkdir(parents=True)
    env = {**os.environ, **scratch_environment(base / "platform", free_port()), "FLIGHTOPS_SOURCE_SCALE": str(scale)}
    me = str(Path(__file__).resolve())
    replay_run = run_child([me, "--child", "replay", "--until", until.isoformat(), "--result", str(base / "replay.json")],
                           env, f"replay {scale}x", base / "replay.log")
    what = "all-layers" if all_layers else "data-layers"
    memory = MemorySampler()
    platform_run = run_child([me, "--child", what, "--until", until.isoformat(), "--instance", str(base / "dagster"),
                              "--result", str(base / "platform.json")], env, f"{what} {scale}x", base / "platform.log", memory)
    platform = with_steps(json.loads((base / "platform.json").read_text()), base / "dagster", memory)
    return {
        "scale": scale,
        "replay": {**json.loads((base / "replay.json").read_text()), "process": asdict(replay_run)},
        "platform": {**platform, "layers": _layers(platform), "process": asdict(platform_run)},
    }


def counts_check(runs: list[dict]) -> dict[str, dict]:
    """Each table's rows per scale against what the 1x run predicts (k times for flight tables)."""
    first = runs[0]
    check = {}
    for table in (*FLIGHT_TABLES, *UNSCALED_TABLES):
        factor = {run["scale"]: (run["scale"] / first["scale"] if table in FLIGHT_TABLES else 1) for run in runs}
        rows = {f"{run['scale']}x": run["platform"]["counts"][table] for run in runs}
        expected = {f"{k}x": round(first["platform"]["counts"][table] * f) for k, f in factor.items()}
        check[table] = {"rows": rows, "expected": expected, "match": rows == expected}
    return check


def build_report(until: date, load_start, load_end, runs: list[dict], all_layers: bool) -> dict:
    first = runs[0]["platform"]
    ratios = {}
    for run in runs:
        p = run["platform"]
        ratios[f"{run['scale']}x"] = {
            "data": round(run["scale"] / runs[0]["scale"], 2),
            "wall": round(p["process"]["wall_seconds"] / first["process"]["wall_seconds"], 2),
            "cpu": round(p["process"]["cpu_seconds"] / first["process"]["cpu_seconds"], 2),
            "peak_rss_process": round(p["peak_rss_mb"] / first["peak_rss_mb"], 2),
            "peak_rss_with_children": round(p["tree_peak_rss_mb"] / first["tree_peak_rss_mb"], 2),
            "replay_wall": round(run["replay"]["process"]["wall_seconds"] / runs[0]["replay"]["process"]["wall_seconds"], 2),
        }
    largest = ratios[f"{runs[-1]['scale']}x"]
    return {
        "window": {"first": FIRST_DAY, "until": until.isoformat()},
        "layers": "Every layer (main_job, tuning off)" if all_layers else "Data layers",
        "machine": {"cpus": os.cpu_count(), "load_average_start": load_start, "load_average_end": load_end},
        "runs": runs,
        "ratios_over_smallest_scale": ratios,
        "targets_at_largest_scale": {
            "wall_at_most_the_data_ratio": largest["wall"] <= largest["data"],
            f"peak_rss_at_most_{PEAK_RSS_TARGET_RATIO:g}x": largest["peak_rss_process"] <= PEAK_RSS_TARGET_RATIO,
        },
        "counts": counts_check(runs),
    }


def markdown_table(report: dict) -> str:
    """The report as the Markdown table the README quotes: one column per scale."""
    runs, ratios, w = report["runs"], report["ratios_over_smallest_scale"], report["window"]
    loads = load_averages(report, " / ")
    head = [f"{run['scale']}x" for run in runs]

    def row(label: str, cells) -> str:
        return f"| {label} | " + " | ".join(str(c) for c in cells) + " |"

    def with_ratio(value, ratio) -> str:
        return f"{value} ({ratio}x)"

    layer_names = [layer["layer"] for layer in runs[0]["platform"]["layers"]]
    rows = [
        f"{report['layers']} {w['first']}..{w['until']} at {', '.join(head)} the flights (FLIGHTOPS_SOURCE_SCALE); "
        f"{report['machine']['cpus']} CPUs, load average (1/5/15 min) {loads[0]} -> {loads[1]}.",
        "",
        row("", head),
        "|---|" + "---|" * len(runs),
        row("clean flights", [run["platform"]["counts"]["clean.flights"] for run in runs]),
        row("replay of the sources (apart), wall s", [with_ratio(run["replay"]["process"]["wall_seconds"], ratios[h]["replay_wall"])
                                                      for run, h in zip(runs, head)]),
        row("**the run's process, wall s**", [with_ratio(run["platform"]["process"]["wall_seconds"], ratios[h]["wall"])
                                                 for run, h in zip(runs, head)]),
        row("CPU s", [with_ratio(run["platform"]["process"]["cpu_seconds"], ratios[h]["cpu"]) for run, h in zip(runs, head)]),
        row("**peak RSS MB, the run's process**", [with_ratio(run["platform"]["peak_rss_mb"], ratios[h]["peak_rss_process"])
                                                   for run, h in zip(runs, head)]),
        row("peak RSS MB with its child processes", [with_ratio(run["platform"]["tree_peak_rss_mb"], ratios[h]["peak_rss_with_children"])
                                               for run, h in zip(runs, head)]),
    ]
    for name in layer_names:
        rows.append(row(f"- {name}, s (peak MB)", [
            next((f"{layer['seconds']} ({layer['peak_rss_mb']})" for layer in run["platform"]["layers"] if layer["layer"] == name), "")
            for run in runs]))
    rows += [
        row("- start-up: imports, definitions, s", [run["platform"]["phases"]["startup: imports, definitions"]["seconds"] for run in runs]),
        row("- Dagster outside steps, s", [run["platform"]["dagster_overhead_seconds"]["total"] for run in runs]),
    ]
    targets = report["targets_at_largest_scale"]
    rows += ["", "Targets at the largest scale against the smallest: " + "; ".join(
        f"{name.replace('_', ' ')}: {'held' if held else 'MISSED'}" for name, held in targets.items()) + "."]
    return "\n".join(rows) + "\n"


def scaling(until: date, scales: list[int], out: Path | None, all_layers: bool) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    load_environment()  # .env's defaults and telemetry switches, passed on to the children
    base = Path(tempfile.mkdtemp(prefix="flightops-scaling-"))
    load_start = os.getloadavg()
    try:
        print(f"Scratch folder {base}", flush=True)
        runs = []
        for scale in scales:
            runs.append(measure_scale(base / f"{scale}x", scale, until, all_layers))
            shutil.rmtree(base / f"{scale}x")  # a 10x platform is a few GB: one at a time
        report = build_report(until, load_start, os.getloadavg(), runs, all_layers)
    finally:
        shutil.rmtree(base)
    table = markdown_table(report)
    print("\n" + table)
    default = default_report_path()
    out = out or default.with_name(f"{default.stem}-scaling.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    out.with_suffix(".md").write_text(table)
    print(f"Report written to {out} and, as a Markdown table, {out.with_suffix('.md')}")
    wrong = {table: row for table, row in report["counts"].items() if not row["match"]}
    for table, row in wrong.items():
        print(f"{table}: rows {row['rows']}, expected {row['expected']} from the smallest scale's rows. The scaled sources "
              "or a layer lost or duplicated rows; the figures above are not comparable until that is fixed.", file=sys.stderr)
    return 1 if wrong else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--until", type=date.fromisoformat, default=date.fromisoformat(LAST_DAY),
                        help=f"the window's last day, from {FIRST_DAY} (default {LAST_DAY}: the year, 3.4 M flights at 10x)")
    parser.add_argument("--scales", type=int, nargs="+", default=list(DEFAULT_SCALES),
                        help=f"copies of each flight, smallest first (default {' '.join(map(str, DEFAULT_SCALES))})")
    parser.add_argument("--out", type=Path, help="the report's JSON file (default: bench/results/<date>-<machine>-scaling.json); "
                        "its Markdown table goes beside it (.md)")
    parser.add_argument("--all-layers", action="store_true", help="every layer (main_job, training with tuning off), "
                        "not only ingestion to features")
    parser.add_argument("--child", choices=("replay", "data-layers", "all-layers"), help=argparse.SUPPRESS)
    parser.add_argument("--instance", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not FIRST_DAY <= args.until.isoformat() <= LAST_DAY:
        parser.error(f"--until {args.until} is outside {FIRST_DAY}..{LAST_DAY}, the data set's calendar; pick a day inside it.")
    if args.scales != sorted(set(args.scales)) or args.scales[0] < 1 or len(args.scales) < 2:
        parser.error(f"--scales {' '.join(map(str, args.scales))}: give at least two different positive whole numbers, "
                     "smallest first (the first is what the others are compared with), e.g. --scales 1 3 10.")
    if args.child is None:
        return scaling(args.until, args.scales, args.out, args.all_layers)
    if args.child == "replay":
        measured = measure_replay(args.until)
    else:
        groups = DATA_LAYERS if args.child == "data-layers" else ()
        measured = measure_platform(date.fromisoformat(FIRST_DAY), args.until, args.instance, "main_job", groups)
    args.result.write_text(json.dumps(measured, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
