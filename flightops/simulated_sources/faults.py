"""Fault injection into already replayed source data, for tests and demos.

Each fault changes one day's data in one target and returns a description of
exactly what changed (which rows, which file, which column, old and new values):
- `opdb`: the day's current flight row versions in the operational database
  (edited in place, `updated_at` untouched: bad data as first written);
- `export`: the day's CSV file in the landing folder (rewritten atomically);
- `weather`: the day's observations in the weather API store.
Rows are picked deterministically (flight_id order, file order, row order) among
those the fault actually changes (e.g. a NULL is only written where a value was).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from flightops.settings import Settings
from flightops.simulated_sources import api_faults, clock, landing, operational_db, weather_store
from flightops.simulated_sources.dataset import FLIGHT_RECORD_COLUMNS, LOCAL_TIMESTAMP_FORMAT, UTC_TIMESTAMP_FORMAT
from flightops.simulated_sources.files import write_atomically

OPDB, EXPORT, WEATHER = "opdb", "export", "weather"
TARGETS = (OPDB, EXPORT, WEATHER)
DEFAULT_SECONDS = 2.0
TRUNCATE_KEEP_SHARE = 0.6


@dataclass(frozen=True)
class ValueFault:
    """A fault that writes one bad value per target into a column of `count` rows."""

    columns: dict[str, str]
    values: dict[str, object]


NULL_REQUIRED = ValueFault(
    columns={OPDB: "carrier", EXPORT: "carrier", WEATHER: "time_hour"}, values={OPDB: None, EXPORT: None, WEATHER: None}
)
OUT_OF_RANGE = ValueFault(
    columns={OPDB: "distance", EXPORT: "distance", WEATHER: "humid"}, values={OPDB: -100, EXPORT: -100, WEATHER: 250.0}
)
UNKNOWN_FK = ValueFault(
    columns={OPDB: "carrier", EXPORT: "carrier", WEATHER: "origin"}, values={OPDB: "ZZ", EXPORT: "ZZ", WEATHER: "XXX"}
)
# Duplicates: the copied column moved by this much, and updated_at by one hour.
DUPLICATE_SHIFT = {OPDB: ("dep_delay", 5), EXPORT: ("dep_delay", 5), WEATHER: ("temp", 1.0)}
DUPLICATE_DELAY = timedelta(hours=1)
DEFAULT_FILE_COLUMN = "dep_delay"


class FaultError(ValueError):
    """A fault that cannot be applied as asked; the message says why and what to do."""


def _later(timestamp: str) -> str:
    """`timestamp` plus DUPLICATE_DELAY, written in the same form (UTC with Z, or local)."""
    moment = datetime.fromisoformat(timestamp) + DUPLICATE_DELAY
    return moment.strftime(UTC_TIMESTAMP_FORMAT if moment.tzinfo is not None else LOCAL_TIMESTAMP_FORMAT)


def _resolve_day(settings: Settings, day: date | None) -> date:
    if day is None:
        day = clock.replayed_through(settings.source_state_dir)
        if day is None:
            raise FaultError("Nothing is replayed yet, so there is no data to corrupt; run `flightops sources replay --until D` first.")
    try:
        clock.check_in_calendar(day, "Fault day")  # before suggesting a replay to it, which would refuse the same day
    except ValueError as exc:
        raise FaultError(str(exc)) from exc
    clock.require_replayed(settings.source_state_dir, day)
    return day


def _require_found(found: int, wanted: int, what: str) -> None:
    if found == 0:
        raise FaultError(f"No {what} to change (wanted {wanted}); pick another day, target or column.")


# Row-value faults ---------------------------------------------------------------------------


def _flight_column(column: str) -> str:
    """A flight column a fault may corrupt: any but the keys that identify a row and its day."""
    if column not in FLIGHT_RECORD_COLUMNS or column in operational_db.KEY_COLUMNS:
        allowed = [name for name in FLIGHT_RECORD_COLUMNS if name not in operational_db.KEY_COLUMNS]
        raise FaultError(f"Column {column!r} cannot be corrupted in flights; use one of {', '.join(allowed)}.")
    return column


def _set_opdb(settings: Settings, day: date, count: int, column: str, value) -> dict:
    with operational_db.connect_engine(settings.source_db_url) as engine, engine.begin() as connection:
        rows = operational_db.latest_versions(connection, day, _flight_column(column), differing_from=value, limit=count)
        _require_found(len(rows), count, f"flight rows of {day} with a {column} other than {value!r} in the operational database")
        operational_db.set_value(connection, [row["row_id"] for row in rows], column, value)
    return {
        "where": "operational database table flights (current row versions, updated in place)",
        "rows": [{"flight_id": row["flight_id"], "row_id": row["row_id"], "old": row[column], "new": value} for row in rows],
    }


def _export_file(settings: Settings, day: date) -> Path:
    path = landing.export_path(settings.landing_dir, day)
    if not path.exists():
        raise FaultError(f"The export file {path} does not exist; replay {day} again (`flightops sources reset` then replay).")
    return path


def _read_export(settings: Settings, day: date) -> tuple[pd.DataFrame, Path]:
    path = _export_file(settings, day)
    # Every field as the text written in the file, empty fields staying empty strings.
    return pd.read_csv(path, dtype=str, keep_default_na=False), path


def _write_export(path: Path, frame: pd.DataFrame) -> None:
    write_atomically(path, frame.to_csv(index=False).encode())


def _export_column(frame: pd.DataFrame, column: str, path: Path) -> str:
    if column not in frame.columns:
        raise FaultError(f"The export file {path} has no column {column!r}; its columns are {', '.join(frame.columns)}.")
    return column


def _file_line(position: int) -> int:
    """1-based line number in the file of the data row at `position` (line 1 is the header)."""
    return position + 2


def _set_export(settings: Settings, day: date, count: int, column: str, value) -> dict:
    frame, path = _read_export(settings, day)
    _export_column(frame, column, path)
    text_value = "" if value is None else str(value)
    candidates = frame.index[(frame[column] != "") & (frame[column] != text_value)][:count]
    _require_found(len(candidates), count, f"rows with a {column} other than {text_value!r} in {path}")
    old_values = frame.loc[candidates, column].tolist()
    frame.loc[candidates, column] = text_value
    _write_export(path, frame)
    return {
        "where": str(path),
        "rows": [
            {"flight_id": frame.at[position, "flight_id"], "line": _file_line(position), "old": old, "new": text_value}
            for position, old in zip(candidates, old_values)
        ],
    }


def _set_weather(settings: Settings, day: date, count: int, column: str, value) -> dict:
    with weather_store.open_store(settings.source_state_dir) as store, store:
        try:
            rows = weather_store.day_rows(store, day, column, differing_from=value, limit=count)
        except ValueError as exc:
            raise FaultError(str(exc)) from exc
        _require_found(len(rows), count, f"observations of {day} with a {column} other than {value!r} in the weather API store")
        weather_store.set_value(store, [row["row_id"] for row in rows], column, value)
    return {
        "where": str(weather_store.store_path(settings.source_state_dir)),
        "rows": [
            {"origin": row["origin"], "time_hour": row["time_hour"], "row_id": row["row_id"], "old": row[column], "new": value}
            for row in rows
        ],
    }


_SETTERS = {OPDB: _set_opdb, EXPORT: _set_export, WEATHER: _set_weather}


def set_bad_values(settings: Settings, fault: ValueFault, target: str, day: date, count: int, column: str | None) -> dict:
    """Write the fault's bad value into `column` (default: the fault's column) of `count` rows."""
    column = column or fault.columns[target]
    changed = _SETTERS[target](settings, day, count, column, fault.values[target])
    return {"column": column, **changed}


# Duplicates ---------------------------------------------------------------------------------


def _duplicate_opdb(settings: Settings, day: date, count: int) -> dict:
    column, shift = DUPLICATE_SHIFT[OPDB]
    rows = []
    with operational_db.connect_engine(settings.source_db_url) as engine, engine.begin() as connection:
        originals = operational_db.latest_versions(connection, day, column, differing_from=None, limit=count)
        _require_found(len(originals), count, f"flight rows of {day} with a {column} in the operational database")
        for original in originals:
            newer = {**original, column: original[column] + shift, "updated_at": _later(original["updated_at"])}
            new_row_id = operational_db.insert_version(connection, newer)
            identity = {"flight_id": original["flight_id"], "copy_of_row_id": original["row_id"], "row_id": new_row_id}
            rows.append(_duplicate_entry(identity, original, newer, column))
    return {"where": "operational database table flights (new row versions appended)", "rows": rows}


def _duplicate_entry(identity: dict, original: dict, newer: dict, column: str) -> dict:
    return {
        **identity,
        column: {"old": original[column], "new": newer[column]},
        "updated_at": {"old": original["updated_at"], "new": newer["updated_at"]},
    }


def _duplicate_export(settings: Settings, day: date, count: int) -> dict:
    column, shift = DUPLICATE_SHIFT[EXPORT]
    frame, path = _read_export(settings, day)
    for needed in (column, "updated_at", "flight_id"):
        _export_column(frame, needed, path)
    originals = frame.loc[frame[column] != ""].head(count)
    _require_found(len(originals), count, f"rows with a {column} in {path}")
    copies = originals.copy()
    copies[column] = (originals[column].astype(int) + shift).astype(str)
    copies["updated_at"] = originals["updated_at"].map(_later)
    rows = [
        _duplicate_entry(
            {"flight_id": original["flight_id"], "copy_of_line": _file_line(position), "line": _file_line(len(frame) + offset)},
            original,
            copies.loc[position],
            column,
        )
        for offset, (position, original) in enumerate(originals.iterrows())
    ]
    _write_export(path, pd.concat([frame, copies], ignore_index=True))
    return {"where": f"{path} (copies appended at the end)", "rows": rows}


def _duplicate_weather(settings: Settings, day: date, count: int) -> dict:
    column, shift = DUPLICATE_SHIFT[WEATHER]
    rows = []
    with weather_store.open_store(settings.source_state_dir) as store, store:
        originals = weather_store.day_rows(store, day, column, differing_from=None, limit=count)
        _require_found(len(originals), count, f"observations of {day} with a {column} in the weather API store")
        for original in originals:
            newer = {**original, column: original[column] + shift, "updated_at": _later(original["updated_at"])}
            new_row_id = weather_store.insert_row(store, newer)
            identity = {
                "origin": original["origin"],
                "time_hour": original["time_hour"],
                "copy_of_row_id": original["row_id"],
                "row_id": new_row_id,
            }
            rows.append(_duplicate_entry(identity, original, newer, column))
    return {"where": f"{weather_store.store_path(settings.source_state_dir)} (new observation rows appended)", "rows": rows}


_DUPLICATORS = {OPDB: _duplicate_opdb, EXPORT: _duplicate_export, WEATHER: _duplicate_weather}


def duplicate_rows(settings: Settings, target: str, day: date, count: int) -> dict:
    """Re-deliver `count` rows as newer versions (updated_at + 1 h, dep_delay + 5 / temp + 1)."""
    column, shift = DUPLICATE_SHIFT[target]
    return {"column": column, "shift": shift, **_DUPLICATORS[target](settings, day, count)}


# Export file faults -------------------------------------------------------------------------


def rename_column(settings: Settings, day: date, column: str) -> dict:
    """Rename a column of the day's export to `<column>_minutes` (a schema change upstream)."""
    frame, path = _read_export(settings, day)
    new_name = f"{_export_column(frame, column, path)}_minutes"
    _write_export(path, frame.rename(columns={column: new_name}))
    return {"where": str(path), "column": column, "renamed_to": new_name, "rows": len(frame)}


