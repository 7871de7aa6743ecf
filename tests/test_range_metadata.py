"""A range run's per-day materializations: the table's columns on the last day's, each day's own values on
its own (flightops/partitions.py), so a catch-up's events do not grow with the square of its days."""

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from flightops.partitions import DAILY, SINGLE_RUN, once_per_range, record_per_day

SCHEMA = dg.TableSchema(columns=[dg.TableColumn("flight_id", "VARCHAR"), dg.TableColumn("rows", "BIGINT")])


@dg.asset(partitions_def=DAILY, backfill_policy=SINGLE_RUN)
def daily_table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    record_per_day(context, "versions", {day: f"version of {day}" for day in context.partition_keys})
    return dg.MaterializeResult(metadata=once_per_range(context, {"dagster/column_schema": SCHEMA, "rows": 42}))


@dg.asset
def whole_table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=once_per_range(context, {"dagster/column_schema": SCHEMA, "rows": 7}))


def _metadata_by_day(first: str, last: str) -> dict[str | None, dict]:
    result = dg.materialize([daily_table, whole_table], instance=dg.DagsterInstance.ephemeral(),
                            tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})
    assert result.success
    return {(e.asset_key.to_user_string(), e.partition): e.materialization.metadata
            for e in result.get_asset_materialization_events()}


@pytest.mark.unit
def test_a_range_run_records_the_columns_on_its_last_day_and_each_days_values_on_that_day():
    recorded = _metadata_by_day("2013-03-01", "2013-03-03")
    days = ["2013-03-01", "2013-03-02", "2013-03-03"]
    assert sorted(recorded) == [("daily_table", day) for day in days] + [("whole_table", None)]
    for day in days:
        metadata = recorded[("daily_table", day)]
        assert metadata["rows"].value == 42
        assert metadata["versions"].value == {day: f"version of {day}"}
        assert ("dagster/column_schema" in metadata) == (day == "2013-03-03")
    assert recorded[("daily_table", "2013-03-03")]["dagster/column_schema"].value == SCHEMA
    # An unpartitioned asset in the same run keeps all its metadata.
    assert recorded[("whole_table", None)]["dagster/column_schema"].value == SCHEMA
    assert recorded[("whole_table", None)]["rows"].value == 7


@pytest.mark.unit
def test_a_one_day_run_records_everything_on_its_day():
    recorded = _metadata_by_day("2013-03-05", "2013-03-05")
    metadata = recorded[("daily_table", "2013-03-05")]
    assert metadata["dagster/column_schema"].value == SCHEMA
    assert metadata["versions"].value == {"2013-03-05": "version of 2013-03-05"}
