"""dbt inside the step's process, when it is interrupted (flightops/dbt_runner.py): the step stops only once
the threads dbt started are done, then closes the warehouse."""

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
