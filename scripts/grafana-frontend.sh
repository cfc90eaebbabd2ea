#!/usr/bin/env bash
# Builds and checks the Grafana data-source plugin frontend (grafana/app): install (when needed),
# typecheck, unit tests, production build into grafana/app/dist (module.js, plugin.json, ...).
# The backend binary gpx_tideline is built by the Go side of the repo, not here.
#
# Usage: scripts/grafana-frontend.sh            (from anywhere)
#   FORCE_INSTALL=1 scripts/grafana-frontend.sh  reinstall node_modules even if up to date
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="$ROOT/grafana/app"

# webpack loads the TS webpack config through ts-node, which on Node 20 cannot handle the
# scaffold's `moduleResolution: bundler`; force CommonJS/node resolution for ts-node only.
export TS_NODE_COMPILER_OPTIONS='{"module":"commonjs","moduleResolution":"node"}'

run() {
  echo "+ $*" >&2
  "$@"
}

step() {
  local name=$1
  shift
  local start=$SECONDS
  echo "==> $name" >&2
  run "$@"
  echo "==> $name ok ($((SECONDS - start))s)" >&2
}

command -v node >/dev/null || { echo "node not found in PATH" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found in PATH" >&2; exit 1; }
echo "node $(node --version), npm $(npm --version), in $APP" >&2

cd "$APP"

# Reinstall only when node_modules is missing or package.json/package-lock.json changed since the
# last successful `npm ci` (tracked by a content hash kept inside node_modules, so it goes away
# with it; content rather than mtime so that git operations touching the files do not matter).
STAMP=node_modules/.tideline-npm-ci.sha256
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "${FORCE_INSTALL:-}" == 1 || ! -d node_modules || "$want" != "$have" ]]; then
  step "npm ci" npm ci --no-audit --no-fund
  echo "$want" >"$STAMP"
else
  echo "==> npm ci skipped (node_modules matches package-lock.json)" >&2
fi

step "typecheck" npm run typecheck
step "unit tests" npm run test:ci
step "build" npm run build

for f in dist/module.js dist/plugin.json; do
  [[ -s "$f" ]] || { echo "missing build output grafana/app/$f" >&2; exit 1; }
done
echo "==> plugin frontend built in grafana/app/dist" >&2
