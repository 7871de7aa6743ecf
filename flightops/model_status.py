"""`flightops model status`: the registry at a glance, without opening the MLflow UI.

One line per registered version (newest first): its aliases, when it was registered, its test
metrics from the training run, the days it was trained on and the promotion decision recorded on
it; then the champion history that `flightops model rollback` walks back.
"""

from __future__ import annotations

import json
from datetime import datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from flightops.modeling.promotion import HISTORY_TAG
from flightops.modeling.tracking import REGISTERED_MODEL_NAME, mlflow_client
from flightops.settings import Settings

# The training run's metrics shown per version (logged by flightops.modeling.training).
KEY_METRICS = ("test_roc_auc", "test_pr_auc", "test_log_loss")
HEADER = (f"{'version':>7}  {'aliases':<20} {'registered':<16} " + " ".join(f"{m.removeprefix('test_'):>8}" for m in KEY_METRICS)
          + f"  {'trained on':<22} promotion")


def registry_status(settings: Settings) -> list[str]:
    """The lines `flightops model status` prints (the registry must exist: see cli._registry_missing)."""
    client = mlflow_client(settings)
    try:
        registered = client.get_registered_model(REGISTERED_MODEL_NAME)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return [f"No model named {REGISTERED_MODEL_NAME} is registered in {settings.mlflow_tracking_uri} yet."]
    aliases: dict[str, list[str]] = {}
    for alias, version in sorted(registered.aliases.items()):
        aliases.setdefault(str(version), []).append(alias)
    versions = sorted(client.search_model_versions(f"name='{REGISTERED_MODEL_NAME}'"), key=lambda v: -int(v.version))
    return [
        f"{REGISTERED_MODEL_NAME} in {settings.mlflow_tracking_uri} ({len(versions)} version(s); "
        f"MLflow UI: {settings.mlflow_ui_url}/#/models/{REGISTERED_MODEL_NAME})",
        HEADER,
        *(version_line(client, version, aliases.get(str(version.version), [])) for version in versions),
        f"champion history (oldest first): {' -> '.join(json.loads(registered.tags.get(HISTORY_TAG, '[]'))) or 'none'}",
    ]


def version_line(client: MlflowClient, version, aliases: list[str]) -> str:
    """One version: aliases, registration time, key test metrics, training window, promotion decision."""
    metrics = _run_metrics(client, version.run_id)
    figures = " ".join(f"{metrics[m]:>8.4f}" if m in metrics else f"{'-':>8}" for m in KEY_METRICS)
    registered = datetime.fromtimestamp(version.creation_timestamp / 1000).strftime("%Y-%m-%d %H:%M")
    tags = version.tags or {}
    decision = tags.get("promotion.decision")
    promotion = f"{decision}: {tags.get('promotion.reasons', '')}" if decision else "not decided"
    return (f"{version.version:>7}  {', '.join(aliases) or '-':<20} {registered:<16} {figures}  "
            f"{tags.get('lineage.partition_range', '-'):<22} {promotion}")


def _run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    """The training run's metrics; none when the run is gone (deleted, or another store)."""
    if not run_id:
        return {}
    try:
        return dict(client.get_run(run_id).data.metrics)
    except MlflowException:
        return {}
