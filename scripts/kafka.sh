#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) broker for tests and the demo, run from Maven Central jars.
#
# usage: scripts/kafka.sh install|start|ensure|stop|status|halt|relaunch
#   install  fetch the pinned Kafka jars into .tools/kafka-<ver>/libs (idempotent; needs mvn, JDK 17+)
#   start    (re)start a fresh, empty broker on free 127.0.0.1 ports; prints ONLY its bootstrap
#            address (127.0.0.1:PORT) on stdout, also written to .tools/kafka-run/bootstrap
#   ensure   print the bootstrap of the running broker started by this script, else `start`;
#            safe to call concurrently (flock on .tools/kafka.lock)
#   stop     stop the broker (SIGTERM, SIGKILL after 30 s) and delete .tools/kafka-run
#   status   print "running <bootstrap> pid <pid> ..." (exit 0) or "stopped" (exit 3)
#   halt     stop the broker (SIGTERM, SIGKILL after 30 s) but keep its run dir: data, port, config
#   relaunch start a halted broker again on the same port with the same data; prints its bootstrap
#            (halt + relaunch is an outage drill: tests/outage.rs runs one on a broker of its own)
#
# The Kafka version is pinned in deploy/kafka/pom.xml. Environment overrides:
#   JAVA_HOME             JDK to run the broker (default: `java` on PATH)
#   KAFKA_TEST_HEAP_OPTS  heap flags (default: -Xms256m -Xmx512m)
#   KAFKA_TEST_CDS=0      do not record/use the class-data-sharing archive (faster-start cache)
#   KAFKA_TEST_JIT=full   compile hot code fully (C2) instead of the quick-start C1 only: slower to
#                         start and warm up, less CPU per request once warm (benchmarks)
#   BROKER_START_TIMEOUT  seconds to wait for the broker to serve metadata (default 90)
#   BROKER_LOCK_WAIT      seconds to wait for the lock (default 600)
#   KAFKA_RUN_DIR         run dir (pid, bootstrap, logs, data) instead of .tools/kafka-run, with its
#                         own lock (KAFKA_RUN_DIR.lock): a second broker beside the shared one
#   KAFKA_FLAVOUR         plaintext (default), or sasl_ssl: clients must log in with SCRAM-SHA-512
#                         over TLS (what scripts/kafka-sasl.sh runs; its own run dir and lock, so
#                         both brokers can run at once). `start` generates a CA, the broker's
#                         certificate and a SCRAM user, and writes the client settings as
#                         environment lines to .tools/kafka-sasl-run/client.env
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_PREFIX=kafka.sh

DEPLOY=$ROOT/deploy/kafka
POM=$DEPLOY/pom.xml
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$POM")
[[ -n $KAFKA_VERSION ]] || die "no <kafka.version> in $POM"
KAFKA_HOME=$TOOLS/kafka-$KAFKA_VERSION
LIBS=$KAFKA_HOME/libs
MARKER=$LIBS/.installed

FLAVOUR=${KAFKA_FLAVOUR:-plaintext}
case $FLAVOUR in
  plaintext)
    BROKER="Kafka $KAFKA_VERSION"
    LOCK=$TOOLS/kafka.lock
    set_run_dir "$TOOLS/kafka-run"
    ;;
  sasl_ssl)
    BROKER="Kafka $KAFKA_VERSION SASL_SSL"
    LOCK=$TOOLS/kafka-sasl.lock
    set_run_dir "$TOOLS/kafka-sasl-run"
    ;;
  *) die "KAFKA_FLAVOUR must be plaintext or sasl_ssl, not '$FLAVOUR'" ;;
esac
if [[ -n ${KAFKA_RUN_DIR:-} ]]; then
  set_run_dir "$(realpath -m -- "$KAFKA_RUN_DIR")"
  LOCK=$RUN.lock
fi
START_TIMEOUT=${BROKER_START_TIMEOUT:-90}
STOP_TIMEOUT=30

if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then JAVA=$JAVA_HOME/bin/java; else JAVA=java; fi
# AppCDS: the first broker run records the classes it loaded (-XX:ArchiveClassesAtExit, written
# when it exits); a clean stop keeps that archive, and later JVM starts map it: ~35% faster start.
# Keyed by the JDK, so another JAVA_HOME records its own (a mismatched archive is ignored anyway).
# Off with KAFKA_TEST_CDS=0, and under a path with spaces (JDK 17 then ignores the app classes).
CDS=
if [[ ${KAFKA_TEST_CDS:-1} != 0 && $LIBS != *[[:space:]]* ]]; then
  CDS=$KAFKA_HOME/cds-$(readlink -f "$(command -v "$JAVA" || echo "$JAVA")" | sha256sum | cut -c1-12).jsa
