#!/usr/bin/env bash
# Where the CPU goes, per process, on a fresh local Apache Kafka (BENCHMARKS.md, run D):
#   1. drain: N orders preloaded into the input topics, then drained by the four intake
#      consumers and one state consumer; prints each process's CPU seconds (from /proc) and
#      the wall time until every fact is reflected on order-state, and the CPU milliseconds
#      each process spent per input record (input fact) of the drain.
#   2. requests: the same consumers at RATE events/s; prints the requests per second each
#      client sends the broker (TCP segments out, from `ss -tinp`, over 5 s), and the run's
#      end-to-end latency, overall and per hop (`orderflow bench hops`), and how long the
#      state consumer's store writes took (orderflow_state_store_write_seconds, on its writer
#      thread).
# usage: scripts/cpu-profile.sh   (PROFILE_ORDERS=20000 PROFILE_RATE=2000 PROFILE_WARMUP=3;
#                                  ORDERFLOW_MAX_BATCH works)
#   PROFILE_BIN=DIR      run the binaries in DIR instead of target/release (for an A/B against
#                        another commit: build it in a git worktree and point here at its
#                        target/release); nothing is built then
#   ORDERFLOW_BROKERS    use this running broker instead of starting (and stopping) a fresh one,
#                        so that alternating A/B runs share one broker
#   KAFKA_TEST_JIT=quick the broker it starts uses the test harness's C1-only JIT
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ORDERS=${PROFILE_ORDERS:-20000}
RATE=${PROFILE_RATE:-2000}
WARMUP=${PROFILE_WARMUP:-3}
BIN=${PROFILE_BIN:-target/release}
OUT=var/profile/$$
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]:-}"; do
    if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [[ -z $OWN_BROKER ]]; then scripts/kafka.sh stop >/dev/null 2>&1 || true; fi
  rm -rf "$OUT"
  exit "$rc"
}
trap cleanup EXIT
mkdir -p "$OUT"
OWN_BROKER=${ORDERFLOW_BROKERS:-}
export KAFKA_TEST_JIT=${KAFKA_TEST_JIT:-full} # as bench.sh: a broker compiled as in production
if [[ -z ${PROFILE_BIN:-} ]]; then cargo build --release --locked >&2; fi
if [[ -z $OWN_BROKER ]]; then ORDERFLOW_BROKERS=$(scripts/kafka.sh start); fi
export ORDERFLOW_BROKERS ORDERFLOW_PARTITIONS=6 RUST_LOG=info
# The simulator's journeys are dated up to a week and more ahead: the intakes must take them.
export ORDERFLOW_MAX_FUTURE_SKEW_SECS=2592000
BROKER_PID=$(pgrep -f "kafka.Kafka.*${ORDERFLOW_BROKERS##*:}" | head -1 || true)
[[ -n $BROKER_PID ]] || BROKER_PID=$(pgrep -f "kafka.Kafka" | head -1)
# Topic names unique to this run, so runs can share a broker.
RUN_TAG=p$$
CONSUMERS=(orders payments shipments inventory state)

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }

start_consumers() { # start_consumers PREFIX
  export ORDERFLOW_TOPIC_PREFIX=$1 ORDERFLOW_DATA_DIR=$ROOT/$OUT/data/$1
  "$BIN/orderflow" topics create >&2
  PIDS=()
  local c
  for c in "${CONSUMERS[@]}"; do
    # The state consumer serves /metrics at STATE_METRICS, if set.
    if [[ $c == state && -n ${STATE_METRICS:-} ]]; then
      ORDERFLOW_METRICS_LISTEN=$STATE_METRICS "$BIN/orderflow-$c" --instance 0 2>"$OUT/$1$c.log" &
    else
      "$BIN/orderflow-$c" --instance 0 2>"$OUT/$1$c.log" &
    fi
    PIDS+=($!)
  done
}

echo "== drain of $ORDERS preloaded orders" >&2
export ORDERFLOW_TOPIC_PREFIX=$RUN_TAG.drain. ORDERFLOW_DATA_DIR=$ROOT/$OUT/data/drain
"$BIN/orderflow" topics create >&2
"$BIN/orderflow" simulate --orders "$ORDERS" --seed 42 --tag "${RUN_TAG}d" --settle-timeout 900 --json \
  >"$OUT/drain.json" 2>"$OUT/drain.simulate.log" &
sim=$!
until grep -q "records sent" "$OUT/drain.simulate.log"; do
  kill -0 "$sim" 2>/dev/null || { echo "simulate exited before sending" >&2; exit 1; }
  sleep 0.2
done
broker_before=$(cpu_seconds "$BROKER_PID")
started=$SECONDS
start_consumers "$RUN_TAG.drain."
declare -A used
# A process's CPU is read while it runs: the last reading before the drain ends counts.
while kill -0 "$sim" 2>/dev/null; do
  for i in "${!PIDS[@]}"; do used[$i]=$(cpu_seconds "${PIDS[$i]}" 2>/dev/null || echo "${used[$i]:-0}"); done
  broker_now=$(cpu_seconds "$BROKER_PID")
  sleep 0.5
