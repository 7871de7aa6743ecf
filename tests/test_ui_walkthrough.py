"""A user's walk through the platform after a run: the Dagster UI and the service's docs, in headless Chromium.

One private platform (replay, three broken flights, the main job with quick training) on a persistent
Dagster instance; a private `dagster dev` on that instance (tests/dagster_dev.py); the prediction service
on a free port; one headless Chromium driven over the DevTools protocol, with every request that does
not go to 127.0.0.1 sent to a dead proxy, so every page below is shown offline. Each test opens a page,
waits until what it asserts is on it, compares the values with the warehouse, the registry and the
definitions, and saves a screenshot of the page as the user sees it.

Screenshots go to `$FLIGHTOPS_TEST_ARTIFACTS/screenshots/`, by default `<repo>/test-artifacts/screenshots/`.

`--dump-dom` and `--screenshot` (as tests/test_ui.py uses) cannot click, and a page's plots are behind a
click ("[Show Markdown]"); the DevTools protocol also lets a test wait for the content it asserts
instead of guessing a virtual-time budget, so each screenshot shows exactly what was asserted.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
import uvicorn
from PIL import Image, ImageStat
from websockets.sync.client import ClientConnection, connect

from flightops.settings import REPO_ROOT, environment_under
from tests.dagster_dev import dagster_dev, free_port, instance_for, wait_for
from tests.platform_harness import Platform, failure_messages, private_platform

pytestmark = [pytest.mark.daemon, pytest.mark.browser]

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(os.environ.get("FLIGHTOPS_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts") / "screenshots"
WIDTH, HEIGHT = 1400, 1000

FIRST, LAST = "2013-01-01", "2013-01-21"
QUICK_TRAINING = {"ops": {"models__flight_delay_model": {"config": {"tuning_trials": 0, "catboost_iterations": 150}}}}
# Flights of the last day given a carrier clean.airlines does not know, before the run: validation sets them aside.
BROKEN_FLIGHTS = 3
BROKEN_REASON = "carrier: ZZ is unknown in clean.airlines.carrier"
LAYERS = ("ingestion", "validation", "transform", "features", "models", "deployment", "monitoring")


class Browser:
    """One headless Chromium and one tab, driven over the DevTools protocol (a websocket, JSON commands).

    Every request that does not go to the loopback address goes to `proxy` (nobody listens there), so a
    page that needs the network shows it. `requested` lists the URLs the current page requested.
    """

    def __init__(self, profile: Path, proxy: str) -> None:
        self.profile, self.proxy = profile, proxy
        self.requested: list[str] = []
        self._ids = 0

    def __enter__(self) -> Browser:
        assert CHROMIUM, "Chromium is missing: `make test` installs it (Debian package chromium)."
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # Chromium writes it once it listens
        self._log = open(self.profile / "chromium.log", "wb")
        self._process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars",
             f"--proxy-server={self.proxy}", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: port_file.exists() and port_file.read_text().strip() or self._process.poll() is not None,
                     timeout=60, interval=0.2, what="Chromium's DevTools port")
            assert self._process.poll() is None, f"Chromium exited: {self.log_tail()}"
            port = port_file.read_text().split()[0]
            with requests.Session() as session:
                session.trust_env = False  # no proxy from the environment for the loopback address
                tabs = session.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            tab = next(t for t in tabs if t["type"] == "page")
            self._socket: ClientConnection = connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
            self.call("Network.enable")
            self.resize(HEIGHT)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self._socket.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)
        self._log.close()

    def log_tail(self) -> str:
        return (self.profile / "chromium.log").read_text(errors="replace")[-2000:]

    def call(self, method: str, **params: Any) -> dict:
        """Send one command and return its result; events that arrive meanwhile are recorded."""
        self._ids += 1
        self._socket.send(json.dumps({"id": self._ids, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
            if message.get("id") == self._ids:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (None if it throws)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return None if "exceptionDetails" in result else result["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float = 60) -> Any:
        return wait_for(lambda: self.evaluate(expression), timeout=timeout, interval=0.25, what=what)

    def open(self, url: str, ready: str, timeout: float = 60) -> None:
        """Load `url` in the tab and wait until the JavaScript expression `ready` is true on the new page."""
        self.evaluate("window.__previousPage = true")
        self.requested = []
        navigation = self.call("Page.navigate", url=url)
        assert "errorText" not in navigation, f"{url}: {navigation['errorText']}"
        self.wait(f"!window.__previousPage && ({ready})", f"{url} to show {ready}", timeout)

    def text(self) -> str:
        """What the page shows, as the user reads it."""
        return self.evaluate("document.body.innerText")

    def links(self) -> list[str]:
        return self.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")

    def screenshot(self, name: str) -> Path:
        """The viewport as a PNG in the artifacts folder, after a moment for the last layout to settle."""
        self.evaluate("new Promise(done => requestAnimationFrame(() => setTimeout(done, 300)))")
        shot = self.call("Page.captureScreenshot", format="png")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def click(self, element: str) -> None:
        """Click the element the JavaScript expression `element` finds, as a user would (it must be there)."""
        clicked = self.evaluate(f"(() => {{ const e = {element}; if (!e) return false; "
                                "e.scrollIntoView({block: 'center'}); e.click(); return true; })()")
        assert clicked, f"nothing to click: {element}"

    def resize(self, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=height, deviceScaleFactor=1, mobile=False)


@dataclass
class Walkthrough:
    platform: Platform
    run_id: str  # the main job's run
    dagster: str  # the UI of `dagster dev`
    service: str  # the prediction service
    home: Path  # DAGSTER_HOME of the server, and of the in-process run
    browser: Browser


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread (as tests/serving_fixtures.py)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout=15, interval=0.05, what="uvicorn to start")
        assert thread.is_alive(), "uvicorn stopped during start-up"
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory) -> Iterator[Walkthrough]:
    """The platform after `replay` and one main-job run (quick training), its UI, its service, a browser."""
    from flightops.serving.app import create_app
    from flightops.simulated_sources.faults import inject

    base, home = tmp_path_factory.mktemp("platform"), tmp_path_factory.mktemp("dagster_home")
    with private_platform(base, instance_home=home) as platform:
        platform.replay(LAST)
        inject(platform.settings, "unknown-fk", day=date.fromisoformat(LAST), count=BROKEN_FLIGHTS, target="opdb")
        result = platform.run(FIRST, LAST, run_config=QUICK_TRAINING)
        assert result.success, failure_messages(result)
        # The server sees the same private platform; its sensors must find nothing to do (last test).
        env = {**os.environ, **environment_under(base), "FLIGHTOPS_ALERT_WEBHOOK_URL": "",
               "FLIGHTOPS_WEATHER_API_URL": f"http://127.0.0.1:{free_port()}"}  # nobody listens there
        dead_proxy = f"127.0.0.1:{free_port()}"
        with (
            dagster_dev(home, env) as dagster,
            served(create_app(platform.settings)) as service,
            Browser(tmp_path_factory.mktemp("chromium"), dead_proxy) as browser,
        ):
            dismiss_the_welcome_dialog(dagster)
            yield Walkthrough(platform, result.run_id, dagster, service, home, browser)


def dismiss_the_welcome_dialog(dagster: str) -> None:
    """A first visit to a new instance opens "Join the Dagster community" over the page; "Skip" records it."""
    answer = requests.post(f"{dagster}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=30)
    assert answer.json() == {"data": {"setNuxSeen": True}}, answer.text


def off_the_machine(urls: list[str]) -> list[str]:
    """The requests that needed the network: anything but the loopback address and inline data."""
    return [url for url in urls if not url.startswith(("http://127.0.0.1:", "data:", "blob:"))]


def metadata(browser: Browser) -> dict[str, str]:
    """The latest materialization's metadata table on an asset page: key -> value as shown."""
    rows = browser.evaluate(
        "[...document.querySelectorAll('table tr')].map(r => [...r.cells].map(c => c.innerText.trim()))")
    shown_at = re.compile(r"[A-Z][a-z]{2} \d{1,2}, \d{1,2}:\d{2} [AP]M")  # the Timestamp column
    return {row[0]: row[-1] for row in rows if len(row) == 3 and shown_at.fullmatch(row[1])}


