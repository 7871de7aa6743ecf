"""What `flightops run` shows: one line per step with progress, everything else in a log file.

A run of the main job makes Dagster, dbt, MLflow and Optuna print well over a thousand lines (a
DEBUG line per event, dbt's node lines, warnings). Someone watching a run wants to know where it is
and whether it is still alive; someone debugging one wants every line. So the process's stdout and
stderr (file descriptors 1 and 2 as well, for dbt's subprocess and C extensions) go to a log file
under the data folder while the run lasts, and the terminal gets only what `RunOutput` writes:

- a line per phase before the run (replay, loading the code location) and per Dagster step, with
  its time and the run's overall elapsed time and step count, read from Dagster's event stream
  (`DagsterInstance.add_event_listener` on the run's id);
- on a terminal, a progress bar redrawn every second below those lines; elsewhere (a pipe, CI), a
  heartbeat line every `HEARTBEAT_SECONDS` while one step runs long (training takes minutes);
- the log file's path, at the start and at the end.

Every line written to the terminal is written to the log too, so the log alone tells the story.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

# A pipe or a file gets a heartbeat line after an activity has run this long, then at twice the interval
# since the last one, up to HEARTBEAT_MAX_SECONDS apart: alive, in a few lines even for a long training.
HEARTBEAT_SECONDS = 30.0
HEARTBEAT_MAX_SECONDS = 120.0
REDRAW_SECONDS = 1.0
BAR_WIDTH = 20
RUN_START_KEY = "(run start)"  # the activity `RunOutput.starting` opens, in the table of running steps

# Warnings we cannot fix at the source: kept in the log, once, after a line that says why.
EXPECTED_WARNINGS = {
    "backfill_policy": (
        "Dagster marks the `backfill_policy` parameter beta; the daily assets use BackfillPolicy.single_run() "
        "(flightops/partitions.py) so that a range of days is one run instead of one run per day."
    ),
}

# Set for the run unless the environment says otherwise: the output goes to a file, not a terminal.
QUIET_ENVIRONMENT = {
    "DBT_USE_COLORS": "false",  # dbt writes ANSI colour codes into its node lines even when piped
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # tqdm bars become one unreadable line in a file
}


def log_file_under(data_dir: Path, now: datetime | None = None) -> Path:
    """A new run log's path: data/logs/run-YYYYmmdd-HHMMSS.log."""
    return data_dir / "logs" / f"run-{(now or datetime.now()):%Y%m%d-%H%M%S}.log"


def shown(path: Path) -> str:
    """A path as short as it stays unambiguous: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def duration(seconds: float) -> str:
    """0.4s, 12.3s, 2m05s, 1h02m: short and comparable at a glance."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def step_label(step_key: str) -> str:
    """Dagster's step key as the asset key a user sees in the UI (raw__airlines -> raw/airlines)."""
    return step_key.replace("__", "/")


