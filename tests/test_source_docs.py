"""dbt's documentation of the cleaned tables (dbt_project/models/staging/_sources.yml, source `clean`)
against their contracts (flightops/contracts.py), which decide what those tables hold.

The two are written separately (the yml for analysts, the contract for validation), so what must
agree is asserted here: the same tables and columns (the yml may add only the columns cleaning adds
to a contract's), a description for each, the same units and time basis (local or UTC), the allowed
values named, NULL mentioned only for nullable columns, dbt's not_null tests only on required columns
and its uniqueness tests on exactly the contract's key, and a declared data_type equal to the contract's.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from flightops.contracts import ALL_CONTRACTS
from flightops.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.unit

SOURCES_YML = DBT_PROJECT_DIR / "models" / "staging" / "_sources.yml"
# The columns assets/cleaning.py writes beside a contract's: each row's lineage (the channel it came
# from, its ingestion batch and load time), and for flights the states derived from the typed columns.
LINEAGE = {"source_channel", "_batch_id", "_loaded_at"}
DERIVED = {"flights": {"is_cancelled", "is_diverted"}}
# Units and time bases a description may name; the words of one entry mean the same.
VOCABULARY = (("minutes",), ("hours",), ("miles",), ("feet",), ("mph",), ("inches",), ("millibars",),
              ("degrees",), ("F",), ("%", "percent"), ("hhmm",), ("local",), ("UTC", "GMT"))
CONTRACTS = {contract.source: contract for contract in ALL_CONTRACTS}


def words_of(description: str) -> set[tuple[str, ...]]:
    """The vocabulary entries a description names (whole words; case-insensitive except the unit F)."""
    named = set()
    for entry in VOCABULARY:
        for word in entry:
            flags = 0 if word == "F" else re.IGNORECASE
            if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", description, flags):
                named.add(entry)
    return named


def clean_tables() -> dict[str, dict[str, Any]]:
    sources = yaml.safe_load(SOURCES_YML.read_text())["sources"]
    [clean] = [source for source in sources if source["name"] == "clean"]
    assert clean.get("schema", "clean") == "clean"
    return {table["name"]: table for table in clean["tables"]}


def test_the_clean_source_documents_exactly_the_contracted_tables():
    assert sorted(clean_tables()) == sorted(CONTRACTS)


@pytest.mark.parametrize("source", sorted(CONTRACTS))
def test_every_contract_column_is_documented_and_nothing_else(source: str):
    contract, documented = CONTRACTS[source], clean_tables()[source]["columns"]
    names = [column["name"] for column in documented]
    assert len(names) == len(set(names)), f"{SOURCES_YML}: a column of clean.{source} is listed twice"
    missing = [c for c in contract.column_names if c not in names]
    assert not missing, f"{SOURCES_YML}: clean.{source} lacks the contract's column(s) {missing}"
    extra = set(names) - set(contract.column_names) - LINEAGE - DERIVED.get(source, set())
    assert not extra, f"{SOURCES_YML}: clean.{source} documents {sorted(extra)}, which no contract or cleaning step writes"
    # The derived states are what dbt reads to tell cancelled and diverted flights apart: documented.
    assert DERIVED.get(source, set()) <= set(names)


@pytest.mark.parametrize("source", sorted(CONTRACTS))
def test_descriptions_agree_with_the_contract(source: str):
    contract = CONTRACTS[source]
    documented = {column["name"]: column for column in clean_tables()[source]["columns"]}
    assert clean_tables()[source].get("description", "").strip(), f"clean.{source} has no description"
    for name, column in documented.items():
        assert str(column.get("description") or "").strip(), f"clean.{source}.{name} has no description"
    for declared in contract.columns:
        column = documented[declared.name]
        where = f"clean.{source}.{declared.name}: yml {column['description']!r}, contract {declared.description!r}"
        # The units and the time basis (local or UTC) the contract names, the yml names too.
        assert words_of(declared.description) <= words_of(column["description"]), where
        # Allowed values are spelled out for the analyst.
        for value in declared.allowed or ():
            assert re.search(rf"\b{re.escape(value)}\b", column["description"]), where
        # NULL is mentioned only where the contract lets a value be missing.
        if re.search(r"\bnull(able)?\b", column["description"], re.IGNORECASE):
            assert not declared.required, f"{where}: the yml speaks of NULL but the contract requires a value"
        if "data_type" in column:
            assert str(column["data_type"]).upper() == declared.type, where


def _test_name(test: str | dict) -> str:
    return test if isinstance(test, str) else next(iter(test))


@pytest.mark.parametrize("source", sorted(CONTRACTS))
def test_dbt_tests_of_the_source_follow_the_contract(source: str):
    contract, table = CONTRACTS[source], clean_tables()[source]
    unique_columns, not_null = [], []
    for column in table["columns"]:
        for test in column.get("data_tests", []):
            if _test_name(test) == "not_null":
                not_null.append(column["name"])
            elif _test_name(test) == "unique":
                unique_columns.append((column["name"],))
    for test in table.get("data_tests", []):
        if _test_name(test) == "unique_combination_of_columns":
            unique_columns.append(tuple(test["unique_combination_of_columns"]["arguments"]["combination_of_columns"]))
    # Validation lets no row without a required value through; dbt must not expect more than that.
    assert all(contract.column(name).required for name in not_null), (source, not_null)
    # Validation keeps one row per key; the key is what dbt asserts unique (and nothing narrower).
    assert unique_columns == [contract.key], (source, unique_columns)
