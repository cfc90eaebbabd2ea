#!/usr/bin/env bash
# Installs (if missing), starts, stops and reports on a project-local ClickHouse
# server bound to loopback. Data lives under $TIDELINE_STATE_DIR/clickhouse
# (default .state/clickhouse in the repository), so nothing touches /var/lib.
#
#   scripts/clickhouse.sh start|stop|status|wait|client [args...]
#
# Settings: TIDELINE_CH_TCP_PORT (default 19000), TIDELINE_CH_HTTP_PORT (18123).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state=${TIDELINE_STATE_DIR:-$repo/.state}/clickhouse
tcp_port=${TIDELINE_CH_TCP_PORT:-19000}
http_port=${TIDELINE_CH_HTTP_PORT:-18123}
interserver_port=${TIDELINE_CH_INTERSERVER_PORT:-19009}
pidfile=$state/server.pid

log() { printf 'clickhouse.sh: %s\n' "$*" >&2; }

install() {
	if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null; then
		return
	fi
	log "installing clickhouse-server and clickhouse-client from Debian"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

running() {
	[ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

answers() {
	clickhouse-client --host 127.0.0.1 --port "$tcp_port" --query 'SELECT 1' >/dev/null 2>&1
}

wait_ready() {
	local deadline=$((SECONDS + ${1:-60}))
	until answers; do
		if [ $SECONDS -ge $deadline ]; then
			log "ClickHouse did not answer on 127.0.0.1:$tcp_port; last log lines:"
			tail -n 30 "$state/log/server.err.log" >&2 2>/dev/null || true
			return 1
		fi
		sleep 0.3
	done
}

start() {
	install
	if answers; then
		log "already answering on 127.0.0.1:$tcp_port"
		return
	fi
	mkdir -p "$state"/{data,tmp,user_files,format_schemas,log,etc}
	sed -e "s|@STATE@|$state|g" -e "s|@TCP_PORT@|$tcp_port|g" \
		-e "s|@HTTP_PORT@|$http_port|g" -e "s|@INTERSERVER_PORT@|$interserver_port|g" \
		"$repo/scripts/clickhouse/config.xml" >"$state/etc/config.xml"
	cp "$repo/scripts/clickhouse/users.xml" "$state/etc/users.xml"
	log "starting on 127.0.0.1:$tcp_port (data in $state)"
	# Only the server goes to the background: a backgrounded "cd && server"
	# list would leave a shell waiting on it that holds the caller's stdout,
	# so a caller reading this script's output would never see it end.
	(
		cd "$state"
		nohup clickhouse-server --config-file="$state/etc/config.xml" \
			</dev/null >"$state/log/stdout.log" 2>&1 &
		# The server writes no pid file when it runs in the foreground.
		echo $! >"$pidfile"
	)
	wait_ready 90
	log "ready: clickhouse-client --port $tcp_port"
}

stop() {
	if ! running; then
		log "not running"
		return
	fi
	local pid
	pid=$(cat "$pidfile")
	kill "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { log "stopped"; return; }
		sleep 0.2
	done
	log "did not stop in 20 s; killing"
	kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
start) start ;;
stop) stop ;;
restart) stop; start ;;
status) if answers; then echo "running on 127.0.0.1:$tcp_port"; else echo "not running"; exit 1; fi ;;
wait) wait_ready "${2:-60}" ;;
client) shift; exec clickhouse-client --host 127.0.0.1 --port "$tcp_port" "$@" ;;
*) echo "usage: $0 start|stop|restart|status|wait|client [args]" >&2; exit 2 ;;
esac
