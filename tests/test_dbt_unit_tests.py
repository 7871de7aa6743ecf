"""dbt's own unit tests (`unit_tests:` in dbt_project/models/**/_models.yml: the label `is_delayed_15`
of fct_flights, the placeholder rows of dim_airports), run the way an analyst runs them.

dbt takes the types of a unit test's inputs from the relations in the warehouse, so they need a
warehouse holding the models they read, though not their rows: here an empty one, built by
`dbt run --empty` over empty `clean` tables of the contracts' columns. An analyst's plain `dbt build`
also runs them before their model; the platform's runs do not (assets/transform.py BUILD_COMMAND), so
this test is where a change to a model's logic meets them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from flightops.contracts import ALL_CONTRACTS
from flightops.settings import DBT_PROJECT_DIR
from flightops.validation import quote

DBT = Path(sys.executable).parent / "dbt"
# What assets/cleaning.py adds to a contract's columns in clean.<source>: the derived states of a
# flight, and each row's lineage.
DERIVED = {"flights": "is_cancelled BOOLEAN, is_diverted BOOLEAN"}
LINEAGE = "source_channel VARCHAR, _batch_id VARCHAR, _loaded_at TIMESTAMP"
# The unit tests this suite relies on (others may be added; every one must pass).
UNIT_TESTS = {
    "fct_flights_is_delayed_15_is_arrival_more_than_15_minutes_late",
    "dim_airports_has_one_placeholder_per_flight_airport_missing_from_the_reference",
}


def empty_clean_tables(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA clean")
        for contract in ALL_CONTRACTS:
            columns = [f"{quote(c.name)} {c.type}" for c in contract.columns]
            columns += [DERIVED[contract.source]] if contract.source in DERIVED else []
            con.execute(f"CREATE TABLE clean.{contract.source} ({', '.join([*columns, LINEAGE])})")


def dbt(scratch: Path, *args: str) -> subprocess.CompletedProcess:
    """The real dbt on the scratch warehouse; target/ and logs/ in `scratch` (the project's stay untouched)."""
    return subprocess.run(
        [str(DBT), *args, "--profiles-dir", ".", "--target-path", str(scratch / "target"),
         "--log-path", str(scratch / "logs")],
        cwd=DBT_PROJECT_DIR, env={**os.environ, "FLIGHTOPS_WAREHOUSE": str(scratch / "warehouse.duckdb"), "DBT_USE_COLORS": "false"},
        capture_output=True, text=True, timeout=300,
    )


def test_the_dbt_unit_tests_pass(tmp_path: Path):
    empty_clean_tables(tmp_path / "warehouse.duckdb")
    built = dbt(tmp_path, "run", "--empty", "--exclude", "tag:monitoring")
    assert built.returncode == 0, built.stdout + built.stderr
    tested = dbt(tmp_path, "test", "--select", "test_type:unit")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Lines like `1 of 2 PASS dim_airports::<unit test>  [PASS in 0.5s]`: these ran, and passed.
    passed = {line.split("::")[1].split()[0] for line in tested.stdout.splitlines() if " PASS " in line and "::" in line}
    assert UNIT_TESTS <= passed, tested.stdout
