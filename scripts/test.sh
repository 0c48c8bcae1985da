#!/usr/bin/env bash
# Runs the whole test suite. PostgreSQL tests use PORTCULLIS_TEST_POSTGRES_URL
# (default postgres://postgres@127.0.0.1:5432/postgres). Without a reachable server the
# PostgreSQL suite is skipped (and says so) — except under CI=true, where it must run.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url="${PORTCULLIS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
hostport="${pg_url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
pg_host="${hostport%%:*}"; pg_port="${hostport##*:}"; [ "$pg_port" = "$hostport" ] && pg_port=5432

if (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null; then
  echo "PostgreSQL reachable at $pg_host:$pg_port: running the SQLite and PostgreSQL suites."
  postgres_status="ran"
else
  if [ "${CI:-}" = "true" ]; then
    echo "error: CI=true but PostgreSQL is not reachable at $pg_host:$pg_port" >&2
    exit 1
  fi
  echo "NOTICE: PostgreSQL is not reachable at $pg_host:$pg_port: the PostgreSQL suite will be SKIPPED."
  export PORTCULLIS_SKIP_POSTGRES=1
  postgres_status="SKIPPED (no server at $pg_host:$pg_port)"
fi

cargo test --workspace --locked "$@"

echo "PostgreSQL suite: $postgres_status"
