#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and development, on 127.0.0.1 only.
#
#   scripts/ensure-postgres.sh     -> last line of stdout: postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
#
# Idempotent: if a server already answers on the port, nothing is done. Otherwise the
# binaries are installed with apt-get when missing (root only, e.g. a fresh Debian CI
# machine), a cluster is created in $LIENTHONG_PG_DIR (default /tmp/lienthong-pg) with
# trust auth for 127.0.0.1, and started with pg_ctl. Survives a killed earlier run
# (stale postmaster.pid, a cluster that exists but is stopped, a half-done initdb).
# Progress goes to stderr so stdout stays the URL.
set -euo pipefail

PORT="${LIENTHONG_PG_PORT:-55432}"
DIR="${LIENTHONG_PG_DIR:-/tmp/lienthong-pg}"
DATA="$DIR/data"
LOG="$DIR/postgres.log"
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"

say() { echo "ensure-postgres: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Two test sessions starting at once must not both run initdb. (The server must not
# inherit the lock: as_pg closes fd 9.)
if command -v flock >/dev/null; then
    exec 9>"/tmp/lienthong-pg-$PORT.lock"
    flock -w 300 9 || die "another ensure-postgres.sh holds /tmp/lienthong-pg-$PORT.lock"
fi

answers() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p "$PORT" -t 2
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
    fi
}

if answers; then
    say "a server already answers on 127.0.0.1:$PORT"
    echo "$URL"
    exit 0
fi

# --- binaries -------------------------------------------------------------------------
bin_dir() {
    # Debian keeps them off PATH, one folder per major version: take the newest.
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
    elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"
    fi
}

BIN=$(bin_dir)
if [ -z "$BIN" ]; then
    [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed (no initdb/pg_ctl); install it (apt-get install postgresql) or set LIENTHONG_TEST_POSTGRES_URL"
    say "installing PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
    BIN=$(bin_dir)
    [ -n "$BIN" ] || die "apt-get installed postgresql but no initdb/pg_ctl was found under /usr/lib/postgresql/*/bin"
fi
ISREADY="$BIN/pg_isready"
[ -x "$ISREADY" ] || ISREADY=pg_isready
VERSION=$("$BIN/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')  # major version, as in PG_VERSION

# --- who runs the server (it refuses to run as root) -------------------------------------
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
    as_pg() { (cd / && runuser -u postgres -- "$@" 9>&-); }
    mkdir -p "$DIR"
    chown postgres: "$DIR"
else
    as_pg() { "$@" 9>&-; }
    mkdir -p "$DIR"
    [ -O "$DIR" ] || die "$DIR belongs to another user; remove it or set LIENTHONG_PG_DIR"
fi
chmod 700 "$DIR"

# --- the cluster ------------------------------------------------------------------------
live_postmaster() {
    # The pid in postmaster.pid if that process is still a postgres (pids get reused).
    local pid
    pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null || echo postgres)" = postgres ] || return 1
    echo "$pid"
}

# A data folder from a half-done initdb or another major version is thrown away: it only
# ever holds test databases.
if [ -d "$DATA" ] && [ "$(cat "$DATA/PG_VERSION" 2>/dev/null || true)" != "$VERSION" ]; then
    say "discarding $DATA (unfinished or not PostgreSQL $VERSION)"
    if pid=$(live_postmaster); then kill -9 "$pid" || true; sleep 1; fi
    rm -rf "$DATA"
fi
if [ ! -d "$DATA" ]; then
    say "creating a PostgreSQL $VERSION cluster in $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --no-locale >&2
    # Only TCP from this machine, no password: a throwaway server for tests.
    printf 'host all all 127.0.0.1/32 trust\n' | as_pg tee "$DATA/pg_hba.conf" >/dev/null
fi

# A postmaster.pid whose process is gone (or is now some other program) blocks a start.
if [ -f "$DATA/postmaster.pid" ]; then
    if pid=$(live_postmaster); then
        # Our cluster runs, but not on this port (or not answering): restart it here.
        say "restarting the cluster in $DATA (pid $pid) on port $PORT"
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >&2 || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DATA/postmaster.pid"
fi
rm -f "$DIR"/.s.PGSQL.*  # socket and lock files of a killed server

# fsync=off: a crash loses nothing worth keeping here, and tests create many databases.
say "starting PostgreSQL $VERSION on 127.0.0.1:$PORT (log: $LOG)"
if ! as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off" start >&2; then
    tail -n 20 "$LOG" >&2 || true
    die "PostgreSQL did not start on 127.0.0.1:$PORT"
fi

for _ in $(seq 1 30); do
    if "$ISREADY" -q -h 127.0.0.1 -p "$PORT" -t 2; then
        echo "$URL"
        exit 0
    fi
    sleep 1
done
tail -n 20 "$LOG" >&2 || true
die "PostgreSQL started but does not answer on 127.0.0.1:$PORT"