def row_count(text: str) -> int:
    """The "Row count" the asset page's status panel shows (dagster/row_count)."""
    found = re.search(r"^Row count\n([\d,]+)$", text, re.M)
    assert found, "no row count on the page"
    return int(found.group(1).replace(",", ""))


def one_line(text: str) -> str:
    return " ".join(text.split())


def assert_shows_something(path: Path) -> None:
    """A screenshot of a page that rendered: the window's size, and more than a blank or loading page."""
    with Image.open(path) as image:
        assert image.size == (WIDTH, HEIGHT), image.size
        gray = image.convert("L")
        histogram = gray.histogram()
        background = max(histogram) / sum(histogram)
        colours = len(image.convert("RGB").getcolors(WIDTH * HEIGHT))
        assert ImageStat.Stat(gray).stddev[0] > 10 and background < 0.97 and colours > 200, (
            f"{path} looks blank: {colours} colours, {background:.1%} background")


# The asset groups drawn in the graph (group nodes, or the outlines of expanded groups): name -> x of the label.
GROUPS_DRAWN = (
    "Object.fromEntries([...document.querySelectorAll('svg foreignObject *')]"
    f".filter(e => e.children.length === 0 && {json.dumps(list(LAYERS))}.includes(e.textContent.trim()))"
    ".map(e => [e.textContent.trim(), e.getBoundingClientRect().x]))"
)


