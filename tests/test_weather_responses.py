"""Weather API answers are validated, never trusted (issue 7, item 4).

The client once raised bare JSONDecodeError / KeyError / TypeError on an HTML page, a wrong shape
or `data: null` with status 200, and followed a repeated cursor forever. Real HTTP servers
throughout: a scripted `http.server` for answers the simulated API never gives, the simulated API
(`start_weather_api`) for its own 400s and its armed malformed pages, and real sockets for an
address the run cannot serve on.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from urllib.parse import parse_qs, urlencode, urlsplit

import dagster as dg
import pytest
import requests

from flightops import cli
from flightops.pipeline import weather_api_running
from flightops.settings import Settings, environment_under
from flightops.simulated_sources import api_faults, weather_store
from flightops.simulated_sources.faults import inject
from flightops.simulated_sources.weather_api import MAX_ROW_ID, CannotServe, encode_cursor, serve_forever, start_weather_api
from flightops.weather_client import ForeignWeatherApi, WeatherApiError, fetch_observations, max_pages, probe
from tests.fault_assertions import assert_ledger_balanced, assert_no_valid_row_lost, clean_versions
from tests.platform_harness import Platform, failure_messages

FIRST, LAST = date(2013, 1, 2), date(2013, 1, 3)
PAGE_SIZE = 1000
OBSERVATION = {"origin": "EWR", "year": 2013, "month": 1, "day": 2, "hour": 5, "temp": 39.02, "wind_gust": None}
# An answer of the scripted server: status, content type, body, and optionally a Content-Length
# larger than the body (the connection then drops mid-body).
Answer = tuple


def as_json(body) -> Answer:
    return 200, "application/json", json.dumps(body)


@contextlib.contextmanager
def scripted_api(answer: Callable[[dict[str, str], int], Answer]) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server answering /v1/observations with `answer(query, request_number)`;
    yields its URL and the paths it was asked for, in order."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            asked.append(self.path)
            query = {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}
            status, content_type, body, *declared = answer(query, len(asked))
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(declared[0] if declared else len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str, max_attempts: int = 3) -> list[dict]:
    return fetch_observations(
        url, FIRST, LAST, page_size=PAGE_SIZE, timeout_seconds=5, max_attempts=max_attempts, backoff_seconds=0.01
    )


def page_url(url: str, cursor: str | None = None) -> str:
    """The URL the client asks for a page (the first without a cursor)."""
    params = {"start_date": FIRST, "end_date": LAST, "limit": PAGE_SIZE} | ({"cursor": cursor} if cursor else {})
    return f"{url}/v1/observations?{urlencode(params)}"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ((200, "text/html", "<html><body>Service unavailable</body></html>"),
         "answered HTTP 200 with content type 'text/html', not application/json: '<html><body>Service unavailable"),
        ((200, "application/json", "{'data': "), "answered HTTP 200 with a body that is not JSON"),
        (as_json({"data": None, "next_cursor": None}), "answered data = null, not a list of observations"),
        (as_json({"results": [OBSERVATION], "next": None}), 'answered JSON without the envelope {"data": [...], "next_cursor": ...}'),
        (as_json([OBSERVATION]), "answered JSON without the envelope"),
        (as_json({"data": [OBSERVATION]}), "answered JSON without the envelope"),
        (as_json({"data": [OBSERVATION, "EWR"], "next_cursor": None}), 'answered observation 1 = "EWR", not an object of single values'),
        (as_json({"data": [{**OBSERVATION, "temp": {"f": 39}}], "next_cursor": None}), "answered observation 0 = "),
        (as_json({"data": [], "next_cursor": 42}), "answered next_cursor = 42, neither null nor a cursor"),
        ((204, "application/json", ""), "answered HTTP 204, not 200 with a page"),
    ],
    ids=["html", "not-json", "data-null", "renamed-keys", "bare-list", "no-cursor-key", "row-not-object",
         "nested-value", "cursor-not-string", "no-content"],
)
def test_a_malformed_answer_fails_once_naming_url_days_and_what_to_do(answer, problem):
    with scripted_api(lambda query, number: answer) as (url, asked):
        with pytest.raises(WeatherApiError) as error:
            fetch(url)
    message = str(error.value)
    assert type(error.value) is WeatherApiError
    assert f"{url}/v1/observations for partition {FIRST}..{LAST}: page 1 ({page_url(url)}) {problem}" in message
    assert "Not retried" in message and "fix or restart it, then re-run the partition" in message
    assert "\n" not in message
    assert len(asked) == 1  # the same request would get the same answer: not retried


def test_a_repeated_cursor_ends_with_a_clear_error_on_the_second_page():
    cursor = encode_cursor(5)
    with scripted_api(lambda query, number: as_json({"data": [OBSERVATION], "next_cursor": cursor})) as (url, asked):
        with pytest.raises(WeatherApiError) as error:
            fetch(url)
    message = str(error.value)
    assert len(asked) == 2
    assert f"page 2 ({page_url(url, cursor)}) answered next_cursor '{cursor}', which does not move forward" in message
    assert "resumes after row 5, this page after row 5" in message and "re-run the partition" in message


def test_a_cursor_going_back_or_not_from_the_api_is_refused():
    cursors = {1: encode_cursor(40), 2: encode_cursor(12)}
    with scripted_api(lambda query, number: as_json({"data": [OBSERVATION], "next_cursor": cursors[number]})) as (url, asked):
        with pytest.raises(WeatherApiError, match=r"does not move forward \(it resumes after row 12, this page after row 40"):
            fetch(url)
    with scripted_api(lambda query, number: as_json({"data": [], "next_cursor": "page-2"})) as (url, asked):
        with pytest.raises(WeatherApiError, match="answered next_cursor 'page-2', which is no cursor of the flightops weather API"):
            fetch(url)
    assert len(asked) == 1


def test_an_api_paging_without_end_is_stopped_at_the_page_bound():
    """Every cursor new and forward, one row a page: only the bound ends it."""
    answer = lambda query, number: as_json({"data": [OBSERVATION], "next_cursor": encode_cursor(number)})  # noqa: E731
    with scripted_api(answer) as (url, asked):
        with pytest.raises(WeatherApiError) as error:
            fetch(url)
    bound = max_pages(FIRST, LAST, PAGE_SIZE)
    assert bound == 3  # two days of at most 720 observations in pages of 1000, and a last empty one
    assert len(asked) == bound
    message = str(error.value)
    assert f"for partition {FIRST}..{LAST} did not end within {bound} pages of {PAGE_SIZE} ({bound} observations so far" in message
    assert f"last {page_url(url, encode_cursor(bound - 1))}" in message and "re-run the partition" in message


def test_5xx_and_a_dropped_body_are_retried_and_4xx_is_not():
    ok = as_json({"data": [OBSERVATION], "next_cursor": None})
    answers = {1: (503, "text/html", "<h1>busy</h1>"), 2: (502, "text/plain", "bad gateway"), 3: (*ok, 10_000)}
    with scripted_api(lambda query, number: answers.get(number, ok)) as (url, asked):
        assert fetch(url, max_attempts=4) == [OBSERVATION]
    assert len(asked) == 4
    with scripted_api(lambda query, number: (*ok, 10_000)) as (url, asked):
        with pytest.raises(WeatherApiError, match=r"failed after 3 attempts \(last error: ChunkedEncodingError: .* request http"):
            fetch(url)
    refused = (400, "application/json", json.dumps({"error": "end_date '2013-13-01' is not a date"}))
    with scripted_api(lambda query, number: refused) as (url, asked):
        with pytest.raises(WeatherApiError) as error:
            fetch(url)
    assert len(asked) == 1
    assert f"({page_url(url)}) answered HTTP 400: " in str(error.value)
    assert "end_date '2013-13-01' is not a date" in str(error.value) and "check the partition dates" in str(error.value)


@pytest.mark.unit
def test_a_url_requests_cannot_ask_is_named_with_the_setting_to_fix():
    with pytest.raises(WeatherApiError, match=r"ftp://127.0.0.1:1/v1/observations for partition 2013-01-02..2013-01-03: .* cannot be "
                       r"requested \(InvalidSchema: .*\)\. Check FLIGHTOPS_WEATHER_API_URL"):
        fetch("ftp://127.0.0.1:1")
    with pytest.raises(WeatherApiError, match=r"Cannot ask ftp://127.0.0.1:1/health \(InvalidSchema: .*Set FLIGHTOPS_WEATHER_API_URL"):
        probe("ftp://127.0.0.1:1")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        (f"cursor={encode_cursor(MAX_ROW_ID + 1)}", "cursor"),
        ("cursor=YWZ0ZXI6wrI=", "cursor"),  # 'after:²': a digit to str.isdigit, not to int()
        ("cursor=%%%", "cursor"),
        ("limit=%C2%B3", "limit"),
        ("limit=0", "limit"),
        ("since=0001-01-01T00:00:00%2B01:00", "since"),
        ("since=9999-12-31T23:59:59-01:00", "since"),
        ("start_date=2013-02-30", "start_date"),
        ("start_date=0000-01-01", "start_date"),
        ("end_date=2013-1-5", "end_date"),
        ("end_date=2012-12-31", "end_date"),
    ],
)
def test_the_api_answers_400_naming_the_parameter(tmp_path, query, parameter):
    with weather_store.open_store(tmp_path):  # an existing store: the query would reach SQLite
        pass
    name, value = query.split("=", 1)
    params = {"start_date": "2013-01-02", "end_date": "2013-01-03", name: value}  # the value as sent, percent-encoded
    with start_weather_api(tmp_path) as api:
        response = requests.get(f"{api.url}/v1/observations?" + "&".join(f"{k}={v}" for k, v in params.items()), timeout=10)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"].startswith(f"{parameter} "), response.json()


@pytest.mark.parametrize("kind", api_faults.MALFORMED)
def test_the_simulated_api_serves_each_armed_malformed_page_once(tmp_path, kind):
    api_faults.arm(tmp_path, malformed_next=1, malformed=kind)
    with start_weather_api(tmp_path) as api:
        with pytest.raises(WeatherApiError, match=rf"for partition {FIRST}..{LAST}: page 1 .* re-run the partition"):
            fetch(api.url)
        assert fetch(api.url) == []  # consumed: the next request is served as usual (nothing replayed here)


def test_a_malformed_page_fails_the_raw_partition_and_a_rerun_recovers(platform: Platform):
    day1, day2 = "2013-01-01", "2013-01-02"
    raw_and_clean = [dg.AssetKey(["raw", "weather"]), dg.AssetKey(["clean", "weather"])]
    platform.replay(day2)
    assert platform.run(day1, day1, raw_and_clean).success
    before = clean_versions(platform, "weather")
    change = inject(platform.settings, "repeat-cursor", count=1)  # `flightops sources inject repeat-cursor --count 1`
    assert (change["malformed"], change["malformed_next"]) == ("repeat-cursor", 1)
    result = platform.run(day2, day2, raw_and_clean)
    assert not result.success
    message = failure_messages(result)
    url = platform.settings.weather_api_url
    assert f"{url}/v1/observations for partition {day2}..{day2}: page 1 ({url}/v1/observations?start_date={day2}" in message
    assert "does not move forward" in message and "re-run the partition" in message
    assert platform.query("SELECT count(*) FROM raw.weather WHERE _partition_date = ?", [day2])[0][0] == 0
    assert_ledger_balanced(platform, "weather")
    assert_no_valid_row_lost(platform, before, "weather")
    assert platform.run(day2, day2, raw_and_clean).success  # the fault was one answer: re-running recovers
    assert platform.query("SELECT count(*) FROM clean.weather WHERE obs_date = ?", [day2])[0][0] > 0
    assert_ledger_balanced(platform, "weather")
    assert_no_valid_row_lost(platform, before, "weather")


def test_an_observation_of_another_day_is_quarantined_in_the_requested_day(platform: Platform):
    day1, day2 = "2013-01-01", "2013-01-02"
    raw_and_clean = [dg.AssetKey(["raw", "weather"]), dg.AssetKey(["clean", "weather"])]
    platform.replay(day2)
    assert platform.run(day1, day1, raw_and_clean).success
    before = clean_versions(platform, "weather")
    # The API files the row under day 2 (it filters on obs_date) but the row says 2013-01-05.
    with weather_store.open_store(platform.settings.source_state_dir) as store, store:
        [row] = weather_store.day_rows(store, date.fromisoformat(day2), "temp", differing_from=None, limit=1)
        weather_store.insert_row(store, {**row, "day": 5, "hour": 23})
    result = platform.run(day2, day2, raw_and_clean)
    assert result.success, failure_messages(result)
    assert platform.query("SELECT count(*) FROM raw.weather WHERE _partition_date <> ?", [day2]) == \
        platform.query("SELECT count(*) FROM raw.weather WHERE _partition_date = ?", [day1])
    [(reasons,)] = platform.query("SELECT reasons FROM quarantine.weather WHERE _partition_date = ?", [day2])
    assert reasons == ["obs_date: 2013-01-05 is outside the loaded partition 2013-01-02"]
    assert_ledger_balanced(platform, "weather")
    assert_no_valid_row_lost(platform, before, "weather")


@contextlib.contextmanager
def port_holder(greeting: bytes | None) -> Iterator[int]:
    """A TCP listener that is no HTTP server: sends `greeting` and hangs up, or (None) says nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept():
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                connection, _ = listener.accept()
                if greeting is None:
                    held.append(connection)
                else:
                    connection.sendall(greeting)
                    connection.close()

    Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for connection in held:
            connection.close()


