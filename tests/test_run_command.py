"""`flightops run` (`make run`) as a user sees it: a short terminal output, the full log in a file.

One real run of three days on a private platform (its own data folder, weather API and Dagster
home) with the terminal captured; plus the summary's list of failed asset checks on made-up
evaluations (a real failing check is tests/test_data_quality.py's business).
"""

from __future__ import annotations

import io
import os
import re
from datetime import date
from types import SimpleNamespace

import dagster as dg
import pytest

from flightops.pipeline import check_lines, run_main_job, step_count
from tests.dagster_dev import prepare_home
from tests.platform_harness import private_platform

# `make run` on a fresh clone must stay within a screenful; three days have every step of a longer run.
MAX_TERMINAL_LINES = 60
STEP_LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (\S+) +(\d|FAILED|skipped)")
NEXT_COMMANDS = ("make ui", "make mlflow-ui", "make serve", "curl -s -X POST", "flightops model status", "dbt test")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The terminal lines, exit code and settings of `flightops run --until 2013-01-03` on a fresh platform."""
    base = tmp_path_factory.mktemp("run_command")
    with private_platform(base / "platform") as platform:
        os.environ["DAGSTER_HOME"] = str(prepare_home(base / "dagster_home"))  # private_platform restores it
        terminal = io.StringIO()
        code = run_main_job(platform.settings, date(2013, 1, 1), date(2013, 1, 3), terminal=terminal)
        yield SimpleNamespace(code=code, lines=terminal.getvalue().splitlines(), settings=platform.settings)


def test_the_run_succeeds_in_a_screenful_of_lines(finished_run):
    assert finished_run.code == 0, "\n".join(finished_run.lines)
    assert len(finished_run.lines) < MAX_TERMINAL_LINES, "\n".join(finished_run.lines)


def test_each_step_has_exactly_one_line_in_order(finished_run):
    steps = [STEP_LINE.match(line) for line in finished_run.lines if STEP_LINE.match(line)]
    total = step_count("main_job")
    assert [int(m.group(1)) for m in steps] == list(range(1, total + 1))
    assert {int(m.group(2)) for m in steps} == {total}
    assert len({m.group(3) for m in steps}) == total
    assert "models/flight_delay_model" in {m.group(3) for m in steps}


def test_it_ends_with_the_summary_and_the_next_commands(finished_run):
    lines = finished_run.lines
    summary = next(i for i, line in enumerate(lines) if line.startswith("Run ") and " succeeded for 2013-01-01..2013-01-03" in line)
    after = lines[summary:]
    assert any(line.startswith("rows in ") for line in after)
    assert any(line.startswith("champion: version 1") for line in after)
    assert any(re.match(r"asset checks: \d+ evaluated, all passed", line) for line in after)
    next_block = "\n".join(lines[lines.index("next:"):])
    for command in NEXT_COMMANDS:
        assert command in next_block
    assert '"flight_id": "2013-01-03_' in next_block, "the curl example asks for a flight the run scored"


def test_the_full_log_is_in_a_file_named_first_and_last(finished_run):
    first, last = finished_run.lines[0], finished_run.lines[-1]
    assert first == last and first.startswith("full log: ")
    log = first.removeprefix("full log: ")
    assert os.path.dirname(log) == str(finished_run.settings.data_dir / "logs")
    text = open(log, encoding="utf-8").read()
    assert "STEP_SUCCESS" in text, "Dagster's own event lines are in the log"
    assert re.search(r"\d+ of \d+ START ", text), "dbt's node lines are in the log"
    assert "\x1b[" not in text, "dbt's colour codes are not"
    assert all(f"flightops: {line}" in text for line in finished_run.lines if line)


def failed_evaluation(**overrides) -> dg.AssetCheckEvaluation:
    fields = dict(asset_key=dg.AssetKey(["clean", "weather"]), check_name="coverage", passed=False,
                  metadata={"observations": dg.MetadataValue.int(355), "expected": dg.MetadataValue.int(6463),
                            "per_day": dg.MetadataValue.json({"2013-01-01": 3})},
                  severity=dg.AssetCheckSeverity.ERROR, description=None, blocking=True)
    return dg.AssetCheckEvaluation(**{**fields, **overrides})


def result_with(evaluations: list, spec_description: str | None = "Expected observations per day and airport.") -> SimpleNamespace:
    """What check_lines reads of an ExecuteInProcessResult: the events, and the job's check specs."""
    events = [SimpleNamespace(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, event_specific_data=e)
              for e in evaluations]
    graph = SimpleNamespace(get_check_spec=lambda key: SimpleNamespace(description=spec_description))
    return SimpleNamespace(all_events=events, job_def=SimpleNamespace(asset_layer=SimpleNamespace(asset_graph=graph)))


@pytest.mark.unit
def test_every_failed_check_is_listed_with_asset_severity_and_what_it_found():
    passed = failed_evaluation(check_name="key_unique", passed=True)
    warned = failed_evaluation(asset_key=dg.AssetKey(["monitoring", "feature_drift"]), check_name="drift",
                               severity=dg.AssetCheckSeverity.WARN, blocking=False, description="3 columns drifted",
                               metadata={})
    lines = check_lines(result_with([passed, failed_evaluation(), warned]))
    assert lines[0] == "asset checks: 2 of 3 FAILED:"
    assert lines[1] == ("  clean/weather coverage (ERROR, blocking): Expected observations per day and airport; "
                        "observations=355, expected=6463")
    assert lines[2] == "  monitoring/feature_drift drift (WARN): 3 columns drifted"


@pytest.mark.unit
def test_all_checks_passing_is_one_line():
    assert check_lines(result_with([failed_evaluation(passed=True)] * 4)) == ["asset checks: 4 evaluated, all passed"]