def labelled(label: str, name: str) -> bool:
    """A graph node's label names the asset, whole or shortened in the middle ("int_flig…_enriched")."""
    head, ellipsis, tail = label.partition("…")
    return label == name or (bool(ellipsis) and name.startswith(head) and name.endswith(tail))


# The walk, in the order a user takes it.


def test_the_browser_reaches_nothing_but_this_machine(walkthrough):
    """What "offline" means below: a page off the machine fails to load in this browser."""
    navigation = walkthrough.browser.call("Page.navigate", url="http://example.com/")
    assert navigation.get("errorText") == "net::ERR_PROXY_CONNECTION_FAILED", navigation


def test_the_asset_graph_shows_the_layers_from_ingestion_to_monitoring(walkthrough):
    browser = walkthrough.browser
    browser.open(f"{walkthrough.dagster}/asset-groups", f"Object.keys({GROUPS_DRAWN}).length === {len(LAYERS)}")
    groups = browser.evaluate(GROUPS_DRAWN)
    assert sorted(groups, key=groups.get) == list(LAYERS), groups  # left to right, in the platform's order
    assert off_the_machine(browser.requested) == []
    assert_shows_something(browser.screenshot("01_asset_graph"))


def test_the_model_lineage_shows_every_upstream_asset_in_its_layer(walkthrough):
    from assets.models import MODEL
    from flightops.definitions import defs

    browser = walkthrough.browser
    upstream = dg.AssetSelection.assets(MODEL).upstream().resolve(defs.resolve_asset_graph())
    # Each node's background is its status: "light" while loading, then green (materialized), gray (some
    # partitions materialized), red (failed), ... (Dagster 1.13's AssetNode).
    nodes = "[...document.querySelectorAll('svg [class*=minimalAssetNodeBox]')]"
    browser.open(f"{walkthrough.dagster}/assets/models/flight_delay_model?view=lineage&lineageScope=upstream"
                 "&lineageDepth=10",
                 f"{nodes}.length >= {len(upstream)} && "
                 f"{nodes}.every(e => !e.style.cssText.includes('background-light'))")
    shown = browser.evaluate(f"{nodes}.map(e => [e.innerText.trim(), e.style.getPropertyValue('--minimal-bg')])")
    assert [label for label, status in shown if "green" not in status and "gray" not in status] == [], shown
    labels = [label for label, _ in shown]
    for key in upstream:
        match = next((label for label in labels if labelled(label, key.path[-1])), None)
        assert match, f"{key.to_user_string()} is not in the graph: {labels}"
        labels.remove(match)
    assert labels == [], f"assets drawn that are not upstream of the model: {labels}"
    groups = browser.evaluate(GROUPS_DRAWN)
    assert sorted(groups, key=groups.get) == ["ingestion", "validation", "transform", "features", "models"], groups
    assert off_the_machine(browser.requested) == []
    assert_shows_something(browser.screenshot("02_model_lineage"))


