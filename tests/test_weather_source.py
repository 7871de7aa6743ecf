"""The platform ingests weather only from its own source systems' API (issue 8, item 1).

Another checkout's API on the configured port once answered /health, served a few of the days, and
the run loaded 5 % of the weather with every check green. Real HTTP servers throughout: a foreign
API is `start_weather_api` over another state folder, another service is Python's http.server.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from datetime import date
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import dagster as dg
import pytest
import requests

from flightops.pipeline import weather_api_running
from flightops.settings import Settings
from flightops.simulated_sources.weather_api import SOURCE_ID_FILE, source_id, start_weather_api
from flightops.weather_client import ForeignWeatherApi, probe
from tests.platform_harness import Platform, failure_messages

DAY1 = "2013-01-01"
RAW_WEATHER = dg.AssetKey(["raw", "weather"])


def configure_url(url: str) -> Settings:
    """Point the platform at `url`, as FLIGHTOPS_WEATHER_API_URL in .env or the shell would.

    Set in os.environ directly: the `platform` fixture restores the whole environment afterwards.
    """
    os.environ["FLIGHTOPS_WEATHER_API_URL"] = url
    return Settings.current()


@contextlib.contextmanager
def foreign_api(tmp_path: Path) -> Iterator[str]:
    """Another platform's weather API (its own, empty, state folder) on a free port."""
    with start_weather_api(tmp_path / "other-checkout" / "sources") as server:
        yield server.url


@contextlib.contextmanager
def other_service(tmp_path: Path) -> Iterator[str]:
    """An HTTP server that is no weather API: /health answers 404."""
    handler = lambda *args: SimpleHTTPRequestHandler(*args, directory=str(tmp_path))  # noqa: E731
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


def test_health_names_the_source_systems_it_serves(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    with start_weather_api(ours) as api, start_weather_api(theirs) as other:
        first = requests.get(f"{api.url}/health", timeout=10).json()
        again = requests.get(f"{api.url}/health", timeout=10).json()
        foreign = requests.get(f"{other.url}/health", timeout=10).json()
    assert first == again == {"status": "ok", "replayed_through": None, "source_id": source_id(ours), "state_dir": str(ours.resolve())}
    assert (ours / SOURCE_ID_FILE).read_text() == first["source_id"]
    assert foreign["source_id"] == source_id(theirs) != first["source_id"]


def test_the_run_refuses_a_foreign_weather_api_on_the_configured_port(platform: Platform, tmp_path):
    """`flightops run` and `flightops ui` enter `weather_api_running`; the CLI prints the error's one line."""
    with foreign_api(tmp_path) as url:
        settings = configure_url(url)
        with pytest.raises(ForeignWeatherApi) as refused, weather_api_running(settings):
            pytest.fail("the block must not run against a foreign API")
    message = str(refused.value)
    assert "\n" not in message
    assert f"The weather API at {url} serves other source systems ({tmp_path / 'other-checkout' / 'sources'}" in message
    assert f"not this platform's ({settings.source_state_dir}" in message
    assert "Stop that server" in message and "set FLIGHTOPS_WEATHER_API_URL to a free port" in message


def test_something_else_on_the_port_is_refused_too(platform: Platform, tmp_path):
    with other_service(tmp_path) as url:
        settings = configure_url(url)
        with pytest.raises(ForeignWeatherApi, match=r"/health answered HTTP 404 .*: not a flightops weather API") as refused:
            with weather_api_running(settings):
                pass
    assert "set FLIGHTOPS_WEATHER_API_URL to a free port" in str(refused.value)


def test_its_own_api_is_used_and_a_free_port_gets_one(platform: Platform):
    # The harness serves this platform's sources at the configured URL, as `make sources-api` would.
    with weather_api_running(platform.settings) as url:
        assert url == platform.settings.weather_api_url
    settings = configure_url(f"http://127.0.0.1:{free_port()}")
    assert probe(settings.weather_api_url) is None
    with weather_api_running(settings) as url:
        assert url == settings.weather_api_url
        assert probe(url)["source_id"] == source_id(settings.source_state_dir)
    assert probe(settings.weather_api_url) is None  # stopped with the block


def test_ingestion_refuses_a_foreign_api_in_any_run(platform: Platform, tmp_path):
    """The Dagster UI's runs do not pass through `weather_api_running`: the asset checks too."""
    platform.replay(DAY1)
    with foreign_api(tmp_path) as url:
        configure_url(url)
        result = platform.run(DAY1, DAY1, [RAW_WEATHER])
    assert not result.success
    message = failure_messages(result)
    assert f"The weather API at {url} serves other source systems" in message
    assert str(platform.settings.source_state_dir) in message
    assert result.get_asset_materialization_events() == []


def test_ingestion_records_which_source_it_loaded(platform: Platform):
    platform.replay(DAY1)
    result = platform.run(DAY1, DAY1, [RAW_WEATHER])
    assert result.success, failure_messages(result)
    metadata = result.asset_materializations_for_node("raw__weather")[0].metadata
    assert metadata["source_id"].value == source_id(platform.settings.source_state_dir)
    assert metadata["source"].value == platform.settings.weather_api_url
    assert date.fromisoformat(metadata["first_day"].value) == date.fromisoformat(DAY1)
