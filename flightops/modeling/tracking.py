"""MLflow wiring: where runs and models are stored, and what lineage each run carries.

The experiment is created with an explicit artifact location (`mlflow_artifacts` of the store), so
no artifact ever lands in a `./mlruns` of whatever the working directory happens to be. The store
is an `MlflowStore`: the `MlflowResource` in an asset, `Settings` in the CLI, scripts and tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import numpy as np
import pandas as pd

from flightops.modeling.schema import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    ID_COLUMNS,
    INTEGER_FEATURES,
    LABEL_COLUMN,
    LABEL_DESCRIPTION,
    NUMERIC_FEATURES,
    feature_type,
    model_inputs,
)
from flightops.settings import REPO_ROOT

# MLflow is imported inside the functions that call it (about 2 s of code-location load, which
# needs only the names and URLs below).
if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature

EXPERIMENT_NAME = "flight_delay"
# Monitoring reports (Evidently HTML kept weekly and on alert days) are artifacts of their own experiment.
MONITORING_EXPERIMENT_NAME = "flight_delay_monitoring"
REGISTERED_MODEL_NAME = "flight_delay_classifier"
MODEL_ARTIFACT_NAME = "model"
# Key of the logged model's metadata (its MLmodel file) holding, per categorical feature, the values
# the model was fit on; the prediction service warns about any other value (flightops.serving.champion).
KNOWN_CATEGORIES = "known_categories"
REGISTERED_MODEL_DESCRIPTION = (
    f"Probability that a flight leaving New York (EWR, JFK, LGA) arrives more than 15 minutes late "
    f"(label is_delayed: {LABEL_DESCRIPTION}), from the flight's features as known before departure "
    "(features.flight_features; inputs in flightops/modeling/schema.py). A scikit-learn Pipeline around a tuned "
    "CatBoost classifier, trained by the Dagster asset models/flight_delay_model; a logistic baseline and the "
    "constant base-rate predictor are scored beside it in each run. Every training registers a version with "
    "the alias `challenger`; models/champion moves `champion` to it only if it beats the champion on recent "
    "labelled days. Batch scoring and the prediction service serve `champion`. Each version's description "
    "gives its windows and test scores."
)

_log = logging.getLogger(__name__)


class MlflowStore(Protocol):
    """Where runs, registered models and artifacts live (the registry is in the tracking store).

    Both `flightops.resources.MlflowResource` (assets) and `flightops.settings.Settings` (CLI,
    scripts, tests) are one.
    """

    @property
    def mlflow_tracking_uri(self) -> str: ...

    @property
    def mlflow_artifacts(self) -> Path: ...


def _sqlite_file(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


# MLflow makes a new SQLite store by creating its first tables and running every schema migration since
# (1.4 of the 2.4-3.0 s a new store took, py-spy): that is done once per MLflow version, into a template
# here, and each new store is a copy of it. Like .venv, the folder belongs to the checkout, not to a data folder.
STORE_TEMPLATES = REPO_ROOT / ".cache" / "mlflow"


def store_template(version: str) -> Path:
    """The empty, migrated store of this MLflow version (created on first use)."""
    return STORE_TEMPLATES / f"empty-store-mlflow-{version}.db"


def seed_sqlite_store(database: Path) -> None:
    """Create the SQLite tracking store `database`, if it does not exist, as a copy of MLflow's empty schema.

    The copy is what MLflow's own creation leaves before its first use: every table at the newest
    schema version, its default workspace, no experiment (MLflow adds its default experiment on first
    use, with the artifact root of the process using it). An existing file is never replaced: the copy
    is linked into place only if nothing is there, so two processes starting at once share one store.
    Where the checkout cannot hold the template or the folder cannot link (a read-only image), MLflow
    creates the store itself, as it would without this, and the log says why.
    """
    if database.exists():
        return
    import mlflow

    database.parent.mkdir(parents=True, exist_ok=True)
    template = store_template(mlflow.__version__)
    try:
        if not template.exists():
            _migrate_into(template)
        staged = database.with_name(f".{database.name}.{os.getpid()}.seed")
        try:
            shutil.copyfile(template, staged)
            os.link(staged, database)
        except FileExistsError:
            pass  # another process created the store meanwhile: it is used as it is
        finally:
            staged.unlink(missing_ok=True)
    except OSError as exc:
        _log.info(f"MLflow creates the store {database} itself: the copy of its empty schema failed ({exc}).")


def _migrate_into(template: Path) -> None:
    """MLflow's creation of a store, its default experiment removed, moved to `template` in one step."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent) as scratch:
        made = Path(scratch) / template.name
        SqlAlchemyStore(f"sqlite:///{made}", Path(scratch).as_uri()).engine.dispose()
        with sqlite3.connect(made) as con:  # the default experiment names the scratch folder as its artifact root
            con.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
            con.execute("DELETE FROM experiments WHERE experiment_id = 0")
        con.close()
        os.replace(made, template)  # whole or absent, whoever else is migrating one


