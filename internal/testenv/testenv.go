// Package testenv gives integration tests the real servers the repo's
// scripts start: a fresh ClickHouse database with the schema applied, and the
// Kafka brokers to run against (the embedded kfake always, Apache Kafka when
// TIDELINE_TEST_KAFKA names it). A missing server fails the test with what
// to run; it never skips.
package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	tsql "github.com/tideline-dev/tideline/sql"
)

// Environment variables read by the tests.
const (
	// EnvClickHouse is the native address of ClickHouse (default 127.0.0.1:19000).
	EnvClickHouse = "TIDELINE_TEST_CLICKHOUSE"
	// EnvKafka lists Apache Kafka seed brokers; when set, integration tests
	// also run against it. CI sets it.
	EnvKafka = "TIDELINE_TEST_KAFKA"
	// EnvKeep keeps test databases for inspection.
	EnvKeep = "TIDELINE_TEST_KEEP"
	// EnvCluster lists the native addresses of the local ClickHouse
	// cluster's servers (scripts/cluster.sh addrs), comma-separated.
	EnvCluster = "TIDELINE_TEST_CLUSTER"
	// EnvClusterMode, when set to 1, puts every test database on that
	// cluster in cluster mode instead of on the single server, so the
	// suite runs unchanged against Replicated and Distributed tables.
	EnvClusterMode = "TIDELINE_TEST_CLUSTER_MODE"
)

// ClusterName is the cluster scripts/cluster.sh writes into remote_servers.
const ClusterName = "tideline"

// ClusterAddrs returns the local cluster's servers and fails the test when
// EnvCluster does not name them or the first does not answer.
func ClusterAddrs(t testing.TB) []string {
	t.Helper()
	v := os.Getenv(EnvCluster)
	if v == "" {
		t.Fatalf("%s is not set: start the local cluster with scripts/cluster.sh start and set %s=$(scripts/cluster.sh addrs)", EnvCluster, EnvCluster)
	}
	return strings.Split(v, ",")
}

// ClusterConfig is ClickHouseConfig on the local cluster in cluster mode:
// the client talks to the cluster's servers in order, so it keeps working
// while the first one is down.
func ClusterConfig(t testing.TB) chdb.Config {
	t.Helper()
	addrs := ClusterAddrs(t)
	c := chdb.DefaultConfig()
	c.Addr = strings.Join(addrs, ",")
	c.Cluster = ClusterName
	c.Database = "test_" + Name(t)
	t.Cleanup(func() { dropDatabase(t, c) })
	return c
}

// ClickHouseEnv is the environment a tideline subprocess of a test needs to
// use conn's database: its servers, the database and, in cluster mode, the
// cluster.
func ClickHouseEnv(t testing.TB, conn *chdb.Conn) []string {
	t.Helper()
	addr := chdb.DefaultConfig().Addr
	if a := os.Getenv(EnvClickHouse); a != "" {
		addr = a
	}
	env := []string{"TIDELINE_CLICKHOUSE_DATABASE=" + conn.Database}
	if conn.Cluster != "" {
		addr = strings.Join(ClusterAddrs(t), ",")
		env = append(env, "TIDELINE_CLICKHOUSE_CLUSTER="+conn.Cluster)
	}
	return append(env, "TIDELINE_CLICKHOUSE_ADDR="+addr)
}

// Logger returns a logger for tests: quiet unless -v.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// Name returns a short unique identifier for t, usable in database and topic names.
func Name(t testing.TB) string {
	n := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(n) > 30 {
		n = n[:30]
	}
	return fmt.Sprintf("%s_%06x", n, rand.Uint32()&0xffffff)
}

// ClickHouseConfig is the config of a new, empty test database. Whoever
// creates it (the test, or a component such as the drill that migrates its
// own database), it is dropped when the test ends.
func ClickHouseConfig(t testing.TB) chdb.Config {
	if ClusterMode() {
		return ClusterConfig(t)
	}
	return ServerConfig(t)
}

// ClusterMode reports whether EnvClusterMode puts test databases on the
// local cluster.
func ClusterMode() bool { return os.Getenv(EnvClusterMode) == "1" }

// ServerConfig is ClickHouseConfig on the single server whatever the mode,
// for what measures or needs one server (the bench's single-server
// scenarios, a server of the test's own).
func ServerConfig(t testing.TB) chdb.Config {
	c := chdb.DefaultConfig()
	if a := os.Getenv(EnvClickHouse); a != "" {
		c.Addr = a
	}
	c.Database = "test_" + Name(t)
	t.Cleanup(func() { dropDatabase(t, c) })
	return c
}

