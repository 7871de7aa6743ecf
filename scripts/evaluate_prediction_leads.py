"""Model quality at each prediction lead, on a fixed test window: what the features known at
0 h, 1 h and 24 h before departure buy.

For each lead, the features of every loaded day are built by the platform's one definition
(`flightops.feature_engineering.build_features`, what the features asset runs) in a copy of the
warehouse, and a model is trained by `train_and_register` as the training asset calls it: the
fixed test window (default 2013-10-01 .. the last day; train and validation before it), the
default tuning budget, CatBoost beside the logistic baseline and the constant predictor. Models
go to a scratch MLflow store, so the platform's registry and warehouse are untouched. Needs a
warehouse with the days loaded (`make run UNTIL=2013-12-31`).

    .venv/bin/python scripts/evaluate_prediction_leads.py --leads 0,60,1440 --out bench/results/leads.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from flightops.feature_engineering import build_features
from flightops.modeling.data import LEAD_COLUMN
from flightops.modeling.schema import FEATURE_COLUMNS, ID_COLUMNS, LABEL_COLUMN
from flightops.modeling.splits import SplitConfig
from flightops.modeling.training import TrainingConfig, train_and_register
from flightops.settings import Settings, load_environment
from flightops.warehouse_connections import connect

REPORTED = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")


def labelled_rows(warehouse: Path, lead_minutes: int):
    """Every loaded day's feature rows at this lead, with their label (flights with a known arrival)."""
    with connect(warehouse, read_only=False, timeout_seconds=60) as con:
        first, last = con.execute("SELECT min(flight_date), max(flight_date) FROM marts.fct_flights").fetchone()
        built = build_features(con, flights="marts.fct_flights", weather="staging.stg_weather",
                               first=first, last=last, lead_minutes=lead_minutes)
        columns = ", ".join(f"f.{column}" for column in (*ID_COLUMNS, LEAD_COLUMN, *FEATURE_COLUMNS))
        return con.execute(
            f"SELECT {columns}, l.is_delayed_15 AS {LABEL_COLUMN} FROM {built} AS f "
            "JOIN marts.fct_flights AS l USING (flight_id) WHERE l.arr_delay IS NOT NULL "
            "ORDER BY f.flight_date, f.dep_minute_of_day, f.flight_id"
        ).df()


def evaluate(leads: list[int], test_start: date, scratch: Path) -> list[dict]:
    load_environment()
    settings = Settings.current()
    warehouse = scratch / "warehouse.duckdb"
    shutil.copyfile(settings.warehouse, warehouse)
    store = dataclasses.replace(settings, mlflow_tracking_uri=f"sqlite:///{scratch}/mlflow.db",
                                mlflow_artifacts=scratch / "artifacts")
    config = TrainingConfig(split=SplitConfig(test_start=test_start))
    results = []
    for lead in leads:
        started = time.perf_counter()
        frame = labelled_rows(warehouse, lead)
        built = time.perf_counter() - started
        result = train_and_register(frame, store, config, run_name=f"lead-{lead}")
        results.append({
            "lead_minutes": lead,
            "windows": result.windows.as_params(),
            "rows": result.row_counts,
            "feature_build_seconds": round(built, 1),
            "fit_seconds": round(result.fit_seconds, 1),
            "tuning_trials_completed": result.tuning.trials_completed,
            "test": {kind: {name: round(metrics[name], 4) for name in REPORTED}
                     for kind, metrics in result.test_metrics.items()},
        })
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", default="0,60,1440", help="minutes before departure, comma-separated")
    parser.add_argument("--test-from", type=date.fromisoformat, default=date(2013, 10, 1), help="first test day")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flightops-leads-") as scratch:
        results = evaluate([int(lead) for lead in args.leads.split(",")], args.test_from, Path(scratch))
    print("\n| lead | CatBoost ROC AUC | ECE | log loss | baseline ROC AUC | constant ROC AUC | test window |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        test = r["test"]
        print(f"| {r['lead_minutes']} min | {test['catboost']['roc_auc']} | {test['catboost']['ece']} | "
              f"{test['catboost']['log_loss']} | {test['baseline']['roc_auc']} | {test['constant']['roc_auc']} | "
              f"{r['windows']['split_test_start']}..{r['windows']['split_test_end']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
