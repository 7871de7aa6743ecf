"""The classifiers' settings and the decision threshold, apart from the classifiers (models.py) and their
evaluation (evaluate.py) so that reading them (the code location's training config, batch scoring, the
service) imports neither scikit-learn, CatBoost nor matplotlib."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The probability from which a flight is predicted delayed: batch scoring, the service and evaluation.
DECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class BaselineConfig:
    """Logistic regression settings (C is the inverse regularisation strength).

    The baseline is CatBoost's yardstick, not a served model, so it is fitted on a seeded random
    sample of at most `max_rows` of train+validation (0: all of them). On the year's 277,801 rows a
    100,000-row sample scored within 0.001 of the whole's test ROC AUC (0.7415, 0.7420 and, with the
    training's seed 2013, 0.7406; 0.7416 on all rows) in a quarter of the fit time (1.5 against 6.4 s)
    and about a third of the memory (150 against 425 MB above the step's start), measured alone; the
    most recent 100,000 or 150,000 rows instead scored 0.7400 and 0.7323 (one season).
    """

    C: float = 1.0
    max_iter: int = 2000
    max_rows: int = 100_000


@dataclass(frozen=True)
class CatBoostConfig:
    """CatBoost settings; the tunable ones are replaced by Optuna's choice (see tuning.py)."""

    iterations: int = 300
    learning_rate: float = 0.08
    depth: int = 6
    l2_leaf_reg: float = 3.0
    random_strength: float = 1.0
    thread_count: int = 2
    random_seed: int = 2013

    def as_params(self) -> dict[str, float | int]:
        return asdict(self)

    def classifier_arguments(self) -> dict[str, float | int | bool | str]:
        """Everything CatBoostClassifier takes but the categorical columns: these settings plus the fixed
        structure. Carrier and origin (few values) are one-hot encoded; the other categoricals get target
        statistics combined at most in pairs, which keeps a full-year fit to seconds instead of minutes.
        With has_time, a row's statistics use only earlier rows, so fit on rows in time order."""
        return {**self.as_params(), "one_hot_max_size": 20, "max_ctr_complexity": 2, "has_time": True,
                "loss_function": "Logloss", "allow_writing_files": False, "verbose": 0}
