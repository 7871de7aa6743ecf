"""Registry aliases and the guarded promotion of a challenger to champion.

`challenger` names the latest registered candidate (what the UI shows); `champion` names the
version that serves. A run's promotion step judges the version that run trained, not the alias,
which another run may have moved meanwhile (assets/models.py `version_trained_in_run`).
A challenger replaces the champion only when it scores better on the same recent labelled
window by a margin and its predictions look sane. Every champion change is pushed onto a
history kept in a registered-model tag, which is what `rollback()` walks back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from flightops.modeling.splits import flight_days
from flightops.modeling.tracking import REGISTERED_MODEL_NAME, MlflowStore, configure_mlflow, mlflow_client

# MLflow, scikit-learn and evaluate.py (matplotlib) are imported inside the functions that use them
# (about 3 s of code-location load, which reads only the policy's defaults and the alias names).
if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
HISTORY_TAG = "champion_history"  # JSON list of versions that were champion, oldest first
DECISION_TAG_PREFIX = "promotion."
# Whether a larger value of each metric is better (promotion compares in this direction).
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
}


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger may replace the champion.

    The challenger must beat the champion's `metric` by at least `min_improvement` (in the
    metric's better direction) and pass the sanity checks: no NaN metric, ROC AUC at least
    `min_roc_auc` (clearly better than chance, which the constant predictor scores), mean
    probability and positive rate (share of flights at or above 0.5) inside the bounds.
    """

    metric: str = "roc_auc"
    min_improvement: float = 0.002
    min_roc_auc: float = 0.55
    mean_probability_bounds: tuple[float, float] = (0.02, 0.6)
    positive_rate_bounds: tuple[float, float] = (0.0, 0.5)
    min_rows: int = 500

    def __post_init__(self) -> None:
        if self.metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"PromotionPolicy.metric {self.metric!r} is not comparable; choose one of {sorted(HIGHER_IS_BETTER)}."
            )


@dataclass(frozen=True)
class PromotionDecision:
    challenger_version: str
    champion_version: str | None  # the champion before the decision
    metric: str
    challenger_score: float
    champion_score: float | None
    promoted: bool
    reasons: tuple[str, ...]
    window: str
    challenger_metrics: dict[str, float] = field(repr=False)
    champion_metrics: dict[str, float] | None = field(repr=False)

    def as_tags(self) -> dict[str, str]:
        return {
            f"{DECISION_TAG_PREFIX}decision": "promoted" if self.promoted else "rejected",
            f"{DECISION_TAG_PREFIX}reasons": "; ".join(self.reasons),
            f"{DECISION_TAG_PREFIX}metric": self.metric,
            f"{DECISION_TAG_PREFIX}challenger_score": repr(self.challenger_score),
            f"{DECISION_TAG_PREFIX}champion_score": repr(self.champion_score),
            f"{DECISION_TAG_PREFIX}champion_version": self.champion_version or "none",
            f"{DECISION_TAG_PREFIX}window": self.window,
        }


@dataclass(frozen=True)
class RollbackResult:
    previous_champion: str
    champion: str
    history: list[str]

    def describe(self) -> str:
        return (f"{REGISTERED_MODEL_NAME}: champion moved from version {self.previous_champion} "
                f"to version {self.champion}.")


def alias_version(client: MlflowClient, alias: str) -> str | None:
    """The version an alias points at, or None when the alias (or the registered model) is absent."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(REGISTERED_MODEL_NAME)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = registered.aliases.get(alias)
    return None if version is None else str(version)


def champion_history(client: MlflowClient) -> list[str]:
    """Versions that were champion, oldest first (from the registered-model tag)."""
    tags = client.get_registered_model(REGISTERED_MODEL_NAME).tags
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def _set_champion(client: MlflowClient, version: str, history: list[str]) -> None:
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, version)
    client.set_registered_model_tag(REGISTERED_MODEL_NAME, HISTORY_TAG, json.dumps(history))


def mark_challenger(client: MlflowClient, version: str) -> None:
    """Point `challenger` at a newly registered version."""
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHALLENGER_ALIAS, version)


def load_version(version: str) -> Pipeline:
    """The scikit-learn pipeline of one registered version (MLflow must be configured)."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(f"models:/{REGISTERED_MODEL_NAME}/{version}")


def _sanity_failures(metrics: dict[str, float], policy: PromotionPolicy) -> list[str]:
    failures = [f"{name} is NaN" for name, value in metrics.items() if math.isnan(value)]
    if metrics["roc_auc"] < policy.min_roc_auc:
        failures.append(f"ROC AUC {metrics['roc_auc']:.4f} below {policy.min_roc_auc} (hardly better than chance)")
    low, high = policy.mean_probability_bounds
    if not low <= metrics["mean_probability"] <= high:
        failures.append(f"mean probability {metrics['mean_probability']:.4f} outside [{low}, {high}]")
    low, high = policy.positive_rate_bounds
    if not low <= metrics["positive_rate"] <= high:
        failures.append(f"predicted positive rate {metrics['positive_rate']:.4f} outside [{low}, {high}]")
    return failures


