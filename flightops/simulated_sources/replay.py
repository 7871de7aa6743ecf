"""The replay clock driving the source systems through 2013, one day at a time.

Each day after the clock, in order: the operational database gets the day's
non-export flights, the landing folder gets the day's export file, the weather
API store gets the day's observations, then the clock advances to that day.
A day is redone whole (its partial rows removed first) if an earlier run was
interrupted before advancing the clock, so re-running always continues cleanly.
With FLIGHTOPS_SOURCE_SCALE above 1, each day's flights are delivered that many
times (`dataset.replicated`): the scaling benchmark's larger data, made on the fly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from flightops.settings import Settings
from flightops.simulated_sources import clock, landing, operational_db, weather_store
from flightops.simulated_sources.channels import split_by_channel
from flightops.simulated_sources.dataset import load_flights, load_weather, local_dates, replicated


@dataclass(frozen=True)
class ReplaySummary:
    first_day: date | None
    last_day: date | None
    days: int
    opdb_rows: int
    export_rows: int
    weather_rows: int
    replayed_through: date | None

    def describe(self) -> str:
        if self.days == 0:
            through = self.replayed_through.isoformat() if self.replayed_through else "nothing"
            return f"Nothing to replay: the source systems are already replayed through {through}."
        return (
            f"Replayed {self.days} day(s), {self.first_day.isoformat()}..{self.last_day.isoformat()}: "
            f"{self.opdb_rows} flights into the operational database, {self.export_rows} flights into "
            f"daily export files, {self.weather_rows} weather observations into the API store."
        )


def _by_day(frame: pd.DataFrame, day_column: pd.Series) -> dict[str, pd.DataFrame]:
    return {day: rows for day, rows in frame.groupby(day_column, sort=False)}


def replay(settings: Settings, until: date) -> ReplaySummary:
    """Replay every day after the clock up to `until` (inclusive)."""
    clock.check_in_calendar(until, "Replay target")
    through = clock.replayed_through(settings.source_state_dir)
    first = clock.FIRST if through is None else through + timedelta(days=1)
    if first > until:
        return ReplaySummary(None, None, 0, 0, 0, 0, through)

    landing.write_reference_files(settings.landing_dir)
    flights = load_flights(first, until)
    flights_by_day = _by_day(flights, flights["flight_date"])
    weather = load_weather(first, until)
    weather_by_day = _by_day(weather, local_dates(weather))
    no_flights, no_weather = flights.iloc[0:0], weather.iloc[0:0]

    totals = {"days": 0, "opdb": 0, "export": 0, "weather": 0}
    with operational_db.connect_engine(settings.source_db_url) as engine, weather_store.open_store(settings.source_state_dir) as store:
        day = first
        while day <= until:
            day_flights = replicated(flights_by_day.get(day.isoformat(), no_flights), settings.source_scale)
            opdb_flights, export_flights = split_by_channel(day_flights)
            with engine.begin() as connection:
                operational_db.delete_day(connection, day)
                totals["opdb"] += operational_db.insert_flights(connection, opdb_flights)
            landing.write_export(settings.landing_dir, day, export_flights)
            totals["export"] += len(export_flights)
            with store:
                weather_store.delete_day(store, day)
                totals["weather"] += weather_store.insert_observations(store, weather_by_day.get(day.isoformat(), no_weather))
            clock.advance(settings.source_state_dir, day)
            totals["days"] += 1
            day += timedelta(days=1)
    return ReplaySummary(first, until, totals["days"], totals["opdb"], totals["export"], totals["weather"], until)
