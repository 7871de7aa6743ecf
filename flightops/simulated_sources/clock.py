"""The replay clock: the last day whose data the source systems already hold.

It lives in `clock.json` in the source state directory, written atomically after
each replayed day, so an interrupted replay leaves a consistent state that the
next run continues from.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from flightops.settings import FIRST_DAY, LAST_DAY
from flightops.simulated_sources.files import write_atomically

CLOCK_FILE = "clock.json"
FIRST = date.fromisoformat(FIRST_DAY)
LAST = date.fromisoformat(LAST_DAY)


def replayed_through(state_dir: Path) -> date | None:
    """The last replayed day, or None before the first replay."""
    path = state_dir / CLOCK_FILE
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())["replayed_through"]
        return date.fromisoformat(value) if value is not None else None
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(
            f"The replay clock {path} is unreadable ({exc}). Run `flightops sources reset` "
            "and replay again, or fix the file to hold {\"replayed_through\": \"YYYY-MM-DD\"}."
        ) from exc


def advance(state_dir: Path, day: date) -> None:
    """Record that every day up to `day` is replayed."""
    write_atomically(state_dir / CLOCK_FILE, json.dumps({"replayed_through": day.isoformat()}).encode())


def check_in_calendar(day: date, what: str) -> None:
    """Fail clearly for a day outside the data set's year."""
    if not FIRST <= day <= LAST:
        raise ValueError(f"{what} {day.isoformat()} is outside the data set's calendar {FIRST_DAY}..{LAST_DAY}; pick a day in 2013.")


def require_replayed(state_dir: Path, day: date) -> None:
    """Fail clearly when `day` has not been replayed yet (its data is not in the source systems)."""
    through = replayed_through(state_dir)
    if through is None or day > through:
        raise ValueError(
            f"Day {day.isoformat()} is not replayed yet (replayed through: {through.isoformat() if through else 'nothing'}); "
            f"run `flightops sources replay --until {day.isoformat()}` first."
        )
