#!/usr/bin/env bash
# Installs (if missing), starts, stops and reports on a project-local
# ClickHouse cluster bound to loopback: one ZooKeeper (Debian's 3.8, run from
# its jars, not as a system service) and four clickhouse-server processes
# (the same binary scripts/clickhouse.sh runs) forming 2 shards x 2 replicas.
# Everything lives under $TIDELINE_STATE_DIR/cluster (default .state/cluster).
#
#   scripts/cluster.sh start|stop|restart|status|wait [seconds]|addrs
#   scripts/cluster.sh kill N | start-node N | client N [args...]
#
# The cluster is named "tideline" in remote_servers. Node N (1..4) is shard
# (N+1)/2, replica 1 or 2, native port TIDELINE_CLUSTER_TCP_BASE+N (default
# 19100+N), HTTP 18200+N, interserver 19200+N. ZooKeeper listens on
# TIDELINE_ZK_PORT (default 12181). `addrs` prints the native addresses
# comma-separated, the form TIDELINE_TEST_CLUSTER takes.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state=${TIDELINE_STATE_DIR:-$repo/.state}/cluster
zk_port=${TIDELINE_ZK_PORT:-12181}
tcp_base=${TIDELINE_CLUSTER_TCP_BASE:-19100}
http_base=${TIDELINE_CLUSTER_HTTP_BASE:-18200}
inter_base=${TIDELINE_CLUSTER_INTERSERVER_BASE:-19200}
nodes=(1 2 3 4)

log() { printf 'cluster.sh: %s\n' "$*" >&2; }