def configure(tmp_path: Path, monkeypatch, url: str) -> Settings:
    for name, value in {**environment_under(tmp_path), "FLIGHTOPS_WEATHER_API_URL": url}.items():
        monkeypatch.setenv(name, value)
    return Settings.current()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # TEST-NET-1 (RFC 5737): an address of no machine here; nothing accepts the connection.
        ("http://192.0.2.77:8765", "Cannot serve the weather API at http://192.0.2.77:8765: 192.0.2.77 is no address of this machine"),
        ("http://no-such-host.invalid:8765", "no-such-host.invalid is no address of this machine"),
    ],
    ids=["test-net-address", "unresolvable-name"],
)
def test_the_run_says_in_one_line_that_it_cannot_serve_on_another_address(tmp_path, monkeypatch, url, expected):
    settings = configure(tmp_path, monkeypatch, url)
    with pytest.raises(CannotServe) as refused, weather_api_running(settings):
        pytest.fail("the block must not run without a weather API")
    message = str(refused.value)
    assert expected in message and "\n" not in message
    assert "Set FLIGHTOPS_WEATHER_API_URL to an address of this machine (e.g. http://127.0.0.1:8765)" in message


@pytest.mark.parametrize(
    ("greeting", "expected"),
    [(b"SSH-2.0-OpenSSH_9.2\r\n", "Address already in use): something holds the port without answering /health"),
     (None, "but did not answer")],
    ids=["ssh-banner", "silent"],
)
def test_a_port_held_by_something_that_is_not_http_is_one_line(tmp_path, monkeypatch, greeting, expected):
    with port_holder(greeting) as port:
        settings = configure(tmp_path, monkeypatch, f"http://127.0.0.1:{port}")
        with pytest.raises(ForeignWeatherApi) as refused, weather_api_running(settings):
            pytest.fail("the block must not run against a port held by something else")
    message = str(refused.value)
    assert f"http://127.0.0.1:{port}" in message and expected in message and "\n" not in message
    assert "set FLIGHTOPS_WEATHER_API_URL to a free port" in message


def test_sources_api_on_a_held_port_is_one_line(tmp_path):
    with port_holder(b"SSH-2.0-OpenSSH_9.2\r\n") as port:
        with pytest.raises(CannotServe) as refused:
            serve_forever(tmp_path, "127.0.0.1", port)
    message = str(refused.value)
    assert f"Cannot serve the weather API at http://127.0.0.1:{port} ([Errno 98] Address already in use)" in message
    assert "pick another port with --port" in message and "\n" not in message


def test_the_cli_prints_the_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    """`flightops ui` enters weather_api_running as `flightops run` does, without a minute of loading first."""
    configure(tmp_path, monkeypatch, "http://no-such-host.invalid:8765")
    assert cli.main(["ui"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith("flightops ui: Cannot serve the weather API at http://no-such-host.invalid:8765: ")
    assert "Traceback" not in errors[0] and os.environ["FLIGHTOPS_WEATHER_API_URL"] in errors[0]
