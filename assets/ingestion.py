"""Layer 2, ingestion (ELT): land each source as delivered in the `raw` schema.

Raw tables keep every value as text, exactly as the source sent it, with load
metadata (`_partition_date`, `_row` arrival order, `_source`, `_batch_id` = the
Dagster run id, `_loaded_at`). A daily partition is replaced, never appended, so
re-materializing it is idempotent; a range of days is one run (single-run backfill).
A delivery whose shape breaks the contract fails before anything is written. Weather is only
loaded from the API of the platform's own source systems (`WeatherApiResource.verified_source_id`).
Every materialization carries Dagster's table metadata: the table's row count and its columns with
the types DuckDB stores (text here) and the contract's descriptions.
"""


import csv
import hashlib
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import sqlalchemy as sa

from assets import groups
from flightops.contracts import FLIGHTS, REFERENCE_CONTRACTS, WEATHER, Column, Contract
from flightops.partitions import DAILY, SINGLE_RUN, day_range, days
from flightops.resources import LandingZoneResource, SourceDatabaseResource, WarehouseResource, WeatherApiResource
from flightops.simulated_sources import landing
from flightops.validation import ContractViolation, check_columns, quote
from flightops.warehouse_connections import DUCKDB_POOL

GROUP = groups.INGESTION
# What every daily raw asset shares: prefix, group, day partitions as one run per range, the pool.
DAILY_RAW_ASSET = dict(key_prefix="raw", group_name=GROUP, partitions_def=DAILY, backfill_policy=SINGLE_RUN, pool=DUCKDB_POOL)
LOAD_COLUMNS = "_partition_date DATE, _row BIGINT, _source VARCHAR, _batch_id VARCHAR, _loaded_at TIMESTAMP"
# Materialization metadata of the landing-folder assets: which version of which file a run loaded,
# per slot (an export's day, a reference file's table). The landing sensor reads it from the event log.
FILE_VERSIONS = "file_versions"
# What the load columns of every raw table (and the lineage columns after them) hold.
LOAD_COLUMN_DESCRIPTIONS = {
    "_partition_date": "The day this row was loaded for (its partition; null for reference data).",
    "_row": "Arrival order within the delivery.",
    "_source": "Where the row came from: database table, file or API endpoint.",
    "_batch_id": "Dagster run id of the load.",
    "_loaded_at": "When the load ran.",
    "source_channel": "Channel that delivered the row: opdb, export, api or file.",
}


def table_metadata(con, table: str, contract: Contract, typed: bool, descriptions: dict[str, str] | None = None) -> dict:
    """Dagster's table metadata of a warehouse table, for the asset page's row count and columns.

    Types come from DuckDB's DESCRIBE (what is stored: text in raw, typed in clean), descriptions
    from the contract (else `descriptions`, else the load columns'); `typed` adds the contract's
    rules as column constraints (clean tables).
    """
    described = con.execute(f"DESCRIBE {table}").fetchall()  # name, type, null, key, default, extra
    contract_columns = {c.name: c for c in contract.columns}
    other = {**LOAD_COLUMN_DESCRIPTIONS, **(descriptions or {})}
    database = con.execute("SELECT current_database()").fetchone()[0]
    return {
        "dagster/table_name": f"{database}.{table}",
        "dagster/row_count": con.execute(f"SELECT count(*) FROM {table}").fetchone()[0],
        "dagster/column_schema": dg.TableSchema(
            columns=[_table_column(name, kind, contract_columns.get(name), typed, other.get(name)) for name, kind, *_ in described]
        ),
    }


def _table_column(name: str, kind: str, column: Column | None, typed: bool, description: str | None) -> dg.TableColumn:
    if column is None:
        return dg.TableColumn(name, kind, description=description)
    constraints = dg.TableColumnConstraints(nullable=not column.required, other=column.rules()[2:]) if typed else None
    return dg.TableColumn(name, kind, description=column.description, constraints=constraints)


def file_version(path: Path) -> str:
    """A landed file's version: the first 16 hex digits of its content's SHA-256.

    Content, not name + size + mtime: a copy or a touch changes the mtime without changing the
    data (a needless re-ingestion), and a same-size rewrite within the clock's resolution keeps it
    (a missed one). 64 bits tell redeliveries apart and keep a year-long run's per-day map small.
    """
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def _ensure_raw_table(con, table: str, contract: Contract) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    columns = ", ".join(f"{quote(c)} VARCHAR" for c in contract.column_names)
    con.execute(f"CREATE TABLE IF NOT EXISTS raw.{table} ({columns}, {LOAD_COLUMNS})")


