"""The embedded default's Dagster storage: Dagster's SQLite storage, its event log's connections reused.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine for every connection it opens and
disposes of it afterwards, so every event pays for a new engine, a new SQLite connection and a
statement compile its engine never reuses. A run records one materialization per asset and day, two
databases written each (the run's shard and the cross-run index), so a year's catch-up stores
thousands: with the connections reused, half a year's data layers took 32.6 s instead of 49.1 s, and
the Python steps' event recording 7.3 s instead of 18.0 s. `PooledSqliteEventLogStorage` keeps one
engine per database file with its connections pooled, for the most recently used files only.

It stores the batches Dagster hands over (`DAGSTER_EVENT_BATCH_SIZE`) in one transaction per database
(3.6 s of recording instead of 7.7 for the half year), each event serialized once and the batch's rows
inserted by one statement per database instead of one per event (the year's run shape with empty steps:
2.7-2.8 s of recording instead of 4.2-4.8), writing each asset's row once per batch, from its last
event (a 3-asset x 365-day run: 1.36 / 1.26 s instead of 2.49 / 2.26). A planned check's rows
(one per planned day) share one serialized event instead of serializing it again for each day: a
year's run starts its first step after about 1 s instead of 6. The planned checks go in the batch of
the run's planned materializations, which they used to send back event by event (a day's run: its
first step after 0.42-0.46 s instead of 0.73-1.0). Whether the index has a table is asked of Dagster
once per table (it builds a new engine for each question, 200 of them in a day's run).

Same files, same schema, same SQL: Dagster's own `storage: sqlite:` can open the folder before or after,
and processes using either can share it. SQLite in WAL mode (how Dagster creates these databases) lets
one process write while others read; a pooled connection holds no lock between uses (SQLAlchemy rolls
back on return). `dagster.yaml` names `PooledSqliteStorage` under `storage: custom:`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from dagster._core.events import ASSET_EVENTS, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import serialize_value

PLANNED_CHECK = DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
# What `store_event_batch` stores in one transaction per database: Dagster batches a run's planned
# materializations and checks together, a step's per-partition materializations.
BATCHED_EVENTS = frozenset(ASSET_EVENTS) | {PLANNED_CHECK}

# Database files (a run's shard, the index) whose engine and connections stay open: the index and the
# shards of the few runs a process writes or reads at a time. Three file handles each (db, -wal, -shm).
OPEN_DATABASES = 16


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one engine per database file, kept for the OPEN_DATABASES most recently used."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        self._tables_present: set[str] = set()
        super().__init__(base_dir, inst_data)

    def has_table(self, table_name: str) -> bool:
        """Dagster's answer, remembered once the index has the table (a migration only ever adds tables).

        Dagster asks before storing each asset event's tags and each check's evaluation, and builds a
        new engine and connection to the index for every question: 200 questions and 0.34 s of a day's
        run. The question cannot go through the pooled connection: Dagster asks it while it holds that
        connection's lock.
        """
        if table_name not in self._tables_present and super().has_table(table_name):
            self._tables_present.add(table_name)
        return table_name in self._tables_present

    def _engine(self, shard: str) -> sa.Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = sa.create_engine(self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        self._engines[shard] = engine  # most recently used last
        while len(self._engines) > OPEN_DATABASES:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        # As Dagster's `_connect` (one connection at a time per storage, the database created on first
        # use), with the engine kept instead of created and disposed of.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """The rows `store_event` writes for each event, in one transaction per database.

        Dagster hands a batch over (`DAGSTER_EVENT_BATCH_SIZE`, set in .env) for a run's planned
        materializations and planned checks, and a step's per-partition materializations: one commit
        to the run's shard and one to the cross-run index instead of two per event. A batch holding any
        other kind of event (Dagster sends none today) is stored event by event. As for a single event,
        the two files are not written atomically: a failed index write leaves the run's rows, and
        Dagster then stores the batch again event by event.
        """
        if not events or any(not event.is_dagster_event or event.dagster_event_type not in BATCHED_EVENTS
                             or event.run_id != events[0].run_id for event in events):
            super().store_event_batch(events)
            return
        rows = [self._event_to_row(event) for event in events]  # each event serialized once, for both files
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)  # one statement, executemany
        with self.index_transaction() as conn:
            # Multi-row INSERT ... RETURNING (SQLAlchemy's insertmanyvalues), the ids in the rows' order.
            inserted = conn.execute(SqlEventLogStorageTable.insert().returning(
                SqlEventLogStorageTable.c.id, sort_by_parameter_order=True), rows)
            stored = list(zip(events, (row.id for row in inserted)))
            assets = [(event, event_id) for event, event_id in stored if event.dagster_event_type in ASSET_EVENTS]
            self._store_asset_event_tags(conn, [event for event, _ in assets], [event_id for _, event_id in assets])
            for event, event_id in _last_of_each_kind(assets):
                self._store_asset_event(conn, event, event_id)
            checks = [row for event, event_id in stored if event.dagster_event_type == PLANNED_CHECK
                      for row in self._planned_check_rows(event, event_id)]
            if checks:
                conn.execute(AssetCheckExecutionsTable.insert(), checks)

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), self._planned_check_rows(event, event_id))

    def _planned_check_rows(self, event: EventLogEntry, event_id: int | None) -> list[dict]:
        """Dagster's rows for a planned check, one per planned day, with the event serialized once.

        Dagster serializes the whole event again for each day's row: a year's run plans 364 days of each
        of the platform's partitioned checks, and that took 5.5 of the 6.1 s before its first step.
        """
        planned = event.dagster_event.event_specific_data
        days = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = dict(asset_key=planned.asset_key.to_string(), check_name=planned.check_name, run_id=event.run_id,
                   execution_status=AssetCheckExecutionRecordStatus.PLANNED.value, evaluation_event=serialize_value(event),
                   evaluation_event_timestamp=self._event_insert_timestamp(event), evaluation_event_storage_id=event_id)
        return [{**row, "partition": day} for day in days]

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_all()  # the run shards' files are deleted: no connection may keep one open
        self._tables_present.clear()
        super().wipe()

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


def _last_of_each_kind(stored: Sequence[tuple[EventLogEntry, int]]) -> list[tuple[EventLogEntry, int]]:
    """The events (with their ids) that are the last of their asset and kind in the batch, in the batch's order.

    What `_store_asset_event` writes for an event (the asset's row: its last materialization, its last run,
    the time of its last event) is overwritten by the next event of the same asset and kind, so the batch leaves the
    row as these alone do: a step's 364 per-day materializations of an asset write it once, not 364 times
    (each a serialized record, and an insert that fails before the update).
    """
    last = {(event.dagster_event.asset_key, event.dagster_event_type): index for index, (event, _) in enumerate(stored)}
    return [stored[index] for index in sorted(last.values())]


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (`storage: sqlite:`, same folders) with `PooledSqliteEventLogStorage` as its event log."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)  # Dagster's version names its own class