def test_the_clean_flights_page_shows_its_row_count_and_its_quarantine(walkthrough):
    browser = walkthrough.browser
    browser.open(f"{walkthrough.dagster}/assets/clean/flights",
                 "/^Row count\\n[\\d,]+$/m.test(document.body.innerText) && "
                 "document.body.innerText.includes('top_quarantine_reasons') && "
                 "document.body.innerText.includes('broken rows in quarantine/flights')")
    text = browser.text()
    assert row_count(text) == walkthrough.platform.query("SELECT count(*) FROM clean.flights")[0][0]
    shown = metadata(browser)
    counts = {name: int(shown[name]) for name in ("rows_in", "rows_clean", "rows_quarantined", "duplicates_removed")}
    assert counts["rows_in"] == counts["rows_clean"] + counts["rows_quarantined"] + counts["duplicates_removed"]
    assert counts["rows_clean"] == row_count(text)
    assert counts["rows_quarantined"] == BROKEN_FLIGHTS and shown["quarantine_table"] == "quarantine.flights"
    assert json.loads(shown["top_quarantine_reasons"]) == {BROKEN_REASON: BROKEN_FLIGHTS}
    # Typed columns from the contract: the table's own column list, with types and rules.
    assert re.search(r"^flight_date\s+DATE\s+non-nullable", text, re.M), text[:2000]
    assert off_the_machine(browser.requested) == []
    assert_shows_something(browser.screenshot("03_clean_flights"))


def test_the_clean_flights_checks_say_what_they_check(walkthrough):
    """Each check of the spec, with its description and whether it blocks, and its latest result."""
    from flightops.definitions import defs

    browser = walkthrough.browser
    key = dg.AssetKey(["clean", "flights"])
    specs = [spec for spec in defs.resolve_asset_graph().assets_def_for_key(key).check_specs
             if spec.asset_key == key]
    names = sorted(spec.name for spec in specs)
    assert names == ["fresh", "key_unique", "quarantine_rate", "rows_accounted"]
    for spec in sorted(specs, key=lambda spec: spec.name != "quarantine_rate"):  # the screenshot: quarantine_rate
        described = one_line(spec.description)
        browser.open(f"{walkthrough.dagster}/assets/clean/flights?view=checks&checkDetail={spec.name}",
                     f"document.body.innerText.replace(/\\s+/g, ' ').includes({json.dumps(described)}) && "
                     f"{json.dumps(names)}.every(name => "
                     "document.body.innerText.includes(`\\n${name}\\n${name}\\n`))")
        kind = "blocking" if spec.blocking else "non-blocking"
        assert f"This is a {kind} asset check. {described}" in one_line(browser.text())
        # The list beside it: each check's name (twice: name and tooltip) and its latest result.
        listed = dict(re.findall(r"^(\w+)\n\1\n(\w+)$", browser.text(), re.M))
        assert {name: listed.get(name) for name in names} == dict.fromkeys(names, "Succeeded"), browser.text()[:2000]
        assert off_the_machine(browser.requested) == []
        if spec.name == "quarantine_rate":
            assert "the rows and their reasons are on the quarantine/flights asset" in described
            assert_shows_something(browser.screenshot("04_clean_flights_checks"))