def land(
    warehouse: WarehouseResource,
    table: str,
    contract: Contract,
    frame: pd.DataFrame,
    batch_id: str,
    window: tuple[date, date] | None,
) -> tuple[int, dict]:
    """Replace the window's rows (or the whole table) of raw.<table> with `frame` in one transaction;
    the rows written and the table's metadata after it."""
    frame = frame.astype("string")
    with warehouse.connect() as con:
        _ensure_raw_table(con, table, contract)
        con.register("_delivery", frame)
        con.execute("BEGIN TRANSACTION")
        if window is None:
            con.execute(f"DELETE FROM raw.{table}")
        else:
            con.execute(f"DELETE FROM raw.{table} WHERE _partition_date BETWEEN ? AND ?", list(window))
        con.execute(
            f"INSERT INTO raw.{table} BY NAME SELECT * EXCLUDE (_partition_date, _row), "
            "CAST(_partition_date AS DATE) AS _partition_date, CAST(_row AS BIGINT) AS _row, "
            "? AS _batch_id, current_timestamp AS _loaded_at FROM _delivery",
            [batch_id],
        )
        con.execute("COMMIT")
        con.unregister("_delivery")
        return len(frame), table_metadata(con, f"raw.{table}", contract, typed=False)


def _days_without_rows(frame: pd.DataFrame, first: date, last: date) -> list[str]:
    delivered = set(frame["_partition_date"]) if len(frame) else set()
    return [d.isoformat() for d in days(first, last) if d.isoformat() not in delivered]


def _require_every_day(frame: pd.DataFrame, first: date, last: date, where: str) -> None:
    """Every day of 2013 has flights: an empty day means the source has not delivered it yet."""
    missing = _days_without_rows(frame, first, last)
    if missing:
        raise dg.Failure(
            f"{where} delivered no rows for {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}. "
            "Has the source replayed that far (`flightops sources status`)? "
            "Replay it (`flightops sources replay --until DAY`), then re-run."
        )


def _metadata(rows: int, first: date | None = None, last: date | None = None, **extra) -> dict:
    meta = {"rows_loaded": rows, **extra}
    if first is not None:
        meta["days"] = (last - first).days + 1
        meta["first_day"] = first.isoformat()
        meta["last_day"] = last.isoformat()
    return meta


@dg.asset(
    **DAILY_RAW_ASSET,
    kinds={"sql", "duckdb"},
    description="Flights of the operational database's carriers, as stored there (all row versions).",
)
def flights_opdb(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source_db: SourceDatabaseResource) -> dg.MaterializeResult:
    first, last = day_range(context)
    engine = sa.create_engine(source_db.resolved_url)
    try:
        with engine.connect() as connection:
            frame = pd.read_sql(
                sa.text("SELECT * FROM flights WHERE flight_date BETWEEN :first AND :last ORDER BY row_id"),
                connection,
                params={"first": first.isoformat(), "last": last.isoformat()},
            )
    except sa.exc.SQLAlchemyError as exc:
        raise dg.Failure(
            f"Reading table flights from the operational database {engine.url!r} for {first}..{last} failed: {exc}. "
            "Check FLIGHTOPS_SOURCE_DB_URL and that the source exists (`flightops sources replay`)."
        ) from exc
    finally:
        engine.dispose()
    check_columns(FLIGHTS, [c for c in frame.columns if c != "row_id"], f"table flights of {engine.url!r}")
    frame = frame.rename(columns={"row_id": "_row"})
    frame["_partition_date"] = frame["flight_date"].astype("string")
    frame["_source"] = f"opdb:{engine.url.render_as_string(hide_password=True)}#flights"
    _require_every_day(frame, first, last, "The operational database")
    rows, table = land(warehouse, "flights_opdb", FLIGHTS, frame, context.run_id, (first, last))
    return dg.MaterializeResult(metadata=_metadata(rows, first, last, source=str(engine.url), **table))


