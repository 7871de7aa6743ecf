"""A private `dagster dev` for tests: its own DAGSTER_HOME, its own environment, no repository `.env`.

Not a test module: import it from a test (`from tests.dagster_dev import dagster_dev, instance_for, wait_for`).

Why each piece is here:

- Every `dagster` CLI command loads `.env` from its *current working directory* over the environment
  (dagster/_cli/utils.py `_inject_local_env_file`). Started from the repository root it would read the
  repository's `.env`, i.e. the repository's `data/` folder, whatever the test set. So the server runs
  with cwd = the test's DAGSTER_HOME (no `.env` there) and the code location is found through a
  workspace.yaml whose `working_directory` is the repository root.
- The platform's sensors are `default_status=RUNNING`: the daemon of this `dagster dev` evaluates them
  against whatever `env` points at. Point every FLIGHTOPS_* setting at private folders
  (`flightops.settings.environment_under`) unless the test wants the sensors to act on something.
- `dagster dev` maps SIGTERM onto its SIGINT handler (dagster/_utils/interrupts.py). A process started
  with SIGINT ignored (a background job of a non-interactive shell, and so possibly this test process and
  everything it starts) keeps it ignored across exec, and `dagster dev` then ignores SIGTERM as well:
  only SIGKILL stopped it, leaving its code servers behind. So the server is started with SIGINT's
  default action (`flightops.cli.interruptible_children`, which `flightops ui` uses too) and stopped with
  SIGTERM to `dagster dev` alone, which shuts its webserver and daemon down (about 10 s); its code
  servers exit by themselves soon after. It runs in its own session, so that the whole process group
  can be waited for, and killed as a last resort (which fails the test: see `_stop`).
- Two processes creating a brand-new SQLite instance at the same moment race ("table ... already
  exists"): `prepare_home` (called by both `dagster_dev` and `instance_for`) opens the instance once, which
  creates runs.db, index.db and schedules.db, before anything else uses the home. A test may therefore
  call `instance_for(home)` before, during or after `dagster_dev(home, ...)`.

Usage from another test:

    from tests.dagster_dev import dagster_dev, instance_for, wait_for

    def test_something(tmp_path):
        home = tmp_path / "dagster_home"
        env = {**os.environ, **environment_under(tmp_path / "data")}  # after load_environment()
        with instance_for(home) as instance:              # same storage as the server below
            ...run jobs in-process on `instance` if needed...
        with dagster_dev(home, env) as url, instance_for(home) as instance:
            requests.post(f"{url}/graphql", json={"query": ...})
            run = wait_for(lambda: instance.get_runs(limit=1), timeout=120, what="a run launched by the sensor")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import dagster as dg
import requests

from flightops.cli import interruptible_children
from flightops.pipeline import instance_config_with_storage_in
from flightops.settings import REPO_ROOT

T = TypeVar("T")

DAGSTER = Path(sys.executable).parent / "dagster"
LOG_NAME = "dagster-dev.log"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], T | None], *, timeout: float, interval: float = 2.0, what: str) -> T:
    """Poll `predicate` until it returns a truthy value and return that value.

    Raises AssertionError naming `what` and the time waited when `timeout` seconds pass first.
    """
    start = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        elapsed = time.monotonic() - start
        if elapsed >= timeout:
            raise AssertionError(f"Timed out after {elapsed:.1f} s (limit {timeout:g} s) waiting for {what}")
        time.sleep(min(interval, max(0.0, timeout - elapsed)))


def instance_config(home: Path) -> str:
    """The repository's dagster.yaml (pools, telemetry, ...) with every storage path moved under `home`."""
    return instance_config_with_storage_in(home / "dagster")


def workspace_config() -> str:
    """One code location, `flightops.definitions`, imported from the repository root whatever the cwd."""
    return (
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: flightops.definitions\n"
        f"      working_directory: {REPO_ROOT.resolve()}\n"
    )


def prepare_home(home: Path) -> Path:
    """Write `home/dagster.yaml` and `home/workspace.yaml` (if missing) and create the instance's storage.

    Idempotent. Creating the SQLite databases here, in one process, before `dagster dev` or a test run
    opens them avoids the race of two processes creating a fresh instance at once.
    """
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(instance_config(home))
    if not (home / "workspace.yaml").exists():
        (home / "workspace.yaml").write_text(workspace_config())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)  # the storages are built (and their tables created) on open
    return home


def instance_for(home: Path) -> dg.DagsterInstance:
    """The Dagster instance of `home` (the same SQLite storage `dagster_dev(home, ...)` serves).

    Prepares the home first (see `prepare_home`). Use it as a context manager, or call `.dispose()`.
    Reads (runs, event log, sensor ticks) and in-process runs (`materialize(..., instance=...)`) on it are
    seen by the server and the other way round.
    """
    return dg.DagsterInstance.from_config(str(prepare_home(home)))


def _log_tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log written)"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(server: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM `dagster dev`, wait for it and then for its process group (code servers) to exit.

    What is still running after `timeout` seconds is killed (SIGKILL to the group), and that is an
    error: `dagster dev` stops on SIGTERM (see the module docstring), so a test should know if it no
    longer does.
    """
    with contextlib.suppress(ProcessLookupError):
        server.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=timeout)
    while _group_alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if not _group_alive(server.pid) and server.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
    raise AssertionError(f"dagster dev (pid {server.pid}) or a process it started did not stop within {timeout:g} s "
                         "of SIGTERM; killed its process group")


@contextlib.contextmanager
def dagster_dev(home: Path, env: dict[str, str], *, timeout: float = 120) -> Iterator[str]:
    """Run `dagster dev` (webserver + daemon) on `home` with exactly `env`; yield its URL.

    `home` becomes DAGSTER_HOME and the working directory (so no repository `.env` is loaded); its
    dagster.yaml is the repository's with the storage moved under `home`, its workspace.yaml loads
    `flightops.definitions` from the repository root. Output goes to `home/dagster-dev.log`. Raises
    RuntimeError with the log's tail if the server exits or does not answer `/server_info` within
    `timeout` seconds.
    """
    home = prepare_home(home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / LOG_NAME
    with open(log, "ab") as out, interruptible_children():
        server = subprocess.Popen(
            [str(DAGSTER), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(home / "workspace.yaml")],
            cwd=home, env={**env, "DAGSTER_HOME": str(home)},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: see the module docstring
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None:
                raise RuntimeError(
                    f"dagster dev exited with code {server.returncode} during start-up; tail of {log}:\n{_log_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster dev did not answer {url}/server_info within {timeout:g} s; tail of {log}:\n"
                                   f"{_log_tail(log)}")
            time.sleep(1)
        yield url
    finally:
        _stop(server)
