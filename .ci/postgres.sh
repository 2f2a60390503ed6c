# Sourced by .ci/run (bash, set -euo pipefail): a PostgreSQL server on 127.0.0.1 for the tests of
# the `postgres` feature, in a temporary directory, stopped when the run ends. Exports
# DATABASE_URL (postgres://postgres@127.0.0.1:PORT/rokt_test). An existing DATABASE_URL is used
# as it is. PostgreSQL comes from Debian packages when missing (apt-get, as root). With CI=true,
# no database fails the run; otherwise the postgres tests are skipped with a message
# (ROKT_POSTGRES_SKIPPED=1).

pg_find_bin() {
    local d
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

pg_start() {
    local bin dir port as
    if ! bin=$(pg_find_bin); then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing PostgreSQL from Debian packages for the postgres tests"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
        fi
        bin=$(pg_find_bin) || return 1
    fi
    dir=$(mktemp -d /tmp/rokt-pg.XXXXXX)
    port=$(( 20000 + RANDOM % 20000 ))
    as=()
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root: the cluster belongs to the postgres user.
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$dir"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; return 1; }
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=on" start >/dev/null ||
        { cat "$dir/server.log" >&2; return 1; }
    ROKT_PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop)
    ROKT_PG_DIR=$dir
    trap 'pg_stop' EXIT
    "${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres rokt_test
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/rokt_test"
    echo "PostgreSQL on 127.0.0.1:$port (DATABASE_URL exported)"
}

pg_stop() {
    if [ -n "${ROKT_PG_DIR:-}" ]; then
        "${ROKT_PG_STOP[@]}" >/dev/null 2>&1 || true
        rm -rf "$ROKT_PG_DIR"
        ROKT_PG_DIR=
    fi
}

if [ -z "${DATABASE_URL:-}" ]; then
    if ! pg_start; then
        if [ "${CI:-}" = true ]; then
            echo "FAILED: CI=true and no PostgreSQL for the postgres tests (set DATABASE_URL or install postgresql)" >&2
            exit 1
        fi
        echo "SKIPPED: no PostgreSQL for the postgres tests (set DATABASE_URL or install postgresql)"
        export ROKT_POSTGRES_SKIPPED=1
    fi
fi
