"""Contract enforcement in DuckDB: type, check, then keep the newest valid version per key.

Input is a relation of raw text columns as delivered (plus `_row`, the arrival order,
and `_partition_date` for daily sources). Every row is validated first; only then is the
newest *valid* version of each key chosen, so a broken newer version (text in a number,
a date outside its partition) goes to quarantine and the valid version before it stays
clean. Output is three temp tables: `_checked` (every row typed, with its reasons, its key
and its rank among the valid versions of that key), `_clean` (typed columns) and
`_quarantine` (the original values as JSON with every broken rule), and an `Outcome` whose
counts satisfy rows_in = clean + quarantined + duplicates_removed, where a duplicate is a
valid version superseded by a newer valid one. Superseded versions stay in the raw layer,
so nothing is lost.

Versions are ordered by the contract's version column, typed like every TIMESTAMP: a
value with an explicit offset ('2013-01-02 10:00:00+05:00') is converted to UTC, one
without is taken as written (UTC, the 'Z' form the sources use). A version stamped more
than FUTURE_VERSION_MARGIN after its row was loaded breaks the contract: it would outrank
every later correction (an 'updated_at 2099-...' would hide all of them), so it is quarantined.

Versions of one key can arrive for different partitions (a flight moved to the next day
keeps its id). The caller may pass such versions loaded for other partitions as
*context* rows: they compete for the newest version like the others but are not counted
in the Outcome (assets/cleaning.py stages them so a key ends in clean once, whatever the
run's window).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from flightops.contracts import FUTURE_VERSION_MARGIN, Column, Contract

# A TIMESTAMP text ending in an explicit offset after its time: +05:00, -05, +0530.
UTC_OFFSET = r"[0-9]:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)? ?[+-][0-9]{2}(:?[0-9]{2})?$"


@dataclass(frozen=True)
class Outcome:
    rows_in: int
    rows_clean: int
    rows_quarantined: int
    duplicates_removed: int

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_clean + self.rows_quarantined + self.duplicates_removed

    def as_metadata(self) -> dict[str, int | bool]:
        return {
            "rows_in": self.rows_in,
            "rows_clean": self.rows_clean,
            "rows_quarantined": self.rows_quarantined,
            "duplicates_removed": self.duplicates_removed,
            "rows_balanced": self.balanced,
        }


class ContractViolation(ValueError):
    """The delivery cannot be validated row by row (its shape breaks the contract)."""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """`value` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _text(col: str) -> str:
    """The raw value as trimmed text, with the sources' spellings of null ('' and NA) as NULL."""
    return f"nullif(nullif(trim(CAST({quote(col)} AS VARCHAR)), ''), 'NA')"


def _typed(column: Column) -> str:
    text = _text(column.name)
    if column.type == "INTEGER":
        # '517.0' is an integer, '517.5' is not: cast through DOUBLE and require a whole number.
        as_double = f"TRY_CAST({text} AS DOUBLE)"
        return f"CASE WHEN {as_double} = trunc({as_double}) THEN CAST({as_double} AS INTEGER) END"
    if column.type == "TIMESTAMP":
        # A cast to TIMESTAMP drops an offset; read through TIMESTAMPTZ and convert to UTC instead.
        return (
            f"CASE WHEN regexp_matches({text}, '{UTC_OFFSET}') THEN timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) "
            f"ELSE TRY_CAST({text} AS TIMESTAMP) END"
        )
    return f"TRY_CAST({text} AS {column.type})"


def key_of(contract: Contract, typed_table: bool = False) -> str:
    """A row's key as it lands in clean (typed values as text; NULL when a part is unknown): the versions
    of one record match on it whatever their spelling. Over raw text columns, or a typed table's."""
    parts = [quote(k) if typed_table else _typed(contract.column(k)) for k in contract.key]
    known = " AND ".join(f"{p} IS NOT NULL" for p in parts)
    return f"CASE WHEN {known} THEN [{', '.join(f'CAST({p} AS VARCHAR)' for p in parts)}] END"


