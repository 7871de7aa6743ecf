"""Jobs: named selections of the asset graph that sensors and the CLI launch."""

from __future__ import annotations

import dagster as dg

from flightops.partitions import DAILY

# Everything for a range of days (unpartitioned assets are rebuilt whole): the README's run command.
main_job = dg.define_asset_job(
    "main_job",
    selection=dg.AssetSelection.all(),
    partitions_def=DAILY,
    description="The whole asset graph for a range of days: ingestion, validation, dbt warehouse, features, "
    "training, promotion, batch predictions.",
)

# New days through every layer but training: what a newly landed file needs. Predictions use the
# current champion; retraining is its own decision (launched from the UI or the CLI).
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("models"),
    partitions_def=DAILY,
    description="New days from ingestion to batch predictions, without retraining.",
)

# Reference data only: what a new airports/airlines/planes file needs.
REFERENCE_KEYS = [dg.AssetKey([layer, name]) for layer in ("raw", "clean") for name in ("airlines", "airports", "planes")]
