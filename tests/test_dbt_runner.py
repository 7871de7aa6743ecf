"""dbt inside the step's process (flightops/dbt_runner.py): when it is interrupted, the step stops only once
the threads dbt started are done, then closes the warehouse; a new data folder's step starts from the
checkout's copy of dbt's saved parse."""

import os
from pathlib import Path
import threading
import time
from types import SimpleNamespace

import pytest

from flightops import dbt_runner


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


# --- dbt's saved parse for a new data folder ----------------------------------------------------------

VARS = {"flightops_database": "warehouse"}
PROJECT = Path("dbt_project")


@pytest.fixture
def checkout_copies(monkeypatch, tmp_path):
    """The checkout's copies of saved parses in a folder of the test's own."""
    monkeypatch.setattr(dbt_runner, "SAVED_PARSES", tmp_path / "cache")
    return tmp_path / "cache"


def write(path, text: str, mtime_ns: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.mark.unit
def test_a_step_folder_gets_its_siblings_newest_saved_parse_else_the_checkouts(checkout_copies, tmp_path):
    data = tmp_path / "data" / "dbt"
    write(dbt_runner.saved_parse_template(PROJECT, VARS), "checkout's")
    dbt_runner.seed_saved_parse(PROJECT, data / "first_step", VARS)
    assert (data / "first_step" / dbt_runner.PARTIAL_PARSE_FILE).read_text() == "checkout's"  # a new data folder

    write(data / "first_step" / dbt_runner.PARTIAL_PARSE_FILE, "older sibling's", mtime_ns=1_000_000_000)
    write(data / "other_step" / dbt_runner.PARTIAL_PARSE_FILE, "newer sibling's", mtime_ns=2_000_000_000)
    dbt_runner.seed_saved_parse(PROJECT, data / "new_step", VARS)
    assert (data / "new_step" / dbt_runner.PARTIAL_PARSE_FILE).read_text() == "newer sibling's"

    dbt_runner.seed_saved_parse(PROJECT, data / "first_step", VARS)  # has one: left as it is
    assert (data / "first_step" / dbt_runner.PARTIAL_PARSE_FILE).read_text() == "older sibling's"


@pytest.mark.unit
def test_without_a_copy_for_its_vars_a_new_folder_gets_none(checkout_copies, tmp_path):
    write(dbt_runner.saved_parse_template(PROJECT, {"flightops_database": "other"}), "another database's")
    dbt_runner.seed_saved_parse(PROJECT, tmp_path / "data" / "dbt" / "step", VARS)
    assert not (tmp_path / "data" / "dbt" / "step" / dbt_runner.PARTIAL_PARSE_FILE).exists()
    assert dbt_runner.saved_parse_template(PROJECT, VARS) not in (
        dbt_runner.saved_parse_template(PROJECT, {"flightops_database": "other"}),
        dbt_runner.saved_parse_template(Path("another_project"), VARS))


@pytest.mark.unit
def test_the_checkouts_copy_is_the_newest_saved_parse(checkout_copies, tmp_path):
    step = tmp_path / "data" / "dbt" / "step"
    template = dbt_runner.saved_parse_template(PROJECT, VARS)
    dbt_runner.keep_saved_parse(PROJECT, step, VARS)  # nothing saved yet: nothing kept
    assert not template.exists()

    write(step / dbt_runner.PARTIAL_PARSE_FILE, "first parse", mtime_ns=1_000_000_000)
    dbt_runner.keep_saved_parse(PROJECT, step, VARS)
    assert template.read_text() == "first parse"

    write(step / dbt_runner.PARTIAL_PARSE_FILE, "an older folder's parse", mtime_ns=500_000_000)
    dbt_runner.keep_saved_parse(PROJECT, step, VARS)
    assert template.read_text() == "first parse"  # the copy is newer: kept

    write(step / dbt_runner.PARTIAL_PARSE_FILE, "a new parse", mtime_ns=template.stat().st_mtime_ns + 1)
    dbt_runner.keep_saved_parse(PROJECT, step, VARS)
    assert template.read_text() == "a new parse"
    assert sorted(path.name for path in checkout_copies.iterdir()) == [template.name]  # no staged file left


@pytest.mark.unit
def test_a_copy_that_cannot_be_written_is_logged_and_the_step_goes_on(monkeypatch, tmp_path, caplog):
    blocked = write(tmp_path / "not-a-folder", "a file where the folder would be")
    monkeypatch.setattr(dbt_runner, "SAVED_PARSES", blocked / "dbt")
    step = tmp_path / "data" / "dbt" / "step"
    write(step / dbt_runner.PARTIAL_PARSE_FILE, "a parse")
    dbt_runner.keep_saved_parse(PROJECT, step, VARS)
    assert "was not kept for new data folders" in caplog.text and str(step) in caplog.text