def _reasons(contract: Contract, fk_tables: dict[tuple[str, str], str], loaded_at: str = "current_timestamp") -> str:
    """A list expression holding one message per broken rule (NULLs filtered out)."""
    checks: list[str] = []
    for column in contract.columns:
        name, text, typed = column.name, _text(column.name), _typed(column)
        shown = f"coalesce({text}, 'NULL')"
        if column.required:
            checks.append(f"CASE WHEN {text} IS NULL THEN '{name}: required value is missing' END")
        checks.append(
            f"CASE WHEN {text} IS NOT NULL AND {typed} IS NULL "
            f"THEN '{name}: ' || {shown} || ' is not a valid {column.type}' END"
        )
        if column.min is not None:
            checks.append(f"CASE WHEN {typed} < {column.min} THEN '{name}: ' || {shown} || ' is below {column.min}' END")
        if column.max is not None:
            checks.append(f"CASE WHEN {typed} > {column.max} THEN '{name}: ' || {shown} || ' is above {column.max}' END")
        if column.allowed:
            allowed = ", ".join(sql_literal(v) for v in column.allowed)
            checks.append(
                f"CASE WHEN {typed} NOT IN ({allowed}) "
                f"THEN '{name}: ' || {shown} || ' is not one of {'/'.join(column.allowed)}' END"
            )
        if column.references:
            table, ref_col = column.references
            checks.append(
                f"CASE WHEN {typed} IS NOT NULL AND {typed} NOT IN (SELECT {quote(ref_col)} FROM {fk_tables[column.references]}) "
                f"THEN '{name}: ' || {shown} || ' is unknown in clean.{table}.{ref_col}' END"
            )
    if contract.partition_column:
        typed = _typed(contract.column(contract.partition_column))
        checks.append(
            f"CASE WHEN {typed} IS DISTINCT FROM _partition_date "
            f"THEN '{contract.partition_column}: ' || coalesce(CAST({typed} AS VARCHAR), 'NULL') "
            f"|| ' is outside the loaded partition ' || CAST(_partition_date AS VARCHAR) END"
        )
    if contract.version_column:
        typed = _typed(contract.column(contract.version_column))
        checks.append(
            f"CASE WHEN {typed} > {loaded_at} + INTERVAL '{FUTURE_VERSION_MARGIN}' "
            f"THEN '{contract.version_column}: stamped more than {FUTURE_VERSION_MARGIN} after the row was loaded (' "
            f"|| CAST({typed} AS VARCHAR) || ' UTC, loaded ' || CAST({loaded_at} AS VARCHAR) || '): a version from the "
            "future would hide every later correction; fix the source''s clock or value' END"
        )
    return "list_filter([" + ", ".join(checks) + "], lambda r: r IS NOT NULL)"


def check_columns(contract: Contract, delivered: list[str], where: str) -> None:
    """Fail on a missing, unexpected or repeated column: a schema break is not a row-level problem.

    Every column outside the contract is unexpected, those starting with `_` too: that is where
    the platform's load columns (`_row`, `_source`, ...) live, which a delivery must not bring.
    Names with invisible characters or spaces around them are shown quoted.
    """
    shown = lambda name: name if name.isprintable() and name == name.strip() else repr(name)  # noqa: E731
    expected = set(contract.column_names)
    missing = [c for c in contract.column_names if c not in delivered]
    unexpected = [shown(c) for c in delivered if c not in expected and not c.startswith("_")]
    reserved = [shown(c) for c in delivered if c.startswith("_")]
    repeated = [shown(c) for c in dict.fromkeys(delivered) if delivered.count(c) > 1]
    parts = []
    if missing:
        parts.append("missing column(s) " + ", ".join(missing))
    if unexpected:
        parts.append("unexpected column(s) " + ", ".join(unexpected) + " (renamed?)")
    if reserved:
        parts.append("column(s) " + ", ".join(reserved) + " named like the load columns (names starting with _ are the platform's)")
    if repeated:
        parts.append("repeated column(s) " + ", ".join(repeated))
    if parts:
        raise ContractViolation(
            f"Schema break in {where}: {'; '.join(parts)}. The {contract.source} contract expects "
            f"{', '.join(contract.column_names)}, each once. Fix the delivery at the source (or update "
            "flightops/contracts.py if the source changed on purpose), then re-run this partition."
        )


