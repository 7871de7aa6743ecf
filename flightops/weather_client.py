"""Client of the weather observations API: its identity, paging, retries with backoff, clear failure.

No answer is trusted: each page's status, content type, JSON envelope, observations and cursor are
checked, and a request takes at most `max_pages` pages, so a proxy's HTML page, another service's
JSON or a looping API fails the partition with WeatherApiError naming the URL and the days.

Any server can answer at the configured URL (another checkout's API on the same port, an older
one, another service). Before loading, the client asks `/health` which source systems the API
serves and compares that with the platform's own source state folder: ingesting another
platform's observations would succeed on a fraction of the weather with every check green.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import requests

from flightops.simulated_sources.weather_api import BadParameter, cursor_position, source_id

HEALTH_TIMEOUT_SECONDS = 2.0
# How to move aside when the port is someone else's: stated in every identity error.
WHAT_TO_DO = (
    "Stop that server (another checkout's `make run`, `make ui` or `flightops sources api`), or set "
    "FLIGHTOPS_WEATHER_API_URL to a free port (e.g. FLIGHTOPS_WEATHER_API_URL=http://127.0.0.1:8766), then re-run."
)
# What to do about an answer that breaks the API's format: stated in every such error.
BROKEN_API = (
    "Not retried: the same request gets the same answer. Check what serves that URL (`curl` it; this platform's "
    "API is `flightops sources api`, and `make run` and `make ui` start one), fix or restart it, then re-run the partition."
)
# EWR, JFK and LGA report hourly: 72 observations a day, a few more with corrected versions. An API still
# paging after ten times that per requested day loops or is broken: the page bound of a request (max_pages).
MAX_OBSERVATIONS_PER_DAY = 720
# JSON values a raw table column can hold: an observation's fields are single values, never lists or objects.
_FIELD_TYPES = (str, int, float, bool, type(None))


class WeatherApiError(RuntimeError):
    """The API could not deliver a partition's observations."""


class ForeignWeatherApi(WeatherApiError):
    """Something answers at the weather API's URL, but it does not serve this platform's sources."""


