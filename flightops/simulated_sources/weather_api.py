"""The weather observations HTTP API: serves what the replay has published so far.

Endpoints:
- `GET /v1/observations?start_date=YYYY-MM-DD&end_date=YYYY-MM-DD[&limit=N][&cursor=C][&since=ISO-ts]`
  -> `{"data": [...], "next_cursor": "..." | null}`; dates are local observation
  dates, inclusive; rows come in a stable order (the store's row_id) and the
  opaque cursor resumes after the last row served, so paging sees every row once.
  `since` keeps rows with `updated_at` later than it (a naive time is taken as UTC).
- `GET /health` -> `{"status": "ok", "replayed_through": "YYYY-MM-DD" | null, "source_id": "...",
  "state_dir": "/abs/path"}`: `source_id` identifies the source systems the API serves (see
  `ensure_source_id`), so a platform can tell its own API from another checkout's on the same port.
Bad parameters answer 400 with `{"error": ...}` naming the parameter.

Faults armed in `api_faults.json` (see `api_faults`: error statuses, delays, malformed 200 pages)
apply to the data endpoint only: a readiness probe on /health must not consume a fault meant for the pipeline.
Stdlib only (ThreadingHTTPServer); the store is opened per request, never held.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import logging
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from flightops.simulated_sources import api_faults, clock, weather_store
from flightops.simulated_sources.dataset import UTC_TIMESTAMP_FORMAT

OBSERVATIONS_PATH = "/v1/observations"
HEALTH_PATH = "/health"
DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
_PARAMETERS = ("start_date", "end_date", "limit", "cursor", "since")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CURSOR_PREFIX = "after:"
# SQLite's largest integer: a cursor beyond it cannot be a row id (and would overflow the query).
MAX_ROW_ID = 2**63 - 1
# The identity of the source systems in a state directory (one random id, written once).
SOURCE_ID_FILE = "source_id"

log = logging.getLogger(__name__)


def source_id(state_dir: Path) -> str | None:
    """The id of the source systems in `state_dir`; None while no API has served from it."""
    try:
        return (state_dir / SOURCE_ID_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_source_id(state_dir: Path) -> str:
    """The state directory's id, created on first use.

    A random id stored beside the data, not a hash of the path: a container mounting the same
    folder elsewhere is the same source, and `flightops sources reset` makes a new one. The id is
    linked into place, so of two processes creating it at once, the first wins and both read it.
    """
    existing = source_id(state_dir)
    if existing:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    draft = state_dir / f".{SOURCE_ID_FILE}.{uuid.uuid4().hex}"
    draft.write_text(uuid.uuid4().hex)
    try:
        os.link(draft, state_dir / SOURCE_ID_FILE)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return source_id(state_dir)


class BadParameter(ValueError):
    """A query parameter the API cannot serve; the message names it."""


@dataclass(frozen=True)
class ObservationQuery:
    start: date
    end: date
    limit: int
    after_row_id: int
    updated_after: str | None


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{row_id}".encode()).decode()


def cursor_position(cursor: str) -> int:
    """The row id a cursor resumes after; BadParameter for anything this API cannot have issued.

    Public for the client, which requires each next_cursor to move forward (a looping API repeats one).
    """
    problem = f"cursor {cursor!r} is not a cursor this API issued; pass next_cursor from a previous page."
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadParameter(problem) from exc
    position = text.removeprefix(_CURSOR_PREFIX)
    if position == text or not _is_whole_number(position) or int(position) > MAX_ROW_ID:
        raise BadParameter(problem)
    return int(position)


def _is_whole_number(text: str) -> bool:
    """Only 0-9: str.isdigit() also accepts digits int() refuses, such as '²'."""
    return text.isascii() and text.isdigit()


def _parse_date(name: str, value: str) -> date:
    try:
        if not _ISO_DATE.match(value):
            raise ValueError("expected YYYY-MM-DD")
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadParameter(f"{name} {value!r} is not a date in the form YYYY-MM-DD ({exc}).") from exc


def _parse_since(value: str) -> str:
    """The stored-timestamp form of `since`, floored to whole seconds.

    Stored `updated_at` values are whole seconds, so `updated_at > floor(since)`
    selects exactly the rows later than `since`.
    """
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadParameter(f"since {value!r} is not an ISO timestamp (e.g. 2013-01-02T06:00:00Z).") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc).strftime(UTC_TIMESTAMP_FORMAT)
    except OverflowError as exc:
        raise BadParameter(f"since {value!r} is out of range in UTC ({exc}).") from exc


def parse_observation_query(query_string: str) -> ObservationQuery:
    """Validate the data endpoint's parameters; BadParameter names the first bad one."""
    values = parse_qs(query_string, keep_blank_values=True)
    for name, given in values.items():
        if name not in _PARAMETERS:
            raise BadParameter(f"{name} is not a parameter of {OBSERVATIONS_PATH}; use {', '.join(_PARAMETERS)}.")
        if len(given) > 1:
            raise BadParameter(f"{name} is given {len(given)} times; give it once.")
    single = {name: given[0] for name, given in values.items()}
    for name in ("start_date", "end_date"):
        if name not in single:
            raise BadParameter(f"{name} is required (YYYY-MM-DD, local observation date, inclusive).")
    start = _parse_date("start_date", single["start_date"])
    end = _parse_date("end_date", single["end_date"])
    if end < start:
        raise BadParameter(f"end_date {end.isoformat()} is before start_date {start.isoformat()}.")
    limit_text = single.get("limit", str(DEFAULT_LIMIT))
    if not _is_whole_number(limit_text) or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise BadParameter(f"limit {limit_text!r} must be a whole number from 1 to {MAX_LIMIT}.")
    return ObservationQuery(
        start=start,
        end=end,
        limit=int(limit_text),
        after_row_id=cursor_position(single["cursor"]) if "cursor" in single else 0,
        updated_after=_parse_since(single["since"]) if "since" in single else None,
    )


