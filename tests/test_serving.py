"""The prediction service against a real MLflow registry holding models trained by the platform.

The registry and its two model versions come from tests/serving_fixtures.py (the platform's
training on synthetic feature rows, tests/feature_frames.py); each test checks the service's
answers against the registered model's own `predict_proba` for the same row. The tests of the
request model alone (no server, no model) are marked `unit`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
import sqlite3
import subprocess
import typing
from collections import Counter
from contextlib import closing
from datetime import date, datetime, timedelta
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Literal

import mlflow.artifacts
import mlflow.models
import pydantic
import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flightops.modeling.config import DECISION_THRESHOLD
from flightops.modeling.schema import CATEGORICAL_FEATURES, FEATURE_COLUMNS, FEATURES, INTEGER_FEATURES
from flightops.modeling.splits import flight_days
from flightops.modeling.tracking import KNOWN_CATEGORIES, known_categories
from flightops.serving.app import ServingOptions, create_app, prediction_router
from flightops.serving.champion import CHAMPION_ALIAS, REGISTERED_MODEL_NAME, ServedModel
from flightops.serving.metrics import LATENCY_BUCKETS_SECONDS, PROBABILITY_BUCKETS
from flightops.serving.prediction_log import (
    REQUEST_LOG_TABLE,
    LoggedRequest,
    PredictionLog,
    prediction_log_path,
)
from flightops.serving.schema import EXAMPLE_REQUEST, PredictionRequest
from flightops.settings import Settings
from tests.feature_frames import request_body

if TYPE_CHECKING:
    from tests.serving_fixtures import Registry

pytest_plugins = ["tests.serving_fixtures"]

# The logged MLflow signature's name of each type a request field takes.
SIGNATURE_TYPES = {str: "string", int: "long", float: "double"}


def logged_requests(settings: Settings) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(prediction_log_path(settings.data_dir))) as con:
        con.row_factory = sqlite3.Row
        return con.execute(f"SELECT * FROM {REQUEST_LOG_TABLE} ORDER BY rowid").fetchall()


def metric_samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for every sample line of a Prometheus text exposition."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def options(settings: Settings, **changes: float) -> ServingOptions:
    """The service's options from `settings`, with some changed."""
    return dataclasses.replace(ServingOptions.from_settings(settings), **changes)


def value_type(annotation: object) -> type:
    """The type of a request field's values: None dropped from a union, a Literal's values' type."""
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        [annotation] = [arg for arg in typing.get_args(annotation) if arg is not NoneType]
    if typing.get_origin(annotation) is Literal:
        [annotation] = {type(arg) for arg in typing.get_args(annotation)}
    return annotation


def request_features() -> dict[str, pydantic.fields.FieldInfo]:
    return {name: field for name, field in PredictionRequest.model_fields.items() if name != "flight_id"}


# The request model alone.


@pytest.mark.unit
def test_request_model_is_the_model_schema():
    """Exactly the model's inputs, in order, each with its schema entry's description; required unless nullable."""
    fields = request_features()
    assert list(fields) == list(FEATURE_COLUMNS)
    for column, field in fields.items():
        feature = FEATURES[column]
        assert field.description == feature.description, column
        assert field.is_required() is not feature.nullable, column
        assert (type(None) in typing.get_args(field.annotation)) is feature.nullable, column
    assert {column for column, field in fields.items() if value_type(field.annotation) is int} == set(INTEGER_FEATURES)


@pytest.mark.unit
def test_request_model_refuses_values_outside_each_features_range():
    valid = PredictionRequest.model_validate(EXAMPLE_REQUEST)
    assert valid.features() == {column: FEATURES[column].example for column in FEATURE_COLUMNS}
    for column in FEATURE_COLUMNS:
        feature = FEATURES[column]
        wrong = [bound + step for bound, step in ((feature.minimum, -1), (feature.maximum, 1)) if bound is not None]
        if feature.allowed:
            wrong.append("SFO")
        if not feature.nullable:
            wrong.append(None)
        for value in wrong:
            with pytest.raises(pydantic.ValidationError) as refused:
                PredictionRequest.model_validate({**EXAMPLE_REQUEST, column: value})
            assert [error["loc"] for error in refused.value.errors()] == [(column,)], (column, value)


