"""dbt inside the step's process (flightops/dbt_runner.py): when it is interrupted, the step stops only once
the threads dbt started are done, then closes the warehouse; a data folder's first parse is started ahead, in a
process of its own, and ended with the run."""

import json
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from flightops import dbt_runner
from flightops.resources import DbtResource, WarehouseResource
from flightops.settings import DBT_PROJECT_DIR


@pytest.mark.unit
def test_finish_threads_waits_for_each_thread_up_to_its_bound():
    statement_done = threading.Event()
    model = threading.Thread(target=statement_done.wait, daemon=True)
    model.start()
    assert dbt_runner.finish_threads({model}, time.monotonic() + 0.05) == [model]  # still in its statement
    statement_done.set()
    assert dbt_runner.finish_threads({model}, time.monotonic() + 10) == []
    assert not model.is_alive()


class InterruptedDbt:
    """dbt returning from Ctrl-C while its model thread still runs its statement (its cleanup failed first)."""

    finished: list[str] = []

    def __init__(self, manifest=None, callbacks=()):
        pass

    def invoke(self, args):
        def model():
            time.sleep(0.3)  # the statement under way when the interrupt came
            InterruptedDbt.finished.append("model thread")

        threading.Thread(target=model, name="dbt-model", daemon=True).start()
        return SimpleNamespace(success=False, exception=KeyboardInterrupt(), result=None)


@pytest.mark.unit
def test_an_interrupted_invocation_waits_for_dbts_thread_before_closing_the_warehouse(monkeypatch, tmp_path):
    import dbt.cli.main

    order = InterruptedDbt.finished = []
    monkeypatch.setattr(dbt.cli.main, "dbtRunner", InterruptedDbt)
    monkeypatch.setattr(dbt_runner, "parsed_manifest", lambda *args: None)
    monkeypatch.setattr(dbt_runner, "get_updated_cli_invocation_params_for_context", lambda **kwargs: SimpleNamespace(
        selection_args=[], indirect_selection=None))
    monkeypatch.setattr(dbt_runner, "release_warehouse", lambda deadline: order.append("warehouse closed"))
    context = SimpleNamespace(log=SimpleNamespace(warning=lambda message: order.append(message)))

    with pytest.raises(KeyboardInterrupt):
        dbt_runner.invoke(context, tmp_path, tmp_path, tmp_path / "target", ["build"], {})
    assert order == ["model thread", "warehouse closed"]
    assert not [thread for thread in threading.enumerate() if thread.name == "dbt-model"]


# --- a data folder's first parse, started ahead in a process of its own (dbt_runner.ParseAhead) ------------------

def dbt_resource(data_dir: Path) -> DbtResource:
    return DbtResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), data_dir=str(data_dir),
                       warehouse=WarehouseResource(path=str(data_dir / "warehouse.duckdb")))


def parse_events(target_path: Path) -> list[str]:
    """The names of dbt's events in a target path's log (JSON lines)."""
    return [json.loads(line)["info"]["name"] for line in (target_path / "dbt.log").read_text().splitlines()]


@pytest.mark.unit
def test_a_parse_ahead_saves_the_parse_the_step_then_starts_from(tmp_path, monkeypatch):
    dbt = dbt_resource(tmp_path)
    ahead = dbt_runner.ParseAhead(DBT_PROJECT_DIR, DBT_PROJECT_DIR, dbt.folder, dbt.vars)
    step = dbt.folder / "a_step"
    assert ahead.take(step, wait_seconds=120)
    assert ahead.process.returncode == 0
    assert sorted(path.name for path in dbt.folder.iterdir()) == ["a_step"]  # its own folder is gone
    # The step's parse (in this process, as a run's first dbt step does it) takes the saved parse whole: dbt
    # found the same project, profile and vars, and re-parsed no file.
    monkeypatch.setattr(dbt_runner, "_parsed", None)
    dbt_runner.parsed_manifest(DBT_PROJECT_DIR, DBT_PROJECT_DIR, step, dbt.vars)
    events = parse_events(step)
    assert "PartialParsingEnabled" in events and "UnableToPartialParse" not in events, events


@pytest.mark.unit
def test_a_parse_ahead_not_done_when_the_step_starts_is_ended_not_waited_for(tmp_path):
    dbt = dbt_resource(tmp_path)
    ahead = dbt_runner.ParseAhead(DBT_PROJECT_DIR, DBT_PROJECT_DIR, dbt.folder, dbt.vars)
    assert not ahead.take(dbt.folder / "a_step")  # still importing dbt: the step parses itself
    assert ahead.process.returncode == -signal.SIGKILL  # ended, not waited for until it finished
    assert list(dbt.folder.iterdir()) == []


@pytest.mark.unit
def test_a_failed_parse_ahead_leaves_nothing_and_the_step_parses_itself(tmp_path):
    dbt = dbt_resource(tmp_path)
    ahead = dbt_runner.ParseAhead(tmp_path / "no_project", DBT_PROJECT_DIR, dbt.folder, dbt.vars)
    assert not ahead.take(dbt.folder / "a_step", wait_seconds=120)
    assert ahead.process.returncode not in (0, None)
    assert list(dbt.folder.iterdir()) == []


@pytest.mark.unit
def test_a_parse_ahead_is_ended_and_removed_when_the_run_ends_first(tmp_path):
    dbt = dbt_resource(tmp_path)
    dbt.setup_for_execution(dg.build_init_resource_context())
    running = dbt._parse_ahead
    assert running is not None and running.process.poll() is None  # no saved parse in the data folder: started
    dbt.teardown_after_execution(dg.build_init_resource_context())
    assert running.process.returncode is not None and dbt._parse_ahead is None
    assert list(dbt.folder.iterdir()) == []


@pytest.mark.unit
def test_no_parse_ahead_where_a_step_has_saved_one(tmp_path):
    dbt = dbt_resource(tmp_path)
    (dbt.folder / "a_step").mkdir(parents=True)
    (dbt.folder / "a_step" / dbt_runner.PARTIAL_PARSE_FILE).write_bytes(b"saved")
    dbt.setup_for_execution(dg.build_init_resource_context())
    assert dbt._parse_ahead is None