// dropDatabase drops c's database unless EnvKeep asks to keep test
// databases. It connects to the server's default database, as c's may
// never have been created.
func dropDatabase(t testing.TB, c chdb.Config) {
	if os.Getenv(EnvKeep) != "" {
		t.Logf("kept database %s", c.Database)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := c
	server.Database = "default"
	conn, err := chdb.Open(ctx, server, false)
	if err != nil {
		t.Logf("drop test database %s: %v", c.Database, err)
		return
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.Database+c.OnCluster()); err != nil {
		t.Logf("drop test database %s: %v", c.Database, err)
	}
	// A process killed by the test (a backfill apply) leaves its scratch
	// databases behind; they live on one server, never on the cluster.
	prefix, ok := chdb.ScratchPrefix(c.Database)
	if !ok {
		return
	}
	scratch, err := conn.Strings(ctx, "SELECT name FROM system.databases WHERE startsWith(name, ?)", prefix)
	if err != nil {
		t.Logf("list scratch databases of %s: %v", c.Database, err)
		return
	}
	for _, db := range scratch {
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Logf("drop scratch database %s: %v", db, err)
		}
	}
}

// ClickHouse opens a fresh database with every migration applied and drops
// it when the test ends.
func ClickHouse(t testing.TB) *chdb.Conn {
	t.Helper()
	return ClickHouseWith(t, ClickHouseConfig(t))
}