def probe(base_url: str, timeout_seconds: float = HEALTH_TIMEOUT_SECONDS) -> dict | None:
    """The /health answer of a flightops weather API at `base_url`; None when nothing listens there.

    Nothing listens when the connection is refused or not accepted in time (an address nobody
    answers at). Raises ForeignWeatherApi when something accepts but answers late or as no flightops
    weather API (or an older one, whose /health carries no `source_id`): it cannot be told apart
    from another platform's.
    """
    url = f"{base_url}/health"
    try:
        response = requests.get(url, timeout=timeout_seconds)
    except requests.ConnectionError:  # a ConnectTimeout too: nothing accepted the connection
        return None
    except requests.Timeout:
        raise ForeignWeatherApi(f"Something listens at {base_url} but did not answer {url} within {timeout_seconds:g} s. {WHAT_TO_DO}") from None
    except requests.RequestException as exc:
        raise WeatherApiError(
            f"Cannot ask {url} ({type(exc).__name__}: {exc}). Set FLIGHTOPS_WEATHER_API_URL to the weather API's "
            "address (e.g. http://127.0.0.1:8765), then re-run."
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("source_id"):
        raise ForeignWeatherApi(
            f"{url} answered HTTP {response.status_code} {response.text[:120]!r}: not a flightops weather API that "
            f"names its source systems (another service, or an older checkout's API). {WHAT_TO_DO}"
        )
    return body


def require_own_source(base_url: str, health: dict, state_dir: Path) -> str:
    """The API's source id when it serves `state_dir`'s source systems; ForeignWeatherApi otherwise.

    The id is read after /health answered: an API serving `state_dir` has created it by then.
    """
    ours = source_id(state_dir)
    if health["source_id"] != ours:
        raise ForeignWeatherApi(
            f"The weather API at {base_url} serves other source systems ({health.get('state_dir', 'unknown folder')}, "
            f"source id {health['source_id']}, replayed through {health.get('replayed_through') or 'nothing'}), not this "
            f"platform's ({state_dir}, source id {ours or 'none yet'}): loading from it would ingest another "
            f"platform's days. {WHAT_TO_DO}"
        )
    return ours


def verify_source(base_url: str, state_dir: Path, *, timeout_seconds: float, max_attempts: int, backoff_seconds: float) -> str:
    """Wait for the API to answer (with backoff), then require that it serves `state_dir`; its source id."""
    for attempt in range(1, max_attempts + 1):
        health = probe(base_url, timeout_seconds)
        if health is not None:
            return require_own_source(base_url, health, state_dir)
        if attempt < max_attempts:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    raise WeatherApiError(
        f"Nothing answers at {base_url}/health after {max_attempts} attempts. Start the weather API "
        "(`flightops sources api`; `make run` and `make ui` start one themselves), then re-run the partition."
    )


def max_pages(first: date, last: date, page_size: int) -> int:
    """The most pages a request of the days first..last may take (one more for a last, empty page)."""
    return math.ceil(((last - first).days + 1) * MAX_OBSERVATIONS_PER_DAY / page_size) + 1


def fetch_observations(
    base_url: str,
    first: date,
    last: date,
    *,
    page_size: int,
    timeout_seconds: float,
    max_attempts: int,
    backoff_seconds: float,
) -> list[dict]:
    """Every observation of the local days first..last, following the cursor page by page.

    Each page is validated (status, JSON, envelope, observations, a cursor that moves forward) and the
    pages are bounded (`max_pages`): a broken or foreign answer fails with WeatherApiError, never with
    a bare parsing error or an endless loop.
    """
    pages = _Pages(f"{base_url}/v1/observations", first, last, timeout_seconds, max_attempts, backoff_seconds)
    params: dict[str, str | int] = {"start_date": first.isoformat(), "end_date": last.isoformat(), "limit": page_size}
    rows: list[dict] = []
    position = 0  # the first page starts at the beginning; each cursor must resume after a later row
    limit = max_pages(first, last, page_size)
    with requests.Session() as session:
        for number in range(1, limit + 1):
            url = requests.Request("GET", pages.endpoint, params=params).prepare().url
            data, next_cursor = pages.get(session, params, url, number)
            rows.extend(data)
            if next_cursor is None:
                return rows
            position = pages.forward(next_cursor, position, url, number)
            params["cursor"] = next_cursor
    raise WeatherApiError(
        f"{pages.where} did not end within {limit} pages of {page_size} ({len(rows)} observations so far; at most "
        f"{MAX_OBSERVATIONS_PER_DAY} a day are expected): the API keeps handing out cursors, last {url}. {BROKEN_API}"
    )


class _BadPage(ValueError):
    """What is wrong with a page's answer; the caller adds where it came from and what to do."""


@dataclass(frozen=True)
class _Pages:
    """One request's pages: fetched with retries on 5xx and time-outs, validated, and named in every error."""

    endpoint: str
    first: date
    last: date
    timeout_seconds: float
    max_attempts: int
    backoff_seconds: float

    @property
    def where(self) -> str:
        return f"{self.endpoint} for partition {self.first}..{self.last}"

    def get(self, session: requests.Session, params: dict, url: str, number: int) -> tuple[list[dict], str | None]:
        """A page's observations and next cursor (None on the last page)."""
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = session.get(self.endpoint, params=params, timeout=self.timeout_seconds)
            # A body cut off mid-way is a dropped connection too.
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            except requests.RequestException as exc:
                raise WeatherApiError(
                    f"{self.where}: {url} cannot be requested ({type(exc).__name__}: {exc}). Check "
                    "FLIGHTOPS_WEATHER_API_URL (e.g. http://127.0.0.1:8765), then re-run the partition."
                ) from None
            else:
                if 400 <= response.status_code < 500:
                    raise WeatherApiError(
                        f"{self.where}: page {number} ({url}) answered HTTP {response.status_code}: {response.text[:300]}. "
                        "The request was refused (a client error is not retried): check the partition dates and that "
                        "FLIGHTOPS_WEATHER_API_URL points at the flightops weather API, then re-run the partition."
                    )
                if response.status_code < 500:
                    try:
                        return _page(response)
                    except _BadPage as problem:
                        raise WeatherApiError(f"{self.where}: page {number} ({url}) {problem}. {BROKEN_API}") from None
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt < self.max_attempts:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise WeatherApiError(
            f"{self.where} failed after {self.max_attempts} attempts (last error: {last_error}; request {url}). "
            "Check that the weather API is running (`flightops sources api`) and healthy, then re-run the partition."
        )

    def forward(self, cursor: str, position: int, url: str, number: int) -> int:
        """The position `cursor` resumes after, which must lie beyond `position`: a repeated cursor loops."""
        answered = f"{self.where}: page {number} ({url}) answered next_cursor {cursor!r}, which"
        try:
            after = cursor_position(cursor)
        except BadParameter:
            raise WeatherApiError(f"{answered} is no cursor of the flightops weather API. {BROKEN_API}") from None
        if after <= position:
            raise WeatherApiError(
                f"{answered} does not move forward (it resumes after row {after}, this page after row {position}): "
                f"following it would fetch rows again (a repeated cursor, forever). {BROKEN_API}"
            )
        return after


def _page(response: requests.Response) -> tuple[list[dict], str | None]:
    """The observations and next cursor of an answer below 400; _BadPage says what breaks the API's format."""
    if response.status_code != 200:
        raise _BadPage(f"answered HTTP {response.status_code}, not 200 with a page: {_excerpt(response)}")
    content_type = response.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise _BadPage(f"answered HTTP 200 with content type {content_type or 'none'!r}, not application/json: {_excerpt(response)}")
    try:
        body = response.json()
    except ValueError as exc:
        raise _BadPage(f"answered HTTP 200 with a body that is not JSON ({exc}): {_excerpt(response)}") from None
    if not isinstance(body, dict) or not {"data", "next_cursor"} <= body.keys():
        raise _BadPage(f'answered JSON without the envelope {{"data": [...], "next_cursor": ...}}: {_excerpt(response)}')
    data, cursor = body["data"], body["next_cursor"]
    if not isinstance(data, list):
        raise _BadPage(f"answered data = {json.dumps(data)[:120]}, not a list of observations")
    if cursor is not None and not (isinstance(cursor, str) and cursor):
        raise _BadPage(f"answered next_cursor = {json.dumps(cursor)[:120]}, neither null nor a cursor")
    for index, row in enumerate(data):
        if not isinstance(row, dict) or not all(isinstance(value, _FIELD_TYPES) for value in row.values()):
            raise _BadPage(f"answered observation {index} = {json.dumps(row)[:120]}, not an object of single values")
    return data, cursor


def _excerpt(response: requests.Response) -> str:
    return repr(response.text[:120])
