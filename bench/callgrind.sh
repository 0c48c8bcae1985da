#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (independent of machine load).
#
#   bench/callgrind.sh [requests]        (default 2000; PORTCULLIS_BIN overrides the binary)
#
# Starts an nginx upstream answering GET /hello, runs `portcullis gateway` (one worker
# thread, SQLite store) under `valgrind --tool=callgrind` routing / to it, sends 400 warm-up
# requests on one keep-alive connection, zeroes the counters, sends N more, dumps, and prints
# the instruction count divided by N. The dump is kept for `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/portcullis-target}"
if [[ -z ${PORTCULLIS_BIN:-} ]]; then
  cargo build --profile profiling -p portcullis --locked
  PORTCULLIS_BIN="$CARGO_TARGET_DIR/profiling/portcullis"
fi
base=${CG_PORT:-18300}
up=$base gw=$((base + 1)) admin=$((base + 2))
dir=$(mktemp -d)
out=${CG_OUT:-$dir/callgrind.out}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
mkdir -p "$dir/nginx/logs"
cat > "$dir/nginx/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $dir/nginx/nginx.pid; error_log $dir/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$up; location /hello { default_type application/json; return 200 '{"message":"hello"}'; } } }
EOF
nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" &
pids+=($!)
KONG_PROXY_LISTEN="127.0.0.1:$gw" KONG_ADMIN_LISTEN="127.0.0.1:$admin" \
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" --dump-instr=no \
  "$PORTCULLIS_BIN" --log-level warn --worker-threads 1 gateway --data-dir "$dir" 2>"$dir/valgrind.log" &
vg=$!
pids+=($vg)
for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$admin/status" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS -X POST "http://127.0.0.1:$admin/services" --data name=bench --data "url=http://127.0.0.1:$up" >/dev/null
curl -fsS -X POST "http://127.0.0.1:$admin/services/bench/routes" --data 'paths[]=/' >/dev/null
send() {
  python3 - "$gw" "$1" <<'EOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    c.request("GET", "/hello")
    r = c.getresponse(); body = r.read()
    assert r.status == 200 and body == b'{"message":"hello"}', (r.status, body)
EOF
}
send 400
callgrind_control -z "$vg" >/dev/null
send "$n"
callgrind_control -d "$vg" >/dev/null
sleep 1
dump=$(ls -t "$dir"/cg.* | head -n 1)
cp "$dump" "$out" 2>/dev/null || true
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "instructions per proxied request: $((total / n)) ($total over $n requests; dump: $out)"