def _describe_window(window: pd.DataFrame) -> str:
    days = flight_days(window)
    return f"{days.min().isoformat()}..{days.max().isoformat()} ({len(window)} rows)"


def decide_promotion(
    challenger_version: str,
    window: pd.DataFrame,
    store: MlflowStore,
    policy: PromotionPolicy = PromotionPolicy(),
) -> PromotionDecision:
    """Score challenger and current champion on `window` (labelled features); promote or keep.

    The decision is recorded as tags on the challenger's model version and on its training run.
    """
    from flightops.modeling.evaluate import evaluate

    if len(window) < policy.min_rows:
        raise ValueError(
            f"The promotion window has {len(window)} labelled rows, fewer than PromotionPolicy.min_rows="
            f"{policy.min_rows}; widen the window of recent labelled days."
        )
    configure_mlflow(store)
    client = mlflow_client(store)
    challenger_version = str(challenger_version)
    champion_version = alias_version(client, CHAMPION_ALIAS)
    challenger_metrics = evaluate(load_version(challenger_version), window).metrics
    challenger_score = challenger_metrics[policy.metric]
    reasons = _sanity_failures(challenger_metrics, policy)
    champion_metrics = None
    champion_score = None
    if champion_version == challenger_version:
        reasons.append(f"version {challenger_version} is already champion")
    elif champion_version is not None:
        champion_metrics = evaluate(load_version(champion_version), window).metrics
        champion_score = champion_metrics[policy.metric]
        gain = challenger_score - champion_score if HIGHER_IS_BETTER[policy.metric] else champion_score - challenger_score
        if not gain >= policy.min_improvement:
            reasons.append(
                f"{policy.metric} {challenger_score:.4f} does not beat champion v{champion_version} "
                f"{champion_score:.4f} by the required {policy.min_improvement} (gain {gain:+.4f})"
            )
    promoted = not reasons
    if promoted:
        reasons.append(
            "no champion yet; sanity checks passed" if champion_version is None else
            f"{policy.metric} {challenger_score:.4f} beats champion v{champion_version} {champion_score:.4f} "
            f"by at least {policy.min_improvement}; sanity checks passed"
        )
        _set_champion(client, challenger_version, [*champion_history(client), challenger_version])
    decision = PromotionDecision(
        challenger_version=challenger_version,
        champion_version=champion_version,
        metric=policy.metric,
        challenger_score=challenger_score,
        champion_score=champion_score,
        promoted=promoted,
        reasons=tuple(reasons),
        window=_describe_window(window),
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
    )
    run_id = client.get_model_version(REGISTERED_MODEL_NAME, challenger_version).run_id
    for key, value in decision.as_tags().items():
        client.set_model_version_tag(REGISTERED_MODEL_NAME, challenger_version, key, value)
        client.set_tag(run_id, key, value)
    return decision


def rollback(to_version: int | str | None = None, *, store: MlflowStore) -> RollbackResult:
    """Point `champion` back at the previous champion, or at `to_version` when given."""
    from mlflow.exceptions import MlflowException

    configure_mlflow(store)
    client = mlflow_client(store)
    current = alias_version(client, CHAMPION_ALIAS)
    if current is None:
        raise RuntimeError(
            f"{REGISTERED_MODEL_NAME} has no champion in {store.mlflow_tracking_uri}; nothing to roll back. "
            "Train and promote a model first."
        )
    history = champion_history(client)
    if to_version is None:
        while history and history[-1] == current:
            history.pop()
        if not history:
            raise RuntimeError(
                f"No earlier champion of {REGISTERED_MODEL_NAME} is recorded (history tag {HISTORY_TAG!r}); "
                "name the version to roll back to (`flightops model rollback --version N`)."
            )
        target = history[-1]
    else:
        target = str(to_version)
        if target == current:
            raise RuntimeError(
                f"Version {target} of {REGISTERED_MODEL_NAME} is already champion; nothing to roll back. "
                "Name another version, or omit --version to go back to the previous champion."
            )
        try:
            client.get_model_version(REGISTERED_MODEL_NAME, target)
        except MlflowException as exc:
            raise RuntimeError(
                f"{REGISTERED_MODEL_NAME} has no version {target} in {store.mlflow_tracking_uri}; "
                "list versions in the MLflow UI and pass an existing one."
            ) from exc
        history.append(target)
    _set_champion(client, target, history)
    client.set_model_version_tag(REGISTERED_MODEL_NAME, target, "rollback.from_version", current)
    return RollbackResult(previous_champion=current, champion=target, history=history)


def load_champion(store: MlflowStore) -> tuple[Pipeline, str]:
    """The serving model and its version number.

    The alias is resolved once and that version is loaded, so the returned version is the
    one whose model is returned even if the alias moves meanwhile.
    """
    configure_mlflow(store)
    version = alias_version(mlflow_client(store), CHAMPION_ALIAS)
    if version is None:
        raise RuntimeError(
            f"{REGISTERED_MODEL_NAME} has no {CHAMPION_ALIAS!r} alias in {store.mlflow_tracking_uri}; "
            "train a model and promote it (or `flightops model rollback --version N`)."
        )
    return load_version(version), version
