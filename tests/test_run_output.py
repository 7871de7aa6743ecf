"""What `flightops run` shows on the terminal and keeps in its log (flightops/run_output.py), on made-up events.

The run itself is in tests/test_run_command.py; here the pieces: lines per step, heartbeats on a
pipe and the bar on a terminal (driven by a fake clock, so no test waits), the capture of
everything else into the log (Python, file descriptors, a subprocess), expected warnings once.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
from dagster import DagsterEventType

from flightops.run_output import (
    EXPECTED_WARNINGS,
    RunOutput,
    duration,
    expected_warnings_once,
    output_to,
    quiet_environment,
    run_output,
    step_label,
)

pytestmark = pytest.mark.unit


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(kind: DagsterEventType, step: str | None, passed: bool = True) -> SimpleNamespace:
    """An event log entry as the listener receives it (only the parts it reads)."""
    event = SimpleNamespace(event_type=kind, step_key=step, event_specific_data=SimpleNamespace(passed=passed))
    return SimpleNamespace(is_dagster_event=True, get_dagster_event=lambda: event)


def output(tty: bool = False) -> tuple[RunOutput, io.StringIO, io.StringIO, Clock]:
    terminal, log, clock = io.StringIO(), io.StringIO(), Clock()
    return RunOutput(terminal, log, tty=tty, clock=clock), terminal, log, clock


def run_step(out: RunOutput, clock: Clock, step: str, seconds: float, kind=DagsterEventType.STEP_SUCCESS) -> None:
    out.on_event(entry(DagsterEventType.STEP_START, step))
    clock.now += seconds
    out.on_event(entry(kind, step))


def test_one_line_per_step_with_its_time_and_the_count():
    out, terminal, log, clock = output()
    out.expect_steps(3)
    run_step(out, clock, "raw__airlines", 0.4)
    run_step(out, clock, "dbt_models", 42.0)
    run_step(out, clock, "models__flight_delay_model", 150.0, DagsterEventType.STEP_FAILURE)
    lines = terminal.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[1/3] raw/airlines") and "0.4s" in lines[0]
    assert lines[1].startswith("[2/3] dbt_models") and "42.0s" in lines[1]
    assert lines[2].startswith("[3/3] models/flight_delay_model") and "FAILED after 2m30s" in lines[2]
    assert "(total 3m12s)" in lines[2]
    assert out.steps.failed == ["models__flight_delay_model"]
    assert all(f"flightops: {line}" in log.getvalue() for line in lines), "every terminal line is in the log too"


def test_failed_checks_are_counted_on_their_steps_line():
    out, terminal, _, clock = output()
    out.on_event(entry(DagsterEventType.STEP_START, "clean__weather"))
    out.on_event(entry(DagsterEventType.ASSET_CHECK_EVALUATION, "clean__weather", passed=False))
    out.on_event(entry(DagsterEventType.ASSET_CHECK_EVALUATION, "clean__weather", passed=True))
    out.on_event(entry(DagsterEventType.STEP_SUCCESS, "clean__weather"))
    assert "clean/weather" in terminal.getvalue() and "1 check(s) failed" in terminal.getvalue()


def test_a_long_step_on_a_pipe_gets_a_few_heartbeats():
    out, terminal, _, clock = output()
    out.expect_steps(1)
    out.on_event(entry(DagsterEventType.STEP_START, "models__flight_delay_model"))
    for _ in range(600):  # ten minutes, ticked every second as the heartbeat thread does
        clock.now += 1
        out.tick()
    beats = [line for line in terminal.getvalue().splitlines() if "still running" in line]
    assert [b.split("still running after ")[1].split()[0] for b in beats] == [
        "30.0s", "1m00s", "2m00s", "4m00s", "6m00s", "8m00s", "10m00s"]
    assert all("models/flight_delay_model" in b for b in beats)


def test_a_phase_prints_one_line_with_its_details_and_beats_like_a_step():
    out, terminal, _, clock = output()
    with out.phase("load the code location") as details:
        clock.now += 31
        out.tick()
        details.append("main_job (22 steps)")
    lines = terminal.getvalue().splitlines()
    assert "load the code location" in lines[0] and "still running after 31.0s" in lines[0]
    assert lines[1] == "load the code location (31.0s): main_job (22 steps)"


def test_on_a_terminal_a_bar_is_redrawn_in_place_and_erased_at_the_end():
    out, terminal, _, clock = output(tty=True)
    out.expect_steps(4)
    run_step(out, clock, "raw__airlines", 1)
    out.on_event(entry(DagsterEventType.STEP_START, "dbt_models"))
    clock.now += 5
    out.tick()
    assert "[#####...............] 1/4 steps" in out.status() and "running: dbt_models 5.0s" in out.status()
    text = terminal.getvalue()
    assert "\r\x1b[K" in text and "still running" not in text, "a terminal gets the bar, not heartbeat lines"
    assert text.count("\n") == 1, "the bar adds no lines"
    out.end_progress()
    out.line("summary")
    assert terminal.getvalue().endswith("\r\x1b[Ksummary\n"), "after the run, plain lines without the bar"


def test_a_broken_event_is_logged_not_raised():
    out, _, log, _ = output()
    out.on_event(SimpleNamespace(is_dagster_event=True, get_dagster_event=lambda: 1 / 0))
    assert "progress display skipped an event" in log.getvalue()


def test_everything_printed_during_the_block_goes_to_the_log(tmp_path):
    log_path = tmp_path / "logs" / "run.log"
    with output_to(log_path):
        print("from python")
        print("to stderr", file=sys.stderr)
        os.write(1, b"from fd 1\n")
        subprocess.run([sys.executable, "-c", "import sys; print('from a child'); print('child err', file=sys.stderr)"],
                       check=True)
    text = log_path.read_text()
    for line in ("from python", "to stderr", "from fd 1", "from a child", "child err"):
        assert line in text


def test_the_log_path_is_shown_first_and_last_and_the_terminal_gets_only_our_lines(tmp_path):
    terminal = io.StringIO()
    log_path = tmp_path / "run.log"
    with run_output(log_path, terminal, tty=False) as out:
        print("noise from a library")
        out.line("a step")
    lines = terminal.getvalue().splitlines()
    assert lines == [f"full log: {log_path}", "a step", f"full log: {log_path}"]
    assert "noise from a library" in log_path.read_text()


def test_the_log_path_is_shown_at_the_end_also_when_the_run_raises(tmp_path):
    terminal = io.StringIO()
    with pytest.raises(RuntimeError), run_output(tmp_path / "run.log", terminal, tty=False):
        raise RuntimeError("weather API refused")
    assert terminal.getvalue().splitlines()[-1] == f"full log: {tmp_path / 'run.log'}"


def test_an_expected_warning_appears_once_after_its_reason():
    log = io.StringIO()
    topic = next(iter(EXPECTED_WARNINGS))
    with warnings.catch_warnings(record=True) as caught, expected_warnings_once(log):
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn(f"Parameter `{topic}` of function `asset` is currently in beta", UserWarning)
            warnings.filterwarnings("ignore", message="unrelated")  # what libraries do, resetting "once"
        warnings.warn("something else", UserWarning)
    assert [str(w.message) for w in caught] == [f"Parameter `{topic}` of function `asset` is currently in beta",
                                                "something else"]
    assert log.getvalue().count("is expected") == 1


def test_dbt_colours_and_mlflow_bars_are_off_during_the_run_and_a_users_choice_wins(monkeypatch):
    monkeypatch.delenv("DBT_USE_COLORS", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")
    with quiet_environment():
        assert os.environ["DBT_USE_COLORS"] == "false"
        assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"
    assert "DBT_USE_COLORS" not in os.environ


def test_durations_and_labels_read_at_a_glance():
    assert [duration(s) for s in (0.44, 59.9, 60, 125, 3725)] == ["0.4s", "59.9s", "1m00s", "2m05s", "1h02m"]
    assert step_label("deployment__flight_delay_predictions") == "deployment/flight_delay_predictions"


def test_the_wait_for_dagster_to_start_the_run_is_a_line_of_its_own():
    out, terminal, _, clock = output()
    out.starting("start the run")
    clock.now += 65
    out.tick()
    out.on_event(entry(DagsterEventType.RUN_START, None))
    lines = terminal.getvalue().splitlines()
    assert lines[0].split()[:6] == ["start", "the", "run", "still", "running", "after"], "a heartbeat while waiting"
    assert lines[-1] == "start the run (1m05s)"
    assert not out.running
