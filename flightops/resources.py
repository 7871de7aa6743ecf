"""Dagster resources: the platform's handles on the warehouse, MLflow, monitoring's files and the
source systems.

Assets get every setting through these (never `Settings.current()`), each configured with
`EnvVar` in the definitions, so values are read when a run starts, never at import, and a test or
another deployment swaps one object. Paths may be relative to the repository root.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from flightops import dbt_runner, warehouse_connections
from flightops.dbt_runner import DbtInvocation
from flightops.feature_engineering import check_lead
from flightops.online_features import online_features_under
from flightops.settings import monitoring_dir_under, resolve_path, resolve_url
from flightops.weather_client import fetch_observations, verify_source


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. Connections are opened per use and closed at once."""

    path: str
    lock_timeout_seconds: int = 120
    memory_limit: str | None = None  # DuckDB's memory_limit (e.g. "1GB"); past it a step spills to disk

    @property
    def file(self) -> Path:
        return resolve_path(self.path)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse_connections.connect(self.file, read_only=read_only, timeout_seconds=self.lock_timeout_seconds,
                                           memory_limit=self.memory_limit) as con:
            yield con


class MlflowResource(dg.ConfigurableResource):
    """MLflow as the assets use it: the tracking store (which holds the model registry too), the
    folder of the experiments' artifacts, and the address of the MLflow UI for links in metadata.

    It opens nothing by itself: flightops.modeling.tracking creates the experiment with its artifact
    location and starts the one MLflow run of a training. The resolved values carry the names of the
    matching `Settings` fields (the `MlflowStore` protocol of flightops.modeling.tracking), so the
    modeling functions take this resource in an asset and `Settings` in the CLI, scripts and tests.
    """

    tracking_uri: str  # any MLflow tracking URI; a relative `sqlite:///` path is taken from the repository root
    artifact_location: str  # folder of the experiments' artifacts (absolute, or relative to the repository root)
    ui_url: str  # where a browser reaches the MLflow UI

    @property
    def mlflow_tracking_uri(self) -> str:
        return resolve_url(self.tracking_uri)

    @property
    def mlflow_artifacts(self) -> Path:
        return resolve_path(self.artifact_location)

    @property
    def mlflow_ui_url(self) -> str:
        return self.ui_url.rstrip("/")


# The dbt var profiles.yml takes the warehouse file from (before FLIGHTOPS_WAREHOUSE, then the default).
WAREHOUSE_VAR = "flightops_warehouse"


class DbtResource(dg.ConfigurableResource):
    """The dbt project, run inside the step's process (flightops.dbt_runner: no `dbt` process per step),
    on the `warehouse` resource's file.

    Each step's dbt artifacts (its log, run results, saved parse) go to the same folder every run,
    `<data_dir>/dbt/<step>`: dbt finds its partial-parse file there and re-parses only what changed,
    and the folders do not pile up with every run. A step's first parse starts from another step's
    saved parse when there is one (the project and profile are the same; dbt checks that and parses
    in full if not). In a data folder with none yet, a run starts the whole project's parse in a process of
    its own when it starts (`dbt_runner.ParseAhead`), and its first dbt step starts from that parse if it is done.
    """

    project_dir: str
    profiles_dir: str
    data_dir: str  # the platform's data folder (absolute, or relative to the repository root)
    warehouse: WarehouseResource
    _parse_ahead: dbt_runner.ParseAhead | None = PrivateAttr(default=None)

    @property
    def vars(self) -> dict[str, str]:
        """dbt vars of every invocation: the warehouse's file (absolute), the same every run."""
        return {WAREHOUSE_VAR: str(self.warehouse.file)}

    @property
    def folder(self) -> Path:
        return resolve_path(self.data_dir) / "dbt"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not any(self.folder.glob(f"*/{dbt_runner.PARTIAL_PARSE_FILE}")):
            self._parse_ahead = dbt_runner.ParseAhead(resolve_path(self.project_dir), resolve_path(self.profiles_dir),
                                                      self.folder, self.vars)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._parse_ahead is not None:  # a run without a dbt step, or one that failed before it
            self._parse_ahead.stop()
            self._parse_ahead = None

    def invoke(self, context: dg.AssetExecutionContext, command: list[str]) -> DbtInvocation:
        """`dbt <command>` on the step's selection."""
        target_path = self.folder / context.op_def.name
        if self._parse_ahead is not None:
            dbt_runner.import_dbt()  # the parse ahead has these seconds more to finish
            if self._parse_ahead.take(target_path):
                context.log.info(f"dbt starts from the parse saved ahead of this step in {self.folder}")
            self._parse_ahead = None
        _seed_partial_parse(target_path)
        return dbt_runner.invoke(context, resolve_path(self.project_dir), resolve_path(self.profiles_dir), target_path,
                                 command, self.vars)


