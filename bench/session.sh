#!/usr/bin/env bash
# cookie_session resolution cost: in process (as `portcullis up` wires it) versus over HTTP to
# the identity server, on loopback with wrk. Prints a markdown table (req/s, p50, p99) and the
# ratio in-process / HTTP.
#
#   bench/session.sh
#
# What runs (all on 127.0.0.1, ports BENCH_BASE_PORT.. , default 28200):
#   - `portcullis up` (SQLite in a temp dir): its access proxy resolves `cookie_session` in
#     process; its identity server also answers /sessions/whoami over HTTP;
#   - `portcullis access -c oathkeeper.yml`: the same rule (`/hello`, cookie_session, allow,
#     noop, the same demo upstream) with check_session_url pointing at that identity server's
#     public port, i.e. one HTTP round trip per request, as a standalone Oathkeeper would.
# One user registers through the browser flow; both proxies are then loaded with the same
# session cookie, alternating A/B for BENCH_RUNS rounds (median reported).
#
# Servers are pinned to CPU 0 and wrk to CPU 1 (when there are 2+ CPUs), and every server gets
# BENCH_SERVER_THREADS worker threads (default 1), so both variants have the same CPU budget.
# Environment: PORTCULLIS_BIN (skip the build), BENCH_DURATION (10s), BENCH_CONNECTIONS (32),
# BENCH_RUNS (3). Every listener binds 127.0.0.1; every wrk run is bounded; the script stops
# only the processes it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "session.sh: wrk is required (apt-get install -y wrk)" >&2; exit 2; }
command -v jq >/dev/null || { echo "session.sh: jq is required (apt-get install -y jq)" >&2; exit 2; }
if [ -z "${PORTCULLIS_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/portcullis-target}"
  cargo build --release -p portcullis --locked
  PORTCULLIS_BIN="$CARGO_TARGET_DIR/release/portcullis"
fi

base=${BENCH_BASE_PORT:-28200}
duration=${BENCH_DURATION:-10s}
conns=${BENCH_CONNECTIONS:-32}
runs=${BENCH_RUNS:-3}
threads=${BENCH_SERVER_THREADS:-1}
host=127.0.0.1
gw=$base gw_admin=$((base + 1)) access=$((base + 2)) access_api=$((base + 3))
id_public=$((base + 4)) id_admin=$((base + 5)) ui=$((base + 6)) smtp=$((base + 7))
mail_web=$((base + 8)) mail_api=$((base + 9)) hello=$((base + 10)) world=$((base + 11))
http_proxy=$((base + 12)) http_api=$((base + 13))

server_pin=() wrk_pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_pin=(taskset -c 0) wrk_pin=(taskset -c 1)
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_for() { # url
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "session.sh: $1 did not come up; logs in $tmp" >&2
  tail -n 20 "$tmp"/*.log >&2 || true
  exit 2
}

"${server_pin[@]}" "$PORTCULLIS_BIN" --worker-threads "$threads" --log-level warn up \
  --data-dir "$tmp/data" --host "$host" \
  --gateway-port "$gw" --gateway-admin-port "$gw_admin" \
  --access-port "$access" --access-api-port "$access_api" \
  --identity-port "$id_public" --identity-admin-port "$id_admin" --ui-port "$ui" \
  --smtp-port "$smtp" --mail-web-port "$mail_web" --mail-api-port "$mail_api" \
  --hello-port "$hello" --world-port "$world" >"$tmp/up.log" 2>&1 &
pids+=($!)
wait_for "http://$host:$access_api/health/ready"
wait_for "http://$host:$id_public/health/ready"

# The standalone access proxy: the same rule, the session check over HTTP.
rules=$(jq -cn --arg m "http://$host:$http_proxy/hello" --arg u "http://$host:$hello" '[{
  id: "api:hello-protected", upstream: {preserve_host: true, url: $u},
  match: {url: $m, methods: ["GET"]}, authenticators: [{handler: "cookie_session"}],
  authorizer: {handler: "allow"}, mutators: [{handler: "noop"}]}]')
printf '%s' "$rules" >"$tmp/rules.json"
jq -n --arg rules "file://$tmp/rules.json" --arg check "http://$host:$id_public/sessions/whoami" \
  --argjson proxy "$http_proxy" --argjson api "$http_api" '{
  serve: {proxy: {port: $proxy, host: "127.0.0.1"}, api: {port: $api, host: "127.0.0.1"}},
  errors: {fallback: ["json"], handlers: {json: {enabled: true, config: {}}}},
  access_rules: {matching_strategy: "glob", repositories: [$rules]},
  authenticators: {cookie_session: {enabled: true, config: {check_session_url: $check,
    preserve_path: true, extra_from: "@this", subject_from: "identity.id",
    only: ["ory_kratos_session"]}}},
  authorizers: {allow: {enabled: true}}, mutators: {noop: {enabled: true}}}' >"$tmp/oathkeeper.yml"
"${server_pin[@]}" "$PORTCULLIS_BIN" --worker-threads "$threads" --log-level warn access \
  -c "$tmp/oathkeeper.yml" >"$tmp/access.log" 2>&1 &
pids+=($!)
wait_for "http://$host:$http_api/health/ready"

# One user, registered through the browser flow; its session cookie is used by both runs.
jar="$tmp/cookies.txt"
flow=$(curl -fsS -c "$jar" -H 'Accept: application/json' \
  "http://$host:$id_public/self-service/registration/browser")
flow_id=$(jq -r '.id' <<<"$flow")
csrf=$(jq -r '.ui.nodes[] | select(.attributes.name == "csrf_token") | .attributes.value' <<<"$flow")
jq -n --arg csrf "$csrf" '{method: "password", csrf_token: $csrf, password: "bench-Passw0rd-42x",
  traits: {email: "bench@example.com"}}' >"$tmp/register.json"
curl -fsS -o /dev/null -b "$jar" -c "$jar" -H 'Accept: application/json' \
  -H 'Content-Type: application/json' --data @"$tmp/register.json" \
  "http://$host:$id_public/self-service/registration?flow=$flow_id"
session=$(awk '$6 == "ory_kratos_session" { print $7 }' "$jar")
[ -n "$session" ] || { echo "session.sh: registration gave no session cookie" >&2; exit 2; }
cookie="ory_kratos_session=$session"

declare -A url=(
  [in-process]="http://$host:$access/hello"
  [http]="http://$host:$http_proxy/hello"
)
for name in in-process http; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "${url[$name]}")
  [ "$code" = 200 ] || { echo "session.sh: $name answered $code with the session" >&2; exit 2; }
  code=$(curl -s -o /dev/null -w '%{http_code}' "${url[$name]}")
  [ "$code" = 401 ] || { echo "session.sh: $name answered $code without a session" >&2; exit 2; }
done

# wrk --latency output -> "req/s p50_ms p99_ms"
measure() { # url
  local out
  out=$(timeout 120 "${wrk_pin[@]}" wrk -t1 -c"$conns" -d"$duration" --latency \
    -H "Cookie: $cookie" "$1")
  if grep -q 'Non-2xx' <<<"$out"; then
    echo "session.sh: non-2xx answers during the run:" >&2
    echo "$out" >&2
    exit 1
  fi
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }' <<<"$out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Warm up both (connection pools, SQLite page cache).
for name in in-process http; do
  timeout 30 "${wrk_pin[@]}" wrk -t1 -c"$conns" -d2s -H "Cookie: $cookie" "${url[$name]}" >/dev/null
done

declare -A rps p50 p99
for round in $(seq 1 "$runs"); do
  order=(in-process http)
  [ $((round % 2)) -eq 0 ] && order=(http in-process)
  for name in "${order[@]}"; do
    result=$(measure "${url[$name]}")
    read -r r a b <<<"$result"
    rps[$name]+="$r "
    p50[$name]+="$a "
    p99[$name]+="$b "
  done
done

echo
echo "cookie_session resolution, $runs rounds x $duration, $conns connections, wrk -t1; servers: $threads worker thread(s) each${server_pin:+, pinned to CPU 0 (wrk on CPU 1)}"
echo
echo "| session check | req/s (median) | p50 ms | p99 ms |"
echo "|---|---:|---:|---:|"
declare -A med
for name in in-process http; do
  med[$name]=$(tr ' ' '\n' <<<"${rps[$name]}" | grep . | median)
  m50=$(tr ' ' '\n' <<<"${p50[$name]}" | grep . | median)
  m99=$(tr ' ' '\n' <<<"${p99[$name]}" | grep . | median)
  echo "| $name | ${med[$name]} | $m50 | $m99 |"
done
echo
awk -v a="${med[in-process]}" -v b="${med[http]}" \
  'BEGIN { printf "in-process / http throughput: %.2fx\n", (b > 0 ? a / b : 0) }'
