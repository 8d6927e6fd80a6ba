#!/usr/bin/env bash
# The dashboard's front-end dependencies (Apache ECharts, pinned in web/dashboard/package-lock.json),
# installed with `npm ci` into web/dashboard/node_modules (git-ignored), from where
# orderflow-analytics serves them (/vendor/echarts.min.js).
#
# usage: scripts/web.sh install    # npm ci, unless node_modules already matches the lockfile
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEB=$ROOT/web/dashboard

case ${1:-install} in
  install)
    command -v npm >/dev/null 2>&1 || {
      echo "web.sh: npm not found (install Node.js 18+)" >&2
      exit 1
    }
    marker=$WEB/node_modules/.package-lock.sha256
    want=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
    if [[ -f $marker && $(<"$marker") == "$want" && -f $WEB/node_modules/echarts/dist/echarts.min.js ]]; then
      echo "web.sh: up to date (web/dashboard/node_modules)" >&2
      exit 0
    fi
    (cd "$WEB" && npm ci --ignore-scripts --no-audit --no-fund >&2)
    echo "$want" >"$marker"
    echo "web.sh: installed $(cd "$WEB" && node -p 'require("echarts/package.json").version' 2>/dev/null || echo '?') into web/dashboard/node_modules" >&2
    ;;
  *)
    echo "usage: scripts/web.sh install" >&2
    exit 2
    ;;
esac
