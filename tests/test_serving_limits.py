"""The prediction service refuses what it cannot score, over real HTTP (uvicorn) with raw bodies.

Python's JSON parser takes `NaN`, `Infinity` and `1e400`; a client can send megabytes. The service
must answer 422 naming the field and what it takes (never 200 with a probability, never a 500 from
its own error renderer), refuse an oversized body with 413 before reading it, and never echo or log
huge inputs. The served model and the server come from tests/serving_fixtures.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing

import pydantic
import pytest
import requests

from flightops.modeling.schema import FEATURES, NUMERIC_FEATURES
from flightops.serving.app import MAX_ERRORS_SHOWN, MAX_REQUEST_BYTES, echo, shown_errors
from flightops.serving.prediction_log import REQUEST_LOG_TABLE, prediction_log_path
from flightops.serving.schema import EXAMPLE_REQUEST, MAX_TEXT_LENGTH, PredictionRequest
from flightops.settings import Settings
from tests.dagster_dev import wait_for
from tests.feature_frames import request_body

pytest_plugins = ["tests.serving_fixtures"]

JSON = {"content-type": "application/json"}
HUGE_BODY_BYTES = 7 * 1024 * 1024
# An answer or a log row about a refused request stays this small, whatever was sent.
SMALL_BYTES = 4096


def logged(settings: Settings, count: int) -> list[sqlite3.Row]:
    """The log's rows in the order the requests came, once it holds `count`: a refusal is logged before it
    is answered, an answer just after (so its row may come a moment after the client has it)."""
    def rows() -> list[sqlite3.Row] | None:
        with closing(sqlite3.connect(prediction_log_path(settings.data_dir))) as con:
            con.row_factory = sqlite3.Row
            found = con.execute(f"SELECT * FROM {REQUEST_LOG_TABLE} ORDER BY received_at, rowid").fetchall()
        assert len(found) <= count, [tuple(row) for row in found]
        return found if len(found) == count else None

    return wait_for(rows, timeout=10, interval=0.05, what=f"{count} rows in the prediction log")


def post_raw(url: str, body: bytes | Iterator[bytes]) -> requests.Response:
    """POST a body as given (a generator is sent chunked, without Content-Length)."""
    return requests.post(url, data=body, headers=JSON, timeout=60)


def with_raw(body: dict[str, object], field: str, token: str) -> bytes:
    """The body as JSON text with `field`'s value replaced by a raw token such as NaN or 1e400."""
    return json.dumps({**body, field: "@@"}).replace('"@@"', token).encode()


def assert_scored(response: requests.Response) -> None:
    assert response.status_code == 200, response.text
    assert 0.0 <= response.json()["probability"] <= 1.0


# The request model and what a refusal repeats, alone.


@pytest.mark.unit
def test_every_numeric_feature_is_bounded_and_refuses_non_finite_values():
    assert all(None not in (FEATURES[c].minimum, FEATURES[c].maximum) for c in NUMERIC_FEATURES)
    assert (FEATURES["plane_age"].maximum, FEATURES["plane_seats"].maximum) == (113, 1000)  # planes contract
    for column in NUMERIC_FEATURES:
        for value in (float("nan"), float("inf"), float("-inf")):
            with pytest.raises(pydantic.ValidationError) as refused:
                PredictionRequest.model_validate({**EXAMPLE_REQUEST, column: value})
            assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [((column,), "finite_number")], column


@pytest.mark.unit
def test_text_longer_than_the_limit_is_refused_naming_the_field():
    for column in ("carrier", "dest", "route", "flight_id"):
        PredictionRequest.model_validate({**EXAMPLE_REQUEST, column: "A" * MAX_TEXT_LENGTH})
        with pytest.raises(pydantic.ValidationError) as refused:
            PredictionRequest.model_validate({**EXAMPLE_REQUEST, column: "A" * (MAX_TEXT_LENGTH + 1)})
        [error] = refused.value.errors()
        assert error["loc"] == (column,) and str(MAX_TEXT_LENGTH) in error["msg"], error
    with pytest.raises(pydantic.ValidationError, match=f"flight_id has 80 characters; send at most {MAX_TEXT_LENGTH}"):
        PredictionRequest.model_validate({**EXAMPLE_REQUEST, "flight_id": 10**79})


