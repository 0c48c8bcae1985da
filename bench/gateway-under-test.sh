#!/usr/bin/env bash
# Started by peers.sh (--extra-cmd): runs `portcullis gateway` on 127.0.0.1:$GW_PORT with a
# fresh SQLite store, routes / to $BENCH_UPSTREAM through the Admin API, then waits.
set -euo pipefail
bin=${PORTCULLIS_BIN:?}
port=${GW_PORT:-18100}
admin=$((port + 1))
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
KONG_PROXY_LISTEN="127.0.0.1:$port" KONG_ADMIN_LISTEN="127.0.0.1:$admin" \
  "$bin" --log-level warn --worker-threads "${GW_THREADS:-1}" gateway --data-dir "$dir" &
gw=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$admin/status" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X POST "http://127.0.0.1:$admin/services" --data name=bench --data "url=$BENCH_UPSTREAM" >/dev/null
curl -fsS -X POST "http://127.0.0.1:$admin/services/bench/routes" --data 'paths[]=/' >/dev/null
wait "$gw"
