"""Layers 6-7: training with tuning, evaluation, MLflow tracking and registry, guarded promotion.

Plain functions over DataFrames and small config dataclasses; the Dagster assets call them.
"""

from flightops.modeling.data import join_labels, read_labelled_features
from flightops.modeling.promotion import (
    PromotionDecision,
    PromotionPolicy,
    RollbackResult,
    decide_promotion,
    load_champion,
    rollback,
)
from flightops.modeling.splits import SplitConfig, SplitWindows
from flightops.modeling.tracking import EXPERIMENT_NAME, REGISTERED_MODEL_NAME
from flightops.modeling.training import TrainingConfig, TrainingResult, train_and_register
from flightops.modeling.tuning import TuningConfig

__all__ = [
    "EXPERIMENT_NAME",
    "REGISTERED_MODEL_NAME",
    "PromotionDecision",
    "PromotionPolicy",
    "RollbackResult",
    "SplitConfig",
    "SplitWindows",
    "TrainingConfig",
    "TrainingResult",
    "TuningConfig",
    "decide_promotion",
    "join_labels",
    "load_champion",
    "read_labelled_features",
    "rollback",
    "train_and_register",
]