@pytest.mark.unit
def test_echo_cuts_long_text_and_names_non_finite_numbers():
    text = "x" * 5_000_000
    assert echo(text) == "x" * MAX_TEXT_LENGTH + "... (5000000 characters)"
    assert echo({"a": [float("nan"), float("inf"), 10**100], text: 1.5}) == {
        "a": ["nan", "inf", "1" + "0" * (MAX_TEXT_LENGTH - 1) + "... (101 characters)"],
        echo(text): 1.5,
    }
    small = {"carrier": "UA", "distance": 2565.0, "wind_gust": None, "is_weekend": 0}
    assert echo(small) == small  # what is valid is repeated unchanged


@pytest.mark.unit
def test_shown_errors_leave_out_the_body_and_count_the_rest():
    missing = {"type": "missing", "loc": ("body", "dep_hour"), "msg": "Field required", "input": {"x": "y" * 100}}
    extras = [{"type": "extra_forbidden", "loc": ("body", f"x{i}"), "msg": "Extra inputs are not permitted",
               "input": i} for i in range(MAX_ERRORS_SHOWN + 10)]
    shown = shown_errors([missing, *extras])
    assert shown[0] == {"type": "missing", "loc": ["body", "dep_hour"], "msg": "Field required"}
    assert len(shown) == MAX_ERRORS_SHOWN + 1
    assert shown[-1]["type"] == "too_many_errors" and shown[-1]["msg"].startswith("11 more errors not shown")


# Over HTTP: a real uvicorn serving a model trained by the platform.


def test_non_finite_and_out_of_bounds_numbers_are_refused_naming_the_field(
    http_server: str, serving_settings: Settings, served_rows
):
    url = f"{http_server}/predict"
    body = request_body(served_rows.iloc[0])
    assert_scored(requests.post(url, json=body, timeout=10))
    cases = [  # (field, raw JSON token, error type, what the answer echoes)
        ("distance", "NaN", "finite_number", "nan"),  # used to crash the 422 renderer into a 500
        ("plane_age", "Infinity", "finite_number", "inf"),  # used to be scored (200)
        ("temp", "-Infinity", "finite_number", "-inf"),
        ("wind_gust", "1e400", "finite_number", "inf"),  # overflows to infinity when parsed
        ("day_of_week", "NaN", "finite_number", "nan"),
        ("plane_age", "114", "less_than_equal", 114),  # no upper bound before
        ("plane_seats", "1001", "less_than_equal", 1001),
        ("origin_backlog", "1" + "0" * 30, "less_than_equal", 10**30),  # used to crash scoring (int -> float)
    ]
    for field, token, error_type, echoed in cases:
        response = post_raw(url, with_raw(body, field, token))
        assert response.status_code == 422, (field, token, response.status_code, response.text[:300])
        [error] = response.json()["detail"]
        assert (error["loc"], error["type"], error["input"]) == (["body", field], error_type, echoed), error
        if error_type == "less_than_equal":
            assert error["msg"] == f"Input should be less than or equal to {FEATURES[field].maximum:g}"
        else:
            assert error["msg"] == "Input should be a finite number"
    rows = logged(serving_settings, 1 + len(cases))
    assert [row["status_code"] for row in rows] == [200] + [422] * len(cases)
    for row, (field, _, error_type, echoed) in zip(rows[1:], cases):
        assert json.loads(row["features_json"])[field] == echoed  # strict JSON in the log: no NaN token
        assert [(e["loc"], e["type"]) for e in json.loads(row["error"])] == [(["body", field], error_type)]
        assert row["probability"] is None and row["flight_id"] == body["flight_id"]


