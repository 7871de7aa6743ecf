"""Optuna search over CatBoost settings within a bounded budget.

Objective: validation log loss (minimised). It is a proper scoring rule, so it rewards
calibrated probabilities as well as ranking, and it is smooth where ROC AUC moves in steps.
Each trial stops early on the validation window; the chosen number of trees is the best
trial's best iteration, which the final refit on train + valid uses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd

from flightops.modeling.config import CatBoostConfig
from flightops.modeling.schema import labels_of, model_inputs

# Imported inside tune_catboost: Optuna, scikit-learn, CatBoost (about 2.5 s of code-location load,
# which reads only TuningConfig's defaults).
if TYPE_CHECKING:
    import optuna

OBJECTIVE = "valid_log_loss"


@dataclass(frozen=True)
class TuningConfig:
    """The search budget: stops at n_trials or timeout_seconds, whichever comes first.

    The defaults are the platform's (a training run's `TrainingRunConfig` takes them from here).
    n_trials = 0 turns tuning off (the CatBoostConfig defaults are used as they are).
    The timeout is checked between trials, so a run may exceed it by one trial.
    """

    n_trials: int = 5
    timeout_seconds: float = 120.0
    max_iterations: int = 800
    early_stopping_rounds: int = 40
    seed: int = 2013

    def __post_init__(self) -> None:
        if self.n_trials < 0 or self.timeout_seconds <= 0:
            raise ValueError(
                f"TuningConfig needs n_trials >= 0 and a positive timeout_seconds; got "
                f"n_trials={self.n_trials}, timeout_seconds={self.timeout_seconds}."
            )

    @property
    def enabled(self) -> bool:
        return self.n_trials > 0


@dataclass(frozen=True)
class TuningResult:
    """The settings to refit with, and what the search saw."""

    config: CatBoostConfig
    trials_completed: int
    best_valid_log_loss: float | None
    trials: pd.DataFrame


def _suggest(trial: optuna.Trial, base: CatBoostConfig, max_iterations: int) -> CatBoostConfig:
    return replace(
        base,
        iterations=max_iterations,
        depth=trial.suggest_int("depth", 4, 8),
        learning_rate=trial.suggest_float("learning_rate", 0.02, 0.15, log=True),
        l2_leaf_reg=trial.suggest_float("l2_leaf_reg", 1.0, 30.0, log=True),
        random_strength=trial.suggest_float("random_strength", 0.1, 5.0, log=True),
    )


def tune_catboost(train: pd.DataFrame, valid: pd.DataFrame, base: CatBoostConfig, tuning: TuningConfig) -> TuningResult:
    """Search CatBoost settings on train (fit) / valid (early stopping and objective)."""
    if not tuning.enabled:
        return TuningResult(config=base, trials_completed=0, best_valid_log_loss=None, trials=pd.DataFrame())
    import optuna
    from sklearn.metrics import log_loss

    from flightops.modeling.models import build_catboost

    y_train, y_valid = labels_of(train), labels_of(valid)
    valid_inputs = model_inputs(valid)

    def objective(trial: optuna.Trial) -> float:
        config = _suggest(trial, base, tuning.max_iterations)
        model = build_catboost(config)
        model.fit(
            train, y_train,
            classifier__eval_set=(valid_inputs, y_valid),
            classifier__early_stopping_rounds=tuning.early_stopping_rounds,
        )
        trial.set_user_attr("iterations", int(model.named_steps["classifier"].get_best_iteration()) + 1)
        return float(log_loss(y_valid, model.predict_proba(valid_inputs)[:, 1], labels=[0, 1]))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=tuning.seed))
    study.optimize(objective, n_trials=tuning.n_trials, timeout=tuning.timeout_seconds)
    best = study.best_trial
    chosen = replace(_suggest(best, base, tuning.max_iterations), iterations=best.user_attrs["iterations"])
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "duration", "state"))
    return TuningResult(config=chosen, trials_completed=len(study.trials), best_valid_log_loss=best.value, trials=trials)
