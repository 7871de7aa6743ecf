"""One training run: split by time, tune, refit, score once on test, log to MLflow, register.

The registered model is the CatBoost pipeline. The logistic baseline and the constant
base-rate predictor are fitted on the same rows and scored on the same test window, and
their scores are logged beside it, so every run shows what the model adds.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.pipeline import Pipeline

from flightops.modeling import evaluate as ev
from flightops.modeling.data import LEAD_COLUMN, prediction_lead
from flightops.modeling.models import BaselineConfig, CatBoostConfig, build_baseline, build_catboost
from flightops.modeling.promotion import mark_challenger
from flightops.modeling.schema import FEATURE_COLUMNS, labels_of
from flightops.modeling.splits import DataSplit, SplitConfig, SplitWindows, flight_days, plan_windows, split_by_time
from flightops.modeling.tracking import (
    KNOWN_CATEGORIES,
    MODEL_ARTIFACT_NAME,
    REGISTERED_MODEL_NAME,
    Lineage,
    MlflowStore,
    configure_mlflow,
    describe_registered_model,
    git_commit,
    in_signature_types,
    known_categories,
    mlflow_client,
    model_signature,
    training_data_hash,
)
from flightops.modeling.tuning import OBJECTIVE, TuningConfig, TuningResult, tune_catboost

REGISTERED_KIND = "catboost"  # of the models fitted in a run, the one registered
# What unpickling the logged pipeline needs. Written out because MLflow's inference of them
# starts a subprocess that re-imports the model (about 5 s per run). The pipeline also imports
# `flightops` (ModelInputs), which is not on PyPI: load models in the project's environment.
_MODEL_PACKAGES = ("mlflow", "scikit-learn", "catboost", "pandas", "numpy", "cloudpickle")


def _pip_requirements() -> list[str]:
    return [f"{package}=={importlib.metadata.version(package)}" for package in _MODEL_PACKAGES]


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run can be told; the defaults are the production settings."""

    split: SplitConfig = field(default_factory=SplitConfig)
    catboost: CatBoostConfig = field(default_factory=CatBoostConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    importance_rows: int = 5000


@dataclass(frozen=True)
class TrainingResult:
    """What a run produced; fit_seconds covers tuning and the three fits."""

    run_id: str
    experiment_id: str
    model_version: str
    windows: SplitWindows
    row_counts: dict[str, int]
    test_metrics: dict[str, dict[str, float]]  # "catboost" / "baseline" / "constant" -> metrics on the test window
    tuning: TuningResult
    model: Pipeline
    fit_seconds: float


def _params(config: TrainingConfig, tuning: TuningResult, windows: SplitWindows,
            lead_minutes: int) -> dict[str, str | int | float]:
    return {
        **windows.as_params(),
        LEAD_COLUMN: lead_minutes,
        **{f"catboost_{name}": value for name, value in tuning.config.as_params().items()},
        **{f"baseline_{name}": value for name, value in asdict(config.baseline).items()},
        **{f"tuning_{name}": value for name, value in asdict(config.tuning).items()},
        "tuning_objective": OBJECTIVE,
        "features": ",".join(FEATURE_COLUMNS),
    }


def _metrics(evaluations: dict[str, ev.Evaluation], tuning: TuningResult, fit_seconds: float) -> dict[str, float]:
    """test_<metric> for the registered model, test_<kind>_<metric> for the comparison models."""
    metrics = {}
    for kind, evaluation in evaluations.items():
        prefix = "test_" if kind == REGISTERED_KIND else f"test_{kind}_"
        metrics.update({f"{prefix}{name}": value for name, value in evaluation.metrics.items()})
    metrics["tuning_trials_completed"] = tuning.trials_completed
    if tuning.best_valid_log_loss is not None:
        metrics[OBJECTIVE] = tuning.best_valid_log_loss
    metrics["fit_seconds"] = fit_seconds
    return metrics


# The test scores a model version's description quotes, with their names there.
_DESCRIBED_METRICS = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "log_loss": "log loss", "brier": "Brier"}


def _version_description(windows: SplitWindows, test_metrics: dict[str, dict[str, float]],
                         row_counts: dict[str, int]) -> str:
    """What the MLflow UI shows for a version: the days it learned from and how it scored on the test days."""
    scores = []
    for metric, label in _DESCRIBED_METRICS.items():
        others = ", ".join(f"{kind} {metrics[metric]:.3f}" for kind, metrics in test_metrics.items()
                           if kind != REGISTERED_KIND)
        scores.append(f"{label} {test_metrics[REGISTERED_KIND][metric]:.3f} ({others})")
    return (
        f"Trained on {windows.train_start}..{windows.valid_end} (train {windows.train_start}..{windows.train_end}, "
        f"validation {windows.valid_start}..{windows.valid_end}, then refit on both; "
        f"{row_counts['rows_train'] + row_counts['rows_valid']} flights). "
        f"Test window {windows.test_start}..{windows.test_end} ({row_counts['rows_test']} flights): "
        f"{'; '.join(scores)}."
    )


