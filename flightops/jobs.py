"""Jobs: named selections of the asset graph that sensors and the CLI launch."""

from __future__ import annotations

import dagster as dg

from assets import groups
from assets.monitoring import REFERENCE, RETRAIN_DECISIONS
from assets.transform import monitoring_models
from flightops.contracts import REFERENCE_CONTRACTS
from flightops.partitions import DAILY

TRAINING_AND_PROMOTION = dg.AssetSelection.groups(groups.MODELS)
# Runs execute their steps in one process: every step that touches the warehouse is serialised by the
# duckdb_warehouse pool anyway, and the multiprocess default would import the code location (dbt
# manifest, Evidently, MLflow: about 10 s) again for each of a run's fifteen steps.
EXECUTOR = dg.in_process_executor
# The reference rebuild, the decision record and the model-health mart (which marks retraining days)
# follow every training: they belong to retraining.
RETRAINING_FOLLOW_UP = dg.AssetSelection.assets(REFERENCE, RETRAIN_DECISIONS) | dg.AssetSelection.assets(monitoring_models)

# Everything for a range of days (unpartitioned assets are rebuilt whole): the first run of a platform,
# when no champion exists yet (`flightops run`).
main_job = dg.define_asset_job(
    "main_job",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.all(),
    partitions_def=DAILY,
    description="The whole asset graph for a range of days: ingestion, validation, dbt warehouse, features, "
    "training, promotion, batch predictions, monitoring.",
)

# New days through every layer but training: what a newly landed file needs. Predictions and monitoring
# use the current champion; retraining is the retraining sensor's decision (or a user's).
daily_job = dg.define_asset_job(
    "daily_job",
    executor_def=EXECUTOR,
    selection=dg.AssetSelection.all() - TRAINING_AND_PROMOTION - dg.AssetSelection.assets(RETRAIN_DECISIONS),
    partitions_def=DAILY,
    description="New days from ingestion to batch predictions and monitoring, without retraining.",
)

RETRAINING_JOB_NAME = "retraining_job"
# Train on the labelled features (the daily runs keep them current), decide behind the guardrail, rebuild the
# monitoring reference for whichever version is champion, record the decision.
retraining_job = dg.define_asset_job(
    RETRAINING_JOB_NAME,
    executor_def=EXECUTOR,
    selection=TRAINING_AND_PROMOTION | RETRAINING_FOLLOW_UP,
    description="Train a challenger up to the last labelled day, guarded promotion, monitoring reference rebuild, "
    "a row in monitoring.retrain_decisions, the model-health mart. Launched by retraining_sensor (or by hand).",
)

# Reference data only: what a new airports/airlines/planes file needs.
REFERENCE_KEYS = [dg.AssetKey([layer, contract.source])
                  for layer in ("raw", "clean", "quarantine") for contract in REFERENCE_CONTRACTS]
