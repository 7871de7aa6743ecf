"""The embedded default's Dagster storage (flightops/dagster_storage.py): Dagster's SQLite files, its
event log's connections reused, readable by Dagster's own SQLite storage and bounded in open files."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._serdes import deserialize_value

from flightops import dagster_storage
from flightops.pipeline import instance_config_with_storage_in

DAYS = dg.DailyPartitionsDefinition(start_date="2013-01-01", end_date="2014-01-01")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def upstream() -> None:
    return None


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[upstream])
def downstream() -> None:
    return None


JOB = dg.Definitions(assets=[upstream, downstream], jobs=[dg.define_asset_job("days", [upstream, downstream])]).resolve_job_def("days")


def _instance(folder: Path, config: str) -> dg.DagsterInstance:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(config)
    return dg.DagsterInstance.from_config(str(folder))


def _run(instance: dg.DagsterInstance, first: str, last: str) -> dg.ExecuteInProcessResult:
    result = JOB.execute_in_process(instance=instance, tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})
    assert result.success
    return result


def _materialized(instance: dg.DagsterInstance, asset: dg.AssetsDefinition) -> set[str]:
    return instance.get_materialized_partitions(asset.key)


def test_the_repository_instance_records_events_that_dagsters_own_sqlite_storage_reads_and_continues(tmp_path: Path):
    home = tmp_path / "home"
    pooled = _instance(home, instance_config_with_storage_in(home))
    assert type(pooled.event_log_storage).__name__ == "PooledSqliteEventLogStorage"  # what dagster.yaml names
    result = _run(pooled, "2013-01-01", "2013-01-10")
    assert len(result.get_asset_materialization_events()) == 20  # one per asset and day
    assert len(_materialized(pooled, downstream)) == 10

    # Dagster's plain SQLite storage on the same files (the `storage: sqlite:` a user could switch back to).
    plain = _instance(tmp_path / "plain", f"storage:\n  sqlite:\n    base_dir: {home.resolve()}/storage\ntelemetry:\n  enabled: false\n")
    assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
    assert _materialized(plain, upstream) == {f"2013-01-{day:02d}" for day in range(1, 11)}
    assert len(plain.all_logs(result.run_id)) == len(pooled.all_logs(result.run_id))
    later = _run(plain, "2013-01-11", "2013-01-12")  # written by Dagster's storage while the pooled one holds connections
    assert len(_materialized(pooled, downstream)) == 12
    assert len(pooled.all_logs(later.run_id)) == len(plain.all_logs(later.run_id))
    plain.dispose()
    pooled.dispose()


def test_only_the_most_recently_used_databases_stay_open_and_a_wipe_closes_them(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(dagster_storage, "OPEN_DATABASES", 3)
    home = tmp_path / "home"
    instance = _instance(home, instance_config_with_storage_in(home))
    storage = instance.event_log_storage
    runs = [_run(instance, f"2013-02-{day:02d}", f"2013-02-{day:02d}").run_id for day in range(1, 6)]
    assert len(storage._engines) == 3
    assert list(storage._engines)[-1] == "index"  # the last written: every asset event is mirrored there
    assert runs[-1] in storage._engines and runs[0] not in storage._engines
    # A closed database opens again when it is read.
    assert any(e.is_dagster_event and e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
               for e in instance.all_logs(runs[0]))
    assert runs[0] in storage._engines and len(storage._engines) == 3
    instance.wipe()
    assert storage._engines == {} or set(storage._engines) == {"index"}
    assert _materialized(instance, upstream) == set()
    instance.dispose()
    assert storage._engines == {}


def _materializations(instance: dg.DagsterInstance) -> list[tuple[str, str | None]]:
    return sorted((record.asset_key.to_user_string(), record.partition_key)
                  for asset in (upstream, downstream) for record in instance.fetch_materializations(asset.key, limit=1000).records)


def test_a_batch_of_events_writes_the_rows_the_events_written_one_by_one_write(tmp_path: Path, monkeypatch):
    batches = []
    store_event_batch = dagster_storage.PooledSqliteEventLogStorage.store_event_batch
    monkeypatch.setattr(dagster_storage.PooledSqliteEventLogStorage, "store_event_batch",
                        lambda storage, events: batches.append(len(events)) or store_event_batch(storage, events))
    recorded = {}
    for batch_size in ("0", "7"):  # 7: the run's 20 materializations and 20 planned ones split unevenly
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
        home = tmp_path / f"batch-{batch_size}"
        instance = _instance(home, instance_config_with_storage_in(home))
        result = _run(instance, "2013-03-01", "2013-03-10")
        planned = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, upstream.key))
        entries = [record.asset_entry for record in instance.get_asset_records([upstream.key, downstream.key])]
        recorded[batch_size] = (
            _materializations(instance),
            sorted(r.partition_key for r in planned),
            # Each asset's row (written once per batch): its last materialization is the last day's, of this run.
            [(entry.last_materialization.dagster_event.partition, entry.last_run_id == result.run_id,
              entry.last_materialization_record.storage_id == instance.fetch_materializations(entry.asset_key, limit=1).records[0].storage_id)
             for entry in entries],
            [e.dagster_event_type for e in instance.all_logs(result.run_id) if e.is_dagster_event],
        )
        instance.dispose()
    # The run's 20 planned materializations at launch, then each step's 10.
    assert batches == [7, 7, 6] + [7, 3] * 2
    one_by_one, batched = recorded["0"], recorded["7"]
    assert batched == one_by_one
    assert len(batched[0]) == 20 and batched[1] == [f"2013-03-{day:02d}" for day in range(1, 11)]
    assert batched[2] == [("2013-03-10", True, True)] * 2


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(),
          check_specs=[dg.AssetCheckSpec("has_rows", asset="checked")])
def checked():
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(check_name="has_rows", passed=True)


CHECKED_JOB = dg.Definitions(assets=[checked], jobs=[dg.define_asset_job("checked_days", [checked])]).resolve_job_def("checked_days")


def _check_rows(instance: dg.DagsterInstance) -> list[tuple]:
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

    table = AssetCheckExecutionsTable
    with instance.event_log_storage.index_connection() as conn:
        rows = conn.execute(sa.select(table.c.asset_key, table.c.check_name, table.c.partition, table.c.execution_status,
                                      table.c.evaluation_event)).fetchall()
    return sorted(((key, name, day or "", status, type(deserialize_value(event)).__name__) for key, name, day, status, event in rows))


def test_a_planned_partitioned_check_writes_the_rows_dagsters_own_storage_writes(tmp_path: Path, monkeypatch):
    # A run's planned materializations and checks come as one batch; Dagster's storage stores it event by event.
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    one_by_one = []
    store_each = EventLogStorage.store_event_batch
    monkeypatch.setattr(EventLogStorage, "store_event_batch",
                        lambda storage, events: one_by_one.append(type(storage).__name__) or store_each(storage, events))
    recorded = {}
    for name, config in (("pooled", instance_config_with_storage_in), ("plain", None)):
        home = tmp_path / name
        text = config(home) if config else f"storage:\n  sqlite:\n    base_dir: {home.resolve()}/storage\ntelemetry:\n  enabled: false\n"
        instance = _instance(home, text)
        result = CHECKED_JOB.execute_in_process(instance=instance, tags={ASSET_PARTITION_RANGE_START_TAG: "2013-04-01",
                                                                         ASSET_PARTITION_RANGE_END_TAG: "2013-04-05"})
        assert result.success
        planned = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, checked.key))
        recorded[name] = (_check_rows(instance), sorted(record.partition_key for record in planned),
                          [e.dagster_event_type for e in instance.all_logs(result.run_id) if e.is_dagster_event])
        instance.dispose()
    assert "SqliteEventLogStorage" in one_by_one and "PooledSqliteEventLogStorage" not in one_by_one
    assert recorded["pooled"] == recorded["plain"]
    planned = [row[2] for row in recorded["pooled"][0] if row[3] == "PLANNED"]
    assert planned == [f"2013-04-0{day}" for day in range(1, 6)]  # a row per planned day
    assert recorded["pooled"][1] == planned


def test_dagster_is_asked_whether_a_table_exists_once_per_table_it_has(tmp_path: Path, monkeypatch):
    asked = []
    has_table = SqliteEventLogStorage.has_table
    monkeypatch.setattr(SqliteEventLogStorage, "has_table",
                        lambda storage, name: asked.append(name) or has_table(storage, name))
    home = tmp_path / "home"
    instance = _instance(home, instance_config_with_storage_in(home))
    storage = instance.event_log_storage
    for day in range(1, 4):  # one run a day, each event stored alone (as a daily run's step events are)
        _run(instance, f"2013-03-{day:02d}", f"2013-03-{day:02d}")

    assert asked and len(asked) == len(set(asked))  # each table Dagster asked about: once, whatever the events
    assert storage.has_table("asset_check_executions") and storage.has_table("asset_event_tags")
    assert not storage.has_table("no_such_table") and not storage.has_table("no_such_table")
    assert asked.count("no_such_table") == 2  # a missing table is asked about again: a migration may add it
    instance.wipe()
    assert storage.has_table("asset_event_tags") and asked.count("asset_event_tags") == 2  # asked afresh after a wipe
    instance.dispose()
