"""Watch the operational database for late corrections of days already loaded.

A correction appends a newer row version for a day the platform has loaded; nothing lands in
the landing folder, so the landing sensor cannot see it. The opdb ingestion asset records each
loaded day's version (flightops/source_versions.py) in its materialization metadata; this sensor
reads those from Dagster's event log (never the DuckDB warehouse, which a running job holds),
asks the source for the same days' current versions, and starts one run of the daily job per
range of changed days, as the landing sensor does for redelivered files. Days not loaded yet
are left to the runs that load them.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import sqlalchemy as sa

from assets.ingestion import flights_opdb
from flightops.jobs import daily_job
from flightops.resources import SourceDatabaseResource
from flightops.settings import Settings
from flightops.simulated_sources.operational_db import display_url
from flightops.source_versions import OPDB_VERSIONS, day_versions
from sensors.landing import Cursor, day_ranges, range_request


@dg.sensor(job=daily_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def opdb_corrections_sensor(
    context: dg.SensorEvaluationContext, source_db: SourceDatabaseResource
) -> dg.SensorResult | dg.SkipReason:
    cursor = Cursor.parse(context.cursor)
    cursor.learn_loaded(context.instance, [flights_opdb.key], OPDB_VERSIONS)
    if not cursor.loaded:
        return dg.SensorResult(skip_reason="No day of raw/flights_opdb is loaded yet (per the event log).", cursor=cursor.dump())
    loaded_days = sorted(cursor.loaded)
    url = source_db.resolved_url
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            current = day_versions(connection, date.fromisoformat(loaded_days[0]), date.fromisoformat(loaded_days[-1]))
    except sa.exc.SQLAlchemyError as exc:
        return dg.SensorResult(
            skip_reason=f"Cannot read the operational database {display_url(url)} ({exc.__class__.__name__}: {exc}). "
            "Check FLIGHTOPS_SOURCE_DB_URL and that the source is up; the sensor tries again at its next tick.",
            cursor=cursor.dump(),
        )
    finally:
        engine.dispose()
    changed = cursor.take_pending({day: current.get(day, "0@None") for day in loaded_days})
    if not changed:
        return dg.SensorResult(
            skip_reason=f"The {len(loaded_days)} loaded days of the operational database are unchanged since their load "
            "(or their reload is already requested).",
            cursor=cursor.dump(),
        )
    for day in sorted(changed):
        context.log.info(f"{day}: the operational database changed since its load ({cursor.loaded[day]} -> {changed[day]}); reloading.")
    max_days = Settings.current().landing_max_range_days
    ranges = day_ranges([date.fromisoformat(day) for day in changed], max_days)
    return dg.SensorResult(
        run_requests=[range_request(first, last, changed, why="opdb correction") for first, last in ranges],
        cursor=cursor.dump(),
    )
