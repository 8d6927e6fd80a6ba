#!/usr/bin/env bash
# Ingestion through the HTTP gateway against producing the same records directly, in one run on
# one broker: requests/s and p50/p99 latency (request sent -> 202, i.e. acknowledged by the broker
# with acks=all; for the direct producer, send -> acknowledgement), at a fixed rate and flat out.
# Each request is one signed order_placed with a fresh order id. The runs alternate (direct,
# gateway, direct, gateway) so a busy machine slows both sides alike.
#
# usage: scripts/bench-gateway.sh
#   BENCH_GW_REQUESTS=10000  requests per run
#   BENCH_GW_RATE=1000       the fixed rate (requests/s)
#   BENCH_GW_CONCURRENCY=64  requests in flight when flat out (and the workers at the fixed rate)
# Uses the broker of `scripts/kafka.sh ensure` (a running one is reused) under a fresh topic
# prefix. Results: var/bench-gateway/results.jsonl and a table on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REQUESTS=${BENCH_GW_REQUESTS:-10000}
RATE=${BENCH_GW_RATE:-1000}
CONCURRENCY=${BENCH_GW_CONCURRENCY:-64}
OUT=var/bench-gateway
BIN=target/release
GATEWAY_PID=

cleanup() {
  local rc=$?
  if [[ -n $GATEWAY_PID ]]; then kill -TERM "$GATEWAY_PID" 2>/dev/null || true; wait "$GATEWAY_PID" 2>/dev/null || true; fi
  exit "$rc"
}
trap cleanup EXIT

rm -rf "$OUT" && mkdir -p "$OUT"
cargo build --release --locked --bin orderflow --bin orderflow-gateway >&2
ORDERFLOW_BROKERS=$(scripts/kafka.sh ensure)
ORDERFLOW_TOPIC_PREFIX="bench-gw-$(date +%s)."
ORDERFLOW_BENCH_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export ORDERFLOW_BROKERS ORDERFLOW_TOPIC_PREFIX ORDERFLOW_BENCH_SECRET ORDERFLOW_PARTITIONS=6 RUST_LOG=warn
export ORDERFLOW_GATEWAY_LISTEN=127.0.0.1:$PORT ORDERFLOW_GATEWAY_CREDENTIALS=$ROOT/$OUT/credentials.toml
unset ORDERFLOW_CONFIG
cat >"$OUT/credentials.toml" <<TOML
[[source]]
id = "bench"
auth = "hmac"
secret-env = "ORDERFLOW_BENCH_SECRET"
kinds = ["*"]
TOML

"$BIN/orderflow" topics create >&2
"$BIN/orderflow-gateway" 2>"$OUT/gateway.log" &
GATEWAY_PID=$!
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "the gateway did not get ready (see $OUT/gateway.log)" >&2; exit 1; }

run() { # run MODE RATE CONCURRENCY
  local mode=$1 rate=$2 concurrency=$3 flag=()
  [[ $mode == direct ]] && flag=(--direct)
  "$BIN/orderflow-gateway" bench "${flag[@]}" --url "http://127.0.0.1:$PORT" --requests "$REQUESTS" \
    --rate "$rate" --concurrency "$concurrency" --json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' \
    >>"$OUT/results.jsonl"
}

# A warm-up of both paths (connections, producer ids, the broker's JIT), not reported.
"$BIN/orderflow-gateway" bench --direct --requests 2000 --concurrency "$CONCURRENCY" >/dev/null
"$BIN/orderflow-gateway" bench --url "http://127.0.0.1:$PORT" --requests 2000 --concurrency "$CONCURRENCY" >/dev/null
run direct "$RATE" "$CONCURRENCY"
run gateway "$RATE" "$CONCURRENCY"
run direct 0 "$CONCURRENCY"
run gateway 0 "$CONCURRENCY"

python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'pace':>10} {'path':>8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
for r in rows:
    pace = "flat out" if r["rate"] == 0 else f"{r['rate']}/s"
    print(f"{pace:>10} {r['mode']:>8} {r['per_second']:>11.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f}")
for rate in sorted({r["rate"] for r in rows}):
    d = next(r for r in rows if r["rate"] == rate and r["mode"] == "direct")
    g = next(r for r in rows if r["rate"] == rate and r["mode"] == "gateway")
    pace = "flat out" if rate == 0 else f"{rate}/s"
    print(f"{pace}: gateway/direct throughput {g['per_second'] / d['per_second']:.2f}, "
          f"p50 {g['p50_ms'] / d['p50_ms']:.2f}x, p99 {g['p99_ms'] / d['p99_ms']:.2f}x")
PY
