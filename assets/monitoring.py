"""Layer 8, monitor and feed back: the champion watched day by day, and every retraining recorded.

- `monitoring/reference`: the champion's held-out test window scored by itself (rebuilt when the
  champion changes): what "normal" means for drift, estimation and realized figures.
- `monitoring/feature_drift`, `monitoring/prediction_health`, `monitoring/realized_performance`:
  daily, from one step (one read, one model load); figures to `monitoring.figures`, a per-day
  summary in the metadata for the retraining sensor, asset checks (WARN) per concern.
- `monitoring/retrain_decisions`: one row per retraining run, filled with the 7-day figures after.
- `monitoring/model_health_plot`: estimated vs realized ROC AUC with retraining and promotion marks.
"""


import io
import json
import tempfile
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from assets import groups
from assets.features import FEATURES, LABELS
from assets.models import CHAMPION, PREDICTIONS, embedded_png
from flightops.modeling import promotion, tracking
from flightops.modeling.data import feature_columns_sql, fetch_frame, read_labelled_features
from flightops.modeling.schema import FEATURE_COLUMNS, ID_COLUMNS
from flightops.monitoring import alerts, figures, latest
from flightops.monitoring.daily import DayResult, Reference, between, monitor_day
from flightops.monitoring.drift import drift_report, save_report
from flightops.monitoring.performance import Estimator
from flightops.monitoring.policy import MonitoringPolicy
from flightops.partitions import DAILY, SINGLE_RUN, day_range, days
from flightops.resources import MlflowResource, MonitoringResource, WarehouseResource
from flightops.warehouse_connections import DUCKDB_POOL

# MLflow and evaluate.py (scikit-learn, matplotlib) are imported inside the steps that use them
# (about 4 s of code-location load).

GROUP = groups.MONITORING
REFERENCE = dg.AssetKey(["monitoring", "reference"])
FEATURE_DRIFT = dg.AssetKey(["monitoring", "feature_drift"])
PREDICTION_HEALTH = dg.AssetKey(["monitoring", "prediction_health"])
REALIZED_PERFORMANCE = dg.AssetKey(["monitoring", "realized_performance"])
RETRAIN_DECISIONS = dg.AssetKey(["monitoring", "retrain_decisions"])
HEALTH_PLOT = dg.AssetKey(["monitoring", "model_health_plot"])
# The materialization whose metadata carries the per-day summaries the retraining sensor reads.
SUMMARY_KEY = REALIZED_PERFORMANCE
DAILY_SUMMARIES = "daily_summaries"

REFERENCE_TABLE = "monitoring.reference"
REFERENCE_INFO_TABLE = "monitoring.reference_info"
IMPORTANCE_TABLE = "monitoring.reference_importance"
DECISIONS_TABLE = "monitoring.retrain_decisions"

# Each check: the asset it judges and the figure (metric, slice "all") that carries its verdict per day.
CHECKS: dict[str, tuple[dg.AssetKey, str, str]] = {
    "stable_feature_drift": (FEATURE_DRIFT, "weighted_drifted_share", "Importance-weighted share of stable inputs "
                             "(carrier, route, schedule, plane) drifted past the policy's threshold."),
    "estimated_auc_drop": (PREDICTION_HEALTH, "estimated_roc_auc_drop", "Confidence-based ROC AUC estimate below "
                           "the champion's reference AUC by more than the threshold."),
    "daily_volume": (PREDICTION_HEALTH, "flights_vs_weekday_norm", "Flights of the day within the tolerance of the "
                     "median of the same weekday in the previous 4 weeks."),
    "realized_log_loss_rise": (REALIZED_PERFORMANCE, "log_loss_rise", "Realized 7-day log loss above the "
                               "champion's reference by more than the threshold, and on enough of the window's days."),
    "calibration_gap": (REALIZED_PERFORMANCE, "calibration_gap", "Realized |mean probability - delay rate| "
                        "over the labelled window above the threshold."),
}


