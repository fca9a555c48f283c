#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for tests, CI and benchmarks.
#
#   tools/postgres.sh [start]   start it (or find the one already running) and print its URL
#   tools/postgres.sh url       print the URL of the running one; exit 1 if none runs
#   tools/postgres.sh stop      stop it and delete its folder (nothing running is fine)
#   tools/postgres.sh restart   restart it in place (same port and data), as a database restart would
#
# `start` prints exactly one line on stdout,
#     postgres://continuum:continuum@127.0.0.1:PORT/continuum
# and everything else on stderr, so `URL=$(tools/postgres.sh)` works.
#
# The cluster lives in one folder, ${CONTINUUM_PG_DIR:-/tmp/continuum-postgres-$(id -u)}:
#   data/           the data directory (initdb; mode 700, owned by the user the server runs as)
#   port            the TCP port it listens on (127.0.0.1 only)
#   postgres.log    the server's log
#   initdb.log      initdb's output
#   .s.PGSQL.PORT   its unix socket
#   .continuum-postgres   a marker: only a folder holding it is ever deleted by this script
# Nothing in it is worth keeping: fsync stays on so benchmarks measure real commits, but a
# folder whose server is gone (a reboot, a SIGKILL) is simply deleted and created again.
#
# Superuser `continuum`, password `continuum`: password (scram-sha-256) over TCP, trust over
# the unix socket only. Database `continuum`.
#
# initdb refuses to run as root, so as root the server runs as the Debian user `postgres`;
# otherwise as the current user. If the PostgreSQL 15 server is not installed, `start`
# installs it from Debian's packages (as root).
#
# Two runs at once are serialized with flock on ${CONTINUUM_PG_DIR}.lock, next to the folder;
# the second finds the first's server and prints the same URL.
set -euo pipefail

# Close every descriptor inherited from the caller beyond 0-2 (a test harness's pipe ends, say):
# the server started below would hold them for as long as it runs, and a caller reading our
# output to its end would wait forever.
for fd in /proc/$$/fd/*; do
    fd=${fd##*/}
    if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
done

PGBIN=/usr/lib/postgresql/15/bin
DIR=${CONTINUUM_PG_DIR:-/tmp/continuum-postgres-$(id -u)}
DIR=${DIR%/}
LOCK="$DIR.lock"
DATA="$DIR/data"
PORTFILE="$DIR/port"
LOG="$DIR/postgres.log"
MARKER="$DIR/.continuum-postgres"
PGUSER_NAME=continuum
PGPASS=continuum
DBNAME=continuum
FIRST_PORT=54320
LAST_PORT=54419
TIMEOUT=60

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

case "$DIR" in
    /?*) ;;
    *) die "CONTINUUM_PG_DIR must be an absolute path other than /, not '$DIR'" ;;
esac

if [ "$(id -u)" -eq 0 ]; then
    RUN_AS=postgres
else
    RUN_AS=$(id -un)
fi

# Runs a command as the user the server runs as, from / (that user may not be able to read
# the caller's working directory), without fd 9: the server pg_ctl starts would inherit it and
# hold the flock for as long as it runs.
as_server_user() {
    if [ "$(id -u)" -ne 0 ]; then
        (cd / && "$@") 9>&-
    elif command -v runuser >/dev/null; then
        (cd / && runuser -u "$RUN_AS" -- "$@") 9>&-
    else
        (cd / && su -s /bin/bash -c "$(printf '%q ' "$@")" "$RUN_AS") 9>&-
    fi
}

url_for() { echo "postgres://$PGUSER_NAME:$PGPASS@127.0.0.1:$1/$DBNAME"; }

# The port of a cluster of ours that answers, or nothing.
running_port() {
    [ -f "$MARKER" ] && [ -f "$PORTFILE" ] && [ -f "$DATA/postmaster.pid" ] || return 1
    local port
    port=$(cat "$PORTFILE")
    [[ "$port" =~ ^[0-9]+$ ]] || return 1
    as_server_user "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 || return 1
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 5 || return 1
    echo "$port"
}

