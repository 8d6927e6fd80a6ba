# shellcheck shell=bash
# Shared code of scripts/kafka.sh and scripts/tansu.sh (sourced, not run): helpers plus the
# generic install/start/ensure/stop/status driver (broker_main at the bottom).
#
# Conventions: human messages go to stderr; stdout is reserved for the one value a
# subcommand prints (a bootstrap address). All paths derive from this file's location,
# so the scripts work from any cwd and in a clone anywhere.

# Repo root and the git-ignored tools dir.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
TOOLS=$ROOT/.tools

log() { printf '%s: %s\n' "${LOG_PREFIX:-broker}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found on PATH"
  done
}

# with_lock LOCKFILE CMD... : run CMD while holding an exclusive flock on LOCKFILE.
# Serializes install/start/ensure/stop across concurrent callers (e.g. parallel test binaries).
with_lock() {
  local lockfile=$1 fd
  shift
  need flock
  mkdir -p "$(dirname "$lockfile")"
  exec {fd}>>"$lockfile"
  if ! flock -w "${BROKER_LOCK_WAIT:-600}" "$fd"; then
    die "timed out waiting for lock $lockfile"
  fi
  "$@"
  exec {fd}>&-
}

# free_ports N : print N distinct free TCP ports on 127.0.0.1, space separated.
# (Bound together so they differ; a small race with other processes remains, callers retry.)
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# port_open HOST PORT : true if a TCP connection to HOST:PORT succeeds.
port_open() {
  python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()' \
    "$1" "$2" >/dev/null 2>&1
}