install() {
	local missing=()
	command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
	[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
	[ ${#missing[@]} -eq 0 ] && return
	log "installing ${missing[*]} from Debian"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

tcp_port() { echo $((tcp_base + $1)); }
shard_of() { echo $((($1 + 1) / 2)); }
replica_of() { echo $((($1 + 1) % 2 + 1)); }

addrs() {
	local out=()
	for n in "${nodes[@]}"; do out+=("127.0.0.1:$(tcp_port "$n")"); done
	(IFS=,; echo "${out[*]}")
}

zk_answers() {
	# "stat" is whitelisted below. "ruok" says imok before the server takes
	# sessions; stat names the server's mode only once it serves requests.
	local answer
	answer=$({ exec 3<>/dev/tcp/127.0.0.1/"$zk_port" && printf stat >&3 && timeout 2 cat <&3; } 2>/dev/null) || true
	[[ $answer == *"Mode: "* ]]
}

node_answers() {
	clickhouse-client --host 127.0.0.1 --port "$(tcp_port "$1")" --query 'SELECT 1' >/dev/null 2>&1
}

# cluster_answers: every node answers and sees ZooKeeper and all four
# replicas in its remote_servers.
cluster_answers() {
	zk_answers || return 1
	for n in "${nodes[@]}"; do
		node_answers "$n" || return 1
	done
	local hosts
	hosts=$(clickhouse-client --host 127.0.0.1 --port "$(tcp_port 1)" \
		--query "SELECT count() FROM system.clusters WHERE cluster = 'tideline'" 2>/dev/null) || return 1
	[ "$hosts" = "${#nodes[@]}" ] || return 1
	clickhouse-client --host 127.0.0.1 --port "$(tcp_port 1)" \
		--query "SELECT count() FROM system.zookeeper WHERE path = '/'" >/dev/null 2>&1
}

wait_ready() {
	local deadline=$((SECONDS + ${1:-60}))
	until cluster_answers; do
		if [ $SECONDS -ge $deadline ]; then
			log "the cluster did not answer within ${1:-60} s"
			zk_answers || { log "ZooKeeper does not answer on 127.0.0.1:$zk_port; last log lines:"; tail -n 20 "$state/zk/stdout.log" >&2 2>/dev/null || true; }
			for n in "${nodes[@]}"; do
				node_answers "$n" && continue
				log "node $n does not answer on 127.0.0.1:$(tcp_port "$n"); last log lines:"
				tail -n 20 "$state/node$n/log/server.err.log" >&2 2>/dev/null || true
			done
			return 1
		fi
		sleep 0.3
	done
}

start_zk() {
	if zk_answers; then
		return
	fi
	local dir=$state/zk
	mkdir -p "$dir/data" "$dir/conf"
	cat >"$dir/conf/zoo.cfg" <<-EOF
		tickTime=2000
		initLimit=10
		syncLimit=5
		dataDir=$dir/data
		clientPort=$zk_port
		clientPortAddress=127.0.0.1
		admin.enableServer=false
		4lw.commands.whitelist=ruok,stat,mntr
		autopurge.purgeInterval=1
	EOF
	log "starting ZooKeeper on 127.0.0.1:$zk_port"
	(
		cd "$dir"
		nohup java -Xms32m -Xmx256m -Dzookeeper.log.dir="$dir" \
			-cp "$dir/conf:/usr/share/java/zookeeper.jar" \
			org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/conf/zoo.cfg" \
			</dev/null >"$dir/stdout.log" 2>&1 &
		echo $! >"$dir/server.pid"
	)
}

node_config() {
	local n=$1 dir=$state/node$1
	mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log,etc/config.d,etc/users.d}
	sed -e "s|@STATE@|$dir|g" -e "s|@TCP_PORT@|$(tcp_port "$n")|g" \
		-e "s|@HTTP_PORT@|$((http_base + n))|g" -e "s|@INTERSERVER_PORT@|$((inter_base + n))|g" \
		"$repo/scripts/clickhouse/config.xml" >"$dir/etc/config.xml"
	cp "$repo/scripts/clickhouse/users.xml" "$dir/etc/users.xml"
	# distributed_product_mode: a JOIN or IN over two Distributed tables
	# sends its right side to every shard and answers as one server would.
	# The native protocol of 18.16 carries no string setting per session,
	# so the profile holds it; tideline's cluster connections set the rest.
	# load_balancing in_order: a Distributed insert writes, and a
	# Distributed read reads, the first live replica of each shard, so a
	# read sees what was just written; the other replica fetches
	# asynchronously and answers only while the first is down.
	cat >"$dir/etc/users.d/cluster.xml" <<-EOF
		<?xml version="1.0"?>
		<yandex>
		    <profiles>
		        <default>
		            <load_balancing>in_order</load_balancing>
		            <max_memory_usage>2000000000</max_memory_usage>
		            <distributed_product_mode>global</distributed_product_mode>
		            <insert_distributed_sync>1</insert_distributed_sync>
		            <insert_deduplicate>0</insert_deduplicate>
		        </default>
		    </profiles>
		</yandex>
	EOF
	{
		cat <<-EOF
			<?xml version="1.0"?>
			<!-- Written by scripts/cluster.sh: node $n of the local cluster. -->
			<yandex>
			    <interserver_http_host>127.0.0.1</interserver_http_host>
			    <!-- Four servers share two cores and the machine's memory. -->
			    <uncompressed_cache_size>33554432</uncompressed_cache_size>
			    <mark_cache_size>67108864</mark_cache_size>
			    <max_concurrent_queries>50</max_concurrent_queries>
			    <background_pool_size>4</background_pool_size>
			    <!-- A server killed between writing a part and recording it in
			         ZooKeeper finds that part unknown at restart; it was never
			         acknowledged. The default (0.5) refuses to start when such
			         parts are most of a small table; 1 detaches them and
			         fetches the table's parts from the other replica. -->
			    <merge_tree>
			        <replicated_max_ratio_of_wrong_parts>1</replicated_max_ratio_of_wrong_parts>
			    </merge_tree>
			    <macros>
			        <cluster>tideline</cluster>
			        <shard>$(shard_of "$n")</shard>
			        <replica>node$n</replica>
			    </macros>
			    <zookeeper>
			        <node><host>127.0.0.1</host><port>$zk_port</port></node>
			        <session_timeout_ms>30000</session_timeout_ms>
			    </zookeeper>
			    <distributed_ddl>
			        <path>/clickhouse/task_queue/ddl</path>
			    </distributed_ddl>
			    <remote_servers>
			        <tideline>
		EOF
		local s
		for s in 1 2; do
			echo "            <shard><internal_replication>true</internal_replication>"
			for r in "${nodes[@]}"; do
				[ "$(shard_of "$r")" = "$s" ] || continue
				echo "                <replica><host>127.0.0.1</host><port>$(tcp_port "$r")</port></replica>"
			done
			echo "            </shard>"
		done
		cat <<-EOF
			        </tideline>
			    </remote_servers>
			</yandex>
		EOF
	} >"$dir/etc/config.d/cluster.xml"
}

start_node() {
	local n=$1 dir=$state/node$1
	if node_answers "$n"; then
		return
	fi
	node_config "$n"
	log "starting node $n (shard $(shard_of "$n"), replica $(replica_of "$n")) on 127.0.0.1:$(tcp_port "$n")"
	# As in scripts/clickhouse.sh: only the server goes to the background,
	# so a caller reading this script's output sees it end.
	(
		cd "$dir"
		nohup clickhouse-server --config-file="$dir/etc/config.xml" \
			</dev/null >"$dir/log/stdout.log" 2>&1 &
		echo $! >"$dir/server.pid"
	)
}

start() {
	install
	if cluster_answers; then
		log "already answering: $(addrs)"
		return
	fi
	start_zk
	# A server whose replicated tables cannot reach ZooKeeper at start-up
	# exits, so the servers start only once ZooKeeper takes sessions.
	local deadline=$((SECONDS + 60))
	until zk_answers; do
		[ $SECONDS -lt $deadline ] || { log "ZooKeeper did not answer on 127.0.0.1:$zk_port"; tail -n 20 "$state/zk/stdout.log" >&2; return 1; }
		sleep 0.3
	done
	for n in "${nodes[@]}"; do start_node "$n"; done
	wait_ready 120
	log "ready: TIDELINE_TEST_CLUSTER=$(addrs)"
}

stop_pid() {
	local what=$1 pidfile=$2
	[ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || return 0
	local pid
	pid=$(cat "$pidfile")
	kill "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { log "$what stopped"; return; }
		sleep 0.2
	done
	log "$what did not stop in 20 s; killing"
	kill -9 "$pid" 2>/dev/null || true
}

stop() {
	for n in "${nodes[@]}"; do stop_pid "node $n" "$state/node$n/server.pid"; done
	stop_pid ZooKeeper "$state/zk/server.pid"
}

# kill_node sends SIGKILL to one server, as a crash would (the failover
# scenario in reliability/ uses it).
kill_node() {
	local pidfile=$state/node$1/server.pid
	[ -f "$pidfile" ] || { log "node $1 has no pid file"; return 1; }
	kill -9 "$(cat "$pidfile")"
	log "node $1 killed"
}

status() {
	local bad=0
	if zk_answers; then echo "zookeeper: running on 127.0.0.1:$zk_port"; else echo "zookeeper: not running"; bad=1; fi
	for n in "${nodes[@]}"; do
		if node_answers "$n"; then
			echo "node $n (shard $(shard_of "$n"), replica $(replica_of "$n")): running on 127.0.0.1:$(tcp_port "$n")"
		else
			echo "node $n: not running"
			bad=1
		fi
	done
	return $bad
}

case "${1:-}" in
start) start ;;
stop) stop ;;
restart) stop; start ;;
status) status ;;
wait) wait_ready "${2:-60}" ;;
addrs) addrs ;;
kill) kill_node "$2" ;;
start-node) start_node "$2"; deadline=$((SECONDS + 90)); until node_answers "$2"; do [ $SECONDS -lt $deadline ] || { log "node $2 did not answer"; exit 1; }; sleep 0.3; done ;;
client) n=$2; shift 2; exec clickhouse-client --host 127.0.0.1 --port "$(tcp_port "$n")" "$@" ;;
*) echo "usage: $0 start|stop|restart|status|wait [s]|addrs|kill N|start-node N|client N [args]" >&2; exit 2 ;;
esac
