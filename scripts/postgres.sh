#!/usr/bin/env bash
# A private PostgreSQL server for the PostgreSQL-backed configuration and its tests:
# its own cluster under data/postgres (or $FLIGHTOPS_PG_DIR), listening on 127.0.0.1 only,
# port $FLIGHTOPS_PG_PORT (default 54329), with its own unix socket folder, so it never
# touches (or depends on) the system's cluster. Trust authentication on loopback: a local
# test server, not a deployment (platform/docker-compose.yml is the deployment).
#
#   scripts/postgres.sh start    install the server if missing (root, Debian), init, start, create databases
#   scripts/postgres.sh stop     stop it (nothing to do when it is not running)
#   scripts/postgres.sh status   print its state; exit 0 when running, 3 when not
#   scripts/postgres.sh env      print `export` lines: eval "$(scripts/postgres.sh env)"
#
# Every command is idempotent; `start` and `stop` hold a lock so concurrent calls queue.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Absolute: server programs run from / (see as_owner).
PG_DIR="$(realpath -m "${FLIGHTOPS_PG_DIR:-$REPO_ROOT/data/postgres}")"
PG_PORT="${FLIGHTOPS_PG_PORT:-54329}"
PG_HOST=127.0.0.1
SUPERUSER=postgres
DATABASES=(flightops_sources dagster)
CLUSTER="$PG_DIR/cluster"
SOCKET_DIR="$PG_DIR/socket"
LOG_FILE="$PG_DIR/server.log"
# Unix socket paths longer than this do not fit in sockaddr_un (107 bytes + NUL).
MAX_SOCKET_PATH=107

# Long messages come as several arguments, joined as written (no separator added).
die() {
    local IFS=''
    echo "postgres.sh: error: $*" >&2
    exit 1
}

say() {
    echo "postgres.sh: $*" >&2
}

usage() {
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
}

check_port() {
    [[ "$PG_PORT" =~ ^[0-9]+$ ]] && ((PG_PORT >= 1024 && PG_PORT <= 65535)) ||
        die "FLIGHTOPS_PG_PORT='$PG_PORT' is not a port number in 1024..65535; set it to a free port, e.g. 54329."
}

# The newest Debian server (/usr/lib/postgresql/<major>/bin), else one on PATH (other systems).
find_bin_dir() {
    local newest
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$newest" && -x "$newest/initdb" && -x "$newest/pg_ctl" ]]; then
        echo "$newest"
    elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
    fi
}

install_server() {
    [[ $EUID -eq 0 ]] ||
        die "the PostgreSQL server (initdb, pg_ctl) is not installed and installing it needs root. " \
            "Install it (sudo apt-get install -y postgresql), or run this script as root."
    command -v apt-get >/dev/null ||
        die "the PostgreSQL server (initdb, pg_ctl) is not installed and this system has no apt-get. " \
            "Install PostgreSQL 15 or newer with its package manager, with initdb and pg_ctl on PATH."
    say "PostgreSQL server not found: installing Debian's package postgresql (apt-get update, apt-get install)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed (see above): is the package registry reachable?"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null ||
        die "apt-get install -y postgresql failed (see above)."
}

# Sets BIN_DIR, installing the server first when allowed and needed.
require_server() {
    BIN_DIR="$(find_bin_dir)"
    if [[ -z "$BIN_DIR" && "${1:-}" == install ]]; then
        install_server
        BIN_DIR="$(find_bin_dir)"
        [[ -n "$BIN_DIR" ]] || die "apt-get installed postgresql but no initdb/pg_ctl is under /usr/lib/postgresql/*/bin."
    fi
    [[ -n "$BIN_DIR" ]] ||
        die "the PostgreSQL server (initdb, pg_ctl) is not installed. Run '$0 start' (as root on Debian it installs it)."
}

# The server refuses to run as root: as root the cluster belongs to the system user postgres,
# otherwise to whoever runs this script.
set_owner() {
    if [[ $EUID -eq 0 ]]; then
        id -u postgres >/dev/null 2>&1 ||
            die "running as root but there is no system user 'postgres' to own the cluster " \
                "(Debian's postgresql package creates it). Create it, or run this script as a normal user."
        OWNER=postgres
    else
        OWNER="$(id -un)"
    fi
}

# Run a server program as the cluster's owner, from a folder it can enter.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u "$OWNER" -- "$@")
    else
        (cd / && "$@")
    fi
}

