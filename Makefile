# The front door. `make run` and `make test` set everything up on a fresh machine
# (Python 3.11 and make); nothing else is needed for the embedded default.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Default replay window of the main job (first day is 2013-01-01).
UNTIL ?= 2013-03-31
# Where the servers listen: `make ui PORT=3001`, `make mlflow-ui PORT=5001`, `make serve PORT=8001` (each target
# has its own default below; HOST=0.0.0.0 to listen on every interface). Only the command line sets them: a PORT or
# HOST in the environment (tcsh exports HOST as the machine name) is ignored.
HOST = 127.0.0.1

# Telemetry off for every command below (dbt included): the switches are written once, in .env, and
# read from there; like flightops.settings.load_environment(), a variable set in the environment wins.
TELEMETRY_SWITCHES := DAGSTER_DISABLE_TELEMETRY DO_NOT_TRACK DBT_SEND_ANONYMOUS_USAGE_STATS MLFLOW_DISABLE_TELEMETRY
$(foreach switch,$(TELEMETRY_SWITCHES),$(eval export $(switch) ?= $(shell sed -n 's/^$(switch)=//p' .env)))

.PHONY: setup run test ui mlflow-ui serve sources-api bench lock clean postgres postgres-stop browser bench-models \
	prometheus prometheus-install prometheus-stop bench-monitoring bench-scaling

# Quiet on purpose (`make run` on a fresh clone should print a screenful): the steps are the lines below.
$(STAMP): pyproject.toml requirements.lock
	@echo "Setting up $(VENV) with the pinned dependencies (requirements.lock): a few minutes the first time"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade "pip>=24"
	@$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	@$(BIN)/python -m flightops.stack_check
	@touch $@

## setup: virtual environment with the pinned dependencies, dbt manifest parsed
setup: $(STAMP)
	@cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .

## run: replay the sources to $(UNTIL) and materialize the whole asset graph: one line per step on the terminal,
## the full log (Dagster, dbt, MLflow) in data/logs/run-*.log, then a summary and the commands to try next
run: setup
	$(BIN)/flightops run --until $(UNTIL)

## postgres: a private PostgreSQL server (data/postgres, 127.0.0.1:54329) for the PostgreSQL-backed
## configuration; installs Debian's postgresql with apt-get (as root) when missing
postgres:
	scripts/postgres.sh start

postgres-stop:
	scripts/postgres.sh stop

## prometheus: a private Prometheus (data/prometheus, http://127.0.0.1:9090) scraping the prediction
## service of `make serve` (127.0.0.1:8000); FLIGHTOPS_PROMETHEUS_PORT / _TARGET / _SCRAPE_INTERVAL override
prometheus:
	scripts/prometheus.sh start

prometheus-stop:
	scripts/prometheus.sh stop

## prometheus-install: Debian's prometheus package (apt-get, as root) when missing; its system service stays off
prometheus-install:
	scripts/prometheus.sh install

## browser: headless Chromium for the UI tests (Debian package, installed as root when missing)
browser:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

## test: the test suite (PostgreSQL, the UI and the Prometheus tests use the real servers and browser set up above),
## TEST_WORKERS processes side by side (pytest-xdist), each test file in one of them (its shared platform stays one),
## the files in collection order (tests/conftest.py puts the longest first; xdist would start with those of most tests)
TEST_WORKERS ?= 2
## The tests' private platforms (DuckDB, SQLite, MLflow files: about 600 MB a suite) go under TEST_TMPDIR: memory
## (/dev/shm) when it has TEST_TMPDIR_MIN_GB free (a SQLite commit's fsync costs 0.1 ms there, 1.5 ms on this disk),
## else the system's temp folder. In memory, only the last run's folders are kept (pytest keeps three otherwise).
TEST_TMPDIR_MIN_GB ?= 2
TEST_TMPDIR ?= $(shell df -P -k /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 >= $(TEST_TMPDIR_MIN_GB) * 1048576 {print "/dev/shm"}')
test: setup postgres browser prometheus-install
	$(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR) )$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		$(if $(TEST_TMPDIR),-o tmp_path_retention_count=1)

## test-fast: the unit tests only (marker `unit`: no platform run, no server, no dbt manifest), in under a minute
.PHONY: test-fast
test-fast: $(STAMP)
	$(BIN)/pytest -m unit

## ui: the Dagster UI and daemon on 127.0.0.1:3000 (PORT=...) over the same instance as `make run`, sensors on,
## with the weather API running for the runs they launch. Stop: Ctrl-C, or SIGTERM to the `flightops ui` process
ui: PORT = 3000
ui: setup
	$(BIN)/flightops ui --host $(HOST) --port $(PORT)

## mlflow-ui: the MLflow UI on 127.0.0.1:5000 (PORT=...) over the platform's tracking store (data/mlflow);
## links from Dagster point at FLIGHTOPS_MLFLOW_UI_URL (.env): change it with the port
mlflow-ui: PORT = 5000
mlflow-ui: setup
	$(BIN)/flightops mlflow-ui --host $(HOST) --port $(PORT)

## serve: the champion model over HTTP on 127.0.0.1:8000 (PORT=...; POST /predict, POST /predict/flight,
## GET /health, GET /metrics); `make prometheus` scrapes 127.0.0.1:8000 unless FLIGHTOPS_PROMETHEUS_TARGET says otherwise
serve: PORT = 8000
serve: setup
	$(BIN)/flightops serve --host $(HOST) --port $(PORT)

## sources-api: serve the weather API in the foreground (needed by runs launched from the UI)
sources-api: setup
	$(BIN)/flightops sources api

## bench: wall time and peak memory, platform vs a plain pandas script
bench: setup
	$(BIN)/python scripts/benchmark.py

## bench-models: training wall time and peak memory (tuning off, default budget), serving latency p50/p99
bench-models: setup
	$(BIN)/python scripts/benchmark_models.py

## bench-scaling: the data layers over the year at 1x, 3x and 10x the flights (wall, CPU, peak RSS, rows checked)
bench-scaling: setup
	$(BIN)/python scripts/benchmark_scaling.py

## bench-monitoring: Evidently time per monitored partition (1k/27k/300k rows), the daily run with and without
## retraining, and the delay from a degraded partition to the retraining run request
bench-monitoring: setup
	$(BIN)/python scripts/benchmark_monitoring.py

## lock: refresh requirements.lock from the current environment (after changing pyproject.toml)
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

clean:
	scripts/postgres.sh stop
	rm -rf data dbt_project/target dbt_project/logs