fi

broker_pattern() { echo "$RUN/server.properties"; }

jvm_opts() {
  # shellcheck disable=SC2206 # word splitting of the heap flags is intended
  local heap=(${KAFKA_TEST_HEAP_OPTS:--Xms256m -Xmx512m})
  local jit=(-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=64m)
  if [[ ${KAFKA_TEST_JIT:-quick} == full ]]; then jit=(-XX:ReservedCodeCacheSize=240m); fi
  printf '%s\n' "${heap[@]}" "${jit[@]}" \
    -XX:+UseSerialGC \
    -XX:+ExitOnOutOfMemoryError -XX:-UsePerfData -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$DEPLOY/log4j2.properties" "-Dkafka.logs.dir=$RUN"
  if [[ -n $CDS && -f $CDS ]]; then echo "-XX:SharedArchiveFile=$CDS"; fi
}

# The install marker holds a hash of the pom, so editing the pin re-installs.
pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

broker_install() {
  if [[ -f $MARKER && $(<"$MARKER") == "$(pom_hash)" ]]; then return 0; fi
  need "$JAVA" mvn
  local t0 tmp=$LIBS.tmp
  t0=$(now_ms)
  log "installing Apache Kafka $KAFKA_VERSION jars from Maven Central into ${LIBS#"$ROOT"/} ..."
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # (mvn -q still prints colour resets; strip them)
  mvn -q -B -f "$POM" "-Dmaven.repo.local=$TOOLS/m2" \
    dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$tmp" 2>&1 \
    | sed $'s/\x1b\\[[0-9;]*m//g' >&2 \
    || die "mvn could not fetch the Kafka jars (see above)"
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  rm -rf "$LIBS" "$KAFKA_HOME"/cds-*
  mv "$tmp" "$LIBS"
  pom_hash >"$MARKER"
  log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars in $(($(now_ms) - t0)) ms"
}

# broker_stopped clean|killed : keep the class archive the broker wrote at a clean exit.
broker_stopped() {
  if [[ -n $CDS && $1 == clean && -s $RUN/cds.jsa && ! -f $CDS ]] \
    && "$JAVA" -Xshare:on "-XX:SharedArchiveFile=$RUN/cds.jsa" -cp "$LIBS/*" -version >/dev/null 2>&1; then
    mv "$RUN/cds.jsa" "$CDS"
    log "kept a class-data-sharing archive for faster starts (${CDS#"$ROOT"/})"
  fi
}

new_cluster_id() {
  # Kafka's Uuid string form: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
  python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break'
}

# tls_material DIR PASSWORD : a throwaway CA, and a certificate it signs for 127.0.0.1 /
# localhost in a PKCS#12 keystore for the broker (DIR/ca.pem, DIR/broker.p12).
tls_material() {
  local dir=$1 password=$2
  need openssl
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 7 -keyout ca.key -out ca.pem \
      -subj "/CN=orderflow test CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout broker.key -out broker.csr -subj "/CN=127.0.0.1"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 7 \
      -extfile broker.ext -out broker.pem
    openssl pkcs12 -export -name broker -in broker.pem -inkey broker.key -certfile ca.pem \
      -passout "pass:$password" -out broker.p12
    rm -f ca.key broker.key broker.csr
  ) >"$RUN/tls.out" 2>&1 || { show_tail "$RUN/tls.out"; die "generating the TLS material failed"; }
}