# Stops whatever server the folder's data directory may still have, then deletes the folder.
# Refuses to delete a folder this script did not create.
remove_folder() {
    [ -e "$DIR" ] || return 0
    if [ ! -f "$MARKER" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
        die "$DIR exists and was not made by this script; not deleting it (set CONTINUUM_PG_DIR elsewhere)"
    fi
    if [ -f "$DATA/postmaster.pid" ]; then
        as_server_user "$PGBIN/pg_ctl" -D "$DATA" -m "${1:-immediate}" -t "$TIMEOUT" -w -s stop >&2 || true
    fi
    rm -rf "$DIR"
}

ensure_installed() {
    local b
    for b in initdb pg_ctl postgres pg_isready psql; do
        if [ ! -x "$PGBIN/$b" ]; then
            [ "$(id -u)" -eq 0 ] || die "PostgreSQL 15 is not installed ($PGBIN/$b missing); run: sudo apt-get install postgresql-15"
            log "installing postgresql-15 (Debian package)…"
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
            break
        fi
    done
    for b in initdb pg_ctl postgres pg_isready psql; do
        [ -x "$PGBIN/$b" ] || die "$PGBIN/$b is still missing after installing postgresql-15"
    done
    id -u "$RUN_AS" >/dev/null 2>&1 || die "user $RUN_AS does not exist (it should come with postgresql-15)"
}

# A loopback port nothing listens on. pg_ctl start may still lose a race for it; start() then
# tries the next one.
free_port_from() {
    local port
    for ((port = $1; port <= LAST_PORT; port++)); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

psql_super() {
    PGPASSWORD=$PGPASS PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$1" -U "$PGUSER_NAME" -d postgres "${@:2}"
}

# Creates the database unless it exists (a start killed between the two leaves it missing).
ensure_database() {
    local exists
    exists=$(psql_super "$1" -At -c "select 1 from pg_database where datname = '$DBNAME'")
    if [ "$exists" != 1 ]; then
        psql_super "$1" -c "create database $DBNAME" >&2
    fi
}

start() {
    ensure_installed
    local port
    if port=$(running_port); then
        ensure_database "$port"
        url_for "$port"
        return 0
    fi

    if [ -f "$MARKER" ]; then
        log "removing the stale cluster in $DIR (its server is not answering)"
    fi
    remove_folder immediate

    log "creating a cluster in $DIR (running as $RUN_AS)"
    mkdir -p "$DIR"
    : >"$MARKER"
    chmod 700 "$DIR"
    [ "$RUN_AS" = "$(id -un)" ] || chown -R "$RUN_AS:" "$DIR"
    as_server_user test -w "$DIR" || die "user $RUN_AS cannot write to $DIR; set CONTINUUM_PG_DIR to a folder it can reach (e.g. under /tmp)"
    # shellcheck disable=SC2016 # expanded by that sh, from its arguments
    as_server_user sh -c 'umask 077 && mkdir "$1" && printf "%s\n" "$2" > "$3"' \
        sh "$DATA" "$PGPASS" "$DIR/pwfile"
    if ! as_server_user "$PGBIN/initdb" -D "$DATA" --username="$PGUSER_NAME" --pwfile="$DIR/pwfile" \
        --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 --locale=C --no-sync \
        >"$DIR/initdb.log" 2>&1; then
        cat "$DIR/initdb.log" >&2
        die "initdb failed"
    fi
    rm -f "$DIR/pwfile"

    port=$FIRST_PORT
    while true; do
        port=$(free_port_from "$port") || die "no free port in $FIRST_PORT-$LAST_PORT on 127.0.0.1"
        echo "$port" >"$PORTFILE"
        rm -f "$LOG" # pg_ctl creates it again as the server's user; the grep below sees this attempt only
        log "starting on 127.0.0.1:$port (log: $LOG)"
        if as_server_user "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -t "$TIMEOUT" -w -s \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$DIR -c max_connections=200 -c shared_buffers=128MB -c fsync=on -c synchronous_commit=on" \
            start >&2; then
            break
        fi
        if grep -q 'could not bind\|already in use' "$LOG" 2>/dev/null; then
            log "port $port was taken meanwhile; trying the next one"
            port=$((port + 1))
            continue
        fi
        log "pg_ctl start failed; the end of $LOG:"
        tail -n 40 "$LOG" >&2 2>/dev/null || true
        exit 1
    done

    local waited=0
    until "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1; do
        if ((waited >= TIMEOUT)); then
            log "the server did not answer on 127.0.0.1:$port within ${TIMEOUT}s; the end of $LOG:"
            tail -n 40 "$LOG" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done

    ensure_database "$port"
    log "ready"
    url_for "$port"
}

stop() {
    if [ -f "$DATA/postmaster.pid" ]; then
        log "stopping the cluster in $DIR"
    fi
    remove_folder fast
}

# Restarts the running cluster in place (same port, same data), as a database restart in
# production would: for tests that the store reconnects and loses nothing.
restart() {
    local port
    port=$(running_port) || die "no cluster of ours is running (in $DIR)"
    log "restarting the cluster on 127.0.0.1:$port"
    as_server_user "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -m fast -t "$TIMEOUT" -w -s restart >&2
    url_for "$port"
}

url() {
    local port
    port=$(running_port) || { log "no cluster of ours is running (in $DIR)"; exit 1; }
    url_for "$port"
}

command=${1:-start}
case "$command" in
    start | stop | restart)
        exec 9>"$LOCK"
        flock -w 300 9 || die "timed out waiting for $LOCK"
        "$command"
        ;;
    url) url ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) die "unknown command '$command' (start, stop, restart or url)" ;;
esac