// ClickHouseWith is ClickHouse for a given config.
func ClickHouseWith(t testing.TB, c chdb.Config) *chdb.Conn {
	t.Helper()
	within := 30 * time.Second
	if c.Cluster != "" {
		// Every migration is DDL ON CLUSTER, which waits for each server
		// through ZooKeeper: about 15 s for the schema on an idle 2-core
		// machine, several times that beside other cluster tests.
		within = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	conn, err := chdb.Open(ctx, c, true)
	if err != nil {
		if c.Cluster != "" {
			t.Fatalf("the local ClickHouse cluster is required at %s (start it with scripts/cluster.sh start): %v", c.Addr, err)
		}
		t.Fatalf("ClickHouse is required at %s (start it with scripts/clickhouse.sh start): %v", c.Addr, err)
	}
	if _, err := tsql.Up(ctx, conn, Logger(t)); err != nil {
		t.Fatalf("migrate test database %s: %v", c.Database, err)
	}
	t.Cleanup(func() {
		conn.Close()
		dropDatabase(t, c)
	})
	return conn
}

// Broker is a Kafka to run a test against.
type Broker struct {
	// Name is "kfake" or "kafka".
	Name   string
	Seeds  []string
	Config broker.Config
	// Embedded is set for kfake, for fault injection.
	Embedded *broker.Embedded
}

// Brokers returns the brokers integration tests must pass against. The
// embedded broker is started per call and stopped with the test; Apache
// Kafka is used when TIDELINE_TEST_KAFKA is set, and its absence fails the
// test when CI is set. Topic names are prefixed per test so tests can share
// the real broker.
func Brokers(t testing.TB) []Broker {
	t.Helper()
	return []Broker{Embedded(t), Kafka(t)}[:brokersWanted(t)]
}

func brokersWanted(t testing.TB) int {
	if os.Getenv(EnvKafka) != "" {
		return 2
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not set: CI must run the integration suite against Apache Kafka too (scripts/kafka.sh start)", EnvKafka)
	}
	return 1
}

// Embedded starts a kfake broker for the test.
func Embedded(t testing.TB) Broker {
	t.Helper()
	c := broker.DefaultConfig()
	c.EmbeddedPort = 0
	c.EmbeddedDataDir = ""
	c.Partitions = 4
	e, err := broker.StartEmbedded(c)
	if err != nil {
		t.Fatalf("start embedded broker: %v", err)
	}
	t.Cleanup(e.Close)
	return Broker{Name: "kfake", Seeds: e.Addrs(), Config: c, Embedded: e}
}

// Kafka returns the Apache Kafka broker from TIDELINE_TEST_KAFKA with this
// test's topics created; callers use Brokers unless a test is about Kafka itself.
func Kafka(t testing.TB) Broker {
	t.Helper()
	seeds := strings.Split(os.Getenv(EnvKafka), ",")
	c := broker.DefaultConfig()
	c.Mode = "kafka"
	c.Brokers = seeds
	c.Partitions = 4
	c.TopicPrefix = Name(t) + "."
	if os.Getenv(EnvKafka) == "" {
		return Broker{Name: "kafka", Config: c}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := broker.EnsureTopics(ctx, seeds, c); err != nil {
		t.Fatalf("Apache Kafka at %v is required (scripts/kafka.sh start): %v", seeds, err)
	}
	return Broker{Name: "kafka", Seeds: seeds, Config: c}
}

// Merge runs OPTIMIZE TABLE ... FINAL on each table, so an assertion that
// follows sees what every background merge would eventually leave: a
// ReplacingMergeTree holds one row per key, an AggregatingMergeTree one
// state per key. Tests call it before asserting a count, which makes the
// assertion independent of when ClickHouse happens to merge; an assertion
// that only passes on unmerged rows fails every time instead of sometimes.
// A table busy with a merge of its own refuses the OPTIMIZE for a moment
// (optimize_throw_if_noop makes that an error rather than a silent no-op),
// so it is asked again until the merge it wants could run.
func Merge(t testing.TB, conn *chdb.Conn, tables ...string) {
	t.Helper()
	if conn.Cluster != "" {
		mergeCluster(t, conn, tables)
		return
	}
	for _, table := range tables {
		optimize(t, conn, table, nil)
	}
}

// optimize runs OPTIMIZE TABLE table FINAL on conn, asking again while the
// table is busy with a merge of its own: optimize_throw_if_noop makes that
// an error rather than a silent no-op that leaves the rows unmerged.
func optimize(t testing.TB, conn *chdb.Conn, table string, settings map[string]any) {
	t.Helper()
	s := map[string]any{"optimize_throw_if_noop": 1}
	maps.Copy(s, settings)
	ctx := chdb.Settings(context.Background(), s)
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("OPTIMIZE TABLE %s FINAL: %v", table, err)
}

// Replicated waits until every server of the local cluster holds every
// row written so far into tables (SYSTEM SYNC REPLICA of the table holding
// each one's rows): a view on one shard writes a table replicated to all
// servers on that shard's server, and the others fetch the part a moment
// later. A test reading such a table right after an insert waits here. On
// one server it does nothing.
func Replicated(t testing.TB, conn *chdb.Conn, tables ...string) {
	t.Helper()
	if conn.Cluster == "" {
		return
	}
	syncReplicas(t, conn, clusterNodes(t, conn), tables)
}

// node is one server of the local cluster.
type node struct {
	conn  *chdb.Conn
	first bool // the first replica of its shard
}

// clusterNodes connects to each server of the local cluster, in conn's
// database; the connections close with the test.
func clusterNodes(t testing.TB, conn *chdb.Conn) []node {
	t.Helper()
	ctx := context.Background()
	var nodes []node
	shardOf := map[string]uint32{}
	err := conn.Each(ctx, "SELECT concat(host_address, ':', toString(port)), shard_num FROM system.clusters WHERE cluster = ?", []any{conn.Cluster}, func(r chdb.Rows) error {
		var addr string
		var shard uint32
		if err := r.Scan(&addr, &shard); err != nil {
			return err
		}
		shardOf[addr] = shard
		return nil
	})
	if err != nil {
		t.Fatalf("the cluster's servers: %v", err)
	}
	seen := map[uint32]bool{}
	for _, addr := range ClusterAddrs(t) {
		c := chdb.DefaultConfig()
		c.Addr, c.Database, c.Cluster = addr, conn.Database, conn.Cluster
		n, err := chdb.Open(ctx, c, false)
		if err != nil {
			t.Fatalf("node %s: %v", addr, err)
		}
		t.Cleanup(func() { n.Close() })
		shard, ok := shardOf[addr]
		if !ok {
			t.Fatalf("node %s is not in cluster %s", addr, conn.Cluster)
		}
		nodes = append(nodes, node{conn: n, first: !seen[shard]})
		seen[shard] = true
	}
	return nodes
}

// syncReplicas runs SYSTEM SYNC REPLICA of each table's storage on every node.
func syncReplicas(t testing.TB, conn *chdb.Conn, nodes []node, tables []string) {
	t.Helper()
	ctx := context.Background()
	for _, table := range tables {
		local, _, err := conn.StorageTable(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if err := n.conn.Exec(ctx, "SYSTEM SYNC REPLICA "+local); err != nil {
				t.Fatalf("SYSTEM SYNC REPLICA %s: %v", local, err)
			}
		}
	}
}

// mergeCluster is Merge on the local cluster: OPTIMIZE ... FINAL of the
// local table on one replica of each replica set (the first of each shard
// for a sharded table, the first server for a table replicated to all),
// then SYSTEM SYNC REPLICA on every node, so whichever replica a
// Distributed read picks holds the merged parts. OPTIMIZE ON CLUSTER is not
// used: 18.16 fails it on a table without parts.
func mergeCluster(t testing.TB, conn *chdb.Conn, tables []string) {
	t.Helper()
	ctx := context.Background()
	nodes := clusterNodes(t, conn)
	for _, table := range tables {
		local, sharded, err := conn.StorageTable(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes {
			if (sharded && !n.first) || (!sharded && i > 0) {
				continue
			}
			// Not waiting for the other replicas: 18.16 fails that wait
			// on some merges ("Unknown log entry type"); SYNC REPLICA
			// below waits instead.
			optimize(t, n.conn, local, map[string]any{"replication_alter_partitions_sync": 0})
		}
	}
	syncReplicas(t, conn, nodes, tables)
}

// Eventually polls cond every 50ms until it holds, and fails the test with
// what and cond's last state once within has passed. Tests wait for what a
// pipeline does asynchronously with it rather than sleeping; within bounds
// a hang, it is not an assertion about speed.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s (last: %s)", what, within, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DataSourceJSON is the jsonData of a Grafana data source of the plugin
// pointed at c's database on its first server: a data source names one
// server, and on a cluster any of them answers through the Distributed
// tables.
func DataSourceJSON(t testing.TB, c chdb.Config) []byte {
	t.Helper()
	first, _, _ := strings.Cut(c.Addr, ",")
	host, port, err := net.SplitHostPort(first)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(map[string]any{"host": host, "port": p, "user": c.User, "database": c.Database})
	if err != nil {
		t.Fatal(err)
	}
	return j
}