# kafka_probe HOST PORT : true if a Kafka-protocol broker at HOST:PORT answers ApiVersions
# and a Metadata request that lists at least one broker (i.e. it is registered and serving).
kafka_probe() {
  python3 - "$1" "$2" >/dev/null 2>&1 <<'PY'
import socket, struct, sys

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.create_connection((host, port), timeout=2)
sock.settimeout(3)

def recvn(n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf

def call(api_key, version, corr, body):
    client = b"orderflow-probe"
    msg = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", recvn(4))
    data = recvn(size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise ValueError("bad correlation id")
    return data[4:]

# ApiVersions v0 (header v1): error_code, [api_key, min, max]
r = call(18, 0, 1, b"")
err, n = struct.unpack(">hi", r[:6])
if err != 0:
    sys.exit(1)
ranges = {}
for i in range(n):
    k, lo, hi = struct.unpack(">hhh", r[6 + 6 * i: 12 + 6 * i])
    ranges[k] = (lo, hi)
lo, hi = ranges[3]
# Metadata: highest non-flexible version (v1..v8) the broker supports.
v = min(hi, 8)
if v < max(lo, 1):
    sys.exit(1)
body = struct.pack(">i", 0)                     # topics: empty list (no topic metadata)
if v >= 4:
    body += b"\x00"                             # allow_auto_topic_creation
if v >= 8:
    body += b"\x00\x00"                         # include cluster/topic authorized operations
r = call(3, v, 2, body)
off = 4 if v >= 3 else 0                        # throttle_time_ms
(nbrokers,) = struct.unpack(">i", r[off:off + 4])
sys.exit(0 if nbrokers >= 1 else 1)
PY
}

# pid_matches PID PATTERN : true if PID is alive and its command line contains PATTERN
# (guards against a recycled pid from a stale pid file).
pid_matches() {
  local pid=$1 pattern=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# spawn_detached DIR PIDFILE OUTFILE CMD... : start CMD in DIR in its own session, detached from
# the caller's stdin/stdout/stderr (so `$(script ensure)` returns) and any other fd; CMD
# writes its own pid to PIDFILE before exec. Prints the pid.
spawn_detached() {
  local dir=$1 pidfile=$2 out=$3 deadline
  shift 3
  need setsid
  rm -f "$pidfile"
  (
    # close every inherited fd above 2 (our lock, and the caller's pipes: a daemon holding
    # them would keep the lock or make the caller wait for EOF)
    local f n
    for f in /proc/"$BASHPID"/fd/*; do
      n=${f##*/}
      if ((n > 2)); then exec {n}>&-; fi
    done
    cd "$dir" || exit 1
    # shellcheck disable=SC2016 # expanded by the inner bash
    exec setsid bash -c 'echo "$$" >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@"
  ) </dev/null >>"$out" 2>&1 &
  deadline=$((SECONDS + 10))
  until [[ -s $pidfile ]]; do
    ((SECONDS < deadline)) || die "could not spawn: $*"
    sleep 0.05
  done
  cat "$pidfile"
}

# wait_ready PID TIMEOUT_S CHECK... : poll CHECK (a command) until it succeeds, PID dies
# (return 2) or TIMEOUT_S passes (return 1).
wait_ready() {
  local pid=$1 timeout=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then return 2; fi
    if "$@"; then return 0; fi
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.2
  done
}

# stop_pid PID PATTERN TIMEOUT_S : SIGTERM, wait up to TIMEOUT_S, then SIGKILL.
# Returns 0 if it exited on SIGTERM (or was not running), 1 if it had to be killed.
stop_pid() {
  local pid=$1 pattern=$2 timeout=$3 deadline
  pid_matches "$pid" "$pattern" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while pid_matches "$pid" "$pattern"; do
    if ((SECONDS >= deadline)); then
      log "pid $pid still alive after ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
      return 1
    fi
    sleep 0.1
  done
}

# show_tail FILE... : last 40 lines of each existing file, to stderr.
show_tail() {
  local f
  for f in "$@"; do
    if [[ -s $f ]]; then
      printf -- '----- last 40 lines of %s -----\n' "$f" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

# now_ms : wall clock in milliseconds (for timing messages).
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------------------------
# Generic broker driver. A broker script sets
#   BROKER         display name            LOCK           lock file (serializes all subcommands)
#   START_TIMEOUT  seconds until ready     STOP_TIMEOUT   seconds before SIGKILL
#   the run dir with set_run_dir DIR, and defines the hooks
#   broker_install  idempotent install
#   broker_pattern  print a string found in the broker's command line (guards the pid file)
#   broker_launch   given a free port, prepare $RUN and spawn the broker with
#                   spawn_detached ... "$PIDFILE" ...; extra ports it picks itself
#   broker_stopped  (optional) called by stop with "clean" or "killed" before $RUN is removed
# then calls broker_main "$@".

# set_run_dir DIR : the run dir holds pid file, bootstrap file, logs and data.
set_run_dir() {
  RUN=$1
  PIDFILE=$RUN/broker.pid
}

broker_pid() { if [[ -s $PIDFILE ]]; then cat "$PIDFILE"; fi; }

# broker_alive : our pid file names a live broker process and it serves metadata.
broker_alive() {
  local pid bootstrap
  pid=$(broker_pid)
  [[ -n $pid && -s $RUN/bootstrap && $(cat "$RUN/broker" 2>/dev/null) == "$BROKER" ]] || return 1
  pid_matches "$pid" "$(broker_pattern)" || return 1
  bootstrap=$(<"$RUN/bootstrap")
  kafka_probe "${bootstrap%:*}" "$(probe_port "${bootstrap##*:}")"
}

# probe_port PORT : the port the readiness probe talks to: PORT, or the plaintext listener a
# broker whose clients must log in names in $RUN/probe-port (the probe speaks no SASL or TLS).
probe_port() {
  if [[ -s $RUN/probe-port ]]; then cat "$RUN/probe-port"; else echo "$1"; fi
}

# start_once : one attempt in a fresh run dir; 0 ready, 1 timeout, 2 broker exited.
start_once() {
  local port pid rc=0
  port=$(free_ports 1)
  rm -rf "$RUN"
  mkdir -p "$RUN"
  broker_launch "$port"
  pid=$(broker_pid)
  wait_ready "$pid" "$START_TIMEOUT" kafka_probe 127.0.0.1 "$(probe_port "$port")" || rc=$?
  if ((rc == 0)); then
    echo "$BROKER" >"$RUN/broker" # a version bump makes `ensure` restart an older broker
    echo "127.0.0.1:$port" >"$RUN/bootstrap"
  fi
  return "$rc"
}

do_start() {
  broker_install
  do_stop
  local t0 attempt rc
  t0=$(now_ms)
  for attempt in 1 2 3; do
    rc=0
    start_once || rc=$?
    if ((rc == 0)); then
      log "$BROKER ready at $(<"$RUN/bootstrap") (pid $(broker_pid)) in $(($(now_ms) - t0)) ms"
      cat "$RUN/bootstrap"
      return 0
    fi
    if ((rc == 2)) && grep -qs 'Address already in use' "$RUN"/*.log "$RUN"/*.out; then
      log "port taken while starting (attempt $attempt), retrying with new ports"
      continue
    fi
    break
  done
  local f logs=()
  for f in "$RUN"/*.log "$RUN"/*.out; do [[ -f $f ]] && logs+=("$f"); done
  show_tail "${logs[@]}"
  if ((rc == 1)); then
    log "$BROKER not ready after ${START_TIMEOUT}s; killing it (logs kept in ${RUN#"$ROOT"/})"
    stop_pid "$(broker_pid)" "$(broker_pattern)" 10
  else
    log "$BROKER exited during startup (logs kept in ${RUN#"$ROOT"/})"
  fi
  exit 1
}

do_ensure() {
  if broker_alive; then
    cat "$RUN/bootstrap"
  else
    do_start
  fi
}

do_stop() {
  local pid
  pid=$(broker_pid)
  if [[ -n $pid ]] && pid_matches "$pid" "$(broker_pattern)"; then
    log "stopping $BROKER (pid $pid)"
    local how=clean
    stop_pid "$pid" "$(broker_pattern)" "$STOP_TIMEOUT" || how=killed
    if declare -F broker_stopped >/dev/null; then broker_stopped "$how"; fi
  fi
  rm -rf "$RUN"
}

do_status() {
  if broker_alive; then
    echo "running $(<"$RUN/bootstrap") pid $(broker_pid) $BROKER"
  else
    echo "stopped"
    return 3
  fi
}

# broker_main SUBCOMMAND : dispatch; usage is the script's header comment.
broker_main() {
  case ${1:-} in
    install) with_lock "$LOCK" broker_install ;;
    start) with_lock "$LOCK" do_start ;;
    ensure) with_lock "$LOCK" do_ensure ;;
    stop) with_lock "$LOCK" do_stop ;;
    status) do_status ;;
    *)
      sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
      exit 2
      ;;
  esac
}
