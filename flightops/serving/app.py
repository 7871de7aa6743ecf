"""The online prediction service: FastAPI over the registry's champion model.

`POST /predict` scores one flight (the probability that it arrives more than 15 minutes
late) from its model inputs; `POST /predict/flight` scores a flight the platform has computed
features for, by its id (the online feature store: the same rows training and batch scoring read);
`POST /predict/flights` scores up to MAX_BATCH_FLIGHTS of those in one request and one model call;
`GET /health` says whether a model is loaded and which; `GET /metrics` exposes Prometheus
metrics; `GET /docs` describes all of them on a page that needs no network (flightops.serving.docs).
Every `/predict` request, refused ones included, is timed, counted and written to the prediction
log by one route class, so the log and the metrics cannot disagree about what was asked (a batch
writes one log row per requested flight, tied by its batch_id). An answer
for a carrier, airport or route the model never saw in training carries a warning naming it.
A body over MAX_REQUEST_BYTES is refused (413) before it is read, and what a refusal repeats of the
request (the 422 answer, the log) is cut short (`echo`): no client can make the service echo or
store megabytes, or crash the JSON renderer with NaN.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flightops.modeling.config import DECISION_THRESHOLD
from flightops.serving.champion import ChampionTracker, ChampionUnavailable, ServedModel
from flightops.serving.docs import render_docs
from flightops.serving.metrics import ServingMetrics
from flightops.serving.prediction_log import LoggedRequest, PredictionLog, prediction_log_path
from flightops.online_features import OnlineFeatures
from flightops.serving.schema import (
    MAX_TEXT_LENGTH,
    BatchPredictionResponse,
    FlightBatch,
    FlightLookup,
    PredictionRequest,
    PredictionResponse,
    features_frame,
)
from flightops.settings import Settings, load_environment

log = logging.getLogger(__name__)

# One flight's body is about 1.2 KB: 16 KiB takes any valid one (pretty-printed, long ids) and
# refuses bulk before it is read.
MAX_REQUEST_BYTES = 16 * 1024
# More errors than a request has fields (33) come from junk: they are counted, not listed.
MAX_ERRORS_SHOWN = 50
# What a flight missing from the online feature store takes (the 404 of /predict/flight, a batch's `detail`),
# after the days the store holds.
ADD_MISSING_FLIGHTS = ("It keeps the flights of its newest FLIGHTOPS_ONLINE_FEATURE_DAYS days: for a flight of those "
                       "days, materialize the features of its day (`flightops run --from DAY --until DAY`); for an "
                       "older one, read its batch prediction (predictions.flight_delay) or send its features to POST /predict.")
MISSING_FLIGHT = "not in the online feature store"  # a batch's log row for a flight it could not score

DESCRIPTION = (
    "Probability that a flight arrives more than 15 minutes late, from the MLflow registry's champion model. "
    "Every answer names the model version; `warnings` lists what makes it less reliable (a carrier, airport or "
    "route that version never saw in training). Every /predict request is logged and counted in `/metrics`. "
    f"Numbers must be finite (no NaN or Infinity) and within the field's bounds, text at most {MAX_TEXT_LENGTH} "
    f"characters, the body at most {MAX_REQUEST_BYTES} bytes; a refusal (422) names each wrong field and "
    "what it takes."
)

# The settings (flightops.settings.Settings, defaults in .env) the options come from.
THRESHOLD_VARIABLE = "FLIGHTOPS_SERVING_THRESHOLD"
REFRESH_VARIABLE = "FLIGHTOPS_SERVING_MODEL_REFRESH_SECONDS"


@dataclass(frozen=True)
class ServingOptions:
    """Decision threshold, and how often the registry alias is checked for a new champion."""

    threshold: float
    model_refresh_seconds: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(
                f"Serving threshold {self.threshold} is outside [0, 1]; set {THRESHOLD_VARIABLE} to a probability."
            )
        if self.model_refresh_seconds < 0:
            raise ValueError(
                f"Model refresh interval {self.model_refresh_seconds} s is negative; "
                f"set {REFRESH_VARIABLE} to 0 (check every request) or more."
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> "ServingOptions":
        """The service's settings; no threshold set means batch scoring's (DECISION_THRESHOLD)."""
        threshold = DECISION_THRESHOLD if settings.serving_threshold is None else settings.serving_threshold
        return cls(threshold=threshold, model_refresh_seconds=settings.serving_model_refresh_seconds)


@dataclass(frozen=True)
class PredictionService:
    """What the routes share: the champion, the decision threshold, the online features, the log and the metrics."""

    tracker: ChampionTracker
    threshold: float
    online_features: OnlineFeatures
    prediction_log: PredictionLog
    metrics: ServingMetrics

    def decide(self, probability: float) -> str:
        return "delayed" if probability >= self.threshold else "on_time"


def _service(request: Request) -> PredictionService:
    return request.app.state.service


def echo(value: Any) -> Any:
    """A client's value as the service repeats it (422 answers, the request log): strict JSON, and short.

    Text (or a number's digits) beyond MAX_TEXT_LENGTH characters is cut, its length noted; NaN and
    infinities, which Python's JSON parser accepts and strict JSON has not, become their names.
    """
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT_LENGTH else f"{value[:MAX_TEXT_LENGTH]}... ({len(value)} characters)"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and len(str(value)) > MAX_TEXT_LENGTH:
        return echo(str(value))
    if isinstance(value, dict):
        return {echo(str(key)): echo(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [echo(item) for item in value]
    return value


def _shown_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error with its input echoed; a container input (the whole body, for a missing field) is left out."""
    shown = {"type": error["type"], "loc": echo(list(error["loc"])), "msg": error["msg"]}
    if not isinstance(error.get("input"), (dict, list)):
        shown["input"] = echo(error.get("input"))
    if "ctx" in error:
        shown["ctx"] = {key: echo(value if isinstance(value, (str, int, float)) else str(value))
                        for key, value in error["ctx"].items()}
    return shown


def shown_errors(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validation errors as answered and logged: the first MAX_ERRORS_SHOWN, then how many more."""
    shown = [_shown_error(error) for error in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        shown.append({"type": "too_many_errors", "loc": ["body"],
                      "msg": f"{len(errors) - MAX_ERRORS_SHOWN} more errors not shown; fix these and send again"})
    return shown


async def _refuse_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 answer with what it echoes cut short: its own renderer fails (500) on a NaN input."""
    return JSONResponse(status_code=422, content={"detail": shown_errors(exc.errors())})


class RequestSizeLimit:
    """Refuses (413) a request body larger than `max_bytes` before it is parsed.

    A declared Content-Length over the limit is refused before a byte is read, a body without
    one (chunked) once the bytes read pass it. The refusal is raised where the route reads the
    body, so RecordedRoute logs and counts it like any other; uvicorn discards the rest.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_large(f"{declared} bytes", scope)
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._too_large(f"more than {self.max_bytes} bytes", scope)
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self, size: str, scope: Scope) -> HTTPException:
        return HTTPException(
            status_code=413,
            detail=f"Request body of {size} refused by {scope['method']} {scope['path']}: it accepts at most "
            f"{self.max_bytes} bytes. Send one flight's fields per request (about 1.2 KB).",
        )


class RecordedRoute(APIRoute):
    """Times, counts and logs each request, including those refused before the endpoint runs.

    Validation errors are raised by FastAPI before the endpoint is called, so only a
    wrapper around the whole route handler sees them; the endpoint leaves what it
    computed on `request.state` for this wrapper to log. A refusal is logged before it is
    answered, an answer right after it is sent.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def recorded(request: Request) -> Response:
            received_at = datetime.now(timezone.utc).isoformat()
            started = time.perf_counter()

            def finish(status_code: int, error: str | None = None, refused_body: Any = None) -> partial[None]:
                """The request counted and timed now; returns the call that writes its log rows."""
                latency_seconds = time.perf_counter() - started
                _observe(request, status_code, latency_seconds)
                return partial(_log, request, received_at, latency_seconds, status_code, error, refused_body)

            try:
                response = await handler(request)
            except RequestValidationError as exc:
                await run_in_threadpool(finish(422, json.dumps(shown_errors(exc.errors())), exc.body))
                raise
            except HTTPException as exc:
                await run_in_threadpool(finish(exc.status_code, str(exc.detail)))
                raise
            except Exception as exc:
                await run_in_threadpool(finish(500, f"{type(exc).__name__}: {exc}"))
                raise
            # An answer's log rows are written once it is sent (Starlette runs the task after the body;
            # uvicorn waits for it on shutdown): building and writing them is not the caller's wait.
            response.background = BackgroundTask(finish(response.status_code))
            return response

        return recorded


@dataclass(frozen=True)
class Scored:
    """One flight a request scored: what the log and the metrics record of it."""

    flight_id: str | int | None
    features: dict[str, object]
    prediction: PredictionResponse
    unseen: dict[str, str]


def _observe(request: Request, status_code: int, latency_seconds: float) -> None:
    """The request, and each flight it scored, in the metrics: the request counted and timed once."""
    metrics = _service(request).metrics
    metrics.observe_request(status_code, latency_seconds)
    for s in getattr(request.state, "scored", []):
        metrics.observe_prediction(s.prediction.decision, s.prediction.probability)
        metrics.observe_unseen_categories(list(s.unseen))


def _log(
    request: Request,
    received_at: str,
    latency_seconds: float,
    status_code: int,
    error: str | None,
    refused_body: Any,
) -> None:
    """The request in the prediction log: a row per scored flight, else one row.

    A batch (`request.state.missing` set) writes a row per requested flight, the missing ones with
    status 404, all under one batch_id."""
    service = _service(request)
    served: ServedModel | None = getattr(request.state, "served", None)
    scored: list[Scored] = getattr(request.state, "scored", [])
    missing: list[str] | None = getattr(request.state, "missing", None)

    def row(flight_id: Any, features: Any, status: int, why: str | None, scored_flight: Scored | None,
            batch_id: str | None) -> LoggedRequest:
        prediction = scored_flight.prediction if scored_flight else None
        return LoggedRequest(
            request_id=uuid.uuid4().hex,
            received_at=received_at,
            flight_id=None if flight_id is None else echo(str(flight_id)),
            model_name=served.name if served else None,
            model_version=served.version if served else None,
            probability=prediction.probability if prediction else None,
            decision=prediction.decision if prediction else None,
            threshold=service.threshold,
            latency_ms=latency_seconds * 1000,
            status_code=status,
            error=why,
            features_json=json.dumps(features),
            unseen_categories=None if prediction is None else json.dumps(scored_flight.unseen),
            batch_id=batch_id,
        )

    if missing is not None and status_code == 200:
        batch_id = uuid.uuid4().hex
        rows = [row(s.flight_id, s.features, 200, None, s, batch_id) for s in scored]
        rows += [row(flight_id, None, 404, MISSING_FLIGHT, None, batch_id) for flight_id in missing]
    elif scored:
        rows = [row(s.flight_id, s.features, status_code, error, s, None) for s in scored]
    else:
        flight_id = getattr(request.state, "flight_id", None)
        features = getattr(request.state, "features", None)
        if features is None and isinstance(refused_body, dict):
            flight_id = refused_body.get("flight_id")
        rows = [row(flight_id, features if features is not None else echo(jsonable_encoder(refused_body)),
                    status_code, error, None, None)]
    try:
        service.prediction_log.record(*rows)
    except Exception as exc:
        log.error("The prediction log %s did not take the %d row(s) of %s %s (status %d, received %s): %s: %s. "
                  "/metrics counted the request. Check the disk's free space and that the file is writable.", service.prediction_log.path, len(rows), request.method, request.url.path,
                  status_code, received_at, type(exc).__name__, exc)
        raise


prediction_router = APIRouter(route_class=RecordedRoute)

# Answers of both predict routes besides 200 and 422 (which FastAPI documents itself).
_REFUSED = {
    413: {"description": f"The body is larger than {MAX_REQUEST_BYTES} bytes; refused before it is read."},
    503: {"description": "No champion model can be served (none registered yet, or it failed to load); "
                         "`detail` says which and what to do."},
}


@prediction_router.post("/predict", response_model=PredictionResponse, responses=_REFUSED)
def predict(flight: PredictionRequest, request: Request) -> PredictionResponse:
    """Probability that this flight arrives more than 15 minutes late (the label `is_delayed`:
    arr_delay > 15), and the decision at the threshold. The body is the model's inputs
    (`flightops.modeling.schema`); nullable ones may be null or left out."""
    features = flight.features()
    request.state.features, request.state.flight_id = features, flight.flight_id
    return _score(request, features, flight.flight_id)


def _score(request: Request, features: dict[str, object], flight_id: str | int | None) -> PredictionResponse:
    """The champion's probability for one flight's model inputs, and the decision."""
    return _score_many(request, [(flight_id, features)])[0]


def _score_many(request: Request, flights: list[tuple[str | int | None, dict[str, object]]]) -> list[PredictionResponse]:
    """The champion's probabilities for flights' model inputs (one model call), and the decisions;
    left on request.state for the log."""
    service = _service(request)
    try:
        served = service.tracker.current()
    except ChampionUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    request.state.served = served  # logged even if the model then fails
    probabilities = served.delay_probability(features_frame(*(features for _, features in flights)))
    scored = []
    for (flight_id, features), probability in zip(flights, probabilities):
        unseen = served.unseen_categories(features)
        prediction = PredictionResponse(
            flight_id=flight_id,
            probability=float(probability),
            decision=service.decide(float(probability)),
            model_name=served.name,
            model_version=served.version,
            warnings=served.category_warnings(unseen),
        )
        scored.append(Scored(flight_id, features, prediction, unseen))
    request.state.scored = scored
    return [s.prediction for s in scored]


@prediction_router.post(
    "/predict/flight", response_model=PredictionResponse,
    responses={404: {"description": "The flight is not in the online feature store; `detail` says how to add it."},
               **_REFUSED},
)
def predict_flight(lookup: FlightLookup, request: Request) -> PredictionResponse:
    """The same answer for a flight the platform has computed features for, by its id: the model
    inputs come from the online feature store (the rows of `features.flight_features`, as known at
    the flight's prediction time), so the service scores exactly what training and batch scoring read."""
    request.state.flight_id = lookup.flight_id
    features = _service(request).online_features.model_inputs(lookup.flight_id)
    if features is None:
        raise HTTPException(
            status_code=404,
            detail=f"Flight {lookup.flight_id!r} is not in the online feature store "
            f"({_service(request).online_features.path}, flights of {_service(request).online_features.days_held()}). "
            f"{ADD_MISSING_FLIGHTS}",
        )
    request.state.features = features
    return _score(request, features, lookup.flight_id)


@prediction_router.post("/predict/flights", response_model=BatchPredictionResponse, responses=_REFUSED)
def predict_flights(batch: FlightBatch, request: Request) -> BatchPredictionResponse:
    """The same answers for up to MAX_BATCH_FLIGHTS flights by id, in one model call: a batch client's
    way to score a day's departures. Ids the online store lacks are listed in `missing`, not scored."""
    service = _service(request)
    found = service.online_features.model_inputs_of(batch.flight_ids)
    request.state.missing = missing = [flight_id for flight_id in batch.flight_ids if flight_id not in found]
    flights = [(flight_id, found[flight_id]) for flight_id in batch.flight_ids if flight_id in found]
    predictions = _score_many(request, flights) if flights else []
    detail = (f"{len(missing)} of {len(batch.flight_ids)} flights are not in the online feature store "
              f"({service.online_features.path}, flights of {service.online_features.days_held()}). "
              f"{ADD_MISSING_FLIGHTS}") if missing else None
    return BatchPredictionResponse(predictions=predictions, missing=missing, detail=detail)


def create_app(settings: Settings, options: ServingOptions | None = None) -> FastAPI:
    """The service for the registry at `settings.mlflow_tracking_uri`, loading its champion now if there is one.

    `options` default to the settings' (`ServingOptions.from_settings`)."""
    options = options or ServingOptions.from_settings(settings)
    tracker = ChampionTracker(settings.mlflow_tracking_uri, options.model_refresh_seconds)
    service = PredictionService(
        tracker=tracker,
        threshold=options.threshold,
        online_features=OnlineFeatures(settings.online_features),
        prediction_log=PredictionLog(prediction_log_path(settings.data_dir)),
        metrics=ServingMetrics(settings, tracker),
    )
    try:
        tracker.current()
    except ChampionUnavailable as exc:
        log.warning("Starting without a model; /predict answers 503 until one is found: %s", exc)

    # FastAPI's Swagger UI and ReDoc load from a CDN (blank offline): /docs is rendered here instead.
    app = FastAPI(title="flightops delay prediction", version="1", description=DESCRIPTION,
                  docs_url=None, redoc_url=None)
    app.state.service = service
    app.include_router(prediction_router)
    app.add_exception_handler(RequestValidationError, _refuse_invalid)
    app.add_middleware(RequestSizeLimit, max_bytes=MAX_REQUEST_BYTES)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """This API described from its OpenAPI schema, on a page that loads nothing from the network."""
        return HTMLResponse(render_docs(app.openapi(), str(request.base_url).rstrip("/")))

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness, and which model answers (checks the registry alias when a check is due)."""
        try:
            served = tracker.current()
        except ChampionUnavailable as exc:
            return {
                "status": "no_model",
                "model_loaded": False,
                "model_name": tracker.model_name,
                "model_version": None,
                "detail": str(exc),
            }
        return {"status": "ok", "model_loaded": True, "model_name": served.name, "model_version": served.version}

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        """Prometheus exposition, in the format the scraper's Accept header asks for."""
        body, content_type = service.metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return app


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service with uvicorn until interrupted (settings from the environment and `.env`)."""
    load_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(Settings.current()), host=host, port=port)
