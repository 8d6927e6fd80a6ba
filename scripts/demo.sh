#!/usr/bin/env bash
# The orderflow demo, end to end on this machine: build, start a fresh local Apache Kafka, run the
# seven consumers, feed deploy/demo/demo.jsonl (17 orders on 5 channels, with retries, out-of-order
# arrival, exceptions and malformed input), wait until every order reached the final status that
# deploy/demo/expected.json gives it, show the result, feed deploy/demo/actions.jsonl (an operator
# approves a review, a customer takes a refund for an out-of-stock order, risk assigns an
# exception) through the HTTP gateway, orderflow-gateway, as the console and the shop's web site
# would, and wait for deploy/demo/expected-after-actions.json, show the exception report,
# stop the consumers, verify the state store against a replay of the log, and stop the broker.
#
# usage: scripts/demo.sh
#
# Needs a Rust toolchain, a JDK 17+ with Maven (to fetch the broker's jars once) and python3.
# The first run builds the release binaries (several minutes) and installs Kafka into .tools/.
#
# Environment:
#   DEMO_BROKER=tansu    run on Tansu (scripts/tansu.sh) instead of Apache Kafka (scripts/kafka.sh)
#   KEEP_BROKER=1        leave the broker running at the end (stop it with scripts/$DEMO_BROKER.sh stop)
#   DEMO_SETTLE_TIMEOUT  seconds to wait for the pipeline to settle after the feed (default 90)
#   DEMO_STAY=1 (or --stay)  keep the analytics dashboard (and the broker) up at the end, until Ctrl-C
#   DEMO_HISTORY=0       skip feeding the simulated shop history that fills the dashboard
#   DEMO_DASHBOARD_PORT  the dashboard's port (default: a free one)
#
# Output: the consumers' logs are in var/demo/logs/, their stores in var/demo/.
set -euo pipefail
if [[ ${1:-} == --stay ]]; then
  DEMO_STAY=1
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEMO=$ROOT/deploy/demo
FEED=$DEMO/demo.jsonl
EXPECTED=$DEMO/expected.json
ACTIONS=$DEMO/actions.jsonl
EXPECTED_AFTER=$DEMO/expected-after-actions.json
DATA=$ROOT/var/demo
LOGS=$DATA/logs
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
SETTLE_TIMEOUT=${DEMO_SETTLE_TIMEOUT:-90}
BROKER_KIND=${DEMO_BROKER:-kafka}
case $BROKER_KIND in
  kafka) BROKER_NAME="Apache Kafka" ;;
  tansu)
    BROKER_NAME="Tansu"
    # Tansu 0.6 doesn't implement static group membership (KIP-345).
    export ORDERFLOW_STATIC_MEMBERSHIP=false
    ;;
  *)
    echo "demo.sh: DEMO_BROKER must be kafka or tansu, not '$BROKER_KIND'" >&2
    exit 2
    ;;
esac
BROKER_SCRIPT=$ROOT/scripts/$BROKER_KIND.sh
CONSUMERS=(orders payments shipments inventory actions state sync notify)
# The two orders `orderflow inspect` shows: the payment callback sent three times, and the
# shipment that arrived before its payment.
INSPECT=(jd:302918475631 douyin:6930182736451827365)
# After the second feed: the order an operator approved, and the out-of-stock order refunded.
INSPECT_AFTER=(tmall:4012583967201938476 web:WEB-20261125-000210)

