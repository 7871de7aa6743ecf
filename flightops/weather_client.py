"""Client of the weather observations API: paging, retries with backoff, clear failure."""

from __future__ import annotations

import time
from datetime import date

import requests


class WeatherApiError(RuntimeError):
    """The API could not deliver a partition's observations."""


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