@pytest.mark.unit
def test_request_model_refuses_columns_the_model_does_not_use():
    """The feature table's month and *_prior_flights are not model inputs (see modeling/schema.py)."""
    for column in ("month", "route_prior_flights", "carrier_prior_flights", "arr_delay"):
        with pytest.raises(pydantic.ValidationError) as refused:
            PredictionRequest.model_validate({**EXAMPLE_REQUEST, column: 1})
        assert [(error["loc"], error["type"]) for error in refused.value.errors()] == [((column,), "extra_forbidden")]


@pytest.mark.unit
def test_nullable_features_may_be_left_out():
    nullable = [column for column in FEATURE_COLUMNS if FEATURES[column].nullable]
    assert {"temp", "wind_gust", "plane_age", "route_prior_delay_rate"} <= set(nullable)
    body = {key: value for key, value in EXAMPLE_REQUEST.items() if key not in nullable}
    features = PredictionRequest.model_validate(body).features()
    assert features == {column: None if column in nullable else EXAMPLE_REQUEST[column] for column in FEATURE_COLUMNS}


@pytest.mark.unit
def test_the_api_docs_describe_every_field_and_show_the_example():
    app = FastAPI()
    app.include_router(prediction_router)
    schemas = app.openapi()["components"]["schemas"]
    request = schemas["PredictionRequest"]
    # FastAPI leaves null values out of the OpenAPI document: the example shows a left-out nullable feature.
    assert request["examples"] == [{key: value for key, value in EXAMPLE_REQUEST.items() if value is not None}]
    PredictionRequest.model_validate(request["examples"][0])
    assert all(request["properties"][column]["description"] for column in FEATURE_COLUMNS)
    assert "more than 15 minutes late" in schemas["PredictionResponse"]["properties"]["probability"]["description"]


def test_request_fields_are_the_logged_model_signature(registry: Registry):
    """Names, order and types of the request's features are those of the signature the platform's training logs."""
    request = [(name, SIGNATURE_TYPES[value_type(field.annotation)]) for name, field in request_features().items()]
    for version in registry.models:
        uri = registry.client.get_model_version_download_uri(REGISTERED_MODEL_NAME, str(version))
        signature = mlflow.models.Model.load(mlflow.artifacts.download_artifacts(artifact_uri=uri)).signature
        assert [(column.name, column.type.name) for column in signature.inputs.inputs] == request
    assert [name for name, _ in request] == list(FEATURE_COLUMNS)


# The service.


def test_valid_request_is_answered_by_the_champion(serving_settings: Settings, registry: Registry, served_rows):
    threshold = ServingOptions.from_settings(serving_settings).threshold
    client = TestClient(create_app(serving_settings))
    for _, row in served_rows.iterrows():
        response = client.post("/predict", json=request_body(row))
        assert response.status_code == 200, response.text
        answer = response.json()
        expected = registry.probability(1, row)
        assert answer["probability"] == pytest.approx(expected, abs=1e-12)
        assert answer["decision"] == ("delayed" if expected >= threshold else "on_time")
        assert (answer["flight_id"], answer["model_name"], answer["model_version"]) == (
            row.flight_id, REGISTERED_MODEL_NAME, 1,
        )
    health = client.get("/health").json()
    assert (health["model_loaded"], health["model_version"]) == (True, 1)


def test_a_log_write_failing_after_the_answer_is_reported_with_where_and_what_to_do(
    serving_settings: Settings, registry: Registry, served_rows, caplog
):
    """The log is written after the answer is sent: when that write fails, the caller keeps its answer and
    the service's log says which file, which request and what to check (and the exception is raised on)."""
    client = TestClient(create_app(serving_settings), raise_server_exceptions=False)
    path = prediction_log_path(serving_settings.data_dir)
    for written in path.parent.glob(f"{path.name}*"):
        written.unlink()
    path.mkdir()  # a folder where the SQLite file was: no connection can open it
    row = served_rows.iloc[0]
    with caplog.at_level("ERROR", logger="flightops.serving.app"):
        response = client.post("/predict", json=request_body(row))
    assert response.status_code == 200 and response.json()["probability"] == pytest.approx(registry.probability(1, row))
    [message] = [r.getMessage() for r in caplog.records if r.name == "flightops.serving.app"]
    assert message.startswith(f"The prediction log {path} did not take the 1 row(s) of POST /predict (status 200, ")
    assert "OperationalError" in message and "Check the disk's free space and that the file is writable." in message
    assert 'flightops_predict_requests_total{status="200"} 1.0' in client.get("/metrics").text


