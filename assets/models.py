"""Layers 6-7, train and deploy: a tuned CatBoost model (scikit-learn baseline beside it),
tracked and versioned in MLflow, promoted behind a guardrail, and batch scoring.

The training asset registers every model as a new version with alias `challenger`;
the champion asset promotes the version its own run trained (read from the run's event log, so
a run started beside it cannot swap the candidate; the alias only when the run trained nothing)
and only if it beats the current `champion` on the same recent labelled days
(flightops.modeling.promotion); predictions are scored by whichever version is champion when the
partition runs, and each row names that version.
"""

import base64
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from assets import groups
from assets.features import FEATURES, LABELS
from flightops.modeling import promotion, tracking
from flightops.modeling.config import DECISION_THRESHOLD, CatBoostConfig
from flightops.modeling.data import latest_days_within, read_labelled_features, recent_labelled_days
from flightops.modeling.schema import FEATURE_COLUMNS, ID_COLUMNS
from flightops.modeling.splits import SplitConfig
from flightops.modeling.tuning import TuningConfig
from flightops.partitions import DAILY, SINGLE_RUN, day_range
from flightops.process_memory import return_free_memory
from flightops.resources import MlflowResource, WarehouseResource
from flightops.warehouse_connections import DUCKDB_POOL

# Training, evaluation and MLflow are imported inside the steps that run them (about 5 s of
# code-location load: MLflow, scikit-learn, CatBoost, matplotlib).
if TYPE_CHECKING:
    from flightops.modeling.training import TrainingConfig

MODEL = dg.AssetKey(["models", "flight_delay_model"])
CHAMPION = dg.AssetKey(["models", "champion"])
# The model's materializations read at a time while looking for the one a run made (other runs' are skipped).
MODEL_RECORDS_PAGE = 20
PREDICTIONS = dg.AssetKey(["deployment", "flight_delay_predictions"])
BATCH_PREDICTIONS_TABLE = "predictions.flight_delay"
# Batch scoring reads the features this many DuckDB vectors (2,048 rows each) at a time: about 20k rows.
# Scoring the year's 328k rows, measured alone: 50 vectors with ORDER BY flight_id (DuckDB then holds the
# sorted result) peaked 333 MB above the start; without the ORDER BY, 25 vectors 156 MB, 10 vectors 105 MB,
# all in 0.8-0.9 s (5 vectors: 81 MB in 0.92 s).
SCORING_VECTORS = 10


class TrainingRunConfig(dg.Config):
    """What a training run may be told from the launchpad; recorded with the MLflow run."""

    first_day: str | None = None  # train on features from this day (default: the first available)
    last_day: str | None = None  # ... to this day (default: the last available)
    # Defaults are the modeling dataclasses' own (flightops/modeling), written there once.
    valid_fraction: float = SplitConfig.valid_fraction
    test_fraction: float = SplitConfig.test_fraction
    # A fixed test window by date (e.g. 2013-10-01 .. 2013-12-31) instead of test_fraction: scores
    # then compare across runs; the days before test_start are train and validation.
    test_start: str | None = None
    test_end: str | None = None  # default: the last day trained on
    # At most this many labelled rows are read into memory: a longer window is cut at its oldest whole
    # days (the latest are kept, a fixed test window among them too). About twice the data set's year (326,587
    # rows), where the training step peaks near 1.0 GB (make bench); each 100k rows more cost about 330 MB
    # (make bench-scaling, measured before training held its rows once).
    max_rows: int = 650_000
    tuning_trials: int = TuningConfig.n_trials  # 0 turns Optuna off
    tuning_timeout_seconds: float = TuningConfig.timeout_seconds
    catboost_iterations: int = CatBoostConfig.iterations

    def training_config(self) -> "TrainingConfig":
        from flightops.modeling.training import TrainingConfig

        return TrainingConfig(
            split=SplitConfig(valid_fraction=self.valid_fraction, test_fraction=self.test_fraction,
                              test_start=_day(self.test_start, "test_start"), test_end=_day(self.test_end, "test_end")),
            catboost=CatBoostConfig(iterations=self.catboost_iterations),
            tuning=TuningConfig(n_trials=self.tuning_trials, timeout_seconds=self.tuning_timeout_seconds),
        )