if [[ -t 1 ]]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi
log() { printf 'demo.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
now_ms() { date +%s%3N; }

# The demo owns its configuration: deploy/dev.toml, the fresh broker and a fresh data dir.
export ORDERFLOW_CONFIG=$ROOT/deploy/dev.toml
export ORDERFLOW_DATA_DIR=$DATA
unset ORDERFLOW_TOPIC_PREFIX ORDERFLOW_PARTITIONS ORDERFLOW_METRICS_LISTEN ORDERFLOW_LOG_FORMAT ORDERFLOW_INSTANCE
export NO_COLOR=1 # plain log files

# --- cleanup: runs on every exit, including errors and Ctrl-C ----------------------------------
PIDS=()
NAMES=()
BROKER_STARTED=0
CONSUMERS_STARTED=0
ANALYTICS_PID=
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  if [[ -n $ANALYTICS_PID ]] && kill -0 "$ANALYTICS_PID" 2>/dev/null; then
    kill -TERM "$ANALYTICS_PID" 2>/dev/null || true
    stop_wait "$ANALYTICS_PID" 15 || true
  fi
  for i in "${!PIDS[@]}"; do
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      log "stopping orderflow-${NAMES[$i]} (pid ${PIDS[$i]})"
      kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    fi
  done
  for i in "${!PIDS[@]}"; do
    stop_wait "${PIDS[$i]}" 15 || true
  done
  if ((BROKER_STARTED)); then
    "$BROKER_SCRIPT" stop || true
  fi
  if ((rc != 0 && CONSUMERS_STARTED)); then
    log "failed (exit $rc); the consumers' logs are in ${LOGS#"$ROOT"/}/"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_wait PID TIMEOUT_S : wait for PID (a child of this shell) to exit, SIGKILL after TIMEOUT_S.
# Returns the process's exit status (137 if it had to be killed).
stop_wait() {
  local pid=$1 deadline=$((SECONDS + $2)) rc=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "pid $pid did not exit within $2 s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

# check_consumers : stop the demo if a consumer has exited: with 130 if it exited cleanly (it
# got the terminal's Ctrl-C too), else with 1 and the tail of its log.
check_consumers() {
  local i rc
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      rc=0
      wait "${PIDS[$i]}" 2>/dev/null || rc=$?
      if ((rc == 0)); then
        log "orderflow-${NAMES[$i]} stopped (interrupted?)"
        exit 130
      fi
      log "orderflow-${NAMES[$i]} exited with status $rc; last lines of its log:"
      tail -n 30 "$LOGS/${NAMES[$i]}.log" >&2 || true
      exit 1
    fi
  done
}

# settled EXPECTED_JSON STATUS_JSON [explain] : compare `orderflow status --json` with the
# expected states. Prints one progress line (or, with "explain", every difference); exit 0 only
# if everything matches.
settled() {
  python3 - "$1" "$2" "${3:-}" <<'PY'
import json, sys

expected = json.load(open(sys.argv[1], encoding="utf-8"))
status = json.load(open(sys.argv[2], encoding="utf-8"))
explain = sys.argv[3] == "explain"
orders = status.get("orders", {})
problems = []
for order_id, want in expected["orders"].items():
    got = orders.get(order_id)
    if got is None:
        problems.append(f"{order_id}: no state yet (expected {want['status']})")
        continue
    codes = sorted(e.get("code", "?") for e in got.get("open_exceptions") or [])
    version = got.get("version", 0)
    if got.get("status") != want["status"] or codes != want["open_exceptions"] or version < want["min_version"]:
        problems.append(
            f"{order_id}: status {got.get('status')} version {version} open {codes or '-'}; "
            f"expected {want['status']}, version >= {want['min_version']}, open {want['open_exceptions'] or '-'}")
unexpected = sorted(set(orders) - set(expected["orders"]))
for order_id in unexpected:
    problems.append(f"{order_id}: not an order of the demo")
dead = status.get("dead_letters", {})
if dead != expected["dead_letters"]:
    problems.append(f"dead letters {dead}, expected {expected['dead_letters']}")
done = len(expected["orders"]) - sum(1 for p in problems if not p.startswith("dead letters"))
if explain:
    for p in problems:
        print("  " + p)
else:
    print(f"  {max(done, 0)}/{len(expected['orders'])} orders at their final state, "
          f"{sum(dead.values())}/{sum(expected['dead_letters'].values())} dead letters")
sys.exit(1 if problems else 0)
PY
}

# wait_settled EXPECTED_JSON : poll `orderflow status` until it matches, or explain and fail.
wait_settled() {
  local expected=$1 deadline
  say "Waiting for every order to reach its expected status (${expected#"$ROOT"/}, up to ${SETTLE_TIMEOUT} s)"
  deadline=$((SECONDS + SETTLE_TIMEOUT))
  STATUS_JSON=$DATA/status.json
  while :; do
    check_consumers
    if "$OF" status --json >"$STATUS_JSON" 2>"$DATA/status.err"; then
      if settled "$expected" "$STATUS_JSON"; then
        return 0
      fi
    else
      echo "  orderflow status failed: $(tail -n 1 "$DATA/status.err")"
      sleep 1
    fi
    if ((SECONDS >= deadline)); then
      log "the pipeline did not settle within ${SETTLE_TIMEOUT} s; still different from ${expected#"$ROOT"/}:"
      settled "$expected" "$STATUS_JSON" explain >&2 || true
      for c in "${CONSUMERS[@]}"; do
        printf -- '----- last 15 lines of %s -----\n' "${LOGS#"$ROOT"/}/$c.log" >&2
        tail -n 15 "$LOGS/$c.log" >&2 || true
      done
      exit 1
    fi
  done
}

# free_port : a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# gateway_feed FILE : POST each action of FILE (orderflow feed's JSON lines) to the gateway's
# action route for its kind, with the bearer token of the actor's credential; the actor on the
# timeline is the credential. Stops the demo on any answer but 202.
gateway_feed() {
  python3 - "$GATEWAY" "$1" <<'PY'
import json, os, sys, urllib.error, urllib.request

base, path = sys.argv[1], sys.argv[2]
tokens = {"cs-li.na": "DEMO_TOKEN_CS", "risk-lead.zhou": "DEMO_TOKEN_RISK", "web_77120": "DEMO_TOKEN_WEB_77120"}
routes = {"review_approved": "review/approve", "review_rejected": "review/reject", "customer_choice": "choice"}
for line in open(path, encoding="utf-8"):
    if not line.strip() or line.lstrip().startswith("//"):
        continue
    action = json.loads(line)["value"]
    kind = action["kind"]
    route = routes.get(kind) or "exceptions/{}/{}".format(
        action["exception_id"], "resolve" if kind == "exception_resolved" else "assign")
    order_id = f"{action['channel']}:{action['platform_order_id']}"
    body = {k: action[k] for k in ("action_id", "note", "occurred_at", "assignee", "choice") if k in action}
    request = urllib.request.Request(
        f"{base}/v1/orders/{order_id}/{route}", data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json",
                 "authorization": "Bearer " + os.environ[tokens[action["actor"]["id"]]]})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            record = json.load(answer)["records"][0]
            print(f"  POST /v1/orders/{order_id}/{route} as {action['actor']['id']}: "
                  f"{answer.status}, {record['kind']} {record['event_id']}")
    except urllib.error.HTTPError as error:
        sys.exit(f"demo.sh: POST /v1/orders/{order_id}/{route}: {error.code} {error.read().decode()}")
PY
}

# --- 1. build ------------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || [[ ! -x $HOME/.cargo/bin/cargo ]] || PATH=$HOME/.cargo/bin:$PATH
command -v cargo >/dev/null 2>&1 || die "cargo not found (install a Rust toolchain with rustup)"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
for f in "$FEED" "$EXPECTED" "$ACTIONS" "$EXPECTED_AFTER"; do
  [[ -f $f ]] || die "missing $f"
done

say "Building the release binaries (cargo build --release --locked; the first build takes several minutes)"
cargo build --release --locked
for b in orderflow orderflow-gateway "${CONSUMERS[@]/#/orderflow-}"; do
  [[ -x $BIN/$b ]] || die "$BIN/$b was not built"
done
OF=$BIN/orderflow

# --- 2. broker, topics ---------------------------------------------------------------------------
say "Starting a fresh local $BROKER_NAME (scripts/$BROKER_KIND.sh start)"
BROKER_STARTED=1
ORDERFLOW_BROKERS=$("$BROKER_SCRIPT" start)
export ORDERFLOW_BROKERS
echo "broker: $ORDERFLOW_BROKERS"

rm -rf "$DATA"
mkdir -p "$LOGS"
"$OF" topics create

# --- 2b. the outside: a fake platform and a fake robot (scripts/fake-endpoints.py) ----------------
# orderflow-sync and orderflow-notify read deploy/dev.toml plus their endpoints, which point at
# the fake on this machine (nothing calls the internet).
FAKE_PORT=$(free_port)
FAKE_LOG=$DATA/fake-endpoints.jsonl
DOORS=$DATA/doors.toml
python3 "$ROOT/scripts/fake-endpoints.py" "$FAKE_PORT" "$FAKE_LOG" demo-platform-secret SECdemo-robot-secret &
PIDS+=("$!")
NAMES+=("fake-endpoints")
{
  cat "$ROOT/deploy/dev.toml"
  printf '\n[sync]\n'
  for channel in tmall jd douyin web miniapp store; do
    printf '[sync.channel.%s]\nurl = "http://127.0.0.1:%s/platform/%s"\nsecret = "demo-platform-secret"\n' \
      "$channel" "$FAKE_PORT" "$channel"
  done
  for robot in ops-dingtalk risk-committee; do
    printf '[notify.robot.%s]\nkind = "dingtalk"\nurl = "http://127.0.0.1:%s/robot/send?access_token=%s"\nsecret = "SECdemo-robot-secret"\n' \
      "$robot" "$FAKE_PORT" "$robot"
  done
  printf '[notify.robot.cs-wecom]\nkind = "wecom"\nurl = "http://127.0.0.1:%s/wecom/send?key=demo"\n' "$FAKE_PORT"
} >"$DOORS"
echo "fake platform and robot: http://127.0.0.1:$FAKE_PORT (requests in ${FAKE_LOG#"$ROOT"/})"

# --- 3. consumers --------------------------------------------------------------------------------
say "Starting the consumers (logs in ${LOGS#"$ROOT"/}/)"
METRICS_PORT=$(free_port)
CONSUMERS_STARTED=1
for c in "${CONSUMERS[@]}"; do
  if [[ $c == sync || $c == notify ]]; then
    ORDERFLOW_CONFIG=$DOORS "$BIN/orderflow-$c" >"$LOGS/$c.log" 2>&1 &
  elif [[ $c == payments ]]; then
    # One consumer serves Prometheus metrics, to show the retried callbacks being dropped.
    ORDERFLOW_METRICS_LISTEN=127.0.0.1:$METRICS_PORT "$BIN/orderflow-$c" >"$LOGS/$c.log" 2>&1 &
  else
    "$BIN/orderflow-$c" >"$LOGS/$c.log" 2>&1 &
  fi
  PIDS+=("$!")
  NAMES+=("$c")
  echo "orderflow-$c: pid $!"
done

# Ready = the consumer joined its group and got its partitions (logged by the rebalance callback).
deadline=$((SECONDS + 60))
for c in "${CONSUMERS[@]}"; do
  until grep -q 'partitions assigned' "$LOGS/$c.log" 2>/dev/null; do
    check_consumers
    ((SECONDS < deadline)) || die "orderflow-$c got no partitions within 60 s (see ${LOGS#"$ROOT"/}/$c.log)"
    sleep 0.2
  done
done
echo "all ${#CONSUMERS[@]} consumers have their partitions"

# --- 3b. the analytics projection and its dashboard ------------------------------------------------
say "Starting orderflow-analytics (the KPI dashboard; ECharts from scripts/web.sh)"
"$ROOT/scripts/web.sh" install ||
  log "ECharts could not be installed (is npm there?): the dashboard shows its cards and tables without charts"
DASHBOARD_PORT=${DEMO_DASHBOARD_PORT:-$(free_port)}
ORDERFLOW_ANALYTICS_LISTEN=127.0.0.1:$DASHBOARD_PORT "$BIN/orderflow-analytics" >"$LOGS/analytics.log" 2>&1 &
ANALYTICS_PID=$!
DASHBOARD_URL=http://127.0.0.1:$DASHBOARD_PORT/
deadline=$((SECONDS + 60))
until grep -q '^dashboard: http' "$LOGS/analytics.log" 2>/dev/null; do
  kill -0 "$ANALYTICS_PID" 2>/dev/null || die "orderflow-analytics exited (see ${LOGS#"$ROOT"/}/analytics.log)"
  ((SECONDS < deadline)) || die "orderflow-analytics did not serve within 60 s (see ${LOGS#"$ROOT"/}/analytics.log)"
  sleep 0.2
done
echo "dashboard: $DASHBOARD_URL"

# The HTTP gateway, for the second feed: each person's credential with a fresh random token.
GATEWAY_PORT=$(free_port)
GATEWAY=http://127.0.0.1:$GATEWAY_PORT
for person in CS RISK WEB_77120; do
  token=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export "DEMO_TOKEN_$person=$token"
done
ORDERFLOW_GATEWAY_LISTEN=127.0.0.1:$GATEWAY_PORT ORDERFLOW_GATEWAY_CREDENTIALS=$DEMO/gateway-credentials.toml \
  "$BIN/orderflow-gateway" >"$LOGS/gateway.log" 2>&1 &
PIDS+=("$!")
NAMES+=("gateway")
echo "orderflow-gateway: pid $! on $GATEWAY"

# --- 4. feed, then wait for the pipeline to settle ------------------------------------------------
say "Feeding ${FEED#"$ROOT"/}"
t_feed=$(now_ms)
fed=$("$OF" feed "$FEED")
echo "$fed"
events=$(awk '/^fed [0-9]+ records/ {print $2}' <<<"$fed")
[[ -n $events ]] || die "could not read the record count from: $fed"

wait_settled "$EXPECTED"
t_settled=$(now_ms)

# --- 5. show ---------------------------------------------------------------------------------------
say "orderflow status"
"$OF" status

for order in "${INSPECT[@]}"; do
  say "orderflow inspect $order"
  "$OF" inspect "$order"
done

say "Metrics of orderflow-payments (http://127.0.0.1:$METRICS_PORT/metrics, excerpt)"
python3 - "http://127.0.0.1:$METRICS_PORT/metrics" <<'PY' || echo "(metrics endpoint not reachable)"
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(("orderflow_records_received_total", "orderflow_events_appended_total",
                        "orderflow_duplicates_dropped_total", "orderflow_dlq_records_total")):
        print(line)
PY

# --- 6. people act: the second feed ---------------------------------------------------------------
say "Operators and customers act through the HTTP gateway: ${ACTIONS#"$ROOT"/}"
deadline=$((SECONDS + 60))
until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$GATEWAY/readyz" 2>/dev/null; do
  check_consumers
  ((SECONDS < deadline)) || die "orderflow-gateway not ready within 60 s (see ${LOGS#"$ROOT"/}/gateway.log)"
  sleep 0.2
done
gateway_feed "$ACTIONS"
wait_settled "$EXPECTED_AFTER"

say "orderflow status (after the actions)"
"$OF" status

for order in "${INSPECT_AFTER[@]}"; do
  say "orderflow inspect $order"
  "$OF" inspect "$order"
done

say "orderflow exceptions (the exception report)"
"$OF" exceptions --since 30d

# --- 6a. the business view: KPIs, segments, the lifecycle board, a forecast ------------------------
if [[ ${DEMO_HISTORY:-1} == 1 ]]; then
  say "Feeding a simulated shop history through the pipeline (42 days, about 30 orders a day), for the dashboard"
  "$BIN/orderflow-analytics" generate --input-feed "$DATA/history.jsonl" --days 42 --orders-per-day 30 --tag HIST
  history_orders=$(grep -c '"kind":"order_placed"' "$DATA/history.jsonl" || true)
  "$OF" feed "$DATA/history.jsonl"
  want_orders=$((history_orders + 17))
  deadline=$((SECONDS + 300))
  until python3 - "${DASHBOARD_URL}api/status" "$want_orders" <<'PY'
import json, sys, urllib.request
status = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
print(f"  the dashboard has {status['orders']}/{sys.argv[2]} orders")
sys.exit(0 if status["orders"] >= int(sys.argv[2]) else 1)
PY
  do
    check_consumers
    ((SECONDS < deadline)) || die "the dashboard did not get every order within 300 s (see ${LOGS#"$ROOT"/}/analytics.log)"
    sleep 1
  done
fi
say "orderflow report --by channel (the KPIs of the last 7 days with data, and the exception report)"
"$OF" report --store "$DATA/orderflow-analytics-0" --by channel
say "orderflow report --digest (the daily KPI digest for managers' phones)"
"$OF" report --store "$DATA/orderflow-analytics-0" --digest

# --- 6b. the outside heard it ----------------------------------------------------------------------
say "Alerting the on-call group: one drill alert for operations, fed to notifications"
printf '%s\n' '{"topic": "notifications", "key": "jd:302918475631", "value": {"schema_version": 1, "notification_id": "demo-drill-1", "order_id": "jd:302918475631", "audience": {"to": "owner", "owner": "operations", "level": "L1"}, "kind": "exception_raised", "message": "drill: the on-call robot works", "at": "2026-11-25T02:00:00Z"}}' |
  "$OF" feed -
deadline=$((SECONDS + 30))
until grep -q '"to": "robot"' "$FAKE_LOG" 2>/dev/null; do
  ((SECONDS < deadline)) || die "the fake robot got no alert within 30 s (see ${LOGS#"$ROOT"/}/notify.log)"
  sleep 0.5
done
say "What the fake platform and robot received (${FAKE_LOG#"$ROOT"/})"
python3 - "$FAKE_LOG" <<'PY'
import collections, json, sys
seen = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
platform = [s for s in seen if s["to"] == "platform"]
robot = [s for s in seen if s["to"] == "robot"]
by_change = collections.Counter((s["body"]["channel"], s["body"]["change"]) for s in platform)
print(f"platform: {len(platform)} status callbacks, {sum(s['signature_ok'] for s in platform)} with a valid signature,"
      f" {sum(s['duplicate'] for s in platform)} repeated keys")
for (channel, change), count in sorted(by_change.items()):
    print(f"  {channel:<8} {change:<22} {count}")
for s in robot:
    text = s["body"].get("markdown", {}).get("text") or s["body"].get("markdown", {}).get("content", "")
    print(f"robot (signature ok: {s['signature_ok']}): {text.strip()}")
PY

# --- 7. stop the consumers, verify the state store against the log ---------------------------------
say "Stopping the consumers (SIGTERM: drain and commit)"
for i in "${!PIDS[@]}"; do
  kill -TERM "${PIDS[$i]}" 2>/dev/null || true
done
for i in "${!PIDS[@]}"; do
  rc=0
  stop_wait "${PIDS[$i]}" 30 || rc=$?
  echo "orderflow-${NAMES[$i]} exited with status $rc"
done
PIDS=()
NAMES=()

say "orderflow replay --verify --store ${DATA#"$ROOT"/}/orderflow-state-0"
verify_rc=0
"$OF" replay --verify --store "$DATA/orderflow-state-0" || verify_rc=$?

# --- 8. throughput, broker -------------------------------------------------------------------------
say "Throughput"
python3 - "$events" "$t_feed" "$t_settled" <<'PY'
import sys
events, start, end = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
seconds = (end - start) / 1000
print(f"{events} input records from the start of the feed to the settled state in {seconds:.1f} s: "
      f"{events / seconds:.1f} records/s")
print("(an upper bound on the time: the settled state is noticed by polling `orderflow status`, and each "
      "poll reads three topics to their end; a demo-sized feed measures latency, not capacity)")
PY

if ((verify_rc != 0)); then
  die "replay --verify failed (exit $verify_rc): the live state store differs from the replay of the log"
fi
if [[ ${DEMO_STAY:-0} == 1 ]]; then
  say "DEMO_STAY=1: the dashboard stays up at $DASHBOARD_URL (Ctrl-C stops it and the broker)"
  wait "$ANALYTICS_PID" || true
fi
kill -TERM "$ANALYTICS_PID" 2>/dev/null || true
stop_wait "$ANALYTICS_PID" 15 || true
if [[ ${KEEP_BROKER:-0} == 1 ]]; then
  say "KEEP_BROKER=1: $BROKER_NAME stays up at $ORDERFLOW_BROKERS (scripts/$BROKER_KIND.sh stop to stop it)"
  BROKER_STARTED=0
else
  say "Stopping the broker"
  "$BROKER_SCRIPT" stop
  BROKER_STARTED=0
fi
echo "demo OK"
echo "dashboard: $DASHBOARD_URL (scripts/demo.sh --stay keeps it up)"
