#!/usr/bin/env bash
# Fetches (once), starts, stops and reports on a project-local, single-node
# Apache Kafka broker in KRaft mode (broker and controller in one JVM) bound to
# loopback. Only Java 17+ and Maven are needed: no Docker, no Kafka tarball.
#
#   scripts/kafka.sh start|stop|restart|status|wait [seconds]|kill
#
# kill sends SIGKILL to the broker (for fault tests); the next start recovers
# the same storage. Everything lives under $TIDELINE_STATE_DIR/kafka (default
# .state/kafka in the repository):
#   libs/               the broker's jars, copied once by Maven from the
#                       dependencies of scripts/kafka/pom.xml (fetched again
#                       only when that pom changes)
#   data/               log.dirs and the KRaft metadata log, formatted once
#   server.properties   generated on every start from the settings below
#   log4j2.properties   generated on every start
#   log/server.log      the broker's output (the previous run's: server.log.1)
#   server.pid
# Maven downloads through the default local repository (~/.m2/repository), so
# a fresh clone on the same machine fetches nothing; set TIDELINE_M2_REPO to
# use another one.
#
# Settings: TIDELINE_KAFKA_PORT (default 19092), TIDELINE_KAFKA_CONTROLLER_PORT
# (19093), KAFKA_HEAP_OPTS (-Xmx768m -Xms256m), TIDELINE_KAFKA_LIBS (the jars'
# folder, default $state/libs: a second broker with its own state can share
# the first one's jars).
#
# A SASL_SSL listener is added beside the plaintext one when
# TIDELINE_KAFKA_SECURE_PORT is set; TIDELINE_KAFKA_SECURE_DIR then holds
#   server.pem   the broker's private key and certificate chain (PEM)
#   users        one "name password" per line: accepted with PLAIN and, as
#                SCRAM-SHA-256 and SCRAM-SHA-512 credentials, written into
#                the metadata when the storage is formatted
#   ca.pem       optional: the authority of client certificates; when
#                present the listener requires one it signed (mutual TLS)
# The TLS and SASL tests start such a broker with their own state dir and
# ports; the plaintext listener stays what every other test uses.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state=${TIDELINE_STATE_DIR:-$repo/.state}/kafka
port=${TIDELINE_KAFKA_PORT:-19092}
controller_port=${TIDELINE_KAFKA_CONTROLLER_PORT:-19093}
heap=${KAFKA_HEAP_OPTS:--Xmx768m -Xms256m}
pom=$repo/scripts/kafka/pom.xml
libs=${TIDELINE_KAFKA_LIBS:-$state/libs}
secure_port=${TIDELINE_KAFKA_SECURE_PORT:-}
secure_dir=${TIDELINE_KAFKA_SECURE_DIR:-}
pidfile=$state/server.pid
logfile=$state/log/server.log

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