@contextlib.contextmanager
def quiet_environment() -> Iterator[None]:
    """QUIET_ENVIRONMENT for the block (values already set win), restored afterwards."""
    added = {name: value for name, value in QUIET_ENVIRONMENT.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def expected_warnings_once(log: TextIO) -> Iterator[None]:
    """Show each EXPECTED_WARNINGS warning once, after a line saying why it is expected.

    Dedup by hand: a filter action "once" would not hold, since it keeps its memory in the calling
    module's registry, which Python clears whenever any library changes the warning filters.
    """
    seen: set[str] = set()
    with warnings.catch_warnings():
        show = warnings.showwarning

        def show_expected_once(message, category, filename, lineno, file=None, line=None):
            topic = next((t for t in EXPECTED_WARNINGS if t in str(message)), None)
            if topic in seen:
                return
            if topic is not None:
                seen.add(topic)
                log.write(f"flightops: the next warning is expected: {EXPECTED_WARNINGS[topic]}\n")
            show(message, category, filename, lineno, file, line)

        warnings.showwarning = show_expected_once
        yield


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[TextIO]:
    """Send stdout and stderr (Python's objects and file descriptors 1 and 2) to `log_path` for the block.

    Descriptors too: dbt runs as a subprocess and some libraries write below Python. Yields the log
    stream; everything is restored on exit, also on an exception.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")
    saved_streams = sys.stdout, sys.stderr
    for stream in saved_streams:
        with contextlib.suppress(Exception):
            stream.flush()
    saved_fds = os.dup(1), os.dup(2)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        yield log
    finally:
        with contextlib.suppress(Exception):
            log.flush()
        sys.stdout, sys.stderr = saved_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        log.close()


def terminal_stream() -> TextIO:
    """A stream on a duplicate of the current stdout: still the terminal once stdout goes to the log."""
    return open(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding=sys.stdout.encoding or "utf-8",
                errors="replace")


@dataclass
class Activity:
    """What runs now: a phase before the run, or a Dagster step."""

    label: str
    started: float  # time.monotonic()
    next_heartbeat: float = 0.0  # seconds after `started`


@dataclass
class StepCounts:
    total: int | None = None
    done: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0


class RunOutput:
    """The terminal's view of a run (see the module docstring); every line also goes to the log."""

    def __init__(self, terminal: TextIO, log: TextIO, *, tty: bool, clock=time.monotonic,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.terminal, self.log, self.tty = terminal, log, tty
        self.clock, self.heartbeat_seconds = clock, heartbeat_seconds
        self.started = clock()
        self.steps = StepCounts()
        self.running: dict[str, Activity] = {}  # step key (or phase label) -> activity
        self.failed_checks: dict[str, int] = {}  # step key -> failed asset checks so far
        self._lock = threading.RLock()
        self._status_shown = False

    def expect_steps(self, total: int) -> None:
        """The run's step count, once known: the counter and the bar show progress against it."""
        with self._lock:
            self.steps.total = total

    # Lines -------------------------------------------------------------------------------------

    def line(self, text: str = "") -> None:
        """A permanent line on the terminal (above the bar) and in the log."""
        with self._lock:
            self._clear_status()
            self.terminal.write(text + "\n")
            self.terminal.flush()
            self.log.write(f"flightops: {text}\n" if text else "\n")
            self._draw_status()

    def elapsed(self) -> str:
        return duration(self.clock() - self.started)

    def _counter(self) -> str:
        total = self.steps.total
        if total is None:
            return ""
        width = len(str(total))
        return f"[{self.steps.done:>{width}}/{total}] "

    # Phases before the run -----------------------------------------------------------------------

    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[list[str]]:
        """An activity outside Dagster (replay, loading the code location): one line when it ends.

        The block may append details to the yielded list; they follow the time on the line.
        """
        details: list[str] = []
        with self._lock:
            self.running[label] = Activity(label, self.clock())
        try:
            yield details
        finally:
            with self._lock:
                activity = self.running.pop(label)
            took = duration(self.clock() - activity.started)
            self.line(f"{label} ({took})" + (f": {'; '.join(details)}" if details else ""))

    def starting(self, label: str) -> None:
        """An activity that Dagster's RUN_START event ends (creating the run takes a while: see pipeline)."""
        with self._lock:
            self.running[RUN_START_KEY] = Activity(label, self.clock())
            self._draw_status()

    # Dagster's event stream ---------------------------------------------------------------------

    def on_event(self, entry) -> None:
        """Dagster event listener: never raises (a display problem must not fail the run)."""
        try:
            self._on_event(entry)
        except Exception as exc:  # noqa: BLE001 - reported in the log, the run goes on
            self.log.write(f"flightops: progress display skipped an event: {exc!r}\n")

    def _on_event(self, entry) -> None:
        from dagster import DagsterEventType

        if not entry.is_dagster_event:
            return
        event = entry.get_dagster_event()
        kind, key = event.event_type, event.step_key
        if kind == DagsterEventType.RUN_START:
            with self._lock:
                activity = self.running.pop(RUN_START_KEY, None)
            if activity is not None:
                self.line(f"{activity.label} ({duration(self.clock() - activity.started)})")
        elif kind == DagsterEventType.STEP_START:
            with self._lock:
                self.running[key] = Activity(step_label(key), self.clock())
                self._draw_status()
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION and not event.event_specific_data.passed:
            with self._lock:
                self.failed_checks[key] = self.failed_checks.get(key, 0) + 1
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_SKIPPED):
            self._step_ended(key, kind)

    def _step_ended(self, key: str, kind) -> None:
        from dagster import DagsterEventType

        with self._lock:
            activity = self.running.pop(key, None)
            self.steps.done += 1
            took = duration(self.clock() - activity.started) if activity else ""
            outcome = {DagsterEventType.STEP_SUCCESS: took, DagsterEventType.STEP_FAILURE: f"FAILED after {took}",
                       DagsterEventType.STEP_SKIPPED: "skipped (an upstream step failed)"}[kind]
            if kind == DagsterEventType.STEP_FAILURE:
                self.steps.failed.append(key)
            if kind == DagsterEventType.STEP_SKIPPED:
                self.steps.skipped += 1
            checks = self.failed_checks.get(key, 0)
            note = f", {checks} check(s) failed" if checks else ""
            self.line(f"{self._counter()}{step_label(key):<38} {outcome}{note}  (total {self.elapsed()})")

    # Heartbeat and progress bar ----------------------------------------------------------------

    def tick(self) -> None:
        """Called every second: redraw the bar (terminal) or print a heartbeat for a long activity."""
        with self._lock:
            if self.tty:
                self._draw_status()
                return
            now = self.clock()
            for activity in list(self.running.values()):
                running_for = now - activity.started
                if running_for >= (activity.next_heartbeat or self.heartbeat_seconds):
                    gap = min(max(running_for, self.heartbeat_seconds), HEARTBEAT_MAX_SECONDS)
                    activity.next_heartbeat = running_for + gap
                    self.line(f"{' ' * len(self._counter())}{activity.label:<38} still running after "
                              f"{duration(running_for)}  (total {self.elapsed()})")

    def status(self) -> str:
        """The bar line: steps done, elapsed, what runs and for how long."""
        total, done = self.steps.total, self.steps.done
        bar = ""
        if total:
            filled = round(BAR_WIDTH * done / total)
            bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} steps "
        now = self.clock()
        doing = ", ".join(f"{a.label} {duration(now - a.started)}" for a in self.running.values())
        return f"{bar}{self.elapsed()}" + (f"  running: {doing}" if doing else "")

    def _draw_status(self) -> None:
        if not self.tty:
            return
        import shutil

        width = shutil.get_terminal_size().columns - 1
        self.terminal.write("\r\x1b[K" + self.status()[:width])
        self.terminal.flush()
        self._status_shown = True

    def _clear_status(self) -> None:
        if self.tty and self._status_shown:
            self.terminal.write("\r\x1b[K")
            self._status_shown = False

    def end_progress(self) -> None:
        """The run is over: erase the bar and draw it no more (the summary follows as plain lines)."""
        with self._lock:
            self._clear_status()
            self.tty = False
            self.running.pop(RUN_START_KEY, None)
            self.terminal.flush()


@contextlib.contextmanager
def heartbeat(output: RunOutput, interval: float = REDRAW_SECONDS) -> Iterator[None]:
    """Call `output.tick()` every `interval` seconds from a daemon thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            output.tick()

    thread = threading.Thread(target=beat, name="flightops-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@contextlib.contextmanager
def run_output(log_path: Path, terminal: TextIO | None = None, *, tty: bool | None = None) -> Iterator[RunOutput]:
    """The whole arrangement: terminal lines and bar, heartbeat, output captured to `log_path`.

    `terminal` defaults to the current stdout (a duplicate, taken before the redirection); `tty`
    to whether that is a terminal. The log's path is printed first and last, also when the block
    raises.
    """
    own_terminal = terminal is None
    if terminal is None:
        terminal = terminal_stream()
    if tty is None:
        tty = terminal.isatty()
    try:
        with quiet_environment(), output_to(log_path) as log, expected_warnings_once(log):
            output = RunOutput(terminal, log, tty=tty)
            output.line(f"full log: {shown(log_path)}")
            try:
                with heartbeat(output):
                    yield output
            finally:
                output.end_progress()
                output.line(f"full log: {shown(log_path)}")
    finally:
        if own_terminal:
            terminal.close()