def test_registry_comes_from_settings_not_mlflow_globals(
    serving_settings: Settings, registry: Registry, served_rows, monkeypatch: pytest.MonkeyPatch
):
    """A process where MLflow's default URIs point elsewhere (the empty registry) still serves from its settings."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.empty_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry.empty_uri)
    client = TestClient(create_app(serving_settings))
    assert client.post("/predict", json=request_body(served_rows.iloc[0])).json()["model_version"] == 1


@pytest.mark.unit
def test_options_come_from_the_settings(settings_for):
    settings = settings_for("sqlite:///unused.db")
    for threshold, expected in ((0.7, 0.7), (None, DECISION_THRESHOLD)):
        chosen = dataclasses.replace(settings, serving_threshold=threshold, serving_model_refresh_seconds=0)
        assert ServingOptions.from_settings(chosen) == ServingOptions(threshold=expected, model_refresh_seconds=0)
    with pytest.raises(ValueError, match="outside \\[0, 1\\]; set FLIGHTOPS_SERVING_THRESHOLD"):
        ServingOptions.from_settings(dataclasses.replace(settings, serving_threshold=1.5))


def test_decision_follows_the_configured_threshold(serving_settings: Settings, registry: Registry, served_rows):
    row = served_rows.iloc[0]
    probability = registry.probability(1, row)
    for threshold, decision in ((probability, "delayed"), (min(probability + 1e-6, 1.0), "on_time")):
        client = TestClient(create_app(serving_settings, options(serving_settings, threshold=threshold)))
        assert client.post("/predict", json=request_body(row)).json()["decision"] == decision


@pytest.mark.parametrize(
    ("field", "value"),
    [("origin", "BOS"), ("dep_hour", 24), ("distance", 0), ("carrier", None), ("day_of_week", "Monday"),
     ("route_prior_delay_rate", 1.5), ("month", 1)],
)
def test_invalid_field_is_refused_and_logged(serving_settings: Settings, served_rows, field: str, value: object):
    client = TestClient(create_app(serving_settings))
    body = {**request_body(served_rows.iloc[0]), field: value}
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    [logged] = logged_requests(serving_settings)
    assert (logged["status_code"], logged["probability"], logged["model_version"]) == (422, None, None)
    assert logged["flight_id"] == body["flight_id"]
    assert [error["loc"] for error in json.loads(logged["error"])] == [["body", field]]
    assert json.loads(logged["features_json"]) == body


def test_missing_field_is_refused_naming_it(serving_settings: Settings, served_rows):
    client = TestClient(create_app(serving_settings))
    body = request_body(served_rows.iloc[0])
    del body["dep_hour"]  # not nullable: must be sent
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    errors = [(error["loc"], error["type"]) for error in response.json()["detail"]]
    assert errors == [(["body", "dep_hour"], "missing")]


def test_left_out_nullable_features_are_scored_as_null(serving_settings: Settings, registry: Registry, served_rows):
    client = TestClient(create_app(serving_settings))
    row = served_rows.iloc[0]  # a flight without gust and plane data
    body = request_body(row)
    assert body["wind_gust"] is None and body["plane_age"] is None
    left_out = {key: value for key, value in body.items() if value is not None}
    answer = client.post("/predict", json=left_out).json()
    assert answer["probability"] == pytest.approx(registry.probability(1, row), abs=1e-12)
    [logged] = logged_requests(serving_settings)
    assert json.loads(logged["features_json"]) == {key: value for key, value in body.items() if key != "flight_id"}


def test_new_champion_is_served_without_restart(serving_settings: Settings, registry: Registry, served_rows):
    row = served_rows.iloc[0]
    client = TestClient(create_app(serving_settings, options(serving_settings, model_refresh_seconds=0)))
    assert client.post("/predict", json=request_body(row)).json()["model_version"] == 1

    registry.crown(2)
    answer = client.post("/predict", json=request_body(row)).json()
    assert answer["model_version"] == 2
    assert answer["probability"] == pytest.approx(registry.probability(2, row), abs=1e-12)
    assert answer["probability"] != pytest.approx(registry.probability(1, row), abs=1e-6)
    assert client.get("/health").json()["model_version"] == 2


def test_alias_is_checked_at_most_once_per_interval(serving_settings: Settings, registry: Registry, served_rows):
    client = TestClient(create_app(serving_settings, options(serving_settings, model_refresh_seconds=3600)))
    registry.crown(2)
    assert client.post("/predict", json=request_body(served_rows.iloc[0])).json()["model_version"] == 1


def test_predictions_and_rejections_are_logged_and_counted(
    serving_settings: Settings, registry: Registry, served_rows
):
    client = TestClient(create_app(serving_settings))
    threshold = ServingOptions.from_settings(serving_settings).threshold
    answers = [client.post("/predict", json=request_body(row)).json() for _, row in served_rows.iterrows()]
    refused = [{**request_body(served_rows.iloc[i]), "origin": "SFO"} for i in range(3)]
    for body in refused:
        assert client.post("/predict", json=body).status_code == 422

    logged = logged_requests(serving_settings)
    assert Counter(row["status_code"] for row in logged) == {200: len(answers), 422: len(refused)}
    served_log = [row for row in logged if row["status_code"] == 200]
    for row, answer, (_, flight) in zip(served_log, answers, served_rows.iterrows()):
        assert (row["flight_id"], row["model_name"], row["model_version"], row["decision"]) == (
            answer["flight_id"], REGISTERED_MODEL_NAME, 1, answer["decision"],
        )
        assert row["probability"] == answer["probability"]
        assert row["threshold"] == threshold and row["latency_ms"] > 0 and row["error"] is None
        assert datetime.fromisoformat(row["received_at"]).utcoffset() == timedelta(0)
        features = json.loads(row["features_json"])
        assert features == {key: value for key, value in request_body(flight).items() if key != "flight_id"}
    assert len({row["request_id"] for row in logged}) == len(logged)

    samples = metric_samples(client.get("/metrics").text)
    decisions = Counter(answer["decision"] for answer in answers)
    assert samples['flightops_predict_requests_total{status="200"}'] == len(answers)
    assert samples['flightops_predict_requests_total{status="422"}'] == len(refused)
    for decision in ("delayed", "on_time"):
        assert samples.get(f'flightops_predictions_total{{decision="{decision}"}}', 0) == decisions[decision]
    assert samples["flightops_predict_latency_seconds_count"] == len(logged)
    assert samples['flightops_predict_latency_seconds_bucket{le="+Inf"}'] == len(logged)
    for bound in LATENCY_BUCKETS_SECONDS:
        assert samples[f'flightops_predict_latency_seconds_bucket{{le="{bound}"}}'] == sum(
            row["latency_ms"] / 1000 <= bound for row in logged
        )
    assert samples["flightops_predict_latency_seconds_sum"] == pytest.approx(
        sum(row["latency_ms"] for row in logged) / 1000
    )
    probabilities = [answer["probability"] for answer in answers]
    assert samples["flightops_predicted_probability_count"] == len(answers)
    assert samples['flightops_predicted_probability_bucket{le="+Inf"}'] == len(answers)
    for bound in PROBABILITY_BUCKETS:
        assert samples[f'flightops_predicted_probability_bucket{{le="{bound}"}}'] == sum(
            probability <= bound for probability in probabilities
        )
    assert samples["flightops_predicted_probability_sum"] == pytest.approx(sum(probabilities))
    assert samples[f'flightops_model_version{{model_name="{REGISTERED_MODEL_NAME}"}}'] == 1


def test_empty_registry_answers_503_and_logs_it(settings_for, registry: Registry, served_rows):
    uri = registry.empty_uri
    settings = settings_for(uri)
    client = TestClient(create_app(settings))
    response = client.post("/predict", json=request_body(served_rows.iloc[0]))
    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"no model has the alias champion in registry at {uri} "
        f"(registered model {REGISTERED_MODEL_NAME}); run training first"
    )
    assert client.get("/health").json()["model_loaded"] is False
    [logged] = logged_requests(settings)
    assert (logged["status_code"], logged["error"], logged["model_version"]) == (503, response.json()["detail"], None)
    assert metric_samples(client.get("/metrics").text)[
        f'flightops_model_version{{model_name="{REGISTERED_MODEL_NAME}"}}'
    ] == 0


def test_champion_crowned_after_start_is_picked_up(serving_settings: Settings, registry: Registry, served_rows):
    registry.client.delete_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    client = TestClient(create_app(serving_settings, options(serving_settings, model_refresh_seconds=0)))
    body = request_body(served_rows.iloc[0])
    assert client.post("/predict", json=body).status_code == 503
    registry.crown(2)
    assert client.post("/predict", json=body).json()["model_version"] == 2


def test_served_over_http(http_server: str, serving_settings: Settings, registry: Registry, served_rows):
    with requests.Session() as session:
        for _, row in served_rows.head(5).iterrows():
            response = session.post(f"{http_server}/predict", json=request_body(row), timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == 1
            expected = registry.probability(1, row)
            assert response.json()["probability"] == pytest.approx(expected, abs=1e-12)
        refused = session.post(f"{http_server}/predict", json={"flight_id": "x"}, timeout=10)
        assert refused.status_code == 422
        assert session.get(f"{http_server}/health", timeout=10).json()["model_version"] == 1
        metrics = session.get(f"{http_server}/metrics", timeout=10)
        # What Prometheus asks for: OpenMetrics, which ends with an EOF marker.
        open_metrics = session.get(
            f"{http_server}/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"}, timeout=10
        )
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric_samples(metrics.text)['flightops_predict_requests_total{status="200"}'] == 5
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert open_metrics.text.endswith("# EOF\n")
    assert metric_samples(open_metrics.text)['flightops_predict_requests_total{status="200"}'] == 5
    assert Counter(row["status_code"] for row in logged_requests(serving_settings)) == {200: 5, 422: 1}


# What the service tells its user: the docs page, and warnings about values the model never saw.


def docs_page(client: TestClient) -> str:
    response = client.get("/docs")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    return response.text


def external_references(page: str) -> list[str]:
    """What a browser would fetch for the page: scripts, stylesheets, images, fonts, and links off the page."""
    fetched = re.findall(r"<(?:script|link|img|iframe|object|embed)\b[^>]*>|@import|url\(", page, flags=re.I)
    links = [target for target in re.findall(r'\bhref\s*=\s*["\']([^"\']*)', page, flags=re.I)
             if not target.startswith(("#", "/"))]
    return fetched + links


def test_the_docs_page_needs_no_network_and_describes_every_request(serving_settings: Settings):
    """FastAPI's Swagger UI loads from a CDN (blank offline); /docs is rendered by the service itself."""
    client = TestClient(create_app(serving_settings))
    page = docs_page(client)
    assert external_references(page) == []
    assert client.get("/redoc").status_code == 404  # no CDN page left behind
    for path in ("/predict", "/predict/flight", "/predict/flights", "/health", "/metrics"):
        assert f"<code>{path}</code>" in page, path
    request = client.get("/openapi.json").json()["components"]["schemas"]["PredictionRequest"]
    rows = {name: cells for name, cells in re.findall(r"<tr><td><code>([a-z_]+)</code></td>(.*?)</tr>", page)}
    for column in FEATURE_COLUMNS:
        cells = html.unescape(rows[column])
        assert " ".join(FEATURES[column].description.split()) in cells, column
        assert ("optional: null or left out" if FEATURES[column].nullable else "required") in cells, column
    assert "1 ≤ x ≤ 7" in rows["day_of_week"] and "one of EWR, JFK, LGA" in rows["origin"]
    assert "warnings" in rows  # the answer's fields are listed too
    assert "missing" in rows and "1 to 200 flight_ids" in html.unescape(rows["flight_ids"])  # the batch's fields
    [example, lookup, batch] = [
        json.loads(html.unescape(body)) for body in re.findall(r'<pre class="example">(.*?)</pre>', page, re.S)]
    assert example == request["examples"][0]
    assert list(example) == [name for name in (*FEATURE_COLUMNS, "flight_id") if name in example]  # field order
    assert lookup == {"flight_id": EXAMPLE_REQUEST["flight_id"]}
    assert batch == {"flight_ids": [EXAMPLE_REQUEST["flight_id"]]}
    curls = [html.unescape(line) for line in re.findall(r'<pre class="curl">(.*?)</pre>', page, re.S)]
    assert "curl -s -X POST http://testserver/predict -H 'content-type: application/json' -d '" in curls[0]
    assert json.loads(curls[0].split(" -d ", 1)[1].strip("'")) == example