prepare_dir() {
    local socket="$SOCKET_DIR/.s.PGSQL.$PG_PORT"
    ((${#socket} <= MAX_SOCKET_PATH)) ||
        die "the socket path $socket is longer than $MAX_SOCKET_PATH bytes; set FLIGHTOPS_PG_DIR to a shorter path."
    mkdir -p "$PG_DIR" || die "cannot create the folder $PG_DIR; set FLIGHTOPS_PG_DIR to a writable path."
    if [[ $EUID -eq 0 ]]; then
        chown "$OWNER": "$PG_DIR"
    fi
    as_owner test -w "$PG_DIR" -a -x "$PG_DIR" ||
        die "user $OWNER cannot write $PG_DIR (a parent folder is closed to it?). " \
            "Set FLIGHTOPS_PG_DIR to a folder that user can reach, e.g. /var/tmp/flightops-postgres."
    as_owner mkdir -p -m 0700 "$SOCKET_DIR"
}

lock() {
    exec 9>>"$PG_DIR/.lock"
    flock -w 120 9 || die "another postgres.sh start/stop has held $PG_DIR/.lock for 120 s; is one stuck?"
}

has_cluster() {
    [[ -f "$CLUSTER/PG_VERSION" ]]
}

is_running() {
    has_cluster && as_owner "$BIN_DIR/pg_ctl" status -D "$CLUSTER" >/dev/null 2>&1
}

# Line 4 of postmaster.pid is the port the running server listens on.
running_port() {
    sed -n 4p "$CLUSTER/postmaster.pid"
}

port_is_taken() {
    (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
}

init_cluster() {
    if [[ -e "$CLUSTER" ]] && [[ -n "$(ls -A "$CLUSTER")" ]]; then
        die "$CLUSTER exists and is not empty, but is no PostgreSQL cluster (no PG_VERSION). " \
            "Remove it (or set FLIGHTOPS_PG_DIR elsewhere) and run '$0 start' again."
    fi
    say "creating the cluster $CLUSTER"
    as_owner "$BIN_DIR/initdb" -D "$CLUSTER" -U "$SUPERUSER" --auth=trust --encoding=UTF8 --locale=C >/dev/null ||
        die "initdb of $CLUSTER failed (see above)."
}

check_cluster_version() {
    local cluster_major server_major
    cluster_major="$(cat "$CLUSTER/PG_VERSION")"
    # `pg_ctl (PostgreSQL) 15.18 (Debian ...)`: the third word's major number.
    server_major="$("$BIN_DIR/pg_ctl" --version | awk '{split($3, v, "."); print v[1]}')"
    [[ "$cluster_major" == "$server_major" ]] ||
        die "the cluster $CLUSTER was created by PostgreSQL $cluster_major but the installed server is $server_major. " \
            "Remove $CLUSTER (its data is test data) and run '$0 start' again."
}

start_server() {
    if port_is_taken; then
        die "port $PG_PORT on $PG_HOST is already in use by another program. Set FLIGHTOPS_PG_PORT to a free port."
    fi
    say "starting PostgreSQL on $PG_HOST:$PG_PORT (log: $LOG_FILE)"
    # 9>&-: the server outlives this script and must not inherit (and so hold) the lock.
    if ! as_owner "$BIN_DIR/pg_ctl" start -D "$CLUSTER" -l "$LOG_FILE" -w -t 60 -o \
        "-c listen_addresses=$PG_HOST -c port=$PG_PORT -c unix_socket_directories='$SOCKET_DIR'" >/dev/null 9>&-; then
        tail -n 20 "$LOG_FILE" >&2 || true
        die "the server of $CLUSTER did not start; the end of its log $LOG_FILE is above."
    fi
}

psql_admin() {
    "$BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$SUPERUSER" -d postgres -tA "$@"
}

create_databases() {
    local name
    for name in "${DATABASES[@]}"; do
        if [[ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]]; then
            psql_admin -c "CREATE DATABASE $name" || die "creating database $name on $PG_HOST:$PG_PORT failed (see above)."
            say "created database $name"
        fi
    done
}

cmd_start() {
    check_port
    require_server install
    set_owner
    prepare_dir
    lock
    if has_cluster; then
        check_cluster_version
    else
        init_cluster
    fi
    if is_running; then
        local port
        port="$(running_port)"
        [[ "$port" == "$PG_PORT" ]] ||
            die "the server of $CLUSTER is already running on port $port, not FLIGHTOPS_PG_PORT=$PG_PORT. " \
                "Stop it ('$0 stop') or use port $port."
        say "already running on $PG_HOST:$PG_PORT ($CLUSTER)"
    else
        start_server
    fi
    create_databases
}

cmd_stop() {
    if ! has_cluster; then
        say "no cluster at $CLUSTER: nothing to stop"
        return
    fi
    require_server
    set_owner
    lock
    if ! is_running; then
        say "not running ($CLUSTER)"
        return
    fi
    as_owner "$BIN_DIR/pg_ctl" stop -D "$CLUSTER" -m fast -w -t 60 >/dev/null ||
        die "stopping the server of $CLUSTER failed (see above); its log is $LOG_FILE."
    say "stopped ($CLUSTER)"
}

cmd_status() {
    BIN_DIR="$(find_bin_dir)"
    if [[ -z "$BIN_DIR" ]]; then
        echo "not installed (no initdb/pg_ctl); '$0 start' installs it"
        exit 3
    fi
    set_owner
    if ! has_cluster; then
        echo "no cluster at $CLUSTER; '$0 start' creates it"
        exit 3
    fi
    if is_running; then
        echo "running on $PG_HOST:$(running_port), pid $(head -n 1 "$CLUSTER/postmaster.pid"), cluster $CLUSTER"
    else
        echo "stopped, cluster $CLUSTER"
        exit 3
    fi
}

cmd_env() {
    check_port
    cat <<EOF
export FLIGHTOPS_PG_URL=postgresql+psycopg2://$SUPERUSER@$PG_HOST:$PG_PORT/flightops_sources
export DAGSTER_POSTGRES_HOST=$PG_HOST
export DAGSTER_POSTGRES_PORT=$PG_PORT
export DAGSTER_POSTGRES_USER=$SUPERUSER
export DAGSTER_POSTGRES_PASSWORD=''
export DAGSTER_POSTGRES_DB=dagster
EOF
}

[[ $# -eq 1 ]] || usage
case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) usage ;;
esac
