"""The code location as a whole: the asset graph, the stack, DuckDB's lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from flightops import stack_check, warehouse_connections
from flightops.settings import REPO_ROOT

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def asset_graph_snapshot() -> dict:
    from flightops.definitions import defs

    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitioned": node.partitions_def is not None,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
        }
    checks = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys)
    return {"assets": assets, "checks": checks}


def test_asset_graph_matches_the_snapshot():
    current = asset_graph_snapshot()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, (
        "The asset graph changed. If that was intended, refresh the snapshot: "
        "UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_platform.py -k snapshot"
    )


def test_every_layer_has_its_group_and_prefix():
    assets = asset_graph_snapshot()["assets"]
    groups: dict[str, set[str]] = {}
    for key, spec in assets.items():
        groups.setdefault(key.split("/")[0], set()).add(spec["group"])
    # dbt models are keyed by their schema and sit in the transform group; those over the monitoring
    # figures are in the monitoring group.
    assert groups == {"raw": {"ingestion"}, "clean": {"validation"}, "quarantine": {"validation"},
                      "staging": {"transform", "monitoring"},
                      "intermediate": {"transform"}, "marts": {"transform", "monitoring"},
                      "features": {"features"}, "models": {"models"}, "deployment": {"deployment"},
                      "monitoring": {"monitoring"}}
    # dbt's staging model of flights reads the cleaned table: the lineage crosses from Python to dbt.
    assert "clean/flights" in assets["staging/stg_flights"]["deps"]
    # Features read the facts and the weather observations (as of each flight's prediction time).
    assert assets["features/flight_features"]["deps"] == ["marts/fct_flights", "staging/stg_weather"]
    # ... and back: the model-health mart reads what the monitoring assets write.
    assert "monitoring/realized_performance" in assets["staging/stg_monitoring_figures"]["deps"]
    assert assets["monitoring/reference"]["deps"] == ["features/flight_features", "features/flight_labels",
                                                      "models/champion"]


def test_definitions_validate_from_the_workspace():
    env = {**os.environ, "DAGSTER_HOME": str(REPO_ROOT)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "flightops.definitions" in result.stdout + result.stderr


@pytest.mark.unit
def test_the_installed_stack_is_the_verified_one():
    assert stack_check.expected_integration_version("1.13.27") == "0.29.27"
    assert stack_check.problems() == []


def test_a_locked_warehouse_is_waited_for_then_reported(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t AS SELECT 42 AS answer").close()
    ready, slept = tmp_path / "locked", tmp_path / "slept"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, pathlib, sys, time\n"
         f"con = duckdb.connect({str(path)!r})\n"
         f"pathlib.Path({str(ready)!r}).touch()\n"
         "time.sleep(float(sys.argv[1]))\n"
         f"pathlib.Path({str(slept)!r}).touch()\n"
         "con.close()\n", "4"],
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline, "the lock-holding process did not start"
            time.sleep(0.05)
        with pytest.raises(warehouse_connections.WarehouseLockTimeout) as error:
            with warehouse_connections.connect(path, timeout_seconds=0.5):
                pass
        assert str(path) in str(error.value) and "FLIGHTOPS_DUCKDB_LOCK_TIMEOUT_SECONDS" in str(error.value)
        # With a longer deadline the same call waits for the holder to finish, then works.
        with warehouse_connections.connect(path, timeout_seconds=60) as con:
            assert con.execute("SELECT answer FROM t").fetchone() == (42,)
        # The lock is released when the holder closes its connection, which it does only after its
        # sleep; the process itself may still be finishing, so wait for its exit rather than poll.
        assert slept.exists()
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.unit
def test_the_memory_limit_bounds_duckdb_and_a_query_past_it_spills_to_the_folder_beside_the_file(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    with warehouse_connections.connect(path, memory_limit="64MB") as con:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert limit in ("61.0 MiB", "64.0 MB"), limit  # DuckDB reports it in its own units
        # Sorting 3 million hashes (over 100 MB) cannot happen in 64 MB: it completes by spilling.
        con.execute("CREATE TABLE big AS SELECT i, md5(CAST(i AS VARCHAR)) AS h FROM range(3000000) r(i)")
        con.execute("CREATE TABLE sorted AS SELECT h FROM big ORDER BY h")
        assert con.execute("SELECT count(*), min(h) FROM sorted").fetchone() == con.execute("SELECT count(*), min(h) FROM big").fetchone()
        assert con.execute("SELECT h FROM sorted LIMIT 1").fetchone()[0] == con.execute("SELECT min(h) FROM big").fetchone()[0]
        assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == f"{path}.tmp"
    with warehouse_connections.connect(path) as con:  # no limit asked: DuckDB's default, far above 64 MB
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] != limit


@pytest.mark.unit
def test_a_memory_limit_duckdb_cannot_read_is_refused_naming_the_setting(tmp_path: Path):
    with pytest.raises(ValueError, match=r"FLIGHTOPS_DUCKDB_MEMORY_LIMIT='lots' is not a memory size DuckDB accepts .*such as 1GB"):
        with warehouse_connections.connect(tmp_path / "warehouse.duckdb", memory_limit="lots"):
            pass


@pytest.mark.unit
def test_the_contract_docs_list_every_column_with_its_rules():
    from flightops.contracts import ALL_CONTRACTS, FLIGHTS, as_markdown

    docs = as_markdown(ALL_CONTRACTS)
    assert docs.count("\n## ") + docs.startswith("## ") == len(ALL_CONTRACTS)
    for contract in ALL_CONTRACTS:
        for column in contract.columns:
            assert f"| {column.name} | {', '.join(column.rules())} |" in docs
    assert "must exist in clean.airlines.carrier" in docs
    assert f"| distance | DOUBLE, required, in [{FLIGHTS.column('distance').min}, {FLIGHTS.column('distance').max}] |" in docs