def check_export(path: Path, contract: Contract) -> tuple[str, ...]:
    """A file's shape before its rows are read: complete last line, the contract's columns."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                raise ContractViolation(
                    f"Export file {path} is truncated: its last line is incomplete ({size} bytes, no final newline). "
                    "Ask the source to deliver the file again (or `flightops sources replay` it), then re-run the partition."
                )
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    check_columns(contract, header, f"export file {path}")
    return tuple(header)


def read_exports(paths: list[Path], contract: Contract) -> pd.DataFrame:
    """Files of one contract, checked one by one, then read together (every value as text, file order kept)."""
    # Files are read together per column order (one scan each; a per-file union by name is ~5x slower).
    by_header: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        by_header.setdefault(check_export(path, contract), []).append(str(path))
    frame = pd.concat(
        [
            duckdb.sql(
                "SELECT * EXCLUDE (filename), filename AS _file, "
                "CAST(row_number() OVER (PARTITION BY filename) - 1 AS BIGINT) AS _row "
                "FROM read_csv($paths, all_varchar = true, header = true, filename = true, nullstr = '')",
                params={"paths": group},
            ).df()
            for group in by_header.values()
        ],
        ignore_index=True,
    )
    empty = frame[contract.column_names].isna().all(axis=1)
    if empty.any():
        broken = sorted(set(frame.loc[empty, "_file"]))
        raise ContractViolation(f"Export file(s) {', '.join(broken)} contain empty lines; malformed. Ask the source to redeliver.")
    return frame


@dg.asset(
    **DAILY_RAW_ASSET,
    kinds={"csv", "duckdb"},
    description="Flights of the regional carriers, from the daily CSV exports in the landing folder.",
)
def flights_exports(context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing_zone: LandingZoneResource) -> dg.MaterializeResult:
    first, last = day_range(context)
    paths = {landing.export_path(landing_zone.root, day): day for day in days(first, last)}
    for path, day in paths.items():
        if not path.exists():
            raise dg.Failure(
                f"No export file for {day}: expected {path}. Has the source delivered it "
                "(`flightops sources status`)? Replay that day, then re-run the partition."
            )
    # Hashed before reading: a file redelivered meanwhile is recorded as the older version, so the
    # sensor ingests it again (never the reverse, which would skip the new delivery). Per day,
    # because every partition of a range run carries this same run-level metadata.
    versions = {day.isoformat(): file_version(path) for path, day in paths.items()}
    frame = read_exports(list(paths), FLIGHTS)
    day_of_file = {str(path): day.isoformat() for path, day in paths.items()}
    frame["_partition_date"] = frame["_file"].map(day_of_file)
    frame["_source"] = "file:" + frame.pop("_file")
    rows, table = land(warehouse, "flights_exports", FLIGHTS, frame, context.run_id, (first, last))
    return dg.MaterializeResult(
        metadata=_metadata(rows, first, last, files=len(paths), **{FILE_VERSIONS: dg.MetadataValue.json(versions)}, **table)
    )


@dg.asset(
    **DAILY_RAW_ASSET,
    kinds={"api", "duckdb"},
    description="Hourly weather observations from the weather HTTP API (paged, retried with backoff), only "
    "from the API of this platform's own source systems: one serving another state folder is refused.",
)
def weather(context: dg.AssetExecutionContext, warehouse: WarehouseResource, weather_api: WeatherApiResource) -> dg.MaterializeResult:
    first, last = day_range(context)
    source_id = weather_api.verified_source_id()
    frame = pd.DataFrame(weather_api.observations(first, last))
    if len(frame):
        check_columns(WEATHER, [*frame.columns, "obs_date"], f"{weather_api.base_url}/v1/observations")
        # The API reports the local date as year/month/day; the contract's partition column is that date.
        frame["obs_date"] = [
            f"{int(y):04d}-{int(m):02d}-{int(d):02d}" if pd.notna(y) and pd.notna(m) and pd.notna(d) else None
            for y, m, d in zip(pd.to_numeric(frame["year"], errors="coerce"), pd.to_numeric(frame["month"], errors="coerce"), pd.to_numeric(frame["day"], errors="coerce"))
        ]
        frame["_partition_date"] = frame["obs_date"].fillna(first.isoformat())
    else:
        frame = pd.DataFrame(columns=[*WEATHER.column_names, "_partition_date"])
    frame["_row"] = range(len(frame))
    frame["_source"] = f"api:{weather_api.base_url}/v1/observations"
    # Observations can be missing for a whole day (the data set has none for 2013-12-31):
    # not an error, but visible in the metadata and the log.
    quiet_days = _days_without_rows(frame, first, last)
    if quiet_days:
        context.log.warning(f"The weather API returned no observations for {', '.join(quiet_days)}.")
    landed, table = land(warehouse, "weather", WEATHER, frame, context.run_id, (first, last))
    return dg.MaterializeResult(
        metadata=_metadata(
            landed, first, last, source=weather_api.base_url, source_id=source_id,
            days_without_observations=len(quiet_days), **table,
        )
    )


def _reference_asset(contract: Contract) -> dg.AssetsDefinition:
    @dg.asset(
        name=contract.source,
        key_prefix="raw",
        group_name=GROUP,
        pool=DUCKDB_POOL,
        kinds={"csv", "duckdb"},
        description=f"{contract.description} From landing/reference/{contract.source}.csv.",
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing_zone: LandingZoneResource) -> dg.MaterializeResult:
        path = landing.reference_path(landing_zone.root, contract.source)
        if not path.exists():
            raise dg.Failure(f"Reference file {path} is missing. Run `flightops sources replay` to deliver it, then re-run.")
        versions = {contract.source: file_version(path)}  # before reading, as for the exports
        frame = read_exports([path], contract)
        frame["_partition_date"] = None
        frame["_source"] = "file:" + frame.pop("_file")
        rows, table = land(warehouse, contract.source, contract, frame, context.run_id, None)
        return dg.MaterializeResult(
            metadata=_metadata(rows, file=str(path), **{FILE_VERSIONS: dg.MetadataValue.json(versions)}, **table)
        )

    return _asset


reference_assets = [_reference_asset(c) for c in REFERENCE_CONTRACTS]
raw_assets = [flights_opdb, flights_exports, weather, *reference_assets]