@pytest.mark.browser
def test_the_docs_page_renders_in_a_browser_without_network(http_server: str):
    """Headless Chromium with every non-local request sent to a dead proxy: the page still shows the fields."""
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: `make test` installs it (Debian package chromium)."
    completed = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--proxy-server=127.0.0.1:9",
         "--dump-dom", f"{http_server}/docs"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    rendered = completed.stdout
    assert "<h1>flightops delay prediction 1</h1>" in rendered
    assert all(f"<code>{column}</code>" in rendered for column in FEATURE_COLUMNS)


def test_a_category_the_model_never_saw_is_answered_with_a_warning(
    serving_settings: Settings, registry: Registry, served_rows
):
    client = TestClient(create_app(serving_settings))
    row = served_rows.iloc[0]
    known = client.post("/predict", json=request_body(row))
    assert known.status_code == 200 and known.json()["warnings"] == []
    unknown_row = row.copy()
    unknown_row["carrier"] = "ZZ"
    unknown = client.post("/predict", json=request_body(unknown_row))
    assert unknown.status_code == 200, unknown.text
    [warning] = unknown.json()["warnings"]
    assert warning.startswith(f"carrier 'ZZ' was not seen in training by {REGISTERED_MODEL_NAME} version 1")
    assert "retrain" in warning
    assert unknown.json()["probability"] == pytest.approx(registry.probability(1, unknown_row), abs=1e-12)

    logged = logged_requests(serving_settings)
    assert [json.loads(entry["unseen_categories"]) for entry in logged] == [{}, {"carrier": "ZZ"}]
    samples = metric_samples(client.get("/metrics").text)
    assert {feature: samples[f'flightops_unseen_categories_total{{feature="{feature}"}}']
            for feature in CATEGORICAL_FEATURES} == {"carrier": 1, "origin": 0, "dest": 0, "route": 0}


