"""The landing folder where file-based sources drop their data.

Layout under the landing root:
- `reference/{airports,airlines,planes}.csv`: copies of the package's reference files;
- `flights/flights_YYYY-MM-DD.csv`: one export per day with the export carriers' flights.
Every file is written to a hidden temporary name and renamed into place, so a
sensor listing the folder never sees half a file.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from flightops.simulated_sources.files import write_atomically
from flightops.simulated_sources.dataset import FLIGHT_RECORD_COLUMNS, REFERENCE_NAMES, reference_file

REFERENCE_DIR = "reference"
FLIGHTS_DIR = "flights"
EXPORT_PREFIX = "flights_"


def reference_path(landing_dir: Path, name: str) -> Path:
    return landing_dir / REFERENCE_DIR / f"{name}.csv"


def export_path(landing_dir: Path, day: date) -> Path:
    """The day's flight export file."""
    return landing_dir / FLIGHTS_DIR / f"{EXPORT_PREFIX}{day.isoformat()}.csv"


def export_day(path: Path) -> date | None:
    """The day of a daily flight export file, or None for any other file of the landing folder."""
    name = path.name
    if path.parent.name != FLIGHTS_DIR or not (name.startswith(EXPORT_PREFIX) and name.endswith(".csv")):
        return None
    try:
        return date.fromisoformat(name[len(EXPORT_PREFIX):-len(".csv")])
    except ValueError:
        return None


def export_files(landing_dir: Path) -> list[Path]:
    """Every daily export file present, oldest day first."""
    return sorted((landing_dir / FLIGHTS_DIR).glob(f"{EXPORT_PREFIX}*.csv"))


def write_reference_files(landing_dir: Path) -> list[Path]:
    """Copy the reference tables that are not there yet; returns the files written."""
    written = []
    for name in REFERENCE_NAMES:
        target = reference_path(landing_dir, name)
        if not target.exists():
            write_atomically(target, reference_file(name).read_bytes())
            written.append(target)
    return written


def write_export(landing_dir: Path, day: date, flights: pd.DataFrame) -> Path:
    """Write the day's export: the record columns, a header row, NA as empty fields."""
    target = export_path(landing_dir, day)
    content = flights.loc[:, list(FLIGHT_RECORD_COLUMNS)].to_csv(index=False, na_rep="")
    write_atomically(target, content.encode())
    return target
