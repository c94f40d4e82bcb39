#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, on loopback, with its files under target/.
#   scripts/postgres.sh start [DIR] [PORT]   prints the database URL on its last line
#   scripts/postgres.sh stop  [DIR]
#   scripts/postgres.sh resume [DIR] [PORT]  starts a stopped cluster again, data kept
# Installs Debian's postgresql package when no server is present. Trust authentication
# and fsync=off: this database is for tests only and never leaves this machine.
# MOP_PG_SETTINGS replaces the durability settings ("" keeps PostgreSQL's defaults, as the
# benchmark does).
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-start}
dir=$(realpath -m "${2:-target/pg}")
port=${3:-54329}
settings=${MOP_PG_SETTINGS-"-c fsync=off -c synchronous_commit=off"}

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_postgres() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}

case "$action" in
start)
    bin=$(find_bin)
    if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then
        echo "installing PostgreSQL from Debian's packages" >&2
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
        bin=$(find_bin)
    fi
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl -D '$dir/data' -m immediate stop" >&2 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_postgres "$bin/initdb -D '$dir/data' -U postgres -A trust --no-sync" >/dev/null
    as_postgres "$bin/pg_ctl -D '$dir/data' -l '$dir/server.log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 $settings -c max_connections=500\" start" >&2
    as_postgres "$bin/createdb -h 127.0.0.1 -p $port -U postgres mop_test"
    echo "postgres://postgres@127.0.0.1:$port/mop_test"
    ;;
resume)
    bin=$(find_bin)
    as_postgres "$bin/pg_ctl -D '$dir/data' -l '$dir/server.log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 $settings -c max_connections=500\" start" >&2
    ;;
stop)
    bin=$(find_bin)
    if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl -D '$dir/data' -m fast -w stop" >&2
    fi
    ;;
*)
    echo "usage: $0 start|stop|resume [DIR] [PORT]" >&2
    exit 2
    ;;
esac
