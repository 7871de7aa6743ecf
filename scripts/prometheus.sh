#!/usr/bin/env bash
# A private Prometheus server that scrapes the prediction service's /metrics: its own
# configuration and TSDB under data/prometheus (or $FLIGHTOPS_PROMETHEUS_DIR), listening on
# 127.0.0.1 only, port $FLIGHTOPS_PROMETHEUS_PORT (default 9090). Debian's system service is never
# started (a package install that would start it is stopped): this is a local server for
# development and tests; platform/docker-compose.yml is the deployment.
#
#   scripts/prometheus.sh install          install Debian's prometheus when missing (root, apt-get)
#   scripts/prometheus.sh start [TARGET]   install if missing, write the scrape config, start (or reload) the server
#   scripts/prometheus.sh stop             stop it (nothing to do when it is not running)
#   scripts/prometheus.sh status           print its state; exit 0 when running, 3 when not
#
# TARGET is the service's host:port ($FLIGHTOPS_PROMETHEUS_TARGET, default 127.0.0.1:8000, what
# `make serve` listens on); $FLIGHTOPS_PROMETHEUS_SCRAPE_INTERVAL (default 5s; tests use 1s) sets how
# often it is scraped. `start` on a running server rewrites the config and reloads it (SIGHUP).
# Every command is idempotent; `start` and `stop` hold a lock so concurrent calls queue.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROM_DIR="$(realpath -m "${FLIGHTOPS_PROMETHEUS_DIR:-$REPO_ROOT/data/prometheus}")"
PROM_PORT="${FLIGHTOPS_PROMETHEUS_PORT:-9090}"
PROM_HOST=127.0.0.1
TARGET="${2:-${FLIGHTOPS_PROMETHEUS_TARGET:-127.0.0.1:8000}}"
SCRAPE_INTERVAL="${FLIGHTOPS_PROMETHEUS_SCRAPE_INTERVAL:-5s}"
JOB=flightops-serving
CONFIG="$PROM_DIR/prometheus.yml"
TSDB="$PROM_DIR/tsdb"
PID_FILE="$PROM_DIR/prometheus.pid"
LOG_FILE="$PROM_DIR/prometheus.log"
READY_TIMEOUT_SECONDS=60
STOP_TIMEOUT_SECONDS=30

# Long messages come as several arguments, joined as written (no separator added).
die() {
    local IFS=''
    echo "prometheus.sh: error: $*" >&2
    exit 1
}

say() {
    echo "prometheus.sh: $*" >&2
}

usage() {
    echo "usage: $0 install | start [HOST:PORT] | stop | status" >&2
    exit 2
}

check_settings() {
    [[ "$PROM_PORT" =~ ^[0-9]+$ ]] && ((PROM_PORT >= 1024 && PROM_PORT <= 65535)) ||
        die "FLIGHTOPS_PROMETHEUS_PORT='$PROM_PORT' is not a port number in 1024..65535; set it to a free port, e.g. 9090."
    [[ "$TARGET" =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] ||
        die "scrape target '$TARGET' is not HOST:PORT; pass the prediction service's address, e.g. 127.0.0.1:8000."
    [[ "$SCRAPE_INTERVAL" =~ ^[0-9]+(ms|s|m)$ ]] ||
        die "FLIGHTOPS_PROMETHEUS_SCRAPE_INTERVAL='$SCRAPE_INTERVAL' is not a Prometheus duration; use e.g. 1s or 15s."
}

# Debian's postinst would start the system service on port 9090. A policy-rc.d that answers 101
# forbids it (Docker images ship one); one is put in place for the install when there is none.
install_without_service() {
    local policy=/usr/sbin/policy-rc.d placed=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# Put by flightops scripts/prometheus.sh during apt-get install.\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        placed=yes
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null || status=$?
    if [[ -n "$placed" ]]; then
        rm -f "$policy"
    fi
    ((status == 0)) || die "apt-get install -y prometheus failed (see above)."
}

# Belt and braces: if a system prometheus runs after the install anyway, stop it and keep it
# from starting at boot, so it never holds port 9090 under a developer's server.
stop_system_service() {
    if [[ -d /run/systemd/system ]]; then
        if systemctl is-active --quiet prometheus || systemctl is-enabled --quiet prometheus 2>/dev/null; then
            say "disabling and stopping the system service prometheus started by the package"
            systemctl disable --now prometheus >/dev/null 2>&1 ||
                die "could not stop the system service prometheus; run 'systemctl disable --now prometheus'."
        fi
    elif [[ -x /etc/init.d/prometheus ]] && /etc/init.d/prometheus status >/dev/null 2>&1; then
        say "stopping the system service prometheus started by the package"
        /etc/init.d/prometheus stop >/dev/null ||
            die "could not stop the system service prometheus; run '/etc/init.d/prometheus stop'."
    fi
}

cmd_install() {
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        return
    fi
    [[ $EUID -eq 0 ]] ||
        die "Prometheus (prometheus, promtool) is not installed and installing it needs root. " \
            "Install it (sudo apt-get install -y --no-install-recommends prometheus), or run this script as root."
    command -v apt-get >/dev/null ||
        die "Prometheus (prometheus, promtool) is not installed and this system has no apt-get. " \
            "Install Prometheus 2.x with its package manager, with prometheus and promtool on PATH."
    say "Prometheus not found: installing Debian's package prometheus (apt-get update, apt-get install)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed (see above): is the package registry reachable?"
    install_without_service
    stop_system_service
    command -v prometheus >/dev/null && command -v promtool >/dev/null ||
        die "apt-get installed prometheus but prometheus or promtool is not on PATH."
}

lock() {
    mkdir -p "$PROM_DIR" || die "cannot create the folder $PROM_DIR; set FLIGHTOPS_PROMETHEUS_DIR to a writable path."
    exec 9>>"$PROM_DIR/.lock"
    flock -w 120 9 || die "another prometheus.sh start/stop has held $PROM_DIR/.lock for 120 s; is one stuck?"
}

# The pid of this folder's server when it runs: the pid file's process, if its command line
# names this folder's TSDB (a stale pid file may name a process that reused the pid).
running_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--storage.tsdb.path=$TSDB " || return 1
    echo "$pid"
}