def test_the_catalog_lists_every_asset_and_opens_the_quarantine(walkthrough):
    """Every asset of the definitions is listed (quarantine tables too), and one click opens quarantine/flights."""
    from flightops.definitions import defs

    browser = walkthrough.browser
    keys = [key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()]
    every_row = 3600  # px: the catalog draws only the rows in view; this shows all of them
    browser.resize(every_row)
    try:
        browser.open(f"{walkthrough.dagster}/assets",
                     f"{json.dumps(keys)}.every(key => document.querySelector(`a[href='/assets/${{key}}']`)) && "
                     "!/Loading|^- partitions$/m.test(document.body.innerText)")  # statuses shown too
        assert {key for key in keys if key.startswith("quarantine/")} == {
            f"quarantine/{source}" for source in ("airlines", "airports", "flights", "planes", "weather")}
        text = browser.text()
        assert all(key.replace("/", " / ") in text for key in keys)
        browser.resize(HEIGHT)
        assert_shows_something(browser.screenshot("05_catalog"))
        browser.resize(every_row)
        quarantine = "document.querySelector(\"a[href='/assets/quarantine/flights']\")"
        browser.wait(f"!!{quarantine}", "the catalog's link to quarantine/flights")
        browser.click(quarantine)
    finally:
        browser.resize(HEIGHT)
    inspect_query = "SELECT _partition_date, record_key, reasons, record FROM quarantine.flights"
    # The metadata's Markdown (the query) renders after its table row: wait for what is asserted below.
    browser.wait("location.pathname === '/assets/quarantine/flights' && "
                 "/^Row count\\n[\\d,]+$/m.test(document.body.innerText) && "
                 f"document.body.innerText.replace(/\\s+/g, ' ').includes({json.dumps(inspect_query)})",
                 "the quarantine/flights page with its metadata")
    text = browser.text()
    quarantined = walkthrough.platform.query("SELECT count(*) FROM quarantine.flights")[0][0]
    assert row_count(text) == quarantined == BROKEN_FLIGHTS
    shown = metadata(browser)
    assert shown["rows_quarantined_in_run"] == str(BROKEN_FLIGHTS)
    assert json.loads(shown["reasons"]) == {BROKEN_REASON: BROKEN_FLIGHTS}, shown["reasons"]
    assert inspect_query in one_line(text)
    assert off_the_machine(browser.requested) == []
    assert_shows_something(browser.screenshot("06_quarantine_flights"))


def test_the_model_page_links_to_mlflow_over_http_and_shows_the_plots(walkthrough):
    import mlflow.artifacts

    from flightops.modeling import tracking

    browser, settings = walkthrough.browser, walkthrough.platform.settings
    client = tracking.mlflow_client(settings)
    version = client.get_model_version(tracking.REGISTERED_MODEL_NAME, "1")
    run = client.get_run(version.run_id)
    assert walkthrough.run_id in run.data.tags.values()  # the model of this walk's run
    browser.open(f"{walkthrough.dagster}/assets/models/flight_delay_model",
                 "document.body.innerText.includes('plot_roc') && document.body.innerText.includes('[Show Markdown]')")
    links = browser.links()
    run_page = f"{settings.mlflow_ui_url}/#/experiments/{run.info.experiment_id}/runs/{version.run_id}"
    assert run_page.startswith(("http://", "https://")) and run_page in links
    assert f"{settings.mlflow_ui_url}/#/models/{tracking.REGISTERED_MODEL_NAME}/versions/1" in links
    plots = {"calibration", "feature_importance", "precision_recall", "roc"}
    assert {f"{run_page}/artifacts/evaluation/{plot}.png" for plot in plots} <= set(links)
    assert [link for link in links if link.startswith("file:")] == [] and "file://" not in browser.text()
    shown = metadata(browser)
    assert shown["mlflow_run_id"] == version.run_id and shown["mlflow_run"] == run_page
    assert_shows_something(browser.screenshot("07_model"))

    # The plots are one click away ("[Show Markdown]" on evaluation_plots), embedded: nothing to fetch.
    browser.click("[...document.querySelectorAll('tr')].find(r => r.cells[0]?.innerText.trim() === 'evaluation_plots')"
                  "?.querySelector('a')")
    images = browser.wait(
        "(() => { const images = [...document.querySelectorAll('img[src^=\"data:image/png\"]')];"
        f" return images.length === {len(plots)} && images.every(i => i.complete && i.naturalWidth > 0)"
        " && images.map(i => [i.alt, i.src, i.naturalWidth, i.naturalHeight]); })()",
        "the evaluation plots to show")
    for alt, src, width, height in images:
        assert alt in plots and width >= 400 and height >= 300, (alt, width, height)
        artifact = Path(mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=f"evaluation/{alt}.png", tracking_uri=settings.mlflow_tracking_uri))
        assert base64.b64decode(src.split(",", 1)[1]) == artifact.read_bytes(), f"{alt}: not the run's plot"
    assert sorted(alt for alt, *_ in images) == sorted(plots)
    assert off_the_machine(browser.requested) == []
    assert_shows_something(browser.screenshot("08_model_plots"))


