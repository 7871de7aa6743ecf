"""Time partitions: one per local day of 2013, backfilled as one run per range."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from flightops.settings import FIRST_DAY, LAST_DAY

DAILY = dg.DailyPartitionsDefinition(
    start_date=FIRST_DAY, end_date=(date.fromisoformat(LAST_DAY) + timedelta(days=1)).isoformat()
)

# A backfill of a month is one launch: the asset receives the whole range and writes it at once.
SINGLE_RUN = dg.BackfillPolicy.single_run()


def day_range(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The first and last day (inclusive) that this run covers."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