def drop_column(settings: Settings, day: date, column: str) -> dict:
    """Remove a column from the day's export."""
    frame, path = _read_export(settings, day)
    _write_export(path, frame.drop(columns=[_export_column(frame, column, path)]))
    return {"where": str(path), "column": column, "removed": True, "rows": len(frame)}


def truncate_file(settings: Settings, day: date) -> dict:
    """Cut the day's export in the middle of a data line after about 60% of its bytes."""
    path = _export_file(settings, day)
    content = path.read_bytes()
    header_end = content.index(b"\n") + 1
    target = max(int(len(content) * TRUNCATE_KEEP_SHARE), header_end)
    line_start = content.rfind(b"\n", 0, target) + 1
    line_end = content.find(b"\n", line_start)
    if line_start >= len(content) or line_end == line_start:
        raise FaultError(f"The export file {path} has no data line to cut; pick a day whose export has flights.")
    line_end = len(content) if line_end == -1 else line_end
    cut = line_start + max(1, (line_end - line_start) // 2)
    write_atomically(path, content[:cut])
    return {
        "where": str(path),
        "bytes_before": len(content),
        "bytes_after": cut,
        "complete_data_lines_kept": content[:line_start].count(b"\n") - 1,
        "partial_line": content[line_start:cut].decode(),
    }


# Weather API faults -------------------------------------------------------------------------


def http_errors(settings: Settings, count: int, status: int = 500) -> dict:
    """Make the next `count` API data requests answer `status`."""
    armed = api_faults.arm(settings.source_state_dir, fail_next=count, status=status)
    return {"where": str(settings.source_state_dir / api_faults.FAULTS_FILE), "fail_next": armed.fail_next, "status": armed.status}


def slow_responses(settings: Settings, count: int, seconds: float) -> dict:
    """Delay the next `count` API data requests by `seconds`."""
    armed = api_faults.arm(settings.source_state_dir, delay_next=count, delay_seconds=seconds)
    return {
        "where": str(settings.source_state_dir / api_faults.FAULTS_FILE),
        "delay_next": armed.delay_next,
        "delay_seconds": armed.delay_seconds,
    }


def malformed_pages(settings: Settings, count: int, kind: str) -> dict:
    """Make the next `count` API data requests answer 200 with a malformed page of `kind` (api_faults.MALFORMED)."""
    armed = api_faults.arm(settings.source_state_dir, malformed_next=count, malformed=kind)
    return {"where": str(settings.source_state_dir / api_faults.FAULTS_FILE), "malformed_next": armed.malformed_next,
            "malformed": armed.malformed}


# Dispatcher ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultRequest:
    settings: Settings
    target: str
    day: date | None
    count: int
    column: str | None
    seconds: float


@dataclass(frozen=True)
class FaultSpec:
    targets: tuple[str, ...]  # the first is the default
    uses_day: bool
    uses_column: bool
    apply: Callable[[FaultRequest], dict]


FAULTS: dict[str, FaultSpec] = {
    "duplicates": FaultSpec(TARGETS, True, False, lambda r: duplicate_rows(r.settings, r.target, r.day, r.count)),
    "null-required": FaultSpec(
        TARGETS, True, True, lambda r: set_bad_values(r.settings, NULL_REQUIRED, r.target, r.day, r.count, r.column)
    ),
    "out-of-range": FaultSpec(TARGETS, True, False, lambda r: set_bad_values(r.settings, OUT_OF_RANGE, r.target, r.day, r.count, None)),
    "unknown-fk": FaultSpec(TARGETS, True, False, lambda r: set_bad_values(r.settings, UNKNOWN_FK, r.target, r.day, r.count, None)),
    "rename-column": FaultSpec((EXPORT,), True, True, lambda r: rename_column(r.settings, r.day, r.column or DEFAULT_FILE_COLUMN)),
    "drop-column": FaultSpec((EXPORT,), True, True, lambda r: drop_column(r.settings, r.day, r.column or DEFAULT_FILE_COLUMN)),
    "truncate-file": FaultSpec((EXPORT,), True, False, lambda r: truncate_file(r.settings, r.day)),
    "http-500": FaultSpec((WEATHER,), False, False, lambda r: http_errors(r.settings, r.count)),
    "slow": FaultSpec((WEATHER,), False, False, lambda r: slow_responses(r.settings, r.count, r.seconds)),
    # 200 answers that are no page of ours: an HTML page, `data: null`, another shape, a cursor that repeats.
    **{kind: FaultSpec((WEATHER,), False, False, lambda r, kind=kind: malformed_pages(r.settings, r.count, kind))
       for kind in api_faults.MALFORMED},
}


def inject(
    settings: Settings,
    fault: str,
    *,
    day: date | None = None,
    count: int = 5,
    target: str | None = None,
    column: str | None = None,
    seconds: float = DEFAULT_SECONDS,
) -> dict:
    """Apply one fault; returns what changed. `target` defaults to the fault's natural target
    (opdb for row faults, export for file faults, weather for API faults); `day` defaults
    to the last replayed day."""
    spec = FAULTS.get(fault)
    if spec is None:
        raise FaultError(f"Unknown fault {fault!r}; choose one of {', '.join(FAULTS)}.")
    target = target or spec.targets[0]
    if target not in spec.targets:
        raise FaultError(f"Fault {fault} applies to target(s) {', '.join(spec.targets)}, not {target!r}.")
    if column is not None and not spec.uses_column:
        raise FaultError(f"Fault {fault} does not take a column (only null-required, rename-column and drop-column do).")
    if count < 1:
        raise FaultError(f"count must be at least 1, got {count}.")
    if seconds <= 0:
        raise FaultError(f"seconds must be positive, got {seconds}.")
    resolved_day = _resolve_day(settings, day) if spec.uses_day else None
    described = spec.apply(FaultRequest(settings, target, resolved_day, count, column, seconds))
    return {"fault": fault, "target": target, "day": resolved_day.isoformat() if resolved_day else None, **described}