def validate(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    incoming: str,
    lineage_columns: tuple[str, ...] = (),
    loaded_at: str = "current_timestamp",
    context: str | None = None,
) -> Outcome:
    """Split `incoming` into temp tables `_clean` and `_quarantine` following the contract.

    `loaded_at` is the SQL of when a row was loaded (the future-version rule); `context` names a
    boolean column marking rows loaded for other partitions: ranked with the rest, not counted.
    """
    fk_tables = {}
    for column in contract.columns:
        if column.references:
            table = f"clean.{quote(column.references[0])}"
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'clean' AND table_name = ?",
                [column.references[0]],
            ).fetchone()[0]
            if not exists:
                raise ContractViolation(
                    f"Cannot check {contract.source}.{column.name}: {table} does not exist yet. "
                    f"Materialize clean/{column.references[0]} first (it is upstream in the asset graph)."
                )
            fk_tables[column.references] = table
    typed_columns = ", ".join(f"{_typed(c)} AS {quote(c.name)}" for c in contract.columns)
    carried = lineage_columns + ((context,) if context else ())
    lineage = "".join(f", {quote(c)}" for c in carried)
    partition = ", _partition_date" if contract.partition_column else ""
    key_text = [_text(k) for k in contract.key]
    version = f"{quote(contract.version_column)} DESC NULLS LAST, " if contract.version_column else ""
    # Validate every row first, then rank the valid versions of each key, newest first.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT *, CASE WHEN len(_reasons) = 0 AND _key IS NOT NULL THEN row_number() OVER (
                  PARTITION BY _key, len(_reasons) = 0 ORDER BY {version}_row DESC) END AS _rank
        FROM (
            SELECT {typed_columns}{lineage}{partition},
                   {_reasons(contract, fk_tables, loaded_at)} AS _reasons,
                   _row,
                   {key_of(contract)} AS _key,
                   concat_ws('|', {', '.join(f"coalesce({k}, 'NULL')" for k in key_text)}) AS _record_key
            FROM {incoming}
        )
        """
    )
    names = ", ".join(quote(c) for c in contract.column_names)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _clean AS SELECT {names}{lineage}{partition} FROM _checked "
        "WHERE len(_reasons) = 0 AND coalesce(_rank, 1) = 1"
    )
    # The original values, built only for the rows that go to quarantine.
    raw_record = "to_json({" + ", ".join(f"{sql_literal(c)}: r.{quote(c)}" for c in contract.column_names) + "})"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _quarantine AS
        SELECT {'c._partition_date' if partition else 'CAST(NULL AS DATE) AS _partition_date'},
               c._record_key AS record_key, c._reasons AS reasons, {raw_record} AS record{lineage.replace(', ', ', c.')}
        FROM _checked AS c JOIN {incoming} AS r ON r._row = c._row WHERE len(c._reasons) > 0
        """
    )
    counted = f"NOT {quote(context)}" if context else "true"
    rows_in, clean, quarantined, duplicates = con.execute(
        f"""
        SELECT count(*), count(*) FILTER (WHERE len(_reasons) = 0 AND coalesce(_rank, 1) = 1),
               count(*) FILTER (WHERE len(_reasons) > 0), count(*) FILTER (WHERE _rank > 1)
        FROM _checked WHERE {counted}
        """
    ).fetchone()
    return Outcome(rows_in=rows_in, rows_clean=clean, rows_quarantined=quarantined, duplicates_removed=duplicates)