def configure_mlflow(store: MlflowStore, experiment_name: str = EXPERIMENT_NAME) -> str:
    """Point MLflow (tracking and registry) at the store; return the experiment's id.

    Creates the experiment on first use (artifacts of the training experiment at
    FLIGHTOPS_MLFLOW_ARTIFACTS, of any other in a folder of its name below it). An existing experiment whose artifact location
    differs from the store's is refused: its artifacts would go somewhere nobody looks.
    """
    import mlflow

    store.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(store.mlflow_tracking_uri)
    mlflow.set_registry_uri(store.mlflow_tracking_uri)
    artifacts = store.mlflow_artifacts if experiment_name == EXPERIMENT_NAME else store.mlflow_artifacts / experiment_name
    artifact_location = artifacts.as_uri()
    client = mlflow_client(store)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return client.create_experiment(experiment_name, artifact_location=artifact_location)
    if experiment.lifecycle_stage != "active":
        raise RuntimeError(
            f"MLflow experiment {experiment_name!r} in {store.mlflow_tracking_uri} is deleted. Restore it "
            f"(`mlflow experiments restore --experiment-id {experiment.experiment_id}`) or remove the store."
        )
    if experiment.artifact_location != artifact_location:
        raise RuntimeError(
            f"MLflow experiment {experiment_name!r} in {store.mlflow_tracking_uri} stores artifacts at "
            f"{experiment.artifact_location}, but FLIGHTOPS_MLFLOW_ARTIFACTS says {artifact_location}. "
            "Set FLIGHTOPS_MLFLOW_ARTIFACTS back to the experiment's location, or point MLFLOW_TRACKING_URI "
            "at a new store."
        )
    return experiment.experiment_id


def mlflow_client(store: MlflowStore) -> MlflowClient:
    """A client bound to the store, independent of MLflow's global state (a new SQLite store seeded first)."""
    from mlflow import MlflowClient

    database = _sqlite_file(store.mlflow_tracking_uri)
    if database is not None:
        seed_sqlite_store(database)

    return MlflowClient(tracking_uri=store.mlflow_tracking_uri, registry_uri=store.mlflow_tracking_uri)


def in_signature_types(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of `frame` in the signature's types (what a pyfunc caller sends)."""
    types = {column: "int64" if column in INTEGER_FEATURES else "float64" for column in NUMERIC_FEATURES}
    return frame.loc[:, list(FEATURE_COLUMNS)].astype({**types, **{c: "str" for c in CATEGORICAL_FEATURES}})


def model_signature() -> ModelSignature:
    """Inputs declared from the schema module rather than inferred from a few example rows;
    output: predict_proba's two columns, P(on time) and P(delayed)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec

    types = {str: DataType.string, int: DataType.long, float: DataType.double}
    inputs = Schema([ColSpec(types[feature_type(column)], column) for column in FEATURE_COLUMNS])
    outputs = Schema([TensorSpec(np.dtype(np.float64), (-1, 2))])
    return ModelSignature(inputs=inputs, outputs=outputs)


# Rows the lineage computations below read at a time: a copy of all the training rows' columns would add
# 80-90 MB each on the year's rows, at the end of the training step (its peak: issue 10).
LINEAGE_CHUNK_ROWS = 50_000


def _row_chunks(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), LINEAGE_CHUNK_ROWS):
        yield frame.iloc[start:start + LINEAGE_CHUNK_ROWS]


def known_categories(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Sorted values of each categorical feature in `frame`, as the model sees them (model_inputs)."""
    found: dict[str, set[str]] = {column: set() for column in CATEGORICAL_FEATURES}
    for chunk in _row_chunks(frame):
        inputs = model_inputs(chunk)
        for column, values in found.items():
            values.update(inputs[column].unique().tolist())
    return {column: sorted(values) for column, values in found.items()}


def describe_registered_model(client: MlflowClient) -> None:
    """Sets the registered model's description (the MLflow UI shows it on the model's page)."""
    client.update_registered_model(REGISTERED_MODEL_NAME, description=REGISTERED_MODEL_DESCRIPTION)


def run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI at `ui_url` (hash routes of MLflow 3's UI)."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def artifact_url(ui_url: str, experiment_id: str, run_id: str, path: str) -> str:
    """One artifact of the run, opened in the run's Artifacts tab of the MLflow UI."""
    return f"{run_url(ui_url, experiment_id, run_id)}/artifacts/{quote(path)}"


def model_version_url(ui_url: str, version: str | int, name: str = REGISTERED_MODEL_NAME) -> str:
    """The model version's page in the MLflow UI."""
    return f"{ui_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"


def training_data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 over the ids, model inputs and labels of the rows (order-sensitive): each row's pandas hash,
    in row order, so reading the rows a chunk at a time gives the digest of all of them at once."""
    columns = [c for c in (*ID_COLUMNS, *FEATURE_COLUMNS, LABEL_COLUMN) if c in frame.columns]
    digest = hashlib.sha256()
    for chunk in _row_chunks(frame):
        digest.update(pd.util.hash_pandas_object(chunk[columns], index=False).to_numpy().tobytes())
    return digest.hexdigest()


def git_commit() -> str | None:
    """HEAD of the repository the code runs from, or None outside a git checkout."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        )
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        _log.warning("No git commit recorded for this run (git rev-parse HEAD in %s failed: %s).", REPO_ROOT, exc)
        return None
    return completed.stdout.strip()


@dataclass(frozen=True)
class Lineage:
    """Where a model's training data came from; logged as run tags and copied to the model version."""

    partition_start: str
    partition_end: str
    row_counts: dict[str, int]
    data_hash: str
    git_commit: str | None
    dagster_run_id: str | None

    def as_tags(self) -> dict[str, str]:
        tags = {
            "lineage.partition_range": f"{self.partition_start}..{self.partition_end}",
            "lineage.training_data_sha256": self.data_hash,
            "lineage.git_commit": self.git_commit or "unknown",
            **{f"lineage.{name}": str(count) for name, count in self.row_counts.items()},
        }
        if self.dagster_run_id:
            tags["dagster_run_id"] = self.dagster_run_id
        return tags