done
wait "$sim" || echo "the drain reported a mismatch" >&2
echo "drain wall time: $((SECONDS - started)) s (whole seconds, consumers' start included)"
python3 -c 'import json, sys; print("drain facts/s, first to last reflected: %.0f" % json.load(open(sys.argv[1]))["pipeline_events_per_second"])' "$OUT/drain.json"
broker_used=$(echo "$broker_now - $broker_before" | bc)
echo "CPU seconds: broker $broker_used"
for i in "${!CONSUMERS[@]}"; do echo "CPU seconds: ${CONSUMERS[$i]} ${used[$i]}"; done
# Per input record sent (duplicates and malformed ones included: each is work for the pipeline).
inputs=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["records_sent"])' "$OUT/drain.json")
per_input() { awk -v seconds="$1" -v inputs="$inputs" 'BEGIN { printf "%.3f", seconds * 1000 / inputs }'; }
echo "CPU ms per input fact ($inputs input records): broker $(per_input "$broker_used")"
for i in "${!CONSUMERS[@]}"; do echo "CPU ms per input fact: ${CONSUMERS[$i]} $(per_input "${used[$i]}")"; done
for pid in "${PIDS[@]}"; do kill -TERM "$pid"; done
wait "${PIDS[@]}" 2>/dev/null || true

echo "== requests per client at $RATE events/s" >&2
STATE_METRICS=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_consumers "$RUN_TAG.rate."
for c in "${CONSUMERS[@]}"; do
  until grep -q "partitions assigned" "$OUT/$RUN_TAG.rate.$c.log"; do sleep 0.2; done
done
# (no --warmup at 0, so that binaries from before the option run too)
WARMUP_ARGS=()
if [[ $WARMUP != 0 ]]; then WARMUP_ARGS=(--warmup "$WARMUP"); fi
"$BIN/orderflow" simulate --orders $((RATE * 4)) --seed 43 --tag "${RUN_TAG}r" --rate "$RATE" "${WARMUP_ARGS[@]}" --json \
  >"$OUT/rate.json" 2>"$OUT/rate.simulate.log" &
sim=$!
until grep -q "watching order-state" "$OUT/rate.simulate.log"; do sleep 0.2; done
sleep 3 # let the run reach its rate: pacing of the measurement, not a readiness wait
python3 - "${ORDERFLOW_BROKERS##*:}" <<'PY'
import collections, re, subprocess, sys, time
port = sys.argv[1]
def segments_out():
    out = subprocess.run(["ss", "-tinpH", f"( dport = :{port} )"], capture_output=True, text=True).stdout
    totals, owner = collections.Counter(), None
    for line in out.splitlines():
        if m := re.search(r'users:\(\("([^"]+)",pid=(\d+)', line):
            owner = m.group(1)
        if (m := re.search(r"segs_out:(\d+)", line)) and owner:
            totals[owner] += int(m.group(1))
            owner = None
    return totals
before = segments_out(); time.sleep(5); after = segments_out()
for name in sorted(after, key=lambda n: before[n] - after[n]):
    print(f"requests/s to the broker: {name} {(after[name] - before[name]) / 5:.0f}")
PY
wait "$sim" || echo "the rate run reported a mismatch" >&2
python3 -c 'import json, sys; l = json.load(open(sys.argv[1]))["latency_ms"]; print("latency ms at %s events/s after a %s s warm-up: p50 %.1f, p99 %.1f, max %.1f" % (sys.argv[2], sys.argv[3], l["p50"], l["p99"], l["max"]))' "$OUT/rate.json" "$RATE" "$WARMUP"
if "$BIN/orderflow" bench hops --skip-seconds "$WARMUP" >"$OUT/hops.json" 2>"$OUT/hops.log"; then
  python3 -c 'import json, sys; h = json.load(open(sys.argv[1])); print("latency ms per hop, p50 / p99: intake %.0f / %.0f, state %.0f / %.0f (n=%d)" % (h["intake_ms"]["p50"], h["intake_ms"]["p99"], h["state_ms"]["p50"], h["state_ms"]["p99"], h["facts"]))' "$OUT/hops.json"
else
  echo "latency per hop: not measured ($(head -c 300 "$OUT/hops.log"))"
fi
# The state consumer's store writes (orderflow_state_store_write_seconds, on its writer thread):
# how often, and how long, from its histogram's buckets (upper bounds).
python3 -c '
import sys, urllib.request
name = "orderflow_state_store_write_seconds"
buckets, count, total = [], 0, 0.0
try:
    lines = urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=5).read().decode().splitlines()
except OSError:
    lines = []
for line in lines:
    if line.startswith(name + "_bucket"):
        bound = line.split("le=\"")[1].split("\"")[0]
        buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1])))
    elif line.startswith(name + "_count"):
        count = float(line.split()[-1])
    elif line.startswith(name + "_sum"):
        total = float(line.split()[-1])
def quantile(q):
    return next((bound for bound, seen in sorted(buckets) if seen >= q * count), float("nan"))
if count:
    print("store writes of the rate run: %d, mean %.1f ms, p50 <= %.0f ms, p99 <= %.0f ms (on the writer thread)"
          % (count, total / count * 1000, quantile(0.5) * 1000, quantile(0.99) * 1000))
else:
    print("store writes of the rate run: not read (no /metrics at %s)" % sys.argv[1])
' "$STATE_METRICS"
