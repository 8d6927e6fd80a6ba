#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): formatting, lints, the docs and compose checks,
# the deploy checks (Dockerfile, Grafana dashboard, Kubernetes manifests, Prometheus rules and
# their unit tests), shell lint, a bounded run of each fuzz target (scripts/fuzz.sh), then
# every Rust test against a real local Apache Kafka, then
# the journeys and the crash test through Kafka's SASL_SSL listener, then the end-to-end tests
# again against Tansu (a second Kafka-protocol broker).
#
# usage: scripts/test.sh
#
# Every step runs even if an earlier one failed (except tests whose broker did not start), and
# cargo test runs every test binary (--no-fail-fast); a summary of the steps is printed at the
# end and the exit status is 1 if any step failed.
# Needs a Rust toolchain, a JDK 17+ with Maven, Go, openssl and python3; the Python tools,
# kustomize, Kafka and Tansu are installed into .tools/ on first use, promtool with apt-get.
#
# Environment:
#   TEST_TIMEOUT_KAFKA  seconds allowed for running `cargo test --workspace` against Kafka (default 600)
#   TEST_TIMEOUT_TANSU  seconds allowed for the Tansu run (default 300)
#   TEST_TIMEOUT_SECURED seconds allowed for the run against Kafka with SASL_SSL (default 420)
#   TEST_TIMEOUT_BROWSER seconds allowed for the browser tests, installs included (default 600)
#   FUZZ_SECONDS        seconds of fuzzing per fuzz target (default 20 here, 30 in scripts/fuzz.sh)

# shellcheck disable=SC2317,SC2329 # the functions below run indirectly: through `step`, or as the trap
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENV=$ROOT/.tools/venv
REQUIREMENTS=$ROOT/scripts/requirements-ci.txt
TIMEOUT_KAFKA=${TEST_TIMEOUT_KAFKA:-600}
TIMEOUT_TANSU=${TEST_TIMEOUT_TANSU:-300}
TIMEOUT_SECURED=${TEST_TIMEOUT_SECURED:-420}
# Pinned tools of the deploy checks: kustomize from the Go module proxy (into .tools/go), promtool
# from Debian's prometheus package.
KUSTOMIZE_VERSION=v5.7.1
GO_TOOLS=$ROOT/.tools/go

command -v cargo >/dev/null 2>&1 || [[ ! -x $HOME/.cargo/bin/cargo ]] || PATH=$HOME/.cargo/bin:$PATH
# A fresh clone builds once: no incremental cache (it would double target/ and speed nothing up).
[[ ${CI:-} != true ]] || export CARGO_INCREMENTAL=0

if [[ -t 1 ]]; then
  banner() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
  banner() { printf '\n==> %s\n' "$*"; }
fi

SUMMARY=()
FAILED=0
STARTED=$SECONDS

# step NAME CMD... : run CMD, record its outcome and duration.
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  banner "$name"
  "$@" || rc=$?
  if ((rc == 0)); then
    SUMMARY+=("ok      $name ($((SECONDS - t0)) s)")
  else
    local why="exit $rc"
    ((rc != 124)) || why="timed out"
    SUMMARY+=("FAILED  $name ($why, $((SECONDS - t0)) s)")
    FAILED=1
  fi
  return 0
}

# skip NAME WHY : record a step that could not run; counts as a failure.
skip() {
  SUMMARY+=("FAILED  $1 (not run: $2)")
  FAILED=1
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$ROOT/scripts/kafka.sh" stop || true
  "$ROOT/scripts/kafka-sasl.sh" stop || true
  "$ROOT/scripts/tansu.sh" stop || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The Python tools of scripts/requirements-ci.txt in .tools/venv (reinstalled when the file changes).
python_tools() {
  local marker=$VENV/.requirements-ci.sha256 want
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  if [[ -x $VENV/bin/python && -f $marker && $(<"$marker") == "$want" ]]; then
    echo "up to date (${VENV#"$ROOT"/})"
    return 0
  fi
  # (explicit returns: set -e does not apply inside a step)
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" || return 1
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS" || return 1
  echo "$want" >"$marker"
}

# kustomize (pinned, built from the Go module proxy into .tools/go/bin) and promtool (Debian's
# prometheus package, installed if missing).
deploy_tools() {
  local kustomize=$GO_TOOLS/bin/kustomize
  if [[ ! -x $kustomize || $("$kustomize" version 2>/dev/null) != "$KUSTOMIZE_VERSION" ]]; then
    command -v go >/dev/null || { echo "go not found (needed to build kustomize)"; return 1; }
    GOPATH=$GO_TOOLS GOBIN=$GO_TOOLS/bin GOCACHE=$GO_TOOLS/cache GOFLAGS=-modcacherw \
      go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" || return 1
  fi
  if ! command -v promtool >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) \
      >/dev/null || return 1
  fi
  echo "kustomize $("$kustomize" version), $(promtool --version 2>&1 | head -n 1)"
}