# ---------------------------------------------------------------------------------------------
# Reference


def _mlflow_ready(mlflow_store: MlflowResource):
    tracking.configure_mlflow(mlflow_store)
    return tracking.mlflow_client(mlflow_store)


def _table_exists(con, table: str) -> bool:
    schema, name = table.split(".")
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, name]
    ).fetchone()[0])


def _stored_reference_version(con) -> str | None:
    if not _table_exists(con, REFERENCE_INFO_TABLE):
        return None
    row = con.execute(f"SELECT model_version FROM {REFERENCE_INFO_TABLE}").fetchone()
    return row[0] if row else None


def _importance(client, run_id: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as scratch:
        path = client.download_artifacts(run_id, "evaluation/feature_importance.csv", scratch)
        return pd.read_csv(path).rename(columns={"roc_auc_drop": "importance"})


@dg.asset(
    key=REFERENCE,
    deps=[CHAMPION, FEATURES, LABELS],
    group_name=GROUP,
    pool=DUCKDB_POOL,
    kinds={"duckdb", "mlflow"},
    description="The champion's held-out test window (features, its probabilities, labels) and feature importance, "
    f"keyed by model version ({REFERENCE_TABLE}); rebuilt only when the champion changes.",
)
def reference(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
              mlflow_store: MlflowResource) -> dg.MaterializeResult:
    from flightops.modeling.evaluate import classification_metrics, positive_probability

    client = _mlflow_ready(mlflow_store)
    version = promotion.alias_version(client, promotion.CHAMPION_ALIAS)
    if version is None:
        raise dg.Failure(f"No champion in {mlflow_store.mlflow_tracking_uri}: nothing to monitor. Materialize "
                         "models/flight_delay_model and models/champion first (`flightops run` does on a first run).")
    model_version = client.get_model_version(tracking.REGISTERED_MODEL_NAME, version)
    params = client.get_run(model_version.run_id).data.params
    test_start, test_end = date.fromisoformat(params["split_test_start"]), date.fromisoformat(params["split_test_end"])
    with warehouse.connect(read_only=True) as con:
        stored = _stored_reference_version(con)
    if stored != version:
        with warehouse.connect(read_only=True) as con:
            rows = read_labelled_features(con, test_start, test_end)
        model = promotion.load_version(version)
        rows["probability"] = positive_probability(model, rows)
        rows["is_delayed"] = rows["is_delayed"].astype(int)
        importance = _importance(client, model_version.run_id)
        info = pd.DataFrame([{"model_version": version, "test_start": test_start, "data_end": test_end,
                              "run_id": model_version.run_id}])
        with warehouse.connect() as con:
            # The figures table exists from the first reference on: the model-health mart reads it.
            figures.ensure_table(con)
            con.execute("BEGIN TRANSACTION")
            for table, frame in ((REFERENCE_TABLE, rows), (IMPORTANCE_TABLE, importance), (REFERENCE_INFO_TABLE, info)):
                con.register("_frame", frame.assign(model_version=version))
                con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _frame")
                con.unregister("_frame")
            con.execute("COMMIT")
        context.log.info(f"Reference rebuilt for champion v{version} (was {stored or 'none'}): {len(rows)} rows.")
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(f"SELECT is_delayed, probability FROM {REFERENCE_TABLE}").df()
    metrics = classification_metrics(rows["is_delayed"].to_numpy(), rows["probability"].to_numpy())
    return dg.MaterializeResult(metadata={
        "model_version": version,
        "rebuilt": stored != version,
        "window": f"{test_start}..{test_end}",
        "data_end": test_end.isoformat(),
        "rows": len(rows),
        **{f"reference_{m}": round(metrics[m], 4) for m in ("roc_auc", "log_loss", "brier", "ece")},
    })


def load_reference(con) -> Reference:
    """The stored reference, with its metrics and a fitted estimator."""
    from flightops.modeling.evaluate import classification_metrics

    if _stored_reference_version(con) is None:
        raise dg.Failure(f"{REFERENCE_INFO_TABLE} is missing: materialize monitoring/reference first.")
    version, data_end = con.execute(f"SELECT model_version, data_end FROM {REFERENCE_INFO_TABLE}").fetchone()
    rows = con.execute(f"SELECT * FROM {REFERENCE_TABLE}").df()
    rows["flight_date"] = pd.to_datetime(rows["flight_date"]).dt.date
    importance = con.execute(f"SELECT feature, importance FROM {IMPORTANCE_TABLE}").df().set_index("feature")["importance"]
    y, p = rows["is_delayed"].to_numpy(), rows["probability"].to_numpy()
    return Reference(model_version=str(version), rows=rows, importance=importance, data_end=data_end,
                     metrics=classification_metrics(y, p), estimator=Estimator.fit(p, y))


# ---------------------------------------------------------------------------------------------
# Daily monitoring


def _scored_window(con, model, first: date, last: date) -> pd.DataFrame:
    """Features of first..last with labels where known, scored by the champion."""
    from flightops.modeling.evaluate import positive_probability

    # In chunks, the categories as shared strings (flightops.modeling.data): at 10x the data, this window
    # read at once set the run's peak (2,014 MB; 1,843 this way).
    frame = fetch_frame(con.execute(
        f"SELECT {feature_columns_sql(con, (*ID_COLUMNS, *FEATURE_COLUMNS))}, l.is_delayed FROM features.flight_features f "
        "LEFT JOIN features.flight_labels l USING (flight_id) WHERE f.flight_date BETWEEN ? AND ?",
        [first, last],
    ))
    frame["flight_date"] = pd.to_datetime(frame["flight_date"]).dt.date
    frame["is_delayed"] = frame["is_delayed"].astype("Int64")
    frame["probability"] = positive_probability(model, frame) if len(frame) else []
    return frame


def _daily_counts(con, first: date, last: date) -> pd.Series:
    counts = con.execute(
        "SELECT flight_date, count(*) AS n FROM features.flight_features WHERE flight_date BETWEEN ? AND ? GROUP BY 1",
        [first, last],
    ).df()
    return pd.Series(counts["n"].to_numpy(), index=pd.to_datetime(counts["flight_date"]).dt.date)


def _previous_failures(con, day: date) -> set[str]:
    """Checks that failed on `day` according to the stored figures (for "failing two days running")."""
    if not _table_exists(con, figures.FIGURES_TABLE):
        return set()
    metric_to_check = {metric: name for name, (_, metric, _) in CHECKS.items()}
    rows = con.execute(
        f"SELECT metric FROM {figures.FIGURES_TABLE} WHERE day = ? AND slice = 'all' AND status = ? "
        f"AND metric IN ({', '.join('?' for _ in metric_to_check)})",
        [day, figures.ALERT, *metric_to_check],
    ).fetchall()
    return {metric_to_check[m] for (m,) in rows}


def _onsets(results: list[DayResult], before: set[str]) -> dict[date, tuple[set[str], set[str]]]:
    """Per day: checks that start failing that day, and checks failing for a second day running or more."""
    marks, previous = {}, before
    for result in results:
        failing = set(result.alerts)
        marks[result.day] = (failing - previous, failing & previous)
        previous = failing
    return marks


def _log_reports(mlflow_store: MlflowResource, results: list[DayResult], onsets: dict, scored: pd.DataFrame,
                 ref: Reference, policy: MonitoringPolicy, run_name: str) -> dict[str, str]:
    """Evidently HTML (about 4 MB) of the weekly report day and of days a check starts failing, as MLflow
    artifacts of the monitoring experiment; returns day -> URL of the report in the MLflow UI."""
    import mlflow

    kept = [r for r in results if r.window is not None
            and (r.day.isoweekday() == policy.report_weekday or onsets[r.day][0])]
    if not kept:
        return {}
    experiment_id = tracking.configure_mlflow(mlflow_store, tracking.MONITORING_EXPERIMENT_NAME)
    links = {}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run, \
            tempfile.TemporaryDirectory(prefix="flightops-reports-") as scratch:
        for result in kept:
            name = f"{result.day.isoformat()}_drift.html"
            save_report(drift_report(between(scored, *result.window), ref.rows, policy), Path(scratch) / name)
            links[result.day.isoformat()] = (f"{mlflow_store.mlflow_ui_url}/#/experiments/{experiment_id}/runs/"
                                             f"{run.info.run_id}/artifacts/reports/{name}")
        mlflow.log_artifacts(scratch, artifact_path="reports")
    return links


def _check_results(results: list[DayResult], policy: MonitoringPolicy) -> list[dg.AssetCheckResult]:
    checked = []
    for name, (key, metric, _) in CHECKS.items():
        judged = [r for r in results if name in r.summary["checks"]]
        failing = [r.day.isoformat() for r in judged if r.summary["checks"][name]]
        last = judged[-1].summary if judged else {}
        checked.append(dg.AssetCheckResult(
            asset_key=key, check_name=name, passed=not failing, severity=dg.AssetCheckSeverity.WARN,
            metadata={"days_judged": len(judged), "failing_days": ", ".join(failing) or "none",
                      "last_day": judged[-1].day.isoformat() if judged else "none",
                      "last_day_figures": dg.MetadataValue.json({k: v for k, v in last.items() if k != "checks"})},
        ))
    return checked


def _alert_repeated_failures(context, monitoring: MonitoringResource, results: list[DayResult], onsets: dict) -> int:
    """A check failing two monitored days running raises one alert (deduplicated per check and day)."""
    raised = 0
    for result in results:
        for name in sorted(onsets[result.day][1]):
            alert = alerts.raise_alert(
                monitoring, alerts.CHECK_FAILING,
                f"Monitoring check {name} failed on {result.day - timedelta(days=1)} and {result.day} "
                f"for champion v{result.summary['model_version']}; see monitoring/{CHECKS[name][0].path[-1]} in the UI.",
                day=result.day.isoformat(), details={"check": name, **{k: v for k, v in result.summary.items() if k != "checks"}},
                run_id=context.run_id, dedup_key=f"{name}:{result.day.isoformat()}", logger=context.log,
            )
            raised += alert is not None
    return raised


def _update_after_figures(con, policy: MonitoringPolicy) -> int:
    """Fill each retraining decision's 7-day figures from the first full window after it."""
    if not (_table_exists(con, DECISIONS_TABLE) and _table_exists(con, figures.FIGURES_TABLE)):
        return 0
    return con.execute(f"""
        UPDATE {DECISIONS_TABLE} AS d SET after_day = a.day, after_log_loss = a.log_loss, after_roc_auc = a.roc_auc
        FROM (
            SELECT d.run_id, arg_min(f.day, f.day) AS day,
                   arg_min(f.log_loss, f.day) AS log_loss, arg_min(f.roc_auc, f.day) AS roc_auc
            FROM {DECISIONS_TABLE} d JOIN (
                SELECT day, model_version, window_start, window_end,
                       max(value) FILTER (WHERE metric = 'log_loss') AS log_loss,
                       max(value) FILTER (WHERE metric = 'roc_auc') AS roc_auc
                FROM {figures.FIGURES_TABLE}
                WHERE report = '{figures.REALIZED_PERFORMANCE}' AND feature_group = 'performance' AND slice = 'all'
                GROUP BY ALL
            ) f ON f.model_version = d.champion_after AND f.window_start > d.labelled_through
                 AND date_diff('day', f.window_start, f.window_end) + 1 >= {policy.window_days}
            WHERE d.after_day IS NULL
            GROUP BY d.run_id
        ) a
        WHERE d.run_id = a.run_id
    """).fetchone()[0]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(FEATURE_DRIFT, deps=[REFERENCE, FEATURES], group_name=GROUP, kinds={"evidently", "duckdb"},
                     description="Evidently drift of every model input over the last 7 days against the reference, by "
                     "group (stable inputs, weather, cumulative rates); stable drift weighted by feature importance."),
        dg.AssetSpec(PREDICTION_HEALTH, deps=[REFERENCE, PREDICTIONS], group_name=GROUP, kinds={"evidently", "duckdb"},
                     description="Drift of the champion's probabilities, confidence-based (CBPE) estimated ROC AUC and "
                     "log loss before labels, and the day's volume against its weekday norm."),
        dg.AssetSpec(REALIZED_PERFORMANCE, deps=[REFERENCE, LABELS], group_name=GROUP, kinds={"duckdb"},
                     description="Once labels arrive (label delay): 7-day ROC AUC, log loss, Brier, calibration gap, per "
                     "carrier and origin, against the champion's reference; per-day summaries for the retraining sensor."),
    ],
    check_specs=[dg.AssetCheckSpec(name, asset=key, description=text) for name, (key, _, text) in CHECKS.items()],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    pool=DUCKDB_POOL,
)
def daily_monitoring(context: dg.AssetExecutionContext, warehouse: WarehouseResource, monitoring_policy: MonitoringPolicy,
                     mlflow_store: MlflowResource, monitoring: MonitoringResource):
    policy = monitoring_policy
    first, last = day_range(context)
    with warehouse.connect(read_only=True) as con:
        ref = load_reference(con)
        # Days up to the reference's end are the champion's own: not monitored, so not read. A year's
        # catch-up scores only the days after it and what they look back on.
        monitored = [d for d in days(first, last) if d > ref.data_end]
        history_start = (monitored[0] if monitored else last) - timedelta(days=max(policy.window_days + policy.label_delay_days, 28))
        _mlflow_ready(mlflow_store)
        model = promotion.load_version(ref.model_version)
        scored = _scored_window(con, model, history_start, last)
        counts = _daily_counts(con, history_start, last)
        before = _previous_failures(con, first - timedelta(days=1))
    results = [monitor_day(day, scored, counts, ref, policy) for day in monitored]
    with warehouse.connect() as con:
        stored = figures.replace_figures(con, [f for r in results for f in r.figures], first, last)
        after_filled = _update_after_figures(con, policy)
    onsets = _onsets(results, before)
    links = _log_reports(mlflow_store, results, onsets, scored, ref, policy, run_name=f"monitoring-{first}..{last}")
    raised = _alert_repeated_failures(context, monitoring, results, onsets)
    summaries = {r.day.isoformat(): r.summary for r in results}
    if results:
        newest = results[-1]
        latest.write_latest(monitoring, {
            "day": newest.day.isoformat(), "model_version": ref.model_version,
            "champion_data_end": ref.data_end.isoformat(), "champion_age_days": (newest.day - ref.data_end).days,
            "figures": {"weighted_stable_drift_share": newest.summary.get("weighted_stable_drift"),
                        "estimated_roc_auc": newest.summary.get("estimated_roc_auc"),
                        "estimated_log_loss": newest.summary.get("estimated_log_loss"),
                        "realized_roc_auc": newest.summary.get("realized_roc_auc"),
                        "realized_log_loss": newest.summary.get("realized_log_loss"),
                        "calibration_gap": newest.summary.get("calibration_gap")},
        })
    common = {"model_version": ref.model_version, "reference_end": ref.data_end.isoformat(),
              "days_monitored": len(results),
              "days_before_reference_end": len(days(first, last)) - len(results)}
    yield dg.MaterializeResult(asset_key=FEATURE_DRIFT, metadata={
        **common, "figures_stored": stored,
        "reports": dg.MetadataValue.json(links),
        "weighted_stable_drift": dg.MetadataValue.json({d: s.get("weighted_stable_drift") for d, s in summaries.items()}),
        "weather_drift_share": dg.MetadataValue.json({d: s.get("weather_drift_share") for d, s in summaries.items()}),
        **({"newest_report": dg.MetadataValue.url(links[max(links)])} if links else {}),
    })
    yield dg.MaterializeResult(asset_key=PREDICTION_HEALTH, metadata={
        **common,
        "estimated_roc_auc": dg.MetadataValue.json({d: s.get("estimated_roc_auc") for d, s in summaries.items()}),
        "reference_roc_auc": round(ref.metrics["roc_auc"], 4),
    })
    yield dg.MaterializeResult(asset_key=REALIZED_PERFORMANCE, metadata={
        **common, "label_delay_days": policy.label_delay_days, "alerts_raised": raised,
        "decisions_with_after_figures": after_filled,
        "reference_log_loss": round(ref.metrics["log_loss"], 4),
        DAILY_SUMMARIES: dg.MetadataValue.json(summaries),
    })
    yield from _check_results(results, policy)


