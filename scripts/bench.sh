#!/usr/bin/env bash
# Benchmarks of the pipeline on a fresh local Apache Kafka (or Tansu with BENCH_BROKER=tansu):
#   1. throughput: N simulated records preloaded into the input topics, then drained by
#      (a) a plain consume->produce relay and (b) the pipeline; ratio b/a.
#   1b. out of cache: the same drain with an entity cache (consumer.cache-bytes =
#      BENCH_SMALL_CACHE, default 4 MiB) holding a small fraction of the live entities (orders +
#      buyers + skus, more than BENCH_ORDERS), so most events find their entity evicted; its
#      rate next to 1's, and how many entities the cache held (from /metrics).
#   1c. records per input fact: what the throughput drain wrote to each topic (order-events,
#      order-state, exceptions, notifications, warehouse-routing, dlq) and read (input topics,
#      order-events), per input record, from the topics' watermarks.
#   1d. preloaded: BENCH_PRELOAD_RUNS (3) drains of BENCH_PRELOAD_ORDERS (50 000) orders placed,
#      paid, shipped, delivered and completed, 5 % duplicate callbacks and no other mess
#      (issue 17's scenario): each run's input records/s, and the slowest run against the
#      fastest (target: within 1.5x).
#   2. replay: `orderflow replay` of the resulting log vs a raw read of it; ratio.
#   3. scale-out: the preloaded drain with 1, 2 and 3 state consumers (6 partitions), and a run
#      where copies join and leave mid-run, verification on each.
#   4. latency, last (on a warm broker): end-to-end (input topic -> order-state) at a fixed
#      rate, HDR percentiles of the steady state: facts sent in the first BENCH_WARMUP seconds
#      (clients connecting, producers getting their ids) are reported apart; and the same
#      facts' latency per hop (input -> log -> order-state) from the records' create times.
# Results: var/bench/results.jsonl (one JSON report per line) and a summary on stdout.
#
# usage: scripts/bench.sh  (BENCH_SMALL_CACHE=4194304 BENCH_ORDERS=40000 BENCH_PRELOAD_ORDERS=50000
#   BENCH_PRELOAD_RUNS=3 BENCH_RATE=2000 BENCH_LATENCY_ORDERS=10000 BENCH_WARMUP=3, whole seconds)
#   KAFKA_TEST_JIT=quick    run the Kafka broker with the test harness's C1-only JIT instead of full
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ORDERS=${BENCH_ORDERS:-40000}
SMALL_CACHE=${BENCH_SMALL_CACHE:-4194304}
RATE=${BENCH_RATE:-2000}
LATENCY_ORDERS=${BENCH_LATENCY_ORDERS:-10000}
WARMUP=${BENCH_WARMUP:-3}
PRELOAD_ORDERS=${BENCH_PRELOAD_ORDERS:-50000}
PRELOAD_RUNS=${BENCH_PRELOAD_RUNS:-3}
BROKER_SCRIPT=scripts/kafka.sh
# A benchmark measures a warm broker, compiled as a production JVM compiles it; the quick-start
# C1-only JIT of the test harness uses about 1.5-2x the CPU per request (BENCHMARKS.md, run E).
export KAFKA_TEST_JIT=${KAFKA_TEST_JIT:-full}
[[ ${BENCH_BROKER:-kafka} == tansu ]] && BROKER_SCRIPT=scripts/tansu.sh
OUT=var/bench
BIN=target/release
PIDS=()