def test_known_categories_are_those_the_version_was_trained_on(
    serving_settings: Settings, registry: Registry, serving_flights
):
    """Training logs them in the model's metadata; the service loads them with the model (no list in code)."""
    fit_on = {}
    for version in registry.models:
        model_version = registry.client.get_model_version(REGISTERED_MODEL_NAME, str(version))
        test_start = registry.client.get_run(model_version.run_id).data.params["split_test_start"]
        # The registered model is refit on the train and validation days; the test days are held out.
        fit_on[version] = known_categories(serving_flights[flight_days(serving_flights) < date.fromisoformat(test_start)])
        uri = registry.client.get_model_version_download_uri(REGISTERED_MODEL_NAME, str(version))
        metadata = mlflow.models.Model.load(mlflow.artifacts.download_artifacts(artifact_uri=uri)).metadata
        assert metadata[KNOWN_CATEGORIES] == fit_on[version]
    served = create_app(serving_settings).state.service.tracker.current()
    assert served.version == 1
    assert served.known_categories == {column: frozenset(values) for column, values in fit_on[1].items()}


@pytest.mark.unit
def test_served_model_warns_about_each_unseen_input_and_not_without_recorded_categories():
    known = {"carrier": frozenset({"UA"}), "origin": frozenset({"EWR"}), "dest": frozenset({"SFO"}),
             "route": frozenset({"EWR-SFO"})}
    served = ServedModel("m", 3, model=None, known_categories=known)
    features = {"carrier": "UA", "origin": "JFK", "dest": "SFO", "route": "JFK-SFO"}
    unseen = served.unseen_categories(features)
    assert unseen == {"origin": "JFK", "route": "JFK-SFO"}
    warnings = served.category_warnings(unseen)
    assert [warning.split(" was ")[0] for warning in warnings] == ["origin 'JFK'", "route 'JFK-SFO'"]
    assert "by m version 3 (it knows 1 origin values)" in warnings[0]
    assert ServedModel("m", 1, model=None).unseen_categories(features) == {}  # a version logged before