def _day(text: str | None, field: str) -> date | None:
    """A config field's day, or a message naming the field when it is not YYYY-MM-DD."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as exc:
        raise ValueError(f"Training config {field}={text!r} is not a date; write it as YYYY-MM-DD (e.g. 2013-10-01).") from exc


class PromotionConfig(dg.Config):
    recent_days: int = 14  # the labelled window both challenger and champion are scored on
    metric: str = promotion.PromotionPolicy.metric
    min_improvement: float = promotion.PromotionPolicy.min_improvement

    def policy(self) -> promotion.PromotionPolicy:
        return promotion.PromotionPolicy(metric=self.metric, min_improvement=self.min_improvement)


def embedded_png(name: str, png: bytes) -> str:
    """A PNG as markdown the Dagster UI shows inline (metadata cannot link local files)."""
    return f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _plots(ui_url: str, experiment_id: str, run_id: str) -> tuple[str, dict[str, dg.MetadataValue]]:
    """The run's evaluation plots embedded in markdown (the Dagster UI shows them), and links to each in
    the MLflow UI (a browser does not open the artifact store's file:// paths from the Dagster UI)."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation", dst_path=scratch))
        images, urls = [], {}
        for png in sorted(folder.glob("*.png")):
            images.append(f"### {png.stem}\n{embedded_png(png.stem, png.read_bytes())}")
            link = tracking.artifact_url(ui_url, experiment_id, run_id, f"evaluation/{png.name}")
            urls[f"plot_{png.stem}"] = dg.MetadataValue.url(link)
    return "\n\n".join(images), urls


def _version_link(ui_url: str, version: str | None) -> dg.MetadataValue | str:
    """The model version's page in the MLflow UI, or "none"."""
    return dg.MetadataValue.url(tracking.model_version_url(ui_url, version)) if version else "none"


@dg.asset(
    key=MODEL,
    deps=[FEATURES, LABELS],
    group_name=groups.MODELS,
    pool=DUCKDB_POOL,
    kinds={"catboost", "scikitlearn", "mlflow"},
    description="Tuned CatBoost classifier of arrival delay > 15 min, registered in MLflow as a new version "
    f"of {tracking.REGISTERED_MODEL_NAME} (alias challenger); baseline and constant scored beside it.",
)
def flight_delay_model(context: dg.AssetExecutionContext, config: TrainingRunConfig, warehouse: WarehouseResource,
                       mlflow_store: MlflowResource) -> dg.MaterializeResult:
    from flightops.modeling.training import train_and_register

    first, last = _day(config.first_day, "first_day"), _day(config.last_day, "last_day")
    with warehouse.connect(read_only=True) as con:
        bounded = latest_days_within(con, config.max_rows, first, last)
        frame = read_labelled_features(con, bounded or first, last)
    if bounded is not None:
        context.log.warning(
            f"The labelled rows of {first or 'the first day'}..{last or 'the last day'} are more than max_rows="
            f"{config.max_rows}: trained on {bounded}..{last or 'the last day'} ({len(frame)} rows), the latest whole "
            "days within the bound. Raise max_rows in the run config to train on more (memory grows with it)."
        )
    if frame.empty:
        raise dg.Failure(
            f"No labelled features between {first or 'the start'} and {last or 'the end'} in {warehouse.file}. "
            "Materialize features/flight_features and features/flight_labels for those days first."
        )
    result = train_and_register(frame, mlflow_store, config.training_config(), dagster_run_id=context.run_id, run_name=f"dagster-{context.run_id[:8]}")
    # The rows and the fits' scratch go back to the system before the run's next steps: the heap they
    # leave is otherwise kept, and each later step's peak stands on it (make bench: after the year's
    # training the process held about 960 MB, 845 with this; batch scoring and monitoring then peaked
    # at 948 MB instead of 1,065).
    del frame
    return_free_memory()
    ui_url = mlflow_store.mlflow_ui_url
    plots, plot_urls = _plots(ui_url, result.experiment_id, result.run_id)
    test = {f"test_{kind}_{metric}": round(value, 4)
            for kind, metrics in result.test_metrics.items()
            for metric, value in metrics.items() if metric in ("roc_auc", "pr_auc", "log_loss", "brier")}
    return dg.MaterializeResult(
        metadata={
            "model_version": result.model_version,
            "mlflow_model_version": _version_link(ui_url, result.model_version),
            "mlflow_run": dg.MetadataValue.url(tracking.run_url(ui_url, result.experiment_id, result.run_id)),
            "mlflow_run_id": result.run_id,
            "model_uri": f"models:/{tracking.REGISTERED_MODEL_NAME}/{result.model_version}",
            **{f"window_{k}": str(v) for k, v in result.windows.as_params().items()},
            **{k if k.startswith("rows_") else f"rows_{k}": v for k, v in result.row_counts.items()},
            **test,
            "tuning_trials_completed": result.tuning.trials_completed,
            "fit_seconds": round(result.fit_seconds, 1),
            "evaluation_plots": dg.MetadataValue.md(plots),
            **plot_urls,
        }
    )


def version_trained_in_run(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The model version the run's training step registered (its materialization's metadata), or None.

    Not the `challenger` alias: that names the newest version of any run, and with two runs at once
    it may already point at the other run's model when this run's promotion step starts.
    Read from the model's own materializations since the run started, newest first: not from the run's
    materializations, whose thousands of per-day events (a year's catch-up: 8,000, with dbt's column
    schemas) took 3 s to read back for the one wanted.
    """
    run = instance.get_run_record_by_id(run_id)
    records_filter = dg.AssetRecordsFilter(asset_key=MODEL, after_timestamp=run.start_time if run else None)
    cursor = None
    while True:
        page = instance.fetch_materializations(records_filter, limit=MODEL_RECORDS_PAGE, cursor=cursor)
        for record in page.records:
            if record.run_id == run_id:
                return record.asset_materialization.metadata["model_version"].value
        if not page.has_more:
            return None
        cursor = page.cursor


@dg.asset(
    key=CHAMPION,
    deps=[MODEL],
    group_name=groups.MODELS,
    pool=DUCKDB_POOL,
    kinds={"mlflow"},
    description="The deployment gate: the challenger becomes champion only if it beats the champion on the "
    "same recent labelled days by a margin and passes sanity checks; the decision and both scores are recorded.",
)
def champion(context: dg.AssetExecutionContext, config: PromotionConfig, warehouse: WarehouseResource,
             mlflow_store: MlflowResource) -> dg.MaterializeResult:
    client = tracking.mlflow_client(mlflow_store)
    challenger = version_trained_in_run(context.instance, context.run_id)
    if challenger is not None:
        judged = f"v{challenger}, trained in this run (its {MODEL.to_user_string()} materialization)"
    else:
        challenger = promotion.alias_version(client, promotion.CHALLENGER_ALIAS)
        if challenger is None:
            raise dg.Failure(f"This run trained no model and no version has the alias challenger in "
                             f"{mlflow_store.mlflow_tracking_uri}; materialize {MODEL.to_user_string()} first "
                             "(or with models/champion in one run).")
        judged = (f"v{challenger}, the {promotion.CHALLENGER_ALIAS!r} alias: this run trained no model "
                  f"({MODEL.to_user_string()} was not materialized in it)")
    context.log.info(f"Judging {judged}.")
    with warehouse.connect(read_only=True) as con:
        window = recent_labelled_days(con, config.recent_days)
    decision = promotion.decide_promotion(challenger, window, mlflow_store, config.policy())
    context.log.info(f"Promotion of v{challenger}: {'promoted' if decision.promoted else 'rejected'}: {'; '.join(decision.reasons)}")
    now_champion = promotion.alias_version(client, promotion.CHAMPION_ALIAS)
    return dg.MaterializeResult(
        metadata={
            "champion_version": now_champion or "none",
            "champion_model_version": _version_link(mlflow_store.mlflow_ui_url, now_champion),
            "challenger_version": challenger,
            "challenger_judged": judged,
            "challenger_model_version": _version_link(mlflow_store.mlflow_ui_url, challenger),
            "promoted": decision.promoted,
            "reasons": "; ".join(decision.reasons),
            "window": decision.window,
            f"challenger_{decision.metric}": round(decision.challenger_score, 4),
            f"previous_champion_{decision.metric}": round(decision.champion_score, 4) if decision.champion_score is not None else "none",
            "previous_champion_version": decision.champion_version or "none",
        }
    )


@dg.asset(
    key=PREDICTIONS,
    deps=[FEATURES, CHAMPION],
    group_name=groups.DEPLOYMENT,
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    pool=DUCKDB_POOL,
    kinds={"duckdb", "mlflow"},
    description=f"Batch scores of every flight of the day by the current champion ({BATCH_PREDICTIONS_TABLE}), "
    "each row carrying the model version that scored it.",
)
def flight_delay_predictions(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                             mlflow_store: MlflowResource) -> dg.MaterializeResult:
    first, last = day_range(context)
    model, version = promotion.load_champion(mlflow_store)
    columns = ", ".join((*ID_COLUMNS, *FEATURE_COLUMNS))
    with warehouse.connect() as con:
        # Scored a chunk at a time into a temporary table (DuckDB spills it past its memory limit): a long
        # range's features never sit in memory at once. The reader is a second cursor on the same database.
        reader = con.cursor()
        reader.execute(f"SELECT {columns} FROM features.flight_features WHERE flight_date BETWEEN ? AND ?", [first, last])
        created = False
        while True:
            features = reader.fetch_df_chunk(SCORING_VECTORS)
            if created and features.empty:
                break
            scored = features[list(ID_COLUMNS)].copy()
            scored["probability"] = model.predict_proba(features)[:, 1] if len(features) else []
            scored["predicted_delayed"] = scored["probability"] >= DECISION_THRESHOLD
            scored["model_name"] = tracking.REGISTERED_MODEL_NAME
            scored["model_version"] = str(version)
            con.register("_chunk", scored)
            con.execute("INSERT INTO _scored SELECT *, current_timestamp AS scored_at FROM _chunk" if created else
                        "CREATE TEMP TABLE _scored AS SELECT *, current_timestamp AS scored_at FROM _chunk")
            con.unregister("_chunk")
            created = True
        reader.close()
        con.execute("CREATE SCHEMA IF NOT EXISTS predictions")
        con.execute(f"CREATE TABLE IF NOT EXISTS {BATCH_PREDICTIONS_TABLE} AS SELECT * FROM _scored LIMIT 0")
        con.execute("BEGIN TRANSACTION")
        con.execute(f"DELETE FROM {BATCH_PREDICTIONS_TABLE} WHERE flight_date BETWEEN ? AND ?", [first, last])
        con.execute(f"INSERT INTO {BATCH_PREDICTIONS_TABLE} SELECT * FROM _scored")
        con.execute("COMMIT")
        rows, delayed_share, mean_probability = con.execute(
            "SELECT count(*), coalesce(avg(predicted_delayed::INT), 0), coalesce(avg(probability), 0) FROM _scored").fetchone()
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "model_version": str(version),
            "predicted_delayed_share": round(float(delayed_share), 4),
            "mean_probability": round(float(mean_probability), 4),
        }
    )


model_assets = [flight_delay_model, champion, flight_delay_predictions]
