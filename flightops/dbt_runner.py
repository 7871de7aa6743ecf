"""dbt inside the step's own process (dbt's programmatic API, `dbtRunner`), with dagster-dbt's events.

Why not dagster-dbt's `DbtCliResource`: it starts a `dbt` process per invocation, and a new day ran two,
each paying Python's start, dbt's imports (about 1.7 s) and a parse (0.8 s) for 0.8-1.9 s of work
(issue 10). Here dbt is imported once per process, the project is parsed once per process and
configuration (with dbt's partial parsing, from the step's folder), and every invocation after that
starts from the parsed manifest. dagster-dbt still defines the assets (`@dbt_assets`), chooses what a
step selects (a subset of models or checks) and turns dbt's result events into Dagster's, exactly as
it does for its own process; only the process is gone.

A data folder's first run has no saved parse to start from, and parsing the whole project in the first dbt
step took 4.5 s of its 8 s (a year's run; its other steps do not use dbt). `ParseAhead` runs that parse in a
process of its own from the run's start, on the other core, while the ingestion and validation steps run,
so the first dbt step starts from its saved parse when it is done by then (a year's first dbt step in `make bench`:
8.0 s -> 3.1-4.3 s).

dbt-duckdb keeps its DuckDB database open after an invocation (profile `keep_open`, true by default;
false would reopen the file for every node: 3.0 s instead of 1.8 s for a day's build), so it is
closed after each one: the next step, from this process or another, opens the file freely.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

# The project's files whose change makes a parsed manifest stale (besides the configuration).
PROJECT_FILE_PATTERNS = ("dbt_project.yml", "profiles.yml", "models/**/*", "macros/**/*", "tests/**/*")


class DbtInvocationError(Exception):
    """dbt failed: its error lines, where its log is, what to do."""


@dataclass
class DbtInvocation:
    """What one dbt command did: dagster-dbt's events for its results, and dbt's error if it failed."""

    events: list[Any]
    manifest: Mapping[str, Any]  # the manifest the step's assets were defined from (dagster-dbt's)
    error: DbtInvocationError | None


@dataclass
class _Parsed:
    key: tuple
    manifest: Any  # dbt's Manifest object


_parsed: _Parsed | None = None  # one parsed project per process: the latest configuration's


def _project_state(project_dir: Path, profiles_dir: Path) -> tuple:
    """Modification times of the files a parse reads, so an edited project is parsed again."""
    files = {path for pattern in PROJECT_FILE_PATTERNS for path in project_dir.glob(pattern) if path.is_file()}
    files.add(profiles_dir / "profiles.yml")
    return tuple(sorted((str(path), path.stat().st_mtime_ns) for path in files if path.exists()))


def _common_args(project_dir: Path, profiles_dir: Path, target_path: Path, dbt_vars: Mapping[str, Any]) -> list[str]:
    return ["--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir), "--target-path", str(target_path),
            "--log-path", str(target_path), "--log-format-file", "json", "--no-use-colors",
            "--vars", json.dumps(dict(dbt_vars), sort_keys=True)]


PARTIAL_PARSE_FILE = "partial_parse.msgpack"  # dbt's saved parse, in its target path
PARSE_AHEAD_NICENESS = 19


class ParseAhead:
    """`dbt parse` in a process of its own, saving dbt's parse for a data folder that has none yet.

    Started when a run's dbt resource is set up, it parses while the steps before the first dbt step run,
    at the lowest priority: on a core the run leaves idle. The first dbt step imports dbt, then takes its
    saved parse if it is done (`take`) and starts from it instead of parsing the whole project. A parse not
    done by then is ended, not waited for: on a busy machine it may get no core at all (in CI's two test
    workers, a first step waited the whole of a 60 s bound for one, twice in one test), and the step's own
    parse takes seconds. The parse is the in-process one's (same project, profile, vars, environment: dbt
    refuses a saved parse whose profile or vars differ, and parses in full then), into a folder of its own
    under `folder`, which `take` or `stop` removes: runs starting together do not share it. A parse that
    fails costs the step nothing; its error comes from the step's own parse, with what to do.
    """

    def __init__(self, project_dir: Path, profiles_dir: Path, folder: Path, dbt_vars: Mapping[str, Any]):
        folder.mkdir(parents=True, exist_ok=True)
        self.target_path = Path(tempfile.mkdtemp(prefix="parse-ahead-", dir=folder))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dbt.cli.main", "parse", "--quiet", "--no-write-json",
             *_common_args(project_dir, profiles_dir, self.target_path, dbt_vars)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The lowest priority: it takes a core the run leaves idle, not time from the run's steps.
        with contextlib.suppress(OSError):  # it may have ended already
            os.setpriority(os.PRIO_PROCESS, self.process.pid, PARSE_AHEAD_NICENESS)

    def take(self, target_path: Path, wait_seconds: float = 0.0) -> bool:
        """Move the parse's saved parse into `target_path` if it is done (after waiting up to `wait_seconds`) and
        `target_path` has none; whether it did. The parse is ended either way."""
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait_seconds)
            saved = self.target_path / PARTIAL_PARSE_FILE
            moved = self.process.returncode == 0 and saved.exists() and not (target_path / PARTIAL_PARSE_FILE).exists()
            if moved:
                target_path.mkdir(parents=True, exist_ok=True)
                saved.replace(target_path / PARTIAL_PARSE_FILE)
            return moved
        finally:
            self.stop()  # also when the step is interrupted while it waits

    def stop(self) -> None:
        """End the parse if it still runs, and remove its folder."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.target_path, ignore_errors=True)


