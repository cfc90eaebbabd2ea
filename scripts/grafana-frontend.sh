#!/usr/bin/env bash
# Builds and checks the Grafana data-source plugin (grafana/app) as published plugins are checked:
# install (when needed), typecheck, unit tests, production build into grafana/app/dist (module.js,
# plugin.json, ...), @grafana/levitate against the minimum Grafana version plugin.json declares,
# the backend gpx_tideline for linux/amd64, linux/arm64 and darwin/arm64 beside module.js (built
# by grafana/app/Magefile.go through mage and grafana-plugin-sdk-go/build), the
# archive Grafana's catalog takes (grafana/app/tideline-audience-datasource.zip), and
# @grafana/plugin-validator on that archive.
#
# Usage: scripts/grafana-frontend.sh            (from anywhere)
#   FORCE_INSTALL=1 scripts/grafana-frontend.sh  reinstall node_modules even if up to date
#   REQUIRE_PLUGIN_VALIDATOR=1 ...               fail, instead of warning, when the validator's
#                                                npm wrapper cannot download its binary (it fetches
#                                                it from GitHub releases, which needs network)
#   PLUGIN_VALIDATOR_BIN=/path/to/plugincheck2 ...  run this validator binary instead of the npm
#                                                wrapper (for machines without GitHub: build it from
#                                                github.com/grafana/plugin-validator's
#                                                pkg/cmd/plugincheck2)
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

# The npm tools are pinned: a check that changes under us is not a check.
LEVITATE=@grafana/levitate@0.17.2
VALIDATOR=@grafana/plugin-validator@0.31.0

# The frontend must work on the oldest Grafana it claims (">=12.3.0" -> 12.3.0): levitate compares
# what src/ uses of each @grafana package with that version's exports.
min_grafana="$(node -e 'const d=require("./src/plugin.json").dependencies.grafanaDependency; const m=/(\d+\.\d+\.\d+)/.exec(d); if(!m||!d.trim().startsWith(">=")){console.error("grafanaDependency "+d+": want >=X.Y.Z");process.exit(1)} console.log(m[1])')"
targets="@grafana/data@$min_grafana,@grafana/ui@$min_grafana,@grafana/runtime@$min_grafana"
step "levitate against Grafana $min_grafana" npx -y "$LEVITATE" is-compatible --path src/module.ts --target "$targets"

# The backend for the platforms Grafana runs on, built the way Grafana's plugin tooling builds
# backends: grafana/app/Magefile.go (grafana-plugin-sdk-go/build, run by the mage pinned as a tool
# in grafana/app/go.mod) writes gpx_tideline_<os>_<arch> (plugin.json "executable" + _<os>_<arch>)
# for linux/amd64, linux/arm64 and darwin/arm64 and go_plugin_build_manifest into dist/.
# What an earlier build left (webpack keeps it) must not pass for this build's.
executable="$(node -p 'require("./dist/plugin.json").executable')"
rm -f "dist/${executable}"_* dist/go_plugin_build_manifest
step "backend (mage)" go tool mage -v
for platform in linux_amd64 linux_arm64 darwin_arm64; do
  [[ -x "dist/${executable}_$platform" ]] || { echo "mage did not build grafana/app/dist/${executable}_$platform" >&2; exit 1; }
done
[[ -s dist/go_plugin_build_manifest ]] || { echo "mage did not write grafana/app/dist/go_plugin_build_manifest" >&2; exit 1; }

# The archive as the catalog takes it: one folder named by the plugin id.
plugin_id="$(node -p 'require("./dist/plugin.json").id')"
archive="$APP/$plugin_id.zip"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -R dist "$stage/$plugin_id"
# The source maps stay: the catalog requires them (the validator's "missing module.js.map").
rm -f "$archive"
(cd "$stage" && zip -qr "$archive" "$plugin_id")
echo "==> archive grafana/app/$plugin_id.zip" >&2

# @grafana/plugin-validator is an npm wrapper that downloads the validator's binary from GitHub
# releases on first use. Without that network it cannot run: say so loudly, and fail only when
# asked to (CI with network sets REQUIRE_PLUGIN_VALIDATOR=1).
echo "==> plugin-validator" >&2
log="$stage/validator.log"
validator=(npx -y "$VALIDATOR")
if [[ -n "${PLUGIN_VALIDATOR_BIN:-}" ]]; then
  validator=("$PLUGIN_VALIDATOR_BIN")
  echo "==> plugin-validator from PLUGIN_VALIDATOR_BIN=$PLUGIN_VALIDATOR_BIN" >&2
fi
if "${validator[@]}" -sourceCodeUri "file://$APP" "$archive" >"$log" 2>&1; then
  cat "$log" >&2
  echo "==> plugin-validator ok" >&2
elif grep -q "Failed to download" "$log"; then
  cat "$log" >&2
  echo "==> plugin-validator NOT RUN: its npm wrapper could not download the validator binary (above)." >&2
  if [[ "${REQUIRE_PLUGIN_VALIDATOR:-}" == 1 ]]; then
    exit 1
  fi
else
  cat "$log" >&2
  echo "==> plugin-validator found problems (above)" >&2
  exit 1
fi
