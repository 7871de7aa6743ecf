"""Client of the weather observations API: its identity, paging, retries with backoff, clear failure.

Any server can answer at the configured URL (another checkout's API on the same port, an older
one, another service). Before loading, the client asks `/health` which source systems the API
serves and compares that with the platform's own source state folder: ingesting another
platform's observations would succeed on a fraction of the weather with every check green.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import requests

from flightops.simulated_sources.weather_api import source_id

HEALTH_TIMEOUT_SECONDS = 2.0
# How to move aside when the port is someone else's: stated in every identity error.
WHAT_TO_DO = (
    "Stop that server (another checkout's `make run`, `make ui` or `flightops sources api`), or set "
    "FLIGHTOPS_WEATHER_API_URL to a free port (e.g. FLIGHTOPS_WEATHER_API_URL=http://127.0.0.1:8766), then re-run."
)


class WeatherApiError(RuntimeError):
    """The API could not deliver a partition's observations."""


class ForeignWeatherApi(WeatherApiError):
    """Something answers at the weather API's URL, but it does not serve this platform's sources."""


def probe(base_url: str, timeout_seconds: float = HEALTH_TIMEOUT_SECONDS) -> dict | None:
    """The /health answer of a flightops weather API at `base_url`; None when nothing listens there.

    Raises ForeignWeatherApi when something answers that is no flightops weather API (or an older
    one, whose /health carries no `source_id`): it cannot be told apart from another platform's.
    """
    url = f"{base_url}/health"
    try:
        response = requests.get(url, timeout=timeout_seconds)
    except requests.Timeout:
        raise ForeignWeatherApi(f"Something listens at {base_url} but did not answer {url} within {timeout_seconds:g} s. {WHAT_TO_DO}") from None
    except requests.ConnectionError:
        return None
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
    """Every observation of the local days first..last, following the cursor page by page."""
    endpoint = f"{base_url}/v1/observations"
    params: dict[str, str | int] = {"start_date": first.isoformat(), "end_date": last.isoformat(), "limit": page_size}
    rows: list[dict] = []
    with requests.Session() as session:
        while True:
            page = _get_page(session, endpoint, params, first, last, timeout_seconds, max_attempts, backoff_seconds)
            rows.extend(page["data"])
            if not page.get("next_cursor"):
                return rows
            params["cursor"] = page["next_cursor"]


def _get_page(session, endpoint, params, first, last, timeout_seconds, max_attempts, backoff_seconds) -> dict:
    where = f"{endpoint} for partition {first}..{last}"
    last_error = ""
    for attempt in range(1, max_attempts + 1):
        try:
            response = session.get(endpoint, params=params, timeout=timeout_seconds)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 500:
                if response.status_code != 200:
                    raise WeatherApiError(
                        f"{where} answered {response.status_code}: {response.text[:300]}. "
                        "The request itself is wrong (a client error is not retried); check the partition dates."
                    )
                return response.json()
            last_error = f"HTTP {response.status_code}: {response.text[:200]}"
        if attempt < max_attempts:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    raise WeatherApiError(
        f"{where} failed after {max_attempts} attempts (last error: {last_error}). "
        "Check that the weather API is running (`flightops sources api`) and healthy, then re-run the partition."
    )