# secure_props PROPS INTERNAL_PORT PORT CONTROLLER_PORT : the SASL_SSL listener and its TLS material and client
# settings; prints the StorageTool arguments that create the SCRAM user.
secure_props() {
  local props=$1 iport=$2 port=$3 cport=$4 t keystore_password user=orderflow password
  keystore_password=$(openssl rand -hex 16)
  password=$(openssl rand -hex 16)
  tls_material "$RUN/tls" "$keystore_password"
  t=$(<"$DEPLOY/sasl-ssl.properties.template")
  t=${t//@BROKER_PORT@/"$port"}
  t=${t//@INTERNAL_PORT@/"$iport"}
  t=${t//@CONTROLLER_PORT@/"$cport"}
  t=${t//@TLS_DIR@/"$RUN/tls"}
  t=${t//@KEYSTORE_PASSWORD@/"$keystore_password"}
  printf '%s\n' "$t" >>"$props"
  mkdir -p "$RUN/client"
  (umask 077 && printf '%s\n' "$password" >"$RUN/client/password")
  # What a client needs, as orderflow's environment variables (one per line, no quoting).
  printf '%s\n' \
    "ORDERFLOW_KAFKA_CLIENT__SECURITY_PROTOCOL=SASL_SSL" \
    "ORDERFLOW_KAFKA_CLIENT__SASL_MECHANISM=SCRAM-SHA-512" \
    "ORDERFLOW_KAFKA_CLIENT__SASL_USERNAME=$user" \
    "ORDERFLOW_KAFKA_SASL_PASSWORD_FILE=$RUN/client/password" \
    "ORDERFLOW_KAFKA_CLIENT__SSL_CA_LOCATION=$RUN/tls/ca.pem" >"$RUN/client.env"
  echo "$iport" >"$RUN/probe-port"
  printf '%s\n' --add-scram "SCRAM-SHA-512=[name=$user,password=$password]"
}

# broker_launch PORT : write server.properties, format the KRaft storage, spawn kafka.Kafka.
broker_launch() {
  local port=$1 cport iport props=$RUN/server.properties t opts scram=()
  read -r cport iport < <(free_ports 2)
  while [[ $cport == "$port" || $iport == "$port" ]]; do read -r cport iport < <(free_ports 2); done
  t=$(<"$DEPLOY/server.properties.template")
  t=${t//@BROKER_PORT@/"$port"}
  t=${t//@CONTROLLER_PORT@/"$cport"}
  t=${t//@DATA_DIR@/"$RUN/data"}
  printf '%s\n' "$t" >"$props"
  if [[ $FLAVOUR == sasl_ssl ]]; then
    mapfile -t scram < <(secure_props "$props" "$iport" "$port" "$cport")
    ((${#scram[@]} == 2)) || die "setting up SASL_SSL failed"
  fi
  mkdir -p "$RUN/data"
  mapfile -t opts < <(jvm_opts)
  "$JAVA" "${opts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool \
    format --standalone -t "$(new_cluster_id)" -c "$props" "${scram[@]}" >"$RUN/format.out" 2>&1 \
    || { show_tail "$RUN/format.out"; die "formatting the KRaft storage failed"; }
  broker_spawn record
}

# broker_spawn [record] : run kafka.Kafka on $RUN/server.properties; `record` lets a first run
# write the class-data-sharing archive.
broker_spawn() {
  local opts
  mapfile -t opts < <(jvm_opts)
  if [[ ${1:-} == record && -n $CDS && ! -f $CDS ]]; then opts+=("-XX:ArchiveClassesAtExit=$RUN/cds.jsa"); fi
  spawn_detached "$RUN" "$PIDFILE" "$RUN/kafka.out" \
    "$JAVA" "${opts[@]}" -cp "$LIBS/*" kafka.Kafka "$RUN/server.properties" >/dev/null
}

do_halt() {
  local pid
  [[ -s $RUN/bootstrap ]] || die "no broker to halt in $RUN"
  pid=$(broker_pid)
  if [[ -n $pid ]] && pid_matches "$pid" "$(broker_pattern)"; then
    log "halting $BROKER (pid $pid); its data and port are kept for relaunch"
    stop_pid "$pid" "$(broker_pattern)" "$STOP_TIMEOUT" || true
  fi
}

do_relaunch() {
  local bootstrap pid rc=0 t0
  [[ -s $RUN/bootstrap && -s $RUN/server.properties ]] || die "no halted broker in $RUN (use start)"
  bootstrap=$(<"$RUN/bootstrap")
  if broker_alive; then
    echo "$bootstrap"
    return 0
  fi
  t0=$(now_ms)
  broker_spawn
  pid=$(broker_pid)
  wait_ready "$pid" "$START_TIMEOUT" kafka_probe 127.0.0.1 "$(probe_port "${bootstrap##*:}")" || rc=$?
  if ((rc != 0)); then
    show_tail "$RUN/kafka.out" "$RUN/server.log"
    die "$BROKER did not come back at $bootstrap"
  fi
  log "$BROKER back at $bootstrap (pid $pid) in $(($(now_ms) - t0)) ms"
  echo "$bootstrap"
}

case ${1:-} in
  halt) with_lock "$LOCK" do_halt ;;
  relaunch) with_lock "$LOCK" do_relaunch ;;
  *) broker_main "$@" ;;
esac