def import_dbt() -> None:
    """Import dbt's runner (about 2 s in a new process), e.g. while a parse started ahead finishes."""
    importlib.import_module("dbt.cli.main")


def parsed_manifest(project_dir: Path, profiles_dir: Path, target_path: Path, dbt_vars: Mapping[str, Any]) -> Any:
    """The project parsed for this configuration: the process's earlier parse, or a new one (partial
    where dbt's saved parse in `target_path` allows)."""
    global _parsed
    from dbt.cli.main import dbtRunner

    key = (str(project_dir), str(profiles_dir), json.dumps(dict(dbt_vars), sort_keys=True),
           _project_state(project_dir, profiles_dir))
    if _parsed is None or _parsed.key != key:
        _parsed = None  # the old manifest is released before the new parse
        # --no-write-json: the parse's manifest.json is not read (the manifest object is; a build writes its own at
        # its end); dbt still saves its partial-parse file. Measured alone: a full parse 2.5-2.8 -> 2.2 s, a partial 0.9 -> 0.8 s.
        result = dbtRunner().invoke(["parse", "--quiet", "--no-write-json",
                                     *_common_args(project_dir, profiles_dir, target_path, dbt_vars)])
        if not result.success:
            raise DbtInvocationError(
                f"dbt could not parse the project {project_dir}: {result.exception}. Its log: {target_path / 'dbt.log'}; "
                f"run `dbt parse` in {project_dir} to see the error, fix the file it names, and run the step again.")
        _parsed = _Parsed(key, result.result)
    return _parsed.manifest