@pytest.mark.unit
def test_a_log_written_before_the_added_columns_gets_them(tmp_path):
    path = tmp_path / "predictions.sqlite"
    with closing(sqlite3.connect(path)) as con, con:
        con.execute(f"CREATE TABLE {REQUEST_LOG_TABLE} (request_id TEXT PRIMARY KEY, received_at TEXT NOT NULL, "
                    "flight_id TEXT, model_name TEXT, model_version INTEGER, probability REAL, decision TEXT, "
                    "threshold REAL, latency_ms REAL NOT NULL, status_code INTEGER NOT NULL, error TEXT, "
                    "features_json TEXT)")
        con.execute(f"INSERT INTO {REQUEST_LOG_TABLE} (request_id, received_at, latency_ms, status_code) "
                    "VALUES ('old', 't', 1, 200)")
    log = PredictionLog(path)
    PredictionLog(path)  # opening again adds nothing twice
    log.record(LoggedRequest("new", "t", None, "m", 1, 0.5, "delayed", 0.5, 1.0, 200, None, "{}",
                             unseen_categories='{"carrier": "ZZ"}', batch_id="b1"))
    with closing(sqlite3.connect(path)) as con:
        rows = con.execute(f"SELECT request_id, unseen_categories, batch_id FROM {REQUEST_LOG_TABLE} ORDER BY rowid").fetchall()
    assert rows == [("old", None, None), ("new", '{"carrier": "ZZ"}', "b1")]
