#!/usr/bin/env bash
# Gateway throughput and latency side by side with nginx proxy_pass, haproxy and direct-to-
# upstream, on loopback with wrk, using the shared peers.sh harness (PEERS_SH overrides its
# path). Prints peers.sh's markdown table (req/s, p50, p99, CPU µs/request, ratios).
#
#   bench/gateway.sh [peers.sh options, e.g. --quick]
#
# Run it on an otherwise idle machine. The gateway gets one worker thread (GW_THREADS), as
# the built-in peers each get one worker. By default each peer is measured three times for
# 10 s after a 2 s warm-up (options given here override that): with 5 s repetitions a single
# stall of the shared server CPU decided the mean p99 of either server (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/portcullis-target}"
cargo build --release -p portcullis --locked
export PORTCULLIS_BIN="$CARGO_TARGET_DIR/release/portcullis"
export GW_PORT="${GW_PORT:-18100}"
peers="${PEERS_SH:-../shared/tools/peers.sh}"
exec bash "$peers" --peers "${BENCH_PEERS:-direct,nginx,haproxy}" --no-caddy \
  --extra "http://127.0.0.1:$GW_PORT/hello" --extra-name portcullis \
  --extra-cmd "bash $(pwd)/bench/gateway-under-test.sh" --duration 10 --warmup 2 --reps 3 "$@"
