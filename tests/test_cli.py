"""The `flightops` command line as a user meets it: help, pipes, the registry's status, stopping servers.

The commands' work is tested with the areas they drive (tests/test_sources.py, tests/test_run_command.py);
here what the command line adds on top.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flightops import cli

pytest_plugins = ["tests.serving_fixtures"]

FLIGHTOPS = Path(sys.executable).parent / "flightops"
HEAVY_MODULES = ("pandas", "dagster", "mlflow", "sqlalchemy", "duckdb", "sklearn")


def subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command by its words, e.g. ("sources", "inject"): its summary in its parent's list, its parser."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found[prefix + (name,)] = (summaries.get(name), sub)
                found.update(subcommands(sub, prefix + (name,)))
    return found


@pytest.mark.unit
def test_every_command_has_a_summary_a_description_and_examples():
    commands = subcommands(cli.build_parser())
    assert {("run",), ("model", "status"), ("model", "rollback"), ("ui",), ("serve",), ("sources", "inject")} <= set(commands)
    for words, (summary, sub) in commands.items():
        assert summary, f"`flightops {' '.join(words)}` has no summary in its parent's list"
        assert sub.description and len(sub.description) > len(summary), f"`flightops {' '.join(words)}` has no description"
    leaves = [words for words in commands if not any(other[:-1] == words for other in commands)]
    without_examples = [" ".join(w) for w in leaves if "examples:" not in commands[w][1].format_help()
                        and w not in (("sources", "status"), ("sources", "reset"))]
    assert not without_examples, f"commands without examples: {without_examples}"


@pytest.mark.unit
def test_help_imports_nothing_heavy():
    """`flightops --help` answers at once: pandas, Dagster and MLflow are imported by the commands only."""
    script = textwrap.dedent(f"""
        import sys
        from flightops import cli
        for argv in (["--help"], ["run", "--help"], ["model", "status", "--help"]):
            try:
                cli.main(argv)
            except SystemExit:
                pass
        print("LOADED", [m for m in {HEAVY_MODULES!r} if m in sys.modules])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "LOADED []"


@pytest.mark.unit
def test_the_fault_constants_of_the_command_line_are_the_injectors():
    from flightops.simulated_sources import faults

    assert cli.FAULT_TARGETS == faults.TARGETS
    assert cli.SLOW_FAULT_SECONDS == faults.DEFAULT_SECONDS
    assert list(cli.FaultNames()) == list(faults.FAULTS) and "duplicates" in cli.FaultNames()
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["sources", "inject", "no-such-fault"])


@pytest.mark.unit
def test_contracts_into_head_ends_without_a_traceback():
    piped = subprocess.run(f"{FLIGHTOPS} contracts | head -1", shell=True, capture_output=True, text=True)
    assert piped.stdout == "## flights\n"
    assert piped.stderr == ""
    # A reader that is already gone: every write fails, deterministically.
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([str(FLIGHTOPS), "contracts"], stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert done.returncode == 0
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.unit
def test_model_status_before_any_training_says_how_to_train(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert cli.main(["model", "status"]) == 0
    out = capsys.readouterr().out
    assert "no model is registered" in out and "make run" in out and "--retrain" in out
    assert not (tmp_path / "mlflow.db").exists(), "asking must not create an MLflow store"
    assert cli.main(["model", "rollback"]) == 1
    assert "make run" in capsys.readouterr().err


def test_model_status_lists_versions_aliases_and_metrics(registry, monkeypatch, capsys):
    from flightops.modeling.promotion import mark_challenger

    registry.crown(1)
    mark_challenger(registry.client, "2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    assert cli.main(["model", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 version(s)" in lines[0]
    assert lines[1].split()[:3] == ["version", "aliases", "registered"] and "roc_auc" in lines[1]
    v2, v1 = lines[2].split(), lines[3].split()
    assert v2[:2] == ["2", "challenger"] and v1[:2] == ["1", "champion"]
    roc_auc = float(v1[lines[1].split().index("roc_auc") + 1])  # "registered" spans two words (date, time)
    assert 0.0 < roc_auc <= 1.0
    assert lines[-1].startswith("champion history")


@pytest.mark.unit
def test_ui_before_any_run_says_to_run_first(tmp_path, monkeypatch, capsys):
    import contextlib

    from flightops import pipeline

    monkeypatch.setenv("FLIGHTOPS_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setattr(pipeline, "weather_api_running", lambda settings: contextlib.nullcontext("http://api"))
    started = []
    monkeypatch.setattr(cli, "run_until_stopped", lambda command, **popen: started.append(command) or 0)
    assert cli.main(["ui", "--port", "3999"]) == 0
    out = capsys.readouterr().out
    assert "Nothing is materialized yet" in out and "make run" in out
    assert started and started[0][-2:] == ["-p", "3999"]


SERVER_LIKE_DAGSTER_DEV = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))  # what dagster dev does at start
open(sys.argv[1], "w").write("ready")
try:
    while True:
        time.sleep(0.1)
except KeyboardInterrupt:
    open(sys.argv[1], "w").write("clean shutdown")
"""

FOREGROUND_RUNNER = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a non-interactive shell starts
from flightops.cli import run_until_stopped
sys.exit(run_until_stopped([sys.executable, "-c", sys.argv[1], sys.argv[2]]))
"""


@pytest.mark.unit
def test_sigterm_stops_a_server_started_in_the_background_cleanly(tmp_path):
    """`flightops ui` in the background: SIGTERM to it reaches dagster dev, which shuts down (no SIGKILL)."""
    state = tmp_path / "server-state"
    runner = subprocess.Popen([sys.executable, "-c", FOREGROUND_RUNNER, SERVER_LIKE_DAGSTER_DEV, str(state)])
    try:
        deadline = time.monotonic() + 60
        while not (state.exists() and state.read_text() == "ready"):
            assert time.monotonic() < deadline and runner.poll() is None, "the server did not start"
            time.sleep(0.1)
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) == 0
        assert state.read_text() == "clean shutdown"
    finally:
        if runner.poll() is None:
            runner.kill()


@pytest.mark.unit
@pytest.mark.parametrize("window", [["--from", "2012-12-31", "--until", "2013-01-02"], ["--until", "2014-01-01"],
                                    ["--from", "2013-02-02", "--until", "2013-02-01"]])
def test_run_outside_the_calendar_is_one_line_and_creates_no_run(window, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))  # absent: a run would fail to create it
    monkeypatch.setenv("FLIGHTOPS_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["run", *window]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "2013" in err and err.startswith("flightops run: --")
    assert not (tmp_path / "dagster_home").exists() and not (tmp_path / "data").exists()


@pytest.mark.unit
def test_a_fault_outside_the_calendar_is_refused_like_a_replay_there(tmp_path, monkeypatch, capsys):
    from flightops.settings import environment_under

    for name, value in environment_under(tmp_path).items():
        monkeypatch.setenv(name, value)
    assert cli.main(["sources", "replay", "--until", "2013-01-01"]) == 0
    capsys.readouterr()
    assert cli.main(["sources", "inject", "duplicates", "--date", "2014-01-05"]) == 1
    inject = capsys.readouterr().err
    assert cli.main(["sources", "replay", "--until", "2014-01-05"]) == 1
    replay = capsys.readouterr().err
    calendar = "2014-01-05 is outside the data set's calendar 2013-01-01..2013-12-31; pick a day in 2013."
    assert inject == f"flightops sources: Fault day {calendar}\n"
    assert replay == f"flightops sources: Replay target {calendar}\n"
    assert "replay --until 2014" not in inject
