"""Layer 2, ingestion (ELT): land each source as delivered in the `raw` schema.

Raw tables keep every value as text, exactly as the source sent it, with load
metadata (`_partition_date`, `_row` arrival order, `_source`, `_batch_id` = the
Dagster run id, `_loaded_at`). A daily partition is replaced, never appended, so
re-materializing it is idempotent; a range of days is one run (single-run backfill).
A delivery is staged in DuckDB piece by piece (a day's file, 100k database rows) before it replaces
anything, so a long range never has to fit in memory. A delivery whose shape breaks the contract
fails before anything is written, and so does a redelivery much smaller than the rows it would
replace, unless the run confirms it (`RawLoadConfig`).
An export line with the wrong number of values is loaded for validation to quarantine. Weather is only
loaded from the API of the platform's own source systems (`WeatherApiResource.verified_source_id`).
Every materialization carries Dagster's table metadata: the table's row count and its columns with
the types DuckDB stores (text here) and the contract's descriptions; of a range run, the columns are on
its last day's only, and each day's source versions on that day's (flightops/partitions.py).
"""


import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from assets import groups
from flightops.contracts import FLIGHTS, REFERENCE_CONTRACTS, WEATHER, Column, Contract
from flightops.partitions import DAILY, SINGLE_RUN, day_range, days, once_per_range, record_per_day
from flightops.resources import LandingZoneResource, SourceDatabaseResource, WarehouseResource, WeatherApiResource
from flightops.simulated_sources import landing
from flightops.source_versions import OPDB_VERSIONS, day_versions
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
# A redelivery with fewer than this share of the rows already loaded for its day (a reference file:
# for its table) from the same channel is refused unless the run confirms it. The sources never
# shrink a day: files are redelivered identical, the operational database only appends row versions,
# the API serves the same observations. A correction that withdraws a few rows (duplicates sent by
# mistake) stays far above half; an empty or cut delivery (a header-only file, `{"data": []}`, a
# lost page) falls far below it. A day short of weather hours at one airport is hourly_coverage's.
MIN_REDELIVERED_SHARE = 0.5
# A delivery is staged in DuckDB under this temporary name (`stage`), the operational database read
# this many rows at a time: a step's memory stays bounded however long the range.
STAGED = "_delivery"
OPDB_READ_ROWS = 100_000
# Smaller pieces (a day's export file, about 270 rows) are gathered up to this many rows per insert. The
# year's exports step: 4.6-4.8 s with an insert a day, 3.0 s gathered to 5,000 rows (peak RSS 486 MB
# against 439), 2.8 s gathered to 100,000 (683 MB).
STAGE_GATHER_ROWS = 5_000


class RawLoadConfig(dg.Config):
    """Run config of every raw asset (launchpad: ops: raw__<asset>: config)."""

    accept_smaller_delivery: bool = Field(
        default=False,
        description="Load a delivery even when it has fewer than half the rows already loaded for its day "
        "(or table): set it only when the source really has fewer rows now.",
    )


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


def stage(con, chunks: Iterable[pd.DataFrame]) -> int:
    """Stage a delivery, read in pieces, as the temporary table STAGED (every value as text); its rows.

    DuckDB holds it, not pandas: past the warehouse's memory limit it spills to disk, so a long
    range's delivery never has to fit in memory at once. Nothing in the warehouse changes yet.
    """
    con.execute(f"DROP TABLE IF EXISTS {STAGED}")
    rows, created = 0, False
    for chunk in gathered(chunks, STAGE_GATHER_ROWS):
        con.register("_chunk", chunk.astype("string"))
        con.execute(f"INSERT INTO {STAGED} BY NAME SELECT * FROM _chunk" if created else
                    f"CREATE TEMP TABLE {STAGED} AS SELECT * FROM _chunk")
        con.unregister("_chunk")
        rows, created = rows + len(chunk), True
    if not created:
        raise ValueError("stage() needs at least one piece (an empty frame with the delivery's columns for an empty delivery).")
    return rows


