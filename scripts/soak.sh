#!/usr/bin/env bash
# Soak: SOAK_ORDERS simulated orders through the whole pipeline (4 intakes + 1 state consumer,
# release build) in rounds of SOAK_ROUND orders, each round's orders placed one second apart in
# event time after the last round's, so event time advances ~1 day per 86 400 orders and the
# dedup window and closed-order retention (set short here: SOAK_WINDOW_HOURS,
# SOAK_RETENTION_HOURS) expire within the run. Every SOAK_EVERY seconds it samples the RSS of
# every orderflow process and the size of every local store into a CSV; at the end it plots it.
#
# usage: scripts/soak.sh [OUT_DIR]   (default var/soak)
#   SOAK_ORDERS=1000000 SOAK_ROUND=100000 SOAK_EVERY=5 SOAK_WINDOW_HOURS=24 SOAK_RETENTION_HOURS=48
#   SOAK_CACHE_BYTES=134217728 (consumer.cache-bytes)
#   ORDERFLOW_BROKERS=host:port   use that broker (else a local Apache Kafka from scripts/kafka.sh)
#   SOAK_BIN=dir                  run the binaries in dir (not rebuilt), e.g. a copy of target/release
# Output: OUT_DIR/samples.csv, OUT_DIR/rounds.jsonl (each round's verification), OUT_DIR/soak.png
# (plotted with matplotlib from a venv under .tools/plot-venv, made on first use).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

OUT=$(realpath -m "${1:-var/soak}")
ORDERS=${SOAK_ORDERS:-1000000}
ROUND=${SOAK_ROUND:-100000}
EVERY=${SOAK_EVERY:-5}
BIN=${SOAK_BIN:-target/release}
PIDS=()
SAMPLER=
BROKER_STARTED=

cleanup() {
  local rc=$?
  local pid
  [[ -n $SAMPLER ]] && kill -TERM "$SAMPLER" 2>/dev/null
  for pid in "${PIDS[@]:-}"; do
    if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  [[ -n $BROKER_STARTED ]] && scripts/kafka.sh stop >/dev/null 2>&1
  exit "$rc"
}
trap cleanup EXIT

rm -rf "$OUT" && mkdir -p "$OUT/logs" "$OUT/data"
[[ -z ${SOAK_BIN:-} ]] && cargo build --release --locked >&2
if [[ -z ${ORDERFLOW_BROKERS:-} ]]; then
  ORDERFLOW_BROKERS=$(scripts/kafka.sh start)
  BROKER_STARTED=1
fi
cat >"$OUT/soak.toml" <<EOF
[store]
data-dir = "$OUT/data"
dedup-window-hours = ${SOAK_WINDOW_HOURS:-24}
closed-order-retention-hours = ${SOAK_RETENTION_HOURS:-48}

[consumer]
cache-bytes = ${SOAK_CACHE_BYTES:-134217728}
EOF
# Orders are placed in event time from now on, up to ORDERS seconds ahead, and a journey's
# facts run days past its placement (returns, refunds): let the intake take them.
export ORDERFLOW_BROKERS ORDERFLOW_CONFIG=$OUT/soak.toml ORDERFLOW_PARTITIONS=6 RUST_LOG=info
export ORDERFLOW_MAX_FUTURE_SKEW_SECS=$((ORDERS + 30 * 86400))
ORDERFLOW_TOPIC_PREFIX=soak.$(date +%s).
export ORDERFLOW_TOPIC_PREFIX
"$BIN/orderflow" topics create >&2

CONSUMERS=(orders payments shipments inventory state)
for c in "${CONSUMERS[@]}"; do
  "$BIN/orderflow-$c" --instance 0 2>>"$OUT/logs/orderflow-$c.log" &
  PIDS+=($!)
done

# The sampler: one row per SOAK_EVERY seconds, orders sent so far from the rounds' logs.
{
  header="seconds,orders_sent"
  for c in "${CONSUMERS[@]}"; do header+=",rss_kib_$c"; done
  for c in "${CONSUMERS[@]}"; do header+=",store_bytes_$c"; done
  echo "$header"
  start=$SECONDS
  while true; do
    # (a process or store that isn't there yet is an empty cell, not the end of the sampler)
    sent=$(cat "$OUT/orders-sent" 2>/dev/null || echo 0)
    row="$((SECONDS - start)),$sent"
    for i in "${!CONSUMERS[@]}"; do
      rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${PIDS[$i]}/status" 2>/dev/null || true)
      row+=",${rss:-}"
    done
    for c in "${CONSUMERS[@]}"; do
      row+=",$({ du -sb "$OUT/data/orderflow-$c-0" 2>/dev/null || true; } | cut -f1)"
    done
    echo "$row"
    sleep "$EVERY"
  done
} >"$OUT/samples.csv" &
SAMPLER=$!

# Each round starts in event time where the last one ended (one order per second).
first=$(date -u +%s)
for ((done_orders = 0; done_orders < ORDERS; done_orders += ROUND)); do
  n=$((ORDERS - done_orders < ROUND ? ORDERS - done_orders : ROUND))
  printf 'start = "%s"\nin-flight-share = 0.0\nabandon-share = 0.0\n' "$(date -u -d "@$((first + done_orders))" +%Y-%m-%dT%H:%M:%S+00:00)" >"$OUT/mix.toml"
  echo "== round at order $done_orders: $n orders" >&2
  "$BIN/orderflow" simulate --orders "$n" --seed "$((done_orders / ROUND + 1))" --tag "S$((done_orders / ROUND))" \
    --mix "$OUT/mix.toml" --settle-timeout 1800 --json \
    >>"$OUT/rounds.jsonl" 2>>"$OUT/logs/simulate.log" || echo "round at $done_orders reported a mismatch" >&2
  echo $((done_orders + n)) >"$OUT/orders-sent"
done
sleep "$EVERY" # one more sample after the last round (pacing of the sampler, not a wait)

# The plot, from a venv of its own (matplotlib is too heavy for the CI tools' venv).
if [[ ! -x .tools/plot-venv/bin/python ]]; then
  python3 -m venv .tools/plot-venv && .tools/plot-venv/bin/pip install -q matplotlib==3.11.2
fi
.tools/plot-venv/bin/python - "$OUT" <<'PY'
import csv, pathlib, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out = pathlib.Path(sys.argv[1])
rows = list(csv.DictReader(open(out / "samples.csv")))
num = lambda v: float(v) if v else float("nan")
t = [num(r["seconds"]) for r in rows]
fig, (mem, disk) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
for name in [k for k in rows[0] if k.startswith("rss_kib_")]:
    mem.plot(t, [num(r[name]) / 1024 for r in rows], label=name[len("rss_kib_"):])
for name in [k for k in rows[0] if k.startswith("store_bytes_")]:
    disk.plot(t, [num(r[name]) / 2**20 for r in rows], label=name[len("store_bytes_"):])
sent = mem.twinx()
sent.plot(t, [num(r["orders_sent"]) / 1000 for r in rows], "k:", label="orders done (k)")
sent.set_ylabel("orders done (thousands)")
mem.set_ylabel("RSS (MiB)"); disk.set_ylabel("local store (MiB)"); disk.set_xlabel("seconds")
mem.legend(loc="upper left", fontsize=8); disk.legend(loc="upper left", fontsize=8)
fig.suptitle(f"soak: {rows[-1]['orders_sent']} orders, one per second of event time")
fig.tight_layout()
fig.savefig(out / "soak.png", dpi=110)
PY
echo "samples: $OUT/samples.csv  plot: $OUT/soak.png" >&2
