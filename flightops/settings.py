"""Where every configurable value comes from.

Defaults live in the repository's `.env` file (the one place they are written, the
telemetry switches of Dagster, dbt and MLflow included); the process environment
overrides them. Nothing is read at import time: every entry point (the CLI, the code
location, the prediction service, the scripts, the tests) calls `load_environment()`
once, then reads `Settings.current()`. Assets never call `Settings.current()`: they get
the same values through Dagster resources configured with `EnvVar` in
flightops/definitions.py. Relative paths are anchored at the repository root, so the
platform behaves the same whatever the working directory is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
ENV_FILE = REPO_ROOT / ".env"

# The data set's calendar: every daily partition and the replay clock live in it.
FIRST_DAY = "2013-01-01"
LAST_DAY = "2013-12-31"


def load_environment() -> None:
    """Fill unset variables from `.env` (never overriding the real environment)."""
    for name, value in dotenv_values(ENV_FILE).items():
        if value is not None and name not in os.environ:
            os.environ[name] = value


def resolve_path(value: str | os.PathLike) -> Path:
    """An absolute path; a relative one is taken from the repository root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def resolve_url(url: str) -> str:
    """Make a relative `sqlite:///` URL absolute; other URLs pass unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(resolve_path(url[len(prefix):]))
    return url


def monitoring_dir_under(data_dir: Path) -> Path:
    """Monitoring's own files (the alert store, the latest figures for /metrics) in the data folder."""
    return data_dir / "monitoring"


def environment_under(base: Path) -> dict[str, str]:
    """Every path setting under one folder: a private platform for tests and benchmarks."""
    return {
        "FLIGHTOPS_DATA_DIR": str(base),
        "FLIGHTOPS_WAREHOUSE": str(base / "warehouse.duckdb"),
        "FLIGHTOPS_SOURCE_DB_URL": f"sqlite:///{base}/sources/operations.sqlite",
        "FLIGHTOPS_SOURCE_STATE_DIR": str(base / "sources"),
        "FLIGHTOPS_LANDING_DIR": str(base / "landing"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{base}/mlflow/mlflow.db",
        "FLIGHTOPS_MLFLOW_ARTIFACTS": str(base / "mlflow" / "artifacts"),
    }


def _optional(name: str) -> str | None:
    """An optional setting: unset and empty both mean "not configured"."""
    return os.environ.get(name) or None


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"Setting {name} is not set. Set it in the environment or in {ENV_FILE} "
            "(the CLI and the tests load that file; did the entry point call load_environment()?)."
        )
    return value


def _as_number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise ValueError(f"{name}={text!r} is not a number; set it to a decimal number.") from exc


def _number(name: str) -> float:
    return _as_number(name, _required(name))


def _optional_number(name: str) -> float | None:
    text = _optional(name)
    return None if text is None else _as_number(name, text)


def _positive_whole(name: str, what: str) -> int:
    text = _required(name)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}={text!r} is not a positive whole number of {what}. Set it (environment or .env).")
    return int(text)


def prediction_lead_minutes() -> int:
    """FLIGHTOPS_PREDICTION_LEAD_MINUTES, checked: the minutes before departure every feature is known at."""
    from flightops.feature_engineering import check_lead

    text = _required("FLIGHTOPS_PREDICTION_LEAD_MINUTES")
    return check_lead(int(text) if text.isdigit() else text)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    warehouse: Path
    source_db_url: str
    source_state_dir: Path
    landing_dir: Path
    weather_api_url: str
    duckdb_lock_timeout_seconds: float
    pool_wait_seconds: float  # how long a run's step waits for a pool slot another run holds
    mlflow_tracking_uri: str
    mlflow_artifacts: Path
    mlflow_ui_url: str
    alert_webhook_url: str | None
    serving_threshold: float | None  # None: the batch decision threshold (flightops.modeling.evaluate)
    serving_model_refresh_seconds: float
    landing_max_range_days: int
    prediction_lead_minutes: int
    source_scale: int  # copies of each flight the simulated sources deliver (1: the real data)

    @property
    def online_features(self) -> Path:
        """The online feature store the prediction service reads (flightops.online_features)."""
        from flightops.online_features import online_features_under

        return online_features_under(self.data_dir)

    @property
    def monitoring_dir(self) -> Path:
        """Monitoring's own files: the alert log (SQLite) and the latest figures for /metrics."""
        return monitoring_dir_under(self.data_dir)

    @classmethod
    def current(cls) -> "Settings":
        return cls(
            data_dir=resolve_path(_required("FLIGHTOPS_DATA_DIR")),
            warehouse=resolve_path(_required("FLIGHTOPS_WAREHOUSE")),
            source_db_url=resolve_url(_required("FLIGHTOPS_SOURCE_DB_URL")),
            source_state_dir=resolve_path(_required("FLIGHTOPS_SOURCE_STATE_DIR")),
            landing_dir=resolve_path(_required("FLIGHTOPS_LANDING_DIR")),
            weather_api_url=_required("FLIGHTOPS_WEATHER_API_URL").rstrip("/"),
            duckdb_lock_timeout_seconds=_number("FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS"),
            pool_wait_seconds=_number("FLIGHTOPS_POOL_WAIT_SECONDS"),
            mlflow_tracking_uri=resolve_url(_required("MLFLOW_TRACKING_URI")),
            mlflow_artifacts=resolve_path(_required("FLIGHTOPS_MLFLOW_ARTIFACTS")),
            mlflow_ui_url=_required("FLIGHTOPS_MLFLOW_UI_URL").rstrip("/"),
            alert_webhook_url=_optional("FLIGHTOPS_ALERT_WEBHOOK_URL"),
            serving_threshold=_optional_number("FLIGHTOPS_SERVING_THRESHOLD"),
            serving_model_refresh_seconds=_number("FLIGHTOPS_SERVING_MODEL_REFRESH_SECONDS"),
            landing_max_range_days=_positive_whole(
                "FLIGHTOPS_LANDING_MAX_RANGE_DAYS", "days (the longest range one landing-sensor run covers, e.g. 31)"),
            prediction_lead_minutes=prediction_lead_minutes(),
            source_scale=_positive_whole(
                "FLIGHTOPS_SOURCE_SCALE", "copies of each flight the simulated sources deliver (1: the real data)"),
        )