install() {
	local pkgs=()
	command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
	command -v mvn >/dev/null || pkgs+=(maven)
	command -v kcat >/dev/null || pkgs+=(kcat)
	[ ${#pkgs[@]} -gt 0 ] || return 0
	log "installing ${pkgs[*]} from Debian"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

# fetch copies the jars named by the pom into libs/, once per pom content.
fetch() {
	local want
	want=$(sha256sum "$pom" | cut -d' ' -f1)
	if [ -f "$libs/.pom.sha256" ] && [ "$(cat "$libs/.pom.sha256")" = "$want" ]; then
		return
	fi
	log "fetching the broker's jars with Maven into $libs"
	mkdir -p "$state/log"
	local tmp=$state/libs.tmp m2=()
	[ -z "${TIDELINE_M2_REPO:-}" ] || m2=(-Dmaven.repo.local="$TIDELINE_M2_REPO")
	rm -rf "$tmp"
	if ! mvn -q -B -f "$pom" "${m2[@]}" dependency:copy-dependencies \
		-DoutputDirectory="$tmp" >"$state/log/mvn.log" 2>&1; then
		log "mvn failed; its output:"
		tail -n 40 "$state/log/mvn.log" >&2
		return 1
	fi
	echo "$want" >"$tmp/.pom.sha256"
	rm -rf "$libs"
	mv "$tmp" "$libs"
}

# The JVM options of every Kafka command; KAFKA_HEAP_OPTS may hold several.
read -r -a heap_opts <<<"$heap"
jvm=("${heap_opts[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
	-Djava.awt.headless=true -Dlog4j2.configurationFile="$state/log4j2.properties")

kafka_java() { java "${jvm[@]}" -cp "$libs/*" "$@"; }

# secure_listener prints the properties of the SASL_SSL listener, if any.
secure_listener() {
	[ -n "$secure_port" ] || return 0
	local plain="" name pw
	while read -r name pw; do
		[ -n "$name" ] && plain+=" user_$name=\"$pw\""
	done <"$secure_dir/users"
	cat <<EOF
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$secure_dir/server.pem
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
	if [ -f "$secure_dir/ca.pem" ]; then
		cat <<EOF
listener.name.sasl_ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$secure_dir/ca.pem
EOF
	fi
}

configure() {
	mkdir -p "$state"/{data,log}
	local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
	local advertised="PLAINTEXT://127.0.0.1:$port"
	local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
	if [ -n "$secure_port" ]; then
		[ -f "$secure_dir/server.pem" ] && [ -f "$secure_dir/users" ] || {
			log "TIDELINE_KAFKA_SECURE_DIR ($secure_dir) needs server.pem and users"
			return 1
		}
		listeners+=",SASL_SSL://127.0.0.1:$secure_port"
		advertised+=",SASL_SSL://127.0.0.1:$secure_port"
		protocols+=",SASL_SSL:SASL_SSL"
	fi
	cat >"$state/server.properties" <<EOF
# Generated by scripts/kafka.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
log.dirs=$state/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a SIGKILL the restarted broker cannot register until the controller
# expires its old session (9 s by default): keep that short for fault tests.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
# Keep every record whatever its timestamp: test fixtures may carry old event
# times, which time-based retention would delete within minutes.
log.retention.ms=-1
$(secure_listener)
EOF
	cat >"$state/log4j2.properties" <<'EOF'
# Generated by scripts/kafka.sh: the broker logs to stdout, which the script
# sends to log/server.log.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.target = SYSTEM_ERR
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.controller.name = kafka.controller
logger.controller.level = info
logger.statechange.name = state.change.logger
logger.statechange.level = warn
EOF
}

# format writes the KRaft metadata (a fresh random cluster id) into data/,
# unless that was done before.
format() {
	[ -f "$state/data/meta.properties" ] && return
	local id
	id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$state/log/format.log" | tail -n 1)
	log "formatting storage in $state/data (cluster id $id)"
	local scram=() name pw
	if [ -n "$secure_port" ]; then
		while read -r name pw; do
			[ -n "$name" ] || continue
			scram+=(--add-scram "SCRAM-SHA-256=[name=$name,password=$pw]"
				--add-scram "SCRAM-SHA-512=[name=$name,password=$pw]")
		done <"$secure_dir/users"
	fi
	if ! kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$id" \
		-c "$state/server.properties" "${scram[@]}" >>"$state/log/format.log" 2>&1; then
		log "formatting failed:"
		tail -n 30 "$state/log/format.log" >&2
		return 1
	fi
}

running() {
	[ -f "$pidfile" ] || return 1
	local pid
	pid=$(cat "$pidfile")
	kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

# answers is true when the broker returns metadata naming itself.
answers() {
	kcat -b "127.0.0.1:$port" -L -m 2 2>/dev/null | grep -q '^ *broker 1 at '
}

# show_log prints the broker's first errors (the cause usually comes before
# the shutdown noise) and its last lines.
show_log() {
	[ -f "$logfile" ] || return 0
	grep -m 8 -E '^\[[^]]*\] (ERROR|FATAL) |Exception: ' "$logfile" | cut -c1-400 >&2 || true
	echo ... >&2
	tail -n 20 "$logfile" >&2
}

wait_ready() {
	local deadline=$((SECONDS + ${1:-60}))
	until answers; do
		if [ $SECONDS -ge $deadline ]; then
			log "Kafka did not answer on 127.0.0.1:$port; its log ($logfile):"
			show_log
			return 1
		fi
		if [ -f "$pidfile" ] && ! running; then
			log "the broker exited; its log ($logfile):"
			show_log
			return 1
		fi
		sleep 0.3
	done
}

start() {
	install
	if answers; then
		log "already answering on 127.0.0.1:$port"
		return
	fi
	if running; then
		log "already started (pid $(cat "$pidfile")); waiting for it"
		wait_ready 90
		return
	fi
	fetch
	configure
	format
	[ ! -f "$logfile" ] || mv -f "$logfile" "$logfile.1"
	log "starting on 127.0.0.1:$port (data in $state)"
	rm -f "$pidfile"
	(
		cd "$state"
		nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" \
			java "${jvm[@]}" -cp "$libs/*" kafka.Kafka "$state/server.properties" \
			</dev/null >"$logfile" 2>&1 9>&- &
	)
	# The pid file is written by the child just before exec.
	for _ in $(seq 1 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
	wait_ready 90
	log "ready: kcat -b 127.0.0.1:$port"
}

stop() {
	if ! running; then
		log "not running"
		rm -f "$pidfile"
		return
	fi
	local pid
	pid=$(cat "$pidfile")
	kill "$pid"
	for _ in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || { log "stopped"; rm -f "$pidfile"; return; }
		sleep 0.2
	done
	log "did not stop in 30 s; killing"
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

kill9() {
	if ! running; then
		log "not running"
		rm -f "$pidfile"
		return
	fi
	local pid
	pid=$(cat "$pidfile")
	kill -9 "$pid"
	for _ in $(seq 1 100); do running || break; sleep 0.1; done
	rm -f "$pidfile"
	log "killed (SIGKILL) pid $pid"
}

# lock serialises start, stop and kill, so that test packages which each run
# "start" at once (go test runs packages in parallel) share one broker.
lock() {
	mkdir -p "$state"
	exec 9>"$state/.lock"
	flock 9
}

case "${1:-}" in
start) lock; start ;;
stop) lock; stop ;;
restart) lock; stop; start ;;
status) if answers; then echo "running on 127.0.0.1:$port"; else echo "not running"; exit 1; fi ;;
wait) wait_ready "${2:-60}" ;;
kill) lock; kill9 ;;
*) echo "usage: $0 start|stop|restart|status|wait [seconds]|kill" >&2; exit 2 ;;
esac