def gathered(chunks: Iterable[pd.DataFrame], min_rows: int) -> Iterator[pd.DataFrame]:
    """The pieces in order, consecutive ones concatenated until they hold at least `min_rows` (the last
    may hold fewer). Each insert into DuckDB has a fixed cost: a year of daily export files (about 270
    rows each) paid it 364 times."""
    pending: list[pd.DataFrame] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= min_rows:
            yield pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
            pending, held = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)


def land(
    context: dg.AssetExecutionContext,
    con,
    table: str,
    contract: Contract,
    window: tuple[date, date] | None,
    sources: dict[str | None, str],
    config: RawLoadConfig,
) -> tuple[int, dict]:
    """Replace the window's rows (or the whole table) of raw.<table> with the staged delivery in one
    transaction; the rows written and the table's metadata after it.

    `sources` names what delivered each day (None: the whole table), for the message refusing a
    smaller redelivery: refused before anything is deleted, so the loaded rows stay.
    """
    _ensure_raw_table(con, table, contract)
    smaller = _smaller_redeliveries(con, table, window)
    if smaller and not config.accept_smaller_delivery:
        raise dg.Failure(_smaller_redelivery_message(context, table, smaller, sources))
    for day, loaded, delivered in smaller:
        context.log.warning(
            f"accept_smaller_delivery: {day or 'the table'} of raw.{table} replaced by {delivered} row(s) "
            f"from {sources[day]} ({loaded} were loaded)."
        )
    con.execute("BEGIN TRANSACTION")
    if window is None:
        con.execute(f"DELETE FROM raw.{table}")
    else:
        con.execute(f"DELETE FROM raw.{table} WHERE _partition_date BETWEEN ? AND ?", list(window))
    con.execute(
        f"INSERT INTO raw.{table} BY NAME SELECT * EXCLUDE (_partition_date, _row), "
        "CAST(_partition_date AS DATE) AS _partition_date, CAST(_row AS BIGINT) AS _row, "
        f"? AS _batch_id, current_timestamp AS _loaded_at FROM {STAGED}",
        [context.run_id],
    )
    con.execute("COMMIT")
    (rows,) = con.execute(f"SELECT count(*) FROM {STAGED}").fetchone()
    con.execute(f"DROP TABLE {STAGED}")
    metadata = table_metadata(con, f"raw.{table}", contract, typed=False)
    return rows, {**metadata, "smaller_deliveries_accepted": len(smaller)}


def _smaller_redeliveries(con, table: str, window: tuple[date, date] | None) -> list[tuple[str | None, int, int]]:
    """(day, rows loaded, rows delivered) of each day (None: the table) whose staged delivery has fewer
    than MIN_REDELIVERED_SHARE of the rows raw.<table> holds for it."""
    if window is None:
        loaded = {None: con.execute(f"SELECT count(*) FROM raw.{table}").fetchall()[0][0]}
        delivered = {None: con.execute(f"SELECT count(*) FROM {STAGED}").fetchall()[0][0]}
    else:
        loaded = dict(con.execute(
            f"SELECT strftime(_partition_date, '%Y-%m-%d'), count(*) FROM raw.{table} "
            "WHERE _partition_date BETWEEN ? AND ? GROUP BY 1 ORDER BY 1",
            list(window),
        ).fetchall())
        delivered = dict(con.execute(f"SELECT _partition_date, count(*) FROM {STAGED} GROUP BY 1").fetchall())
    return [
        (day, rows, delivered.get(day, 0)) for day, rows in loaded.items() if delivered.get(day, 0) < rows * MIN_REDELIVERED_SHARE
    ]


def _smaller_redelivery_message(context: dg.AssetExecutionContext, table: str, smaller: list, sources: dict[str | None, str]) -> str:
    shrunk = "; ".join(
        f"{day or 'the table'}: {sources[day]} delivered {delivered} row(s) where {loaded} are loaded" for day, loaded, delivered in smaller
    )
    return (
        f"Refused a smaller redelivery into raw.{table} (run {context.run_id}): {shrunk}. A redelivery with fewer than "
        f"{MIN_REDELIVERED_SHARE:.0%} of the loaded rows is taken for a broken one (an empty or cut file, an empty API answer); "
        "nothing was written and the loaded rows stay. Check the source (`flightops sources status`), have it deliver "
        "again, then re-run the partition. If it really has fewer rows now, re-run with "
        "`flightops run --from DAY --until DAY --accept-smaller-delivery`, or in the launchpad with the run config "
        f"ops: {{{context.op_def.name}: {{config: {{accept_smaller_delivery: true}}}}}}."
    )


