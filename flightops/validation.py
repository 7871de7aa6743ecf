"""Contract enforcement in DuckDB: deduplicate, type, check, split into clean and quarantine.

Input is a relation of raw text columns as delivered (plus `_row`, the arrival order,
and `_partition_date` for daily sources). Output is two temp tables, `_clean` (typed
columns) and `_quarantine` (the original values as JSON with every broken rule), and
an `Outcome` whose counts satisfy rows_in = clean + quarantined + duplicates_removed.
Superseded duplicates stay in the raw layer, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from flightops.contracts import Column, Contract


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


def _text(col: str) -> str:
    """The raw value as trimmed text, with the sources' spellings of null ('' and NA) as NULL."""
    return f"nullif(nullif(trim(CAST({quote(col)} AS VARCHAR)), ''), 'NA')"


def _typed(column: Column) -> str:
    text = _text(column.name)
    if column.type == "INTEGER":
        # '517.0' is an integer, '517.5' is not: cast through DOUBLE and require a whole number.
        as_double = f"TRY_CAST({text} AS DOUBLE)"
        return f"CASE WHEN {as_double} = trunc({as_double}) THEN CAST({as_double} AS INTEGER) END"
    return f"TRY_CAST({text} AS {column.type})"


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _reasons(contract: Contract, fk_tables: dict[tuple[str, str], str]) -> str:
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
            allowed = ", ".join(_sql_literal(v) for v in column.allowed)
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
    return "list_filter([" + ", ".join(checks) + "], lambda r: r IS NOT NULL)"


def check_columns(contract: Contract, delivered: list[str], where: str) -> None:
    """Fail on a missing or unexpected column: a schema break is not a row-level problem."""
    expected = set(contract.column_names)
    missing = [c for c in contract.column_names if c not in delivered]
    unexpected = [c for c in delivered if c not in expected and not c.startswith("_")]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if unexpected:
            parts.append("unexpected column(s) " + ", ".join(unexpected) + " (renamed?)")
        raise ContractViolation(
            f"Schema break in {where}: {'; '.join(parts)}. The {contract.source} contract expects "
            f"{', '.join(contract.column_names)}. Fix the delivery at the source (or update "
            "flightops/contracts.py if the source changed on purpose), then re-run this partition."
        )


def validate(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    incoming: str,
    lineage_columns: tuple[str, ...] = (),
) -> Outcome:
    """Split `incoming` into temp tables `_clean` and `_quarantine` following the contract."""
    key_text = [_text(k) for k in contract.key]
    key_known = " AND ".join(f"{k} IS NOT NULL" for k in key_text)
    if contract.version_column:
        newest_first = f"TRY_CAST({_text(contract.version_column)} AS TIMESTAMP) DESC NULLS LAST, _row DESC"
    else:
        newest_first = "_row DESC"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ranked AS
        SELECT *, CASE WHEN {key_known}
                  THEN row_number() OVER (PARTITION BY {', '.join(key_text)} ORDER BY {newest_first}) END AS _rank
        FROM {incoming}
        """
    )
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
    # The original values, built only for the rows that go to quarantine.
    raw_record = "to_json({" + ", ".join(f"{_sql_literal(c)}: r.{quote(c)}" for c in contract.column_names) + "})"
    lineage = "".join(f", {quote(c)}" for c in lineage_columns)
    partition = ", _partition_date" if contract.partition_column else ""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT {typed_columns}{lineage}{partition},
               {_reasons(contract, fk_tables)} AS _reasons,
               _row,
               concat_ws('|', {', '.join(f"coalesce({k}, 'NULL')" for k in key_text)}) AS _record_key
        FROM _ranked WHERE _rank IS NULL OR _rank = 1
        """
    )
    names = ", ".join(quote(c) for c in contract.column_names)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _clean AS SELECT {names}{lineage}{partition} FROM _checked WHERE len(_reasons) = 0"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _quarantine AS
        SELECT {'c._partition_date' if partition else 'CAST(NULL AS DATE) AS _partition_date'},
               c._record_key AS record_key, c._reasons AS reasons, {raw_record} AS record{lineage.replace(', ', ', c.')}
        FROM _checked AS c JOIN _ranked AS r ON r._row = c._row WHERE len(c._reasons) > 0
        """
    )
    count = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    return Outcome(
        rows_in=count(f"SELECT count(*) FROM {incoming}"),
        rows_clean=count("SELECT count(*) FROM _clean"),
        rows_quarantined=count("SELECT count(*) FROM _quarantine"),
        duplicates_removed=count("SELECT count(*) FROM _ranked WHERE _rank > 1"),
    )
