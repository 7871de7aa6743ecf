"""Armed faults of the weather API, kept in `api_faults.json` in the state directory.

`{"fail_next": N, "status": 500, "delay_next": M, "delay_seconds": S}`: the next N
data requests answer `status`, the next M wait S seconds first. The file is read
and its counters decremented under an exclusive file lock, so concurrent request
threads (or several server processes) never consume one fault twice.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from flightops.simulated_sources.files import write_atomically

FAULTS_FILE = "api_faults.json"
LOCK_FILE = "api_faults.lock"


@dataclass(frozen=True)
class ApiFaults:
    fail_next: int = 0
    status: int = 500
    delay_next: int = 0
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class RequestFault:
    """What one request must suffer: an error status (or None) after a delay (or 0)."""

    status: int | None
    delay_seconds: float


@contextmanager
def _locked(state_dir: Path) -> Iterator[Path]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield state_dir / FAULTS_FILE
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> ApiFaults:
    if not path.exists():
        return ApiFaults()
    try:
        return ApiFaults(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise RuntimeError(
            f"The API fault file {path} is invalid ({exc}); delete it or write "
            '{"fail_next": N, "status": 500, "delay_next": M, "delay_seconds": S}.'
        ) from exc


def _write(path: Path, faults: ApiFaults) -> None:
    write_atomically(path, json.dumps(asdict(faults)).encode())


def arm(state_dir: Path, **changes) -> ApiFaults:
    """Set some fault fields (e.g. fail_next=3, status=500); returns the faults now armed."""
    with _locked(state_dir) as path:
        faults = ApiFaults(**{**asdict(_read(path)), **changes})
        _write(path, faults)
        return faults


def armed(state_dir: Path) -> ApiFaults:
    """The faults currently armed (nothing is consumed)."""
    with _locked(state_dir) as path:
        return _read(path)


def take(state_dir: Path) -> RequestFault:
    """Consume the faults for one request (decrementing the counters that apply)."""
    if not (state_dir / FAULTS_FILE).exists():
        return RequestFault(status=None, delay_seconds=0.0)
    with _locked(state_dir) as path:
        faults = _read(path)
        fail = faults.fail_next > 0
        delay = faults.delay_next > 0
        if fail or delay:
            _write(
                path,
                ApiFaults(
                    fail_next=faults.fail_next - fail,
                    status=faults.status,
                    delay_next=faults.delay_next - delay,
                    delay_seconds=faults.delay_seconds,
                ),
            )
    return RequestFault(status=faults.status if fail else None, delay_seconds=faults.delay_seconds if delay else 0.0)
