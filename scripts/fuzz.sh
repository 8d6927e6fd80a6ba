#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of everything orderflow reads from outside:
# the JSON and protobuf input decoders, the order-events log decoder and fold, the output record
# decoder and the rules parser. The targets are in fuzz/ (a workspace of its own, built into
# fuzz/target); each runs for a bounded time from its seeds, and the first crash fails the run
# with the path of the input that reproduces it.
#
# usage: scripts/fuzz.sh [TARGET...]    (default: every target, `cargo fuzz list`)
#
# Environment:
#   FUZZ_SECONDS    seconds of fuzzing per target (default 30)
#   FUZZ_SANITIZER  none (default) or address
#
# No sanitizer by default: orderflow forbids unsafe code, so AddressSanitizer could only catch a
# memory bug inside a dependency (serde_json, prost, chrono, toml), while it takes a third more
# CPU to build and runs each target 5 to 7 times slower (measured on 2 cores). Panics,
# overflows (debug assertions are on), hangs and runaway memory are caught either way.
# FUZZ_SANITIZER=address works on a stable toolchain too: the sanitizer flag is a nightly
# flag, which RUSTC_BOOTSTRAP=1 lets stable rustc take.
# cargo-fuzz itself is installed, pinned, with `cargo install` (into $CARGO_HOME) on first use.
# What a run learns stays in fuzz/corpus/<target> (git-ignored) and seeds the next run; a crash
# is saved in fuzz/artifacts/<target>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
SANITIZER=${FUZZ_SANITIZER:-none}

command -v cargo >/dev/null 2>&1 || [[ ! -x $HOME/.cargo/bin/cargo ]] || PATH=$HOME/.cargo/bin:$PATH
PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
export RUSTC_BOOTSTRAP=1

if [[ $(cargo fuzz --version 2>/dev/null) != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install, about a minute)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi

# The seeds of each target besides what it found before: the documented examples, the rules
# files, and fuzz/seeds/<target> (written by `cargo run --manifest-path fuzz/Cargo.toml
# --example seeds`).
seeds_of() {
  local committed=fuzz/seeds/$1
  [[ ! -d $committed ]] || echo "$committed"
  case $1 in
    input_json) echo docs/examples ;;
    rules) echo deploy/rules ;;
  esac
}

# (cargo-fuzz has no --locked: check fuzz/Cargo.lock first, as the main build does Cargo.lock)
cargo fetch --locked --manifest-path fuzz/Cargo.toml --quiet || {
  echo "fuzz/Cargo.lock is out of date (a dependency of crates/domain or crates/schema changed?):" \
    "update it with cargo update --manifest-path fuzz/Cargo.toml --workspace and commit it"
  exit 1
}

# Debug assertions on: an arithmetic overflow is a crash, not a silent wrap.
FUZZ_FLAGS=(--debug-assertions --sanitizer "$SANITIZER")
TARGETS=("$@")
((${#TARGETS[@]} > 0)) || mapfile -t TARGETS < <(cargo fuzz list)
cargo fuzz build "${FUZZ_FLAGS[@]}"

FAILED=()
for target in "${TARGETS[@]}"; do
  echo "==> fuzz $target (${SECONDS_PER_TARGET} s)"
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  mapfile -t seeds < <(seeds_of "$target")
  # -timeout: an input that takes 10 s is a hang, and a crash. The run's own log is long: on a
  # failure, only what failed and how to reproduce it is shown.
  log=$(mktemp)
  started=$(mktemp)
  if cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "$log" || true
  else
    # what failed (a panic, a sanitizer report, a timeout), then how to reproduce it
    grep -m 1 -A 2 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY:' "$log" || tail -n 20 "$log"
    grep -A 2 -E '^(Failing input|Reproduce with):' "$log" | cut -c 1-300 || true
    FAILED+=("$target")
    echo "FAILED: fuzz target $target; reproducer(s):"
    find "fuzz/artifacts/$target" -type f -newer "$started" -printf '  %p\n' 2>/dev/null || true
  fi
  rm -f "$log" "$started"
done

if ((${#FAILED[@]} > 0)); then
  echo "fuzzing found a failure in: ${FAILED[*]} (reproduce with: cargo fuzz run ${FUZZ_FLAGS[*]} TARGET PATH)"
  exit 1
fi
echo "fuzzing found nothing in ${#TARGETS[@]} targets × ${SECONDS_PER_TARGET} s"