# ---------------------------------------------------------------------------------------------
# Retraining decisions and the health plot

TRIGGER_TAG = "flightops/retrain_trigger"  # "monitoring" when the retraining sensor launched the run
TRIGGER_DAY_TAG = "flightops/trigger_day"
TRIGGER_REASONS_TAG = "flightops/trigger_reasons"
TRIGGER_FIGURES_TAG = "flightops/trigger_figures"

_DECISIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {DECISIONS_TABLE} (
    run_id VARCHAR PRIMARY KEY, decided_at TIMESTAMP, trigger VARCHAR, trigger_day DATE, labelled_through DATE,
    reasons VARCHAR, trigger_figures JSON, champion_before VARCHAR, challenger_version VARCHAR, promoted BOOLEAN,
    champion_after VARCHAR, guardrail_reasons VARCHAR, before_log_loss DOUBLE, before_roc_auc DOUBLE,
    after_day DATE, after_log_loss DOUBLE, after_roc_auc DOUBLE
)
"""


@dg.asset(
    key=RETRAIN_DECISIONS,
    deps=[CHAMPION, REFERENCE],
    group_name=GROUP,
    pool=DUCKDB_POOL,
    kinds={"duckdb"},
    description=f"Every retraining ({DECISIONS_TABLE}): why (the sensor's reasons and figures), the run, the "
    "challenger, the guardrail's decision, and the champion's 7-day figures before and after.",
)
def retrain_decisions(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      monitoring: MonitoringResource) -> dg.MaterializeResult:
    tags = context.run.tags
    decided = context.instance.get_latest_materialization_event(CHAMPION)
    if decided is None or decided.run_id != context.run_id:
        raise dg.Failure("models/champion was not decided in this run; retrain_decisions records the decision of "
                         "the run that trained and promoted (the retraining job).")
    meta = {k: v.value for k, v in decided.asset_materialization.metadata.items()}
    trigger_figures = json.loads(tags.get(TRIGGER_FIGURES_TAG, "{}"))
    row = {
        "run_id": context.run_id, "decided_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
        "trigger": tags.get(TRIGGER_TAG, "manual"),
        "trigger_day": tags.get(TRIGGER_DAY_TAG), "labelled_through": trigger_figures.get("labelled_through"),
        "reasons": tags.get(TRIGGER_REASONS_TAG, "launched by hand"), "trigger_figures": json.dumps(trigger_figures),
        "champion_before": None if meta["previous_champion_version"] == "none" else str(meta["previous_champion_version"]),
        "challenger_version": str(meta["challenger_version"]), "promoted": bool(meta["promoted"]),
        "champion_after": str(meta["champion_version"]), "guardrail_reasons": meta["reasons"],
        "before_log_loss": trigger_figures.get("realized_log_loss"), "before_roc_auc": trigger_figures.get("realized_roc_auc"),
    }
    if row["labelled_through"] is None:
        with warehouse.connect(read_only=True) as con:
            row["labelled_through"] = con.execute(f"SELECT data_end FROM {REFERENCE_INFO_TABLE}").fetchone()[0]
    with warehouse.connect() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS monitoring")
        con.execute(_DECISIONS_DDL)
        frame = pd.DataFrame([row])
        con.register("_row", frame)
        con.execute(f"INSERT OR REPLACE INTO {DECISIONS_TABLE} BY NAME SELECT * REPLACE "
                    "(CAST(trigger_day AS DATE) AS trigger_day, CAST(labelled_through AS DATE) AS labelled_through) FROM _row")
        total = con.execute(f"SELECT count(*) FROM {DECISIONS_TABLE}").fetchone()[0]
    if row["trigger"] == "monitoring" and not row["promoted"] and trigger_figures.get("realized_degraded"):
        alerts.raise_alert(
            monitoring, alerts.RETRAIN_REJECTED_DEGRADED,
            f"Retraining for {row['trigger_day']} produced v{row['challenger_version']}, which the guardrail rejected "
            f"({row['guardrail_reasons']}), while champion v{row['champion_before']} is still degraded: a human should "
            "look (MLflow runs, monitoring/realized_performance), then retrain with another window or roll back.",
            severity="critical", day=row["trigger_day"], details={k: str(v) for k, v in row.items()},
            run_id=context.run_id, dedup_key=f"rejected:{context.run_id}", logger=context.log,
        )
    return dg.MaterializeResult(metadata={
        "trigger": row["trigger"], "trigger_day": str(row["trigger_day"]), "reasons": row["reasons"],
        "challenger_version": row["challenger_version"], "promoted": row["promoted"],
        "champion_after": row["champion_after"], "decisions_recorded": total,
    })


def _plot(figures_frame: pd.DataFrame, decisions: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4))
    for metric, label in (("estimated_roc_auc", "estimated ROC AUC (CBPE, 7 days)"), ("roc_auc", "realized ROC AUC (7 days)")):
        series = figures_frame[figures_frame["metric"] == metric].sort_values("day")
        axes.plot(pd.to_datetime(series["day"]), series["value"], label=label, marker=".")
    requested = decisions[decisions["trigger_day"].notna()]
    for i, day in enumerate(requested["trigger_day"]):
        axes.axvline(pd.Timestamp(day), color="orange", linestyle="--", label=None if i else "retraining requested")
    for row in decisions[decisions["promoted"].fillna(False).astype(bool)].itertuples(index=False):
        axes.axvline(pd.Timestamp(row.labelled_through), color="green", label=f"v{row.challenger_version} promoted")
    axes.set(xlabel="day", ylabel="ROC AUC", title="Champion health: estimated vs realized")
    axes.legend(loc="lower left", fontsize="small")
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


@dg.asset(
    key=HEALTH_PLOT,
    deps=[FEATURE_DRIFT, PREDICTION_HEALTH, REALIZED_PERFORMANCE],
    group_name=GROUP,
    pool=DUCKDB_POOL,
    kinds={"duckdb"},
    description="Estimated vs realized 7-day ROC AUC of every monitored day, with retraining requests and promotions "
    "marked; shown on this asset's page.",
)
def model_health_plot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as con:
        if not _table_exists(con, figures.FIGURES_TABLE):
            return dg.MaterializeResult(metadata={"days": 0, "note": "no monitored day yet"})
        frame = con.execute(
            f"SELECT day, metric, value FROM {figures.FIGURES_TABLE} WHERE slice = 'all' "
            "AND metric IN ('estimated_roc_auc', 'roc_auc') AND feature_group IN ('prediction', 'performance')"
        ).df()
        decisions = con.execute(f"SELECT * FROM {DECISIONS_TABLE}").df() if _table_exists(con, DECISIONS_TABLE) \
            else pd.DataFrame(columns=["trigger_day", "promoted", "labelled_through", "challenger_version"])
    png = _plot(frame, decisions)
    return dg.MaterializeResult(metadata={
        "days": int(frame["day"].nunique()),
        "retrainings": len(decisions),
        "plot": dg.MetadataValue.md(embedded_png("model health", png)),
    })


monitoring_assets = [reference, daily_monitoring, retrain_decisions, model_health_plot]
