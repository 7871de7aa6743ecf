"""Looking at and clearing the source systems as a whole (the `status` and `reset` commands)."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from flightops.settings import REPO_ROOT, Settings
from flightops.simulated_sources import api_faults, clock, landing, operational_db, weather_store
from flightops.simulated_sources.dataset import REFERENCE_NAMES


def _data_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def status(settings: Settings) -> dict:
    """The replay clock and what each source system holds."""
    through = clock.replayed_through(settings.source_state_dir)
    exports = landing.export_files(settings.landing_dir)
    state_exists = settings.source_state_dir.exists()
    return {
        "replayed_through": through.isoformat() if through else None,
        "opdb_url": operational_db.display_url(settings.source_db_url),
        "opdb_row_versions": operational_db.count_rows(settings.source_db_url),
        "landing_dir": str(settings.landing_dir),
        "export_files": len(exports),
        "export_rows": sum(_data_lines(path) for path in exports),
        "reference_files": sum(landing.reference_path(settings.landing_dir, name).exists() for name in REFERENCE_NAMES),
        "weather_store": str(weather_store.store_path(settings.source_state_dir)),
        "weather_observations": weather_store.count_observations(settings.source_state_dir),
        "api_faults_armed": asdict(api_faults.armed(settings.source_state_dir)) if state_exists else None,
    }


def _check_removable(folder: Path, settings: Settings) -> None:
    """Refuse to delete a folder that holds more than source data (a misconfigured setting):
    the repository, a home, the root, the platform's data folder or the warehouse."""
    resolved = folder.resolve()
    shared = {Path("/"), Path.home().resolve(), REPO_ROOT, settings.data_dir, *REPO_ROOT.parents, *settings.data_dir.parents}
    if resolved in shared or settings.warehouse.is_relative_to(resolved) or settings.mlflow_artifacts.is_relative_to(resolved):
        raise RuntimeError(
            f"Refusing to delete {resolved}: it holds more than the source systems' data (the repository, a home, "
            "the data folder, the warehouse or MLflow artifacts). Point FLIGHTOPS_LANDING_DIR and "
            "FLIGHTOPS_SOURCE_STATE_DIR at folders of their own."
        )


def reset_plan(settings: Settings) -> list[str]:
    """What `reset` would remove, one line per item (only what exists)."""
    plan = []
    if operational_db.exists(settings.source_db_url):
        plan.append(f"operational database table flights in {operational_db.display_url(settings.source_db_url)}")
    folders = (
        (settings.landing_dir, "landing folder {} (daily exports and reference files)"),
        (settings.source_state_dir, "source state folder {} (replay clock, weather API store, API faults)"),
    )
    for folder, description in folders:
        if folder.exists():
            _check_removable(folder, settings)
            plan.append(description.format(folder))
    return plan


def reset(settings: Settings) -> None:
    """Remove the source systems' data: the opdb table, the landing folder, the state folder."""
    for folder in (settings.landing_dir, settings.source_state_dir):
        if folder.exists():
            _check_removable(folder, settings)
    operational_db.drop(settings.source_db_url)
    for folder in (settings.landing_dir, settings.source_state_dir):
        if folder.exists():
            shutil.rmtree(folder)