def test_the_service_docs_page_renders_offline(walkthrough):
    """The service's /docs in the same browser with no network: every request field, described."""
    browser = walkthrough.browser
    schema = requests.get(f"{walkthrough.service}/openapi.json", timeout=30).json()
    request_schema = schema["components"]["schemas"]["PredictionRequest"]
    request = request_schema["properties"]
    browser.open(f"{walkthrough.service}/docs", "document.querySelectorAll('pre.curl').length > 0")
    title = f"{schema['info']['title']} {schema['info']['version']}"
    assert browser.evaluate("document.querySelector('h1').innerText") == title
    rows = dict(browser.evaluate(  # the request body's table: field -> its row as shown
        "(() => { let table = [...document.querySelectorAll('h3')]"
        f".find(h => h.innerText.trim() === 'Request body: {request_schema['title']}');"
        " while (table && table.tagName !== 'TABLE') table = table.nextElementSibling;"
        " return [...table.tBodies[0].rows]"
        ".map(r => [r.cells[0].innerText.trim(), r.innerText.replace(/\\s+/g, ' ')]); })()"))
    assert sorted(rows) == sorted(request)
    for field, spec in request.items():
        assert one_line(spec["description"]) in rows[field], (field, rows[field])
    assert browser.requested and off_the_machine(browser.requested) == [], browser.requested
    assert_shows_something(browser.screenshot("09_serving_docs"))


def test_the_sensors_looked_and_launched_nothing(walkthrough):
    """The server's sensors ran against the walk's platform all along and found nothing to do."""
    query = ("{ sensorsOrError(repositorySelector: {repositoryLocationName: \"flightops.definitions\", "
             "repositoryName: \"__repository__\"}) { ... on Sensors { results { name sensorState { status "
             "ticks(limit: 20) { status skipReason runIds error { message } } } } } } }")

    def ticked() -> dict[str, list[dict]] | None:
        answer = requests.post(f"{walkthrough.dagster}/graphql", json={"query": query}, timeout=30).json()
        sensors = {s["name"]: s["sensorState"]["ticks"] for s in answer["data"]["sensorsOrError"]["results"]}
        return sensors if all(sensors[name] for name in ("landing_zone_sensor", "retraining_sensor")) else None

    sensors = wait_for(ticked, timeout=120, interval=5, what="a tick of the landing and retraining sensors")
    for name, ticks in sensors.items():
        assert all(t["status"] == "SKIPPED" and t["runIds"] == [] and t["error"] is None for t in ticks), (name, ticks)
    days = (date.fromisoformat(LAST) - date.fromisoformat(FIRST)).days + 1
    assert sensors["landing_zone_sensor"][0]["skipReason"].startswith(f"All {days} daily exports and 3 reference files")
    with instance_for(walkthrough.home) as instance:
        assert [run.run_id for run in instance.get_runs()] == [walkthrough.run_id]
