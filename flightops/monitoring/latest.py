"""The newest monitoring figures as a small JSON file, for processes that must not open DuckDB.

The monitoring assets write it after each materialization; the serving process exposes it as
Prometheus gauges. A reader never blocks a run (DuckDB takes one process per file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol


class MonitoringFiles(Protocol):
    """Where monitoring keeps its own files and sends alerts: `MonitoringResource` in an asset,
    `Settings` in a sensor, the CLI or a test."""

    @property
    def monitoring_dir(self) -> Path: ...

    @property
    def alert_webhook_url(self) -> str | None: ...

FILE_NAME = "latest.json"


def latest_path(settings: MonitoringFiles) -> Path:
    return settings.monitoring_dir / FILE_NAME


def write_latest(settings: MonitoringFiles, payload: dict[str, Any]) -> Path:
    """Replace the file atomically (a reader sees the old or the new figures, never half)."""
    path = latest_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(scratch, path)
    return path


def read_latest(settings: MonitoringFiles) -> dict[str, Any] | None:
    """The newest figures, or None before monitoring has run."""
    path = latest_path(settings)
    if not path.exists():
        return None
    return json.loads(path.read_text())
