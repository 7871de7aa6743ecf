"""A job for tests/test_warm_runs.py: launched in a second, it reports what a warm run should show."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import dagster as dg

# Preloaded by the tests' worker and imported by nothing else: seen in a run's process, it came from the worker.
PRELOADED = "wave"


@dg.op(config_schema={"out": str, "seconds": dg.Field(float, default_value=0.0)})
def report_process(context) -> None:
    """Write this process's pid, its parent's and whether PRELOADED was imported before the run; then wait `seconds`."""
    Path(context.op_config["out"]).write_text(json.dumps(
        {"pid": os.getpid(), "parent": os.getppid(), "preloaded": PRELOADED in sys.modules}))
    deadline = time.monotonic() + context.op_config["seconds"]
    while time.monotonic() < deadline:
        time.sleep(0.05)


@dg.job(executor_def=dg.in_process_executor)  # as the platform's jobs (flightops/jobs.py)
def probe_job() -> None:
    report_process()
