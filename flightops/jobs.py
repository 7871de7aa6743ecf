"""Jobs: named selections of the asset graph that sensors and the CLI launch."""

from __future__ import annotations

import dagster as dg

from flightops.partitions import DAILY

# Sources to features for a day or a range of days (unpartitioned assets are rebuilt whole).
main_job = dg.define_asset_job(
    "main_job",
    selection=dg.AssetSelection.all(),
    partitions_def=DAILY,
    description="The whole asset graph for a range of days: ingestion, validation, dbt warehouse, features.",
)

# Reference data only: what a new airports/airlines/planes file needs.
REFERENCE_KEYS = [dg.AssetKey([layer, name]) for layer in ("raw", "clean") for name in ("airlines", "airports", "planes")]