def _write_evaluation(folder: Path, split: DataSplit, evaluations: dict[str, ev.Evaluation],
                      importance: pd.Series, tuning: TuningResult) -> None:
    """Plots and tables of the test-window evaluation, as files to log."""
    y_test = labels_of(split.test).to_numpy()
    probabilities = {name: evaluation.probability for name, evaluation in evaluations.items()}
    ev.plot_roc(y_test, probabilities, folder / "roc.png")
    ev.plot_precision_recall(y_test, probabilities, folder / "precision_recall.png")
    ev.plot_calibration({name: e.calibration for name, e in evaluations.items()}, folder / "calibration.png")
    ev.plot_feature_importance(importance, folder / "feature_importance.png")
    importance.rename("roc_auc_drop").to_csv(folder / "feature_importance.csv", index_label="feature")
    for name, evaluation in evaluations.items():
        evaluation.calibration.to_csv(folder / f"calibration_{name}.csv", index=False)
        for column, table in evaluation.by_group.items():
            table.to_csv(folder / f"metrics_by_{column}_{name}.csv", index=False)
    if not tuning.trials.empty:
        tuning.trials.to_csv(folder / "tuning_trials.csv", index=False)


def sampled(rows: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` of `rows` (all of them for 0), drawn at random with `seed`, in their order."""
    if not max_rows or len(rows) <= max_rows:
        return rows
    return rows.sample(n=max_rows, random_state=seed).sort_index()


def train_and_register(
    frame: pd.DataFrame,
    store: MlflowStore,
    config: TrainingConfig = TrainingConfig(),
    *,
    windows: SplitWindows | None = None,
    partition_range: tuple[str, str] | None = None,
    dagster_run_id: str | None = None,
    run_name: str | None = None,
) -> TrainingResult:
    """Train on `frame` (features joined with labels), log the run, register a new version as challenger.

    `windows` overrides the split planned from config.split; `partition_range` is the feature
    partition range recorded as lineage (default: first and last flight_date of `frame`).
    Promotion to champion is a separate step (promotion.decide_promotion).
    """
    lead_minutes = prediction_lead(frame)
    experiment_id = configure_mlflow(store)
    split = split_by_time(frame, windows or plan_windows(frame, config.split))
    train_valid = split.train_and_valid
    y_train_valid = labels_of(train_valid)

    # The comparison models are fitted and scored before CatBoost: CatBoost's own allocator (mimalloc) keeps
    # its fit's memory for the rest of the process, and whatever comes after adds to it. Profiled alone on
    # the year: the baseline fitted after CatBoost peaked at 1,127 MB, before it at 905; scored after it, at
    # 985 MB (64 above what CatBoost kept), before it at 779.
    started = time.perf_counter()
    baseline_rows = sampled(train_valid, config.baseline.max_rows, seed=config.catboost.random_seed)
    comparisons = {
        "baseline": build_baseline(config.baseline).fit(baseline_rows, labels_of(baseline_rows)),
        "constant": ev.ConstantProbability().fit(train_valid, y_train_valid),
    }
    del baseline_rows
    fit_seconds = time.perf_counter() - started
    scored = {kind: ev.evaluate(fitted, split.test) for kind, fitted in comparisons.items()}
    started = time.perf_counter()
    tuning = tune_catboost(split.train, split.valid, config.catboost, config.tuning)
    model = build_catboost(tuning.config).fit(train_valid, y_train_valid)
    fit_seconds += time.perf_counter() - started
    evaluations = {REGISTERED_KIND: ev.evaluate(model, split.test), **scored}
    importance = ev.permutation_importance_by_feature(model, split.test, max_rows=config.importance_rows,
                                                      seed=config.catboost.random_seed)

    days = flight_days(frame)
    start, end = partition_range or (days.min().isoformat(), days.max().isoformat())
    lineage = Lineage(
        partition_start=start,
        partition_end=end,
        row_counts=split.row_counts(),
        data_hash=training_data_hash(train_valid),
        git_commit=git_commit(),
        dagster_run_id=dagster_run_id,
    )
    example = in_signature_types(split.test.head(5))
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=lineage.as_tags()) as run:
        mlflow.log_params(_params(config, tuning, split.windows, lead_minutes))
        mlflow.log_metrics(_metrics(evaluations, tuning, fit_seconds))
        with tempfile.TemporaryDirectory(prefix="flightops-evaluation-") as folder:
            _write_evaluation(Path(folder), split, evaluations, importance, tuning)
            mlflow.log_artifacts(folder, artifact_path="evaluation")
        model_info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT_NAME,
            signature=model_signature(),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            registered_model_name=REGISTERED_MODEL_NAME,
            pip_requirements=_pip_requirements(),
            metadata={KNOWN_CATEGORIES: known_categories(train_valid)},
        )
        version = str(model_info.registered_model_version)
        client = mlflow_client(store)
        test_metrics = {name: evaluation.metrics for name, evaluation in evaluations.items()}
        describe_registered_model(client)
        client.update_model_version(REGISTERED_MODEL_NAME, version,
                                    description=_version_description(split.windows, test_metrics, split.row_counts()))
        for key, value in lineage.as_tags().items():
            client.set_model_version_tag(REGISTERED_MODEL_NAME, version, key, value)
        mark_challenger(client, version)
        mlflow.set_tag("registered_model_version", version)
    return TrainingResult(
        run_id=run.info.run_id,
        experiment_id=experiment_id,
        model_version=version,
        windows=split.windows,
        row_counts=split.row_counts(),
        test_metrics=test_metrics,
        tuning=tuning,
        model=model,
        fit_seconds=fit_seconds,
    )