def _days_without_rows(con, first: date, last: date) -> list[str]:
    """The days of first..last the staged delivery has no row for."""
    delivered = {day for (day,) in con.execute(f"SELECT DISTINCT _partition_date FROM {STAGED}").fetchall()}
    return [d.isoformat() for d in days(first, last) if d.isoformat() not in delivered]


def _require_every_day(con, first: date, last: date, where: str) -> None:
    """Every day of 2013 has flights: an empty day means the source has not delivered it yet."""
    missing = _days_without_rows(con, first, last)
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
def flights_opdb(
    context: dg.AssetExecutionContext, config: RawLoadConfig, warehouse: WarehouseResource, source_db: SourceDatabaseResource
) -> dg.MaterializeResult:
    first, last = day_range(context)
    engine = sa.create_engine(source_db.resolved_url)
    where = f"table flights of {engine.url!r}"
    source = f"opdb:{engine.url.render_as_string(hide_password=True)}#flights"

    def pieces(chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            chunk = chunk.rename(columns={"row_id": "_row"})
            yield chunk.assign(_partition_date=chunk["flight_date"], _source=source)

    with warehouse.connect() as con:
        try:
            with engine.connect().execution_options(stream_results=True) as connection:  # a server-side cursor where there is one
                # Before the rows, in the same transaction: a correction landing in between makes the
                # recorded version older than the rows, so the corrections sensor reloads (never the reverse).
                versions = day_versions(connection, first, last)
                delivered = list(connection.execute(sa.text("SELECT * FROM flights LIMIT 0")).keys())
                check_columns(FLIGHTS, [c for c in delivered if c != "row_id"], where)
                # Each value as the database writes it as text (517, not pandas' 517.0 for a column with
                # nulls), converted by the database: half the time of typed values turned into text in pandas.
                quoted = connection.dialect.identifier_preparer.quote
                as_text = ", ".join(f"CAST({quoted(c)} AS TEXT) AS {quoted(c)}" for c in FLIGHTS.column_names)
                stage(con, pieces(pd.read_sql(
                    sa.text(f"SELECT row_id, {as_text} FROM flights WHERE flight_date BETWEEN :first AND :last ORDER BY row_id"),
                    connection,
                    params={"first": first.isoformat(), "last": last.isoformat()},
                    chunksize=OPDB_READ_ROWS,
                )))
        except sa.exc.SQLAlchemyError as exc:
            raise dg.Failure(
                f"Reading table flights from the operational database {engine.url!r} for {first}..{last} failed: {exc}. "
                "Check FLIGHTOPS_SOURCE_DB_URL and that the source exists (`flightops sources replay`)."
            ) from exc
        finally:
            engine.dispose()
        _require_every_day(con, first, last, "The operational database")
        sources = {day.isoformat(): where for day in days(first, last)}
        rows, table = land(context, con, "flights_opdb", FLIGHTS, (first, last), sources, config)
    record_per_day(context, OPDB_VERSIONS, versions)
    return dg.MaterializeResult(metadata=_metadata(rows, first, last, source=str(engine.url), **once_per_range(context, table)))


@dataclass(frozen=True)
class ExportFile:
    """A CSV file as delivered: its header, and each data line's values by header position."""

    path: Path
    header: tuple[str, ...]
    rows: list[list[str]]
    misshapen: list[int]  # lines with the wrong number of values, laid out for validation to quarantine


def check_export(path: Path, contract: Contract) -> ExportFile:
    """Read a file and check its shape: complete last line, UTF-8, the contract's columns once each,
    every line split into values. Header names are read as validation reads values: trimmed (and
    without the byte-order mark some editors write first)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        raise ContractViolation(
            f"Export file {path} is truncated: its last line is incomplete ({len(data)} bytes, no final newline). "
            "Ask the source to deliver the file again (or `flightops sources replay` it), then re-run the partition."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ContractViolation(
            f"Export file {path} is not UTF-8: line {line} has the byte(s) "
            f"{data[exc.start:exc.end].hex(' ')} ({exc.reason}), a value written in another encoding (latin-1?). "
            "Ask the source to export the file as UTF-8 (or convert it: `iconv -f latin1 -t utf-8`), then re-run the partition."
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = tuple(name.strip() for name in next(reader, []))
        check_columns(contract, list(header), f"export file {path}")
        rows, misshapen, line = [], [], reader.line_num
        for values in reader:
            first_line, line = line + 1, reader.line_num
            if len(values) != len(header):
                _require_quarantinable(path, contract, header, first_line, line, len(values))
                misshapen.append(first_line)
                values = _by_position(values, len(header))
            rows.append(values)
    except csv.Error as exc:
        raise ContractViolation(
            f"Export file {path} cannot be read at line {reader.line_num}: {exc}. "
            "Ask the source to deliver the file again, then re-run the partition."
        ) from exc
    return ExportFile(path, header, rows, misshapen)


def _by_position(values: list[str], columns: int) -> list[str]:
    """A misshapen line's values on `columns` columns: missing ones empty, surplus ones comma-joined into the last."""
    if len(values) < columns:
        return [*values, *[""] * (columns - len(values))]
    return [*values[: columns - 1], ",".join(values[columns - 1 :])]


def _require_quarantinable(path: Path, contract: Contract, header: tuple[str, ...], first_line: int, line: int, count: int) -> None:
    """Fail unless validation surely quarantines a misshapen line as `_by_position` lays it out.

    The last column is then empty (too few values) or holds a comma (too many), which breaks its
    contract when it is required and typed (no number, date or timestamp has a comma). A record
    spanning lines has an unclosed quote: what follows it cannot be told apart from it.
    """
    last = contract.column(header[-1])
    if line == first_line and last.required and last.type != "VARCHAR":
        return
    where = f"line {first_line}" if line == first_line else f"lines {first_line}-{line} (an unclosed quote at line {first_line}?)"
    raise ContractViolation(
        f"Export file {path} cannot be split into values at {where}: {count} value(s) for the {len(header)} columns "
        f"of its header. Ask the source to deliver the file again with {len(header)} values on every line, then re-run."
    )


def read_export(path: Path, contract: Contract) -> tuple[pd.DataFrame, list[str]]:
    """A file of one contract, checked and read (every value as text, `_row` the line order, `_source`
    the file), and its misshapen lines (file:line), loaded for validation to quarantine."""
    export = check_export(path, contract)
    frame = pd.DataFrame(export.rows, columns=list(export.header), dtype=object).replace("", None)
    return frame.assign(_row=range(len(frame)), _source=f"file:{path}"), [f"{path}:{line}" for line in export.misshapen]


def _warn_misshapen(context: dg.AssetExecutionContext, misshapen: list[str]) -> None:
    if misshapen:
        context.log.warning(
            f"{len(misshapen)} line(s) with the wrong number of values, loaded for quarantine: "
            f"{', '.join(misshapen[:20])}{' ...' if len(misshapen) > 20 else ''}."
        )


@dg.asset(
    **DAILY_RAW_ASSET,
    kinds={"csv", "duckdb"},
    description="Flights of the regional carriers, from the daily CSV exports in the landing folder.",
)
def flights_exports(
    context: dg.AssetExecutionContext, config: RawLoadConfig, warehouse: WarehouseResource, landing_zone: LandingZoneResource
) -> dg.MaterializeResult:
    first, last = day_range(context)
    paths = {landing.export_path(landing_zone.root, day): day for day in days(first, last)}
    for path, day in paths.items():
        if not path.exists():
            raise dg.Failure(
                f"No export file for {day}: expected {path}. Has the source delivered it "
                "(`flightops sources status`)? Replay that day, then re-run the partition."
            )
    # Hashed before reading: a file redelivered meanwhile is recorded as the older version, so the
    # sensor ingests it again (never the reverse, which would skip the new delivery). Each day's on its
    # own day's materialization.
    versions = {day.isoformat(): file_version(path) for path, day in paths.items()}
    misshapen: list[str] = []

    def files() -> Iterator[pd.DataFrame]:  # one day's file at a time
        for path, day in paths.items():
            frame, lines = read_export(path, FLIGHTS)
            misshapen.extend(lines)
            yield frame.assign(_partition_date=day.isoformat())

    sources = {day.isoformat(): f"export file {path}" for path, day in paths.items()}
    with warehouse.connect() as con:
        stage(con, files())
        _warn_misshapen(context, misshapen)
        rows, table = land(context, con, "flights_exports", FLIGHTS, (first, last), sources, config)
    record_per_day(context, FILE_VERSIONS, versions)
    return dg.MaterializeResult(
        metadata=_metadata(rows, first, last, files=len(paths), misshapen_lines=len(misshapen), **once_per_range(context, table))
    )


@dg.asset(
    **DAILY_RAW_ASSET,
    kinds={"api", "duckdb"},
    description="Hourly weather observations from the weather HTTP API (paged, retried with backoff), only "
    "from the API of this platform's own source systems: one serving another state folder is refused.",
)
def weather(
    context: dg.AssetExecutionContext, config: RawLoadConfig, warehouse: WarehouseResource, weather_api: WeatherApiResource
) -> dg.MaterializeResult:
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
        # An observation of a day outside the request (or of no day) is kept in the run's first day,
        # where validation quarantines it as outside its partition: never written into another day.
        requested = {d.isoformat() for d in days(first, last)}
        frame["_partition_date"] = frame["obs_date"].where(frame["obs_date"].isin(requested), first.isoformat())
    else:
        frame = pd.DataFrame(columns=[*WEATHER.column_names, "_partition_date"])
    frame["_row"] = range(len(frame))
    frame["_source"] = f"api:{weather_api.base_url}/v1/observations"
    sources = {day.isoformat(): f"the weather API {weather_api.base_url}/v1/observations" for day in days(first, last)}
    with warehouse.connect() as con:
        stage(con, [frame])
        # Observations can be missing for a whole day (the data set has none for 2013-12-31):
        # not an error, but visible in the metadata and the log.
        quiet_days = _days_without_rows(con, first, last)
        if quiet_days:
            context.log.warning(f"The weather API returned no observations for {', '.join(quiet_days)}.")
        landed, table = land(context, con, "weather", WEATHER, (first, last), sources, config)
    return dg.MaterializeResult(
        metadata=_metadata(
            landed, first, last, source=weather_api.base_url, source_id=source_id,
            days_without_observations=len(quiet_days), **once_per_range(context, table),
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
    def _asset(
        context: dg.AssetExecutionContext, config: RawLoadConfig, warehouse: WarehouseResource, landing_zone: LandingZoneResource
    ) -> dg.MaterializeResult:
        path = landing.reference_path(landing_zone.root, contract.source)
        if not path.exists():
            raise dg.Failure(f"Reference file {path} is missing. Run `flightops sources replay` to deliver it, then re-run.")
        versions = {contract.source: file_version(path)}  # before reading, as for the exports
        frame, misshapen = read_export(path, contract)
        _warn_misshapen(context, misshapen)
        with warehouse.connect() as con:
            stage(con, [frame.assign(_partition_date=None)])
            rows, table = land(context, con, contract.source, contract, None, {None: f"reference file {path}"}, config)
        return dg.MaterializeResult(
            metadata=_metadata(
                rows, file=str(path), misshapen_lines=len(misshapen), **{FILE_VERSIONS: dg.MetadataValue.json(versions)}, **table
            )
        )

    return _asset


reference_assets = [_reference_asset(c) for c in REFERENCE_CONTRACTS]
raw_assets = [flights_opdb, flights_exports, weather, *reference_assets]
