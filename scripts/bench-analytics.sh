#!/usr/bin/env bash
# The analytics figures of BENCHMARKS.md: the projection's throughput against a raw read of the
# log (real broker), KPI query latency over a million orders, and the dashboard's page load.
#
# usage: scripts/bench-analytics.sh
#
# Environment:
#   BENCH_ORDERS_PER_DAY  orders a day of the 120-day store (default 8400: about 1 M orders)
#   BENCH_LOG_ORDERS      orders a day of the 14-day log fed to the broker (default 800)
#   BENCH_REUSE_STORE=1   keep the million-order store of an earlier run (skips step 1)
# Needs the release binaries (cargo build --release) and, for the page load, what
# scripts/browser-test.sh installs. Output: JSON lines on stdout; work files in var/bench-analytics/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$ROOT/var/bench-analytics
PER_DAY=${BENCH_ORDERS_PER_DAY:-8400}
LOG_PER_DAY=${BENCH_LOG_ORDERS:-800}
if [[ ${BENCH_REUSE_STORE:-0} == 1 && -f $WORK/big/analytics.sqlite ]]; then
  find "$WORK" -mindepth 1 -maxdepth 1 ! -name big -exec rm -rf {} +
else
  rm -rf "$WORK"
fi
mkdir -p "$WORK"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  "$ROOT/scripts/kafka.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

echo "== 1. a million orders folded straight into a store (no broker): the fold and SQLite alone" >&2
if [[ ! -f $WORK/big/analytics.sqlite ]]; then
  "$BIN/orderflow-analytics" generate --into "$WORK/big" --days 120 --orders-per-day "$PER_DAY" --seed 3
fi
ls -l "$WORK/big/analytics.sqlite" >&2

echo "== 2. KPI query latency over that store (each query computed afresh, 3 runs)" >&2
PORT=$(free_port)
ORDERFLOW_ANALYTICS_LISTEN=127.0.0.1:$PORT "$BIN/orderflow-analytics" serve --store "$WORK/big" 2>"$WORK/serve.log" &
PIDS+=("$!")
until grep -q '^dashboard: ' "$WORK/serve.log" 2>/dev/null; do sleep 0.2; done
for endpoint in "overview?days=30" "overview?days=120" "kpis?days=30&by=channel" "trend?days=30" "funnel?days=30" \
  "exceptions?days=30" "sync-latency?days=30" "returns?days=30" "inventory?days=30" "rfm?days=30" "forecast?days=30"; do
  times=()
  for run in 1 2 3; do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/api/$endpoint&_=$run")")
  done
  printf '{"endpoint": "%s", "seconds": [%s]}\n' "$endpoint" "$(IFS=,; echo "${times[*]}")"
done

echo "== 3. page load over that store (headless Chromium, 5 loads)" >&2
"$ROOT/.tools/browser-venv/bin/python" tests/browser/page_load.py "http://127.0.0.1:$PORT/" 5

echo "== 4. the projection on a real broker: replay from offset 0 against a raw read of order-events" >&2
ORDERFLOW_BROKERS=$("$ROOT/scripts/kafka.sh" start)
export ORDERFLOW_BROKERS ORDERFLOW_TOPIC_PREFIX=bench.analytics. ORDERFLOW_DATA_DIR=$WORK
"$BIN/orderflow" topics create >&2
"$BIN/orderflow-analytics" generate --log-feed "$WORK/log.jsonl" --days 14 --orders-per-day "$LOG_PER_DAY" --seed 5
wc -l <"$WORK/log.jsonl" | xargs printf '{"log_records_fed": %s}\n'
"$BIN/orderflow" feed "$WORK/log.jsonl" >&2
"$BIN/orderflow" bench read-log
"$BIN/orderflow-analytics" replay --into "$WORK/replayed" --json