cleanup() {
  local rc=$?
  local pid
  for pid in "${PIDS[@]:-}"; do
    if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  "$BROKER_SCRIPT" stop >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT

rm -rf "$OUT" && mkdir -p "$OUT/logs"
cargo build --release --locked >&2
ORDERFLOW_BROKERS=$("$BROKER_SCRIPT" start)
export ORDERFLOW_BROKERS ORDERFLOW_PARTITIONS=6 RUST_LOG=info
# The simulated journeys run days ahead of now (deliveries, returns, refunds): let the intakes
# take them instead of dead-lettering them as from the future (limits.max-future-skew-secs).
export ORDERFLOW_MAX_FUTURE_SKEW_SECS=$((30 * 86400))

start() { # start NAME INSTANCE -> pid in STARTED
  "$BIN/$1" --instance "$2" 2>>"$OUT/logs/${ORDERFLOW_TOPIC_PREFIX}$1-$2.log" &
  STARTED=$!
  PIDS+=("$STARTED")
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

fresh() { # fresh PREFIX: a new namespace of topics, and local stores of its own
  export ORDERFLOW_TOPIC_PREFIX=$1
  export ORDERFLOW_DATA_DIR=$ROOT/$OUT/data/$1
  "$BIN/orderflow" topics create >&2
}

wait_for_line() { # wait_for_line FILE PATTERN SECONDS
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "timed out waiting for '$2' in $1" >&2; return 1; }
    sleep 0.2
  done
}

# A preloaded drain: simulate sends everything first, then the pipeline starts.
# usage: [DRAIN_ORDERS=N] [DRAIN_MIX=FILE] drain NAME STATE_COPIES [relay]
drain() {
  local name=$1 copies=$2 relay=${3:-} mix=()
  if [[ -n ${DRAIN_MIX:-} ]]; then mix=(--mix "$DRAIN_MIX"); fi
  fresh "bench.$name."
  "$BIN/orderflow" simulate --orders "${DRAIN_ORDERS:-$ORDERS}" --seed 42 --tag "B$name" "${mix[@]}" --settle-timeout 900 --json \
    >"$OUT/$name.json" 2>"$OUT/logs/$name.simulate.log" &
  local sim=$!
  wait_for_line "$OUT/logs/$name.simulate.log" "records sent" 600
  local sent
  sent=$(sed -n 's/.*all \([0-9]*\) records sent.*/\1/p' "$OUT/logs/$name.simulate.log")
  if [[ -n $relay ]]; then
    "$BIN/orderflow" bench relay --count "$sent" >"$OUT/$name.relay.json"
  fi
  local intake=() states=()
  for c in orders payments shipments inventory; do start "orderflow-$c" 0; intake+=("$STARTED"); done
  for ((i = 0; i < copies; i++)); do
    # STATE_METRICS: the first state consumer serves /metrics there (read after the drain).
    if ((i == 0)) && [[ -n ${STATE_METRICS:-} ]]; then
      ORDERFLOW_METRICS_LISTEN=$STATE_METRICS start orderflow-state "$i"
    else
      start orderflow-state "$i"
    fi
    states+=("$STARTED")
  done
  wait "$sim" || echo "simulate $name reported a mismatch" >&2
  if [[ -n ${STATE_METRICS:-} ]]; then
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
      "http://$STATE_METRICS/metrics" >"$OUT/$name.metrics.txt" || true
  fi
  for pid in "${intake[@]}" "${states[@]}"; do stop "$pid"; done
}

echo "== throughput: relay vs pipeline, $ORDERS orders" >&2
drain throughput 1 relay
# The drain's topics hold only this run: what each holds, per input record.
"$BIN/orderflow" bench records >"$OUT/records.json"
echo "== replay vs raw read of the log" >&2
"$BIN/orderflow" replay --json >"$OUT/replay.json"
"$BIN/orderflow" bench read-log >"$OUT/read-log.json"
echo "== out of cache: $ORDERS orders, consumer.cache-bytes = $SMALL_CACHE" >&2
ORDERFLOW_CACHE_BYTES=$SMALL_CACHE STATE_METRICS=127.0.0.1:$(free_port) drain outcache 1

echo "== preloaded: $PRELOAD_ORDERS orders placed, paid, shipped, delivered, completed, 5 % duplicates; $PRELOAD_RUNS runs" >&2
cat >"$OUT/preload-mix.toml" <<'TOML'
cancel-share = 0.0
payment-failure-share = 0.0
return-share = 0.0
abandon-share = 0.0
in-flight-share = 0.0
duplicate-share = 0.05
out-of-order-share = 0.0
late-share = 0.0
malformed-share = 0.0
TOML
for ((run = 1; run <= PRELOAD_RUNS; run++)); do
  DRAIN_ORDERS=$PRELOAD_ORDERS DRAIN_MIX=$OUT/preload-mix.toml drain "preload$run" 1
done

for copies in 1 2 3; do
  echo "== scale-out: $copies state consumer(s)" >&2
  drain "scale$copies" "$copies"
done

echo "== rebalance: copies join and leave mid-run" >&2
fresh bench.rebalance.
for c in orders payments shipments inventory; do start "orderflow-$c" 0; done
start orderflow-state 0; first=$STARTED
"$BIN/orderflow" simulate --orders 20000 --seed 44 --tag Breb --rate 4000 --json >"$OUT/rebalance.json" 2>"$OUT/logs/rebalance.simulate.log" &
sim=$!
wait_for_line "$OUT/logs/rebalance.simulate.log" "sent [0-9]*/" 60 && start orderflow-state 1
second=$STARTED
sleep 3 # pacing of the scenario (a copy joins, later one leaves), not a readiness wait
start orderflow-state 2
sleep 3
stop "$first"
wait "$sim" || echo "rebalance run reported a mismatch" >&2
stop "$second"

# Last, on a broker that has been busy for minutes: its JIT has compiled the hot paths.
echo "== latency at $RATE events/s, $LATENCY_ORDERS orders" >&2
fresh bench.latency.
for c in orders payments shipments inventory state; do start "orderflow-$c" 0; done
LAT_PIDS=("${PIDS[@]: -5}")
for c in orders payments shipments inventory state; do
  wait_for_line "$OUT/logs/${ORDERFLOW_TOPIC_PREFIX}orderflow-$c-0.log" "partitions assigned" 60
done
"$BIN/orderflow" simulate --orders "$LATENCY_ORDERS" --seed 43 --tag Blat --rate "$RATE" --warmup "$WARMUP" --json >"$OUT/latency.json" || echo "latency run reported a mismatch" >&2
"$BIN/orderflow" bench hops --skip-seconds "$WARMUP" >"$OUT/hops.json"
for pid in "${LAT_PIDS[@]}"; do stop "$pid"; done

python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
j = lambda name: json.loads((out / name).read_text())
t, relay = j("throughput.json"), j("throughput.relay.json")
replay, raw = j("replay.json"), j("read-log.json")
lat = j("latency.json")
rows = []
rows.append(("pipeline drain (facts/s)", f"{t['pipeline_events_per_second']:.0f}"))
rows.append(("plain relay (records/s)", f"{relay['records_per_second']:.0f}"))
rows.append(("pipeline / relay", f"{t['pipeline_events_per_second'] / relay['records_per_second']:.2f}"))
rec = j("records.json")
per = rec["per_input"]
rows.append(("records per input fact, throughput drain", f"written {rec['written_per_input']:.2f} (" + ", ".join(f"{name} {per[name]:.2f}" for name in rec["written_topics"]) + f"), read {rec['read_per_input']:.2f} ({rec['inputs']} input records)"))
# Input records/s of a preloaded drain: records sent over the time from the first to the last
# fact reflected on order-state (the simulator's facts/s is over that time).
def input_rate(r):
    reflected = r["facts"] - r["facts_not_reflected"]
    return r["records_sent"] * r["pipeline_events_per_second"] / max(reflected, 1)
preloads = sorted(out.glob("preload*.json"), key=lambda p: int(p.stem[len("preload"):]))
rates = [input_rate(json.loads(p.read_text())) for p in preloads]
if rates:
    rows.append((f"preloaded drains, {len(rates)} runs (input records/s)", " / ".join(f"{r:.0f}" for r in rates) + f"; slowest to fastest {max(rates) / max(min(rates), 1e-9):.2f}x"))
o = j("outcache.json")
gauge = lambda name: next((float(line.split()[-1]) for line in (out / "outcache.metrics.txt").read_text().splitlines() if line.startswith(name)), float("nan")) if (out / "outcache.metrics.txt").exists() else float("nan")
rows.append(("pipeline drain out of cache (facts/s)", f"{o['pipeline_events_per_second']:.0f}: {o['pipeline_events_per_second'] / t['pipeline_events_per_second']:.2f} of the in-cache drain; the cache held {gauge('orderflow_entity_cache_entities'):.0f} entities in {gauge('orderflow_entity_cache_bytes') / 2**20:.1f} MiB, the store more than {t['verdict']['orders']} orders plus their buyers and skus"))
rep_rate = replay['events'] / max(replay['seconds'], 1e-9)
rows.append(("replay (events/s)", f"{rep_rate:.0f}"))
rows.append(("raw log read (records/s)", f"{raw['records_per_second']:.0f}"))
rows.append(("replay / raw read", f"{rep_rate / raw['records_per_second']:.2f}"))
L = lat['latency_ms']
rows.append((f"latency ms p50/p90/p99/p99.9/max", f"{L['p50']:.1f} / {L['p90']:.1f} / {L['p99']:.1f} / {L['p999']:.1f} / {L['max']:.1f} (n={L['count']})"))
H = j("hops.json")
rows.append(("latency ms per hop after the warm-up, p50/p99", f"intake {H['intake_ms']['p50']:.0f}/{H['intake_ms']['p99']:.0f}, state {H['state_ms']['p50']:.0f}/{H['state_ms']['p99']:.0f}, both {H['total_ms']['p50']:.0f}/{H['total_ms']['p99']:.0f} (n={H['facts']})"))
W = lat['warmup_latency_ms']
rows.append((f"latency ms in the first {lat['warmup_seconds']:.0f} s, p50/p99/max", f"{W['p50']:.1f} / {W['p99']:.1f} / {W['max']:.1f} (n={W['count']})"))
for name in ["throughput", "outcache", *[p.stem for p in preloads], "latency", "scale1", "scale2", "scale3", "rebalance"]:
    r = j(f"{name}.json")
    v = r["verdict"]
    extra = f" {r['pipeline_events_per_second']:.0f} facts/s" if name.startswith("scale") else ""
    rows.append((f"verify {name}", f"{v['orders']} orders {r['records_sent']} records: lost {v['lost']} dup {v['duplicated']} wrong {v['wrong']}, dlq {r['dead_letters']}/{r['malformed_sent']}{extra}"))
for k, v in rows:
    print(f"| {k} | {v} |")
with open(out / "results.jsonl", "w") as f:
    for name in ["throughput", "throughput.relay", "records", "outcache", *[p.stem for p in preloads], "replay", "read-log", "latency", "hops", "scale1", "scale2", "scale3", "rebalance"]:
        f.write(json.dumps({name: j(f"{name}.json")}) + "\n")
PY