promtool_rules() {
  (cd deploy/prometheus && promtool check rules ./*-rules.yml && promtool test rules ./*.test.yml)
}

# The client settings of the SASL_SSL broker (scripts/kafka-sasl.sh writes them, one per line).
SECURED_ENV=()
secured_env() {
  mapfile -t SECURED_ENV <"$ROOT/.tools/kafka-sasl-run/client.env"
  ((${#SECURED_ENV[@]} > 0))
}

shell_lint() {
  "$VENV/bin/shellcheck" -x scripts/*.sh .ci/run
}

# with_broker KIND [start|ensure] : start a fresh broker with scripts/KIND.sh (or reuse the
# running one with ensure); its bootstrap goes in BOOTSTRAP.
BOOTSTRAP=
with_broker() {
  BOOTSTRAP=$("$ROOT/scripts/$1.sh" "${2:-start}") || {
    BOOTSTRAP=
    return 1
  }
  echo "$1 at $BOOTSTRAP"
}

step "python tools (pip install -r scripts/requirements-ci.txt)" python_tools
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
step "check-docs.py (input contract, README metrics table)" "$VENV/bin/python" scripts/check-docs.py
step "validate-compose.py (docker-compose.yml)" "$VENV/bin/python" scripts/validate-compose.py
step "deploy tools (kustomize $KUSTOMIZE_VERSION, promtool)" deploy_tools
step "check-deploy.py (Dockerfile, Grafana dashboard, Kubernetes manifests)" \
  "$VENV/bin/python" scripts/check-deploy.py "$GO_TOOLS/bin/kustomize"
step "promtool check rules, promtool test rules (deploy/prometheus)" promtool_rules
step "shellcheck" shell_lint
export FUZZ_SECONDS=${FUZZ_SECONDS:-20}
step "fuzz (scripts/fuzz.sh, $FUZZ_SECONDS s per target)" scripts/fuzz.sh

# Build every test first, so the timeouts below bound running the tests, not compiling them.
step "build tests (cargo test --no-run)" cargo test --workspace --locked --no-run

# Every Rust test, with a real Kafka broker for the integration tests.
step "start Kafka (scripts/kafka.sh start)" with_broker kafka
if [[ -n $BOOTSTRAP ]]; then
  step "cargo test --workspace (Kafka at $BOOTSTRAP)" \
    env ORDERFLOW_BROKERS="$BOOTSTRAP" timeout --kill-after=30 "$TIMEOUT_KAFKA" \
    cargo test --workspace --locked --no-fail-fast
else
  skip "cargo test --workspace (Kafka)" "Kafka did not start"
fi
# The analytics dashboard in a real headless Chromium, on the same broker (installs Debian's
# chromium, the pinned Playwright and ECharts itself; screenshots in target/screenshots/).
if [[ -n $BOOTSTRAP ]]; then
  step "browser tests (scripts/browser-test.sh, Kafka at $BOOTSTRAP)" \
    env ORDERFLOW_BROKERS="$BOOTSTRAP" timeout --kill-after=30 "${TEST_TIMEOUT_BROWSER:-600}" \
    "$ROOT/scripts/browser-test.sh"
else
  skip "browser tests (scripts/browser-test.sh)" "Kafka did not start"
fi
# Frees the memory of the JVM before the next broker.
"$ROOT/scripts/kafka.sh" stop || true

# The journeys and the crash test again, through a listener that wants a login over TLS
# (SASL_SSL, SCRAM-SHA-512, the broker's own CA), as a managed cluster does. `ensure`: the
# secured-broker tests above (tests/secured.rs) may have started it already.
BOOTSTRAP=
step "start Kafka with SASL_SSL (scripts/kafka-sasl.sh ensure)" with_broker kafka-sasl ensure
if [[ -n $BOOTSTRAP ]] && secured_env; then
  step "cargo test --test pipeline --test crash (Kafka SASL_SSL at $BOOTSTRAP)" \
    env "${SECURED_ENV[@]}" ORDERFLOW_BROKERS="$BOOTSTRAP" timeout --kill-after=30 "$TIMEOUT_SECURED" \
    cargo test --workspace --locked --no-fail-fast --test pipeline --test crash
else
  skip "cargo test --test pipeline --test crash (Kafka SASL_SSL)" "the SASL_SSL broker did not start"
fi
"$ROOT/scripts/kafka-sasl.sh" stop || true

# The end-to-end tests again, on a second Kafka-protocol broker. (--workspace only keeps the
# feature resolution of the run above, so nothing is rebuilt; these tests are in the root package.)
# Tansu 0.6 doesn't implement static group membership (KIP-345): a static member's partitions
# are never handed on, so the consumers join as dynamic members there.
BOOTSTRAP=
step "start Tansu (scripts/tansu.sh start)" with_broker tansu
if [[ -n $BOOTSTRAP ]]; then
  step "cargo test --test pipeline --test crash --test workflow (Tansu at $BOOTSTRAP)" \
    env ORDERFLOW_BROKERS="$BOOTSTRAP" ORDERFLOW_BROKER_KIND=tansu ORDERFLOW_STATIC_MEMBERSHIP=false \
    timeout --kill-after=30 "$TIMEOUT_TANSU" \
    cargo test --workspace --locked --no-fail-fast --test pipeline --test crash --test workflow
else
  skip "cargo test --test pipeline --test crash --test workflow (Tansu)" "Tansu did not start"
fi

banner "summary ($((SECONDS - STARTED)) s)"
# (disk use, because a full disk fails tests in ways that look like bugs)
echo "disk: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free; target/ $(du -sh "${CARGO_TARGET_DIR:-target}" 2>/dev/null | cut -f1)"
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
