"""Labelled feature rows from the warehouse (features.flight_features joined with flight_labels)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from flightops.modeling.schema import CATEGORICAL_FEATURES, FEATURE_COLUMNS, ID_COLUMNS, LABEL_COLUMN
from flightops.validation import sql_literal

FEATURES_TABLE = "features.flight_features"
LABELS_TABLE = "features.flight_labels"
# Minutes before departure the row's features were computed for (flightops.feature_engineering);
# read with the rows so that training records it and refuses rows of different leads.
LEAD_COLUMN = "prediction_lead_minutes"
# Labelled rows are fetched this many DuckDB vectors (2,048 rows each, about 51k rows) at a time, then
# concatenated. The year's 326,587 rows, read alone: 417 MB above the start at the peak and 0.63 s, against
# 529 MB and 0.85 s converted at once (DuckDB's sorted result and all of its conversion were held together).
READ_VECTORS = 25
# The optional [start, end] window of every read, on the features' flight_date (parameters: start, start, end, end).
_WINDOW = "WHERE (CAST(? AS DATE) IS NULL OR f.flight_date >= ?) AND (CAST(? AS DATE) IS NULL OR f.flight_date <= ?)"


def join_labels(features: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Features of the flights that have a label, with the label column added (inner join on flight_id)."""
    duplicated = labels["flight_id"].duplicated()
    if duplicated.any():
        raise ValueError(
            f"{int(duplicated.sum())} flight_ids appear more than once in the labels (e.g. "
            f"{labels.loc[duplicated, 'flight_id'].iloc[0]!r}); each flight needs exactly one label row."
        )
    return features.merge(labels[["flight_id", LABEL_COLUMN]], on="flight_id", how="inner")


def read_labelled_features(
    con: duckdb.DuckDBPyConnection, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """Labelled feature rows with flight_date in [start, end] (both optional), ordered by date, with their lead.

    Reads only the columns the models use, on the caller's connection to the warehouse (read-only
    is enough: `WarehouseResource.connect(read_only=True)` in an asset).
    """
    query = (
        f"SELECT {feature_columns_sql(con, (*ID_COLUMNS, LEAD_COLUMN, *FEATURE_COLUMNS))}, l.{LABEL_COLUMN} "
        f"FROM {FEATURES_TABLE} AS f JOIN {LABELS_TABLE} AS l USING (flight_id) {_WINDOW} "
        "ORDER BY f.flight_date, f.dep_minute_of_day, f.flight_id"
    )
    return fetch_frame(con.execute(query, [start, start, end, end]))


def feature_columns_sql(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...]) -> str:
    """The select list of `columns` of the features table (aliased `f`), its text categories read as ENUMs
    (see `_enum_casts`; `fetch_frame` turns them back into text)."""
    as_enums = _enum_casts(con, tuple(column for column in columns if column in CATEGORICAL_FEATURES))
    return ", ".join(as_enums.get(column, f"f.{column}") for column in columns)


def fetch_frame(result: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """A query's rows as one frame, fetched READ_VECTORS at a time; ENUM columns come back as object
    columns of their strings, one object per distinct value, None where missing (as VARCHAR would)."""
    chunks = [result.fetch_df_chunk(READ_VECTORS)]
    while not chunks[-1].empty:
        chunks.append(result.fetch_df_chunk(READ_VECTORS))
    frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks[:-1], ignore_index=True)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = _shared_strings(frame[column].array)
    return frame


def _enum_casts(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...]) -> dict[str, str]:
    """For each text column of the features table that has values, its cast to an ENUM of them (`f.` prefixed).

    Why: DuckDB gives pandas a new Python string for every VARCHAR value, while an ENUM arrives as a
    pandas Categorical (codes and one string per value). The year's four categorical columns were
    326,587 strings each, 18 MB a column, for 3 to 223 distinct values; freed after the fact, that
    memory stayed with the process among the ids' strings. Read as ENUMs (measured alone): 323 MB above
    the start at the peak instead of 427, 113 MB held after instead of 188, in the same 0.5 s.
    """
    if not columns:
        return {}
    distinct = con.execute(f"SELECT {', '.join(f'list(DISTINCT {c}) FILTER (WHERE {c} IS NOT NULL)' for c in columns)} FROM {FEATURES_TABLE}").fetchone()
    return {column: f"CAST(f.{column} AS ENUM ({', '.join(sql_literal(value) for value in values)})) AS {column}"
            for column, values in zip(columns, distinct) if values}


def _shared_strings(values: pd.Categorical) -> np.ndarray:
    """The categorical's values as an object array of its category strings, None where missing (as DuckDB
    gives a VARCHAR column): equal values are one object."""
    shared = np.asarray(values.categories, dtype=object).take(values.codes)
    shared[values.codes < 0] = None
    return shared


def labelled_rows_by_day(con: duckdb.DuckDBPyConnection, start: date | None = None, end: date | None = None) -> list[tuple[date, int]]:
    """(day, labelled rows) of the days in [start, end] that have any, the latest first."""
    return con.execute(
        f"SELECT f.flight_date, count(*) FROM {FEATURES_TABLE} AS f JOIN {LABELS_TABLE} AS l USING (flight_id) "
        f"{_WINDOW} GROUP BY 1 ORDER BY 1 DESC",
        [start, start, end, end],
    ).fetchall()


def latest_days_within(con: duckdb.DuckDBPyConnection, max_rows: int, start: date | None = None,
                       end: date | None = None) -> date | None:
    """The first day of the latest whole days of [start, end] whose labelled rows number at most
    `max_rows` (at least the last day, whatever its rows); None when the whole window fits.

    What bounds the rows training reads into memory: a longer history is cut at its oldest days, so
    the newest data is kept, and a fixed test window (`test_start`/`test_end`) among them stays the same.
    """
    total = 0
    for day, rows in labelled_rows_by_day(con, start, end):
        if total and total + rows > max_rows:
            return day + timedelta(days=1)
        total += rows
    return None


def recent_labelled_days(con: duckdb.DuckDBPyConnection, days: int) -> pd.DataFrame:
    """The labelled feature rows of the last `days` days that have labels (read alone, never the history)."""
    latest = labelled_rows_by_day(con)
    if not latest:
        return read_labelled_features(con)  # empty, with the columns
    last = latest[0][0]
    return read_labelled_features(con, last - timedelta(days=days - 1), last)


def prediction_lead(frame: pd.DataFrame) -> int:
    """The one prediction lead of the rows' features, or a ValueError naming the leads found."""
    leads = frame[LEAD_COLUMN].value_counts().sort_index()
    if len(leads) != 1:
        found = ", ".join(f"{int(lead)} min ({count} rows)" for lead, count in leads.items()) or "no rows"
        raise ValueError(
            f"The feature rows were computed at different prediction leads: {found}. A model must learn one "
            "lead: after changing FLIGHTOPS_PREDICTION_LEAD_MINUTES, rematerialize features/flight_features "
            "for every day (e.g. `flightops run --from 2013-01-01 --until <last day>`)."
        )
    return int(leads.index[0])
