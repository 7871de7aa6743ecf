"""The Dagster UI as a user opens it: `dagster dev` from the repository root, read by headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from flightops.settings import REPO_ROOT

CHROMIUM = shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("dagster_home")
    # The repository's instance config, with its storage moved into this test's home.
    config = (REPO_ROOT / "dagster.yaml").read_text().replace("data/dagster", str(home / "dagster"))
    (home / "dagster.yaml").write_text(config)
    port = free_port()
    # Its own process group: `dagster dev` ignores signals sent to it alone from a non-interactive shell.
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT, env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None, "dagster dev exited during start-up"
            assert time.monotonic() < deadline, "dagster dev did not answer within 120 s"
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def rendered(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (Chromium's virtual time lets the GraphQL calls finish)."""
    assert CHROMIUM, "Chromium is missing: `make test` installs it (Debian package chromium)."
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_asset_page_shows_feature_lineage(ui, tmp_path):
    dom = rendered(f"{ui}/assets/features/flight_features", tmp_path / "chrome")
    assert "flight_features" in dom
    assert "fct_flights" in dom  # its upstream dbt model, in the lineage panel


def test_the_clean_flights_page_lists_its_data_quality_checks(ui, tmp_path):
    dom = rendered(f"{ui}/assets/clean/flights?view=checks", tmp_path / "chrome")
    for check in ("key_unique", "rows_accounted", "quarantine_rate", "fresh"):
        assert check in dom, f"check {check} not shown on the clean/flights page"