def health(state_dir: Path) -> dict:
    """The /health answer: the replay clock and which source systems these are."""
    through = clock.replayed_through(state_dir)
    return {
        "status": "ok",
        "replayed_through": through.isoformat() if through else None,
        "source_id": ensure_source_id(state_dir),
        "state_dir": str(state_dir.resolve()),
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state_dir: Path):
        self.state_dir = state_dir
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its time-out): nobody to answer
            log.debug("weather API client of %s hung up before the answer", self.path)
        except Exception as exc:  # answer the client, then keep serving other requests
            log.exception("weather API request %s failed", self.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"the API failed on {self.path}: {exc}"})

    def _route(self) -> None:
        url = urlsplit(self.path)
        if url.path == HEALTH_PATH:
            self._send(HTTPStatus.OK, health(self.server.state_dir))
        elif url.path == OBSERVATIONS_PATH:
            self._observations(url.query)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no endpoint at {url.path}; use {OBSERVATIONS_PATH} or {HEALTH_PATH}."})

    def _observations(self, query_string: str) -> None:
        fault = api_faults.take(self.server.state_dir)
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault.status is not None:
            self._send(fault.status, {"error": f"injected fault: this request answers {fault.status}; retry later."})
            return
        try:
            query = parse_observation_query(query_string)
        except BadParameter as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        page = weather_store.read_page(
            self.server.state_dir,
            query.start,
            query.end,
            after_row_id=query.after_row_id,
            limit=query.limit,
            updated_after=query.updated_after,
        )
        next_cursor = encode_cursor(page.last_row_id) if page.has_more else None
        if fault.malformed:
            self._send_malformed(fault.malformed, page.observations, query.after_row_id)
            return
        self._send(HTTPStatus.OK, {"data": page.observations, "next_cursor": next_cursor})

    def _send_malformed(self, kind: str, observations: list[dict], after_row_id: int) -> None:
        """An armed malformed 200 (api_faults.MALFORMED): what a proxy, another service or a broken version sends."""
        if kind == "html":
            self._send(HTTPStatus.OK, "<html><body><h1>Service unavailable</h1></body></html>", "text/html")
        elif kind == "data-null":
            self._send(HTTPStatus.OK, {"data": None, "next_cursor": None})
        elif kind == "wrong-shape":
            self._send(HTTPStatus.OK, {"results": observations, "next": None})
        else:  # repeat-cursor: resume where this request did, so the client would ask for this page forever
            self._send(HTTPStatus.OK, {"data": observations, "next_cursor": encode_cursor(after_row_id)})

    def _send(self, status: int, body: dict | str, content_type: str = "application/json") -> None:
        payload = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s - %s", self.address_string(), format % args)


class CannotServe(RuntimeError):
    """The API cannot listen at the address asked for; the one-line message says why and what to do."""


def _listen(state_dir: Path, host: str, port: int) -> _Server:
    """The server bound to host:port.

    A port in use stays an OSError (EADDRINUSE): the caller knows who may hold it. Any other failure,
    chiefly an address that is not this machine's (FLIGHTOPS_WEATHER_API_URL naming another host),
    is CannotServe.
    """
    try:
        return _Server((host, port), state_dir)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise
        not_ours = isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
        reason = f"{host} is no address of this machine" if not_ours else "it cannot listen there"
        raise CannotServe(
            f"Cannot serve the weather API at http://{host}:{port}: {reason} ({exc}). Set FLIGHTOPS_WEATHER_API_URL "
            "to an address of this machine (e.g. http://127.0.0.1:8765), or start the API on that host "
            "(`flightops sources api`) and point the URL at it, then re-run."
        ) from None


# How often the serving thread looks for a stop request: socketserver's default (0.5 s) made every run
# that started the API wait about half a second for it at the end (a new day's run takes 13 s).
STOP_POLL_SECONDS = 0.05


class WeatherApiServer:
    """The API serving in a daemon thread; a context manager that stops it on exit."""

    def __init__(self, state_dir: Path, host: str, port: int):
        self._server = _listen(state_dir, host, port)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": STOP_POLL_SECONDS},
                                        name="weather-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "WeatherApiServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> "WeatherApiServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_weather_api(state_dir: Path, host: str = "127.0.0.1", port: int = 0) -> WeatherApiServer:
    """Serve the API from `state_dir` in a background thread (port 0 picks a free port).

    OSError when the port is in use, CannotServe when it cannot listen there for another reason.
    """
    return WeatherApiServer(state_dir, host, port).start()


def _announce(message: str) -> None:
    print(message, flush=True)


def serve_forever(state_dir: Path, host: str, port: int, announce: Callable[[str], None] = _announce) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM."""

    def stop_on_sigterm(signum, frame):
        raise KeyboardInterrupt

    try:
        server = _listen(state_dir, host, port)
    except OSError as exc:
        raise CannotServe(
            f"Cannot serve the weather API at http://{host}:{port} ({exc}): another API (`make run`, `make ui`, "
            "`flightops sources api`) or another service holds the port. Stop it, or pick another port with --port."
        ) from None
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    announce(f"Weather API serving {state_dir} at http://{host}:{server.server_address[1]} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        announce("Weather API stopped.")
    finally:
        server.server_close()