def _seed_partial_parse(target_path: Path) -> None:
    """Copy the newest sibling step's saved parse into a step folder that has none yet."""
    if (target_path / dbt_runner.PARTIAL_PARSE_FILE).exists():
        return
    saved = sorted(target_path.parent.glob(f"*/{dbt_runner.PARTIAL_PARSE_FILE}"), key=lambda p: p.stat().st_mtime)
    if saved:
        target_path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(saved[-1], target_path / dbt_runner.PARTIAL_PARSE_FILE)


class FeatureStoreResource(dg.ConfigurableResource):
    """How the features are computed and where serving finds them: the prediction time (minutes
    before each flight's scheduled departure; flightops.feature_engineering), the online store's
    file under the data folder and how many days of flights it keeps (flightops.online_features)."""

    prediction_lead_minutes: int
    data_dir: str  # the platform's data folder (absolute, or relative to the repository root)
    online_days: int  # the online store's serving window: how many of its newest days of flights it keeps

    @property
    def lead_minutes(self) -> int:
        return check_lead(self.prediction_lead_minutes)

    @property
    def online_file(self) -> Path:
        return online_features_under(resolve_path(self.data_dir))


class MonitoringResource(dg.ConfigurableResource):
    """Monitoring's own files (the alert store, the latest figures the prediction service exposes)
    under the data folder, and the webhook alerts are POSTed to.

    Exposes `monitoring_dir` and `alert_webhook_url` as `Settings` does: what flightops.monitoring's
    alert and latest-figures functions read.
    """

    data_dir: str  # the platform's data folder (absolute, or relative to the repository root)
    webhook_url: str | None = None  # empty or None: alerts go to the log and the alert store only

    @property
    def monitoring_dir(self) -> Path:
        return monitoring_dir_under(resolve_path(self.data_dir))

    @property
    def alert_webhook_url(self) -> str | None:
        return self.webhook_url or None


class SourceDatabaseResource(dg.ConfigurableResource):
    """The operational database (any SQLAlchemy URL; SQLite by default)."""

    url: str

    @property
    def resolved_url(self) -> str:
        return resolve_url(self.url)


class LandingZoneResource(dg.ConfigurableResource):
    """The landing folder where files arrive (reference data, daily flight exports)."""

    path: str

    @property
    def root(self) -> Path:
        return resolve_path(self.path)


class WeatherApiResource(dg.ConfigurableResource):
    """The weather observations HTTP API of the platform's own source systems; retries with backoff
    on 5xx and time-outs.

    Call `verified_source_id` before `observations`: it refuses an API that does not serve
    `source_state_dir` (flightops.weather_client), e.g. another checkout's on the same port, which
    runs launched from the UI would otherwise ingest from.
    """

    base_url: str
    # The platform's source state folder (absolute, or relative to the repository root); read at run start.
    source_state_dir: str = dg.EnvVar("FLIGHTOPS_SOURCE_STATE_DIR")
    page_size: int = 1000
    timeout_seconds: float = 10.0
    max_attempts: int = 5
    backoff_seconds: float = 0.5

    def verified_source_id(self) -> str:
        """The API's source id, after refusing (ForeignWeatherApi) an API that serves other sources."""
        return verify_source(
            self.base_url,
            resolve_path(self.source_state_dir),
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )

    def observations(self, first: date, last: date) -> list[dict]:
        """Every observation of the local days first..last, paged and retried."""
        return fetch_observations(
            self.base_url,
            first,
            last,
            page_size=self.page_size,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )
