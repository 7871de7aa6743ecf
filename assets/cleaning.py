"""Layer 3, validation and cleaning: raw text -> typed `clean` tables + `quarantine` tables.

Each source's contract (flightops/contracts.py) decides. Per partition:
rows in = rows clean + rows quarantined + duplicates removed; the counts go to the
materialization's metadata and to `audit.load_ledger`, and an asset check asserts the
equation against the tables. Duplicates are removed by key, the newest `updated_at`
winning (superseded versions stay in `raw`). Broken rows go to `quarantine.<source>`
with every reason and their original values. Nulls follow explicit rules: a flight
without departure time is cancelled (`is_cancelled`), not imputed; one that departed
without an arrival delay is diverted (`is_diverted`); optional weather fields stay null.
"""


from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import dagster as dg
import sqlalchemy as sa

from assets import groups
from flightops.contracts import FLIGHTS, REFERENCE_CONTRACTS, WEATHER, Contract
from flightops.partitions import DAILY, SINGLE_RUN, day_range
from flightops.resources import SourceDatabaseResource, WarehouseResource
from flightops.validation import Outcome, quote, validate
from flightops.warehouse_connections import DUCKDB_POOL

GROUP = groups.VALIDATION
# Above this share of quarantined rows in a run, the quarantine-rate check fails.
MAX_QUARANTINE_RATE = 0.02

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS audit.load_ledger (
    asset VARCHAR, partition_date DATE, batch_id VARCHAR, rows_in BIGINT, rows_clean BIGINT,
    rows_quarantined BIGINT, duplicates_removed BIGINT, loaded_at TIMESTAMP)
"""


@dataclass(frozen=True)
class CleanTable:
    """How one source goes from raw to clean: its contract, raw tables and derived columns."""

    contract: Contract
    raw_tables: dict[str, str]  # raw table -> value of the `source_channel` column
    derived: str = ""  # extra SELECT expressions computed from the typed columns
    # Checked for freshness against the operational database (needs the `source_db` resource).
    fresh_against_source_db: bool = False

    @property
    def name(self) -> str:
        return self.contract.source

    @property
    def daily(self) -> bool:
        return self.contract.partition_column is not None


FLIGHTS_TABLE = CleanTable(
    FLIGHTS,
    {"flights_opdb": "opdb", "flights_exports": "export"},
    derived="dep_time IS NULL AS is_cancelled, dep_time IS NOT NULL AND arr_delay IS NULL AS is_diverted",
    fresh_against_source_db=True,
)
WEATHER_TABLE = CleanTable(WEATHER, {"weather": "api"})
REFERENCE_TABLES = [CleanTable(c, {c.source: "file"}) for c in REFERENCE_CONTRACTS]


def _stage_incoming(con, table: CleanTable, window: tuple[date, date] | None) -> None:
    """Union the raw tables of the window into `_incoming`, numbered in arrival order."""
    where = "WHERE _partition_date BETWEEN $first AND $last" if window else ""
    parts = [
        f"SELECT *, '{channel}' AS source_channel FROM raw.{raw} {where}" for raw, channel in table.raw_tables.items()
    ]
    params = {"first": window[0], "last": window[1]} if window else {}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _incoming AS SELECT * EXCLUDE (_row), "
        "row_number() OVER (ORDER BY source_channel, _row) AS _row FROM (" + " UNION ALL BY NAME ".join(parts) + ")",
        params,
    )


def _write(con, table: CleanTable, window: tuple[date, date] | None, batch_id: str) -> None:
    """Replace the window in clean, quarantine and the ledger, atomically."""
    derived = f", {table.derived}" if table.derived else ""
    lineage = "source_channel, _batch_id, _loaded_at"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _final AS SELECT * EXCLUDE ({lineage}{', _partition_date' if table.daily else ''})"
        f"{derived}, {lineage} FROM _clean"
    )
    for schema in ("clean", "quarantine", "audit"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"CREATE TABLE IF NOT EXISTS clean.{table.name} AS SELECT * FROM _final LIMIT 0")
    con.execute(f"CREATE TABLE IF NOT EXISTS quarantine.{table.name} AS SELECT *, current_timestamp AS _quarantined_at FROM _quarantine LIMIT 0")
    con.execute(LEDGER_DDL)
    con.execute("BEGIN TRANSACTION")
    if window:
        part = quote(table.contract.partition_column)
        con.execute(f"DELETE FROM clean.{table.name} WHERE {part} BETWEEN ? AND ?", list(window))
        con.execute(f"DELETE FROM quarantine.{table.name} WHERE _partition_date BETWEEN ? AND ?", list(window))
        con.execute("DELETE FROM audit.load_ledger WHERE asset = ? AND partition_date BETWEEN ? AND ?", [table.name, *window])
    else:
        con.execute(f"DELETE FROM clean.{table.name}")
        con.execute(f"DELETE FROM quarantine.{table.name}")
        con.execute("DELETE FROM audit.load_ledger WHERE asset = ?", [table.name])
    con.execute(f"INSERT INTO clean.{table.name} BY NAME SELECT * FROM _final")
    con.execute(f"INSERT INTO quarantine.{table.name} BY NAME SELECT *, current_timestamp AS _quarantined_at FROM _quarantine")
    day = "_partition_date" if table.daily else "CAST(NULL AS DATE)"
    con.execute(
        f"""
        INSERT INTO audit.load_ledger
        WITH days AS (SELECT DISTINCT {day} AS d FROM _incoming),
        n_in AS (SELECT {day} AS d, count(*) AS n FROM _incoming GROUP BY 1),
        n_clean AS (SELECT {day} AS d, count(*) AS n FROM _clean GROUP BY 1),
        n_quarantined AS (SELECT {day} AS d, count(*) AS n FROM _quarantine GROUP BY 1),
        n_duplicates AS (SELECT {day} AS d, count(*) AS n FROM _ranked WHERE _rank > 1 GROUP BY 1)
        SELECT ?, days.d, ?, coalesce(n_in.n, 0), coalesce(n_clean.n, 0), coalesce(n_quarantined.n, 0),
               coalesce(n_duplicates.n, 0), current_timestamp
        FROM days
        LEFT JOIN n_in ON n_in.d IS NOT DISTINCT FROM days.d
        LEFT JOIN n_clean ON n_clean.d IS NOT DISTINCT FROM days.d
        LEFT JOIN n_quarantined ON n_quarantined.d IS NOT DISTINCT FROM days.d
        LEFT JOIN n_duplicates ON n_duplicates.d IS NOT DISTINCT FROM days.d
        """,
        [table.name, batch_id],
    )
    con.execute("COMMIT")


def _checks(con, table: CleanTable, outcome: Outcome) -> Iterator[dg.AssetCheckResult]:
    """Checks over the whole clean table (and this run's counts), evaluated in the asset's step."""
    key = ", ".join(quote(k) for k in table.contract.key)
    duplicate_keys = con.execute(
        f"SELECT count(*) FROM (SELECT {key} FROM clean.{table.name} GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()[0]
    yield dg.AssetCheckResult(
        check_name="key_unique",
        passed=duplicate_keys == 0,
        metadata={"duplicate_keys": duplicate_keys, "key": key},
        description=f"No two rows of clean.{table.name} share the key ({key}).",
    )
    part = quote(table.contract.partition_column) if table.daily else "CAST(NULL AS DATE)"
    unbalanced, mismatched = con.execute(
        f"""
        WITH ledger AS (SELECT * FROM audit.load_ledger WHERE asset = ?),
        actual AS (SELECT {part} AS d, count(*) AS n FROM clean.{table.name} GROUP BY 1)
        SELECT count(*) FILTER (WHERE rows_in <> rows_clean + rows_quarantined + duplicates_removed),
               count(*) FILTER (WHERE rows_clean <> coalesce(actual.n, 0))
        FROM ledger LEFT JOIN actual ON actual.d IS NOT DISTINCT FROM ledger.partition_date
        """,
        [table.name],
    ).fetchone()
    yield dg.AssetCheckResult(
        check_name="rows_accounted",
        passed=outcome.balanced and unbalanced == 0 and mismatched == 0,
        metadata={**outcome.as_metadata(), "ledger_days_unbalanced": unbalanced, "ledger_days_not_matching_table": mismatched},
        description="rows in = clean + quarantined + duplicates removed, for this run and every day in audit.load_ledger, "
        "and the ledger's clean counts match the table.",
    )
    rate = outcome.rows_quarantined / outcome.rows_in if outcome.rows_in else 0.0
    yield dg.AssetCheckResult(
        check_name="quarantine_rate",
        passed=rate <= MAX_QUARANTINE_RATE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantine_rate": round(rate, 5), "threshold": MAX_QUARANTINE_RATE},
        description=f"At most {MAX_QUARANTINE_RATE:.0%} of this run's rows were quarantined.",
    )


def _check_specs(table: CleanTable, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec("key_unique", asset=key, blocking=True),
        dg.AssetCheckSpec("rows_accounted", asset=key, blocking=True),
        dg.AssetCheckSpec("quarantine_rate", asset=key),
    ]
    if table.fresh_against_source_db:
        specs.append(dg.AssetCheckSpec("fresh", asset=key, description="The latest day at the source is loaded."))
    return specs


def _freshness(con, source_db: SourceDatabaseResource) -> dg.AssetCheckResult:
    """Freshness in replay time: the newest day in clean.flights against the newest day the source holds."""
    engine = sa.create_engine(source_db.resolved_url)
    try:
        with engine.connect() as connection:
            source_latest = connection.execute(sa.text("SELECT max(flight_date) FROM flights")).scalar()
    finally:
        engine.dispose()
    loaded_latest = con.execute("SELECT CAST(max(flight_date) AS VARCHAR) FROM clean.flights").fetchone()[0]
    return dg.AssetCheckResult(
        check_name="fresh",
        passed=loaded_latest is not None and source_latest is not None and loaded_latest >= source_latest,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"latest_loaded_day": str(loaded_latest), "latest_source_day": str(source_latest)},
    )


def _clean_asset(table: CleanTable) -> dg.AssetsDefinition:
    key = dg.AssetKey(["clean", table.name])
    deps = [dg.AssetKey(["raw", raw]) for raw in table.raw_tables]
    deps += [dg.AssetKey(["clean", c.references[0]]) for c in table.contract.columns if c.references]
    daily = {"partitions_def": DAILY, "backfill_policy": SINGLE_RUN} if table.daily else {}
    resources = {"warehouse", "source_db"} if table.fresh_against_source_db else {"warehouse"}

    @dg.asset(
        key=key,
        deps=deps,
        group_name=GROUP,
        pool=DUCKDB_POOL,
        kinds={"duckdb"},
        check_specs=_check_specs(table, key),
        required_resource_keys=resources,
        description=f"{table.contract.description} Validated against its contract; broken rows in "
        f"quarantine.{table.name}, counts in audit.load_ledger.",
        **daily,
    )
    def _asset(context: dg.AssetExecutionContext):
        window = day_range(context) if table.daily else None
        warehouse: WarehouseResource = context.resources.warehouse
        with warehouse.connect() as con:
            _stage_incoming(con, table, window)
            outcome = validate(con, table.contract, "_incoming", ("source_channel", "_batch_id", "_loaded_at"))
            _write(con, table, window, context.run_id)
            top_reasons = con.execute(
                "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM _quarantine) GROUP BY r ORDER BY 2 DESC LIMIT 5"
            ).fetchall()
            yield dg.MaterializeResult(
                metadata={
                    **outcome.as_metadata(),
                    "quarantine_table": f"quarantine.{table.name}",
                    "top_quarantine_reasons": dg.MetadataValue.json({r: n for r, n in top_reasons}),
                }
            )
            yield from _checks(con, table, outcome)
            if table.fresh_against_source_db:
                yield _freshness(con, context.resources.source_db)

    return _asset


clean_assets = [_clean_asset(t) for t in (FLIGHTS_TABLE, WEATHER_TABLE, *REFERENCE_TABLES)]
