#!/usr/bin/env bash
# The whole suite, headless. Starts a throw-away PostgreSQL server (installing it with
# apt-get when missing and possible) so that the shared-deployment tests run too.
set -uo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen
export PYTHONFAULTHANDLER=1
export PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring

PG_DATA=""
PG_BIN=""
stop_postgres() {
  if [ -n "$PG_DATA" ] && [ -n "$PG_BIN" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DATA"
  fi
}
trap stop_postgres EXIT

start_postgres() {
  if [ -n "${BATCHCALLS_TEST_POSTGRES_URL:-}" ]; then return 0; fi
  if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "Installing PostgreSQL for the shared-database tests..."
      (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/dev/null &&
       apt-get install -y -qq --no-install-recommends postgresql >/dev/null) || return 1
    else
      return 1
    fi
  fi
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  id postgres >/dev/null 2>&1 || return 1
  PG_DATA=$(mktemp -d /tmp/batchcalls-pg.XXXXXX)
  chown postgres "$PG_DATA"
  local port=$(( 20000 + RANDOM % 20000 ))
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres >/dev/null || return 1
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
    -o "-p $port -k $PG_DATA -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || return 1
  runuser -u postgres -- "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" batchcalls_test || return 1
  export BATCHCALLS_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/batchcalls_test"
  echo "PostgreSQL test server on 127.0.0.1:$port"
}

if ! start_postgres; then
  echo "WARNING: no PostgreSQL server could be started; the tests marked 'postgres' are skipped."
fi

# tests/test_package.py builds the installer: a venv made before the package extra
# existed gets it here.
if ! .venv/bin/python -c "import PyInstaller" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet -e '.[package]' ||
    echo "WARNING: the package extra could not be installed; the installer test is skipped."
fi

.venv/bin/python -m pytest "$@"
status=$?
if [ $status -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here."
  exit 1
fi
exit $status