# The --web.listen-address of a running server.
running_address() {
    tr '\0' '\n' <"/proc/$1/cmdline" | sed -n 's/^--web.listen-address=//p'
}

port_is_taken() {
    (exec 3<>"/dev/tcp/$PROM_HOST/$PROM_PORT") 2>/dev/null
}

# HTTP status of GET path on the server, or nothing when it does not answer (bash only, no curl).
http_status() {
    (
        exec 3<>"/dev/tcp/$PROM_HOST/$PROM_PORT" || exit 0
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$PROM_HOST" >&3
        read -r -t 5 _ code _ <&3 || true
        echo "${code:-}"
    ) 2>/dev/null
}

write_config() {
    local draft="$CONFIG.new"
    cat >"$draft" <<EOF
# Written by scripts/prometheus.sh start (rewritten on every start: edit the script, not this file).
global:
  scrape_interval: $SCRAPE_INTERVAL
  scrape_timeout: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
scrape_configs:
  - job_name: $JOB
    metrics_path: /metrics
    static_configs:
      - targets: ["$TARGET"]
EOF
    promtool check config "$draft" >/dev/null 2>&1 || {
        promtool check config "$draft" >&2 || true
        die "the generated scrape config $draft is invalid (promtool's report above)."
    }
    mv "$draft" "$CONFIG"
}

wait_ready() {
    local pid="$1" deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
    until [[ "$(http_status /-/ready)" == 200 ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$LOG_FILE" >&2 || true
            die "Prometheus exited while starting; the end of its log $LOG_FILE is above."
        fi
        ((SECONDS < deadline)) || die "Prometheus (pid $pid) is not ready after ${READY_TIMEOUT_SECONDS} s; see $LOG_FILE."
        sleep 0.2
    done
}

start_server() {
    port_is_taken &&
        die "port $PROM_PORT on $PROM_HOST is already in use by another program. Set FLIGHTOPS_PROMETHEUS_PORT to a free port."
    mkdir -p "$TSDB"
    say "starting Prometheus on http://$PROM_HOST:$PROM_PORT scraping $TARGET every $SCRAPE_INTERVAL (log: $LOG_FILE)"
    # setsid: its own session, so it outlives this script and no terminal signal reaches it;
    # 9>&-: it must not inherit (and so hold) the lock.
    setsid prometheus \
        --config.file="$CONFIG" \
        --storage.tsdb.path="$TSDB" \
        --web.listen-address="$PROM_HOST:$PROM_PORT" \
        >>"$LOG_FILE" 2>&1 </dev/null 9>&- &
    local pid=$!
    echo "$pid" >"$PID_FILE"
    wait_ready "$pid"
}

cmd_start() {
    check_settings
    cmd_install
    lock
    local pid
    if pid="$(running_pid)"; then
        local address
        address="$(running_address "$pid")"
        [[ "$address" == "$PROM_HOST:$PROM_PORT" ]] ||
            die "the server of $PROM_DIR is already running on $address, not FLIGHTOPS_PROMETHEUS_PORT=$PROM_PORT. " \
                "Stop it ('$0 stop') or use port ${address##*:}."
        write_config
        kill -HUP "$pid"
        say "already running on http://$PROM_HOST:$PROM_PORT (pid $pid): config reloaded, scraping $TARGET every $SCRAPE_INTERVAL"
    else
        write_config
        start_server
    fi
}

cmd_stop() {
    if [[ ! -d "$PROM_DIR" ]]; then
        say "no server folder $PROM_DIR: nothing to stop"
        return
    fi
    lock
    local pid
    if ! pid="$(running_pid)"; then
        say "not running ($PROM_DIR)"
        rm -f "$PID_FILE"
        return
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) ||
            die "Prometheus (pid $pid) did not stop within ${STOP_TIMEOUT_SECONDS} s of SIGTERM; see $LOG_FILE, or 'kill -9 $pid'."
        sleep 0.1
    done
    rm -f "$PID_FILE"
    say "stopped ($PROM_DIR)"
}

cmd_status() {
    if ! command -v prometheus >/dev/null; then
        echo "not installed (no prometheus on PATH); '$0 install' installs it"
        exit 3
    fi
    local pid
    if pid="$(running_pid)"; then
        echo "running on http://$(running_address "$pid"), pid $pid, folder $PROM_DIR"
    else
        echo "stopped, folder $PROM_DIR"
        exit 3
    fi
}

[[ $# -ge 1 ]] || usage
case "$1" in
    install) [[ $# -eq 1 ]] || usage; cmd_install ;;
    start) [[ $# -le 2 ]] || usage; cmd_start ;;
    stop) [[ $# -eq 1 ]] || usage; cmd_stop ;;
    status) [[ $# -eq 1 ]] || usage; cmd_status ;;
    *) usage ;;
esac
