"""The warm launcher (flightops/warm_runs.py): runs forked from one worker, its code kept current, runs stopped.

Real runs of a small job (tests/warm_runs_job.py) on a private SQLite instance whose run launcher is the
warm one, launched as the daemon launches them (`instance.launch_run`). The platform's own runs under
the daemon go through it too (tests/test_monitoring_loop.py's daemon test).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._core.errors import DagsterLaunchFailedError

from flightops.pipeline import instance_config_with_storage_in
from flightops.run_guard import PID_TAG
from flightops.settings import REPO_ROOT
from flightops.warm_runs import WarmRunLauncher, WarmWorker, WorkerGone
from tests.dagster_dev import wait_for
from tests.warm_runs_job import PRELOADED, probe_job

JOB_MODULE = Path(__file__).with_name("warm_runs_job.py")


def instance_yaml(storage: Path, preload: list[str], watch: list[str]) -> str:
    return (
        f"storage:\n  sqlite:\n    base_dir: {storage}\n"
        "run_launcher:\n  module: flightops.warm_runs\n  class: WarmRunLauncher\n"
        f"  config:\n    preload_modules: {json.dumps(preload)}\n    watch: {json.dumps(watch)}\n"
        "telemetry:\n  enabled: false\n"
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "marker").write_text("1")
    (tmp_path / "dagster.yaml").write_text(instance_yaml(tmp_path / "storage", [PRELOADED], [str(tmp_path / "marker")]))
    return tmp_path


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def launch(instance: dg.DagsterInstance, out: Path, seconds: float = 0.0) -> dg.DagsterRun:
    """A probe_job run created with its code origin and launched through the instance's launcher."""
    run = instance.create_run_for_job(
        job_def=probe_job, run_config={"ops": {"report_process": {"config": {"out": str(out), "seconds": seconds}}}},
        job_code_origin=dg.reconstructable(probe_job).get_python_origin())
    return instance.launch_run(run.run_id, workspace=None)


def finished(instance: dg.DagsterInstance, run_id: str, timeout: float = 120) -> dg.DagsterRun:
    return wait_for(lambda: (run := instance.get_run_by_id(run_id)).is_finished and run, timeout=timeout, interval=0.2,
                    what=f"run {run_id} to finish")


def gone(pid: int) -> bool:
    """Whether the process has exited (a zombie not yet reaped by its parent has)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def engine_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.message for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]


def test_runs_are_forked_from_one_worker_that_imported_their_code(instance: dg.DagsterInstance, tmp_path: Path):
    assert isinstance(instance.run_launcher, WarmRunLauncher)
    reports = []
    for name in ("first", "second"):
        run = finished(instance, launch(instance, tmp_path / name).run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        report = json.loads((tmp_path / name).read_text())
        reports.append(report)
        # The run's process is recorded as a `flightops run`'s is, so a stop or a clean-up can find it.
        assert run.tags[PID_TAG] == str(report["pid"])
        assert any(f"Forked run process {report['pid']} from the warm worker {report['parent']}," in message
                   for message in engine_messages(instance, run.run_id))
    worker = psutil.Process(reports[0]["parent"])
    assert reports[0]["parent"] == reports[1]["parent"] and reports[0]["pid"] != reports[1]["pid"]
    assert worker.is_running() and "flightops.warm_runs" in " ".join(worker.cmdline())
    # The worker imported the module before forking: the run did not import it.
    assert all(report["preloaded"] for report in reports)
    instance.run_launcher.dispose()
    worker.wait(timeout=15)  # its orders closed, it exits


def test_a_changed_module_or_watched_file_gives_a_new_worker(instance: dg.DagsterInstance, home: Path, tmp_path: Path):
    first = finished(instance, launch(instance, tmp_path / "a").run_id)
    old_worker = json.loads((tmp_path / "a").read_text())["parent"]
    # The job's module, a file under the working directory the worker imported, changes (its time, as an edit would).
    stat = JOB_MODULE.stat()
    os.utime(JOB_MODULE, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        second = finished(instance, launch(instance, tmp_path / "b").run_id)
    finally:
        os.utime(JOB_MODULE, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    new_worker = json.loads((tmp_path / "b").read_text())["parent"]
    assert first.status == second.status == dg.DagsterRunStatus.SUCCESS
    assert new_worker != old_worker
    wait_for(lambda: gone(old_worker), timeout=30, interval=0.2, what=f"the stale worker {old_worker} to exit")
    # A watched file (dagster.yaml's `watch`, e.g. the dbt manifest) changes: another new worker.
    (home / "marker").write_text("2")
    finished(instance, launch(instance, tmp_path / "c").run_id)
    assert json.loads((tmp_path / "c").read_text())["parent"] not in (old_worker, new_worker)


def test_terminate_interrupts_the_forked_run(instance: dg.DagsterInstance, tmp_path: Path):
    run = launch(instance, tmp_path / "long", seconds=120)
    wait_for(lambda: (tmp_path / "long").exists(), timeout=60, interval=0.2, what="the long run's op to start")
    # The UI stops a run through its own process's launcher, which has no worker: only the run's tags.
    with dg.DagsterInstance.from_config(str(tmp_path)) as ui_instance:
        assert ui_instance.run_launcher.terminate(run.run_id) is True
    started = time.monotonic()
    stopped = finished(instance, run.run_id, timeout=60)
    assert stopped.status == dg.DagsterRunStatus.CANCELED
    assert time.monotonic() - started < 60
    pid = json.loads((tmp_path / "long").read_text())["pid"]
    wait_for(lambda: gone(pid), timeout=30, interval=0.2, what=f"the canceled run's process {pid} to exit")
    assert instance.run_launcher.terminate(run.run_id) is False  # finished: nothing to stop


def test_a_worker_that_cannot_import_fails_the_launch_with_its_error(tmp_path: Path):
    (tmp_path / "dagster.yaml").write_text(instance_yaml(tmp_path / "storage", ["no_such_module_here"], []))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        with pytest.raises(DagsterLaunchFailedError) as raised:
            launch(instance, tmp_path / "never")
        run = instance.get_runs(limit=1)[0]
        assert run.status == dg.DagsterRunStatus.FAILURE
    message = str(raised.value)
    assert "could not start run" in message and "No module named 'no_such_module_here'" in message
    assert "dagster.yaml" in message  # what to do
    assert not (tmp_path / "never").exists()


def test_a_worker_refuses_modules_that_start_threads(tmp_path: Path):
    (tmp_path / "threaded_probe.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True, name='probe').start()\n")
    with pytest.raises(WorkerGone, match=r"started threads \['probe'\]"):
        WarmWorker(os.sys.executable, str(tmp_path), ["threaded_probe"], [])


def test_the_repository_instance_launches_through_the_warm_launcher(tmp_path: Path):
    """dagster.yaml (what `make ui` and the daemon use) names the launcher, its modules exist, its watched files too."""
    import importlib.util

    (tmp_path / "dagster.yaml").write_text(instance_config_with_storage_in(tmp_path / "storage"))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, WarmRunLauncher)
        missing = [name for name in launcher.preload_modules if importlib.util.find_spec(name) is None]
        assert missing == []
        assert all((REPO_ROOT / name).exists() for name in launcher.watch), launcher.watch
