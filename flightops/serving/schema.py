"""The request and response contract of the prediction endpoint, derived from the model's schema.

The request's feature fields are built from `flightops.modeling.schema` (its FEATURE_COLUMNS and
the FEATURES table of meanings, bounds and examples), so the service asks for exactly the
model's inputs, under the names of the warehouse table `features.flight_features`: adding or
dropping a feature there changes the request with it. Columns the table has but the model does
not use (prediction_at, month, route_prior_flights, ...) are refused like any unknown field.
Ranges are checked here, before the model sees anything, so a bad value is refused with a 422
that names the field instead of being turned into a silent prediction: numbers must be finite
(Python's JSON parser takes NaN and Infinity) and within both bounds of the schema, strings at
most MAX_TEXT_LENGTH characters. Nullable features
(weather, plane, prior delay rates) may be sent as `null` or left out; every other feature
must be sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from flightops.modeling.schema import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    FEATURES,
    LABEL_DESCRIPTION,
    Feature,
    feature_type,
)

Decision = Literal["delayed", "on_time"]

# The longest text a request may carry (a category, a flight id). The real ones are far shorter:
# carrier 2, dest 3, route 7, flight_id about 20 characters.
MAX_TEXT_LENGTH = 64


def _field(column: str, feature: Feature) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of one feature: its type, bounds and description from the schema."""
    annotation: Any = feature_type(column)
    constraints: dict[str, Any] = {"ge": feature.minimum, "le": feature.maximum}
    if feature.allowed:
        annotation = Literal[feature.allowed]
    elif annotation is str:
        constraints.update(min_length=1, max_length=MAX_TEXT_LENGTH)
    if feature.nullable:
        annotation = annotation | None
    default = None if feature.nullable else ...
    constraints = {name: bound for name, bound in constraints.items() if bound is not None}
    return annotation, Field(default, description=feature.description, **constraints)


class _Features(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


FlightFeatures: type[BaseModel] = create_model(
    "FlightFeatures",
    __base__=_Features,
    __module__=__name__,
    __doc__="One flight's model inputs: a row of `features.flight_features` restricted to the model's columns.",
    **{column: _field(column, FEATURES[column]) for column in FEATURE_COLUMNS},
)

EXAMPLE_FLIGHT_ID = "2013-03-05_UA421_EWR"
EXAMPLE_REQUEST: dict[str, object] = {
    "flight_id": EXAMPLE_FLIGHT_ID,
    **{column: FEATURES[column].example for column in FEATURE_COLUMNS},
}


def _short_id(flight_id: str | int | None) -> str | int | None:
    """A flight id is echoed and logged: at most MAX_TEXT_LENGTH characters (or digits)."""
    if flight_id is not None and len(str(flight_id)) > MAX_TEXT_LENGTH:
        raise ValueError(f"flight_id has {len(str(flight_id))} characters; send at most {MAX_TEXT_LENGTH}")
    return flight_id


class PredictionRequest(FlightFeatures):  # type: ignore[misc, valid-type]
    """A flight to score: its model inputs, and a `flight_id` that is only echoed back and logged."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_REQUEST]})

    flight_id: Annotated[str | int | None, AfterValidator(_short_id)] = Field(
        None, description=f"Any id of the flight, at most {MAX_TEXT_LENGTH} characters; echoed in the answer and logged."
    )

    def features(self) -> dict[str, object]:
        """The model inputs, omitted nullable ones as None."""
        return self.model_dump(include=set(FEATURE_COLUMNS))


# Numerics as float64 (nulls as NaN) and categoricals as strings: what
# `flightops.modeling.schema.model_inputs` makes of a training frame, so both frames agree.
FEATURE_DTYPES: dict[str, str] = {
    column: "object" if column in CATEGORICAL_FEATURES else "float64" for column in FEATURE_COLUMNS
}


def features_frame(*rows: dict[str, object]) -> pd.DataFrame:
    """A frame with the training dtypes (`None` becomes NaN), one row per features dict, in schema column order.

    Built column by column from typed arrays: ten times faster than `DataFrame.astype`,
    which matters on the per-request path.
    """
    return pd.DataFrame({name: np.array([row[name] for row in rows], dtype=dtype) for name, dtype in FEATURE_DTYPES.items()})


class FlightLookup(BaseModel):
    """A flight to score from the online feature store, by the id the platform gave it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"flight_id": EXAMPLE_FLIGHT_ID}]})

    flight_id: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH,
                           description="flight_id of features.flight_features: date_carrier+number_origin.")


# At most this many flights per POST /predict/flights: about 6 KB of ids, one model call.
MAX_BATCH_FLIGHTS = 200


class FlightBatch(BaseModel):
    """Flights to score from the online feature store, by their ids: one request, one model call."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"flight_ids": [EXAMPLE_FLIGHT_ID]}]})

    flight_ids: list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH)]] = Field(
        min_length=1, max_length=MAX_BATCH_FLIGHTS,
        description=f"1 to {MAX_BATCH_FLIGHTS} flight_ids of features.flight_features; answered in this order.")


class PredictionResponse(BaseModel):
    flight_id: str | int | None = Field(description="The request's flight_id, if it had one.")
    probability: float = Field(description=f"Probability that {LABEL_DESCRIPTION}, from the champion model.")
    decision: Decision = Field(
        description="`delayed` when the probability is at least the service's threshold "
        "(FLIGHTOPS_SERVING_THRESHOLD), else `on_time`."
    )
    model_name: str = Field(description="Registered MLflow model that answered.")
    model_version: int = Field(description="Its registry version (the champion alias's when it answered).")
    warnings: list[str] = Field(
        default_factory=list,
        description="What makes this answer less reliable, one sentence each; empty when nothing does. Today: a "
        f"categorical input ({', '.join(CATEGORICAL_FEATURES)}) with a value the answering model version never saw "
        "in training, e.g. \"carrier 'ZZ' was not seen in training ...\". The flight is still scored (200): the "
        "model has learned nothing about that value, so the probability rests on the other inputs.",
    )


class BatchPredictionResponse(BaseModel):
    predictions: list[PredictionResponse] = Field(
        description="One answer per requested flight the online store has, in the request's order.")
    missing: list[str] = Field(
        description="Requested flight_ids the online feature store has no features for (not scored), in order.")
    detail: str | None = Field(
        default=None, description="Why flights are missing and how to add them; null when none is.")
