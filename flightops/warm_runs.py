"""Runs the daemon and the UI launch, forked from a worker that has imported the code location already.

Dagster's default launcher has the code server start each run as a new `spawn`ed process
(dagster/_grpc/server.py), which imports the code location and everything its steps use again: a new
day's run pays dbt, MLflow, Evidently, CatBoost and the definitions, 10-16 s of its 26-33 s (`make
bench`), every day the landing sensor launches one. `WarmRunLauncher` keeps one worker process per code
location that imports them once (`preload_modules` in dagster.yaml) and forks a child per run; the child
runs what Dagster's `dagster api execute_run` command (the one the Docker and Kubernetes launchers give
their containers) runs, so the run records, checks and fails exactly as a default one.

- **Fork safety**: the worker only imports; it opens no connection, file or thread before forking
  (checked when it starts: a preloaded module that starts a thread makes the worker refuse to start).
  Each run opens its own DuckDB, SQLite and MLflow connections in its child.
- **Code changes**: a worker runs the code it imported. Before each fork it compares the files of its
  modules under the code location's working directory, and the files in `watch` (the dbt manifest the
  assets are built from, `.env`), with when it imported them; one changed means the worker exits and
  the launcher starts a new one, which imports the new code (that run waits for the imports, as every
  run did with the default launcher).
- **Stopping a run** from the UI (which has its own launcher, not the daemon's worker): the run's process
  is in its tags, as a `flightops run`'s is (flightops.run_guard: pid, host, start time); `terminate`
  sends it SIGINT, as Dagster's code server does to its runs, and Dagster marks the run canceled. A
  run whose process was killed is cleaned like a killed `flightops run`'s (`flightops runs clean`).
- **Lifetime**: the worker reads its orders on stdin and exits when that closes (the daemon stopped or
  disposed of its instance). A run already forked finishes on its own.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.launcher.base import LaunchRunContext, RunLauncher
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from flightops.run_guard import CLEAN_COMMAND, HOST_TAG, PID_TAG, process_tags, run_process_gone

# How long a new worker may take to import its modules (about 13 s alone on this machine kind).
READY_TIMEOUT_SECONDS = 300
# How long a warm worker may take to answer an order (a fork and a few stat calls).
REPLY_TIMEOUT_SECONDS = 60


class WorkerGone(Exception):
    """The worker exited or stopped answering; the message says what it reported, if anything."""


class WarmWorker:
    """One worker process, seen from the launcher: started, asked to fork a run, stopped."""

    def __init__(self, executable: str, working_directory: str, preload: Sequence[str], watch: Sequence[str]) -> None:
        # The launcher's working directory, as the code server's runs have: Dagster's run command loads the `.env`
        # of the current directory, which the code location's directory (the repository's `.env`) need not be.
        config = {"path": working_directory, "preload": list(preload), "watch": list(watch)}
        self.process = subprocess.Popen([executable, "-m", "flightops.warm_runs", json.dumps(config)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.started = time.time()
        try:
            reply = self._reply(READY_TIMEOUT_SECONDS)
            if "ready" not in reply:
                raise WorkerGone(reply.get("error", f"it answered {reply}"))
        except WorkerGone:
            self.process.kill()  # it has exited already, unless it hangs in its imports
            self.process.wait()
            raise

    def fork(self, run_id: str, execute_run_args: str) -> dict:
        """Ask for `run_id` to be forked; the reply has the child's pid, or why there is none (`stale`)."""
        try:
            self.process.stdin.write(json.dumps({"run_id": run_id, "args": execute_run_args}) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise WorkerGone(f"its stdin is closed ({error})") from None
        return self._reply(REPLY_TIMEOUT_SECONDS)

    def _reply(self, timeout: float) -> dict:
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if readable else ""
        if not line:
            code = self.process.poll()
            raise WorkerGone(f"it exited with code {code}" if code is not None else f"no answer within {timeout:g} s")
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Close its orders: it exits once it has read them (its forked runs go on)."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as a fork of a worker that has imported the run's code location (see the module docstring)."""

    def __init__(self, preload_modules: Sequence[str] = (), watch: Sequence[str] = (),
                 inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self.preload_modules = list(preload_modules)
        self.watch = list(watch)
        self._workers: dict[tuple[str, str, str], WarmWorker] = {}
        self._lock = threading.Lock()
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        from dagster import Array, Field

        return {
            "preload_modules": Field(Array(str), is_required=False, default_value=[],
                                     description="Modules the worker imports before it forks runs (beside the code location's)."),
            "watch": Field(Array(str), is_required=False, default_value=[],
                           description="Files, relative to the code location's working directory, whose change restarts the worker."),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> WarmRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        from dagster._grpc.types import ExecuteRunArgs
        from dagster._serdes import serialize_value

        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise DagsterLaunchFailedError(f"Run {run.run_id} has no code origin: the warm launcher cannot tell which code to run.")
        pointer = origin.repository_origin.code_pointer
        working_directory = getattr(pointer, "working_directory", None) or os.getcwd()
        module = getattr(pointer, "module", None)  # a `python_file` code location is loaded by each run itself
        args = serialize_value(ExecuteRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref(),
                                              set_exit_code_on_failure=True))
        key = (origin.executable_path, working_directory, str(module or getattr(pointer, "python_file", "")))
        with self._lock:
            reply, worker = self._fork(key, module, run.run_id, args)
        self._instance.add_run_tags(run.run_id, process_tags(reply["pid"]))
        self._instance.report_engine_event(
            f"Forked run process {reply['pid']} from the warm worker {worker.process.pid}, which imported {module or 'nothing of the code location'} "
            f"and {len(self.preload_modules)} preloaded modules {time.time() - worker.started:.0f} s ago.",
            run, cls=self.__class__)

    def _fork(self, key: tuple[str, str, str], module: str | None, run_id: str, args: str) -> tuple[dict, WarmWorker]:
        """The fork's reply and its worker: a worker started if there is none, restarted once if it was stale or gone."""
        for attempt in (1, 2):
            worker = self._workers.get(key)
            try:
                if worker is None or not worker.alive:
                    worker = self._workers[key] = WarmWorker(key[0], key[1], [m for m in (module, *self.preload_modules) if m], self.watch)
                reply = worker.fork(run_id, args)
            except WorkerGone as gone:
                self._workers.pop(key, None)
                if attempt == 2 or worker is None:
                    raise DagsterLaunchFailedError(
                        f"The warm run worker for {key[2]} (in {key[1]}, {key[0]}) could not start run {run_id}: {gone}. "
                        "Its own output is in the daemon's log (`make ui`'s terminal). Fix the error it names, or set "
                        "`run_launcher` back to Dagster's default in dagster.yaml.") from None
                continue
            if "pid" in reply:
                return reply, worker
            self._workers.pop(key, None)  # stale: it has exited; the next attempt starts one with the new code
            worker.stop()
        raise DagsterLaunchFailedError(f"The warm run worker for {key[2]} did not fork run {run_id}: {reply}")

    def terminate(self, run_id: str) -> bool:
        if not self.has_instance:
            return False
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        if PID_TAG not in run.tags or run_process_gone(run) or run.tags.get(HOST_TAG) != socket.gethostname():
            self._instance.report_engine_event(
                f"Could not interrupt the run's process (tags {PID_TAG}={run.tags.get(PID_TAG)!r}, "
                f"{HOST_TAG}={run.tags.get(HOST_TAG)!r}): it is gone, on another host, or was never forked. "
                f"`{CLEAN_COMMAND}` marks a run whose process is gone failed.", run, cls=self.__class__)
            return False
        os.kill(int(run.tags[PID_TAG]), signal.SIGINT)
        return True

    def dispose(self) -> None:
        with self._lock:
            for worker in self._workers.values():
                worker.stop()
            self._workers.clear()


# ---- The worker process: `python -m flightops.warm_runs '{"path": ..., "preload": [...], "watch": [...]}'` ----

def _answer(out: IO[str], message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _module_files(root: Path) -> dict[str, float]:
    """The modification time of each loaded module's file under `root`."""
    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(root):
            files[path] = os.stat(path).st_mtime
    return files


def _changed(files: Mapping[str, float]) -> str | None:
    for path, mtime in files.items():
        try:
            now = os.stat(path).st_mtime
        except FileNotFoundError:
            now = None
        if now != mtime:
            return path
    return None


def _run_child(payload: str) -> None:
    """In the forked child: the body of Dagster's `dagster api execute_run` on the run, then the interpreter's exit
    (the worker only imported: its exit handlers are the ones a run's own process would run). Not the command
    itself: it would load the `.env` of the current directory over the environment, which the code server's
    runs do not (a test's or a benchmark's private settings would lose)."""
    code = 1
    try:
        os.dup2(2, 1)  # the run's output goes where the worker's does, not into its replies (fd 1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the worker's orders are not the run's
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from dagster._cli.api import _execute_run_command_body
        from dagster._core.instance import DagsterInstance
        from dagster._grpc.types import ExecuteRunArgs
        from dagster._serdes import deserialize_value
        from dagster._utils.interrupts import capture_interrupts

        args = deserialize_value(payload, ExecuteRunArgs)
        with capture_interrupts(), DagsterInstance.from_ref(args.instance_ref) as instance:
            code = _execute_run_command_body(args.run_id, instance, lambda event: None, set_exit_code_on_failure=True)
    except BaseException:
        traceback.print_exc()
    sys.exit(code)  # never back into the worker's loop


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def worker_main(config: Mapping[str, Any]) -> int:
    import importlib

    replies = sys.stdout
    sys.stdout = sys.stderr  # what the preloaded modules print must not be taken for a reply
    root = Path(config["path"]).resolve()
    sys.path.insert(0, str(root))  # as Dagster's code pointer does for the code location's module
    try:
        for name in config["preload"]:
            importlib.import_module(name)
        threads = [thread.name for thread in threading.enumerate() if thread is not threading.main_thread()]
        if threads:
            raise RuntimeError(f"the preloaded modules started threads {threads}; a fork would copy them half-made. "
                               "Remove the module that starts them from preload_modules in dagster.yaml.")
    except BaseException:
        _answer(replies, {"error": f"importing {config['preload']} failed:\n{traceback.format_exc()}"})
        return 1
    files = _module_files(root)
    for name in config["watch"]:
        path = root / name
        files[str(path)] = os.stat(path).st_mtime if path.exists() else None
    _answer(replies, {"ready": os.getpid(), "modules": len(sys.modules)})
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 1.0)
        _reap()
        if not readable:
            continue
        line = sys.stdin.readline()
        if not line:
            return 0
        order = json.loads(line)
        changed = _changed(files)
        if changed:
            _answer(replies, {"stale": f"{changed} changed since this worker imported it"})
            return 0
        pid = os.fork()
        if pid == 0:
            _run_child(order["args"])
        _answer(replies, {"run_id": order["run_id"], "pid": pid})


if __name__ == "__main__":
    sys.exit(worker_main(json.loads(sys.argv[1])))
