#!/usr/bin/env bash
# Makes (once) a Python virtual environment with PyPI's chdb-core, which embeds
# a current ClickHouse (26.9) in-process, and prints the path of its python.
# The conformance test (sql/conformance) runs the schema and every generated
# statement through it. A failure to install fails loudly: nothing skips.
#
#   scripts/chdb.sh python     install if missing, print the interpreter path
#   scripts/chdb.sh version    print the embedded ClickHouse version
#
# Everything lives under $TIDELINE_STATE_DIR/chdb-venv (default
# .state/chdb-venv). Settings: TIDELINE_CHDB_VERSION (default 26.9.0).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${TIDELINE_STATE_DIR:-$repo/.state}/chdb-venv
want=${TIDELINE_CHDB_VERSION:-26.9.0}

log() { printf 'chdb.sh: %s\n' "$*" >&2; }

ensure() {
	if [ -f "$venv/.installed" ] && [ "$(cat "$venv/.installed")" = "$want" ]; then
		return
	fi
	command -v python3 >/dev/null || { log "python3 is required"; return 1; }
	log "installing chdb-core==$want into $venv"
	rm -rf "$venv"
	python3 -m venv "$venv"
	if ! "$venv/bin/pip" install -q --disable-pip-version-check "chdb-core==$want" >&2; then
		log "pip install chdb-core==$want failed"
		return 1
	fi
	echo "$want" >"$venv/.installed"
}

case "${1:-python}" in
python)
	ensure
	echo "$venv/bin/python"
	;;
version)
	ensure
	"$venv/bin/python" -c 'import chdb; print(chdb.query("SELECT version()", "CSV").data().strip().strip(chr(34)))'
	;;
*)
	echo "usage: $0 python|version" >&2
	exit 2
	;;
esac
