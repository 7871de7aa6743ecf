"""Time partitions: one per local day of 2013, backfilled as one run per range."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

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


# Metadata entries that describe a table, not a day (its columns). A range run records one materialization
# per asset and day, each with the step's metadata: these go on the range's last day only (the asset page
# shows the latest). A year's catch-up repeated each table's schema (2-7 KB) 364 times per asset.
TABLE_LEVEL_ENTRIES = ("dagster/column_schema",)


def once_per_range(context: dg.AssetExecutionContext, metadata: Mapping[str, Any],
                   asset_key: dg.AssetKey | None = None) -> dict[str, Any]:
    """`metadata` for every day's materialization of the run, without its table-level entries, which are
    added to the last day's alone; unpartitioned, all of `metadata`. `asset_key` names the asset in a
    step of several."""
    if context.assets_def.partitions_def is None:  # also in a partitioned run (reference data in the daily job)
        return dict(metadata)
    table_level = {name: value for name, value in metadata.items() if name in TABLE_LEVEL_ENTRIES}
    if table_level:
        context.add_asset_metadata(table_level, asset_key=asset_key, partition_key=context.partition_key_range.end)
    return {name: value for name, value in metadata.items() if name not in TABLE_LEVEL_ENTRIES}


def record_per_day(context: dg.AssetExecutionContext, entry: str, by_day: Mapping[str, Any]) -> None:
    """Each day's value as metadata `entry` ({day: value}) of that day's materialization alone, not the
    range's whole mapping on every day's: that grows with the square of the days (a year's catch-up wrote
    364 x 364 source versions)."""
    for day, value in by_day.items():
        context.add_asset_metadata({entry: dg.MetadataValue.json({day: value})}, partition_key=day)
