"""Armed faults of the weather API, kept in `api_faults.json` in the state directory.

`{"fail_next": N, "status": 500, "delay_next": M, "delay_seconds": S, "malformed_next": K,
"malformed": "html"}`: the next N data requests answer `status`, the next M wait S seconds
first, the next K answer 200 with a malformed page (one of MALFORMED: what a proxy, another
service or a broken API version sends). The file is read and its counters decremented under an
exclusive file lock, so concurrent request threads (or several server processes) never consume
one fault twice.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from flightops.simulated_sources.files import write_atomically

FAULTS_FILE = "api_faults.json"
LOCK_FILE = "api_faults.lock"
# Malformed 200 answers: an HTML page, `data: null`, the page under another key, a cursor that does not move.
MALFORMED = ("html", "data-null", "wrong-shape", "repeat-cursor")


@dataclass(frozen=True)
class ApiFaults:
    fail_next: int = 0
    status: int = 500
    delay_next: int = 0
    delay_seconds: float = 0.0
    malformed_next: int = 0
    malformed: str = MALFORMED[0]

    def __post_init__(self):
        if self.malformed not in MALFORMED:
            raise ValueError(f"malformed {self.malformed!r} is not one of {', '.join(MALFORMED)}")


@dataclass(frozen=True)
class RequestFault:
    """What one request must suffer: an error status (or None) after a delay (or 0), or a malformed page (or None)."""

    status: int | None
    delay_seconds: float
    malformed: str | None = None


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
            '{"fail_next": N, "status": 500, "delay_next": M, "delay_seconds": S, "malformed_next": K, "malformed": "html"}.'
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
        malformed = faults.malformed_next > 0
        if fail or delay or malformed:
            _write(
                path,
                replace(
                    faults,
                    fail_next=faults.fail_next - fail,
                    delay_next=faults.delay_next - delay,
                    malformed_next=faults.malformed_next - malformed,
                ),
            )
    return RequestFault(
        status=faults.status if fail else None,
        delay_seconds=faults.delay_seconds if delay else 0.0,
        malformed=faults.malformed if malformed else None,
    )
