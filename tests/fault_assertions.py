"""What must hold after every fault: the ledger balances and no valid row is lost.

Not a test module: tests that inject a fault import these explicitly,

    from tests.fault_assertions import assert_ledger_balanced, assert_no_valid_row_lost, clean_versions

`clean_versions` snapshots clean.<source> (key -> version) before the fault; after it,
`assert_no_valid_row_lost` requires every key still there with the same or a newer version,
except the keys the fault left with no valid version at all (which must then be in quarantine).
"""

from __future__ import annotations

from flightops.contracts import ALL_CONTRACTS
from flightops.validation import quote
from tests.platform_harness import Platform

CONTRACTS_BY_SOURCE = {c.source: c for c in ALL_CONTRACTS}


def _key_sql(source: str) -> str:
    key = CONTRACTS_BY_SOURCE[source].key
    return " || '|' || ".join(f"coalesce(CAST({quote(k)} AS VARCHAR), 'NULL')" for k in key)


def clean_versions(platform: Platform, source: str = "flights") -> dict[str, str | None]:
    """clean.<source> as key -> version (its version column as text, None without one)."""
    version = CONTRACTS_BY_SOURCE[source].version_column
    shown = f"CAST({quote(version)} AS VARCHAR)" if version else "NULL"
    return dict(platform.query(f"SELECT {_key_sql(source)}, {shown} FROM clean.{source}"))


def assert_ledger_balanced(platform: Platform, source: str = "flights") -> None:
    """Every ledger day: rows in = clean + quarantined + duplicates, and clean matches the table."""
    contract = CONTRACTS_BY_SOURCE[source]
    part = quote(contract.partition_column) if contract.partition_column else "CAST(NULL AS DATE)"
    bad = platform.query(
        f"""
        WITH actual AS (SELECT {part} AS d, count(*) AS n FROM clean.{source} GROUP BY 1)
        SELECT l.partition_date, l.rows_in, l.rows_clean, l.rows_quarantined, l.duplicates_removed, coalesce(a.n, 0)
        FROM audit.load_ledger AS l LEFT JOIN actual AS a ON a.d IS NOT DISTINCT FROM l.partition_date
        WHERE l.asset = ? AND (l.rows_in <> l.rows_clean + l.rows_quarantined + l.duplicates_removed
                               OR l.rows_clean <> coalesce(a.n, 0))
        """,
        [source],
    )
    assert not bad, f"ledger of {source} unbalanced (day, in, clean, quarantined, duplicates, in table): {bad}"


def assert_no_valid_row_lost(
    platform: Platform, before: dict[str, str | None], source: str = "flights", broken: set[str] = frozenset()
) -> None:
    """Every key clean before is clean now, at the same or a newer version, unless the fault broke
    it (`broken`): then it is clean at an older valid version, or in quarantine if none is left."""
    after = clean_versions(platform, source)
    lost = sorted(set(before) - set(after) - set(broken))
    assert not lost, f"{len(lost)} valid {source} row(s) lost from clean.{source}: {lost[:10]}"
    older = sorted(k for k in (set(before) & set(after)) - set(broken) if before[k] is not None and after[k] is not None and after[k] < before[k])
    assert not older, f"{len(older)} {source} row(s) went back to an older version: {older[:10]}"
    gone = set(broken) - set(after)
    if gone:
        quarantined = {k for (k,) in platform.query(f"SELECT record_key FROM quarantine.{source}")}
        missing = sorted(gone - quarantined)
        assert not missing, f"{len(missing)} broken {source} row(s) neither clean nor quarantined: {missing[:10]}"