def test_long_text_is_refused_and_never_echoed_or_logged_in_full(
    http_server: str, serving_settings: Settings, served_rows
):
    body = request_body(served_rows.iloc[1])
    long_text = "Z" * (MAX_REQUEST_BYTES - 2048)  # fits the body limit: refused by the field's length
    for path, refused in (("/predict", {**body, "carrier": long_text}),
                          ("/predict", {**body, "flight_id": long_text}),
                          ("/predict", {**body, long_text: 1}),  # an unknown field named by megabytes
                          ("/predict/flight", {"flight_id": long_text})):
        response = requests.post(f"{http_server}{path}", json=refused, timeout=10)
        assert response.status_code == 422, (path, response.text[:300])
        assert len(response.content) < SMALL_BYTES, (path, len(response.content))
        assert long_text not in response.text and f"({len(long_text)} characters)" in response.text
    rows = logged(serving_settings, 4)
    assert [row["status_code"] for row in rows] == [422] * 4
    for row in rows:
        stored = [value for value in tuple(row) if isinstance(value, str)]
        assert max(map(len, stored)) < SMALL_BYTES, [len(value) for value in stored]
        assert all(long_text not in value for value in stored)
    assert rows[1]["flight_id"] == f"{'Z' * MAX_TEXT_LENGTH}... ({len(long_text)} characters)"
    [carrier_error] = json.loads(rows[0]["error"])
    assert (carrier_error["loc"], carrier_error["type"]) == (["body", "carrier"], "string_too_long")
    assert carrier_error["msg"] == f"String should have at most {MAX_TEXT_LENGTH} characters"
    assert_scored(requests.post(f"{http_server}/predict", json=body, timeout=10))


def test_an_oversized_body_is_refused_with_413_before_it_is_read(
    http_server: str, serving_settings: Settings, served_rows
):
    body = request_body(served_rows.iloc[2])
    huge = json.dumps({**body, "carrier": "X" * HUGE_BODY_BYTES}).encode()
    with_length = post_raw(f"{http_server}/predict", huge)
    chunked = post_raw(f"{http_server}/predict", (huge[i:i + 65536] for i in range(0, len(huge), 65536)))
    by_id = post_raw(f"{http_server}/predict/flight", json.dumps({"flight_id": "X" * HUGE_BODY_BYTES}).encode())
    for response, said in ((with_length, f"{len(huge)} bytes refused by POST /predict:"),
                           (chunked, f"more than {MAX_REQUEST_BYTES} bytes refused by POST /predict:"),
                           (by_id, f"{HUGE_BODY_BYTES + 17} bytes refused by POST /predict/flight:")):
        assert response.status_code == 413, response.text[:300]
        assert response.headers["content-type"] == "application/json"
        assert len(response.content) < SMALL_BYTES
        detail = response.json()["detail"]
        assert detail.startswith(f"Request body of {said}"), detail
        assert f"it accepts at most {MAX_REQUEST_BYTES} bytes" in detail
    # The connection and the service are fine afterwards; a valid request is scored.
    assert_scored(requests.post(f"{http_server}/predict", json=body, timeout=10))
    rows = logged(serving_settings, 4)
    assert [row["status_code"] for row in rows] == [413, 413, 413, 200]
    assert all(row["features_json"] == "null" and len(row["error"]) < SMALL_BYTES for row in rows[:3])
    metrics = requests.get(f"{http_server}/metrics", timeout=10).text
    assert 'flightops_predict_requests_total{status="413"} 3.0' in metrics


def test_a_body_of_many_unknown_fields_gets_a_bounded_answer(http_server: str, serving_settings: Settings):
    junk = {f"f{i}": i for i in range(1000)}
    assert len(json.dumps(junk)) < MAX_REQUEST_BYTES
    response = requests.post(f"{http_server}/predict", json=junk, timeout=10)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == MAX_ERRORS_SHOWN + 1
    required = [column for column, feature in FEATURES.items() if not feature.nullable]
    assert detail[-1]["msg"].startswith(f"{len(junk) + len(required) - MAX_ERRORS_SHOWN} more errors not shown")
    missing = [error for error in detail if error["type"] == "missing"]
    assert [error["loc"][1] for error in missing] == required
    assert all("input" not in error for error in missing)  # the body is not echoed
    assert len(response.content) < 4 * SMALL_BYTES
    [row] = logged(serving_settings, 1)
    assert len(json.loads(row["error"])) == MAX_ERRORS_SHOWN + 1
