"""The benchmark's per-step CPU seconds: scripts/benchmark.py samples a process's cumulative CPU time
(psutil, every 50 ms) and reports a step's CPU as the interpolated difference over the step's start..end.

Checked on made-up samples (the interpolation) and on a real sampled process (this one, burning a known
amount of CPU time); no assertion on how fast anything runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.scripts_as_modules import script_module


@pytest.fixture(scope="module")
def benchmark() -> Iterator[ModuleType]:
    with script_module("benchmark") as module:
        yield module


# (time, own RSS kB, descendants' RSS kB, cumulative CPU seconds), as MemorySampler records them.
SAMPLES = [(10.0, 100, 0, 1.0), (11.0, 100, 0, 2.0), (12.0, 300, 0, 2.0), (13.0, 100, 0, 4.0)]


def test_cpu_seconds_interpolates_between_samples(benchmark):
    # 10.5 -> 1.5 s so far; 12.5 -> 3.0 s: a step from 10.5 to 12.5 used 1.5 s of CPU.
    assert benchmark.cpu_seconds(SAMPLES, 10.5, 12.5) == 1.5
    assert benchmark.cpu_seconds(SAMPLES, 11.0, 12.0) == 0.0  # an idle second between two samples
    assert benchmark.cpu_seconds(SAMPLES, 12.0, 13.0) == 2.0  # two cores busy for a second


def test_cpu_seconds_outside_the_samples_uses_the_nearest(benchmark):
    assert benchmark.cpu_seconds(SAMPLES, 5.0, 10.0) == 0.0  # before the first sample: nothing measured
    assert benchmark.cpu_seconds(SAMPLES, 12.5, 20.0) == 1.0  # after the last: its value
    assert benchmark.cpu_seconds([], 0.0, 1.0) == 0.0


def test_peaks_still_read_the_samples_with_cpu(benchmark):
    assert benchmark.peaks_kb(SAMPLES, 11.5, 12.5) == (300, 0)
    assert benchmark.peaks_kb(SAMPLES, 14.0, 15.0) == (100, 0)  # none inside: the last one before


def test_sampled_cpu_matches_the_process_own_count(benchmark):
    """A step that burns CPU in this process: the sampled figure is the process's CPU time over the step."""
    sampler = benchmark.MemorySampler()
    sampler.start()
    try:
        time.sleep(3 * benchmark.SAMPLE_SECONDS)  # samples before the step
        start, start_cpu = time.time(), time.process_time()
        while time.process_time() - start_cpu < 0.6:
            sum(i * i for i in range(10_000))
        end, used = time.time(), time.process_time() - start_cpu
        time.sleep(3 * benchmark.SAMPLE_SECONDS)  # and after it
    finally:
        sampler.stop()
    sampled = benchmark.cpu_seconds(sampler.samples, start, end)
    # Sampling every 50 ms, interpolated at both ends; the sampler's own thread adds a little.
    assert sampled == pytest.approx(used, abs=0.15)
    idle = benchmark.cpu_seconds(sampler.samples, end + benchmark.SAMPLE_SECONDS, end + 2 * benchmark.SAMPLE_SECONDS)
    assert idle < 0.05
