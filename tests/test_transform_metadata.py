"""What the UI shows of the assets: dbt models with the row counts and typed, described columns of
their tables, no unserializable metadata, and an owner for every asset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.metadata import normalize_metadata

from assets import groups
from assets.transform import WINDOW_VARIABLES, build, dbt_project
from flightops.pipeline import keys_in_groups
from flightops import dbt_runner
from flightops.dbt_runner import DbtInvocation, DbtInvocationError
from flightops.resources import WarehouseResource
from tests.platform_harness import Platform, failure_messages, private_platform

# A view, a whole-rebuilt table and an incremental, partitioned table.
MODELS = ["staging/stg_flights", "marts/dim_carriers", "marts/fct_flights"]
# Definition metadata the UI hides (dagster-dbt's bookkeeping); any other unserializable value is shown
# to users as "[SomeClass] (unserializable)".
HIDDEN_BY_THE_UI = {"dagster_dbt/manifest", "dagster_dbt/dagster_dbt_translator"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Platform]:
    """Two days through ingestion, validation and dbt: the shortest run that builds every dbt model."""
    with private_platform(tmp_path_factory.mktemp("transform_metadata")) as platform:
        platform.replay("2013-01-03")
        result = platform.run("2013-01-01", "2013-01-02",
                              keys_in_groups(groups.INGESTION, groups.VALIDATION, groups.TRANSFORM))
        assert result.success, failure_messages(result)
        yield platform


def latest_metadata(platform: Platform, key: str) -> dict[str, dg.MetadataValue]:
    event = platform.instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
    assert event is not None, f"{key} was not materialized"
    return event.asset_materialization.metadata


def warehouse_columns(platform: Platform, table: str) -> list[tuple[str, str]]:
    schema, name = table.split("/")
    return platform.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", [schema, name])


@pytest.mark.parametrize("key", MODELS)
def test_a_dbt_materialization_counts_the_rows_of_its_table(built, key):
    table = key.replace("/", ".")
    assert latest_metadata(built, key)["dagster/row_count"].value == built.query(f"SELECT count(*) FROM {table}")[0][0]


@pytest.mark.parametrize("key", MODELS)
def test_a_dbt_materialization_has_the_typed_columns_of_its_table(built, key):
    schema = latest_metadata(built, key)["dagster/column_schema"].schema
    assert [(c.name, c.type) for c in schema.columns] == warehouse_columns(built, key)


def test_the_column_schema_carries_the_yml_descriptions(built):
    import json

    manifest = json.loads(dbt_project.manifest_path.read_text())
    documented = manifest["nodes"]["model.flightops_warehouse.fct_flights"]["columns"]["flight_id"]["description"]
    columns = {c.name: c for c in latest_metadata(built, "marts/fct_flights")["dagster/column_schema"].schema.columns}
    assert documented and columns["flight_id"].description == documented


@dataclass
class StubDbt:
    """A dbt resource whose one invocation reports the given events, then fails (or not)."""

    manifest: dict
    events: list
    error: Exception | None = None
    calls: list = field(default_factory=list)

    def invoke(self, context, command) -> DbtInvocation:
        self.calls.append(command)
        return DbtInvocation(self.events, self.manifest, self.error)


class StubContext:
    """What `build` asks of a step's context when the file is free: a log, an output's asset, and whether
    the assets are partitioned (not here: every event carries all its table's metadata)."""

    class log:
        @staticmethod
        def info(message: str) -> None:
            pass

    class assets_def:
        partitions_def = None

    @staticmethod
    def asset_key_for_output(output_name: str) -> dg.AssetKey:
        return dg.AssetKey(output_name.split("__"))


@pytest.mark.unit
def test_a_failed_build_still_reports_its_tables_then_fails(tmp_path: Path):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    with duckdb.connect(str(warehouse.file)) as con:
        con.execute("CREATE SCHEMA marts; CREATE TABLE marts.dim_x (id VARCHAR, n INTEGER); "
                    "INSERT INTO marts.dim_x VALUES ('a', 1), ('b', 2)")
    model = {"resource_type": "model", "schema": "marts", "alias": "dim_x", "columns": {"ID": {"description": "The key."}}}
    check = dg.AssetCheckResult(asset_key="marts/dim_x", check_name="unique_id", passed=False)
    dbt = StubDbt({"nodes": {"model.p.dim_x": model}},
                  [dg.Output(None, "marts__dim_x", metadata={"unique_id": "model.p.dim_x"}), check],
                  error=DbtInvocationError("dbt failed"))
    events = []
    with pytest.raises(DbtInvocationError, match="dbt failed"):
        events.extend(build(StubContext(), dbt, warehouse))
    assert dbt.calls == [["build", "--exclude-resource-type", "unit_test"]]
    metadata = events[0].metadata
    assert metadata["dagster/row_count"].value == 2
    assert [(c.name, c.type, c.description) for c in metadata["dagster/column_schema"].schema.columns] == [
        ("id", "VARCHAR", "The key."), ("n", "INTEGER", None)]
    assert events[1] is check


@pytest.fixture(scope="module")
def graph() -> dg.AssetGraph:
    from flightops.definitions import defs

    return defs.resolve_asset_graph()


def test_no_asset_shows_an_unserializable_metadata_value(graph):
    shown = {
        f"{key.to_user_string()}: {label}"
        for key in graph.get_all_asset_keys()
        for label, value in normalize_metadata(graph.get(key).metadata, allow_invalid=True).items()
        if label not in HIDDEN_BY_THE_UI and "(unserializable)" in str(getattr(value, "value", ""))
    }
    assert not shown, sorted(shown)


def test_every_asset_has_its_groups_team_as_owner(graph):
    owners = {key.to_user_string(): (graph.get(key).group_name, graph.get(key).owners)
              for key in graph.get_all_asset_keys()}
    assert all(names and all(n.startswith("team:") for n in names) for _, names in owners.values()), owners
    assert owners["marts/fct_flights"][1] == ["team:data-engineering"]
    assert owners["models/champion"][1] == ["team:ml-engineering"]


def analyst_dbt(scratch: Path, *args: str) -> str:
    """The dbt CLI as an analyst runs it in dbt_project/ (README: dbt for analysts) on the platform's warehouse,
    without Dagster's window variables; returns the SQL it ran for fct_flights."""
    env = {k: v for k, v in os.environ.items() if k not in WINDOW_VARIABLES}
    done = subprocess.run([str(Path(sys.executable).parent / "dbt"), *args, "--select", "fct_flights",
                           "--target-path", str(scratch), "--log-path", str(scratch)],
                          cwd=dbt_project.project_dir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    return next(scratch.glob("run/**/fct_flights.sql")).read_text()


def test_an_analysts_window_is_replaced_even_with_full_refresh_and_no_window_rebuilds_every_date(built, tmp_path):
    """The window is read when dbt executes (`should_full_refresh`, `replace_where`): with one, --full-refresh
    still replaces only that window (a full refresh from its rows would drop every other date); without
    one, the table is rebuilt whole. Either way the fact table keeps exactly the clean flights."""
    counts = "SELECT flight_date::VARCHAR, count(*) FROM marts.fct_flights GROUP BY 1 ORDER BY 1"
    clean = built.query("SELECT flight_date::VARCHAR, count(*) FROM clean.flights WHERE flight_date <= '2013-01-02' "
                        "GROUP BY 1 ORDER BY 1")
    assert built.query(counts) == clean and len(clean) == 2

    window = json.dumps({"start_date": "2013-01-02", "end_date": "2013-01-02"})
    ran = analyst_dbt(tmp_path / "window", "run", "--full-refresh", "--vars", window)
    assert "delete from" in ran and "flight_date between date '2013-01-02' and date '2013-01-02'" in ran, ran[:500]
    assert built.query(counts) == clean

    ran = analyst_dbt(tmp_path / "whole", "run")
    assert re.search(r"create\s+table", ran) and "delete from" not in ran, ran[:500]
    assert built.query(counts) == clean


def test_a_runs_dbt_steps_run_the_data_tests_not_the_unit_tests(built):
    """dbt's unit tests (fixed rows, tests/test_dbt_unit_tests.py) stay out of a run; its data tests, the asset
    checks, run on the rebuilt tables. The daily step's models are the ones with unit tests."""
    ran = json.loads((built.settings.data_dir / "dbt" / "dbt_daily_models" / "run_results.json").read_text())
    kinds = Counter(result["unique_id"].split(".")[0] for result in ran["results"])
    assert kinds["unit_test"] == 0, kinds
    assert kinds["model"] == 3 and kinds["test"] >= 10, kinds
    assert all(result["status"] in ("success", "pass") for result in ran["results"]), ran["results"]


def test_a_later_window_reuses_the_steps_dbt_folder_and_parses_only_what_changed(built, monkeypatch):
    """The data folder's first run parsed the whole project ahead, in a process of its own (dbt_runner.ParseAhead):
    its first dbt step started from that saved parse if it was done by then, dbt taking it whole (no file parsed
    again), or parsed the whole project itself (a short run on a busy machine). Each dbt step keeps its
    artifacts in one folder under the data folder, so a new run's process finds dbt's partial-parse file
    there: a new window (environment variables, read only when dbt executes) re-parses no file. Within one
    process the parsed project is reused: the run's second dbt step, and a later run, parse nothing. (Runs
    last: it adds a day to the module's platform.)"""
    folders = built.settings.data_dir / "dbt"
    steps = ("dbt_warehouse_models", "dbt_daily_models")

    def events() -> list[dict]:
        return [json.loads(line) for step in steps for line in (folders / step / "dbt.log").read_text().splitlines()]

    def full_parses() -> int:
        """dbt invocations that parsed the whole project (one or more UnableToPartialParse events)."""
        return len({e["info"]["invocation_id"] for e in events() if e["info"]["name"] == "UnableToPartialParse"})

    def partial_parses() -> list[int]:
        """The files each partial parse found added, changed or deleted, one count per invocation."""
        return [sum(e["data"][k] for k in ("added", "changed", "deleted")) for e in events()
                if e["info"]["name"] == "PartialParsingEnabled"]

    transform = keys_in_groups(groups.INGESTION, groups.VALIDATION, groups.TRANSFORM)
    before = {day: n for day, n in built.query("SELECT flight_date::VARCHAR, count(*) FROM marts.fct_flights GROUP BY 1")}
    first_run = min(built.instance.get_run_records(), key=lambda record: record.create_timestamp).dagster_run.run_id
    took_ahead = any("parse saved ahead" in (entry.message or "") for entry in built.instance.all_logs(first_run))
    first_full = 0 if took_ahead else 1  # the step's own parse of the whole project, if it did not start from the parse ahead
    # The second step reused the first one's parse.
    assert (full_parses(), partial_parses()) == (first_full, [0] if took_ahead else []), took_ahead
    partial_before = partial_parses()
    monkeypatch.setattr(dbt_runner, "_parsed", None)  # as in a new run's process: nothing parsed yet
    result = built.run("2013-01-03", "2013-01-03", transform)
    assert result.success, failure_messages(result)

    assert full_parses() == first_full, "the new window made dbt re-parse the whole project"
    assert partial_parses()[len(partial_before):] == [0], partial_parses()  # one parse, no file re-parsed
    assert sorted(path.name for path in folders.iterdir()) == sorted(steps)
    assert all((folders / step / "partial_parse.msgpack").exists() for step in steps)
    after = {day: n for day, n in built.query("SELECT flight_date::VARCHAR, count(*) FROM marts.fct_flights GROUP BY 1")}
    (clean_day3,) = built.query("SELECT count(*) FROM clean.flights WHERE flight_date = '2013-01-03'")[0]
    assert after == {**before, "2013-01-03": clean_day3} and clean_day3 > 0

    partial_before = partial_parses()
    result = built.run("2013-01-03", "2013-01-03", transform)  # the same process again: the parsed project serves
    assert result.success, failure_messages(result)
    assert partial_parses() == partial_before and full_parses() == first_full
    assert {day: n for day, n in built.query("SELECT flight_date::VARCHAR, count(*) FROM marts.fct_flights GROUP BY 1")} == after


def test_dbt_leaves_the_warehouse_file_free_for_this_process_and_others(built):
    """dbt runs inside the step's process and dbt-duckdb keeps its database open after an invocation;
    flightops.dbt_runner closes it, or every later step and process would meet a lock."""
    file = built.settings.warehouse
    other = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()", str(file)],
                           capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    with duckdb.connect(str(file), config={"threads": 1}) as con:  # a configuration dbt's connection does not have
        (rows,) = con.execute("SELECT count(*) FROM marts.fct_flights").fetchone()
    assert rows == built.query("SELECT count(*) FROM clean.flights")[0][0] > 0  # the fact table has every clean flight


def test_a_dbt_failure_names_the_error_the_log_and_what_to_do(tmp_path: Path):
    """dbt's own error lines reach the step's failure, with where dbt's log is and what to do, and the file
    is free afterwards: the warehouse models on an empty warehouse (no clean tables to read)."""
    from assets.transform import dbt_warehouse_models

    with private_platform(tmp_path / "platform") as platform:
        result = platform.run("2013-01-01", "2013-01-01", list(dbt_warehouse_models.keys))
        assert not result.success
        message = failure_messages(result)
        log = platform.settings.data_dir / "dbt" / "dbt_warehouse_models" / "dbt.log"
        assert "`dbt build --exclude-resource-type unit_test` failed (dbt's log: " + str(log) in message, message
        assert "Runtime Error in model stg_flights" in message and 'Table with name "clean.flights" does not exist' in message
        assert "materialize the assets upstream of this step first" in message
        assert log.exists()
        with duckdb.connect(str(platform.settings.warehouse), config={"threads": 1}) as con:
            assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts'").fetchone() == (0,)
