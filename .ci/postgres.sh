# Sourced by .ci/run: a PostgreSQL for the tests of the `postgres` feature, on 127.0.0.1 in a
# scratch directory, stopped on exit (through .ci/run's `cleanups`); exports DATABASE_URL. Installed with apt-get when running
# as root and missing. Under CI=true the tests fail, never skip, without DATABASE_URL.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing postgresql for the postgres feature's tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -n "$pg_bin" ] || { echo "PostgreSQL is needed for the postgres feature's tests" >&2; exit 1; }
pg_data=$(mktemp -d)
as_pg() { if [ "$(id -u)" = 0 ]; then chown -R postgres: "$pg_data"; runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$pg_bin/initdb" -D "$pg_data" -A trust -U rokt >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p 55433 -k $pg_data -c max_connections=200" start >/dev/null
cleanups+=('as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1; rm -rf "$pg_data"')
export DATABASE_URL=postgres://rokt@127.0.0.1:55433/postgres
