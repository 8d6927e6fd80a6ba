#!/usr/bin/env bash
# The dashboard's browser tests (tests/browser/): Playwright drives Debian's headless Chromium
# against a real orderflow-analytics on a real broker. Installs what it needs: Debian's
# chromium (apt-get, when /usr/bin/chromium is missing), the pinned Python packages of
# tests/browser/requirements.txt into .tools/browser-venv, and ECharts (scripts/web.sh).
# Screenshots land in target/screenshots/.
#
# usage: scripts/browser-test.sh
#
# Environment:
#   ORDERFLOW_BROKERS  the broker to use (default: scripts/kafka.sh ensure)
#   ORDERFLOW_BIN_DIR  where the binaries are (default $CARGO_TARGET_DIR/debug or target/debug; built if missing)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=$ROOT/.tools/browser-venv
REQUIREMENTS=$ROOT/tests/browser/requirements.txt
BIN_DIR=${ORDERFLOW_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}

if [[ ! -x /usr/bin/chromium ]]; then
  echo "browser-test.sh: installing Debian's chromium" >&2
  if [[ $(id -u) == 0 ]]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
fi

marker=$VENV/.requirements.sha256
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $marker || $(<"$marker") != "$want" ]]; then
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$want" >"$marker"
fi

"$ROOT/scripts/web.sh" install

if [[ ! -x $BIN_DIR/orderflow || ! -x $BIN_DIR/orderflow-analytics ]]; then
  cargo build --locked --bin orderflow --bin orderflow-analytics
fi

export ORDERFLOW_BIN_DIR=$BIN_DIR
exec "$VENV/bin/python" -m pytest -q -s tests/browser