def invoke(context: dg.AssetExecutionContext, project_dir: Path, profiles_dir: Path, target_path: Path,
           command: Sequence[str], dbt_vars: Mapping[str, Any]) -> DbtInvocation:
    """Run `dbt <command>` on the step's selection (its assets and checks, as dagster-dbt selects them)."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    target_path.mkdir(parents=True, exist_ok=True)
    # The step's assets definition supplies the manifest and translator (the placeholders below are replaced).
    params = get_updated_cli_invocation_params_for_context(context=context, manifest={},
                                                           dagster_dbt_translator=DagsterDbtTranslator())
    args = [*command, *_common_args(project_dir, profiles_dir, target_path, dbt_vars), *params.selection_args]
    if params.indirect_selection:
        args += ["--indirect-selection", params.indirect_selection]
    raw_events: list[dict[str, Any]] = []
    manifest = parsed_manifest(project_dir, profiles_dir, target_path, dbt_vars)
    running = set(threading.enumerate())
    result = None
    try:
        result = dbtRunner(manifest=manifest, callbacks=[lambda message: raw_events.append(msg_to_dict(message))]).invoke(args)
    finally:
        deadline = time.monotonic() + RELEASE_WAIT_SECONDS
        if result is None or _interrupt_in(result.exception) is not None:
            left = finish_threads(set(threading.enumerate()) - running, deadline)
            if left:
                context.log.warning(f"The interrupted dbt's model thread still runs its statement after {RELEASE_WAIT_SECONDS:g} s; "
                                    "the warehouse is closed under it. If the process then ends abnormally, nothing "
                                    "dbt had not committed is kept: materialize the step again.")
        release_warehouse(deadline)
    stop = _interrupt_in(result.exception)
    if stop is not None:
        # dbt returns whatever stopped it; a stop (Ctrl-C, Dagster's interrupt of the step) must stay one,
        # also when dbt's cleanup then failed on top of it (closing a DuckDB cursor a model thread still uses).
        raise stop
    events = [
        event
        for raw in raw_events
        for event in DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={}).to_default_asset_events(
            manifest=params.manifest, dagster_dbt_translator=params.dagster_dbt_translator, context=context,
            target_path=target_path, project=params.dbt_project)
    ]
    error = None
    if not result.success:
        lines = [raw["info"]["msg"] for raw in raw_events if raw["info"]["level"] == "error"]
        if result.exception is not None and str(result.exception) not in "\n".join(lines):
            lines.append(str(result.exception))
        error = DbtInvocationError(
            f"`dbt {' '.join(command)}` failed (dbt's log: {target_path / 'dbt.log'}):\n" + "\n".join(lines or ["(no error line)"])
            + f"\nFix the model or test dbt names in {project_dir} (or, for a missing table, materialize the assets "
            "upstream of this step first), then materialize the step again.")
    return DbtInvocation(events, params.manifest, error)


def _interrupt_in(error: BaseException | None) -> BaseException | None:
    """The interrupt (a BaseException that is no Exception) that `error` is, or was raised while handling."""
    seen = set()
    while error is not None and id(error) not in seen:
        if not isinstance(error, Exception):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


# How long, in all, an invocation's end waits for an interrupted dbt's model thread and its statement.
RELEASE_WAIT_SECONDS = 30.0


def finish_threads(threads: set[threading.Thread], deadline: float) -> list[threading.Thread]:
    """Wait, until `deadline` (time.monotonic()), for the threads an interrupted dbt started; those still alive.

    dbt stops its thread pool on an interrupt, but when cancelling its connections fails first (DuckDB
    refuses to close a cursor a model thread is using) it returns without joining the pool: the model
    thread goes on with its statement. The process must not close the warehouse, or end, under it: an
    interpreter that ends while a thread is inside DuckDB's code aborts ("FATAL: exception not rethrown",
    exit -6 instead of 130; seen once in CI after a Ctrl-C). A finished dbt leaves no thread behind."""
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [thread for thread in threads if thread.is_alive()]


def release_warehouse(deadline: float) -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after an invocation.

    After an interrupt, dbt returns while a model thread may still run its statement on a cursor of that
    database; DuckDB then refuses to close it ("connection is busy"), so the close is retried until the
    statement is done or `deadline` (time.monotonic()) has passed: one bound with `finish_threads`."""
    import duckdb
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    while True:
        try:
            environment = DuckDBConnectionManager._ENV  # dbt-duckdb's one environment per process (no public getter)
            if environment is not None:
                environment.close()
            DuckDBConnectionManager.close_all_connections()
            return
        except duckdb.ResourceInUseException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
